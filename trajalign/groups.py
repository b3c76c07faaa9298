"""Points grouped into the columns of a per-point figure (points, residues or bins), and
the mean over each group: shared by the diagnostics and the figures, so it sits below
both (pure numpy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: figures show at most this many columns of points (residues or bins of points)
MAX_GROUPS = 256


def point_groups(
    n_points: int,
    residues: np.ndarray | None = None,
    residue_labels: Sequence[str] | None = None,
    max_groups: int = MAX_GROUPS,
) -> tuple[np.ndarray, list[str], str]:
    """Columns for a per-point figure at any size: points, residues, or bins.

    Up to ``max_groups`` points are their own columns. More points are grouped by residue
    where ``residues`` is given (and there are at most ``max_groups`` residues), else
    into bins of consecutive points (consecutive residues when there are too many).

    Parameters
    ----------
    n_points : int
    residues : array_like, shape (N,), int, optional
        Residue number of each point, in any numbering; points of a residue need not be
        consecutive.
    residue_labels : sequence of str, optional
        A label per point's residue (e.g. ``"MET1"``), shape (N,).
    max_groups : int

    Returns
    -------
    group : ndarray, shape (N,), int64
        The column of each point, 0..G-1, in order of first appearance.
    labels : list of str, length G
        Column labels: the point index, the residue, or the first-last range.
    kind : {"point", "residue", "bin"}
        What a column is (``bin``: consecutive points, or residues, at most
        ``ceil(N / max_groups)`` of them).
    """
    n = int(n_points)
    if n <= max_groups:
        return np.arange(n, dtype=np.int64), [str(i) for i in range(n)], "point"
    if residues is not None:
        res = np.asarray(residues).reshape(-1)
        # numbers in order of first appearance: a residue's column keeps the chain order
        _, first, inv = np.unique(res, return_index=True, return_inverse=True)
        rank = np.empty(first.size, dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(first.size)
        rgroup = rank[inv]
        rlab = (
            [str(residue_labels[i]) for i in np.sort(first)]
            if residue_labels is not None
            else [str(res[i]) for i in np.sort(first)]
        )
        if first.size <= max_groups:
            return rgroup, rlab, "residue"
        width = -(-first.size // max_groups)
        group = rgroup // width
        labels = [
            f"{rlab[g * width]}-{rlab[min((g + 1) * width, len(rlab)) - 1]}"
            for g in range(int(group.max()) + 1)
        ]
        return group, labels, "bin"
    width = -(-n // max_groups)
    group = np.arange(n, dtype=np.int64) // width
    labels = [f"{g * width}-{min((g + 1) * width, n) - 1}" for g in range(int(group.max()) + 1)]
    return group, labels, "bin"


def group_mean(values: np.ndarray, group: np.ndarray, exclude: np.ndarray | None = None):
    """Mean of ``values`` over the points of each group (the last axis).

    Parameters
    ----------
    values : array_like, shape (..., N)
    group : array_like, shape (N,), int, 0..G-1
    exclude : array_like, shape (..., N), bool, optional
        Points left out of their group's mean (e.g. the perturbed point itself).

    Returns
    -------
    ndarray, shape (..., G), float64
        NaN for a group with no point left.
    """
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(group, dtype=np.int64)
    n_groups = int(g.max()) + 1 if g.size else 0
    onehot = np.zeros((g.size, n_groups))
    onehot[np.arange(g.size), g] = 1.0
    keep = np.ones(v.shape) if exclude is None else (~np.asarray(exclude, bool)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((v * keep) @ onehot) / (np.broadcast_to(keep, v.shape) @ onehot)


def trace_points(
    residues: np.ndarray, names: Sequence[str] | None = None, max_points: int = 400
) -> np.ndarray:
    """One point per residue to draw a large system by: the ``CA`` where the residue has
    one, else its first point; evenly thinned to ``max_points`` residues.

    Parameters
    ----------
    residues : array_like, shape (N,), int
        Residue number of each point.
    names : sequence of str, shape (N,), optional
        Atom names.

    Returns
    -------
    ndarray, shape (K,), int64
        Point indices in order of first appearance of their residue (a chain trace).
    """
    res = np.asarray(residues).reshape(-1)
    _, first = np.unique(res, return_index=True)
    first = np.sort(first)
    pick = first.copy()
    if names is not None:
        nm = np.asarray(names).astype(str)
        ca = np.flatnonzero(nm == "CA")
        if ca.size:
            # the first CA of each residue replaces its first point
            r_of = {r: k for k, r in enumerate(res[first])}
            for i in ca[::-1]:
                pick[r_of[res[i]]] = i
    if pick.size > max_points:
        pick = pick[np.linspace(0, pick.size - 1, max_points).round().astype(np.int64)]
    return pick.astype(np.int64)


__all__ = ["MAX_GROUPS", "group_mean", "point_groups", "trace_points"]
