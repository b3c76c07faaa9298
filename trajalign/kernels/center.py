"""Centering kernels: weighted centroid per frame, subtracted in the same parallel loop."""

import numba as nb
import numpy as np

from ._config import PARALLEL_JIT


@nb.njit(**PARALLEL_JIT)
def center_weighted(x, w, out, trans):
    """Subtract the ``w``-weighted centroid of each frame.

    x : (F, N, D) float32/float64, w : (N,) float64 summing to 1, out : like x,
    trans : (F, D) float64. Accumulates in float64.
    """
    n_frames, n_points, dim = x.shape
    for f in nb.prange(n_frames):
        acc = np.zeros(dim, dtype=np.float64)
        for i in range(n_points):
            wi = w[i]
            for d in range(dim):
                acc[d] += wi * x[f, i, d]
        for d in range(dim):
            trans[f, d] = acc[d]
        for i in range(n_points):
            for d in range(dim):
                out[f, i, d] = x[f, i, d] - acc[d]


@nb.njit(**PARALLEL_JIT)
def center_on_point(x, k, out, trans):
    """Subtract point ``k`` of each frame. Shapes as :func:`center_weighted`."""
    n_frames, n_points, dim = x.shape
    for f in nb.prange(n_frames):
        for d in range(dim):
            trans[f, d] = x[f, k, d]
        for i in range(n_points):
            for d in range(dim):
                out[f, i, d] = x[f, i, d] - trans[f, d]


@nb.njit(**PARALLEL_JIT)
def first_nonfinite_frame(x):
    """Index of the first frame holding a NaN or inf, or -1. x : (F, N, D)."""
    n_frames, n_points, dim = x.shape
    bad = np.full(n_frames, False)
    for f in nb.prange(n_frames):
        s = 0.0
        for i in range(n_points):
            for d in range(dim):
                s += x[f, i, d] * 0.0
        # x*0 is 0 for finite values and NaN for NaN or inf, so one sum tests the frame
        bad[f] = s != s
    for f in range(n_frames):
        if bad[f]:
            return f
    return -1
