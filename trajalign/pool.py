"""A pool of worker processes on this machine for ``--workers N``.

Why not a Dask ``LocalCluster``: on a decode-bound run its costs were the run's costs.
Each Dask worker is a fresh interpreter importing Dask, MDAnalysis and Numba; the
scheduler, the nannies and their heartbeats share the same cores; and the driver decoded
blocks itself while the workers started, one process more than cores. Measured on 2
cores, ``--workers 2`` took longer than a serial run (see the README's scaling section).

Here the command line forks the workers from the driver right after it has opened and
checked the input (:meth:`Pool.fork_from_here`): they inherit every import and the parsed
topology and reopen the trajectory in a fraction of a second. Where forking the driver
is not safe (other threads running: a library caller, a replacement mid-run) they come
from a :mod:`multiprocessing` fork server that imported everything once
(:mod:`trajalign._preload`). Each worker keeps its input open and answers blocks sent
over its own pipe; it takes a contiguous share of the blocks and names the next one to
its reader, so an XTC is decoded ahead. The driver keeps two blocks queued at every
worker, so at most ``2 x workers`` blocks are in flight (bounded memory). Large arrays
come back as files in ``/dev/shm`` (see :mod:`trajalign.executors`). A worker that dies
(killed, out of memory) is replaced and its blocks are sent again, up to
:data:`MAX_TRIES` times each.
"""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections import deque
from dataclasses import dataclass, field

from . import _warnings

__all__ = [
    "MAX_TRIES",
    "Pool",
    "WorkerDied",
]

#: times a block is sent before a worker dying on it fails the run (Dask's default, 3
#: allowed failures, means 4 tries; a block that kills every worker it meets is a bug)
MAX_TRIES = 3

#: what every worker needs, imported once by the fork server
_PRELOAD = ["trajalign._preload"]


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent (the driver, or the fork server,
    which leaves with the driver) exits, so no worker outlives a driver killed with
    SIGKILL."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(conn, threads: int, quiet_warnings: bool = False) -> None:
    """A worker's life: take messages from the driver until it says stop or goes away."""
    if quiet_warnings:
        # a fork-server child starts with Python's warning filters, not the driver's
        from ._warnings import silence

        silence()
    # Ctrl-C and a batch system's SIGTERM reach the whole process group: the driver
    # decides what to keep and stops the workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    import multiprocessing

    # A fork-server child inherits "forkserver" as its default start method, and Numba's
    # thread-pool lock is then a named semaphore that the resource tracker reports as
    # leaked on stderr when a stopped worker is killed; with "fork" it is anonymous
    multiprocessing.set_start_method("fork", force=True)
    import numba

    from .tasks import run_task

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    inbox = _drain(conn)
    jobs: dict = {}
    while True:
        msg = inbox.get()
        if msg is None:
            _leave()
        tag, payload = msg
        if tag == "job":
            token, blob = payload
            jobs.clear()  # one job at a time: the previous run's is done
            jobs[token] = pickle.loads(blob)
            continue
        if tag == "open":
            _open_ahead(payload)
            continue
        token, spec, index, start, stop, anchor, shm = payload
        try:
            out = run_task(spec, jobs[token], index, start, stop, shm, anchor, _next(inbox))
            conn.send(("ok", index, out))
        except BaseException as exc:  # the driver decides; the worker stays for the next
            conn.send(("error", index, _portable(exc)))


def _leave() -> None:
    """Stop this worker at once: close its inputs (their reader processes), then exit
    without the interpreter's teardown, which took 0.4 s and is of no use here (the
    worker holds no output; the driver writes everything)."""
    from .tasks import WORKER_SOURCES

    for source in WORKER_SOURCES.values():
        try:
            source.close()
        except Exception:
            pass
    WORKER_SOURCES.clear()
    os._exit(0)


def _drain(conn):
    """Read the driver's messages in a thread, into a queue (None: stop or driver gone).

    The driver sends the next task while the worker may be sending a result: were both
    larger than the pipe's buffer (a nojump task carries every atom's image; a result
    without /dev/shm carries its arrays), each would wait for the other to read.
    """
    import queue
    import threading

    inbox: queue.Queue = queue.Queue()

    def loop():
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                msg = None
            inbox.put(msg)
            if msg is None:
                return

    threading.Thread(target=loop, name="trajalign-inbox", daemon=True).start()
    return inbox


