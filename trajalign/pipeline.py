"""Blocks of frames flow source -> job -> HDF5 sink.

A :class:`Job` is what a command does: it declares its datasets once, then turns each
:class:`~trajalign.io.Block` into aligned coordinates and per-frame extras. The driver
:func:`run` is the only writer of the output file, and the file appears at the output
path only when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _signals
from ._names import RESUME
from ._version import __version__
from .errors import ClusterLost, KeepsPartial, OutputError, ParameterError, ResumeError
from .io.output import move_into_place, prepare_output

__all__ = [
    "DEFAULT_MEMORY_MB",
    "FLUSH_SECONDS",
    "BlockResult",
    "chunk_size",
    "Job",
    "partial_path",
    "pbc_summary",
    "run",
    "run_key",
]

DEFAULT_MEMORY_MB = 256
# bytes held per coordinate of a block: the float32 input, the output, float64 scratch,
# and the previous block's output while it is written behind (see _WriteBehind)
_BYTES_PER_COORD = 4 + 4 + 8 + 4


def chunk_size(
    n_points: int,
    dim: int,
    chunk_frames: int | None,
    memory_mb: float | None,
    extra_bytes: int = 0,
) -> int:
    """Frames per block: ``chunk_frames`` if given, else what fits in ``memory_mb``
    (``extra_bytes``: what a job holds per frame beyond the coordinates)."""
    if chunk_frames is not None:
        if chunk_frames < 1:
            raise ParameterError(
                f"--chunk-frames {chunk_frames} is not positive", "use 1 or more frames per block"
            )
        return int(chunk_frames)
    mb = DEFAULT_MEMORY_MB if memory_mb is None else memory_mb
    if not mb > 0:
        raise ParameterError(f"--memory {memory_mb} is not positive", "give a budget in MB")
    per_frame = n_points * dim * _BYTES_PER_COORD + max(int(extra_bytes), 0)
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
    #: False where the written positions no longer lie in the input's periodic box
    #: (rotated frames): the box is then kept as provenance, not as the output's cell
    positions_in_input_box: bool = True

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def __setstate__(self, state: dict) -> None:
        # Dask delivers a scattered job's arrays read-only, and Numba compiles read-only
        # arrays into a separate specialization whose fast-math reductions may round
        # differently; writable copies keep a Dask run bit-identical to a serial one
        for key, value in state.items():
            if isinstance(value, np.ndarray) and not value.flags.writeable:
                state[key] = value.copy()
        self.__dict__.update(state)

    def output_shape(self, source) -> tuple[int, int]:
        """(points, dim) of the written coordinates."""
        return source.n_points, source.dim

    def output_atom_indices(self, source) -> np.ndarray:
        """Source indices of the written points (``/trajalign/atom_indices``)."""
        return source.atom_indices

    def prepare(self, source) -> None:
        """Validate parameters against the source, run reduce passes. Before any output."""

    def frame_bytes(self, source) -> int:
        """Bytes the job's results take per frame beyond the coordinates (after
        :meth:`prepare`); sizes blocks when ``--chunk-frames`` is not given."""
        return 0

    def declare(self, writer, source) -> None:
        """Create the job's datasets in the writer."""

    def process(self, block) -> BlockResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def parameters(self) -> dict:
        return {"method": self.method}

    #: ``--each``: the job shares something over the dataset (:meth:`dataset_state`)
    shares_dataset: bool = False

    def dataset_state(self, sources) -> object:
        """``--each``: what every input's job shares, found once over the dataset (after
        :meth:`prepare` on the first input; ``sources()`` opens each input in turn). None
        where the job shares nothing (each input is then exactly a run on it alone)."""
        return None

    def use_dataset_state(self, state: object) -> None:
        """``--each``: take :meth:`dataset_state` of the dataset before :meth:`prepare`."""

    #: True when a block's result depends on the block before it (principal axes with
    #: ``--sign continuity``): blocks are then processed independently, and the driver
    #: calls :meth:`stitch` on each in frame order, after the previous one is written.
    #: Otherwise :meth:`stitch` is called on blocks as they arrive.
    ordered: bool = False

    def finalize(self, writer) -> None:
        """Called in the driver once every block is written, before the provenance
        (post-passes over the output, such as jump diagnostics)."""

    def collect(self, result: BlockResult) -> None:
        """Called in the driver for every written block (tallies for the summary)."""

    def stitch(self, result: BlockResult, writer, start: int) -> BlockResult:
        """In the driver, before a block is written: adjust its result to the frames
        written before ``start`` (ordered jobs), or take note of it (tallies)."""
        return result


