"""Centering kernels: weighted centroid per frame, subtracted in the same loop over frames."""

import numba as nb
import numpy as np

from ._config import HELPER_JIT, JIT
from ._threads import in_threads

__all__ = [
    "center_on_point",
    "center_weighted",
]


def center_weighted(x, w, out, trans):
    """Subtract the ``w``-weighted centroid of each frame.

    x : (F, N, D) float32/float64, C-contiguous, w : (N,) float64 summing to 1, out :
    like x, trans : (F, D) float64. Accumulates in float64.
    """
    in_threads(_center_weighted_run, x.shape[0], x.shape[1] * x.shape[2], x, w, out, trans)


@nb.njit(**JIT)
def _center_weighted_run(start, stop, x, w, out, trans):
    n_frames, n_points, dim = x.shape
    # flat rows and scalar accumulators, one loop per dimension: about 3x faster than
    # x[f, i, d] with a (dim,) accumulator, which numba neither unrolls nor vectorises
    xflat = x.reshape(n_frames, n_points * dim)
    oflat = out.reshape(n_frames, n_points * dim)
    for f in range(start, stop):
        xr = xflat[f]
        orow = oflat[f]
        m0 = m1 = m2 = 0.0
        if dim == 3:
            for i in range(n_points):
                wi = w[i]
                m0 += wi * xr[3 * i]
                m1 += wi * xr[3 * i + 1]
                m2 += wi * xr[3 * i + 2]
        else:
            for i in range(n_points):
                wi = w[i]
                m0 += wi * xr[2 * i]
                m1 += wi * xr[2 * i + 1]
        trans[f, 0] = m0
        trans[f, 1] = m1
        if dim == 3:
            trans[f, 2] = m2
        _subtract(xr, orow, n_points, dim, m0, m1, m2)


@nb.njit(**HELPER_JIT)
def _subtract(xr, orow, n, dim, t0, t1, t2):
    """orow = xr - (t0, t1[, t2]) per point, flat rows (n * dim,), float64 arithmetic."""
    if dim == 3:
        for i in range(n):
            orow[3 * i] = xr[3 * i] - t0
            orow[3 * i + 1] = xr[3 * i + 1] - t1
            orow[3 * i + 2] = xr[3 * i + 2] - t2
    else:
        for i in range(n):
            orow[2 * i] = xr[2 * i] - t0
            orow[2 * i + 1] = xr[2 * i + 1] - t1


def center_on_point(x, k, out, trans):
    """Subtract point ``k`` of each frame. Shapes as :func:`center_weighted`."""
    in_threads(_center_on_point_run, x.shape[0], x.shape[1] * x.shape[2], x, k, out, trans)


@nb.njit(**JIT)
def _center_on_point_run(start, stop, x, k, out, trans):
    n_frames, n_points, dim = x.shape
    xflat = x.reshape(n_frames, n_points * dim)
    oflat = out.reshape(n_frames, n_points * dim)
    for f in range(start, stop):
        xr = xflat[f]
        t0 = np.float64(xr[dim * k])
        t1 = np.float64(xr[dim * k + 1])
        t2 = np.float64(xr[dim * k + 2]) if dim == 3 else 0.0
        trans[f, 0] = t0
        trans[f, 1] = t1
        if dim == 3:
            trans[f, 2] = t2
        _subtract(xr, oflat[f], n_points, dim, t0, t1, t2)
