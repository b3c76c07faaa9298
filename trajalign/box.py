"""Periodic boxes: the box table shared by the kernels, and the exact minimum image.

:func:`box_table` validates box vectors and summarises each box in one row of a float64
table (a reduced basis and the bounds that make the minimum image exact, see
:mod:`trajalign.kernels.box`); kernels call :func:`trajalign.kernels.box.mic` with that
row. :func:`minimum_image` is the public, vectorised form.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import DataError, ParameterError

__all__ = [
    "as_box",
    "box_rows",
    "box_table",
    "box_vectors",
    "inverse_rows",
    "kernel_box_table",
    "minimum_image",
    "pad3",
]

_ZERO_EDGE = 1e-12  # as trajalign.kernels.box._ZERO_EDGE
# the box table's layout (trajalign.kernels.box), here so that building a table for
# rectangular boxes imports no Numba kernel
TABLE_WIDTH = 51
MODE, H2, BASIS, INVERSE, COLNORM, SLICE = 0, 1, 2, 11, 20, 23
N_SLICE = 7


def box_table(h) -> np.ndarray:
    """Box table rows for lower-triangular box vectors.

    Parameters
    ----------
    h : array_like, shape (3, 3) or (B, 3, 3), float
        Box vectors as rows, lower triangular (``a`` along x, ``b`` in the xy-plane), the
        MDAnalysis/GROMACS convention. A diagonal box may have zero edges (not periodic
        along them); a triclinic box needs ``a`` and ``b``, and either ``c`` with
        ``c_z > 0`` or a zero ``c`` row (a 2D lattice in the xy-plane).

    Returns
    -------
    ndarray, shape (B, TABLE_WIDTH), float64
        One row per box; the layout is documented in :mod:`trajalign.kernels.box`.

    Raises
    ------
    ParameterError
        ``h`` has the wrong shape, NaN or inf, is not lower triangular, has a negative
        diagonal element, or spans no lattice (a triclinic box with a zero ``a`` or ``b``,
        or with ``c_z = 0`` but ``c`` not zero).
    """
    a = np.asarray(h, dtype=np.float64)
    if a.shape[-2:] != (3, 3) or a.ndim not in (2, 3) or a.size == 0:
        raise ParameterError(
            f"box vectors have shape {np.shape(h)}, not (3, 3) or (boxes >= 1, 3, 3)",
            "give box vectors as rows, one (3, 3) matrix per box",
        )
    a = np.ascontiguousarray(a.reshape(-1, 3, 3))
    if not np.all(np.isfinite(a)):
        raise ParameterError("box contains NaN or inf", "give finite box vectors")
    if np.any(a[:, 0, 1:] != 0) or np.any(a[:, 1, 2] != 0):
        raise ParameterError(
            "box vectors are not lower triangular",
            "give rows a=(ax,0,0), b=(bx,by,0), c=(cx,cy,cz), or [a,b,c,alpha,beta,gamma]",
        )
    if np.any(np.diagonal(a, axis1=1, axis2=2) < 0):
        raise ParameterError(
            "box vectors have a negative diagonal element", "use a right-handed box"
        )
    out = _orthorhombic_rows(a)
    lattice = np.flatnonzero((a[:, 1, 0] != 0) | (a[:, 2, 0] != 0) | (a[:, 2, 1] != 0))
    if lattice.size:
        # the lattice reduction runs only for triclinic boxes, and a box repeated over
        # frames (NVT) is reduced once
        uniq, inverse = np.unique(a[lattice], axis=0, return_inverse=True)
        out[lattice] = _lattice_rows(np.ascontiguousarray(uniq))[inverse.reshape(-1)]
    bad = np.flatnonzero(out[:, 0] < 0)
    if bad.size:
        raise ParameterError(
            f"box {int(bad[0])} is triclinic with a zero edge or zero volume: no lattice",
            "give a, b and c > 0, or a zero c row for a 2D lattice",
        )
    return out


#: distinct triclinic boxes that a process reduces with the table kernel's own code run by
#: Python while the kernel is neither compiled nor in Numba's cache (about 0.4-1 ms a box
#: against 4-6 s of compiling it); past them (long NPT runs) it compiles the kernel.
#: ``TRAJALIGN_PYTHON_BOXES`` sets it (0: always the compiled kernel)
PYTHON_BOXES = 2000
_python_boxes = [0]  # boxes this process has reduced in Python so far


def _lattice_rows(uniq: np.ndarray) -> np.ndarray:
    """Table rows (B, TABLE_WIDTH) of distinct triclinic boxes ``uniq`` (B, 3, 3): by the
    compiled kernel, or where it would have to be compiled first for a few boxes, by
    the same code run by Python, which gives the same bits (kernels.box.TABLE_JIT)."""
    from . import _ahead
    from .kernels.box import box_table_kernel, box_table_python

    rows = np.empty((uniq.shape[0], TABLE_WIDTH))
    if box_table_kernel.signatures or not _ahead.cold(box_table_kernel):
        box_table_kernel(uniq, rows)  # compiled, or a load from the cache
        return rows
    try:
        limit = int(os.environ.get("TRAJALIGN_PYTHON_BOXES", PYTHON_BOXES))
    except ValueError:  # (not a number: the default, as for any other unset switch)
        limit = PYTHON_BOXES
    if _python_boxes[0] + uniq.shape[0] > limit:
        box_table_kernel(uniq, rows)
    else:
        _python_boxes[0] += uniq.shape[0]
        box_table_python(uniq, rows)
    return rows


def _orthorhombic_rows(a: np.ndarray) -> np.ndarray:
    """Table rows of (B, 3, 3) boxes read as diagonal (mode 0 or 1), in numpy.

    The same arithmetic as the orthorhombic branch of
    :func:`trajalign.kernels.box._box_row`, bit for bit (one division and three products
    per box), so that a run without a triclinic box compiles no box kernel. Rows of
    triclinic boxes are overwritten by the caller.
    """
    n = a.shape[0]
    out = np.zeros((n, TABLE_WIDTH))
    out[:, SLICE + 3 : SLICE + 4 * N_SLICE : 4] = np.inf
    edges = np.abs(np.diagonal(a, axis1=1, axis2=2))
    periodic = edges > _ZERO_EDGE
    safe = np.where(periodic, edges, 1.0)
    for i in range(3):
        out[:, BASIS + 4 * i] = np.where(periodic[:, i], edges[:, i], 0.0)
        inv = np.where(periodic[:, i], 1.0 / safe[:, i], 0.0)
        out[:, INVERSE + 4 * i] = inv
        out[:, COLNORM + i] = inv
    shortest = np.min(np.where(periodic, edges, np.inf), axis=1)
    some = np.isfinite(shortest)
    out[:, MODE] = np.where(some, 1.0, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        out[:, H2] = np.where(some, 0.25 * shortest * shortest * (1.0 - 1e-12), np.inf)
    return out


def _boxes(box, n_frames: int, dim: int) -> np.ndarray:
    """(1 or F, 3, 3) float64 box vectors from anything :func:`minimum_image` accepts."""
    b = np.asarray(box, dtype=np.float64) if box is not None else None
    if dim == 2 and b is not None and b.shape[-2:] == (3, 3):
        # a 2D lattice given as 3D box vectors: a and b in the xy-plane, c zero
        h, _ = as_box(b, n_frames, 3)
        if np.any(h[:, 2] != 0):
            raise ParameterError(
                "a 2D box given as (3, 3) vectors has a nonzero c row",
                "give rows a=(ax,0,0), b=(bx,by,0), c=(0,0,0), or edges [a, b]",
            )
        return h
    h, mode = as_box(box, n_frames, dim)
    diag = np.diagonal(h, axis1=1, axis2=2)
    if dim == 3 and mode == 2 and np.any(diag <= _ZERO_EDGE):
        raise ParameterError(
            "a triclinic box with a zero edge or zero volume has no 3D minimum image",
            "give a, b and c > 0 with angles that make a cell (zero edges are fine in a "
            "rectangular box)",
        )
    return h


def minimum_image(v, box) -> np.ndarray:
    """Shortest periodic image of each difference vector (minimum image convention).

    Exact for every box, however skewed: the lattice basis is reduced first and the
    result is proven shortest (see :mod:`trajalign.kernels.box`), unlike the 27-image
    search that MDAnalysis and LAMMPS use, which can miss for strongly skewed cells.

    Parameters
    ----------
    v : array_like, shape (..., D), D in {2, 3}, float32 or float64
        Difference vectors (e.g. ``x[j] - x[i]``). Other real dtypes are converted to
        float64. Not modified.
    box : array_like
        Periodic cell. 3D: ``[a, b, c, alpha, beta, gamma]`` (6,) with angles in degrees
        (the MDAnalysis convention), or lower-triangular box vectors as rows (3, 3).
        2D: edge lengths ``[a, b]`` (2,) (a rectangle), or (3, 3) box vectors with a zero
        ``c`` row (a 2D lattice; ``a`` and ``b`` in the xy-plane). A zero edge of a
        rectangular box is not periodic; a triclinic box needs all its edges. One box per
        frame: (F, 6), (F, 3, 3) or (F, 2), with ``v`` shaped (F, ..., D); box ``f``
        applies to ``v[f]``. ``None``: no periodicity (``v`` is returned as a copy).

    Returns
    -------
    ndarray, shape of ``v``, dtype of ``v`` (float32 or float64)
        ``v`` minus the lattice vector that makes it shortest, computed in float64.
        Between images of equal length either may be returned.

    Raises
    ------
    DataError
        ``v`` is not (..., 2|3) finite numbers.
    ParameterError
        A malformed box, a box count that does not match ``v``'s first axis, or a
        triclinic 3D box with a zero edge.

    See Also
    --------
    MDAnalysis.lib.distances.minimize_vectors

    Examples
    --------
    >>> import numpy as np
    >>> from trajalign import minimum_image
    >>> minimum_image(np.array([9.0, 1.0, -6.0]), [10.0, 10.0, 10.0, 90.0, 90.0, 90.0])
    array([-1.,  1.,  4.])
    """
    from .kernels.box import minimum_image_kernel

    arr = np.asarray(v)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise DataError(f"v has dtype {arr.dtype}, not numbers", "pass a float array")
    if arr.ndim == 0 or arr.shape[-1] not in (2, 3):
        raise DataError(f"v has shape {arr.shape}, not (..., 2 or 3)", "give vectors in 2D or 3D")
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    dim = arr.shape[-1]
    if not np.all(np.isfinite(arr)):
        raise DataError("v contains NaN or inf", "give finite difference vectors")
    n_frames = arr.shape[0] if arr.ndim >= 2 else 1
    h = _boxes(box, n_frames, dim)
    table = box_table(h)
    flat = arr.reshape(-1, dim)
    m = flat.shape[0]
    if dim == 3:
        v64 = np.ascontiguousarray(flat, dtype=np.float64)
    else:
        v64 = np.zeros((m, 3))
        v64[:, :2] = flat
    if table.shape[0] == 1:
        idx = np.zeros(m, dtype=np.int64)
    else:
        # box f for every vector of v[f]
        idx = np.repeat(np.arange(table.shape[0], dtype=np.int64), m // max(n_frames, 1))
    out = np.empty((m, 3))
    if m:
        minimum_image_kernel(v64, table, idx, out)
    return out[:, :dim].astype(dtype, copy=False).reshape(arr.shape)


def box_vectors(dimensions: np.ndarray) -> np.ndarray:
    """Box vectors from MDAnalysis-style unit cells.

    Parameters
    ----------
    dimensions : array_like, shape (6,) or (F, 6)
        ``[a, b, c, alpha, beta, gamma]``: edge lengths and angles in degrees.

    Returns
    -------
    ndarray, shape (3, 3) or (F, 3, 3), float64
        Box vectors as rows, lower triangular (``a`` along x, ``b`` in the xy-plane), the
        same matrix as :func:`MDAnalysis.lib.mdamath.triclinic_vectors` (right angles
        give exact zeros, so an orthorhombic cell is diagonal).

    Raises
    ------
    ParameterError
        A length is negative or not finite, or the angles do not make a cell.
    """
    d = np.asarray(dimensions, dtype=np.float64)
    single = d.ndim == 1
    d = np.atleast_2d(d)
    if d.ndim != 2 or d.shape[1] != 6:
        raise ParameterError(
            f"box has shape {np.shape(dimensions)}, not (6,) or (frames, 6)",
            "give [a, b, c, alpha, beta, gamma] per frame, angles in degrees",
        )
    if not np.all(np.isfinite(d)):
        raise ParameterError("box contains NaN or inf", "give finite box lengths and angles")
    lengths, ang = d[:, :3], d[:, 3:]
    if np.any(lengths < 0):
        raise ParameterError("box has a negative edge length", "give lengths >= 0")
    if np.any((ang <= 0) | (ang >= 180)):
        raise ParameterError(
            "box angles must lie strictly between 0 and 180 degrees",
            "give angles in degrees, e.g. 90 90 90 for a rectangular box",
        )
    # exact zeros for right angles (cos(pi/2) is 6e-17 in floating point)
    cos = np.where(ang == 90.0, 0.0, np.cos(np.deg2rad(ang)))
    sin_g = np.where(ang[:, 2] == 90.0, 1.0, np.sin(np.deg2rad(ang[:, 2])))
    cos_a, cos_b, cos_g = cos[:, 0], cos[:, 1], cos[:, 2]
    lx, ly, lz = lengths.T
    h = np.zeros((d.shape[0], 3, 3))
    h[:, 0, 0] = lx
    h[:, 1, 0] = ly * cos_g
    h[:, 1, 1] = ly * sin_g
    h[:, 2, 0] = lz * cos_b
    h[:, 2, 1] = lz * (cos_a - cos_b * cos_g) / sin_g
    zz = lz * lz - h[:, 2, 0] ** 2 - h[:, 2, 1] ** 2
    if np.any(zz < -1e-9 * np.maximum(lz * lz, 1.0)):
        raise ParameterError(
            "box angles do not make a cell (one angle exceeds the sum of the others)",
            "check the box angles",
        )
    h[:, 2, 2] = np.sqrt(np.maximum(zz, 0.0))
    return h[0] if single else h


def as_box(box, n_frames: int, dim: int) -> tuple[np.ndarray, int]:
    """(h, mode) for the kernels: h (1 or F, 3, 3) float64 lower triangular box vectors,
    mode 0 (no box), 1 (orthorhombic) or 2 (triclinic)."""
    if box is None:
        return np.zeros((1, 3, 3)), 0
    b = np.asarray(box, dtype=np.float64)
    if dim == 2:
        if b.ndim == 1:
            b = b[None]
        if b.ndim != 2 or b.shape[1] != 2:
            raise ParameterError(
                f"a 2D box has shape {np.shape(box)}, not (2,) or (frames, 2)",
                "give the rectangle's edge lengths [a, b] (one row per frame or one for all)",
            )
        if not np.all(np.isfinite(b)) or np.any(b < 0):
            raise ParameterError("box lengths must be finite and >= 0", "check the box")
        h = np.zeros((b.shape[0], 3, 3))
        h[:, 0, 0], h[:, 1, 1] = b[:, 0], b[:, 1]
    elif b.shape[-2:] == (3, 3):
        h = b.reshape(-1, 3, 3).copy()
        if not np.all(np.isfinite(h)):
            raise ParameterError("box contains NaN or inf", "give finite box vectors")
        if np.any(h[:, 0, 1:] != 0) or np.any(h[:, 1, 2] != 0):
            raise ParameterError(
                "box vectors are not lower triangular",
                "give rows a=(ax,0,0), b=(bx,by,0), c=(cx,cy,cz), or [a,b,c,alpha,beta,gamma]",
            )
        if np.any(np.diagonal(h, axis1=1, axis2=2) < 0):
            raise ParameterError(
                "box vectors have a negative diagonal element", "use a right-handed box"
            )
    else:
        h = box_vectors(b).reshape(-1, 3, 3)
    if h.shape[0] not in (1, n_frames):
        raise ParameterError(
            f"{h.shape[0]} boxes for {n_frames} frames", "give one box, or one per frame"
        )
    off = h[:, 1, 0], h[:, 2, 0], h[:, 2, 1]
    mode = 1 if all(np.all(o == 0) for o in off) else 2
    return np.ascontiguousarray(h), mode


def kernel_box_table(h: np.ndarray, mode: int) -> np.ndarray:
    """The kernels' box table (one row per box, :func:`trajalign.box.box_table`) for
    ``(h, mode)`` from :func:`as_box`; mode 0 gives one row that turns the minimum image
    off. Costs microseconds per box.

    Raises :class:`ParameterError` for a triclinic box with a zero edge or zero volume
    (no lattice, so no minimum image)."""
    if mode == 0:
        table = np.zeros((1, TABLE_WIDTH))
        table[0, MODE] = 0.0  # explicit: mode 0 is "no periodicity"
        return table
    return box_table(h)


def pad3(x: np.ndarray) -> np.ndarray:
    """(F, N, 2) -> (F, N, 3) with z = 0, so one set of 3D kernels serves both."""
    if x.shape[2] == 3:
        return x
    out = np.zeros((*x.shape[:2], 3), dtype=x.dtype)
    out[:, :, :2] = x
    return out


def box_rows(box, n_frames: int, dim: int) -> np.ndarray:
    """(B, 3, 3) float64 lower-triangular box rows, B = 1 or ``n_frames`` (see
    :func:`trajalign.internal.distances` for the accepted forms)."""
    h, _ = as_box(box, n_frames, dim)
    return h


def inverse_rows(h: np.ndarray) -> np.ndarray:
    """Inverse of lower-triangular box rows; a zero edge (not periodic) gives zero
    fractional coordinates along it."""
    h = np.asarray(h, dtype=np.float64)
    d = np.diagonal(h, axis1=-2, axis2=-1)
    if np.all(d > 1e-12):
        return np.linalg.inv(h)
    if np.any(h[..., 1, 0] != 0) or np.any(h[..., 2, :2] != 0):
        raise ParameterError(
            "a triclinic box has an edge of length zero",
            "give all three edges of a triclinic box, or a rectangular box",
        )
    inv = np.zeros_like(h)
    for i in range(3):
        inv[..., i, i] = np.where(
            d[..., i] > 1e-12, 1.0 / np.where(d[..., i] > 1e-12, d[..., i], 1.0), 0.0
        )
    return inv
