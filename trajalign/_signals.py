"""Stop requests from SIGINT/SIGTERM, checked between blocks.

Python raises KeyboardInterrupt wherever the main thread happens to be, and an exception
raised inside a weakref callback or ``__del__`` is printed and swallowed, so a run could
go on after Ctrl-C. The command line's handlers therefore also record the signal here,
and the pipeline calls :func:`check` after every block.
"""

from __future__ import annotations

import signal

from .errors import KeepsPartial

__all__ = ["Interrupted", "Terminated", "check", "handler", "install", "raise_for"]


class Terminated(KeepsPartial, BaseException):
    """The process received SIGTERM (a scheduler's preemption, ``kill``).

    A BaseException, like KeyboardInterrupt: code that handles ``Exception`` (a cluster
    client waiting for a result, a retry loop) must not turn a stop into an error."""


class Interrupted(KeepsPartial, KeyboardInterrupt):
    """Ctrl-C (SIGINT), as a KeyboardInterrupt that can say what the run kept."""


_received: list[int] = []


def handler(signum, frame):
    _received.append(signum)
    raise_for(signum)


def raise_for(signum: int):
    if signum == signal.SIGTERM:
        raise Terminated()
    raise Interrupted()


def check() -> None:
    """Raise KeyboardInterrupt/Terminated if a stop was requested and swallowed."""
    if _received:
        raise_for(_received[-1])


def install() -> None:
    """Route SIGINT and SIGTERM through :func:`handler` (main thread only)."""
    try:
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding application): leave them alone
        pass
