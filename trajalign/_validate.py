"""Checks and casts at the boundary of the public API (cf. mdtraj's ``ensure_type``)."""

from __future__ import annotations

import numpy as np

from .errors import DataError, ParameterError, SelectionError

__all__ = [
    "as_coords",
    "as_kernel_input",
    "as_index",
    "as_weights",
    "check_finite_frames",
    "nonfinite_error",
    "row_blocks",
]


class _Alias:
    """An array's memory, shape and strides as a writable ``__array_interface__``."""

    def __init__(self, a: np.ndarray) -> None:
        self.base = a  # keeps the memory alive as long as the alias (numpy's base)
        self.__array_interface__ = {
            "data": (a.__array_interface__["data"][0], False),
            "shape": a.shape,
            "strides": a.strides,
            "typestr": a.dtype.str,
            "version": 3,
        }


def as_kernel_input(a: np.ndarray) -> np.ndarray:
    """``a`` itself, or where it is read-only a writable alias of the same memory.

    Numba types a read-only array as a type of its own, so every kernel would be
    compiled a second time (seconds each, on every machine) for read-only input
    (``np.load(..., mmap_mode="r")``, arrays from Dask or other libraries); the kernels
    never write their inputs (the test suite's ``unchanged`` fixture checks this), so the
    alias runs the code compiled for writable arrays. The alias must never be handed to
    anything that writes, nor returned: writing into a read-only memory map kills the
    process (SIGSEGV)."""
    if a.flags.writeable:
        return a
    return np.asarray(_Alias(a))


def as_coords(x: np.ndarray, name: str = "X", check_finite: bool = True) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32/float64 (F, N, D) array, D in {2, 3}.

    Float32 and float64 pass through without a copy when already contiguous (read-only
    input as a writable alias, for the kernels: :func:`as_kernel_input`); integer and
    float16 data are converted to float64. NaN or inf is an error naming the first frame.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise DataError(
            f"{name} has dtype {arr.dtype}, not numbers",
            "pass a float array shaped (frames, points, 2 or 3)",
        )
    if arr.ndim == 2 and arr.shape[-1] in (2, 3):
        raise DataError(
            f"{name} has shape {arr.shape}, one frame without a frame axis",
            "add one with X[None] to make it (1, points, dim)",
        )
    if arr.ndim != 3 or arr.shape[-1] not in (2, 3):
        raise DataError(
            f"{name} has shape {arr.shape}, not (frames, points, 2 or 3)",
            "reshape it to (frames, points, dim) with dim 2 or 3",
        )
    if arr.shape[0] == 0:
        raise DataError(f"{name} has zero frames", "pass at least one frame")
    if arr.shape[1] == 0:
        raise DataError(f"{name} has zero points", "pass at least one point per frame")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    arr = as_kernel_input(np.ascontiguousarray(arr))
    if check_finite:
        check_finite_frames(arr, name)
    return arr


def check_finite_frames(arr: np.ndarray, name: str = "X", frames=None) -> None:
    """Raise :class:`DataError` naming the first frame of ``arr`` with NaN or inf.

    ``frames`` maps rows of ``arr`` to the frame numbers to report (source frames).
    """
    bad = first_nonfinite_frame(arr)
    if bad >= 0:
        raise nonfinite_error(name, int(frames[bad]) if frames is not None else bad)


def first_nonfinite_frame(arr: np.ndarray) -> int:
    """Index of the first frame of ``arr`` (F, ...) holding a NaN or inf, or -1.

    numpy in blocks of about 4 M values (a bounded temporary): a Numba kernel for this
    cost a second or more of compilation in every first run, for a pass numpy makes at
    memory speed.
    """
    for a, rows in row_blocks(arr):
        ok = np.isfinite(rows).all(axis=1)
        if not ok.all():
            return a + int(np.argmin(ok))
    return -1


def row_blocks(arr: np.ndarray, values: int = 1 << 22):
    """``(first row, rows)`` of ``arr`` (F, ...) seen as (F, -1), in runs of rows of about
    ``values`` values, so that a numpy test over them keeps a bounded temporary."""
    n_frames = arr.shape[0]
    per = int(np.prod(arr.shape[1:], dtype=np.int64))
    step = max(1, values // max(1, per))
    # an explicit row length: reshape(F, -1) cannot infer it when the array is empty
    flat = arr.reshape(n_frames, per)
    for a in range(0, n_frames, step):
        yield a, flat[a : a + step]


def nonfinite_error(name: str, frame: int) -> DataError:
    """The error for NaN/inf in ``frame``; ``.frame`` lets the pipeline renumber it."""
    return DataError(
        f"{name} has NaN or inf coordinates in frame {frame}",
        "remove or repair that frame, or choose frames with --start/--stop",
        frame=frame,
        name=name,
    )


def as_weights(masses, n_points: int, name: str = "masses") -> np.ndarray:
    """Return masses as float64 (N,) weights normalised to sum 1."""
    w = np.asarray(masses, dtype=np.float64).reshape(-1)
    if w.shape != (n_points,):
        raise ParameterError(
            f"{name} has {w.size} values for {n_points} points", "give one mass per point"
        )
    if not np.all(np.isfinite(w)):
        raise ParameterError(f"{name} contains NaN or inf", "give finite masses")
    if np.any(w < 0):
        raise ParameterError(f"{name} contains negative values", "masses must be >= 0")
    total = w.sum()
    if total <= 0:
        raise ParameterError(
            f"{name} sum to {total:g}", "give positive masses, or use the geometric center"
        )
    return w / total


def as_index(k, n_points: int, name: str = "point") -> int:
    """Check a point index against ``n_points``; negative indices count from the end."""
    try:
        # int() truncates 1.5 to 1 and raises OverflowError for inf: neither is an index
        if isinstance(k, float | np.floating) and not float(k).is_integer():
            raise ValueError
        k = int(k)
    except (TypeError, ValueError, OverflowError):
        raise SelectionError(f"{name} {k!r} is not an integer", "give a point index") from None
    if not -n_points <= k < n_points:
        raise SelectionError(
            f"{name} {k} is out of range for {n_points} points",
            f"use an index from 0 to {n_points - 1}",
        )
    return k % n_points
