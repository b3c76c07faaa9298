"""Principal-axes alignment: centre, gyration tensor, eigenvectors, sign choice.

``principal_frames`` (parallel over runs of frames) finds each frame's centre ``c``, the
weighted gyration tensor ``G = sum_i w_i (x_i - c)(x_i - c)^T`` of the fit atoms, its
eigenpairs sorted by decreasing eigenvalue (the last axis the cross product of the others,
so that the frame is right-handed), moves the frame onto the axes and finds the third
moment of the coordinates along each axis, all in one read of the frame. The signs it
gives the axes are provisional. ``choose_signs`` then walks the frames in order (it is
cheap: D x D per frame) and fixes each axis' sign by ``skew`` or ``continuity``; it is
serial because continuity needs the previous frame's axes. ``negate_columns`` flips the
moved coordinates of the axes whose sign changed.
"""

import numba as nb
import numpy as np

from ._config import HELPER_JIT, JIT
from ._threads import in_threads
from .kabsch import _apply2, _apply3

__all__ = [
    "ALL_AT_CENTRE",
    "COLLINEAR",
    "NONFINITE",
    "OK",
    "OVERFLOW",
    "choose_signs",
    "negate_columns",
    "principal_frames",
]

# status codes of principal_frames
OK = 0
ALL_AT_CENTRE = 1  # G = 0: every fit atom at the centre, no axis is defined
COLLINEAR = 2  # 3D: second eigenvalue ~ 0, only the first axis is defined
OVERFLOW = 3  # second or third moments overflow float64 (coordinates beyond ~1e100)
NONFINITE = 4  # NaN or inf among the fit atoms
# 3D: the closed form declined (close eigenvalues); principal_frames finishes these
# frames in NumPy, so callers never see this code
NEEDS_EIGEN = 5

_ZERO_TOL = 1e-14  # lambda_1 below this * (spread about the first atom) counts as zero
_COLLINEAR_TOL = 1e-10  # lambda_2 below this * lambda_1 (3D) counts as collinear
_SKEW_TOL = 1e-6  # |skewness| below this: the skew sign is undefined (symmetric shape)
# 3D: eigenvalues closer than this fraction of the largest |eigenvalue| go to np.linalg.eigh
# (closed-form eigenvectors lose ~eps / gap; real molecules have gaps of 1e-2 and more)
_CLOSED_FORM_GAP = 1e-3


@nb.njit(**HELPER_JIT)
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


@nb.njit(**HELPER_JIT)
def _quad3(g00, g01, g02, g11, g12, g22, ux, uy, uz):
    """u^T G u for symmetric G."""
    return (
        g00 * ux * ux
        + g11 * uy * uy
        + g22 * uz * uz
        + 2.0 * (g01 * ux * uy + g02 * ux * uz + g12 * uy * uz)
    )


@nb.njit(**HELPER_JIT)
def _row_finite(xr):
    """Whether every value of a flat row is finite."""
    for v in xr:
        if not abs(v) < np.inf:
            return False
    return True


