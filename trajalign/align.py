"""Public alignment functions: centering (and, later, rotations).

Each function validates and casts once, then calls a Numba kernel from
:mod:`trajalign.kernels`. Inputs are never modified.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ._validate import (
    as_coords,
    as_index,
    as_weights,
    check_finite_frames,
    nonfinite_error,
)
from .errors import ParameterError

CENTER_METHODS = ("com", "geometric", "point")


def center_with_translation(
    X: np.ndarray,
    method: Literal["com", "geometric", "point"] = "com",
    masses: np.ndarray | None = None,
    point: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Center every frame and also return the subtracted translation.

    Parameters and the centering rule are those of :func:`center`.

    Returns
    -------
    coords : ndarray, shape (F, N, D), dtype of ``X`` (float32 or float64)
        ``X[t] - translation[t]``.
    translation : ndarray, shape (F, D), float64
        The center of each frame.
    """
    # the finite check rides on the kernel's output instead of a pass of its own: a frame
    # with NaN/inf has a non-finite centroid (0 * inf is NaN too), and subtracting a point
    # spreads a non-finite value of that point to the whole frame
    x = as_coords(X, check_finite=False)
    n_frames, n_points, dim = x.shape
    out = np.empty_like(x)
    trans = np.empty((n_frames, dim), dtype=np.float64)
    if method == "point":
        from .kernels.center import center_on_point

        center_on_point(x, as_index(point, n_points), out, trans)
        _raise_if_nonfinite(trans)
        check_finite_frames(out)
        return out, trans
    if method == "com":
        w = as_weights(masses, n_points) if masses is not None else None
    elif method == "geometric":
        w = None
    else:
        raise ParameterError(
            f"unknown centering method {method!r}", f"use one of {', '.join(CENTER_METHODS)}"
        )
    if w is None:
        w = np.full(n_points, 1.0 / n_points)
    from .kernels.center import center_weighted

    center_weighted(x, w, out, trans)
    _raise_if_nonfinite(trans)
    return out, trans


def _raise_if_nonfinite(per_frame: np.ndarray) -> None:
    bad = ~np.isfinite(per_frame).all(axis=tuple(range(1, per_frame.ndim)))
    if bad.any():
        raise nonfinite_error("X", int(np.argmax(bad)))


def center(
    X: np.ndarray,
    method: Literal["com", "geometric", "point"] = "com",
    masses: np.ndarray | None = None,
    point: int = 0,
) -> np.ndarray:
    """Translate every frame so that its center is at the origin.

    Parameters
    ----------
    X : array_like, shape (F, N, D), D in {2, 3}, float32 or float64
        Coordinates; other real dtypes are converted to float64. Not modified.
    method : {"com", "geometric", "point"}
        ``com``: center of mass, mass-weighted when ``masses`` is given, else the
        geometric center. ``geometric``: unweighted mean of the points. ``point``:
        point ``point`` moves to the origin.
    masses : array_like, shape (N,), optional
        Non-negative masses with a positive sum; used by ``com`` only.
    point : int
        Index of the point for ``method="point"``.

    Returns
    -------
    ndarray, shape (F, N, D), same dtype as ``X`` (float32 or float64)
        Centered coordinates.

    Raises
    ------
    DataError
        ``X`` is not (F, N, 2|3) numbers, or holds NaN/inf (the first bad frame is named).
    ParameterError, SelectionError
        Bad method, masses or point index.
    """
    return center_with_translation(X, method=method, masses=masses, point=point)[0]
