"""Where blocks are processed: in this process (serial), in worker processes on this
machine (``--workers``, :mod:`trajalign.pool`) or on a Dask cluster (``--scheduler``).

Tasks carry the source's :class:`~trajalign.io.SourceSpec` (paths and options), the job
and a frame range, never open files or Universes: each worker reopens the input once and
keeps it for its later blocks. Results come back per block; the driver in
:mod:`trajalign.pipeline` is the only writer of the output.

A worker on the driver's own machine (every ``--workers`` process) hands the large
arrays of a block over as files in ``/dev/shm`` instead of sending them through Dask: the
driver maps them and removes the names at once. Sending tens of MB per block through the
scheduler's TCP connection made the driver, not the workers, the bottleneck.
"""

from __future__ import annotations

import mmap
import os
import secrets
import socket
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


def _run_task(spec, job, index, start, stop, shm=None, anchor=None) -> BlockOutput:
    """Runs in a worker process: reopen the source by its spec (once per worker) and
    process a block.

    ``shm`` is (host token, file prefix, minimum bytes) of the driver: a worker on the
    same machine hands the block's large arrays over as files (see :func:`_export`).
    """
    source = _WORKER_SOURCES.get(spec)
    if source is None:
        from .io import open_source

        for old in _WORKER_SOURCES.values():  # a new run's input: close the last one's
            old.close()
        _WORKER_SOURCES.clear()
        source = _WORKER_SOURCES[spec] = open_source(**spec.as_dict())
    out = process_block(source, job, index, start, stop, {start: anchor} if anchor else None)
    if shm is not None and shm[0] == host_token():
        out = _export(out, shm[1], shm[2])
    return out


def _dask_task(spec, job, index, start, stop, threads, shm=None, anchor=None):
    """A block on a Dask worker (:func:`_run_task` with the worker's thread count set)."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    return _run_task(spec, job, index, start, stop, shm, anchor)


class LocalExecutor:
    """Process blocks in ``workers`` processes on this machine (:class:`trajalign.pool.Pool`).

    :meth:`start` only starts the fork server, whose imports overlap the driver's; the
    workers themselves start when the run begins (:meth:`__enter__`), after the input
    was opened and checked, so a bad input is reported before any worker exists.
    """

    name = "local"

    def __init__(self, workers: int) -> None:
        from .pool import Pool

        cores = os.cpu_count() or 1
        self.workers = workers
        self.pool = Pool(workers, threads=max(1, cores // workers))
        self._prefixes: list[str] = []

    def start(self) -> None:
        self.pool.prepare()

    def __enter__(self):
        self.pool.fill()
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.pool.forget()  # a failed or stopped run: its blocks in flight are dropped
        return False

    def close(self) -> None:
        self.pool.close()
        for prefix in self._prefixes:
            _sweep(prefix)
        self._prefixes.clear()

    def map_blocks(self, source, job, blocks: Iterable[tuple[int, int, int]]) -> Iterator:
        from .pool import WorkerDied

        blocks = list(blocks)
        anchors = source.nojump_anchors([start for _, start, _ in blocks])
        token = host_token()
        shm = None
        if token is not None:
            shm = (token, f"trajalign-{os.getpid()}-{secrets.token_hex(4)}", _SHM_MIN_BYTES)
            self._prefixes.append(shm[1])
        try:
            for out in self.pool.map(source.spec, job, blocks, anchors, shm):
                yield _import(out)
        except WorkerDied as died:
            _, start, stop = died.block
            raise ClusterError(
                f"worker processes died {_tries()} times while processing frames "
                f"{start}-{stop - 1} ({_exit_reason(died.exitcode)})",
                "check the memory available per worker (fewer --workers or a smaller "
                "--memory), then rerun with --resume",
            ) from None
        finally:
            if shm is not None:
                _sweep(shm[1])


def _tries() -> int:
    from .pool import MAX_TRIES

    return MAX_TRIES


def _exit_reason(code: int | None) -> str:
    """A worker's exit code in words (negative: the signal that ended it)."""
    import signal

    if code is None:
        return "no exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = ", often the kernel's out-of-memory killer" if -code == signal.SIGKILL else ""
        return f"ended by {name}{hint}"
    return f"exit status {code}"


class DaskExecutor:
    """Process blocks on the workers of a running Dask cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``), e.g. from dask-jobqueue.
    scheduler_file : str, optional
        Scheduler file written by ``dask scheduler --scheduler-file`` or dask-mpi.
    timeout : float
        Seconds to wait for the scheduler before giving up.

    The connection is made when the run starts (:meth:`__enter__`), after the input was
    opened and checked: a bad input is reported without touching the cluster.
    """

    name = "dask"

    def __init__(self, scheduler=None, scheduler_file=None, timeout=10.0):
        self.scheduler, self.scheduler_file = scheduler, scheduler_file
        self.timeout = timeout
        self.client = None
        self._prefixes: list[str] = []

    def start(self) -> None:
        """Nothing to start ahead: the cluster runs already."""

    def __enter__(self):
        if self.client is None:
            self._connect()
        return self

    def _connect(self) -> None:
        from distributed import Client

        where = self.scheduler or self.scheduler_file
        if self.scheduler_file and not os.path.exists(self.scheduler_file):
            raise ClusterError(
                f"scheduler file {self.scheduler_file} does not exist",
                "start the scheduler first (dask scheduler --scheduler-file FILE)",
            )
        try:
            self.client = Client(
                self.scheduler,
                scheduler_file=self.scheduler_file,
                timeout=f"{self.timeout}s",
                set_as_default=False,
            )
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
        """Disconnect; safe to call more than once."""
        self._disconnect()
        # a block that finished after its run was cancelled may have left a file
        for prefix in self._prefixes:
            _sweep(prefix)
        self._prefixes.clear()

    def _disconnect(self) -> None:
        try:
            if self.client is not None:
                self.client.close()
        except Exception:
            pass
        self.client = None

    def map_blocks(self, source, job, blocks: Iterable[tuple[int, int, int]]) -> Iterator:
        from distributed import as_completed

        pending = list(blocks)[::-1]  # popped from the end: frame order
        # nojump's state at each block start, found by one pass in frame order: blocks
        # then run anywhere, in any order, with identical results
        anchors = source.nojump_anchors([start for _, start, _ in pending])
        if pending:
            with self.client.as_current():
                yield from self._map_blocks(source, job, pending, as_completed, anchors)

    def _map_blocks(self, source, job, pending, as_completed, anchors) -> Iterator:
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
                1,
                shm,
                anchors.get(start),
                pure=False,
            )
            in_flight.add(fut)
            return fut

        running = as_completed([submit() for _ in range(min(window, len(pending)))])
        try:
            for fut in running:
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
    if scheduler is None and scheduler_file is None:
        return LocalExecutor(workers)
    return DaskExecutor(scheduler=scheduler, scheduler_file=scheduler_file)