def _frame_axes_for(dim):
    """:func:`frame_axes` compiled for one dimension (2 or 3): ``dim`` is a constant of
    the closure, so Numba drops the other dimension's branches before typing them."""

    @nb.njit(**HELPER_JIT)
    def frame_axes(xr, n_fit, wc, point, wg, tr, ev, ax):
        """One frame's centre, eigenpairs of the gyration tensor; returns (status, spread).

        xr : (n_fit * dim,) flat fit atoms. Writes tr (dim,) the centre, ev (dim,) decreasing
        eigenvalues and ax (dim, dim) unit axes as columns, right-handed, signs as the solver
        returns them (identity and zeros when the status is OVERFLOW or NONFINITE).
        """
        # one pass over the flat row: weighted first and second moments about the first atom
        # (scalar accumulators, no per-frame arrays)
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
        # NaN or inf anywhere in the row makes these sums NaN or inf (v * inf is inf or NaN
        # whatever the weight), and so does overflow of finite float64 values; float32 values
        # cannot overflow them, so the explicit scan of the row runs only in that rare case
        moments_finite = abs(m0) < np.inf and abs(m1) < np.inf and abs(m2) < np.inf
        moments_finite = moments_finite and abs(c0) < np.inf and abs(c1) < np.inf
        moments_finite = moments_finite and abs(c2) < np.inf
        if point >= 0:
            c0 = np.float64(xr[dim * point]) - h0
            c1 = np.float64(xr[dim * point + 1]) - h1
            c2 = np.float64(xr[dim * point + 2]) - h2 if dim == 3 else 0.0
        tr[0] = h0 + c0
        tr[1] = h1 + c1
        if dim == 3:
            tr[2] = h2 + c2
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
        if not (finite and spread < np.inf and moments_finite):
            # squares overflowed: eigh would raise inside the parallel loop (a SystemError
            # at the caller), and the identity would pass for axes; the caller raises
            for a in range(dim):
                ev[a] = 0.0
                for b in range(dim):
                    ax[a, b] = 1.0 if a == b else 0.0
            return (OVERFLOW if _row_finite(xr) else NONFINITE), 0.0
        if dim == 2:
            half = 0.5 * (g00 + g11)
            r = np.sqrt(0.25 * (g00 - g11) ** 2 + g01 * g01)
            ev[0] = half + r
            ev[1] = half - r
            phi = 0.5 * np.arctan2(2.0 * g01, g00 - g11)
            cs, sn = np.cos(phi), np.sin(phi)
            ax[0, 0] = cs
            ax[1, 0] = sn
            ax[0, 1] = -sn
            ax[1, 1] = cs
        else:
            e0, e1, e2, ok = _sym3_eigen(g00, g01, g02, g11, g12, g22, ax)
            if ok:
                ev[0] = e0
                ev[1] = e1
                ev[2] = e2
            else:
                # close eigenvalues, rare in real molecules: the frame is finished after
                # the kernel in NumPy (finish_in_numpy); G goes there in ax and the
                # spread in ev[0], so that nothing has to be computed again
                ax[0, 0], ax[0, 1], ax[0, 2] = g00, g01, g02
                ax[1, 0], ax[1, 1], ax[1, 2] = g01, g11, g12
                ax[2, 0], ax[2, 1], ax[2, 2] = g02, g12, g22
                ev[0] = spread
                ev[1] = ev[2] = 0.0
                return NEEDS_EIGEN, spread
        if not ev[0] > _ZERO_TOL * spread:
            return ALL_AT_CENTRE, spread
        if dim == 3 and not ev[1] > _COLLINEAR_TOL * ev[0]:
            return COLLINEAR, spread
        return OK, spread

    return frame_axes


def _third_moments_for(dim):
    """:func:`third_moments` for one dimension (see :func:`_frame_axes_for`)."""

    @nb.njit(**HELPER_JIT)
    def third_moments(xr, n, wg, ax, tr):
        """sum_i wg_i ((x_i - tr) . ax[:, k])^3 for each axis k (0 beyond dim)."""
        k0 = k1 = k2 = 0.0
        if dim == 3:
            a00, a01, a02 = ax[0, 0], ax[0, 1], ax[0, 2]
            a10, a11, a12 = ax[1, 0], ax[1, 1], ax[1, 2]
            a20, a21, a22 = ax[2, 0], ax[2, 1], ax[2, 2]
            o0, o1, o2 = tr[0], tr[1], tr[2]
            for i in range(n):
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
            o0, o1 = tr[0], tr[1]
            for i in range(n):
                a = np.float64(xr[2 * i]) - o0
                b = np.float64(xr[2 * i + 1]) - o1
                p0 = a * a00 + b * a10
                p1 = a * a01 + b * a11
                v = wg[i]
                k0 += v * p0 * p0 * p0
                k1 += v * p1 * p1 * p1
        return k0, k1, k2

    return third_moments


@nb.njit(**HELPER_JIT)
def _move_third_moments3(xr, orow, n, wg, ax, tr):
    """orow = (xr - tr) @ ax for one 3D frame, and its third moments along the axes.

    The fit atoms are all the atoms here: the rotated coordinates are the projections
    the third moments need, so they cost three products per atom and axis.
    """
    r00, r01, r02 = ax[0, 0], ax[0, 1], ax[0, 2]
    r10, r11, r12 = ax[1, 0], ax[1, 1], ax[1, 2]
    r20, r21, r22 = ax[2, 0], ax[2, 1], ax[2, 2]
    t0, t1, t2 = tr[0], tr[1], tr[2]
    k0 = k1 = k2 = 0.0
    for i in range(n):
        a = xr[3 * i] - t0
        b = xr[3 * i + 1] - t1
        c = xr[3 * i + 2] - t2
        p0 = a * r00 + b * r10 + c * r20
        p1 = a * r01 + b * r11 + c * r21
        p2 = a * r02 + b * r12 + c * r22
        orow[3 * i] = p0
        orow[3 * i + 1] = p1
        orow[3 * i + 2] = p2
        v = wg[i]
        k0 += v * p0 * p0 * p0
        k1 += v * p1 * p1 * p1
        k2 += v * p2 * p2 * p2
    return k0, k1, k2


