"""Perturbation sensitivity: the chapter's ``perturb_paths`` experiment for any alignment
method (one point of one frame moves by growing amounts along an axis, the copies are
aligned, and every point's displacement per unit move is measured), and the points far
from the moved one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._names import PERTURB_AMOUNT, PERTURB_STEPS
from ..errors import DataError, ParameterError
from .registry import Method, resolve_method


def perturb_frames(
    frame: np.ndarray,
    point: int,
    steps: int = PERTURB_STEPS,
    amount: float = PERTURB_AMOUNT,
    axis: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Copies of one frame with one point moved by growing amounts.

    As the chapter's ``perturb_paths``: copy ``s`` has ``point`` moved by
    ``-delta[s]`` along ``axis``, ``delta = linspace(0, amount, steps)``.

    Returns
    -------
    frames : ndarray, shape (steps, N, D), float64
    delta : ndarray, shape (steps,), float64
    """
    f = np.asarray(frame, dtype=np.float64)
    if f.ndim == 3 and f.shape[0] == 1:
        f = f[0]
    if f.ndim != 2 or f.shape[-1] not in (2, 3):
        raise DataError(f"frame has shape {f.shape}, not (points, 2 or 3)", "pass one frame")
    n, dim = f.shape
    if not -n <= point < n:
        raise ParameterError(f"point {point} is out of range for {n} points", f"use 0..{n - 1}")
    if not 0 <= axis < dim:
        raise ParameterError(f"axis {axis} is out of range in {dim}D", "use 0 (x), 1 (y) or 2 (z)")
    if steps < 2 or not amount > 0:
        raise ParameterError(
            f"steps={steps}, amount={amount}", "use at least 2 steps and a positive amount"
        )
    delta = np.linspace(0.0, float(amount), int(steps))
    out = np.repeat(f[None], len(delta), axis=0)
    out[:, point, axis] -= delta
    return out, delta


def perturb_aligned(
    frame: np.ndarray,
    method: str | Method,
    point: int,
    steps: int = PERTURB_STEPS,
    amount: float = PERTURB_AMOUNT,
    axis: int = 0,
    masses: np.ndarray | None = None,
    method_params: dict | None = None,
) -> np.ndarray:
    """The perturbed copies of :func:`perturb_frames`, aligned by ``method``.

    ``method_params`` go to :func:`get_method` (``point``, ``points``, ``sign``). The
    copies are aligned as one short trajectory (step 0, the unperturbed frame, is
    the Kabsch reference and starts the principal-axes sign continuity).

    Returns
    -------
    ndarray, shape (steps, N, D), float64
    """
    frames, _ = perturb_frames(frame, point, steps, amount, axis)
    m = resolve_method(method, frames.shape[-1], **(method_params or {}))
    if m.kind != "coords":
        raise ParameterError(f"{m.name} does not align coordinates", "pick an alignment method")
    return np.asarray(m(frames, masses).values, dtype=np.float64)


def sensitivity(
    frame: np.ndarray,
    methods: Sequence[str | Method],
    point: int,
    steps: int = PERTURB_STEPS,
    amount: float = PERTURB_AMOUNT,
    axis: int = 0,
    masses: np.ndarray | None = None,
    method_params: dict | None = None,
) -> np.ndarray:
    """How far every point moves in the aligned frame per unit perturbation of one point.

    For each method, the displacement ``d[s, i] = |y[s, i] - y[0, i]|`` of point ``i``
    after aligning copy ``s`` (see :func:`perturb_aligned`) is fitted by a line through
    the origin against the perturbation ``delta[s]``; the slope
    ``sum_s delta[s] d[s, i] / sum_s delta[s]^2`` is the sensitivity (dimensionless:
    length per length). Without alignment it is 1 for the moved point and 0 elsewhere.

    Parameters
    ----------
    frame : array_like, shape (N, D)
    methods : sequence of str or Method
        Coordinate methods (:data:`COORD_METHODS`).
    point : int
        The perturbed point.

    Returns
    -------
    ndarray, shape (len(methods), N), float64
    """
    _, delta = perturb_frames(frame, point, steps, amount, axis)
    out = []
    for meth in methods:
        y = perturb_aligned(frame, meth, point, steps, amount, axis, masses, method_params)
        d = np.sqrt(np.sum((y - y[0]) ** 2, axis=-1))
        out.append(delta @ d / (delta @ delta))
    return np.array(out)


def sensitivity_matrix(
    frame: np.ndarray,
    methods: Sequence[str | Method],
    perturbed: Sequence[int] | None = None,
    steps: int = PERTURB_STEPS,
    amount: float = PERTURB_AMOUNT,
    axis: int = 0,
    masses: np.ndarray | None = None,
    method_params: dict | None = None,
) -> np.ndarray:
    """:func:`sensitivity` for several perturbed points.

    Returns
    -------
    ndarray, shape (len(methods), len(perturbed), N), float64
        ``[m, p, i]``: displacement of point ``i`` per unit move of point ``perturbed[p]``
        under method ``m``. ``perturbed`` defaults to every point.
    """
    n = np.asarray(frame).shape[-2]
    pts = range(n) if perturbed is None else perturbed
    per = [sensitivity(frame, methods, p, steps, amount, axis, masses, method_params) for p in pts]
    return np.stack(per, axis=1)


def far_points(frame: np.ndarray, point: int) -> tuple[np.ndarray, float]:
    """The points far from ``point`` in space: the farther half of the others.

    Parameters
    ----------
    frame : array_like, shape (N, D)
    point : int

    Returns
    -------
    far : ndarray, shape (K,), int64
        Indices of the points at least the median distance from ``point`` (itself
        excluded); empty for a single point.
    distance : float
        That median distance, in length units.
    """
    f = np.asarray(frame, dtype=np.float64)
    d = np.sqrt(np.sum((f - f[point]) ** 2, axis=-1))
    others = np.delete(np.arange(f.shape[0]), point)
    if others.size == 0:
        return others.astype(np.int64), 0.0
    cut = float(np.median(d[others]))
    return others[d[others] >= cut].astype(np.int64), cut


__all__ = [
    "far_points",
    "perturb_aligned",
    "perturb_frames",
    "sensitivity",
    "sensitivity_matrix",
]
