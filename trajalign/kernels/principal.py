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
# 3D: eigenvalues closer than this fraction of the largest |eigenvalue| go to np.linalg.eigh
# (closed-form eigenvectors lose ~eps / gap; real molecules have gaps of 1e-2 and more)
_CLOSED_FORM_GAP = 1e-3


@nb.njit(**JIT)
def _sym3_eigen(g00, g01, g02, g11, g12, g22, ax):
    """Eigenpairs of a symmetric 3x3 matrix, closed form, for well separated eigenvalues.

    Eigenvalues from the trigonometric solution of the characteristic cubic (Smith 1961),
    eigenvectors from cross products of rows of ``G - lambda I``. Writes unit axes as the
    columns of ``ax`` (largest eigenvalue first, right-handed) and returns the three
    eigenvalues (Rayleigh quotients of the axes) and True, or False when the smallest
    relative eigenvalue gap is below ``_CLOSED_FORM_GAP`` (the caller then solves with
    ``np.linalg.eigh``: eigenvectors of close eigenvalues need a backward-stable solver).
    """
    q = (g00 + g11 + g22) / 3.0
    b00 = g00 - q
    b11 = g11 - q
    b22 = g22 - q
    p2 = (b00 * b00 + b11 * b11 + b22 * b22 + 2.0 * (g01 * g01 + g02 * g02 + g12 * g12)) / 6.0
    if not p2 > 0.0:
        return 0.0, 0.0, 0.0, False
    p = np.sqrt(p2)
    det = (
        b00 * (b11 * b22 - g12 * g12)
        - g01 * (g01 * b22 - g12 * g02)
        + g02 * (g01 * g12 - b11 * g02)
    )
    r = 0.5 * det / (p2 * p)
    r = min(1.0, max(-1.0, r))
    phi = np.arccos(r) / 3.0
    l0 = q + 2.0 * p * np.cos(phi)
    l2 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    l1 = 3.0 * q - l0 - l2
    scale = max(abs(l0), abs(l2))
    if not (l0 - l1 > _CLOSED_FORM_GAP * scale and l1 - l2 > _CLOSED_FORM_GAP * scale):
        return 0.0, 0.0, 0.0, False
    for k in range(2):
        lam = l0 if k == 0 else l1
        a00 = g00 - lam
        a11 = g11 - lam
        a22 = g22 - lam
        # rows (a00, g01, g02), (g01, a11, g12), (g02, g12, a22); the largest cross product
        c0x = g01 * g12 - g02 * a11
        c0y = g02 * g01 - a00 * g12
        c0z = a00 * a11 - g01 * g01
        c1x = g01 * a22 - g02 * g12
        c1y = g02 * g02 - a00 * a22
        c1z = a00 * g12 - g01 * g02
        c2x = a11 * a22 - g12 * g12
        c2y = g12 * g02 - g01 * a22
        c2z = g01 * g12 - a11 * g02
        n0 = c0x * c0x + c0y * c0y + c0z * c0z
        n1 = c1x * c1x + c1y * c1y + c1z * c1z
        n2 = c2x * c2x + c2y * c2y + c2z * c2z
        if n0 >= n1 and n0 >= n2:
            vx, vy, vz, nn = c0x, c0y, c0z, n0
        elif n1 >= n2:
            vx, vy, vz, nn = c1x, c1y, c1z, n1
        else:
            vx, vy, vz, nn = c2x, c2y, c2z, n2
        if not nn > 0.0:
            return 0.0, 0.0, 0.0, False
        if k == 1:
            # orthogonal to the first axis (Gram-Schmidt)
            d = vx * ax[0, 0] + vy * ax[1, 0] + vz * ax[2, 0]
            s = np.sqrt(nn)
            vx -= d * ax[0, 0]
            vy -= d * ax[1, 0]
            vz -= d * ax[2, 0]
            nn = vx * vx + vy * vy + vz * vz
            if not nn > 0.25 * s * s:
                return 0.0, 0.0, 0.0, False
        inv = 1.0 / np.sqrt(nn)
        ax[0, k] = vx * inv
        ax[1, k] = vy * inv
        ax[2, k] = vz * inv
    ax[0, 2] = ax[1, 0] * ax[2, 1] - ax[2, 0] * ax[1, 1]
    ax[1, 2] = ax[2, 0] * ax[0, 1] - ax[0, 0] * ax[2, 1]
    ax[2, 2] = ax[0, 0] * ax[1, 1] - ax[1, 0] * ax[0, 1]
    # Rayleigh quotients: accurate to ~eps |G| whatever the cubic's rounding
    e0 = _quad3(g00, g01, g02, g11, g12, g22, ax[0, 0], ax[1, 0], ax[2, 0])
    e1 = _quad3(g00, g01, g02, g11, g12, g22, ax[0, 1], ax[1, 1], ax[2, 1])
    e2 = _quad3(g00, g01, g02, g11, g12, g22, ax[0, 2], ax[1, 2], ax[2, 2])
    return e0, e1, e2, True


