"""Point-vector alignment: centre on point I, I->J onto +x, (3D) I->K into the xy-plane."""

import numba as nb
import numpy as np

from ._config import JIT
from ._threads import in_threads

__all__ = [
    "COINCIDENT",
    "COLLINEAR",
    "OK",
    "OVERFLOW",
    "point_frames",
]

OK = 0
COINCIDENT = 1  # points I and J at one place: the x axis is undefined
COLLINEAR = 2  # 3D: I, J, K on one line (or K on I): the y axis is undefined
OVERFLOW = 3  # |x_j - x_i|^2 or |x_k - x_i|^2 overflows float64 (beyond ~1e150)

# relative to the size of the coordinates; float32 rounding of truly coincident or
# collinear points leaves residues near 1e-7, which must still count as degenerate
_COINCIDENT_TOL = 1e-7
_COLLINEAR_TOL = 1e-6


def point_frames(x, i, j, k, rot, trans, status):
    """Frame axes from three points of each frame.

    x : (F, M, D) float32/float64; i, j : point indices; k : third point (3D) or -1
    (2D). Outputs float64 rot (F, D, D) with the axes as columns (det +1), trans (F, D)
    = x[:, i], and int8 status (F,) (module codes; rot is the identity where not OK).
    """
    in_threads(
        _point_frames_run, x.shape[0], x.shape[2] * x.shape[2] * 4, x, i, j, k, rot, trans, status
    )


@nb.njit(**JIT)
def _point_frames_run(start, stop, x, i, j, k, rot, trans, status):
    n_frames, n_pts, dim = x.shape
    for f in range(start, stop):
        r = rot[f]
        for a in range(dim):
            for b in range(dim):
                r[a, b] = 1.0 if a == b else 0.0
        mag = 0.0
        u = np.empty(dim)
        nu = 0.0
        for d in range(dim):
            trans[f, d] = x[f, i, d]
            mag = max(mag, abs(x[f, i, d]), abs(x[f, j, d]))
            u[d] = x[f, j, d] - x[f, i, d]
            nu += u[d] * u[d]
        nu = np.sqrt(nu)
        if not nu < np.inf:
            # u / inf would be a zero axis: a "rotation" of determinant 0
            status[f] = OVERFLOW
            continue
        if not nu > _COINCIDENT_TOL * mag or nu == 0.0:
            status[f] = COINCIDENT
            continue
        for d in range(dim):
            u[d] /= nu
        if dim == 2:
            r[0, 0] = u[0]
            r[1, 0] = u[1]
            r[0, 1] = -u[1]
            r[1, 1] = u[0]
            status[f] = OK
            continue
        v = np.empty(3)
        nv = 0.0
        dot = 0.0
        for d in range(3):
            v[d] = x[f, k, d] - x[f, i, d]
            nv += v[d] * v[d]
            dot += v[d] * u[d]
        nv = np.sqrt(nv)
        if not nv < np.inf:
            status[f] = OVERFLOW
            continue
        nw = 0.0
        for d in range(3):
            v[d] -= dot * u[d]
            nw += v[d] * v[d]
        nw = np.sqrt(nw)
        if not nw > _COLLINEAR_TOL * nv or nw == 0.0:
            status[f] = COLLINEAR
            continue
        for d in range(3):
            v[d] /= nw
            r[d, 0] = u[d]
            r[d, 1] = v[d]
        r[0, 2] = u[1] * v[2] - u[2] * v[1]
        r[1, 2] = u[2] * v[0] - u[0] * v[2]
        r[2, 2] = u[0] * v[1] - u[1] * v[0]
        status[f] = OK
