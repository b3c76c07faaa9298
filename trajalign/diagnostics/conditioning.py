"""How much a method's output can move per unit move of every input point: the
conditioning that scales the check's default tolerance
(:func:`~trajalign.diagnostics.rounding_tol`).

Pure numpy; each function returns the largest over the frames of its input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: dihedrals whose bond angle i-j-k or j-k-l comes within this many degrees of 0 or 180
#: in a checked frame are left out of the check: their plane is nearly undefined, so the
#: rounding of the moved input swings them (0.11 degrees made a lysine's HZ1-HZ2-HZ3-C
#: change by 1e-3 rad under a translation); the count is reported
COLLINEAR_DEG = 10.0

# frames x tuples per block of the conditioning loops (bounded temporaries)
_COND_BLOCK = 1 << 21


def vector_norm(v: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis: shape (..., D) -> (...), float64 for float64."""
    return np.sqrt(np.einsum("...d,...d->...", v, v))


def _frame_blocks(n_frames: int, width: int):
    step = max(1, _COND_BLOCK // max(1, width))
    for a in range(0, n_frames, step):
        yield slice(a, min(a + step, n_frames))


def _centred(X: np.ndarray, masses: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates about the (mass-weighted) centre, (F, N, D) float64; weights (N,))."""
    x = np.asarray(X, dtype=np.float64)
    w = np.ones(x.shape[1]) if masses is None else np.asarray(masses, dtype=np.float64)
    w = w / w.sum()
    return x - np.einsum("n,fnd->fd", w, x)[:, None, :], w


def _soft(v: np.ndarray) -> np.ndarray:
    # a zero gap or length makes the conditioning infinite; keep it finite and huge so
    # the tolerance says "anything goes" instead of becoming NaN
    return np.maximum(v, 1e-300)


def conditioning_kabsch(X: np.ndarray, masses: np.ndarray | None = None) -> float:
    """Largest output move per unit move of every point, Kabsch onto frame 0.

    The rotation moves by at most ``|dH| / (s_j + s_k)`` (``H`` the correlation matrix
    of the centred frame and reference per point, ``s`` its singular values, the two
    smallest summed; ``|dH| <= d (mean |x_t| + mean |x_0|)``), which moves the farthest
    point by that times its radius; the centring adds 2.

    Parameters
    ----------
    X : array_like, shape (F, N, D), float32 or float64
    masses : ignored (the check's Kabsch is unweighted)

    Returns
    -------
    float
    """
    r, _ = _centred(X, None)
    n = r.shape[1]
    h = np.einsum("fnd,ne->fde", r, r[0]) / n
    s = np.linalg.svd(h, compute_uv=False)
    soft = _soft(s[:, -1] + s[:, -2])
    rad = vector_norm(r)
    lever = rad.max(axis=1) * (rad.mean(axis=1) + rad[0].mean())
    return float(np.max(2.0 + lever / soft))


def conditioning_principal(X: np.ndarray, masses: np.ndarray | None = None) -> float:
    """Largest output move per unit move of every point, principal axes.

    A move ``d`` of every point changes the (weighted) gyration tensor by at most
    ``2 d mean|r|``, which turns its eigenvectors by at most that over the smallest gap
    between its eigenvalues; the farthest point moves by that times its radius. Nearly
    equal principal moments (a gap near 0) make the axes, and so the tolerance, loose.

    Parameters
    ----------
    X : array_like, shape (F, N, D), float32 or float64
    masses : array_like, shape (N,), optional
        Weights of the centre and the tensor, as the check's principal method.

    Returns
    -------
    float
    """
    r, w = _centred(X, masses)
    g = np.einsum("n,fnd,fne->fde", w, r, r)
    lam = np.linalg.eigvalsh(g)
    gap = _soft(np.min(np.diff(lam, axis=1), axis=1))
    rad = vector_norm(r)
    lever = 2.0 * np.einsum("n,fn->f", w, rad) * rad.max(axis=1)
    return float(np.max(2.0 + lever / gap))


def conditioning_point(X: np.ndarray, pts: Sequence[int]) -> float:
    """Largest output move per unit move of every point, point alignment ``pts``.

    The direction I->J turns by at most ``2 d / |r_IJ|`` and the farthest point from I
    moves by that times its distance (a lever arm); in 3D the in-plane direction adds the
    same over the part of I->K orthogonal to I->J.

    Parameters
    ----------
    X : array_like, shape (F, N, D), float32 or float64
    pts : sequence of int
        I, J[, K].

    Returns
    -------
    float
    """
    x = np.asarray(X, dtype=np.float64)
    i, j = pts[0], pts[1]
    u = x[:, j] - x[:, i]
    lu = _soft(vector_norm(u))
    far = vector_norm(x - x[:, i : i + 1]).max(axis=1)
    kappa = 2.0 + 2.0 * far / lu
    if len(pts) > 2:
        v = x[:, pts[2]] - x[:, i]
        perp = v - (np.einsum("fd,fd->f", v, u) / lu**2)[:, None] * u
        kappa += 2.0 * far * (1.0 + vector_norm(v) / lu) / _soft(vector_norm(perp))
    return float(np.max(kappa))


def angle_conditioning(X: np.ndarray, triplets: np.ndarray) -> np.ndarray:
    """Per-triplet sensitivity of the angle i-j-k: ``2 (1/|r_ij| + 1/|r_kj|)``, the sum
    over the three points of the gradient norm bound, in radians per length unit.

    Parameters
    ----------
    X : array_like, shape (F, N, D), float32 or float64
    triplets : array_like, shape (A, 3), int

    Returns
    -------
    ndarray, shape (A,), float64
        The largest over the frames.
    """
    x = np.asarray(X)
    t = np.asarray(triplets, dtype=np.int64)
    out = np.zeros(len(t))
    for fs in _frame_blocks(x.shape[0], len(t)):
        xb = x[fs].astype(np.float64)
        b1 = vector_norm(xb[:, t[:, 0]] - xb[:, t[:, 1]])
        b2 = vector_norm(xb[:, t[:, 2]] - xb[:, t[:, 1]])
        with np.errstate(divide="ignore"):
            k = 2.0 * (1.0 / b1 + 1.0 / b2)
        out = np.maximum(out, k.max(axis=0, initial=0.0))
    return out


def dihedral_conditioning(X: np.ndarray, quadruplets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-quadruplet sensitivity of the dihedral i-j-k-l and its flanking bond angles.

    The sensitivity is the sum over the four points of the norms of the dihedral's
    gradient (Blondel and Karplus 1996): ``|d phi / d r_i| = 1 / (|r_ij| sin(ijk))``, the
    same for l with ``jkl``, and the two middle points' combinations, in radians per
    length unit. It grows without bound as a flanking angle straightens.

    Parameters
    ----------
    X : array_like, shape (F, N, 3), float32 or float64
    quadruplets : array_like, shape (Q, 4), int

    Returns
    -------
    kappa : ndarray, shape (Q,), float64
        The largest sensitivity over the frames.
    sin_min : ndarray, shape (Q,), float64
        The smallest sine of the two flanking angles over the frames (0: straight or
        coincident points).
    """
    x = np.asarray(X)
    t = np.asarray(quadruplets, dtype=np.int64)
    kappa = np.zeros(len(t))
    sin_min = np.ones(len(t))
    for fs in _frame_blocks(x.shape[0], len(t)):
        xb = x[fs].astype(np.float64)
        f = xb[:, t[:, 0]] - xb[:, t[:, 1]]
        g = xb[:, t[:, 1]] - xb[:, t[:, 2]]
        h = xb[:, t[:, 3]] - xb[:, t[:, 2]]
        a, b = np.cross(f, g), np.cross(h, g)
        la, lb, lg = vector_norm(a), vector_norm(b), vector_norm(g)
        with np.errstate(divide="ignore", invalid="ignore"):
            sines = np.minimum(la / (vector_norm(f) * lg), lb / (vector_norm(h) * lg))
            a2, b2 = (la**2)[..., None], (lb**2)[..., None]
            fg = np.einsum("...d,...d->...", f, g)[..., None]
            hg = np.einsum("...d,...d->...", h, g)[..., None]
            gg = lg[..., None]
            di = -gg / a2 * a
            dl = gg / b2 * b
            dj = (gg / a2 + fg / (a2 * gg)) * a - hg / (b2 * gg) * b
            dk = -(di + dj + dl)
            k = vector_norm(di) + vector_norm(dj) + vector_norm(dk) + vector_norm(dl)
        sines = np.where(np.isfinite(sines), sines, 0.0)
        k = np.where(np.isfinite(k), k, np.inf)
        kappa = np.maximum(kappa, k.max(axis=0, initial=0.0))
        sin_min = np.minimum(sin_min, sines.min(axis=0, initial=1.0))
    return kappa, sin_min


def eigvals_conditioning(X: np.ndarray) -> float:
    """Largest move of the inverse-distance spectrum per unit move of every point.

    Moving two points by ``d`` changes ``1/r`` by at most ``2 d / r^2``; an eigenvalue of a
    symmetric matrix moves by at most the Frobenius norm of the change, so the bound is
    ``2 sqrt(2 sum_{i<j} r_ij^-4)`` (1 / length^2), the largest over the frames.

    Parameters
    ----------
    X : array_like, shape (F, N, D), float32 or float64

    Returns
    -------
    float
    """
    from scipy.spatial.distance import pdist

    x = np.asarray(X, dtype=np.float64)
    worst = 0.0
    for frame in x:
        d = pdist(frame)
        with np.errstate(divide="ignore"):
            worst = max(worst, float(np.sum(d**-4.0)))
    return 2.0 * float(np.sqrt(2.0 * worst))


__all__ = [
    "COLLINEAR_DEG",
    "angle_conditioning",
    "conditioning_kabsch",
    "conditioning_point",
    "conditioning_principal",
    "dihedral_conditioning",
    "eigvals_conditioning",
    "vector_norm",
]
