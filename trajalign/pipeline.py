"""Blocks of frames flow source -> job -> HDF5 sink.

A :class:`Job` is what a command does: it declares its datasets once, then turns each
:class:`~trajalign.io.Block` into aligned coordinates and per-frame extras. The driver
:func:`run` is the only writer of the output file, and the file appears at the output
path only when complete.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import _signals
from ._validate import nonfinite_error
from .errors import DataError, ParameterError
from .io.output import AtomicOutput

DEFAULT_MEMORY_MB = 256
# bytes held per coordinate of a block: the float32 input, the output and float64 scratch
_BYTES_PER_COORD = 4 + 4 + 8


def chunk_size(n_points: int, dim: int, chunk_frames: int | None, memory_mb: float | None) -> int:
    """Frames per block: ``chunk_frames`` if given, else what fits in ``memory_mb``."""
    if chunk_frames is not None:
        if chunk_frames < 1:
            raise ParameterError(
                f"--chunk-frames {chunk_frames} is not positive", "use 1 or more frames per block"
            )
        return int(chunk_frames)
    mb = DEFAULT_MEMORY_MB if memory_mb is None else memory_mb
    if not mb > 0:
        raise ParameterError(f"--memory {memory_mb} is not positive", "give a budget in MB")
    per_frame = n_points * dim * _BYTES_PER_COORD
    return max(1, int(mb * 2**20 // per_frame))


@dataclass
class BlockResult:
    """What a job returns for one block: coordinates (b, N, D) or None, and extras
    mapping dataset names (declared in :meth:`Job.declare`) to (b, ...) arrays."""

    coords: np.ndarray | None
    extra: dict[str, np.ndarray] = field(default_factory=dict)


class Job:
    """A command's work on blocks. Subclasses override :meth:`declare` and :meth:`process`."""

    method: str = ""
    writes_positions: bool = True

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def output_shape(self, source) -> tuple[int, int]:
        """(points, dim) of the written coordinates."""
        return source.n_points, source.dim

    def output_atom_indices(self, source) -> np.ndarray:
        """Source indices of the written points (``/trajalign/atom_indices``)."""
        return source.atom_indices

    def prepare(self, source) -> None:
        """Validate parameters against the source, run reduce passes. Before any output."""

    def declare(self, writer, source) -> None:
        """Create the job's datasets in the writer."""

    def process(self, block) -> BlockResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def parameters(self) -> dict:
        return {"method": self.method}


def run(
    source,
    job: Job,
    output: str,
    force: bool = False,
    chunk_frames: int | None = None,
    memory_mb: float | None = None,
    argv: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Run ``job`` over every frame of ``source`` and write ``output``.

    Returns the run summary: output, frames, atoms, dim, method, seconds, warnings.
    """
    t0 = time.perf_counter()
    chunk = chunk_size(source.n_points, source.dim, chunk_frames, memory_mb)
    job.prepare(source)
    from .io.h5md import H5MDWriter

    n_out, dim_out = job.output_shape(source)
    sink = AtomicOutput(output, force=force)
    with sink as tmp:
        writer = H5MDWriter(
            str(tmp),
            n_frames=source.n_frames,
            n_points=n_out,
            dim=dim_out,
            length_unit=source.length_unit,
            has_box=source.has_box,
            atom_indices=job.output_atom_indices(source),
            positions=job.writes_positions,
        )
        try:
            job.declare(writer, source)
            for start in range(0, source.n_frames, chunk):
                stop = min(start + chunk, source.n_frames)
                block = source.read(start, stop)
                try:
                    result = job.process(block)
                except DataError as err:
                    # the API numbers frames within the block; report the source frame
                    if getattr(err, "frame", None) is None:
                        raise
                    raise nonfinite_error("the input", int(block.frames[err.frame])) from None
                writer.write_block(
                    start, block.frames, block.times, result.coords, block.box, **result.extra
                )
                if progress is not None:
                    progress(stop - start)
                _signals.check()
            params = {"source": source.spec.as_dict(), "chunk_frames": chunk}
            params.update(job.parameters())
            writer.write_provenance(
                argv=list(argv if argv is not None else sys.argv),
                inputs=[*source.spec.paths, *([source.spec.top] if source.spec.top else [])],
                parameters=params,
            )
        finally:
            writer.close()
    return {
        "output": str(sink.target),
        "frames": source.n_frames,
        "atoms": n_out,
        "dim": dim_out,
        "method": job.method,
        "seconds": round(time.perf_counter() - t0, 3),
        "warnings": list(job.warnings),
    }
