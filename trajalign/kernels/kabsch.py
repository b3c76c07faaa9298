"""Weighted Kabsch superposition: one pass for centroid and correlation, one to rotate.

Conventions (row vectors, as the rest of trajalign):

- ``aligned[t] = (x[t] - c_t) @ R_t`` where ``c_t`` is the ``w``-weighted centroid of the
  fit atoms of frame ``t`` and ``R_t`` (D, D) is the proper rotation (det +1) that
  minimises ``sum_i w_i |(xfit[t, i] - c_t) @ R_t - ref_i|^2``.
- ``ref`` is the reference fit atoms, float64, **already centred** on their
  ``w``-weighted centroid, and ``w`` sums to 1. Because ``sum_i w_i ref_i = 0`` the
  correlation matrix ``S = sum_i w_i (x_i - c) ref_i^T`` equals ``sum_i w_i (x_i - s)
  ref_i^T`` for any shift ``s``, so centroid, ``S`` and the spread of ``x`` come out of a
  single pass (in float64, uncentred: see :func:`_moments3` for the digits that costs).
- 2D: closed form. 3D: QCP (Theobald 2005, Liu et al. 2010): Newton on the quartic
  characteristic polynomial of Horn's 4x4 key matrix from the upper bound ``(Gx+Gy)/2``,
  then the quaternion from the adjugate of ``K - lambda I``. The quaternion is accepted
  only if its Rayleigh quotient reaches the eigenvalue; otherwise (near-degenerate
  eigenvalues, where the adjugate vanishes) the full symmetric eigenproblem is solved
  with ``np.linalg.eigh``. A quaternion always gives a proper rotation, so a fit that
  would be best as a reflection is never returned as one.
- ``status[t]``: 0 closed form / QCP, 1 eigen fallback (rotation still unique and
  optimal), 2 degenerate: the optimum is not unique (collinear or symmetric fit atoms, or
  all at one point); ``R_t`` is then one optimal rotation among many and the caller warns.
  3 overflow: the sums of squares and products overflow float64 (|x| |ref| beyond about
  1e150), or the frame holds NaN/inf; ``R_t`` is the identity and the caller raises.
"""

import numba as nb
import numpy as np

from ._config import EXACT_PARALLEL_JIT, HELPER_JIT, JIT
from ._threads import in_threads

# The per-frame helpers are inlined into the kernels that call them (in Numba's IR),
# not compiled and linked on their own: each Numba function costs typing, an LLVM
# module and a second optimisation of the callees linked into its caller, and each of
# these has one caller per signature. Not the moments loops: inlined, the fit pass
# of a whole-frame fit (2000 x 3341 float32) ran 1.4x slower (17 -> 24 ms), a loop LLVM
# optimised better on its own.
INLINE_JIT = dict(JIT, inline="always")

__all__ = [
    "NEWTON_TOL",
    "NOT_UNIQUE",
    "OVERFLOW",
    "accumulate_aligned",
    "apply_motion",
    "fit_frames",
    "rotation_2d",
    "rotation_3d",
    "superpose_frames",
]

# relative tolerances, of the Frobenius norm |S| of the correlation matrix: the
# eigenvalues of K are +-s1 +-s2 +-s3 (singular values of S), so |S| sets their scale
# (E0 = (Gx + Gy) / 2 does not when the frame and reference differ in size)
NEWTON_TOL = 1e-13  # Newton stops when the step is below this fraction of lambda
_ADJ_TOL = 1e-6  # adjugate column norms below this * |S|**3: near-degenerate lambda
_RAYLEIGH_TOL = 1e-10  # accepted quaternion must reach lambda - this * |S|
_DEGENERATE_TOL = 1e-7  # top-two eigenvalue gap below this * |S|: rotation not unique
# msd = Gx + Gy - 2 lambda cancels: its absolute error is ~eps (|x|^2 + Gy), so an RMSD
# near 0 comes out as ~sqrt(eps) |x| (4e-6 A for a self-fit of a copy moved 100 A;
# MDAnalysis #119). Below this fraction of Gx + Gy the msd is summed directly instead;
# realistic fits rarely get there (rmsd / Rg < 0.01), so the extra pass costs nothing.
_DIRECT_MSD_TOL = 1e-4

NOT_UNIQUE = 2
OVERFLOW = 3
# only between a kernel and its caller: QCP left the frame to the eigen fallback
NEEDS_EIGEN = 4


