"""Third-party warnings: hidden unless -v, in the driver and in every worker.

Filters alone do not hold: a library imported after them may put its own in front
(MDAnalysis adds ``once`` for its DeprecationWarnings when imported, so the DCD reader's
notice came through on every run). The display hook is the last step of every warning
that passes the filters, so a warning raised by code outside this package is dropped
there too. Workers that come from the fork server start with Python's defaults and call
:func:`silence` themselves. A Dask worker is a process trajalign does not own: its
tasks run inside :func:`silenced_tasks`, which silences the process only while one of
them runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings

__all__ = ["restore", "silence", "silenced", "silenced_tasks"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STATE: dict = {"silenced": False}
# tasks inside silenced_tasks() now, and whether the first of them silenced the process
_TASKS = {"running": 0, "ours": False}
_TASKS_LOCK = threading.Lock()


def silenced() -> bool:
    """True while third-party warnings are hidden (the default of the command line)."""
    return _STATE["silenced"]


def _show_ours(message, category, filename, lineno, file=None, line=None) -> None:
    if os.path.abspath(str(filename)).startswith(_PACKAGE):
        _STATE["showwarning"](message, category, filename, lineno, file, line)


def silence() -> None:
    """Hide warnings raised outside trajalign, and tracebacks that third-party
    destructors print while a bad file is closed ("Exception ignored in:
    DCDReader.__del__"), which would otherwise follow our own one-line error."""
    if _STATE["silenced"]:
        return
    _STATE.update(
        silenced=True,
        filters=list(warnings.filters),
        showwarning=warnings.showwarning,
        unraisablehook=sys.unraisablehook,
    )
    warnings.simplefilter("ignore")
    warnings.showwarning = _show_ours
    sys.unraisablehook = lambda unraisable: None


def restore() -> None:
    """Undo :func:`silence` (``-v`` given after the command)."""
    if not _STATE["silenced"]:
        return
    _STATE["silenced"] = False
    warnings.filters[:] = _STATE["filters"]
    # Python's implicit last rule, added through the API so its cache is refreshed
    warnings.simplefilter("default", append=True)
    warnings.showwarning = _STATE["showwarning"]
    sys.unraisablehook = _STATE["unraisablehook"]


@contextlib.contextmanager
def silenced_tasks():
    """:func:`silence` while the block runs, then :func:`restore`, for tasks on a Dask
    worker (a driver without ``-v`` asks for it). Safe with tasks in several threads of
    one worker (``warnings.catch_warnings`` is not): the first task in silences the
    process, the last one out restores it; a process already silenced stays so."""
    with _TASKS_LOCK:
        if _TASKS["running"] == 0:
            _TASKS["ours"] = not silenced()
            if _TASKS["ours"]:
                silence()
        _TASKS["running"] += 1
    try:
        yield
    finally:
        with _TASKS_LOCK:
            _TASKS["running"] -= 1
            if _TASKS["running"] == 0 and _TASKS["ours"]:
                restore()