@nb.njit(**HELPER_JIT)
def _negate_columns(orow, n, dim, s0, s1, s2):
    """Multiply columns 0, 1 (and 2 in 3D) of a flat (n * dim,) row by ``s0, s1, s2``
    (each +-1: an exact negation or nothing)."""
    for i in range(n):
        o = i * dim
        if s0 < 0.0:
            orow[o] = -orow[o]
        if s1 < 0.0:
            orow[o + 1] = -orow[o + 1]
        if dim == 3 and s2 < 0.0:
            orow[o + 2] = -orow[o + 2]


@nb.njit(**HELPER_JIT)
def _continuity_signs(ax, prev, dim):
    """Signs (s0, s1) of the first D-1 axes of ``ax`` that bring them closest to
    ``prev``'s (both (D, D), axes as columns); s1 is 1 in 2D."""
    d0 = 0.0
    d1 = 0.0
    for d in range(dim):
        d0 += ax[d, 0] * prev[d, 0]
        if dim == 3:
            d1 += ax[d, 1] * prev[d, 1]
    return (-1.0 if d0 < 0.0 else 1.0), (-1.0 if d1 < 0.0 else 1.0)


@nb.njit(**HELPER_JIT)
def _scale_columns(ax, dim, s0, s1):
    """Axes times the signs s0, s1 of the first D-1 axes, the last axis following them
    (right-handed: s0 in 2D, s0 * s1 in 3D)."""
    s2 = s0 if dim == 2 else s0 * s1
    for d in range(dim):
        ax[d, 0] *= s0
        if dim == 3:
            ax[d, 1] *= s1
        ax[d, dim - 1] *= s2


def principal_frames(x, xfit, same, wc, point, wg, mode, trans, evals, axes, skew, status, out):
    """Per-frame centre, eigenpairs, skewness and the move, with provisional signs.

    x : (F, N, D) float32/float64 atoms to move, C-contiguous; xfit : (F, M, D) fit atoms
    and ``same`` whether it is ``x`` itself. wc : (M,) float64 centre weights summing to 1,
    used when ``point < 0``; otherwise the centre is fit atom ``point``. wg : (M,) float64
    gyration weights summing to 1. mode : sign rule as in :func:`choose_signs`. Outputs
    (float64): trans (F, D) the centre; evals (F, D) decreasing; axes (F, D, D) unit axes
    as columns, right-handed, with provisional signs; skew (F, D) skewness
    ``m3 / lambda**1.5`` along them (0 where lambda is 0); status (F,) int8 (module
    codes); out like x: ``(x - trans) @ axes``.

    One read of each frame: the moments, the eigenpairs, then the move and the third
    moments while the frame is in cache. Continuity needs the previous frame's final
    axes before the move, which threads working side by side do not have; so each
    thread's run of frames follows continuity from its own first frame, whose signs come
    from the skew rule (usually what continuity gives too). :func:`choose_signs` then
    fixes the signs for the whole trajectory and :func:`negate_columns` flips the columns
    that differ, an exact negation: the result does not depend on the runs.
    """
    work = x.shape[1] * x.shape[2] * (1 if same else 2)
    args = (x, xfit, same, wc, point, wg, mode, trans, evals, axes, skew, status, out)
    in_threads(_PRINCIPAL_RUN[x.shape[2]], x.shape[0], work, *args)
    redo = np.flatnonzero(status == NEEDS_EIGEN)
    if redo.size:
        _finish_in_numpy(redo, x, xfit, same, wg, mode, trans, evals, axes, skew, status, out)


