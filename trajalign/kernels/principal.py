"""Principal-axes alignment: centre, gyration tensor, eigenvectors, sign choice.

``principal_frames`` (parallel over frames) finds each frame's centre ``c``, the weighted
gyration tensor ``G = sum_i w_i (x_i - c)(x_i - c)^T`` of the fit atoms, its eigenpairs
sorted by decreasing eigenvalue (axes as the eigen solver returns them, the last one
replaced by the cross product so that the frame is right-handed) and the third moment of
the coordinates along each axis. ``choose_signs`` then walks the frames in order (it is
cheap: D x D per frame) and fixes each axis' sign by ``skew`` or ``continuity``; it is
serial because continuity needs the previous frame's axes. Rotations are applied by
:func:`trajalign.kernels.kabsch.apply_motion`.
"""

import numba as nb
import numpy as np

from ._config import JIT, PARALLEL_JIT

# status codes of principal_frames
OK = 0
ALL_AT_CENTRE = 1  # G = 0: every fit atom at the centre, no axis is defined
COLLINEAR = 2  # 3D: second eigenvalue ~ 0, only the first axis is defined
OVERFLOW = 3  # second or third moments overflow float64 (coordinates beyond ~1e100)

_ZERO_TOL = 1e-14  # lambda_1 below this * (spread about the first atom) counts as zero
_COLLINEAR_TOL = 1e-10  # lambda_2 below this * lambda_1 (3D) counts as collinear
_SKEW_TOL = 1e-6  # |skewness| below this: the skew sign is undefined (symmetric shape)


@nb.njit(**PARALLEL_JIT)
def principal_frames(xfit, wc, point, wg, trans, evals, axes, skew, status):
    """Per-frame centre, sorted eigenpairs of the gyration tensor and skewness.

    xfit : (F, M, D) float32/float64 fit atoms. wc : (M,) float64 centre weights summing
    to 1, used when ``point < 0``; otherwise the centre is fit atom ``point``.
    wg : (M,) float64 gyration weights summing to 1. Outputs (float64): trans (F, D) the
    centre; evals (F, D) decreasing; axes (F, D, D) unit axes as columns, right-handed,
    signs as the solver returns them; skew (F, D) skewness ``m3 / lambda**1.5`` of the
    coordinates along each axis (0 where lambda is 0); status (F,) int8 (module codes).
    """
    n_frames, n_fit, dim = xfit.shape
    for f in nb.prange(n_frames):
        x = xfit[f]
        shift = np.empty(dim)
        for d in range(dim):
            shift[d] = x[0, d]
        # one pass: weighted first and second moments about the first atom
        s1g = np.zeros(dim)
        s1c = np.zeros(dim)
        s2 = np.zeros((dim, dim))
        for i in range(n_fit):
            for a in range(dim):
                da = x[i, a] - shift[a]
                s1c[a] += wc[i] * da
                wda = wg[i] * da
                s1g[a] += wda
                for b in range(a, dim):
                    s2[a, b] += wda * (x[i, b] - shift[b])
        dvec = np.empty(dim)
        for d in range(dim):
            dvec[d] = s1c[d] if point < 0 else x[point, d] - shift[d]
            trans[f, d] = shift[d] + dvec[d]
        # second moments about the centre c = shift + dvec (sum wg = 1)
        g = np.empty((dim, dim))
        spread = 0.0
        for a in range(dim):
            spread += s2[a, a] + dvec[a] * dvec[a]
            for b in range(a, dim):
                v = s2[a, b] - s1g[a] * dvec[b] - dvec[a] * s1g[b] + dvec[a] * dvec[b]
                g[a, b] = v
                g[b, a] = v
        ax = axes[f]
        finite = True
        for a in range(dim):
            for b in range(dim):
                finite = finite and abs(g[a, b]) < np.inf
        if not (finite and spread < np.inf):
            # squares overflowed: eigh would raise inside the parallel loop (a SystemError
            # at the caller), and the identity would pass for axes; the caller raises
            for a in range(dim):
                evals[f, a] = 0.0
                skew[f, a] = 0.0
                for b in range(dim):
                    ax[a, b] = 1.0 if a == b else 0.0
            status[f] = OVERFLOW
            continue
        if dim == 2:
            half = 0.5 * (g[0, 0] + g[1, 1])
            r = np.sqrt(0.25 * (g[0, 0] - g[1, 1]) ** 2 + g[0, 1] * g[0, 1])
            evals[f, 0] = half + r
            evals[f, 1] = half - r
            phi = 0.5 * np.arctan2(2.0 * g[0, 1], g[0, 0] - g[1, 1])
            c, s = np.cos(phi), np.sin(phi)
            ax[0, 0] = c
            ax[1, 0] = s
            ax[0, 1] = -s
            ax[1, 1] = c
        else:
            w, v = np.linalg.eigh(g)
            for k in range(3):
                evals[f, k] = w[2 - k]
            for d in range(3):
                ax[d, 0] = v[d, 2]
                ax[d, 1] = v[d, 1]
            ax[0, 2] = ax[1, 0] * ax[2, 1] - ax[2, 0] * ax[1, 1]
            ax[1, 2] = ax[2, 0] * ax[0, 1] - ax[0, 0] * ax[2, 1]
            ax[2, 2] = ax[0, 0] * ax[1, 1] - ax[1, 0] * ax[0, 1]
        st = OK
        if not evals[f, 0] > _ZERO_TOL * spread:
            st = ALL_AT_CENTRE
        elif dim == 3 and not evals[f, 1] > _COLLINEAR_TOL * evals[f, 0]:
            st = COLLINEAR
        status[f] = st
        # second pass: third moments along each axis
        m3 = np.zeros(dim)
        for i in range(n_fit):
            for k in range(dim):
                p = 0.0
                for d in range(dim):
                    p += (x[i, d] - shift[d] - dvec[d]) * ax[d, k]
                m3[k] += wg[i] * p * p * p
        for k in range(dim):
            lam = evals[f, k]
            skew[f, k] = m3[k] / lam**1.5 if lam > _ZERO_TOL * spread else 0.0
            if not abs(skew[f, k]) < np.inf or not abs(m3[k]) < np.inf:
                # cubes overflowed: the skew sign would be arbitrary without a word
                status[f] = OVERFLOW


