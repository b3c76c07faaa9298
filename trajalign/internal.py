"""Internal coordinates and their featurisations (sections 5.3.2, 5.3.6, 5.3.7 and 5.7 of
the equivariance chapter).

Distances, angles and dihedrals are invariant under rigid motion of a frame; the sorted
eigenvalues of the inverse-distance matrix (:func:`eigvals`) are also invariant under a
renumbering of the atoms. Where a periodic box is given, every difference vector takes the
minimum image first, as MDAnalysis' ``calc_bonds(box=...)`` and MDTraj's
``periodic=True`` do.

Each function validates and casts once at the boundary, checks tuple indices (numba does
not), then calls a Numba kernel from :mod:`trajalign.kernels.geometry` that writes
straight into the output. Inputs are never modified.
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np

from ._validate import as_coords, as_kernel_input, row_blocks
from .box import as_box, box_vectors, kernel_box_table, pad3
from .errors import DataError, InputError, NumericalError, ParameterError, SelectionError

# box_vectors lives in trajalign.box; re-exported here, where it always was
__all__ = [
    "UNDEFINED_POLICIES",
    "all_pairs",
    "angles",
    "angles_from_bonds",
    "angles_raw",
    "bins",
    "box_vectors",
    "chain_tuples",
    "check_eigvals",
    "check_undefined",
    "default_gamma",
    "dihedrals",
    "dihedrals_from_bonds",
    "dihedrals_raw",
    "distances",
    "distances_raw",
    "eigvals",
    "eigvals_raw",
    "inverse",
    "nan_per_row",
    "rbf",
    "rbf_centers",
    "read_tuples",
    "repeat",
    "sincos",
]

UNDEFINED_POLICIES = ("raise", "nan")

# ------------------------------------------------------------------------ tuples


def all_pairs(n_points: int) -> np.ndarray:
    """Every pair ``i < j`` of ``n_points`` points, shape (N(N-1)/2, 2) int64, in the
    order of ``np.triu_indices(n_points, 1)`` (that of ``scipy.spatial.distance.pdist``)."""
    i, j = np.triu_indices(int(n_points), 1)
    return np.stack([i, j], axis=1).astype(np.int64)


def chain_tuples(n_points: int, width: int) -> np.ndarray:
    """Consecutive points ``(i, ..., i + width - 1)``: shape (N - width + 1, width) int64.

    ``width`` 2 gives bonds, 3 angles and 4 dihedrals of a chain (empty if too short).
    """
    if width not in (2, 3, 4):
        raise ParameterError(f"tuple width {width} is not 2, 3 or 4", "use 2, 3 or 4")
    k = max(int(n_points) - width + 1, 0)
    return (np.arange(k)[:, None] + np.arange(width)[None, :]).astype(np.int64)


def angles_from_bonds(bonds: np.ndarray) -> np.ndarray:
    """Angles ``(i, j, k)`` of a bond graph: every two bonds sharing atom ``j``.

    Parameters
    ----------
    bonds : array_like, shape (B, 2), int

    Returns
    -------
    ndarray, shape (A, 3), int64
        Sorted by the vertex ``j``, then ``i < k``; what MDAnalysis' guesser derives.
    """
    nbrs = _neighbours(bonds)
    out = [(i, j, k) for j in sorted(nbrs) for a, i in enumerate(nbrs[j]) for k in nbrs[j][a + 1 :]]
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def dihedrals_from_bonds(bonds: np.ndarray) -> np.ndarray:
    """Proper dihedrals ``(i, j, k, l)`` of a bond graph: bonds i-j, j-k, k-l, i != l.

    Parameters
    ----------
    bonds : array_like, shape (B, 2), int

    Returns
    -------
    ndarray, shape (Q, 4), int64
        One per central bond ``j < k`` and outer atoms, sorted.
    """
    nbrs = _neighbours(bonds)
    out = []
    for j, k in sorted({(min(a, b), max(a, b)) for a, b in np.asarray(bonds).tolist()}):
        for i in nbrs[j]:
            if i == k:
                continue
            for m in nbrs[k]:
                if m != j and m != i:
                    out.append((i, j, k, m))
    return np.array(out, dtype=np.int64).reshape(-1, 4)


def _neighbours(bonds) -> dict[int, list[int]]:
    nbrs: dict[int, set[int]] = {}
    for a, b in np.asarray(bonds, dtype=np.int64).reshape(-1, 2).tolist():
        if a == b:
            continue
        nbrs.setdefault(a, set()).add(b)
        nbrs.setdefault(b, set()).add(a)
    return {k: sorted(v) for k, v in nbrs.items()}


def read_tuples(path: str | os.PathLike, n_points: int) -> np.ndarray:
    """Read index tuples from a text file: one tuple per line, 2, 3 or 4 integer columns.

    Columns may be separated by spaces, tabs or commas; ``#`` starts a comment. Indices
    count the selected points from 0 (``/trajalign/atom_indices`` numbering).

    Returns
    -------
    ndarray, shape (K, 2|3|4), int64
        The width says which feature the file describes: distances, angles or dihedrals.

    Raises
    ------
    InputError
        Missing file, a line that is not integers, lines of different widths, a width
        other than 2-4, no tuples, or an index out of range (the line is named).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"--pairs {path}: no such file", "give bonds, chain, all or a file")
    rows: list[list[int]] = []
    width = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].replace(",", " ").split()
            if not text:
                continue
            try:
                vals = [int(t) for t in text]
            except ValueError:
                raise InputError(
                    f"{path} line {lineno}: {' '.join(text)!r} is not integer indices",
                    "write 2, 3 or 4 point indices per line, counted from 0",
                ) from None
            if len(vals) not in (2, 3, 4):
                raise InputError(
                    f"{path} line {lineno} has {len(vals)} columns",
                    "write 2 (distances), 3 (angles) or 4 (dihedrals) indices per line",
                )
            if width is None:
                width = len(vals)
            elif len(vals) != width:
                raise InputError(
                    f"{path} line {lineno} has {len(vals)} columns, earlier lines {width}",
                    "put pairs, triplets and quadruplets in separate files (repeat --pairs)",
                )
            for v in vals:
                if not 0 <= v < n_points:
                    raise InputError(
                        f"{path} line {lineno}: index {v} is out of range for "
                        f"{n_points} selected points",
                        f"use indices 0 to {n_points - 1} (positions in the selection)",
                    )
            if len(set(vals)) != len(vals):
                raise InputError(
                    f"{path} line {lineno} repeats a point: {' '.join(map(str, vals))}",
                    "a tuple needs distinct points",
                )
            rows.append(vals)
    if not rows:
        raise InputError(f"{path} holds no index tuples", "write one tuple per line")
    return np.array(rows, dtype=np.int64)