def _finish_in_numpy(redo, x, xfit, same, wg, mode, trans, evals, axes, skew, status, out):
    """The frames ``redo`` that the kernel left with ``NEEDS_EIGEN`` (3D, close
    eigenvalues), done as the kernel does the others, with ``np.linalg.eigh``.

    The kernel left G (3, 3) in ``axes[f]`` and the spread in ``evals[f, 0]``, and the
    centre in ``trans[f]``. Provisional signs: eigh's for mode 0, the skew rule
    otherwise (as at the start of a run: choose_signs fixes continuity afterwards).
    Compiling np.linalg.eigh into the kernel, or calling it from an object-mode block
    there, cost seconds of compilation on every empty cache for frames that real
    molecules rarely have.
    """
    for f in redo:
        spread = evals[f, 0]
        w, v = np.linalg.eigh(axes[f])
        ev = w[::-1]
        ax = np.ascontiguousarray(v[:, ::-1])
        ax[:, 2] = np.cross(ax[:, 0], ax[:, 1])
        evals[f] = ev
        if not ev[0] > _ZERO_TOL * spread:
            status[f] = ALL_AT_CENTRE
        elif not ev[1] > _COLLINEAR_TOL * ev[0]:
            status[f] = COLLINEAR
        else:
            status[f] = OK
        moved = (x[f] - trans[f]) @ ax
        fit = moved if same else (xfit[f] - trans[f]) @ ax
        with np.errstate(over="ignore", invalid="ignore"):
            m3 = wg @ fit**3
            lam = np.maximum(ev, 0.0)
            sk = np.where(ev > _ZERO_TOL * spread, m3 / np.where(lam > 0, lam, 1.0) ** 1.5, 0.0)
        if not (np.all(np.abs(sk) < np.inf) and np.all(np.abs(m3) < np.inf)):
            status[f] = OVERFLOW
        if mode != 0:
            s0 = -1.0 if abs(sk[0]) >= _SKEW_TOL and sk[0] < 0.0 else 1.0
            s1 = -1.0 if abs(sk[1]) >= _SKEW_TOL and sk[1] < 0.0 else 1.0
            signs = np.array([s0, s1, s0 * s1])
            ax *= signs
            sk *= signs
            moved *= signs
        axes[f] = ax
        skew[f] = sk
        out[f] = moved


# Made once per dimension at import; Numba compiles each on its first call only. The
# per-run kernel below names them as globals, not as closure variables: Numba keys its
# cache by the pickled closure, and a closed-over dispatcher pickles differently in every
# process, so the kernel was compiled again in every run.
_FRAME_AXES2 = _frame_axes_for(2)
_FRAME_AXES3 = _frame_axes_for(3)
_THIRD_MOMENTS2 = _third_moments_for(2)
_THIRD_MOMENTS3 = _third_moments_for(3)


def _principal_run_for(dim):
    """:func:`principal_run` for one dimension (see :func:`_frame_axes_for`)."""

    @nb.njit(**JIT)
    def principal_run(
        start, stop, x, xfit, same, wc, point, wg, mode, trans, evals, axes, skew, status, out
    ):
        """Frames ``[start, stop)`` of :func:`principal_frames`, one run."""
        n_frames, n = x.shape[0], x.shape[1]
        n_fit = xfit.shape[1]
        xflat = x.reshape(n_frames, n * dim)
        fflat = xfit.reshape(n_frames, n_fit * dim)
        oflat = out.reshape(n_frames, n * dim)
        # the previous frame of the run with axes (-1: none yet); scalars for the signs
        # rather than small arrays, whose allocation compiles a NumPy overload each
        last = -1
        for f in range(start, stop):
            ax = axes[f]
            tr = trans[f]
            if dim == 3:
                st, spread = _FRAME_AXES3(fflat[f], n_fit, wc, point, wg, tr, evals[f], ax)
            else:
                st, spread = _FRAME_AXES2(fflat[f], n_fit, wc, point, wg, tr, evals[f], ax)
            status[f] = st
            if st == OVERFLOW or st == NONFINITE or st == NEEDS_EIGEN:
                for k in range(dim):
                    skew[f, k] = 0.0
                last = -1
                continue
            by_skew = mode == 1 or (mode == 2 and last < 0)
            if mode == 2 and last >= 0:
                # continuity with the run's previous frame, before the move
                s0, s1 = _continuity_signs(ax, axes[last], dim)
                _scale_columns(ax, dim, s0, s1)
            orow = oflat[f]
            if same and dim == 3:
                k0, k1, k2 = _move_third_moments3(xflat[f], orow, n, wg, ax, tr)
            elif dim == 3:
                _apply3(xflat[f], orow, n, ax, tr)
                k0, k1, k2 = _THIRD_MOMENTS3(fflat[f], n_fit, wg, ax, tr)
            else:
                _apply2(xflat[f], orow, n, ax, tr)
                k0, k1, k2 = _THIRD_MOMENTS2(fflat[f], n_fit, wg, ax, tr)
            for k in range(dim):
                lam = evals[f, k]
                m3 = k0 if k == 0 else (k1 if k == 1 else k2)
                skew[f, k] = m3 / lam**1.5 if lam > _ZERO_TOL * spread else 0.0
                if not abs(skew[f, k]) < np.inf or not abs(m3) < np.inf:
                    # cubes overflowed: the skew sign would be arbitrary without a word
                    status[f] = OVERFLOW
            if by_skew:
                # the rule of choose_signs, after the move (the skew needs the frame)
                s0 = -1.0 if abs(skew[f, 0]) >= _SKEW_TOL and skew[f, 0] < 0.0 else 1.0
                s1 = 1.0
                if dim == 3 and abs(skew[f, 1]) >= _SKEW_TOL and skew[f, 1] < 0.0:
                    s1 = -1.0
                if s0 < 0.0 or s1 < 0.0:
                    _scale_columns(ax, dim, s0, s1)
                    s2 = s0 if dim == 2 else s0 * s1
                    skew[f, 0] *= s0
                    skew[f, 1] *= s1 if dim == 3 else s2
                    if dim == 3:
                        skew[f, 2] *= s2
                    _negate_columns(orow, n, dim, s0, s1 if dim == 3 else s2, s2)
            last = f

    return principal_run


