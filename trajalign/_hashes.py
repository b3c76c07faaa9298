"""SHA-256 of the input files for the provenance, computed in a thread beside the run.

Light on purpose (hashlib, os and threading only): the command line starts the hashes
before it imports numpy, MDAnalysis or Numba and parses the topology, so that on a
2-core node the digest of a large trajectory (about 1 s per GB here) runs on the idle
core during those single-threaded seconds instead of beside the decoding.
"""

from __future__ import annotations

import hashlib
import os
import threading

__all__ = ["BackgroundHashes", "sha256", "start_hashes"]


def sha256(path: str, bufsize: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(bufsize):
            h.update(chunk)
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
_STARTED: dict[tuple, BackgroundHashes] = {}


class BackgroundHashes:
    """SHA-256 of input files computed in a daemon thread while the run works.

    hashlib releases the GIL, so the checksums of large inputs overlap reading and
    fitting instead of following them; a daemon thread never delays exit on Ctrl-C.
    A file already being hashed by :func:`start_hashes` (same path, size and mtime) is
    not read again. :meth:`get` waits for a file's hash (or hashes it now if the thread
    failed).
    """

    def __init__(self, paths) -> None:
        self._early: dict[str, BackgroundHashes] = {}
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


def start_hashes(paths) -> None:
    """Start hashing ``paths`` now (the readable ones not already started), for a
    :class:`BackgroundHashes` of the same files created later in this process."""
    todo = []
    for p in map(str, paths):
        key = _key(p)
        if key is not None and key not in _STARTED and os.path.isfile(p):
            todo.append((key, p))
    if todo:
        hashes = BackgroundHashes([p for _, p in todo])
        for key, _ in todo:
            _STARTED[key] = hashes