def _as_tuples(tuples, width: int, n_points: int, name: str) -> np.ndarray:
    """Check and cast index tuples: (K, width) int64, C-contiguous, in range, distinct."""
    t = np.asarray(tuples)
    if t.size == 0:
        return np.zeros((0, width), dtype=np.int64)
    if t.ndim == 1 and t.size == width:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != width:
        raise SelectionError(
            f"{name} has shape {t.shape}, not (K, {width})",
            f"give an array of {width}-index rows",
        )
    if not np.issubdtype(t.dtype, np.integer):
        if not (np.issubdtype(t.dtype, np.floating) and np.all(t == np.round(t))):
            raise SelectionError(f"{name} holds non-integer indices", "give integer indices")
    t = np.ascontiguousarray(t, dtype=np.int64)
    bad = np.flatnonzero(np.any((t < 0) | (t >= n_points), axis=1))
    if bad.size:
        row = t[bad[0]]
        raise SelectionError(
            f"{name} row {bad[0]} {row.tolist()} has an index out of range for {n_points} points",
            f"use indices 0 to {n_points - 1}",
        )
    srt = np.sort(t, axis=1)
    rep = np.flatnonzero(np.any(srt[:, 1:] == srt[:, :-1], axis=1))
    if rep.size:
        raise SelectionError(
            f"{name} row {rep[0]} {t[rep[0]].tolist()} repeats a point",
            "a tuple needs distinct points",
        )
    return t