@nb.njit(**JIT)
def _quad3(g00, g01, g02, g11, g12, g22, ux, uy, uz):
    """u^T G u for symmetric G."""
    return (
        g00 * ux * ux
        + g11 * uy * uy
        + g22 * uz * uz
        + 2.0 * (g01 * ux * uy + g02 * ux * uz + g12 * uy * uz)
    )


@nb.njit(**PARALLEL_JIT)
def principal_frames(xfit, wc, point, wg, trans, evals, axes, skew, status):
    """Per-frame centre, sorted eigenpairs of the gyration tensor and skewness.

    xfit : (F, M, D) float32/float64 fit atoms, C-contiguous. wc : (M,) float64 centre
    weights summing to 1, used when ``point < 0``; otherwise the centre is fit atom
    ``point``. wg : (M,) float64 gyration weights summing to 1. Outputs (float64): trans
    (F, D) the centre; evals (F, D) decreasing; axes (F, D, D) unit axes as columns,
    right-handed, signs as the solver returns them; skew (F, D) skewness
    ``m3 / lambda**1.5`` of the coordinates along each axis (0 where lambda is 0); status
    (F,) int8 (module codes).

    3D eigenpairs come in closed form (:func:`_sym3_eigen`) unless two eigenvalues are
    within ``_CLOSED_FORM_GAP`` of each other, where ``np.linalg.eigh`` solves them.
    """
    n_frames, n_fit, dim = xfit.shape
    xflat = xfit.reshape(n_frames, n_fit * dim)
    for f in nb.prange(n_frames):
        xr = xflat[f]
        ax = axes[f]
        # one pass over flat rows: weighted first and second moments about the first
        # atom (scalar accumulators, no per-frame arrays)
        h0 = np.float64(xr[0])
        h1 = np.float64(xr[1])
        h2 = np.float64(xr[2]) if dim == 3 else 0.0
        c0 = c1 = c2 = 0.0  # sum wc d
        m0 = m1 = m2 = 0.0  # sum wg d
        s00 = s01 = s02 = s11 = s12 = s22 = 0.0  # sum wg d d^T
        if dim == 3:
            for i in range(n_fit):
                a = np.float64(xr[3 * i]) - h0
                b = np.float64(xr[3 * i + 1]) - h1
                c = np.float64(xr[3 * i + 2]) - h2
                u = wc[i]
                v = wg[i]
                c0 += u * a
                c1 += u * b
                c2 += u * c
                va = v * a
                vb = v * b
                vc = v * c
                m0 += va
                m1 += vb
                m2 += vc
                s00 += va * a
                s01 += va * b
                s02 += va * c
                s11 += vb * b
                s12 += vb * c
                s22 += vc * c
        else:
            for i in range(n_fit):
                a = np.float64(xr[2 * i]) - h0
                b = np.float64(xr[2 * i + 1]) - h1
                u = wc[i]
                v = wg[i]
                c0 += u * a
                c1 += u * b
                va = v * a
                vb = v * b
                m0 += va
                m1 += vb
                s00 += va * a
                s01 += va * b
                s11 += vb * b
        if point >= 0:
            c0 = np.float64(xr[dim * point]) - h0
            c1 = np.float64(xr[dim * point + 1]) - h1
            c2 = np.float64(xr[dim * point + 2]) - h2 if dim == 3 else 0.0
        trans[f, 0] = h0 + c0
        trans[f, 1] = h1 + c1
        if dim == 3:
            trans[f, 2] = h2 + c2
        # second moments about the centre h + c (sum wg = 1)
        g00 = s00 - 2.0 * m0 * c0 + c0 * c0
        g01 = s01 - m0 * c1 - c0 * m1 + c0 * c1
        g11 = s11 - 2.0 * m1 * c1 + c1 * c1
        g02 = s02 - m0 * c2 - c0 * m2 + c0 * c2
        g12 = s12 - m1 * c2 - c1 * m2 + c1 * c2
        g22 = s22 - 2.0 * m2 * c2 + c2 * c2
        spread = s00 + s11 + s22 + c0 * c0 + c1 * c1 + c2 * c2
        finite = abs(g00) < np.inf and abs(g01) < np.inf and abs(g11) < np.inf
        finite = finite and abs(g02) < np.inf and abs(g12) < np.inf and abs(g22) < np.inf
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
            half = 0.5 * (g00 + g11)
            r = np.sqrt(0.25 * (g00 - g11) ** 2 + g01 * g01)
            evals[f, 0] = half + r
            evals[f, 1] = half - r
            phi = 0.5 * np.arctan2(2.0 * g01, g00 - g11)
            cs, sn = np.cos(phi), np.sin(phi)
            ax[0, 0] = cs
            ax[1, 0] = sn
            ax[0, 1] = -sn
            ax[1, 1] = cs
        else:
            e0, e1, e2, ok = _sym3_eigen(g00, g01, g02, g11, g12, g22, ax)
            if ok:
                evals[f, 0] = e0
                evals[f, 1] = e1
                evals[f, 2] = e2
            else:
                g = np.empty((3, 3))
                g[0, 0], g[0, 1], g[0, 2] = g00, g01, g02
                g[1, 0], g[1, 1], g[1, 2] = g01, g11, g12
                g[2, 0], g[2, 1], g[2, 2] = g02, g12, g22
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
        # second pass (the frame is in cache): third moments along each axis
        k0 = k1 = k2 = 0.0
        if dim == 3:
            a00, a01, a02 = ax[0, 0], ax[0, 1], ax[0, 2]
            a10, a11, a12 = ax[1, 0], ax[1, 1], ax[1, 2]
            a20, a21, a22 = ax[2, 0], ax[2, 1], ax[2, 2]
            o0, o1, o2 = h0 + c0, h1 + c1, h2 + c2
            for i in range(n_fit):
                a = np.float64(xr[3 * i]) - o0
                b = np.float64(xr[3 * i + 1]) - o1
                c = np.float64(xr[3 * i + 2]) - o2
                p0 = a * a00 + b * a10 + c * a20
                p1 = a * a01 + b * a11 + c * a21
                p2 = a * a02 + b * a12 + c * a22
                v = wg[i]
                k0 += v * p0 * p0 * p0
                k1 += v * p1 * p1 * p1
                k2 += v * p2 * p2 * p2
        else:
            a00, a01, a10, a11 = ax[0, 0], ax[0, 1], ax[1, 0], ax[1, 1]
            o0, o1 = h0 + c0, h1 + c1
            for i in range(n_fit):
                a = np.float64(xr[2 * i]) - o0
                b = np.float64(xr[2 * i + 1]) - o1
                p0 = a * a00 + b * a10
                p1 = a * a01 + b * a11
                v = wg[i]
                k0 += v * p0 * p0 * p0
                k1 += v * p1 * p1 * p1
        for k in range(dim):
            lam = evals[f, k]
            m3 = k0 if k == 0 else (k1 if k == 1 else k2)
            skew[f, k] = m3 / lam**1.5 if lam > _ZERO_TOL * spread else 0.0
            if not abs(skew[f, k]) < np.inf or not abs(m3) < np.inf:
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
