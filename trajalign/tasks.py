"""What a worker process runs, below both the executors and the worker pool.

A task carries a source's spec, a job and a frame range; :func:`run_task` reopens the
source once per worker process (kept in :data:`WORKER_SOURCES`) and processes the block.
A worker on the driver's machine hands the large arrays of a block over as files in
``/dev/shm`` (:func:`export_arrays`), which the driver maps and unlinks
(:func:`import_arrays`): sending tens of MB per block through a pipe or Dask's TCP
connection made the driver, not the workers, the bottleneck.
"""

from __future__ import annotations

import mmap
import os
import socket
from dataclasses import dataclass

import numpy as np

from ._validate import nonfinite_error
from .errors import DataError

__all__ = [
    "SHM_DIR",
    "SHM_MIN_BYTES",
    "WORKER_SOURCES",
    "BlockOutput",
    "SharedArray",
    "export_arrays",
    "host_token",
    "import_arrays",
    "process_block",
    "read_shared",
    "run_task",
    "sweep",
    "write_shared",
]


@dataclass
class BlockOutput:
    """A processed block: its place in the output and the job's result (no input coords)."""

    index: int
    start: int
    frames: np.ndarray
    times: np.ndarray
    box: np.ndarray | None
    result: object  # pipeline.BlockResult
    repair: dict | None = None  # the periodic repair's counts (trajalign.pbc)


def process_block(
    source, job, index: int, start: int, stop: int, anchors: dict | None = None
) -> BlockOutput:
    """Read frames ``[start, stop)`` of ``source`` and run ``job`` on them.

    ``anchors`` maps block starts to nojump's state there (see
    :meth:`~trajalign.io.sources.Source.nojump_anchors`), for blocks not read in order.
    """
    if anchors and start in anchors:
        source._repair.set_anchor(start, anchors[start])
    block = source.read(start, stop)
    try:
        result = job.process(block)
    except DataError as err:
        # the API numbers frames within the block; report the source frame
        if err.frame is None:
            raise
        raise nonfinite_error("the input", int(block.frames[err.frame])) from None
    return BlockOutput(index, start, block.frames, block.times, block.box, result, block.repair)


# ------------------------------------------------------- shared-memory hand-over

SHM_DIR = "/dev/shm"
#: arrays smaller than this travel with the task result (a file costs more than it saves)
SHM_MIN_BYTES = 1 << 20


@dataclass(frozen=True)
class SharedArray:
    """A block's array left by a worker in a file under ``/dev/shm``."""

    path: str
    shape: tuple
    dtype: str


def host_token() -> str | None:
    """This machine and boot: equal tokens share ``/dev/shm``. None where there is none."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        return None
    if not (os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)):
        return None
    return f"{socket.gethostname()}/{boot}"


def write_shared(arr: np.ndarray, path: str) -> SharedArray | None:
    """Write ``arr`` to a new file ``path``; None (and no file) if that fails (full)."""
    arr = np.ascontiguousarray(arr)
    view = memoryview(arr.reshape(-1).view(np.uint8))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return None
    try:
        done = 0
        while done < len(view):  # write() may stop short of the whole buffer
            done += os.write(fd, view[done:])
    except OSError:
        os.close(fd)
        os.unlink(path)
        return None
    os.close(fd)
    return SharedArray(path, arr.shape, arr.dtype.str)


def read_shared(ref: SharedArray) -> np.ndarray:
    """Map a worker's file and remove its name: the memory lives as long as the array."""
    fd = os.open(ref.path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        mm = mmap.mmap(fd, size) if size else None
    finally:
        os.close(fd)
        os.unlink(ref.path)
    if mm is None:
        return np.empty(ref.shape, dtype=ref.dtype)
    return np.frombuffer(mm, dtype=ref.dtype).reshape(ref.shape)


def export_arrays(out: BlockOutput, prefix: str, min_bytes: int = SHM_MIN_BYTES) -> BlockOutput:
    """Move the arrays of at least ``min_bytes`` of a block's result to files named
    ``prefix-...`` in /dev/shm (those that do not fit stay in the result)."""
    result = out.result
    named = {"coords": result.coords, **result.extra}
    moved = {}
    for k, arr in named.items():
        if isinstance(arr, np.ndarray) and arr.nbytes >= min_bytes:
            ref = write_shared(arr, f"{SHM_DIR}/{prefix}-{out.index}-{k}")
            if ref is not None:
                moved[k] = ref
    if moved:
        result.coords = moved.pop("coords", result.coords)
        result.extra = {**result.extra, **moved}
    return out


def import_arrays(out: BlockOutput) -> BlockOutput:
    """Replace the file references of a block's result by the mapped arrays."""
    result = out.result
    if isinstance(result.coords, SharedArray):
        result.coords = read_shared(result.coords)
    for k, v in result.extra.items():
        if isinstance(v, SharedArray):
            result.extra[k] = read_shared(v)
    return out


def sweep(prefix: str) -> None:
    """Remove files a run left in /dev/shm (blocks finished but never collected)."""
    import glob

    for path in glob.glob(f"{SHM_DIR}/{prefix}-*"):
        try:
            os.unlink(path)
        except OSError:
            pass


WORKER_SOURCES: dict = {}


def run_task(spec, job, index, start, stop, shm=None, anchor=None, after=None) -> BlockOutput:
    """Runs in a worker process: reopen the source by its spec (once per worker) and
    process a block.

    ``shm`` is (host token, file prefix, minimum bytes) of the driver: a worker on the
    same machine hands the block's large arrays over as files (see :func:`export_arrays`).
    ``after``: (start, stop) of the block this worker does next, if known.
    """
    source = WORKER_SOURCES.get(spec)
    if source is None:
        from .io import open_source

        for old in WORKER_SOURCES.values():  # a new run's input: close the last one's
            old.close()
        WORKER_SOURCES.clear()
        source = WORKER_SOURCES[spec] = open_source(**spec.as_dict())
    source.expect(*(after or (None, None)))
    out = process_block(source, job, index, start, stop, {start: anchor} if anchor else None)
    if shm is not None and shm[0] == host_token():
        out = export_arrays(out, shm[1], shm[2])
    return out