def _is_all_pairs(t: np.ndarray, n_points: int) -> bool:
    if t.shape[0] != n_points * (n_points - 1) // 2 or t.shape[0] == 0:
        return False
    i, j = np.triu_indices(n_points, 1)
    return bool(np.array_equal(t[:, 0], i) and np.array_equal(t[:, 1], j))


# --------------------------------------------------------------- undefined values


# NaN scans in numpy, a few rows at a time (the boolean mask stays small): a Numba kernel
# for them cost a second of compilation on every command's first run, for a pass at
# memory speed that numpy makes as fast
def _nan_row_runs(values: np.ndarray):
    """(first row, mask) of runs of rows of a 2D array, mask = isnan of those rows."""
    for lo, rows in row_blocks(values):
        yield lo, np.isnan(rows)


def nan_per_row(values: np.ndarray) -> np.ndarray:
    """Number of NaN values in each row.

    Parameters
    ----------
    values : ndarray, shape (F, K), float32 or float64

    Returns
    -------
    ndarray, shape (F,), int64
    """
    out = np.zeros(values.shape[0], dtype=np.int64)
    for lo, mask in _nan_row_runs(values):
        out[lo : lo + mask.shape[0]] = np.count_nonzero(mask, axis=1)
    return out


def _first_nan(values: np.ndarray) -> tuple[int, int]:
    """(row, column) of the first NaN in row-major order, or (-1, -1)."""
    for lo, mask in _nan_row_runs(values):
        hit = mask.any(axis=1)
        if hit.any():
            row = int(np.argmax(hit))
            return lo + row, int(np.argmax(mask[row]))
    return -1, -1


def check_undefined(
    values: np.ndarray,
    tuples: np.ndarray | None,
    kind: str,
    undefined: str = "raise",
    frames: np.ndarray | None = None,
    atom_ids: np.ndarray | None = None,
    nan_option: str = "undefined='nan'",
) -> tuple[int, int]:
    """Raise on NaN in ``values`` (F, K) 2D, or count them when ``undefined="nan"``.

    Returns ``(n_nan, n_frames_with_nan)``. The error names the frame (``frames`` maps
    rows to source frames) and the tuple (``atom_ids`` maps points to reported ids);
    ``nan_option`` is how the hint spells the NaN choice (the CLI's ``--undefined nan``).
    """
    if undefined not in UNDEFINED_POLICIES:
        raise ParameterError(
            f"undefined={undefined!r} is not one of {UNDEFINED_POLICIES}",
            "use 'raise' (an error) or 'nan' (write NaN and count it)",
        )
    if undefined == "nan":
        per_row = nan_per_row(values)
        return int(per_row.sum()), int(np.count_nonzero(per_row))
    row, col = _first_nan(values)
    if row < 0:
        return 0, 0
    frame = int(frames[row]) if frames is not None else int(row)
    col = int(col)
    what = {
        "distances": "the inverse of distance",
        "angles": "angle",
        "dihedrals": "dihedral",
        "eigvals": "the inverse-distance matrix",
    }.get(kind, kind)
    if tuples is not None and tuples.shape[0] > col:
        t = tuples[col] if atom_ids is None else np.asarray(atom_ids)[tuples[col]]
        where = f"{what} {col} (points {'-'.join(map(str, t.tolist()))})"
    else:
        where = what
    reason = {
        "angles": "a bond has zero length (coincident points)",
        "dihedrals": "coincident points or three collinear points leave a plane undefined",
    }.get(kind, "two points coincide (zero distance)")
    raise NumericalError(
        f"{where} is undefined in frame {frame}: {reason}",
        f"fix or drop that frame or tuple, or write NaN there with {nan_option}",
    )


# --------------------------------------------------------------------- geometry


def _prepare(X, box, name="X"):
    x = as_coords(X, name)
    h, mode = as_box(box, x.shape[0], x.shape[2])
    return x, h, mode