_PRINCIPAL_RUN = {2: _principal_run_for(2), 3: _principal_run_for(3)}


def negate_columns(out, signs):
    """Flip the columns of each frame's output where ``signs`` (F, D) is negative."""
    in_threads(_negate_run, out.shape[0], out.shape[1] * out.shape[2], out, signs)


@nb.njit(**JIT)
def _negate_run(start, stop, out, signs):
    n_frames, n, dim = out.shape
    oflat = out.reshape(n_frames, n * dim)
    for f in range(start, stop):
        neg = False
        for k in range(dim):
            neg = neg or signs[f, k] < 0.0
        if neg:
            _negate_columns(oflat[f], n, dim, signs[f, 0], signs[f, 1], signs[f, dim - 1])


def choose_signs(axes, skew, mode, prev, has_prev, rot, flip, swap, ambiguous, sg) -> None:
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
    sign had to be chosen for an axis with zero skewness; signs (F, D) the factors that
    turned ``axes`` into ``rot`` (to apply to moved coordinates).
    """
    # NumPy, not a kernel (it compiled in 0.8 s of CPU and does F * D^2 work): with
    # continuity the sign of axis k in frame f is that of frame f - 1 times the sign of
    # the dot product of their axes as the solver gave them, a running product
    n_frames, dim = skew.shape
    lead = dim - 1
    signs = np.ones((n_frames, dim))
    ambiguous[:] = False
    if n_frames == 0:
        return

    def by_skew(sk):
        small = np.abs(sk) < _SKEW_TOL
        return np.where(~small & (sk < 0.0), -1.0, 1.0), small.any(axis=1)

    if mode == 1:
        signs[:, :lead], ambiguous[:] = by_skew(skew[:, :lead])
    elif mode == 2:
        before = np.concatenate([prev[None], axes[:-1]])
        dots = np.einsum("fdk,fdk->fk", axes[:, :, :lead], before[:, :, :lead])
        step = np.where(dots < 0.0, -1.0, 1.0)
        if not has_prev:
            step[:1], ambiguous[:1] = by_skew(skew[:1, :lead])
        signs[:, :lead] = np.cumprod(step, axis=0)
    # the last axis follows from the others (right-handed frame)
    signs[:, lead] = signs[:, 0] if dim == 2 else signs[:, 0] * signs[:, 1]
    sg[:] = signs
    skew *= signs
    rot[:] = axes * signs[:, None, :]
    # jumps against the previous frame's final axes
    before = np.concatenate([prev[None], rot[:-1]])
    dots = np.einsum("fdk,fdj->fkj", rot, before)
    first = 0 if has_prev else 1
    flip[:first] = False
    swap[:first] = False
    flip[first:] = np.diagonal(dots, axis1=1, axis2=2)[first:] < 0.0
    swap[first:] = (np.argmax(np.abs(dots), axis=2) != np.arange(dim)).any(axis=1)[first:]