@nb.njit(**JIT)
def choose_signs(axes, skew, mode, prev, has_prev, rot, flip, swap, ambiguous):
    """Fix the sign of each axis, frame by frame, and record jumps.

    axes : (F, D, D) from :func:`principal_frames`; skew : (F, D) skewness along them,
    updated in place to the final axes. mode : 0 ``none`` (solver's signs), 1 ``skew``
    (third moment positive), 2 ``continuity`` (closest to the previous frame's axes;
    ``skew`` for the first frame of a run). prev : (D, D) the previous frame's final axes
    and has_prev : bool whether it exists (it carries continuity across blocks).
    Outputs: rot (F, D, D) final axes as columns (the rotation, det +1); flip (F, D)
    bool, axis k points against the previous frame's axis k (a jump in the output);
    swap (F,) bool, an axis is closer to another of the previous frame's axes than to
    its own (eigenvalues crossed: a jump no sign can fix); ambiguous (F,) bool, a skew
    sign had to be chosen for an axis with zero skewness.
    """
    n_frames, dim = skew.shape
    p = prev.copy()
    have = has_prev
    for f in range(n_frames):
        ambiguous[f] = False
        signs = np.ones(dim)
        for k in range(dim - 1):
            if mode == 0:
                continue
            if mode == 1 or not have:
                if abs(skew[f, k]) < _SKEW_TOL:
                    ambiguous[f] = True
                elif skew[f, k] < 0.0:
                    signs[k] = -1.0
            else:
                dot = 0.0
                for d in range(dim):
                    dot += axes[f, d, k] * p[d, k]
                if dot < 0.0:
                    signs[k] = -1.0
        # the last axis follows from the others (right-handed frame)
        if dim == 2:
            signs[1] = signs[0]
        else:
            signs[2] = signs[0] * signs[1]
        r = rot[f]
        for k in range(dim):
            skew[f, k] *= signs[k]
            for d in range(dim):
                r[d, k] = axes[f, d, k] * signs[k]
        swap[f] = False
        for k in range(dim):
            flip[f, k] = False
        if have:
            for k in range(dim):
                best = -1.0
                arg = 0
                for j in range(dim):
                    dot = 0.0
                    for d in range(dim):
                        dot += r[d, k] * p[d, j]
                    if j == k:
                        flip[f, k] = dot < 0.0
                    if abs(dot) > best:
                        best = abs(dot)
                        arg = j
                if arg != k:
                    swap[f] = True
        for d in range(dim):
            for k in range(dim):
                p[d, k] = r[d, k]
        have = True