def distances_raw(x: np.ndarray, pairs, h: np.ndarray, mode: int) -> np.ndarray:
    """Distances of validated (F, N, 3) coordinates into a new (F, P) array of x's dtype;
    ``pairs`` None means every pair (without building the index array)."""
    from .kernels.geometry import distances_all_kernel, distances_kernel

    n = x.shape[1]
    n_pairs = n * (n - 1) // 2 if pairs is None else pairs.shape[0]
    out = np.empty((x.shape[0], n_pairs), dtype=x.dtype)
    if n_pairs == 0:
        return out
    if pairs is None or _is_all_pairs(pairs, n):
        distances_all_kernel(x, kernel_box_table(h, mode), out)
    else:
        distances_kernel(x, pairs, kernel_box_table(h, mode), out)
    return out


def angles_raw(x, triplets, h, mode):
    from .kernels.geometry import angles_kernel

    out = np.empty((x.shape[0], triplets.shape[0]), dtype=x.dtype)
    if triplets.shape[0]:
        angles_kernel(x, triplets, kernel_box_table(h, mode), out)
    return out


def dihedrals_raw(x, quads, h, mode):
    from .kernels.geometry import dihedrals_kernel

    out = np.empty((x.shape[0], quads.shape[0]), dtype=x.dtype)
    if quads.shape[0]:
        dihedrals_kernel(x, quads, kernel_box_table(h, mode), out)
    return out


def distances(X: np.ndarray, pairs: np.ndarray | str, box: np.ndarray | None = None) -> np.ndarray:
    """Distance between the two points of each pair in every frame.

    Parameters
    ----------
    X : array_like, shape (F, N, D), D in {2, 3}, float32 or float64
        Coordinates; other real dtypes are converted to float64. Not modified.
    pairs : array_like, shape (P, 2), int, or ``"all"``
        Point indices (0 <= index < N). ``"all"`` is every pair ``i < j`` in
        :func:`all_pairs` order, computed by a faster kernel.
    box : array_like, optional
        Periodic cell for the minimum image convention. 3D: ``[a, b, c, alpha, beta,
        gamma]`` (6,) or (F, 6) (the MDAnalysis convention, angles in degrees), or box
        vectors as lower-triangular rows (3, 3) or (F, 3, 3). 2D: edge lengths (2,) or
        (F, 2). A zero edge of a rectangular box is not periodic; a triclinic box needs
        its a and b edges, and c unless the whole c row is zero (a 2D lattice). ``None``:
        no periodicity. The minimum image is exact however skewed the box
        (:func:`trajalign.minimum_image`).

    Returns
    -------
    ndarray, shape (F, P), dtype of ``X`` (float32 or float64)
        Distances in the length unit of ``X``, computed in float64.

    Raises
    ------
    DataError
        ``X`` is not (F, N, 2|3) finite numbers.
    SelectionError
        ``pairs`` has the wrong shape, an index out of range, or a repeated point.
    ParameterError
        A malformed box, or a triclinic box with a zero edge or zero volume.

    See Also
    --------
    MDAnalysis.lib.distances.calc_bonds, mdtraj.compute_distances
    """
    x, h, mode = _prepare(X, box)
    n = x.shape[1]
    if isinstance(pairs, str):
        if pairs != "all":
            raise SelectionError(f"pairs={pairs!r} is not an array", "give (P, 2) or 'all'")
        p = None
    else:
        p = _as_tuples(pairs, 2, n, "pairs")
    return distances_raw(pad3(x), p, h, mode)


def angles(
    X: np.ndarray,
    triplets: np.ndarray,
    box: np.ndarray | None = None,
    undefined: Literal["raise", "nan"] = "raise",
) -> np.ndarray:
    """Angle i-j-k at the middle point j of each triplet, in every frame.

    Parameters
    ----------
    X : array_like, shape (F, N, D), D in {2, 3}, float32 or float64
        Coordinates. Not modified.
    triplets : array_like, shape (A, 3), int
        Point indices ``(i, j, k)``; ``j`` is the vertex.
    box : array_like, optional
        Periodic cell, as for :func:`distances`; both bond vectors take the minimum image.
    undefined : {"raise", "nan"}
        An angle with a zero-length bond (coincident points) is undefined: ``"raise"``
        raises :class:`NumericalError` naming the frame and triplet, ``"nan"`` returns NaN
        there.

    Returns
    -------
    ndarray, shape (F, A), dtype of ``X``
        Angles in radians in [0, pi], as ``atan2(|u x v|, u . v)`` (accurate near 0 and pi).

    See Also
    --------
    MDAnalysis.lib.distances.calc_angles, mdtraj.compute_angles
    """
    x, h, mode = _prepare(X, box)
    t = _as_tuples(triplets, 3, x.shape[1], "triplets")
    out = angles_raw(pad3(x), t, h, mode)
    check_undefined(out, t, "angles", undefined)
    return out