@nb.njit(**JIT)
def _quat_to_rot(q0, q1, q2, q3, rot):
    """Row-convention rotation (x @ rot) of the unit quaternion (q0, q1, q2, q3)."""
    # column-convention matrix M (M @ x) is Horn's; rot = M.T
    rot[0, 0] = q0 * q0 + q1 * q1 - q2 * q2 - q3 * q3
    rot[1, 0] = 2.0 * (q1 * q2 - q0 * q3)
    rot[2, 0] = 2.0 * (q1 * q3 + q0 * q2)
    rot[0, 1] = 2.0 * (q2 * q1 + q0 * q3)
    rot[1, 1] = q0 * q0 - q1 * q1 + q2 * q2 - q3 * q3
    rot[2, 1] = 2.0 * (q2 * q3 - q0 * q1)
    rot[0, 2] = 2.0 * (q3 * q1 - q0 * q2)
    rot[1, 2] = 2.0 * (q3 * q2 + q0 * q1)
    rot[2, 2] = q0 * q0 - q1 * q1 - q2 * q2 + q3 * q3


@nb.njit(**HELPER_JIT)
def _det3(a00, a01, a02, a10, a11, a12, a20, a21, a22):
    return (
        a00 * (a11 * a22 - a12 * a21)
        - a01 * (a10 * a22 - a12 * a20)
        + a02 * (a10 * a21 - a11 * a20)
    )


