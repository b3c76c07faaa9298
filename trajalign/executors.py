"""Where blocks are processed: in this process (serial) or on a Dask cluster.

Tasks carry the source's :class:`~trajalign.io.SourceSpec` (paths and options), the job
and a frame range, never open files or Universes: each worker reopens the input once and
keeps it for its later blocks. Results come back per block; the driver in
:mod:`trajalign.pipeline` is the only writer of the output.
"""

from __future__ import annotations

import os
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


def process_block(source, job, index: int, start: int, stop: int) -> BlockOutput:
    """Read frames ``[start, stop)`` of ``source`` and run ``job`` on them."""
    block = source.read(start, stop)
    try:
        result = job.process(block)
    except DataError as err:
        # the API numbers frames within the block; report the source frame
        if getattr(err, "frame", None) is None:
            raise
        raise nonfinite_error("the input", int(block.frames[err.frame])) from None
    return BlockOutput(index, start, block.frames, block.times, block.box, result)


class SerialExecutor:
    """Process blocks one after the other in this process (Numba threads inside)."""

    name = "serial"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map_blocks(self, source, job, blocks: Iterable[tuple[int, int, int]]) -> Iterator:
        for index, start, stop in blocks:
            yield process_block(source, job, index, start, stop)


# ----------------------------------------------------------------------------- Dask

_WORKER_SOURCES: dict = {}


def _dask_task(spec, job, index, start, stop, threads):
    """Runs on a worker: reopen the source by path (once per worker) and process a block."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    source = _WORKER_SOURCES.get(spec)
    if source is None:
        from .io import open_source

        source = _WORKER_SOURCES[spec] = open_source(**spec.as_dict())
    return process_block(source, job, index, start, stop)


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

    def __enter__(self):
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
            self.__exit__(None, None, None)
            raise ClusterError(
                f"cannot reach the Dask scheduler at {where} within {self.timeout:g} s "
                f"({type(exc).__name__}: {exc})",
                "check the address or scheduler file and that the scheduler is running",
            ) from None
        return self

    def __exit__(self, *exc):
        for obj in (self.client, self.cluster):
            try:
                if obj is not None:
                    obj.close()
            except Exception:
                pass
        return False

    def _threads_per_task(self) -> int:
        info = self.client.scheduler_info(n_workers=-1) if self.client else {}
        workers = info.get("workers", {}) or {1: {}}
        cores = os.cpu_count() or 1
        return max(1, cores // max(1, len(workers))) if self.cluster else 1

    def map_blocks(self, source, job, blocks: Iterable[tuple[int, int, int]]) -> Iterator:
        from distributed import as_completed

        with self.client.as_current():
            yield from self._map_blocks(source, job, blocks, as_completed)

    def _map_blocks(self, source, job, blocks, as_completed) -> Iterator:
        threads = self._threads_per_task()
        job_f = self.client.scatter(job, broadcast=True, hash=False)
        pending = list(blocks)[::-1]  # popped from the end: frame order
        # a bounded window of tasks in flight: finished blocks wait in worker memory until
        # the driver has written them, so submitting everything at once would hold the
        # whole trajectory there when the writer is the slower side
        window = max(4, 2 * self._n_workers())

        in_flight = set()

        def submit():
            index, start, stop = pending.pop()
            fut = self.client.submit(
                _dask_task, source.spec, job_f, index, start, stop, threads, pure=False
            )
            in_flight.add(fut)
            return fut

        running = as_completed([submit() for _ in range(min(window, len(pending)))])
        try:
            for fut in running:
                try:
                    out = fut.result()
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