def dihedrals(
    X: np.ndarray,
    quadruplets: np.ndarray,
    box: np.ndarray | None = None,
    undefined: Literal["raise", "nan"] = "raise",
) -> np.ndarray:
    """Dihedral (torsion) angle i-j-k-l of each quadruplet, in every frame.

    Parameters
    ----------
    X : array_like, shape (F, N, 3), float32 or float64
        Coordinates; dihedrals need 3D. Not modified.
    quadruplets : array_like, shape (Q, 4), int
        Point indices ``(i, j, k, l)``; the torsion is about the bond j-k.
    box : array_like, optional
        Periodic cell, as for :func:`distances`; the three bond vectors take the minimum
        image.
    undefined : {"raise", "nan"}
        A dihedral whose planes are undefined (coincident points, or i, j, k or j, k, l
        collinear) raises :class:`NumericalError` naming frame and quadruplet, or is NaN.

    Returns
    -------
    ndarray, shape (F, Q), dtype of ``X``
        Radians in (-pi, pi], IUPAC sign convention (as MDAnalysis and MDTraj): positive
        when, looking along j -> k, the bond k-l is rotated clockwise from i-j; trans is pi.

    Raises
    ------
    DataError
        2D input.

    See Also
    --------
    MDAnalysis.lib.distances.calc_dihedrals, mdtraj.compute_dihedrals
    """
    x, h, mode = _prepare(X, box)
    if x.shape[2] != 3:
        raise DataError(
            "dihedrals need 3D coordinates; the input is 2D",
            "use distances and angles for 2D data",
        )
    t = _as_tuples(quadruplets, 4, x.shape[1], "quadruplets")
    out = dihedrals_raw(x, t, h, mode)
    check_undefined(out, t, "dihedrals", undefined)
    return out


def eigvals_raw(x, h, mode):
    from .kernels.geometry import inverse_eigvals_kernel

    out = np.empty((x.shape[0], x.shape[1]), dtype=x.dtype)
    bad = np.empty(x.shape[0], dtype=np.int64)
    with _one_blas_thread():
        inverse_eigvals_kernel(x, kernel_box_table(h, mode), out, bad)
    return out, bad


