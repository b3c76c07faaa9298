"""Plain numpy/scipy versions of every kernel: slow, obvious, and the oracle of the tests.

Shapes follow the library: X is (F, N, D). Nothing here imports trajalign.
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------- centering
# (the chapter's center_com / center_point, with optional mass weights)


def center_com(X, masses=None):
    X = np.asarray(X, dtype=np.float64)
    if masses is None:
        c = X.mean(axis=1, keepdims=True)
    else:
        w = np.asarray(masses, dtype=np.float64)
        c = np.einsum("n,fnd->fd", w / w.sum(), X)[:, None, :]
    return X - c, c[:, 0, :]


def center_point(X, k=0):
    X = np.asarray(X, dtype=np.float64)
    c = X[:, k : k + 1, :]
    return X - c, c[:, 0, :]


# ------------------------------------------------------------ internal coordinates
# (issue 4) Plain numpy: difference vectors as (F, K, 3) arrays, the minimum image by
# brute force over lattice translations, textbook formulas for angles and dihedrals.


def ref_box_vectors(dimensions):
    """[a, b, c, alpha, beta, gamma] (degrees) -> (3, 3) lower-triangular box rows."""
    a, b, c, al, be, ga = np.asarray(dimensions, dtype=np.float64)
    al, be, ga = np.deg2rad([al, be, ga])
    vx = [a, 0.0, 0.0]
    vy = [b * np.cos(ga), b * np.sin(ga), 0.0]
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    return np.array([vx, vy, [cx, cy, np.sqrt(c * c - cx * cx - cy * cy)]])


def ref_minimum_image(d, box_vectors, reach=2):
    """Shortest of d + n @ H over integer n in [-reach, reach]^3: d (..., 3), H (3, 3)."""
    d = np.asarray(d, dtype=np.float64)
    h = np.asarray(box_vectors, dtype=np.float64)
    r = np.arange(-reach, reach + 1)
    shifts = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3) @ h
    cand = d[..., None, :] + shifts
    k = np.argmin(np.einsum("...sd,...sd->...s", cand, cand), axis=-1)
    return np.take_along_axis(cand, k[..., None, None], axis=-2)[..., 0, :]


def _diff(X, a, b, box_vectors):
    X = np.asarray(X, dtype=np.float64)
    if X.shape[-1] == 2:
        X = np.concatenate([X, np.zeros(X.shape[:-1] + (1,))], axis=-1)
    d = X[:, b] - X[:, a]
    if box_vectors is not None:
        h = np.asarray(box_vectors, dtype=np.float64)
        if h.ndim == 2:
            d = ref_minimum_image(d, h)
        else:
            d = np.stack([ref_minimum_image(d[f], h[f]) for f in range(len(d))])
    return d


def ref_distances(X, pairs, box_vectors=None):
    pairs = np.asarray(pairs)
    return np.linalg.norm(_diff(X, pairs[:, 0], pairs[:, 1], box_vectors), axis=-1)


def ref_angles(X, triplets, box_vectors=None):
    t = np.asarray(triplets)
    u = _diff(X, t[:, 1], t[:, 0], box_vectors)
    v = _diff(X, t[:, 1], t[:, 2], box_vectors)
    norms = np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1)
    cos = np.einsum("fkd,fkd->fk", u, v) / norms
    return np.arccos(np.clip(cos, -1.0, 1.0))


def ref_dihedrals(X, quads, box_vectors=None):
    """IUPAC dihedral: the angle between the planes (i, j, k) and (j, k, l), positive when
    looking along j -> k the far bond is turned clockwise from the near one."""
    q = np.asarray(quads)
    b1 = _diff(X, q[:, 0], q[:, 1], box_vectors)
    b2 = _diff(X, q[:, 1], q[:, 2], box_vectors)
    b3 = _diff(X, q[:, 2], q[:, 3], box_vectors)
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    # Wikipedia "Dihedral angle": atan2(b2/|b2| . (n1 x n2), n1 . n2)
    y = np.einsum("fkd,fkd->fk", np.cross(n1, n2), b2) / np.linalg.norm(b2, axis=-1)
    x = np.einsum("fkd,fkd->fk", n1, n2)
    return np.arctan2(y, x)


def ref_chain(n, width):
    """Consecutive tuples (i, ..., i + width - 1), written out with a loop."""
    return np.array([list(range(i, i + width)) for i in range(n - width + 1)])


def ref_inverse_eigvals(X):
    """Eigenvalues, largest first, of M[i, j] = 1 / r_ij with a zero diagonal."""
    X = np.asarray(X, dtype=np.float64)
    d = np.linalg.norm(X[:, :, None] - X[:, None, :], axis=-1)
    with np.errstate(divide="ignore"):
        m = np.where(d > 0, 1.0 / d, 0.0)
    return np.linalg.eigvalsh(m)[:, ::-1]


def ref_rbf(r, centers, gamma):
    r = np.asarray(r, dtype=np.float64)
    return np.exp(-gamma * (r[..., None] - np.asarray(centers)) ** 2)


def ref_bins(r, centers):
    """One-hot of the nearest centre (ties cannot occur for generic data)."""
    r = np.asarray(r, dtype=np.float64)
    k = np.argmin(np.abs(r[..., None] - np.asarray(centers)), axis=-1)
    return (k[..., None] == np.arange(len(centers))).astype(np.uint8)


# ------------------------------------------------------------------------ rotations
# Row vectors throughout: aligned[t] = (X[t] - c[t]) @ R[t].


def ref_kabsch(X, ref, w=None):
    """Weighted Kabsch by SVD with the determinant fix (Kabsch 1976; Wikipedia
    "Kabsch algorithm"), one frame at a time. Returns aligned, R (F,D,D), c (F,D), rmsd."""
    X = np.asarray(X, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    n, dim = ref.shape
    w = np.full(n, 1.0 / n) if w is None else np.asarray(w, dtype=np.float64) / np.sum(w)
    refc = ref - w @ ref
    out, rots, cs, rmsd = [], [], [], []
    for x in X:
        c = w @ x
        h = (x - c).T @ (w[:, None] * refc)  # H[a, b] = sum w x_a ref_b
        u, _, vt = np.linalg.svd(h)
        d = np.eye(dim)
        d[-1, -1] = np.sign(np.linalg.det(u @ vt))
        r = u @ d @ vt
        y = (x - c) @ r
        out.append(y)
        rots.append(r)
        cs.append(c)
        rmsd.append(np.sqrt(np.sum(w * np.sum((y - refc) ** 2, axis=1))))
    return np.array(out), np.array(rots), np.array(cs), np.array(rmsd)


def ref_principal(X, masses=None, sign="skew"):
    """Principal axes, one frame at a time (the chapter's ``align_principle`` with
    ``np.linalg.eigh``, sorted largest first, right-handed). ``sign="skew"``: each of the
    first D-1 axes points where the third moment along it is positive."""
    X = np.asarray(X, dtype=np.float64)
    n, dim = X.shape[1:]
    w = np.full(n, 1.0 / n) if masses is None else np.asarray(masses, float) / np.sum(masses)
    out, rots, evs = [], [], []
    for x in X:
        y = x - w @ x
        g = (w[:, None] * y).T @ y
        ev, vec = np.linalg.eigh(g)
        ev, vec = ev[::-1], vec[:, ::-1].copy()
        if sign == "skew":
            for k in range(dim - 1):
                if np.sum(w * (y @ vec[:, k]) ** 3) < 0:
                    vec[:, k] *= -1
        if dim == 3:
            vec[:, 2] = np.cross(vec[:, 0], vec[:, 1])
        else:
            vec[:, 1] = [-vec[1, 0], vec[0, 0]]
        out.append(y @ vec)
        rots.append(vec)
        evs.append(ev)
    return np.array(out), np.array(rots), np.array(evs)


def ref_points(X, i, j, k=None):
    """Point frame by Gram-Schmidt: centre on i, i->j onto +x, (3D) i->k into the
    xy-plane with positive y."""
    X = np.asarray(X, dtype=np.float64)
    out = []
    for x in X:
        y = x - x[i]
        e1 = y[j] / np.linalg.norm(y[j])
        if k is None:
            e2 = np.array([-e1[1], e1[0]])
            r = np.stack([e1, e2], axis=1)
        else:
            v = y[k] - (y[k] @ e1) * e1
            e2 = v / np.linalg.norm(v)
            r = np.stack([e1, e2, np.cross(e1, e2)], axis=1)
        out.append(y @ r)
    return np.array(out)


def brute_force_angle_2d(x, ref, steps=3600):
    """The 2D rotation angle minimising the RMSD, by a grid search then refinement
    (row vectors: R(t) = [[cos t, sin t], [-sin t, cos t]]). x, ref centred (N, 2)."""

    def msd(t):
        c, s = np.cos(t), np.sin(t)
        r = np.array([[c, s], [-s, c]])
        return np.mean(np.sum((x @ r - ref) ** 2, axis=1))

    grid = np.linspace(-np.pi, np.pi, steps, endpoint=False)
    t = grid[np.argmin([msd(g) for g in grid])]
    h = 2 * np.pi / steps
    for _ in range(60):  # golden-section-like shrinking search around the best node
        cand = np.linspace(t - h, t + h, 21)
        t = cand[np.argmin([msd(g) for g in cand])]
        h /= 10
        if h < 1e-14:
            break
    return t


# ------------------------------------------------------------- periodic repair
# (issue 12) Plain Python: a breadth-first walk over the bond graph with the minimum image
# by brute force, and the no-jump loop of Kulke & Vermaas (2022, eq. B6) frame by frame.


def ref_make_whole(X, H, bonds):
    """Each molecule's lowest atom stays; the others take the image nearest their parent
    (reached breadth-first). X (F, N, 3), H (3, 3) or (F, 3, 3) box rows."""
    from collections import deque

    X = np.array(X, dtype=np.float64)
    n = X.shape[1]
    nbr = [[] for _ in range(n)]
    for a, b in bonds:
        nbr[a].append(b)
        nbr[b].append(a)
    Hs = np.broadcast_to(np.asarray(H, dtype=np.float64), (X.shape[0], 3, 3))
    for f in range(X.shape[0]):
        seen = [False] * n
        for root in range(n):
            if seen[root]:
                continue
            seen[root] = True
            queue = deque([root])
            while queue:
                i = queue.popleft()
                for j in sorted(nbr[i]):
                    if not seen[j]:
                        seen[j] = True
                        X[f, j] = X[f, i] + ref_minimum_image(X[f, j] - X[f, i], Hs[f], reach=3)
                        queue.append(j)
    return X


def ref_nojump(X, H):
    """Unwrap frame by frame: each atom's fractional coordinates (in its frame's box)
    move by less than half a box length between frames. Frame 0 stays."""
    X = np.asarray(X, dtype=np.float64)
    Hs = np.broadcast_to(np.asarray(H, dtype=np.float64), (X.shape[0], 3, 3))
    out = np.empty_like(X)
    prev = X[0] @ np.linalg.inv(Hs[0])
    out[0] = X[0]
    for t in range(1, X.shape[0]):
        frac = X[t] @ np.linalg.inv(Hs[t])
        frac = frac - np.round(frac - prev)
        out[t] = frac @ Hs[t]
        prev = frac
    return out


def ref_choose_signs(axes, skew, mode, prev, has_prev, skew_tol=1e-6):
    """Principal-axis signs frame by frame, the rule of the CONTRACT as a plain loop:
    mode 0 the solver's signs, 1 each leading axis towards positive skewness, 2 each
    leading axis closest to the previous frame's final axis (skew for a first frame);
    the last axis makes the frame right-handed. Returns rot, skew, flip, swap,
    ambiguous, signs (as ``trajalign.kernels.principal.choose_signs`` writes them)."""
    n_frames, dim = skew.shape
    skew = skew.copy()
    rot = np.empty_like(axes)
    flip = np.zeros((n_frames, dim), dtype=bool)
    swap = np.zeros(n_frames, dtype=bool)
    ambiguous = np.zeros(n_frames, dtype=bool)
    out_signs = np.empty((n_frames, dim))
    p, have = prev.copy(), has_prev
    for f in range(n_frames):
        signs = np.ones(dim)
        for k in range(dim - 1):
            if mode == 0:
                continue
            if mode == 1 or not have:
                if abs(skew[f, k]) < skew_tol:
                    ambiguous[f] = True
                elif skew[f, k] < 0:
                    signs[k] = -1.0
            elif float(axes[f, :, k] @ p[:, k]) < 0:
                signs[k] = -1.0
        signs[-1] = signs[0] if dim == 2 else signs[0] * signs[1]
        rot[f] = axes[f] * signs
        skew[f] *= signs
        out_signs[f] = signs
        if have:
            for k in range(dim):
                dots = [float(rot[f, :, k] @ p[:, j]) for j in range(dim)]
                flip[f, k] = dots[k] < 0
                swap[f] |= int(np.argmax(np.abs(dots))) != k
        p, have = rot[f].copy(), True
    return rot, skew, flip, swap, ambiguous, out_signs
