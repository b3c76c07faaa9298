"""Exceptions raised by trajalign.

Every error a user can cause derives from :class:`TrajalignError`. Its message names the
problem and, after ``hint``, how to fix it; the command line prints it as one line
``Error: <message> (<hint>)`` and exits with status 1.
"""

from __future__ import annotations

__all__ = [
    "ClusterError",
    "ClusterLost",
    "DataError",
    "InputError",
    "KeepsPartial",
    "NumericalError",
    "OutputError",
    "ParameterError",
    "ResumeError",
    "SelectionError",
    "TrajalignError",
]


class TrajalignError(Exception):
    """Base class of every error trajalign raises for bad input or a failed run.

    Parameters
    ----------
    message : str
        What is wrong.
    hint : str, optional
        How to fix it.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __reduce__(self):
        # a worker's error reaches the driver pickled: keep the hint and any attributes
        return (type(self), (self.message, self.hint), self.__dict__)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class InputError(TrajalignError):
    """An input file is missing, unreadable, or not a trajectory trajalign can use."""


class DataError(TrajalignError, ValueError):
    """Coordinates or other arrays have the wrong shape, dtype or values (NaN, inf).

    ``frame`` is the frame the problem is in, where it is one frame (numbered within the
    array the API was given, so that the pipeline can name the source frame instead),
    and ``name`` the array's name in the message."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        frame: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.frame = frame
        self.name = name


class SelectionError(TrajalignError, ValueError):
    """An atom selection or point index list is empty, malformed or out of range."""


class ParameterError(TrajalignError, ValueError):
    """An option value makes no sense (a zero chunk size, negative masses, ...)."""


class OutputError(TrajalignError):
    """The output path cannot be written (exists, is a folder, folder missing, ...)."""


class NumericalError(TrajalignError, ArithmeticError):
    """A computation is undefined for the given frame (coincident points, ...)."""


class ClusterError(TrajalignError):
    """The Dask cluster cannot be reached, or its workers failed a block."""


class KeepsPartial:
    """What a stopped run kept: mixed into the exceptions that end a run but keep its
    finished blocks for ``--resume`` (:class:`ClusterLost`, and the stops of
    :mod:`trajalign._signals`). The pipeline fills the fields with :meth:`keep`."""

    #: the partial output holding the finished blocks; None when nothing was kept
    partial: str | None = None
    blocks_done: int = 0
    blocks_total: int = 0

    def keep(self, partial: str, blocks_done: int, blocks_total: int) -> None:
        self.partial, self.blocks_done, self.blocks_total = partial, blocks_done, blocks_total


class ClusterLost(KeepsPartial, ClusterError):
    """The cluster failed mid-run (workers or scheduler gone): the finished blocks are
    kept in the partial output for ``--resume``, and the hint says how many."""


class ResumeError(TrajalignError):
    """``--resume`` found a partial output made with other parameters or inputs."""
