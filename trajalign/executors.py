"""Where blocks are processed: in this process (serial), in worker processes on this
machine (``--workers``, :mod:`trajalign.pool`) or on a Dask cluster (``--scheduler``).

Tasks carry the source's :class:`~trajalign.io.SourceSpec` (paths and options), the job
and a frame range, never open files or Universes: each worker reopens the input once and
keeps it for its later blocks. Results come back per block; the driver in
:mod:`trajalign.pipeline` is the only writer of the output.

What a worker runs (:func:`~trajalign.tasks.run_task`, the shared-memory hand-over of a
block's arrays) lives in :mod:`trajalign.tasks`, below both this module and
:mod:`trajalign.pool`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Iterable, Iterator

from . import _warnings
from .errors import ClusterError, ClusterLost
from .tasks import (
    SHM_MIN_BYTES,
    WORKER_SOURCES,
    BlockOutput,
    host_token,
    import_arrays,
    process_block,
    run_task,
    sweep,
)

__all__ = ["BlockOutput", "DaskExecutor", "LocalExecutor", "SerialExecutor", "make_executor"]


class SerialExecutor:
    """Process blocks one after the other in this process (Numba threads inside)."""

    name = "serial"

    def start(self, source_kw: dict | None = None) -> None:
        pass

    def attach(self, source, source_kw: dict) -> None:
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


def _dask_task(spec, job, index, start, stop, threads, shm=None, anchor=None, quiet=False):
    """A block on a Dask worker (:func:`run_task` with the worker's thread count set);
    an error names the worker, which may be another machine than the driver's.
    ``quiet``: the driver hides third-party warnings (no ``-v``), so does the task
    (MDAnalysis' DCD reader warns on every read, in the worker's log)."""
    import numba

    from .errors import TrajalignError

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        with _warnings.silenced_tasks() if quiet else contextlib.nullcontext():
            return run_task(spec, job, index, start, stop, shm, anchor)
    except TrajalignError as err:
        err.message = f"on worker {_worker_name()}: {err.message}"
        raise


class LocalExecutor:
    """Process blocks in ``workers`` processes on this machine (:class:`trajalign.pool.Pool`).

    The command line forks the workers from the driver as soon as the input is open
    and checked (:meth:`attach`), so a bad input is reported before any worker exists
    and a worker inherits the driver's imports and parsed topology. A library caller
    that skips :meth:`attach` gets workers from a fork server when the run starts.
    """

    name = "local"

    def __init__(self, workers: int) -> None:
        from .pool import Pool

        #: blocks are sized for at least 8 per worker (see trajalign.pipeline.run)
        self.parallelism = workers
        cores = os.cpu_count() or 1
        self.workers = workers
        self.pool = Pool(workers, threads=max(1, cores // workers))
        self._prefixes: list[str] = []

    def start(self, source_kw: dict | None = None) -> None:
        """Nothing yet: workers start once the input is open (:meth:`attach`)."""

    def attach(self, source, source_kw: dict) -> None:
        """The driver has opened and checked the input: fork the workers from it now
        (they inherit its imports and parsed topology, and open the input while the
        driver prepares the run). Where that is not safe, they come from a fork server
        when the run starts."""
        self.pool.fork_from_here(source_kw)

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
            sweep(prefix)
        self._prefixes.clear()

    def map_blocks(self, source, job, blocks: Iterable[tuple[int, int, int]]) -> Iterator:
        from .pool import WorkerDied

        blocks = list(blocks)
        anchors = source.nojump_anchors([start for _, start, _ in blocks])
        token = host_token()
        shm = None
        if token is not None:
            shm = (token, f"trajalign-{os.getpid()}-{secrets.token_hex(4)}", SHM_MIN_BYTES)
            self._prefixes.append(shm[1])
        try:
            for out in self.pool.map(source.spec, job, blocks, anchors, shm, job.ordered):
                yield import_arrays(out)
        except WorkerDied as died:
            _, start, stop = died.block
            raise ClusterLost(
                f"worker processes died {_tries()} times while processing frames "
                f"{start}-{stop - 1} ({_exit_reason(died.exitcode)})",
                "check the memory available per worker (fewer --workers or a smaller "
                "--memory) and run trajalign info --check on the input",
            ) from None
        finally:
            if shm is not None:
                sweep(shm[1])


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
    timeout : float, optional
        Seconds to wait for the scheduler to answer [default: ``CONNECT_TIMEOUT``].
    wait_workers : float
        Seconds to wait for a first worker to join, and for one to come back when every
        worker has left mid-run.
    quiet : bool
        Keep Dask's own log lines and tracebacks off stderr (the command line's default;
        ``-v`` shows them).

    The connection is made when the run starts (:meth:`__enter__`), after the input was
    opened and checked: a bad input is reported without touching the cluster. Every
    wait has a deadline. A cluster that fails mid-run (workers or scheduler gone) raises
    :class:`~trajalign.errors.ClusterLost`, and the pipeline keeps the finished blocks.
    """

    name = "dask"

    #: seconds between checks that the cluster is still there while blocks are out
    POLL = 1.0
    #: seconds to wait for the scheduler when no ``timeout`` is given (Dask retries a
    #: refused connection until then: a scheduler may still be starting)
    CONNECT_TIMEOUT = 10.0
    #: seconds beyond the timeout before a listener that never answers is given up
    ANSWER_GRACE = 5.0

    def __init__(
        self, scheduler=None, scheduler_file=None, timeout=None, wait_workers=120.0, quiet=True
    ):
        self.scheduler, self.scheduler_file = scheduler, scheduler_file
        self.where = scheduler or scheduler_file
        self.timeout = self.CONNECT_TIMEOUT if timeout is None else timeout
        self.wait_workers, self.quiet = wait_workers, quiet
        self.client = None
        self._prefixes: list[str] = []
        self._log_levels: dict[str, int] = {}

    def start(self, source_kw: dict | None = None) -> None:
        """Nothing to start ahead: the cluster runs already, and it is contacted only
        once the input has been opened and checked."""

    def attach(self, source, source_kw: dict) -> None:
        pass

    def __enter__(self):
        if self.client is None:
            self._silence()
            self._connect()
            self._wait_for_workers()
        return self

    def _silence(self) -> None:
        import logging

        if not self.quiet:
            return
        import distributed  # noqa: F401  (its import configures the loggers set here)

        # Dask configures levels on its child loggers (distributed.client, ...), so the
        # parent's level is not enough: every one of them is set
        names = [
            n
            for n in list(logging.root.manager.loggerDict)
            if n.split(".")[0] in ("distributed", "tornado", "asyncio")
        ]
        for name in {"distributed", "tornado", "asyncio", *names}:
            logger = logging.getLogger(name)
            self._log_levels.setdefault(name, logger.level)
            logger.setLevel(logging.CRITICAL + 1)

    def _connect(self) -> None:
        import threading

        if self.scheduler_file and not os.path.exists(self.scheduler_file):
            raise ClusterError(
                f"scheduler file {self.scheduler_file} does not exist",
                "start the scheduler first (dask scheduler --scheduler-file FILE)",
            )
        got: dict = {}

        def connect():
            from distributed import Client

            try:
                got["client"] = Client(
                    self.scheduler,
                    scheduler_file=self.scheduler_file,
                    timeout=f"{self.timeout}s",
                    set_as_default=False,
                )
            except BaseException as exc:
                got["error"] = exc

        # Client() waits forever on a listener that accepts and never answers (another
        # service, the dashboard's port): it runs in a thread the run does not wait for
        t = threading.Thread(target=connect, name="trajalign-connect", daemon=True)
        t.start()
        waited = self.timeout + self.ANSWER_GRACE
        t.join(waited)
        if t.is_alive():
            raise ClusterError(
                f"no Dask scheduler answered at {self.where} within {waited:g} s",
                "check that this is the scheduler's address (port 8786 unless set otherwise; "
                "8787 is its dashboard) and that the scheduler is running",
            )
        if "error" in got:
            exc = got["error"]
            raise ClusterError(
                f"cannot reach the Dask scheduler at {self.where} within {self.timeout:g} s "
                f"({type(exc).__name__}: {exc})",
                "check the address or scheduler file and that the scheduler is running",
            ) from None
        self.client = got["client"]

    def _wait_for_workers(self) -> None:
        try:
            self.client.wait_for_workers(1, timeout=self.wait_workers)
        except (TimeoutError, OSError):
            raise ClusterError(
                f"no worker joined the scheduler at {self.where} within {self.wait_workers:g} s",
                "start workers (dask worker --scheduler-file FILE), or wait longer with "
                "--wait-workers SECONDS",
            ) from None

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        """Disconnect (never waiting long for a scheduler that is gone); safe to repeat."""
        import logging

        client, self.client = self.client, None
        try:
            if client is not None:
                client.close(timeout=2)
        except BaseException:
            pass
        # a block that finished after its run was cancelled may have left a file
        for prefix in self._prefixes:
            sweep(prefix)
        self._prefixes.clear()
        for name, level in self._log_levels.items():
            logging.getLogger(name).setLevel(level)
        self._log_levels.clear()

    # ------------------------------------------------------------------ blocks

    def map_blocks(self, source, job, blocks: Iterable[tuple[int, int, int]]) -> Iterator:
        pending = list(blocks)[::-1]  # popped from the end: frame order
        # nojump's state at each block start, found by one pass in frame order: blocks
        # then run anywhere, in any order, with identical results
        anchors = source.nojump_anchors([start for _, start, _ in pending])
        spec = _absolute(source.spec)
        self._probe(spec, source)
        if pending:
            yield from self._map_blocks(spec, job, pending, anchors)

    def _probe(self, spec, source) -> None:
        """Once, before any block: can a worker open the input as the driver did?"""
        fut = self.client.submit(_probe_task, spec, _warnings.silenced(), pure=False)
        try:
            status, host, detail = self._result(fut, "opening the input on a worker")
        finally:
            fut.release()
        if status == "error":
            raise ClusterError(
                f"a worker on {host} cannot open the input: {detail}",
                "workers open the input by its path, so it must be on a filesystem they "
                "see, at the same path as on this machine",
            )
        if detail != (source.n_frames, source.n_points):
            raise ClusterError(
                f"a worker on {host} sees another input: {detail[0]} frames x {detail[1]} "
                f"atoms where this machine sees {source.n_frames} x {source.n_points}",
                "the workers must see the same files as this machine (same paths, same copy)",
            )

    def _result(self, fut, doing: str):
        """``fut``'s result, waiting while the cluster is there; ClusterLost when not."""
        from distributed import wait

        alone_since = None
        while True:
            try:
                with self.client.as_current():  # wait() takes the default client
                    wait([fut], timeout=self.POLL)
                return fut.result(timeout=self.wait_workers)
            except TimeoutError:
                pass
            except Exception as exc:
                raise self._translate(exc, doing) from None
            alone_since = self._check_cluster(alone_since, doing)

    def _check_cluster(self, alone_since, doing: str):
        """Raise ClusterLost when the scheduler or every worker has been gone too long."""
        import time

        if self.client.status not in ("running", "connecting"):
            raise ClusterLost(
                f"the connection to the Dask scheduler at {self.where} was lost while {doing}"
            )
        if self._workers_now():
            return None
        now = time.monotonic()
        if alone_since is None:
            return now
        if now - alone_since > self.wait_workers:
            raise ClusterLost(
                f"every worker left the Dask cluster at {self.where} while {doing}, and none "
                f"came back within {self.wait_workers:g} s"
            )
        return alone_since

    def _translate(self, exc: BaseException, doing: str) -> BaseException:
        """A task's failure in the user's terms: the data's error as it is, the cluster's
        as ClusterLost (finished blocks kept), anything else named with its worker."""
        from asyncio import CancelledError

        from distributed import KilledWorker

        if _is_trajalign(exc):
            return exc
        if isinstance(exc, KilledWorker):
            return ClusterLost(
                f"Dask workers died while {doing}, as many times as the scheduler allows "
                "(out of memory, or a crash in the trajectory reader)",
                "check the workers' memory and run trajalign info --check on the input",
            )
        what = _first_line(exc)
        if "Cancelled" in type(exc).__name__ or isinstance(exc, CancelledError):
            # what the client does with its tasks when it loses the scheduler, and the
            # scheduler when it loses every worker
            if self.client.status != "running":
                return ClusterLost(
                    f"the Dask scheduler at {self.where} went away (or the connection to "
                    "it was lost) while blocks were out"
                )
            if self._workers_now() == 0:
                return ClusterLost(
                    f"every worker left the Dask cluster at {self.where} while blocks were out"
                )
            return ClusterLost(
                f"the Dask cluster at {self.where} dropped the blocks in flight while {doing} "
                f"(lost workers or a restarted scheduler: {what})"
            )
        if isinstance(exc, OSError | TimeoutError):
            return ClusterLost(
                f"the connection to the Dask cluster at {self.where} failed while {doing} "
                f"({what}): the scheduler or a worker went away"
            )
        return ClusterError(
            f"a Dask task failed while {doing} ({what})", "rerun with -v for the details"
        )

    def _map_blocks(self, spec, job, pending, anchors) -> Iterator:
        from distributed import wait

        try:
            job_f = self.client.scatter(job, broadcast=True, hash=False)
        except Exception as exc:
            raise self._translate(exc, "sending the job to the workers") from None
        token = host_token()
        shm = None
        if token is not None:
            shm = (token, f"trajalign-{os.getpid()}-{secrets.token_hex(4)}", SHM_MIN_BYTES)
            self._prefixes.append(shm[1])
        # a bounded window of tasks in flight: finished blocks wait in worker memory until
        # the driver has written them, so submitting everything at once would hold the
        # whole trajectory there when the writer is the slower side
        window = max(4, 2 * self._n_workers())
        in_flight: dict = {}  # future -> (index, start, stop)
        quiet = _warnings.silenced()

        def submit():
            index, start, stop = block = pending.pop()
            fut = self.client.submit(
                _dask_task,
                spec,
                job_f,
                index,
                start,
                stop,
                1,
                shm,
                anchors.get(start),
                quiet,
                pure=False,
            )
            in_flight[fut] = block
            return fut

        for _ in range(min(window, len(pending))):
            submit()
        alone_since = None
        try:
            while in_flight:
                try:
                    with self.client.as_current():
                        done, _ = wait(
                            list(in_flight), timeout=self.POLL, return_when="FIRST_COMPLETED"
                        )
                except TimeoutError:
                    done = ()
                except Exception as exc:
                    raise self._translate(exc, "waiting for blocks") from None
                if not done:
                    alone_since = self._check_cluster(alone_since, "blocks were out")
                    continue
                alone_since = None
                # a block's own error first: when workers die on one block, the scheduler
                # may also cancel the others, and the cause is the one that erred
                for fut in sorted(done, key=lambda f: (f.status != "error", in_flight[f][0])):
                    _, start, stop = in_flight[fut]
                    doing = f"processing frames {start}-{stop - 1}"
                    out = import_arrays(self._result(fut, doing))
                    del in_flight[fut]
                    fut.release()  # let the worker drop the result
                    if pending:
                        submit()
                    yield out
        finally:
            for fut in in_flight:
                fut.release()  # the scheduler forgets tasks no one holds
            if shm is not None:
                sweep(shm[1])

    def _workers_now(self) -> int:
        """Workers the scheduler knows now (0 when it cannot be asked)."""
        try:
            return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        except Exception:
            return 0

    def _n_workers(self) -> int:
        info = self.client.scheduler_info(n_workers=-1)
        return max(1, len(info.get("workers", {})))


def _first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (Dask's messages span lines and list keys)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _absolute(spec):
    """The spec with every file it names made absolute: workers started in another
    folder open the same files."""
    from dataclasses import replace

    def fix(p):
        return os.path.abspath(p) if isinstance(p, str) and os.path.exists(p) else p

    return replace(
        spec,
        paths=tuple(fix(p) for p in spec.paths),
        top=fix(spec.top),
        masses=fix(spec.masses),
        box=fix(spec.box),
        bonds=fix(spec.bonds),
    )


def _probe_task(spec, quiet=False):
    """On a worker: open the input as a block task would; (status, host, detail).
    ``quiet`` as for :func:`_dask_task`."""
    host = _worker_name()
    try:
        with _warnings.silenced_tasks() if quiet else contextlib.nullcontext():
            source = WORKER_SOURCES.get(spec)
            if source is None:
                from .io import open_source

                source = WORKER_SOURCES[spec] = open_source(**spec.as_dict())
        return "ok", host, (source.n_frames, source.n_points)
    except Exception as exc:
        return "error", host, str(exc)


def _worker_name() -> str:
    """This worker's host name and Dask address, for messages."""
    try:
        from distributed import get_worker

        return f"{socket.gethostname()} ({get_worker().address})"
    except Exception:
        return socket.gethostname()


def _is_trajalign(exc: BaseException) -> bool:
    from .errors import TrajalignError

    return isinstance(exc, TrajalignError)


def make_executor(
    workers=None, scheduler=None, scheduler_file=None, wait_workers=120.0, quiet=True
):
    """The serial executor, a local pool for ``workers``, or a Dask one for a cluster."""
    if workers is None and scheduler is None and scheduler_file is None:
        return SerialExecutor()
    if workers is not None and workers < 1:
        from .errors import ParameterError

        raise ParameterError(f"--workers {workers} is not positive", "use 1 or more workers")
    if scheduler is None and scheduler_file is None:
        return LocalExecutor(workers)
    return DaskExecutor(
        scheduler=scheduler, scheduler_file=scheduler_file, wait_workers=wait_workers, quiet=quiet
    )
