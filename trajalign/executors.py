"""Where blocks are processed: in this process (serial) or on a Dask cluster.

Tasks carry the source's :class:`~trajalign.io.SourceSpec` (paths and options), the job
and a frame range, never open files or Universes: each worker reopens the input once and
keeps it for its later blocks. Results come back per block; the driver in
:mod:`trajalign.pipeline` is the only writer of the output.

A worker on the driver's own machine (every worker of a local cluster) hands the large
arrays of a block over as files in ``/dev/shm`` instead of sending them through Dask: the
driver maps them and removes the names at once. Sending tens of MB per block through the
scheduler's TCP connection made the driver, not the workers, the bottleneck.
"""

from __future__ import annotations

import mmap
import os
import secrets
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ._validate import nonfinite_error
from .errors import ClusterError, DataError


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
        if getattr(err, "frame", None) is None:
            raise
        raise nonfinite_error("the input", int(block.frames[err.frame])) from None
    return BlockOutput(index, start, block.frames, block.times, block.box, result, block.repair)


class SerialExecutor:
    """Process blocks one after the other in this process (Numba threads inside)."""

    name = "serial"

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map_blocks(self, source, job, blocks: Iterable[tuple[int, int, int]]) -> Iterator:
        for index, start, stop in blocks:
            yield process_block(source, job, index, start, stop)


# ------------------------------------------------------- shared-memory hand-over

_SHM_DIR = "/dev/shm"
#: arrays smaller than this travel with the task result (a file costs more than it saves)
_SHM_MIN_BYTES = 1 << 20


@dataclass(frozen=True)
class _SharedArray:
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
    if not (os.path.isdir(_SHM_DIR) and os.access(_SHM_DIR, os.W_OK)):
        return None
    return f"{socket.gethostname()}/{boot}"


def _write_shared(arr: np.ndarray, path: str) -> _SharedArray | None:
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
    return _SharedArray(path, arr.shape, arr.dtype.str)


def _read_shared(ref: _SharedArray) -> np.ndarray:
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


def _export(out: BlockOutput, prefix: str, min_bytes: int = _SHM_MIN_BYTES) -> BlockOutput:
    """Move the arrays of at least ``min_bytes`` of a block's result to files named
    ``prefix-...`` in /dev/shm (those that do not fit stay in the result)."""
    result = out.result
    named = {"coords": result.coords, **result.extra}
    moved = {}
    for k, arr in named.items():
        if isinstance(arr, np.ndarray) and arr.nbytes >= min_bytes:
            ref = _write_shared(arr, f"{_SHM_DIR}/{prefix}-{out.index}-{k}")
            if ref is not None:
                moved[k] = ref
    if moved:
        result.coords = moved.pop("coords", result.coords)
        result.extra = {**result.extra, **moved}
    return out


def _import(out: BlockOutput) -> BlockOutput:
    """Replace the file references of a block's result by the mapped arrays."""
    result = out.result
    if isinstance(result.coords, _SharedArray):
        result.coords = _read_shared(result.coords)
    for k, v in result.extra.items():
        if isinstance(v, _SharedArray):
            result.extra[k] = _read_shared(v)
    return out


def _sweep(prefix: str) -> None:
    """Remove files a run left in /dev/shm (blocks finished but never collected)."""
    import glob

    for path in glob.glob(f"{_SHM_DIR}/{prefix}-*"):
        try:
            os.unlink(path)
        except OSError:
            pass


# ----------------------------------------------------------------------------- Dask

_WORKER_SOURCES: dict = {}


def _dask_task(spec, job, index, start, stop, threads, shm=None, anchor=None):
    """Runs on a worker: reopen the source by path (once per worker) and process a block.

    ``shm`` is (host token, file prefix, minimum bytes) of the driver: a worker on the
    same machine hands the block's large arrays over as files (see :func:`_export`).
    """
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    source = _WORKER_SOURCES.get(spec)
    if source is None:
        from .io import open_source

        source = _WORKER_SOURCES[spec] = open_source(**spec.as_dict())
    out = process_block(source, job, index, start, stop, {start: anchor} if anchor else None)
    if shm is not None and shm[0] == host_token():
        out = _export(out, shm[1], shm[2])
    return out


def _warm_worker() -> None:
    """Import what every task needs while the driver is still opening its input."""
    import MDAnalysis  # noqa: F401
    import numba  # noqa: F401

    from . import align, internal  # noqa: F401
    from .io import sources  # noqa: F401