def _open_ahead(source_kw: dict) -> None:
    """Open the input while the driver opens it too (see :meth:`Pool.open`); a failure
    is left for the driver to report, and for the first block to meet again."""
    from .io import open_source
    from .tasks import WORKER_SOURCES

    try:
        source = open_source(**source_kw)
    except Exception:
        return
    for old in WORKER_SOURCES.values():
        old.close()
    WORKER_SOURCES.clear()
    WORKER_SOURCES[source.spec] = source


def _next(inbox) -> tuple[int, int] | None:
    """(start, stop) of the block queued after the current one, if one is: the reader
    decodes it while this one is processed."""
    with inbox.mutex:
        queued = list(inbox.queue)
    for msg in queued:
        if msg is not None and msg[0] == "block":
            return msg[1][3], msg[1][4]
    return None


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


@dataclass(eq=False)
class _Worker:
    proc: object
    conn: object
    tasks: deque = field(default_factory=deque)  # blocks sent, in the order sent
    job: str | None = None  # token of the job it holds


class WorkerDied(Exception):
    """A worker process ended while it held blocks (killed, out of memory)."""

    def __init__(self, exitcode, block) -> None:
        super().__init__(exitcode, block)
        self.exitcode, self.block = exitcode, block


class Pool:
    """``n`` worker processes; see the module's docstring."""

    def __init__(self, n: int, threads: int = 1) -> None:
        self.n, self.threads = n, threads
        self.workers: list[_Worker] = []
        self._ctx = None

    def prepare(self) -> None:
        """Start the fork server (its imports run beside the driver's); no worker yet."""
        import multiprocessing as mp

        if self._ctx is not None:
            return
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(_PRELOAD)
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def _spawn(self, ctx=None) -> _Worker:
        if ctx is None:
            self.prepare()
            ctx = self._ctx
        here, there = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_worker_main,
            args=(there, self.threads, _warnings.silenced()),
            daemon=True,
            name="trajalign-worker",
        )
        proc.start()
        there.close()
        return _Worker(proc, here)

    def fill(self) -> None:
        """Start workers up to ``n`` (from the fork server)."""
        while len(self.workers) < self.n:
            self.workers.append(self._spawn())

    def fork_from_here(self, source_kw: dict) -> bool:
        """Fork the workers from this process, now, and have each open the input
        (``open_source`` keywords); False (nothing done) where forking is not safe.

        Called by the command line right after the driver opened the input: the
        workers inherit every import and the parsed topology (see
        ``trajalign.io.sources._TOPOLOGIES``), so a worker is ready in about 0.1 s
        instead of the fork server's imports plus a parse of its own. Safe only while
        this process runs no other thread (a forked child gets a copy of every lock,
        held or not, and only the forking thread): checked here. Workers that replace
        dead ones later come from the fork server.
        """
        import multiprocessing as mp
        import threading

        if self.workers or threading.active_count() > 1 or _numba_threads_started():
            return False
        ctx = mp.get_context("fork")
        while len(self.workers) < self.n:
            self.workers.append(self._spawn(ctx))
        for w in self.workers:
            w.conn.send(("open", source_kw))
        return True

    def map(self, spec, job, blocks, anchors: dict, shm, in_order: bool = False) -> object:
        """Yield each block's result as it arrives (a generator of BlockOutput).

        Each worker takes a contiguous share of the blocks, in order, so that the reader
        of its input decodes ahead the block it will be asked for next (see
        :class:`trajalign.io.guard.GuardedReader`); a worker whose share is done
        takes the last block of the largest share left. ``in_order``: hand out blocks in
        frame order instead, for jobs whose results the driver must write in order
        (results arriving early would wait in its memory).

        Raises the worker's own exception for a block that failed, and
        :class:`WorkerDied` for a block whose workers died :data:`MAX_TRIES` times.
        """
        from multiprocessing.connection import wait

        self.fill()
        token = f"{os.getpid()}-{time.monotonic_ns()}"
        blob = _dumps(job)
        blocks = list(blocks)
        if in_order:
            common = deque(blocks)
            share = {w: common for w in self.workers}
        else:
            share = dict(zip(self.workers, _split(blocks, len(self.workers)), strict=True))
        tries: dict[int, int] = {}

        def take(w: _Worker):
            if share[w]:
                return share[w].popleft()
            donor = max(share.values(), key=len)
            return donor.pop() if donor else None

        def feed(w: _Worker) -> None:
            while len(w.tasks) < 2:
                block = take(w)
                if block is None:
                    return
                index, start, stop = block
                w.tasks.append(block)
                try:
                    if w.job != token:
                        w.conn.send(("job", (token, blob)))
                        w.job = token
                    task = (token, spec, index, start, stop, anchors.get(start), shm)
                    w.conn.send(("block", task))
                except OSError:
                    # the worker died after its last result (a broken pipe): its
                    # sentinel wakes the loop below, which hands this block, untried,
                    # to the worker that replaces it
                    return
                tries[index] = tries.get(index, 0) + 1

        for w in self.workers:
            feed(w)
        while any(w.tasks for w in self.workers):
            by_handle = {}
            for w in self.workers:
                if w.tasks:
                    by_handle[w.conn] = by_handle[w.proc.sentinel] = w
            for handle in wait(list(by_handle)):
                w = by_handle[handle]
                if w not in self.workers or not w.tasks:
                    continue  # replaced, or its result was taken through the other handle
                try:
                    msg = w.conn.recv() if w.conn.poll() else None
                except (EOFError, OSError):
                    msg = None
                if msg is None:
                    if w.proc.is_alive():
                        continue  # woken by the pipe, data not complete yet
                    own = share.pop(w)
                    new = self._replace(w, own, tries)
                    share[new] = own
                    feed(new)
                    continue
                tag, index, payload = msg
                w.tasks.popleft()
                if tag == "error":
                    raise payload
                feed(w)
                yield payload

    def _replace(self, w: _Worker, own: deque, tries: dict) -> _Worker:
        """A worker died: its blocks go back to the front of its share ``own``; returns
        the worker started in its place."""
        w.proc.join(timeout=1)
        for block in w.tasks:
            if tries.get(block[0], 0) >= MAX_TRIES:
                raise WorkerDied(w.proc.exitcode, block)
        own.extendleft(reversed(w.tasks))
        w.tasks.clear()
        self.workers.remove(w)
        w.conn.close()
        new = self._spawn()
        self.workers.append(new)
        return new

    def forget(self) -> None:
        """Drop what the workers were doing (after an error or a stop): they are stopped,
        since a result still on its way would otherwise arrive in the next run."""
        if any(w.tasks for w in self.workers):
            self.close()

    def close(self, grace: float = 0.5) -> None:
        """Stop every worker: ask, wait up to ``grace`` seconds, then kill (an idle
        worker leaves at once; one busy opening an input the driver found bad, or with
        a block of a stopped run, is killed rather than waited for)."""
        for w in self.workers:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + grace
        for w in self.workers:
            w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
            w.conn.close()
        self.workers = []


def _split(blocks: list, n: int) -> list[deque]:
    """``blocks`` in ``n`` contiguous shares whose sizes differ by at most one."""
    q, r = divmod(len(blocks), n)
    out, at = [], 0
    for i in range(n):
        size = q + (i < r)
        out.append(deque(blocks[at : at + size]))
        at += size
    return out


def _numba_threads_started() -> bool:
    """Has this process started Numba's thread pool (run a parallel kernel)?"""
    import sys

    parallel = sys.modules.get("numba.np.ufunc.parallel")
    return bool(getattr(parallel, "_is_initialized", False))


def _dumps(job) -> bytes:
    """The job for the workers: cloudpickle where installed (Dask brings it), so jobs
    defined interactively or in a script travel too."""
    try:
        import cloudpickle

        return cloudpickle.dumps(job)
    except ImportError:
        return pickle.dumps(job)
