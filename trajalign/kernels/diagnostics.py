"""Kernels of the alignment diagnostics."""

import numba as nb
import numpy as np

from ._config import PARALLEL_JIT


@nb.njit(**PARALLEL_JIT)
def consecutive_rmsd_kernel(x, out):
    """out[t] = sqrt(mean_i |x[t, i] - x[t-1, i]|^2) for t >= 1, float64 accumulation.

    x : (F, N, D) float32/float64; out : (F,) float64, out[0] is left untouched.
    """
    n_frames, n_points, dim = x.shape
    for f in nb.prange(1, n_frames):
        acc = 0.0
        for i in range(n_points):
            for d in range(dim):
                diff = np.float64(x[f, i, d]) - np.float64(x[f - 1, i, d])
                acc += diff * diff
        out[f] = np.sqrt(acc / n_points)
