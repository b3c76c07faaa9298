"""SHA-256 of the input files for the provenance, computed beside the run.

Light on purpose (hashlib, os, signal and threading only): the command line starts the
hashes before it imports numpy, MDAnalysis or Numba and parses the topology, so that on
a 2-core node the digest of a large trajectory (about 0.8 s per GB here) runs on the
idle core during those single-threaded seconds instead of beside the decoding.

There it runs in a forked child process, not a thread: hashlib releases the GIL while it
hashes a piece, but takes it back between pieces, and a thread beside the imports and
the topology parse (pure Python, which yields the GIL once per switch interval, 5 ms)
waited for it at every piece. A thread hashing 1 MiB pieces had done a fraction of a
1.7 GB XTC when the run reached its decoding, and then took the cores from it; the
digest ended 0.7 s after the frames (issue 23's protein run: 3.1 s, 2.1 s with no
hash at all). Elsewhere (``--workers``, the Python API) the hash runs in a thread, in
16 MiB pieces (a tenth of the GIL hand-overs).
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading

__all__ = ["BackgroundHashes", "ChildHashes", "sha256", "start_hashes"]

#: bytes read and hashed at a time (one buffer, reused)
PIECE = 16 << 20

#: inputs of more bytes than this are hashed in a child process where one can be forked
#: (below it the thread's few GIL hand-overs cost less than forking a large process)
FORK_ABOVE = 64 << 20


def sha256(path: str, bufsize: int = PIECE) -> str:
    """Hex SHA-256 of a file, read in ``bufsize`` pieces into one reused buffer."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        buf = bytearray(max(1, min(bufsize, size)))
        view = memoryview(buf)
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _key(path: str) -> tuple | None:
    """What identifies one version of a file: its absolute path, size and mtime."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return os.path.abspath(path), st.st_size, st.st_mtime_ns


# hashes started ahead by start_hashes(), by _key; a later BackgroundHashes of the same
# file version takes its digest from here instead of reading the file again
_STARTED: dict[tuple, BackgroundHashes | ChildHashes] = {}


class BackgroundHashes:
    """SHA-256 of input files computed in a daemon thread while the run works.

    hashlib releases the GIL, so the checksums of large inputs overlap reading and
    fitting instead of following them; a daemon thread never delays exit on Ctrl-C.
    A file already being hashed by :func:`start_hashes` (same path, size and mtime) is
    not read again. :meth:`get` waits for a file's hash (or hashes it now if the thread
    failed).
    """

    def __init__(self, paths) -> None:
        self._early: dict[str, BackgroundHashes | ChildHashes] = {}
        self._paths = []
        for p in map(str, paths):
            early = _STARTED.get(_key(p))
            if early is not None:
                self._early[p] = early
            else:
                self._paths.append(p)
        self._done: dict[str, str] = {}
        # no thread when every file is already being hashed (a serial command-line run)
        self._thread = None
        if self._paths:
            self._thread = threading.Thread(target=self._run, name="trajalign-sha256", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        for p in self._paths:
            try:
                self._done[p] = sha256(p)
            except OSError:
                return

    def get(self, path: str) -> str:
        early = self._early.get(str(path))
        if early is not None:
            return early.get(path)
        if self._thread is not None:
            self._thread.join()
        got = self._done.get(str(path))
        return got if got is not None else sha256(path)


class ChildHashes:
    """SHA-256 of input files computed by a forked child process (module docstring).

    The child writes one line per file to a pipe, the hex digest or ``-`` if it could
    not read the file, and leaves; :meth:`get` reads the lines (waiting for the child
    the first time) and hashes a file itself if the child gave no digest for it. Only
    fork a process with no other threads (a fork copies only the calling one)."""

    def __init__(self, paths) -> None:
        self._paths = list(map(str, paths))
        self._done: dict[str, str] | None = None
        read, write = os.pipe()
        try:
            self._pid = os.fork()
        except OSError:  # (no process to spare: the caller hashes in a thread)
            os.close(read)
            os.close(write)
            raise
        if self._pid == 0:  # the child: hash, write, leave without running any exit code
            try:
                os.close(read)
                for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C: no traceback here
                    signal.signal(sig, signal.SIG_DFL)
                for p in self._paths:
                    try:
                        line = sha256(p)
                    except OSError:
                        line = "-"
                    os.write(write, line.encode() + b"\n")
            finally:
                os._exit(0)
        os.close(write)
        self._read = read

    def get(self, path: str) -> str:
        if self._done is None:
            chunks = []
            while chunk := os.read(self._read, 1 << 16):
                chunks.append(chunk)
            os.close(self._read)
            try:
                os.waitpid(self._pid, 0)
            except ChildProcessError:  # reaped elsewhere
                pass
            lines = b"".join(chunks).decode().split()  # fewer if the child was killed
            self._done = {p: d for p, d in zip(self._paths, lines, strict=False) if d != "-"}
        got = self._done.get(str(path))
        return got if got is not None else sha256(path)


def start_hashes(paths) -> None:
    """Start hashing ``paths`` now (the readable ones not already started), for a
    :class:`BackgroundHashes` of the same files created later in this process: in a
    forked child where they are larger than :data:`FORK_ABOVE` and this process can fork
    and has no other thread, else in a thread."""
    todo = []
    for p in map(str, paths):
        key = _key(p)
        if key is not None and key not in _STARTED and os.path.isfile(p):
            todo.append((key, p))
    if todo:
        files = [p for _, p in todo]
        large = sum(os.path.getsize(p) for p in files) > FORK_ABOVE
        can_fork = large and hasattr(os, "fork") and threading.active_count() == 1
        hashes = None
        if can_fork:
            try:
                hashes = ChildHashes(files)
            except OSError:
                pass
        if hashes is None:
            hashes = BackgroundHashes(files)
        for key, _ in todo:
            _STARTED[key] = hashes
