"""Kernels of the alignment diagnostics."""

import numba as nb
import numpy as np

from ._config import JIT


# serial over a range of frames, run in threads by the caller (kernels._threads): a
# parallel loop compiled 5x slower (1.0 s against 0.14 s of CPU) for the same bits
@nb.njit(**JIT)
def consecutive_rmsd_kernel(start, stop, x, out):
    """out[t] = sqrt(mean_i |x[t, i] - x[t-1, i]|^2) for max(start, 1) <= t < stop,
    float64 accumulation.

    x : (F, N, D) float32/float64, C-contiguous (every frame: t reads frame t - 1 too);
    out : (F,) float64, out[0] is left untouched.
    """
    n_frames, n_points, dim = x.shape
    # flat rows: one loop over N * D values vectorises; the (i, d) loops with a runtime
    # dim did not (1250 x 3341 x 3 float32: 15.5 -> 2.2 ms)
    m = n_points * dim
    flat = x.reshape(n_frames, m)
    for f in range(max(start, 1), stop):
        a = flat[f]
        b = flat[f - 1]
        acc = 0.0
        for j in range(m):
            diff = np.float64(a[j]) - np.float64(b[j])
            acc += diff * diff
        out[f] = np.sqrt(acc / n_points)
