"""Periodic boxes: the box table shared by the kernels, and the exact minimum image.

:func:`box_table` validates box vectors and summarises each box in one row of a float64
table (a reduced basis and the bounds that make the minimum image exact, see
:mod:`trajalign.kernels.box`); kernels call :func:`trajalign.kernels.box.mic` with that
row. :func:`minimum_image` is the public, vectorised form.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError, ParameterError
from .internal import _as_box

__all__ = ["box_table", "minimum_image"]

_ZERO_EDGE = 1e-12  # as trajalign.kernels.box._ZERO_EDGE


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
    from .kernels.box import TABLE_WIDTH, box_table_kernel

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
    out = np.empty((a.shape[0], TABLE_WIDTH))
    box_table_kernel(a, out)
    bad = np.flatnonzero(out[:, 0] < 0)
    if bad.size:
        raise ParameterError(
            f"box {int(bad[0])} is triclinic with a zero edge or zero volume: no lattice",
            "give a, b and c > 0, or a zero c row for a 2D lattice",
        )
    return out


def _boxes(box, n_frames: int, dim: int) -> np.ndarray:
    """(1 or F, 3, 3) float64 box vectors from anything :func:`minimum_image` accepts."""
    b = np.asarray(box, dtype=np.float64) if box is not None else None
    if dim == 2 and b is not None and b.shape[-2:] == (3, 3):
        # a 2D lattice given as 3D box vectors: a and b in the xy-plane, c zero
        h, _ = _as_box(b, n_frames, 3)
        if np.any(h[:, 2] != 0):
            raise ParameterError(
                "a 2D box given as (3, 3) vectors has a nonzero c row",
                "give rows a=(ax,0,0), b=(bx,by,0), c=(0,0,0), or edges [a, b]",
            )
        return h
    h, mode = _as_box(box, n_frames, dim)
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
