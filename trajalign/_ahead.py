"""Compile a run's fit kernels (or ``internal``'s residue distances) in a forked child
while the run compiles everything else.

With an empty Numba cache (a new machine, a container, a new node type) a run compiles
each kernel the first time it calls it, one after the other, in one thread: for an XTC
in a box, the decoder and the periodic repair, then the Kabsch fit and the jump
diagnostics. Numba compiles under one process-wide lock, so threads cannot share this
work, but two processes can: :func:`start` forks a child that runs tiny inputs through
the fit, or through the residue minimum distances and contacts of ``internal`` (which
fills the cache with the kernels and exactly the signatures a run asks for) while the
run goes on; :func:`wait`, called by every Python entry to those kernels,
waits for the child, and the run then loads them from the cache instead of compiling them.

The child is started only where it pays and is safe: the run has kernels of its own to
compile meanwhile (the XTC decoder; the periodic treatment of every frame of a
trajectory with ``--pbc none``, ``cluster`` or ``nojump``: see
:func:`trajalign.cli.compile_ahead`), neither they nor the fit's kernels are in the
cache yet, this process may use two or more cores, it has no other threads (a fork copies only
the calling one), and the run is serial (``--workers`` and Dask workers compile in their
own processes). ``TRAJALIGN_COMPILE_AHEAD=0`` turns it off. Whatever happens to the
child, the run does not depend on it: if it fails, or takes longer than
:data:`TIMEOUT`, the run compiles the kernels itself, as it would without it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["TIMEOUT", "allowed", "cold", "start", "wait"]

#: seconds :func:`wait` waits for the child before stopping it and compiling itself
TIMEOUT = 300.0

_child: list[int] = []  # the pid of the running child, if any


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cold(dispatcher) -> bool:
    """True if Numba's cache holds no entry for ``dispatcher`` (a cached kernel) yet.

    Reads the cache's index path from Numba's private attributes; where they are not
    what this expects, answers False, and nothing is started."""
    try:
        return not os.path.exists(dispatcher._cache._cache_file._index_path)
    except AttributeError:
        return False


def allowed() -> bool:
    """True if this process may fork a compiling child now (module docstring)."""
    return (
        hasattr(os, "fork")
        and os.environ.get("TRAJALIGN_COMPILE_AHEAD", "1") != "0"
        and _cores() >= 2
        and threading.active_count() == 1
        and not _child
    )


def start(warm: Callable[[], None], probe) -> bool:
    """Fork a child that runs ``warm()`` (tiny inputs through the kernels to compile)
    if the kernel ``probe`` is not in the cache and forking is allowed (module
    docstring); True if a child was started."""
    if not allowed() or not cold(probe):
        return False
    pid = os.fork()
    if pid == 0:  # the child: compile, say nothing, leave without running any exit code
        code = 1
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            # (and Python's streams, which may not write to descriptors 1 and 2)
            sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
            warm()
            code = 0
        finally:
            os._exit(code)
    _child.append(pid)
    return True


def wait() -> None:
    """Wait for the child :func:`start` forked, if one is running (at most
    :data:`TIMEOUT` seconds; then it is killed, and the caller compiles)."""
    if not _child:
        return
    pid = _child.pop()
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere
            return
        if done:
            return
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        time.sleep(0.005)