def _one_blas_thread():
    """A context in which BLAS/LAPACK run on one thread each.

    The eigenvalue kernel runs one LAPACK solver per frame on every Numba thread; OpenBLAS
    threads inside each oversubscribe the cores (200 points on 2 busy cores: 22 ms per
    frame, 1.3 ms on one BLAS thread). threadpoolctl comes with MDAnalysis; without it
    nothing is limited.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of MDAnalysis
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def eigvals(
    X: np.ndarray,
    box: np.ndarray | None = None,
    undefined: Literal["raise", "nan"] = "raise",
) -> np.ndarray:
    """Sorted eigenvalues of the inverse-distance matrix of each frame (chapter 5.3.2).

    ``M[i, j] = 1 / r_ij`` for ``i != j`` and ``M[i, i] = 0``. Renumbering the points
    permutes rows and columns of ``M`` alike and leaves its spectrum unchanged, so the
    result is invariant under rigid motion and permutation of the points: a
    permutation-invariant descriptor of a frame (the Coulomb-matrix idea of Rupp et al.
    2012 without nuclear charges). Costs O(N^3) per frame.

    Parameters
    ----------
    X : array_like, shape (F, N, D), D in {2, 3}, float32 or float64
        Coordinates. Not modified.
    box : array_like, optional
        Periodic cell, as for :func:`distances` (minimum-image distances).
    undefined : {"raise", "nan"}
        Coincident points make ``M`` undefined: raise naming frame and pair, or a NaN row.

    Returns
    -------
    ndarray, shape (F, N), dtype of ``X``
        Eigenvalues in descending order, in 1 / (the length unit of ``X``).
    """
    x, h, mode = _prepare(X, box)
    out, bad = eigvals_raw(pad3(x), h, mode)
    check_eigvals(out, bad, x.shape[1], undefined)
    return out


def check_eigvals(out, bad, n, undefined, frames=None, atom_ids=None, nan_option="undefined='nan'"):
    rows = np.flatnonzero(bad >= 0)
    if rows.size == 0 or undefined == "nan":
        return int(rows.size * n), int(rows.size)
    f = int(rows[0])
    i, j = divmod(int(bad[f]), n)
    if atom_ids is not None:
        i, j = int(atom_ids[i]), int(atom_ids[j])
    frame = int(frames[f]) if frames is not None else f
    raise NumericalError(
        f"the inverse-distance matrix is undefined in frame {frame}: points {i} and {j} "
        "coincide (zero distance)",
        f"fix or drop that frame, or write NaN there with {nan_option}",
    )


# --------------------------------------------------------------- featurisations


def _as_values(r, name: str) -> np.ndarray:
    a = np.asarray(r)
    if a.dtype == object or not (
        np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
    ):
        raise DataError(f"{name} has dtype {a.dtype}, not numbers", "pass a float array")
    if a.ndim != 2:
        raise DataError(
            f"{name} has shape {a.shape}, not (frames, values)",
            "pass the (F, P) output of distances/angles/dihedrals",
        )
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return as_kernel_input(np.ascontiguousarray(a))


def rbf_centers(r_min: float = 0.0, r_max: float = 10.0, n: int = 20) -> np.ndarray:
    """``n`` equally spaced centres from ``r_min`` to ``r_max`` inclusive, float64 (n,).

    Raises
    ------
    ParameterError
        ``n`` below 2, or ``r_max <= r_min``, or a bound not finite.
    """
    try:
        n_int = int(n)
    except (TypeError, ValueError, OverflowError):  # OverflowError: n = inf
        raise ParameterError(f"rbf n={n!r} is not an integer", "give 2 or more") from None
    if n_int != n or n_int < 2:
        raise ParameterError(
            f"--rbf-n {n} is below 2", "use at least 2 centres (bins, repeats) per value"
        )
    if not (np.isfinite(r_min) and np.isfinite(r_max)):
        raise ParameterError("--rbf-min and --rbf-max must be finite", "give finite numbers")
    if not r_max > r_min:
        raise ParameterError(
            f"--rbf-max {r_max:g} is not above --rbf-min {r_min:g}",
            "give a range with --rbf-max > --rbf-min",
        )
    with np.errstate(over="ignore", invalid="ignore"):
        centers = np.linspace(float(r_min), float(r_max), n_int)
        step = (centers[-1] - centers[0]) / (n_int - 1)
    # r_max - r_min can overflow (NaN/inf centres) or the spacing underflow to 0: the
    # bins kernel rounds (r - r_min) / step to an index, which must stay a number
    if not (np.all(np.isfinite(centers)) and 0 < step < np.inf and np.all(np.diff(centers) > 0)):
        raise ParameterError(
            f"{n_int} centres from {r_min:g} to {r_max:g} are not representable: the range "
            "or the spacing over- or underflows float64",
            "give --rbf-min/--rbf-max within about +-1e300 and a spacing above 1e-300",
        )
    return centers


def default_gamma(centers: np.ndarray) -> float:
    """1 / spacing^2: a Gaussian falls to exp(-1) at the neighbouring centre."""
    step = (centers[-1] - centers[0]) / (centers.size - 1)
    return float(1.0 / (step * step))


def inverse(r: np.ndarray, undefined: Literal["raise", "nan"] = "raise") -> np.ndarray:
    """``1 / r`` (chapter 5.7): near neighbours weigh most.

    Parameters
    ----------
    r : array_like, shape (F, P), float
        Distances, e.g. from :func:`distances`. Not modified.
    undefined : {"raise", "nan"}
        A zero distance raises :class:`NumericalError` naming frame and column, or gives NaN.

    Returns
    -------
    ndarray, shape (F, P), dtype of ``r`` (float32 or float64)
        In 1 / (the unit of ``r``).
    """
    from .kernels.geometry import inverse_kernel

    a = _as_values(r, "r")
    out = np.empty_like(a)
    inverse_kernel(a, out)
    check_undefined(out, None, "distances", undefined)
    return out


def rbf(
    r: np.ndarray,
    r_min: float = 0.0,
    r_max: float = 10.0,
    n: int = 20,
    gamma: float | None = None,
) -> np.ndarray:
    """Gaussian radial basis expansion ``exp(-gamma (r - mu_k)^2)`` (chapter 5.7.3).

    Parameters
    ----------
    r : array_like, shape (F, P), float
        Distances. Not modified.
    r_min, r_max : float
        First and last centre ``mu_k`` (same unit as ``r``); ``r_max > r_min``.
    n : int
        Number of equally spaced centres, at least 2.
    gamma : float, optional
        Width parameter in 1 / unit^2, positive; default ``1 / spacing^2``.

    Returns
    -------
    ndarray, shape (F, P, n), dtype of ``r``
        Smooth, bounded in (0, 1]; row ``[f, p]`` peaks at the centre nearest ``r[f, p]``.
    """
    from .kernels.geometry import rbf_kernel

    a = _as_values(r, "r")
    centers = rbf_centers(r_min, r_max, n)
    g = default_gamma(centers) if gamma is None else float(gamma)
    if not (np.isfinite(g) and g > 0):
        # g, not gamma: the default 1 / spacing^2 over- or underflows for extreme ranges
        raise ParameterError(f"--rbf-gamma {g:g} is not positive and finite", "give gamma > 0")
    out = np.empty((*a.shape, centers.size), dtype=a.dtype)
    rbf_kernel(a, centers, g, out)
    return out


def bins(r: np.ndarray, r_min: float = 0.0, r_max: float = 10.0, n: int = 20) -> np.ndarray:
    """One-hot histogram of each value over the centres of :func:`rbf` (chapter 5.7.2).

    Bin ``k`` covers the values nearest centre ``mu_k``; the first and last bins are
    open-ended, so every finite value has exactly one hot bin.

    Parameters
    ----------
    r : array_like, shape (F, P), float
        Distances. Not modified.
    r_min, r_max, n
        Centres, as for :func:`rbf`.

    Returns
    -------
    ndarray, shape (F, P, n), uint8
        1 in the bin of each value, 0 elsewhere (all 0 for NaN).
    """
    from .kernels.geometry import bins_kernel

    a = _as_values(r, "r")
    centers = rbf_centers(r_min, r_max, n)
    out = np.empty((*a.shape, centers.size), dtype=np.uint8)
    bins_kernel(a, centers, out)
    return out


def repeat(r: np.ndarray, n: int = 20) -> np.ndarray:
    """Each value repeated ``n`` times along a new last axis (chapter 5.7.1).

    Returns
    -------
    ndarray, shape (F, P, n), dtype of ``r``
    """
    from .kernels.geometry import repeat_kernel

    a = _as_values(r, "r")
    if not isinstance(n, int | np.integer) or n < 1:
        raise ParameterError(f"repeat n={n!r} is not a positive integer", "give n >= 1")
    out = np.empty((*a.shape, int(n)), dtype=a.dtype)
    repeat_kernel(a, int(n), out)
    return out


def sincos(phi: np.ndarray) -> np.ndarray:
    """(sin, cos) of periodic angles, the usual input for learning on dihedrals.

    Parameters
    ----------
    phi : array_like, shape (F, Q), float
        Angles in radians. Not modified.

    Returns
    -------
    ndarray, shape (F, Q, 2), dtype of ``phi``
        ``[..., 0] = sin(phi)``, ``[..., 1] = cos(phi)``: continuous across +-pi.
    """
    from .kernels.geometry import sincos_kernel

    a = _as_values(phi, "phi")
    out = np.empty((*a.shape, 2), dtype=a.dtype)
    sincos_kernel(a, out)
    return out