class DaskExecutor:
    """Process blocks on Dask workers.

    Parameters
    ----------
    workers : int, optional
        Start a ``distributed.LocalCluster`` with this many single-threaded worker
        processes on this machine.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``), e.g. from dask-jobqueue.
    scheduler_file : str, optional
        Scheduler file written by ``dask scheduler --scheduler-file`` or dask-mpi.
    timeout : float
        Seconds to wait for the scheduler before giving up.
    """

    name = "dask"

    def __init__(self, workers=None, scheduler=None, scheduler_file=None, timeout=10.0):
        self.workers, self.scheduler, self.scheduler_file = workers, scheduler, scheduler_file
        self.timeout = timeout
        self.client = None
        self.cluster = None
        self._starting: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self._prefixes: list[str] = []

    def start(self) -> None:
        """Begin connecting (or starting the local cluster) in the background.

        Called before the input is opened, so the cluster's start-up and the workers'
        imports overlap the driver's own. Until a local cluster is up, :meth:`map_blocks`
        processes blocks in this process instead of waiting for it.
        """
        if self._starting is None and self.client is None:
            self._starting = threading.Thread(target=self._start_bg, daemon=True)
            self._starting.start()

    def _start_bg(self) -> None:
        try:
            self._connect()
            if self.cluster is not None:
                self.client.run(_warm_worker)
        except BaseException as exc:  # re-raised in the main thread by _wait_started
            self._start_error = exc

    def _wait_started(self) -> None:
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        if self._start_error is not None:
            err, self._start_error = self._start_error, None
            raise err

    def __enter__(self):
        if self._starting is None and self.client is None:
            self._connect()
        return self

    def _connect(self) -> None:
        import logging

        from distributed import Client, LocalCluster

        where = self.scheduler or self.scheduler_file
        try:
            if self.scheduler or self.scheduler_file:
                if self.scheduler_file and not os.path.exists(self.scheduler_file):
                    raise ClusterError(
                        f"scheduler file {self.scheduler_file} does not exist",
                        "start the scheduler first (dask scheduler --scheduler-file FILE)",
                    )
                self.client = Client(
                    self.scheduler,
                    scheduler_file=self.scheduler_file,
                    timeout=f"{self.timeout}s",
                    set_as_default=False,
                )
            else:
                where = f"a local cluster of {self.workers} workers"
                self.cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self.client = Client(self.cluster, set_as_default=False)
        except ClusterError:
            raise
        except (OSError, TimeoutError, ValueError) as exc:
            self._disconnect()
            raise ClusterError(
                f"cannot reach the Dask scheduler at {where} within {self.timeout:g} s "
                f"({type(exc).__name__}: {exc})",
                "check the address or scheduler file and that the scheduler is running",
            ) from None

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        """Stop the local cluster / disconnect; safe to call more than once."""
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        self._start_error = None
        self._disconnect()
        # a block that finished after its run was cancelled may have left a file
        for prefix in self._prefixes:
            _sweep(prefix)
        self._prefixes.clear()

    def _disconnect(self) -> None:
        for obj in (self.client, self.cluster):
            try:
                if obj is not None:
                    obj.close()
            except Exception:
                pass
        self.client = self.cluster = None

    def _threads_per_task(self) -> int:
        info = self.client.scheduler_info(n_workers=-1) if self.client else {}
        workers = info.get("workers", {}) or {1: {}}
        cores = os.cpu_count() or 1
        return max(1, cores // max(1, len(workers))) if self.cluster else 1

    def map_blocks(self, source, job, blocks: Iterable[tuple[int, int, int]]) -> Iterator:
        from distributed import as_completed

        pending = list(blocks)[::-1]  # popped from the end: frame order
        # nojump's state at each block start, found by one pass in frame order: blocks
        # then run anywhere, in any order, with identical results
        anchors = source.nojump_anchors([start for _, start, _ in pending])
        # Starting local workers takes seconds (a Python process each, importing Dask,
        # MDAnalysis, Numba): the driver works through the first blocks meanwhile. A
        # remote cluster is not raced: its blocks are meant to run on its nodes.
        while pending and self.workers and self._starting is not None:
            if not self._starting.is_alive():
                break
            yield process_block(source, job, *pending.pop(), anchors)
        self._wait_started()
        if pending:
            with self.client.as_current():
                yield from self._map_blocks(source, job, pending, as_completed, anchors)

    def _map_blocks(self, source, job, pending, as_completed, anchors) -> Iterator:
        threads = self._threads_per_task()
        job_f = self.client.scatter(job, broadcast=True, hash=False)
        token = host_token()
        shm = None
        if token is not None:
            shm = (token, f"trajalign-{os.getpid()}-{secrets.token_hex(4)}", _SHM_MIN_BYTES)
            self._prefixes.append(shm[1])
        # a bounded window of tasks in flight: finished blocks wait in worker memory until
        # the driver has written them, so submitting everything at once would hold the
        # whole trajectory there when the writer is the slower side
        window = max(4, 2 * self._n_workers())

        in_flight = set()

        def submit():
            index, start, stop = pending.pop()
            fut = self.client.submit(
                _dask_task,
                source.spec,
                job_f,
                index,
                start,
                stop,
                threads,
                shm,
                anchors.get(start),
                pure=False,
            )
            in_flight.add(fut)
            return fut

        running = as_completed([submit() for _ in range(min(window, len(pending)))])
        # a local worker's first task opens the input and loads the kernels (~0.5 s);
        # until its first block arrives, the driver goes on processing blocks itself
        local = bool(self.workers)
        try:
            while True:
                if local and pending and not running.has_ready():
                    yield process_block(source, job, *pending.pop(), anchors)
                    continue
                try:
                    fut = next(running)
                except StopIteration:
                    break
                local = False
                try:
                    out = _import(fut.result())
                except Exception as exc:
                    if isinstance(exc, DataError | ClusterError) or _is_trajalign(exc):
                        raise
                    raise ClusterError(
                        f"a Dask task failed ({type(exc).__name__}: {exc})",
                        "no partial block was written; fix the cause and rerun with --resume",
                    ) from None
                in_flight.discard(fut)
                fut.release()  # let the worker drop the result
                if pending:
                    running.add(submit())
                yield out
        finally:
            for fut in in_flight:
                fut.cancel()
            if shm is not None:
                _sweep(shm[1])

    def _n_workers(self) -> int:
        info = self.client.scheduler_info(n_workers=-1)
        return max(1, len(info.get("workers", {})))


def _is_trajalign(exc: BaseException) -> bool:
    from .errors import TrajalignError

    return isinstance(exc, TrajalignError)


def make_executor(workers=None, scheduler=None, scheduler_file=None):
    """The serial executor, or a Dask one when any cluster option is given."""
    if workers is None and scheduler is None and scheduler_file is None:
        return SerialExecutor()
    if workers is not None and workers < 1:
        from .errors import ParameterError

        raise ParameterError(f"--workers {workers} is not positive", "use 1 or more workers")
    return DaskExecutor(workers=workers, scheduler=scheduler, scheduler_file=scheduler_file)