def _horn_key(s: np.ndarray) -> np.ndarray:
    """Horn's symmetric 4x4 key matrix of the 3x3 correlation ``s`` (float64)."""
    (sxx, sxy, sxz), (syx, syy, syz), (szx, szy, szz) = s
    return np.array(
        [
            [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
            [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
            [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
            [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
        ]
    )


def _eigen_rotation(s: np.ndarray, rot: np.ndarray) -> tuple[float, int]:
    """The eigen fallback of :func:`_qcp3` (near-degenerate eigenvalues), in NumPy.

    s : (3, 3) float64 correlation; writes ``rot`` (3, 3) and returns
    ``(lambda_max, status)``, status 1, or 2 where the top two eigenvalues of the key
    matrix are too close for the rotation to be unique.
    """
    evals, evecs = np.linalg.eigh(_horn_key(s))
    q = evecs[:, 3]
    _quat_to_rot(q[0], q[1], q[2], q[3], rot)
    scale = np.sqrt(np.sum(s * s))
    return float(evals[3]), 2 if evals[3] - evals[2] <= _DEGENERATE_TOL * scale else 1


@nb.njit(**JIT)
def _qcp3(sxx, sxy, sxz, syx, syy, syz, szx, szy, szz, e0, rot):
    """:func:`rotation_3d` in a kernel, without its eigen fallback: status
    ``NEEDS_EIGEN`` (and the identity in ``rot``) where QCP cannot settle the rotation,
    for the caller to finish with :func:`_eigen_rotation` outside the kernel. S comes
    as nine scalars (row-major): a per-frame 3x3 array cost an allocation per frame and
    the compilation of NumPy's ``empty``.
    """
    # Scalars, not 4x4 arrays, and no np.linalg.eigh compiled in (nor an object-mode
    # block calling it): with arrays and eigh this function alone took 2.6 s of CPU to
    # compile on an empty cache, with the object-mode block 1.5 s, without it 1.2 s
    # (benchmarks/compiletime.py; every first run on a new machine pays it). The
    # arithmetic and its order are those of the array version.
    # Horn's symmetric key matrix K (upper triangle); its largest eigenpair is
    # (lambda_max, quaternion)
    k00 = sxx + syy + szz
    k01 = syz - szy
    k02 = szx - sxz
    k03 = sxy - syx
    k11 = sxx - syy - szz
    k12 = sxy + syx
    k13 = szx + sxz
    k22 = -sxx + syy - szz
    k23 = syz + szy
    k33 = -sxx - syy + szz
    # one sum in the row-major order of the array version's loop
    c2 = sxx * sxx
    c2 += sxy * sxy
    c2 += sxz * sxz
    c2 += syx * syx
    c2 += syy * syy
    c2 += syz * syz
    c2 += szx * szx
    c2 += szy * szy
    c2 += szz * szz
    scale = np.sqrt(c2)
    if not (scale < np.inf and e0 < np.inf):
        # overflowed sums (or NaN) carry no rotation; the identity with status 0 or 2
        # would pass for a fit (cf. MDTraj #1798), so the caller raises on this status
        for i in range(3):
            for j in range(3):
                rot[i, j] = 1.0 if i == j else 0.0
        return 0.0, OVERFLOW
    if not scale > 1e-300 or not e0 > 0.0:
        # S = 0: the fit atoms at one point, or uncorrelated with the reference; any
        # rotation is optimal (and the caller warns)
        for i in range(3):
            for j in range(3):
                rot[i, j] = 1.0 if i == j else 0.0
        return 0.0, 2
    # K is traceless: det(K - l I) = l^4 + c2 l^2 + c1 l + c0
    c2 *= -2.0
    c1 = -8.0 * _det3(sxx, sxy, sxz, syx, syy, syz, szx, szy, szz)
    # det K by Laplace expansion along the first two rows (2x2 minors)
    m01 = k00 * k11 - k01 * k01
    m02 = k00 * k12 - k02 * k01
    m03 = k00 * k13 - k03 * k01
    m12 = k01 * k12 - k02 * k11
    m13 = k01 * k13 - k03 * k11
    m23 = k02 * k13 - k03 * k12
    n01 = k02 * k13 - k12 * k03
    n02 = k02 * k23 - k22 * k03
    n03 = k02 * k33 - k23 * k03
    n12 = k12 * k23 - k22 * k13
    n13 = k12 * k33 - k23 * k13
    n23 = k22 * k33 - k23 * k23
    c0 = m01 * n23 - m02 * n13 + m03 * n12 + m12 * n03 - m13 * n02 + m23 * n01
    # Newton from above converges monotonically to the largest root (Theobald 2005): P is
    # convex above it. Both E0 and sqrt(3)|S| >= s1 + s2 + s3 bound it; take the tighter.
    lam = min(e0, np.sqrt(3.0) * scale)
    for _ in range(60):
        l2 = lam * lam
        b = (l2 + c2) * lam
        a = b + c1
        denom = 2.0 * l2 * lam + b + a  # P'(lam) = 4 l^3 + 2 c2 l + c1
        if denom == 0.0:
            break
        delta = (a * lam + c0) / denom
        lam -= delta
        if abs(delta) <= NEWTON_TOL * abs(lam):
            break
    # A = K - lam I (symmetric); the eigenvector is its adjugate's largest column
    a00 = k00 - lam
    a01 = k01
    a02 = k02
    a03 = k03
    a11 = k11 - lam
    a12 = k12
    a13 = k13
    a22 = k22 - lam
    a23 = k23
    a33 = k33 - lam
    best = -1.0
    q0 = q1 = q2 = q3 = 0.0
    # column c of the adjugate: the signed 3x3 minors of A without row c and column j
    v0 = _det3(a11, a12, a13, a12, a22, a23, a13, a23, a33)
    v1 = -_det3(a01, a12, a13, a02, a22, a23, a03, a23, a33)
    v2 = _det3(a01, a11, a13, a02, a12, a23, a03, a13, a33)
    v3 = -_det3(a01, a11, a12, a02, a12, a22, a03, a13, a23)
    nrm = v0 * v0 + v1 * v1 + v2 * v2 + v3 * v3
    if nrm > best:
        best = nrm
        q0, q1, q2, q3 = v0, v1, v2, v3
    v0 = -_det3(a01, a02, a03, a12, a22, a23, a13, a23, a33)
    v1 = _det3(a00, a02, a03, a02, a22, a23, a03, a23, a33)
    v2 = -_det3(a00, a01, a03, a02, a12, a23, a03, a13, a33)
    v3 = _det3(a00, a01, a02, a02, a12, a22, a03, a13, a23)
    nrm = v0 * v0 + v1 * v1 + v2 * v2 + v3 * v3
    if nrm > best:
        best = nrm
        q0, q1, q2, q3 = v0, v1, v2, v3
    v0 = _det3(a01, a02, a03, a11, a12, a13, a13, a23, a33)
    v1 = -_det3(a00, a02, a03, a01, a12, a13, a03, a23, a33)
    v2 = _det3(a00, a01, a03, a01, a11, a13, a03, a13, a33)
    v3 = -_det3(a00, a01, a02, a01, a11, a12, a03, a13, a23)
    nrm = v0 * v0 + v1 * v1 + v2 * v2 + v3 * v3
    if nrm > best:
        best = nrm
        q0, q1, q2, q3 = v0, v1, v2, v3
    v0 = -_det3(a01, a02, a03, a11, a12, a13, a12, a22, a23)
    v1 = _det3(a00, a02, a03, a01, a12, a13, a02, a22, a23)
    v2 = -_det3(a00, a01, a03, a01, a11, a13, a02, a12, a23)
    v3 = _det3(a00, a01, a02, a01, a11, a12, a02, a12, a22)
    nrm = v0 * v0 + v1 * v1 + v2 * v2 + v3 * v3
    if nrm > best:
        best = nrm
        q0, q1, q2, q3 = v0, v1, v2, v3
    status = 0
    ok = best > (_ADJ_TOL * scale * scale * scale) ** 2 and best == best
    if ok:
        inv = 1.0 / np.sqrt(best)
        q0 *= inv
        q1 *= inv
        q2 *= inv
        q3 *= inv
        # the rotation is optimal iff q^T K q reaches lambda_max
        rq = 0.0
        rq += q0 * k00 * q0
        rq += q0 * k01 * q1
        rq += q0 * k02 * q2
        rq += q0 * k03 * q3
        rq += q1 * k01 * q0
        rq += q1 * k11 * q1
        rq += q1 * k12 * q2
        rq += q1 * k13 * q3
        rq += q2 * k02 * q0
        rq += q2 * k12 * q1
        rq += q2 * k22 * q2
        rq += q2 * k23 * q3
        rq += q3 * k03 * q0
        rq += q3 * k13 * q1
        rq += q3 * k23 * q2
        rq += q3 * k33 * q3
        ok = rq >= lam - _RAYLEIGH_TOL * scale
        if ok:
            # report what the returned rotation achieves: near a double root of P
            # (nearly collinear fit atoms) Newton's lambda is only good to ~sqrt(eps)
            # and the RMSD came out up to 7e-5 A too large for an optimal rotation
            lam = rq
    if not ok:
        q0, q1, q2, q3 = 1.0, 0.0, 0.0, 0.0
        status = NEEDS_EIGEN
    _quat_to_rot(q0, q1, q2, q3, rot)
    return lam, status


def rotation_3d(s: np.ndarray, e0: float, rot: np.ndarray) -> tuple[float, int]:
    """Optimal proper rotation from the 3x3 correlation ``s`` (s[a, b] = sum w x_a r_b).

    s : (3, 3) float64; ``e0`` = (Gx + Gy) / 2 >= lambda_max. Writes ``rot`` (3, 3)
    float64; returns ``(lambda_max, status)`` (QCP, or the eigen fallback).
    """
    s = np.asarray(s, dtype=np.float64)
    lam, status = _qcp3(*s.reshape(9).tolist(), e0, rot)
    if status == NEEDS_EIGEN:
        lam, status = _eigen_rotation(s, rot)
    return lam, status


@nb.njit(**JIT)
def rotation_2d(s00, s01, s10, s11, e0, rot):
    """Optimal rotation in 2D, closed form, from the 2x2 correlation S (four scalars,
    row-major, as :func:`_qcp3` takes S); returns ``(lambda_max, status)``."""
    # maximise tr(M S) over M = [[c, -s], [s, c]]: c (S00 + S11) + s (S01 - S10)
    a = s00 + s11
    b = s01 - s10
    lam = np.sqrt(a * a + b * b)
    scale = np.sqrt(s00**2 + s01**2 + s10**2 + s11**2)
    if not (scale < np.inf and lam < np.inf and e0 < np.inf):
        # overflowed sums (or NaN): no rotation; the caller raises (see rotation_3d)
        rot[0, 0] = 1.0
        rot[0, 1] = 0.0
        rot[1, 0] = 0.0
        rot[1, 1] = 1.0
        return 0.0, OVERFLOW
    if not lam > _DEGENERATE_TOL * scale or not scale > 1e-300:
        # isotropic fit atoms against their mirror image, or all at one point
        rot[0, 0] = 1.0
        rot[0, 1] = 0.0
        rot[1, 0] = 0.0
        rot[1, 1] = 1.0
        return lam, 2
    c = a / lam
    sn = b / lam
    # rot = M.T for row vectors
    rot[0, 0] = c
    rot[0, 1] = sn
    rot[1, 0] = -sn
    rot[1, 1] = c
    return lam, 0


@nb.njit(**HELPER_JIT)
def _moments3(xr, w, wr3, n, yr, orow):
    """Sums over the fit atoms of one 3D frame, flat rows (3n,): S (9 values, row-major,
    S[a, b] = sum w x_a ref_b), the weighted centroid m (3) and sum w |x|^2.

    wr3 : (3, n) ``w * ref`` by coordinate. yr, orow : None, or flat rows of at least
    3n values; then the loop also copies ``yr[:3n]`` into ``orow`` (see
    :func:`superpose_frames`).
    """
    # S needs no centring: sum w ref = 0, so sum w (x - m) ref^T = sum w x ref^T. The
    # uncentred sum w |x|^2 - |m|^2 loses log10(|x|^2 / Rg^2) digits of float64, which
    # leaves the RMSD exact to ~1e-6 A even for coordinates near 1e4 A.
    # The loop reads the interleaved row directly: LLVM vectorises the stride-3 loads
    # with shuffles, cheaper than first splitting the frame into three float64 rows
    # (an extra store and load per value). g takes one FMA per atom: three chained
    # FMAs into it (g += wa * a + wb * b + wc * c) made FMA latency, not throughput,
    # bound the loop. Together 1.2-1.6x faster for the fit pass alone.
    ra = wr3[0]
    rb = wr3[1]
    rc = wr3[2]
    s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = 0.0
    m0 = m1 = m2 = g = 0.0
    for i in range(n):
        a = np.float64(xr[3 * i])
        b = np.float64(xr[3 * i + 1])
        c = np.float64(xr[3 * i + 2])
        if orow is not None:
            orow[3 * i] = yr[3 * i]
            orow[3 * i + 1] = yr[3 * i + 1]
            orow[3 * i + 2] = yr[3 * i + 2]
        p = ra[i]
        q = rb[i]
        r = rc[i]
        s00 += a * p
        s01 += a * q
        s02 += a * r
        s10 += b * p
        s11 += b * q
        s12 += b * r
        s20 += c * p
        s21 += c * q
        s22 += c * r
        wi = w[i]
        m0 += wi * a
        m1 += wi * b
        m2 += wi * c
        g += wi * (a * a + b * b + c * c)
    return s00, s01, s02, s10, s11, s12, s20, s21, s22, m0, m1, m2, g


@nb.njit(**HELPER_JIT)
def _moments2(xr, w, wr, n, yr, orow):
    """2D version of :func:`_moments3`: S (4 values), m (2), sum w |x|^2."""
    s00 = s01 = s10 = s11 = 0.0
    m0 = m1 = g = 0.0
    for i in range(n):
        a = np.float64(xr[2 * i])
        b = np.float64(xr[2 * i + 1])
        if orow is not None:
            orow[2 * i] = yr[2 * i]
            orow[2 * i + 1] = yr[2 * i + 1]
        wi = w[i]
        wa = wi * a
        wb = wi * b
        m0 += wa
        m1 += wb
        g += wa * a + wb * b
        p = wr[2 * i]
        q = wr[2 * i + 1]
        s00 += a * p
        s01 += a * q
        s10 += b * p
        s11 += b * q
    return s00, s01, s10, s11, m0, m1, g


# Every kernel below exists once per dimension: a run compiles the 3D path (or the 2D
# one) only, about half the code a dimension-generic kernel with both branches compiled.
# The arithmetic of each path is the one the generic kernels had.


@nb.njit(**INLINE_JIT)
def _direct_msd3(xr, w, rr, n, rot, trans):
    """sum_i w_i |(x_i - trans) @ rot - ref_i|^2 for flat 3D rows xr, rr (3n,)."""
    # scalars and flat rows as _apply3: frames of a large system with a small
    # RMSD (rmsd < 1.4% of Rg) all come here, so it runs at the speed of the move
    msd = 0.0
    r00, r01, r02 = rot[0, 0], rot[0, 1], rot[0, 2]
    r10, r11, r12 = rot[1, 0], rot[1, 1], rot[1, 2]
    r20, r21, r22 = rot[2, 0], rot[2, 1], rot[2, 2]
    t0, t1, t2 = trans[0], trans[1], trans[2]
    for i in range(n):
        a = np.float64(xr[3 * i]) - t0
        b = np.float64(xr[3 * i + 1]) - t1
        c = np.float64(xr[3 * i + 2]) - t2
        d0 = a * r00 + b * r10 + c * r20 - rr[3 * i]
        d1 = a * r01 + b * r11 + c * r21 - rr[3 * i + 1]
        d2 = a * r02 + b * r12 + c * r22 - rr[3 * i + 2]
        msd += w[i] * (d0 * d0 + d1 * d1 + d2 * d2)
    return msd


@nb.njit(**INLINE_JIT)
def _direct_msd2(xr, w, rr, n, rot, trans):
    """2D version of :func:`_direct_msd3`."""
    # the generic loop over the dimension, as before the split (its rounding with
    # fast-math differs from a loop of fixed length 2)
    dim = rot.shape[0]
    msd = 0.0
    for i in range(n):
        d2 = 0.0
        for b in range(dim):
            y = 0.0
            for a in range(dim):
                y += (np.float64(xr[i * dim + a]) - trans[a]) * rot[a, b]
            d = y - rr[i * dim + b]
            d2 += d * d
        msd += w[i] * d2
    return msd


@nb.njit(**INLINE_JIT)
def _fit_frame3(xr, w, wr3, rr, n, gy, rot, trans, yr, orow):
    """One 3D frame: centroid, correlation and spread in one pass, then the rotation.

    xr : (3n,) flat fit atoms of the frame; wr3 : (3, n) ``w * ref`` by coordinate;
    rr : (3n,) flat ``ref``; yr, orow: see :func:`_moments3`. Writes trans (3,) and
    rot (3, 3); returns (msd, status).
    """
    s00, s01, s02, s10, s11, s12, s20, s21, s22, m0, m1, m2, g = _moments3(xr, w, wr3, n, yr, orow)
    trans[0], trans[1], trans[2] = m0, m1, m2
    gx = g - (m0 * m0 + m1 * m1 + m2 * m2)
    if gx < 0.0:
        gx = 0.0
    e0 = 0.5 * (gx + gy)
    lam, status = _qcp3(s00, s01, s02, s10, s11, s12, s20, s21, s22, e0, rot)
    msd = gx + gy - 2.0 * lam
    if msd < _DIRECT_MSD_TOL * (gx + gy) and status < OVERFLOW:
        msd = _direct_msd3(xr, w, rr, n, rot, trans)
    return (msd if msd > 0.0 else 0.0), status


@nb.njit(**INLINE_JIT)
def _fit_frame2(xr, w, wr, rr, n, gy, rot, trans, yr, orow):
    """2D version of :func:`_fit_frame3`; wr : (2n,) flat ``w * ref``."""
    s00, s01, s10, s11, m0, m1, g = _moments2(xr, w, wr, n, yr, orow)
    trans[0], trans[1] = m0, m1
    gx = g - (m0 * m0 + m1 * m1)
    if gx < 0.0:
        gx = 0.0
    e0 = 0.5 * (gx + gy)
    lam, status = rotation_2d(s00, s01, s10, s11, e0, rot)
    msd = gx + gy - 2.0 * lam
    if msd < _DIRECT_MSD_TOL * (gx + gy) and status != OVERFLOW:
        msd = _direct_msd2(xr, w, rr, n, rot, trans)
    return (msd if msd > 0.0 else 0.0), status


@nb.njit(**INLINE_JIT)
def _apply3(xr, orow, n, rot, trans):
    """orow = (xr - trans) @ rot for one 3D frame of flat (3n,) rows; float64 math."""
    # flat rows index faster than (n, dim) views in numba (about 2x here)
    r00, r01, r02 = rot[0, 0], rot[0, 1], rot[0, 2]
    r10, r11, r12 = rot[1, 0], rot[1, 1], rot[1, 2]
    r20, r21, r22 = rot[2, 0], rot[2, 1], rot[2, 2]
    t0, t1, t2 = trans[0], trans[1], trans[2]
    for i in range(n):
        a = xr[3 * i] - t0
        b = xr[3 * i + 1] - t1
        c = xr[3 * i + 2] - t2
        orow[3 * i] = a * r00 + b * r10 + c * r20
        orow[3 * i + 1] = a * r01 + b * r11 + c * r21
        orow[3 * i + 2] = a * r02 + b * r12 + c * r22


@nb.njit(**INLINE_JIT)
def _apply2(xr, orow, n, rot, trans):
    """2D version of :func:`_apply3`."""
    r00, r01, r10, r11 = rot[0, 0], rot[0, 1], rot[1, 0], rot[1, 1]
    t0, t1 = trans[0], trans[1]
    for i in range(n):
        a = xr[2 * i] - t0
        b = xr[2 * i + 1] - t1
        orow[2 * i] = a * r00 + b * r10
        orow[2 * i + 1] = a * r01 + b * r11


def _reference_rows(w: np.ndarray, ref: np.ndarray):
    """What every fit kernel reads of the reference, computed once per call in NumPy.

    w : (M,) float64, ref : (M, D) float64. Returns ``w * ref`` flat (M * D,) and by
    coordinate (D, M), ``ref`` flat (M * D,), and ``Gy = sum w |ref|^2``.
    """
    wref = w[:, None] * ref
    gy = float(np.sum(wref * ref))
    return wref.reshape(-1), np.ascontiguousarray(wref.T), np.ascontiguousarray(ref).reshape(-1), gy


def _eigen_pass(redo, x, xfit, w, ref, gy, out, rot, trans, rmsd, status) -> None:
    """Fit again, in NumPy with the eigen solver, the frames ``redo`` that a 3D kernel
    left with status ``NEEDS_EIGEN``; moves ``x`` into ``out`` as well unless ``x`` is
    None. Rare (near-degenerate key matrices), so per frame in Python."""
    for f in redo:
        xf = xfit[f].astype(np.float64)
        m = w @ xf
        s = xf.T @ (w[:, None] * ref)
        gx = max(float(w @ np.sum(xf * xf, axis=1) - m @ m), 0.0)
        lam, status[f] = _eigen_rotation(s, rot[f])
        trans[f] = m
        msd = gx + gy - 2.0 * lam
        if msd < _DIRECT_MSD_TOL * (gx + gy):
            d = (xf - m) @ rot[f] - ref
            msd = float(w @ np.sum(d * d, axis=1))
        rmsd[f] = np.sqrt(max(msd, 0.0))
        if x is not None:
            out[f] = (x[f] - m) @ rot[f]


@nb.njit(**JIT)
def _superpose3(start, stop, x, xfit, w, wr3, rr, gy, scratch, out, rot, trans, rmsd, status):
    """:func:`superpose_frames` for D = 3, frames ``[start, stop)``; wr3, rr, gy from
    :func:`_reference_rows`, scratch (3M,) when M > N, else empty."""
    n_frames, n, dim = x.shape
    n_fit = rr.shape[0] // dim
    xflat = x.reshape(n_frames, n * dim)
    fflat = xfit.reshape(n_frames, n_fit * dim)
    oflat = out.reshape(n_frames, n * dim)
    # The fit pass also copies the frame's atoms into its output row, which the move
    # then overwrites: the output's cache lines are fetched (and new pages faulted
    # in) while the FMAs of the fit run, where the move's stores would otherwise
    # wait for them (2000 x 3341 float32 into a new array: 14.4 -> 13.3 ms). With
    # more fit atoms than atoms the copy goes to a scratch row instead, so that it
    # never runs past the output row.
    for f in range(start, stop):
        if n_fit <= n:
            yr = xflat[f]
            orow = oflat[f]
        else:
            yr = scratch
            orow = scratch
        msd, st = _fit_frame3(fflat[f], w, wr3, rr, n_fit, gy, rot[f], trans[f], yr, orow)
        rmsd[f] = np.sqrt(msd)
        status[f] = st
        # the move right after the fit: the frame and its output row are in cache
        _apply3(xflat[f], oflat[f], n, rot[f], trans[f])


@nb.njit(**JIT)
def _superpose2(start, stop, x, xfit, w, wr, rr, gy, scratch, out, rot, trans, rmsd, status):
    """:func:`superpose_frames` for D = 2 (comments in :func:`_superpose3`)."""
    n_frames, n, dim = x.shape
    n_fit = rr.shape[0] // dim
    xflat = x.reshape(n_frames, n * dim)
    fflat = xfit.reshape(n_frames, n_fit * dim)
    oflat = out.reshape(n_frames, n * dim)
    for f in range(start, stop):
        if n_fit <= n:
            yr = xflat[f]
            orow = oflat[f]
        else:
            yr = scratch
            orow = scratch
        msd, st = _fit_frame2(fflat[f], w, wr, rr, n_fit, gy, rot[f], trans[f], yr, orow)
        rmsd[f] = np.sqrt(msd)
        status[f] = st
        _apply2(xflat[f], oflat[f], n, rot[f], trans[f])


def superpose_frames(x, xfit, w, ref, out, rot, trans, rmsd, status):
    """Fit every frame's ``xfit`` onto ``ref`` and apply the motion to ``x``.

    x : (F, N, D) float32/float64 atoms to move, C-contiguous; xfit : (F, M, D) fit
    atoms (may be ``x`` itself); w : (M,) float64 summing to 1; ref : (M, D) float64
    centred on its ``w``-weighted centroid; out : like x; rot : (F, D, D), trans : (F, D),
    rmsd : (F,) float64; status : (F,) int8 (see the module docstring).
    """
    n, dim = x.shape[1], x.shape[2]
    n_fit = ref.shape[0]
    wr, wr3, rr, gy = _reference_rows(w, ref)
    scratch = np.empty(n_fit * dim if n_fit > n else 0, dtype=out.dtype)
    kernel, wref = (_superpose3, wr3) if dim == 3 else (_superpose2, wr)
    work = n * dim + xfit.shape[1] * xfit.shape[2]
    in_threads(
        kernel, x.shape[0], work, x, xfit, w, wref, rr, gy, scratch, out, rot, trans, rmsd, status
    )
    redo = np.flatnonzero(status == NEEDS_EIGEN)
    if redo.size:
        _eigen_pass(redo, x, xfit, w, ref, gy, out, rot, trans, rmsd, status)


@nb.njit(**JIT)
def _fit3(start, stop, xfit, w, wr3, rr, gy, rot, trans, rmsd, status):
    n_frames, n_fit, dim = xfit.shape
    fflat = xfit.reshape(n_frames, n_fit * dim)
    for f in range(start, stop):
        msd, st = _fit_frame3(fflat[f], w, wr3, rr, n_fit, gy, rot[f], trans[f], None, None)
        rmsd[f] = np.sqrt(msd)
        status[f] = st


@nb.njit(**JIT)
def _fit2(start, stop, xfit, w, wr, rr, gy, rot, trans, rmsd, status):
    n_frames, n_fit, dim = xfit.shape
    fflat = xfit.reshape(n_frames, n_fit * dim)
    for f in range(start, stop):
        msd, st = _fit_frame2(fflat[f], w, wr, rr, n_fit, gy, rot[f], trans[f], None, None)
        rmsd[f] = np.sqrt(msd)
        status[f] = st


def fit_frames(xfit, w, ref, rot, trans, rmsd, status):
    """Like :func:`superpose_frames` without moving any atoms (rotations only)."""
    wr, wr3, rr, gy = _reference_rows(w, ref)
    kernel, wref = (_fit3, wr3) if xfit.shape[2] == 3 else (_fit2, wr)
    work = xfit.shape[1] * xfit.shape[2]
    in_threads(kernel, xfit.shape[0], work, xfit, w, wref, rr, gy, rot, trans, rmsd, status)
    redo = np.flatnonzero(status == NEEDS_EIGEN)
    if redo.size:
        _eigen_pass(redo, None, xfit, w, ref, gy, None, rot, trans, rmsd, status)


@nb.njit(**JIT)
def _motion3(start, stop, x, rot, trans, out):
    n_frames, n, dim = x.shape
    xflat = x.reshape(n_frames, n * dim)
    oflat = out.reshape(n_frames, n * dim)
    for f in range(start, stop):
        _apply3(xflat[f], oflat[f], n, rot[f], trans[f])


@nb.njit(**JIT)
def _motion2(start, stop, x, rot, trans, out):
    n_frames, n, dim = x.shape
    xflat = x.reshape(n_frames, n * dim)
    oflat = out.reshape(n_frames, n * dim)
    for f in range(start, stop):
        _apply2(xflat[f], oflat[f], n, rot[f], trans[f])


def apply_motion(x, rot, trans, out):
    """out[t] = (x[t] - trans[t]) @ rot[t] for every frame (float64 arithmetic).

    x : (F, N, D) float32/float64, C-contiguous; rot : (F, D, D), trans : (F, D) float64;
    out : like x.
    """
    kernel = _motion3 if x.shape[2] == 3 else _motion2
    in_threads(kernel, x.shape[0], x.shape[1] * x.shape[2], x, rot, trans, out)


@nb.njit(**EXACT_PARALLEL_JIT)
def accumulate_aligned(x, rot, trans, total):
    """total[i] += (x[f, i] - trans[f]) @ rot[f], frame after frame, in float64.

    x : (F, M, D) float32/float64; rot : (F, D, D), trans : (F, D), total : (M, D) float64,
    updated in place. Each atom's sum runs over the frames in order and continues from
    ``total``, so summing a trajectory in blocks of any size gives the same bits
    (the average reference of a chunked, resumed or Dask run equals one block's).
    Parallel over groups of atoms; exact arithmetic order (no fast-math reassociation).
    """
    n_frames, n_atoms, dim = x.shape
    group = 64
    n_groups = (n_atoms + group - 1) // group
    for g in nb.prange(n_groups):
        lo = g * group
        hi = min(lo + group, n_atoms)
        for f in range(n_frames):
            for i in range(lo, hi):
                for e in range(dim):
                    s = 0.0
                    for d in range(dim):
                        s += (np.float64(x[f, i, d]) - trans[f, d]) * rot[f, d, e]
                    total[i, e] += s