def partial_path(target: Path) -> Path:
    """Where a run builds its output: beside the target, hidden, known to ``--resume``."""
    return target.parent / f".{target.name}.partial"


def run_key(source, job: Job, chunk: int) -> str:
    """Hash of everything that fixes a run's result: inputs, options, job, block size."""
    inputs = []
    for p in [*source.spec.paths, *([source.spec.top] if source.spec.top else [])]:
        st = os.stat(p)
        inputs.append([os.path.abspath(p), st.st_size, st.st_mtime_ns])
    blob = json.dumps(
        {
            "version": __version__,
            # the XTC reader changes no bit of the result: a run may resume with the other
            "source": {k: v for k, v in source.spec.as_dict().items() if k != "xtc_reader"},
            "inputs": inputs,
            "job": job.parameters(),
            "chunk": chunk,
            "frames": source.n_frames,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _open_partial(partial: Path, key: str, n_blocks: int, locking=None):
    """Reopen ``partial`` for ``--resume``; returns (writer, done mask) or None to start anew.

    The key is checked with the file opened read-only, so a refused resume leaves the
    partial output exactly as it was.
    """
    import h5py

    from .io.h5md import H5MDWriter

    try:
        with h5py.File(partial, "r", locking=locking) as f:
            g = f.get(RESUME)
            found = None if g is None else g.attrs.get("key")
            done = None if g is None else g["done"][()].astype(bool)
    except BlockingIOError:
        raise _busy(partial) from None
    except (OSError, KeyError):
        return None  # killed while HDF5 metadata was being written: start over
    if found != key:
        raise ResumeError(
            f"the partial output {partial} was made by a run with other parameters or inputs",
            "rerun exactly the same command with --resume, or without --resume to start over",
        )
    if done.size != n_blocks:
        raise ResumeError(f"the partial output {partial} has another block layout", "start over")
    try:
        return H5MDWriter.reopen(str(partial), locking=locking), done
    except BlockingIOError:
        raise _busy(partial) from None
    except (OSError, KeyError):
        return None


def _resumed_chunk(partial: Path, chunk: int, locking) -> int:
    """The block size of the partial output ``--resume`` continues (``chunk`` if there
    is none to read): the run key then matches also when ``--workers`` changed."""
    import h5py

    if not partial.exists():
        return chunk
    try:
        with h5py.File(partial, "r", locking=locking) as f:
            return int(f[RESUME].attrs.get("chunk", chunk))
    except (OSError, KeyError, ValueError):
        return chunk  # busy, or unreadable: the run's own checks say so


def _refuse_if_busy(partial: Path, locking) -> None:
    """Raise if another process holds HDF5's write lock on ``partial``."""
    import h5py

    try:
        h5py.File(partial, "r", locking=locking).close()
    except BlockingIOError:
        raise _busy(partial) from None
    except OSError:
        pass  # unreadable: left by a run killed mid-write


def _busy(partial: Path) -> OutputError:
    """The temporary output is locked: another run is writing the same output now."""
    target = partial.parent / partial.name[1 : -len(".partial")]
    return OutputError(
        f"another run is writing {target} now (its temporary file {partial.name} is locked)",
        "wait for that run to finish, or give another -o",
    )


class _WriteBehind:
    """Writes blocks in one background thread while the driver reads the next.

    HDF5 writes release the GIL (h5py), so they overlap reading and processing the next
    block. At most one block waits; the blocks written are listed in ``written``
    for the next checkpoint. A write error is raised in the driver's thread by the next
    :meth:`submit` or :meth:`drain`.
    """

    def __init__(self, writer) -> None:
        import queue
        import threading

        self.writer = writer
        self.written: list[int] = []
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._loop, name="trajalign-write", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                index, args, extra = item
                if self.error is None:  # after a failure, nothing more is written
                    self.writer.write_block(*args, **extra)
                    self.written.append(index)
            except BaseException as err:
                self.error = err
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self.error is not None:  # stays set: later blocks are not written either
            raise self.error

    def submit(self, index: int, *args, **extra) -> None:
        self._raise()
        self._queue.put((index, args, extra))

    def drain(self, check: bool = True) -> None:
        """Wait until every submitted block is written (raise a write error)."""
        self._queue.join()
        if check:
            self._raise()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


#: seconds between checkpoints of a partial output; a SIGKILL loses at most this much work
FLUSH_SECONDS = float(os.environ.get("TRAJALIGN_FLUSH_SECONDS", "2.0"))


def _checkpoint(writer, done_ds, behind: _WriteBehind, check: bool = True) -> float:
    """Flush the written blocks to disk, then mark them done (and flush that)."""
    behind.drain(check)
    writer.flush()
    written, behind.written = behind.written, []
    for i in written:
        done_ds[i] = 1
    writer.flush()
    return time.perf_counter()


class _Run:
    """One run of a job into one output, in the stages :func:`run` calls in order.

    :meth:`open_output` (a new partial output, or the one ``--resume`` continues),
    :meth:`stream` (blocks through the executor into the writer, with checkpoints),
    :meth:`finalize` (post-passes and provenance), :meth:`commit` (rename into place).
    :meth:`stop_kept` and :meth:`close` are the ways out.
    """

    def __init__(self, source, job: Job, target: Path, chunk: int, locking) -> None:
        self.source, self.job, self.target, self.chunk = source, job, target, chunk
        self.locking = locking
        self.partial = partial_path(target)
        starts = list(range(0, source.n_frames, chunk))
        self.blocks = [(i, s, min(s + chunk, source.n_frames)) for i, s in enumerate(starts)]
        self.key = run_key(source, job, chunk)
        self.writer = None
        self.done = np.zeros(len(self.blocks), dtype=bool)
        self.done_ds = None
        self.behind: _WriteBehind | None = None
        self.resumed = False
        self.repaired: dict[str, int] = {}
        self.pbc: dict = {}

    # ------------------------------------------------------------------ open

    def open_output(self, resume: bool) -> None:
        """Reopen the partial output (``resume``) or create a new one."""
        from .io.h5md import H5MDWriter

        opened = None
        if resume and self.partial.exists():
            opened = _open_partial(self.partial, self.key, len(self.blocks), self.locking)
        if opened is not None:
            self.writer, self.done = opened
            self.resumed = True
            self.job.warnings.append(
                f"resumed: {int(self.done.sum())} of {len(self.blocks)} blocks were done"
            )
        else:
            if resume:
                why = (
                    "is unreadable (killed mid-write)"
                    if self.partial.exists()
                    else "does not exist"
                )
                self.job.warnings.append(f"--resume: the partial output {why}; starting over")
            if self.partial.exists():  # a killed run's (one being written now is refused)
                _refuse_if_busy(self.partial, self.locking)
                self.partial.unlink(missing_ok=True)
            source, job = self.source, self.job
            n_out, dim_out = job.output_shape(source)
            try:
                self.writer = H5MDWriter(
                    str(self.partial),
                    n_frames=source.n_frames,
                    n_points=n_out,
                    dim=dim_out,
                    length_unit=source.length_unit,
                    has_box=source.has_box,
                    box_is_provenance=not job.positions_in_input_box,
                    atom_indices=job.output_atom_indices(source),
                    positions=job.writes_positions,
                    locking=self.locking,
                    exclusive=True,
                )
            except FileExistsError:  # another run created it since the check above
                raise _busy(self.partial) from None
            try:
                job.declare(self.writer, source)
                g = self.writer.f.create_group(RESUME)
                g.attrs["key"] = self.key
                g.attrs["chunk"] = self.chunk
                g.create_dataset("done", data=self.done.astype(np.uint8))
                self.writer.flush()
            except Exception:  # a stop (Ctrl-C) keeps it: resume then starts over
                self.close(discard=True)
                raise
        self.done_ds = self.writer.f["trajalign/resume/done"]

    # ---------------------------------------------------------------- stream

    def stream(self, executor, progress) -> None:
        """Process the blocks not done yet and write each at its offset."""
        job, blocks, done = self.job, self.blocks, self.done
        todo = [b for b in blocks if not done[b[0]]]
        if progress is not None and done.any():
            progress(int(sum(stop - start for i, start, stop in blocks if done[i])))
        waiting: dict[int, object] = {}
        order = [b[0] for b in todo]
        last_flush = time.perf_counter()
        self.behind = behind = _WriteBehind(self.writer)
        with executor:
            for out in executor.map_blocks(self.source, job, todo):
                waiting[out.index] = out
                # ordered jobs write strictly in frame order; others as blocks arrive
                ready = []
                if job.ordered:
                    while order and order[0] in waiting:
                        ready.append(waiting.pop(order.pop(0)))
                else:
                    ready.append(waiting.pop(out.index))
                for o in ready:
                    if job.ordered:  # stitching reads the frames written before
                        behind.drain()
                    result = job.stitch(o.result, self.writer, o.start)
                    behind.submit(
                        o.index, o.start, o.frames, o.times, result.coords, o.box, **result.extra
                    )
                    job.collect(result)
                    for k, v in (o.repair or {}).items():
                        self.repaired[k] = self.repaired.get(k, 0) + v
                    if progress is not None:
                        progress(len(o.frames))
                if time.perf_counter() - last_flush > FLUSH_SECONDS:
                    last_flush = self.checkpoint()
                _signals.check()
        behind.drain()

    def checkpoint(self, check: bool = True) -> float:
        """Flush the written blocks to disk, then mark them done (and flush that)."""
        return _checkpoint(self.writer, self.done_ds, self.behind, check)

    # --------------------------------------------------------------- finish

    def finalize(self, argv, hashes) -> None:
        """The job's post-passes, the provenance; the output is no longer resumable."""
        source, job = self.source, self.job
        job.finalize(self.writer)
        params = {"source": source.spec.as_dict(), "chunk_frames": self.chunk}
        params.update(job.parameters())
        self.pbc = pbc_summary(source, self.repaired, resumed=self.resumed)
        job.warnings.extend(self.pbc.pop("warnings"))
        params["pbc"] = self.pbc
        self.writer.write_provenance(
            argv=list(argv if argv is not None else sys.argv),
            inputs=_inputs(source),
            parameters=params,
            hashes=hashes,
        )
        del self.writer.f[RESUME]

    def execute(self, executor, progress, resume: bool, argv, hashes) -> None:
        """Open (or resume) the partial output, stream every block, finalize; on the way
        out keep the partial output for a stop, delete it for an error."""
        discard = False  # a refused resume leaves the partial output as it was
        try:
            self.open_output(resume)
            discard = True
            self.stream(executor, progress)
            self.finalize(argv, hashes)
            discard = False
        except (KeyboardInterrupt, _signals.Terminated) as stop:
            discard = False
            if isinstance(stop, KeepsPartial):
                self.stop_kept(stop)
                raise
            # Ctrl-C without trajalign's handler (a library caller): the same stop, with
            # room for what it kept
            kept = _signals.Interrupted(*stop.args)
            self.stop_kept(kept)
            raise kept from stop
        except ClusterLost as lost:
            # the cluster, not the data, failed: what is written stays for --resume
            discard = False
            self.stop_kept(lost)
            _hint_kept(lost)
            raise
        except OSError as err:
            # h5py reports a full disk or a failing device as OSError while writing
            raise OutputError(
                f"writing the output failed: {err}",
                f"check free space and permissions in {self.target.parent}",
            ) from None
        finally:
            self.close(discard)

    def stop_kept(self, stop: KeepsPartial) -> None:
        """Ctrl-C/SIGTERM/a lost cluster: checkpoint what is written and note it on the
        exception."""
        if self.writer is None:
            return  # stopped before the partial output existed: nothing to keep
        if self.behind is not None:
            self.checkpoint(check=False)  # what is written is kept
        done = self.done_ds[()] if self.done_ds is not None else self.done
        stop.keep(str(self.partial), int(np.asarray(done).sum()), len(self.blocks))

    def close(self, discard: bool) -> None:
        """Stop the writer thread, close the file; ``discard`` deletes the partial output."""
        if self.behind is not None:
            self.behind.drain(check=False)
            self.behind.close()
            self.behind = None
        try:
            if self.writer is not None:
                self.writer.close()
        except OSError:
            pass
        if discard:
            self.partial.unlink(missing_ok=True)

    def commit(self, before_commit) -> None:
        """Outputs made from the finished file, then rename it to the target."""
        if before_commit is not None:
            try:
                before_commit(str(self.partial))
            except BaseException:
                self.partial.unlink(missing_ok=True)
                raise
        move_into_place(self.partial, self.target)


def _inputs(source) -> list[str]:
    return [*source.spec.paths, *([source.spec.top] if source.spec.top else [])]


def run(
    source,
    job: Job,
    output: str,
    force: bool = False,
    chunk_frames: int | None = None,
    memory_mb: float | None = None,
    argv: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
    executor=None,
    resume: bool = False,
    hdf5_locking: bool | str | None = None,
    before_commit: Callable[[str], None] | None = None,
) -> dict:
    """Run ``job`` over every frame of ``source`` and write ``output``.

    The output is built in ``.<name>.partial`` beside the target, block by block, each
    block marked done after it is flushed. On success the partial file is renamed to
    the target; on an error it is deleted; on Ctrl-C/SIGTERM it is kept, and the same
    command with ``resume=True`` continues from the finished blocks. One run at a time
    builds a given output: a lock file ``.<name>.lock`` beside it (see
    :class:`trajalign.io.output.RunLock`) refuses a second, whatever the filesystem.

    Parameters
    ----------
    source : Source
        From :func:`trajalign.io.open_source`.
    job : Job
        What to do with each block.
    output : str
        HDF5 file to write; an existing file is replaced only with ``force``.
    chunk_frames, memory_mb : optional
        Frames per block, or the memory budget that sets it.
    argv : list of str, optional
        Recorded in the provenance (default ``sys.argv``).
    progress : callable, optional
        Called with the number of frames of each written block.
    executor : SerialExecutor, LocalExecutor or DaskExecutor, optional
        Where blocks are processed (default: serially, in this process).
    resume : bool
        Continue a partial output left by an interrupted run of the same command.
    hdf5_locking : bool or "best-effort", optional
        HDF5 file locking of the output; False for filesystems without locks (some
        Lustre/NFS mounts). None follows the environment (``HDF5_USE_FILE_LOCKING``).
    before_commit : callable, optional
        Called with the path of the finished (closed) temporary output before it is
        renamed to ``output``, for outputs made from it (``--write-traj``); if it raises,
        the temporary output is deleted and an existing ``output`` stays as it was.

    Returns
    -------
    dict
        The run summary: output, frames, atoms, dim, method, seconds, warnings.
    """
    from .executors import SerialExecutor
    from .io.h5md import BackgroundHashes
    from .io.output import RunLock

    t0 = time.perf_counter()
    chunk = chunk_size(source.n_points, source.dim, chunk_frames, memory_mb)
    target = prepare_output(output, force=force)
    hashes = BackgroundHashes(_inputs(source))  # the provenance's checksums, beside the work
    job.prepare(source)
    extra = job.frame_bytes(source)
    if extra and chunk_frames is None:  # size blocks for what the job holds per frame
        chunk = chunk_size(source.n_points, source.dim, None, memory_mb, extra)
    executor = executor or SerialExecutor()
    if chunk_frames is None:
        chunk = _spread_chunk(chunk, source.n_frames, executor, resume, target, hdf5_locking)
    r = _Run(source, job, target, chunk, hdf5_locking)
    with RunLock(target):
        r.execute(executor, progress, resume, argv, hashes)
        r.commit(before_commit)
    n_out, dim_out = job.output_shape(source)
    return {
        "output": str(target),
        "frames": source.n_frames,
        "atoms": n_out,
        "dim": dim_out,
        "method": job.method,
        "seconds": round(time.perf_counter() - t0, 3),
        "warnings": list(job.warnings),
        "executor": executor.name,
        "pbc": r.pbc,
    }


def _spread_chunk(chunk: int, n_frames: int, executor, resume: bool, target, locking) -> int:
    """Frames per block when the user gave none, for the executor and a resumed run."""
    # worker processes each take a contiguous share of the blocks (see trajalign.pool):
    # with 8 blocks per worker or more, the shares end within an eighth of one another
    n = getattr(executor, "parallelism", 1)
    if n > 1:
        chunk = min(chunk, max(1, -(-n_frames // (8 * n))))
    if resume:  # continue in the partial output's own blocks, whatever the workers
        chunk = _resumed_chunk(partial_path(target), chunk, locking)
    return chunk


def _hint_kept(lost: ClusterLost) -> None:
    """Add what a lost cluster's run kept, and how to finish it, to the error's hint."""
    kept = (
        f"{lost.blocks_done} of {lost.blocks_total} blocks are kept in {lost.partial}; "
        "rerun the same command with --resume"
    )
    lost.hint = f"{lost.hint}; {kept}" if lost.hint else kept


def pbc_summary(source, counts: dict, resumed: bool = False) -> dict:
    """What the periodic repair did (for the summary, --json and the provenance), and
    the warnings it calls for."""
    out = {"mode": getattr(source, "pbc_mode", "none"), "requested": source.spec.pbc}
    out.update(counts)
    warnings = []
    spread = counts.get("spread_frames", 0)
    if spread:
        has_bonds = getattr(source, "bonds", None) is not None
        fix = (
            "--pbc whole makes its molecules whole"
            if has_bonds
            else "give a topology with bonds or --guess-bonds (arrays: --bonds FILE|chain), "
            "and the default --pbc auto makes its molecules whole"
        )
        warnings.append(
            f"the selection spans more than half the periodic box or has a bond longer than "
            f"half of it in {spread} of {source.n_frames} frames: it may be split across the "
            f"boundary, and fits and distances on it would be wrong ({fix})"
        )
    apart = counts.get("apart_frames", 0)
    if apart:
        n_mol = int(np.unique(source.molecules).size)
        warnings.append(
            f"the selection's {n_mol} molecules, each made whole, sit in different periodic "
            f"images in {apart} of {source.n_frames} frames (if they form one complex, "
            "--pbc cluster or nojump keeps them together)"
        )
    step = source.spec.step or 1
    if out["mode"] == "nojump" and step > 1:
        warnings.append(
            f"--pbc nojump with --step {step} follows each atom from one kept frame to the "
            "next: an atom that moves more than half the box in between is put in the "
            "wrong image (use --step 1, or --pbc cluster, which needs no history)"
        )
    if resumed:
        out["note"] = "counts cover the blocks of this run only"
    out["warnings"] = warnings
    return out
