"""Internal-coordinate kernels: distances, angles, dihedrals, inverse-distance spectra.

Conventions shared by every kernel here:

- ``x`` is (F, N, 3) float32 or float64 (2D input is padded with z = 0 by the caller);
  differences and products are formed in float64 and the result is stored in ``out``,
  whose dtype the caller chooses.
- ``table`` is a box table, (F, TABLE_WIDTH) or (1, TABLE_WIDTH) float64, one row per box
  (:func:`trajalign.box.box_table`; a single row serves every frame). Its column 0 is the
  row's mode: 0 (no box), 1 (orthorhombic) or 2 (lattice). Every difference vector takes
  the exact minimum image :func:`trajalign.kernels.box.mic`, the one home of the minimum
  image. Only the all-pairs kernel writes out the orthorhombic rounding and mic's first
  test (a vector no longer than lambda_1 / 2 is its own image), so its loops vectorise.
- Every kernel is a serial loop over a range of frames ``[start, stop)``, run side by
  side in threads (:mod:`._threads`), except the all-pairs distances and the inverse-
  distance spectra (``prange``). Serial kernels compile in half the time of a ``prange``
  loop (dihedrals 1.5 -> 0.8 s of CPU on an empty cache). The pair loops vectorise their
  gathers only if nothing in them touches a reference count: the box row is read into
  scalars once per frame (:func:`trajalign.kernels.box.frame_box`) and the image taken
  from those (:func:`~trajalign.kernels.box.mic_frame`); an inlined function that took
  the table itself ran the dihedrals 3.3x slower. Each frame writes only its own row
  of ``out``. Nothing is allocated per pair: difference vectors live in registers,
  never in an (F, P, 3) array.
- An angle or dihedral that is undefined (a zero-length bond, three collinear atoms of a
  dihedral) is written as NaN; the API decides whether that is an error.
"""

import numba as nb
import numpy as np
from numba.extending import overload

from ._config import HELPER_JIT, JIT, PARALLEL_JIT
from ._threads import in_threads
from .box import BASIS, H2, INVERSE, MODE, frame_box, mic, mic_frame, mic_lattice

__all__ = [
    "angles_kernel",
    "bins_kernel",
    "dihedrals_kernel",
    "distances_all_kernel",
    "distances_kernel",
    "inverse_eigvals_kernel",
    "inverse_kernel",
    "rbf_kernel",
    "repeat_kernel",
    "sincos_kernel",
]


def has_lattice(table: np.ndarray) -> bool:
    """Whether a box table has a triclinic (lattice) row, whose minimum image needs the
    lattice search; the gathering kernels are compiled with or without it."""
    return bool(np.any(table[:, MODE] == 2.0))


def _is_float32(a):  # pragma: no cover - replaced by the overload in compiled code
    return a.dtype == np.float32


@overload(_is_float32, jit_options={"cache": True})
def _is_float32_ov(a):
    flag = a.dtype == nb.types.float32
    return lambda a: flag


# float32 squares of differences are normal numbers (so sqrt in float32 is within 1 ulp)
# when every coordinate is 0 or has magnitude in [2^-40, 2^60]: differences are then 0 or
# in [2^-63, 2^61] (float32 spacing at 2^-40 is 2^-63), and 3 * 2^122 < FLT_MAX
_F32_LO = 2.0**-40
_F32_HI = 2.0**60


@nb.njit(**HELPER_JIT)
def _f32_sqrt_ok(x, f, out):
    """True if frame ``f``'s distances may take their square root in float32: ``out`` is
    float32 and no coordinate of the frame is tiny or huge (see ``_F32_LO``)."""
    if not _is_float32(out):
        return False
    for i in range(x.shape[1]):
        for d in range(3):
            v = abs(np.float64(x[f, i, d]))
            if v != 0.0 and not (_F32_LO <= v <= _F32_HI):
                return False
    return True


# Cephes' atan rational approximation (atan.c, S. L. Moshier): |error| below 2 ulp on
# [0, 1] after the reduction below. Written without calls or branches that cannot become
# selects, so the loops that apply it vectorise; libm's atan2 is a scalar call and was
# 80% of the time of the angle and dihedral kernels.
_AP0, _AP1, _AP2 = (
    -8.750608600031904122785e-1,
    -1.615753718733365076637e1,
    -7.500855792314704667340e1,
)
_AP3, _AP4 = -1.228866684490136173410e2, -6.485021904942025371773e1
_AQ0, _AQ1, _AQ2 = 2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2
_AQ3, _AQ4 = 4.853903996359136964868e2, 1.945506571482613964425e2
_PIO4_MOREBITS = np.pi / 4 + 0.5 * 6.123233995736765886130e-17


@nb.njit(**HELPER_JIT)
def _atan2(y, x):
    """atan2(y, x) in [-pi, pi] for finite float64 y, x (0 for y = x = 0)."""
    ax = abs(x)
    ay = abs(y)
    swap = ay > ax
    lo = ax if swap else ay
    hi = ay if swap else ax
    r = lo / hi if hi > 0.0 else 0.0  # r in [0, 1]
    big = r > 0.66
    t = (r - 1.0) / (r + 1.0) if big else r  # atan(r) = pi/4 + atan(t) when big
    z = t * t
    p = (((_AP0 * z + _AP1) * z + _AP2) * z + _AP3) * z + _AP4
    q = ((((z + _AQ0) * z + _AQ1) * z + _AQ2) * z + _AQ3) * z + _AQ4
    th = t * (z * p / q) + t
    th = th + _PIO4_MOREBITS if big else th
    th = np.pi / 2 - th if swap else th
    th = np.pi - th if x < 0.0 else th
    return -th if y < 0.0 else th


def _distances_for(lattice):
    """:func:`distances_kernel`'s run kernel, compiled with the lattice minimum image
    (``lattice``) or without it (a constant of the closure, so Numba drops the other
    branch before typing it)."""

    @nb.njit(**JIT)
    def run(start, stop, x, pairs, table, out):
        """Frames ``[start, stop)`` of :func:`distances_kernel`."""
        n_pairs = pairs.shape[0]
        # a single box serves every frame: stride 0 over the table's rows
        box_stride = 0 if table.shape[0] == 1 else 1
        for f in range(start, stop):
            b = f * box_stride
            fb = frame_box(table, b)
            low = table[b, MODE] == 0.0 and _f32_sqrt_ok(x, f, out)
            for p in range(n_pairs):
                i = pairs[p, 0]
                j = pairs[p, 1]
                dx = np.float64(x[f, j, 0]) - np.float64(x[f, i, 0])
                dy = np.float64(x[f, j, 1]) - np.float64(x[f, i, 1])
                dz = np.float64(x[f, j, 2]) - np.float64(x[f, i, 2])
                dx, dy, dz, far = mic_frame(dx, dy, dz, fb)
                if lattice:
                    if far:
                        dx, dy, dz = mic_lattice(dx, dy, dz, table, b)
                d2 = dx * dx + dy * dy + dz * dz
                # the same rounding as distances_all_kernel: the root in float32 where safe
                if low:
                    out[f, p] = d2
                    out[f, p] = np.sqrt(out[f, p])
                else:
                    out[f, p] = np.sqrt(d2)

    return run


_DISTANCES = {False: _distances_for(False), True: _distances_for(True)}


def distances_kernel(x, pairs, table, out):
    """out[f, p] = |x[f, j] - x[f, i]| (minimum image in box ``table``) for pairs (P, 2)."""
    work = pairs.shape[0] * 6
    in_threads(_DISTANCES[has_lattice(table)], x.shape[0], work, x, pairs, table, out)


@nb.njit(**PARALLEL_JIT)
def distances_all_kernel(x, table, out):
    """Every pair i < j in ``np.triu_indices(N, 1)`` order: out (F, N(N-1)/2).

    The all-pairs case without index loads: each frame is first copied into a small
    float64 (3, N) buffer, so the inner loop over j reads three contiguous rows and writes
    a contiguous run of ``out``; it vectorises and runs at memory speed.

    Without a box, a float32 ``out`` and a frame whose coordinates are neither tiny nor
    huge (:func:`_f32_sqrt_ok`), squared distances are summed in float64, rounded to
    float32 and the square root is taken in float32: within 1 ulp of the correctly
    rounded distance, with 8 roots per AVX instruction instead of 4 (about 1.6x faster
    for 214 atoms). :func:`distances_kernel` follows the same rule, so both give
    identical numbers.
    """
    n_frames, n = x.shape[0], x.shape[1]
    box_stride = 0 if table.shape[0] == 1 else 1
    for f in nb.prange(n_frames):
        b = f * box_stride
        mode = table[b, MODE]
        # orthorhombic edges and their inverses (0 for a zero edge: no rounding there)
        ax, by, cz = table[b, BASIS], table[b, BASIS + 4], table[b, BASIS + 8]
        ia, ib, ic = table[b, INVERSE], table[b, INVERSE + 4], table[b, INVERSE + 8]
        h2 = table[b, H2]
        low = mode == 0.0 and _f32_sqrt_ok(x, f, out)
        buf = np.empty((3, n), dtype=np.float64)
        d2 = np.empty(n if mode == 2.0 else 0, dtype=np.float64)
        for i in range(n):
            buf[0, i] = x[f, i, 0]
            buf[1, i] = x[f, i, 1]
            buf[2, i] = x[f, i, 2]
        p = 0
        for i in range(n - 1):
            xi, yi, zi = buf[0, i], buf[1, i], buf[2, i]
            m = n - i - 1
            o = out[f, p : p + m]
            rx, ry, rz = buf[0, i + 1 :], buf[1, i + 1 :], buf[2, i + 1 :]
            # one loop per box mode: a branch inside the loop would stop vectorisation
            if low:
                for j in range(m):
                    dx, dy, dz = rx[j] - xi, ry[j] - yi, rz[j] - zi
                    o[j] = dx * dx + dy * dy + dz * dz
                for j in range(m):
                    o[j] = np.sqrt(o[j])
            elif mode == 0.0:
                for j in range(m):
                    dx, dy, dz = rx[j] - xi, ry[j] - yi, rz[j] - zi
                    o[j] = np.sqrt(dx * dx + dy * dy + dz * dz)
            elif mode == 1.0:
                # mic's orthorhombic branch, written out so that the loop vectorises
                for j in range(m):
                    dx, dy, dz = rx[j] - xi, ry[j] - yi, rz[j] - zi
                    dx -= ax * np.floor(dx * ia + 0.5)
                    dy -= by * np.floor(dy * ib + 0.5)
                    dz -= cz * np.floor(dz * ic + 0.5)
                    o[j] = np.sqrt(dx * dx + dy * dy + dz * dz)
            else:
                # a vector no longer than lambda_1 / 2 is its own minimum image (mic's
                # first test): a vectorised pass for all, then mic for the longer ones
                q = d2[:m]
                n_long = 0
                for j in range(m):
                    dx, dy, dz = rx[j] - xi, ry[j] - yi, rz[j] - zi
                    q[j] = dx * dx + dy * dy + dz * dz
                    o[j] = np.sqrt(q[j])
                    n_long += q[j] > h2
                # (the vectorised count spares rows without a long vector the scalar scan)
                if n_long:
                    for j in range(m):
                        if q[j] > h2:
                            dx, dy, dz = mic(rx[j] - xi, ry[j] - yi, rz[j] - zi, table, b)
                            o[j] = np.sqrt(dx * dx + dy * dy + dz * dz)
            p += m


def _angles_for(lattice):
    """:func:`angles_kernel`'s run kernel, with or without the lattice minimum image
    (see :func:`_distances_for`)."""

    @nb.njit(**JIT)
    def run(start, stop, x, triplets, table, out):
        """Frames ``[start, stop)`` of :func:`angles_kernel`."""
        n_angles = triplets.shape[0]
        # a single box serves every frame: stride 0 over the table's rows
        box_stride = 0 if table.shape[0] == 1 else 1
        # pass 1 gathers the points and forms atan2's arguments; pass 2, contiguous,
        # vectorises the arctangent. xs is NaN where the angle is undefined.
        ys = np.empty(n_angles)
        xs = np.empty(n_angles)
        for f in range(start, stop):
            b = f * box_stride
            fb = frame_box(table, b)
            for a in range(n_angles):
                i = triplets[a, 0]
                j = triplets[a, 1]
                k = triplets[a, 2]
                ux = np.float64(x[f, i, 0]) - np.float64(x[f, j, 0])
                uy = np.float64(x[f, i, 1]) - np.float64(x[f, j, 1])
                uz = np.float64(x[f, i, 2]) - np.float64(x[f, j, 2])
                ux, uy, uz, far = mic_frame(ux, uy, uz, fb)
                if lattice:
                    if far:
                        ux, uy, uz = mic_lattice(ux, uy, uz, table, b)
                vx = np.float64(x[f, k, 0]) - np.float64(x[f, j, 0])
                vy = np.float64(x[f, k, 1]) - np.float64(x[f, j, 1])
                vz = np.float64(x[f, k, 2]) - np.float64(x[f, j, 2])
                vx, vy, vz, far = mic_frame(vx, vy, vz, fb)
                if lattice:
                    if far:
                        vx, vy, vz = mic_lattice(vx, vy, vz, table, b)
                px = uy * vz - uz * vy
                py = uz * vx - ux * vz
                pz = ux * vy - uy * vx
                ys[a] = np.sqrt(px * px + py * py + pz * pz)
                xs[a] = ux * vx + uy * vy + uz * vz
                if ux * ux + uy * uy + uz * uz == 0.0 or vx * vx + vy * vy + vz * vz == 0.0:
                    xs[a] = np.nan
            for a in range(n_angles):
                v = _atan2(ys[a], xs[a])
                out[f, a] = v if xs[a] == xs[a] else np.nan

    return run


_ANGLES = {False: _angles_for(False), True: _angles_for(True)}


def angles_kernel(x, triplets, table, out):
    """out[f, a] = angle i-j-k in [0, pi] (vertex j) for triplets (A, 3); NaN if a bond
    has zero length. atan2(|u x v|, u . v) keeps precision near 0 and pi."""
    work = triplets.shape[0] * 9
    in_threads(_ANGLES[has_lattice(table)], x.shape[0], work, x, triplets, table, out)


def _dihedrals_for(lattice):
    """:func:`dihedrals_kernel`'s run kernel, with or without the lattice minimum image
    (see :func:`_distances_for`)."""

    @nb.njit(**JIT)
    def run(start, stop, x, quads, table, out):
        """Frames ``[start, stop)`` of :func:`dihedrals_kernel`."""
        n_quads = quads.shape[0]
        # a single box serves every frame: stride 0 over the table's rows
        box_stride = 0 if table.shape[0] == 1 else 1
        # two passes as in angles_kernel: gather, then a vectorised arctangent
        ys = np.empty(n_quads)
        xs = np.empty(n_quads)
        for f in range(start, stop):
            b = f * box_stride
            fb = frame_box(table, b)
            for q in range(n_quads):
                i = quads[q, 0]
                j = quads[q, 1]
                k = quads[q, 2]
                m = quads[q, 3]
                b1x = np.float64(x[f, j, 0]) - np.float64(x[f, i, 0])
                b1y = np.float64(x[f, j, 1]) - np.float64(x[f, i, 1])
                b1z = np.float64(x[f, j, 2]) - np.float64(x[f, i, 2])
                b1x, b1y, b1z, far = mic_frame(b1x, b1y, b1z, fb)
                if lattice:
                    if far:
                        b1x, b1y, b1z = mic_lattice(b1x, b1y, b1z, table, b)
                b2x = np.float64(x[f, k, 0]) - np.float64(x[f, j, 0])
                b2y = np.float64(x[f, k, 1]) - np.float64(x[f, j, 1])
                b2z = np.float64(x[f, k, 2]) - np.float64(x[f, j, 2])
                b2x, b2y, b2z, far = mic_frame(b2x, b2y, b2z, fb)
                if lattice:
                    if far:
                        b2x, b2y, b2z = mic_lattice(b2x, b2y, b2z, table, b)
                b3x = np.float64(x[f, m, 0]) - np.float64(x[f, k, 0])
                b3y = np.float64(x[f, m, 1]) - np.float64(x[f, k, 1])
                b3z = np.float64(x[f, m, 2]) - np.float64(x[f, k, 2])
                b3x, b3y, b3z, far = mic_frame(b3x, b3y, b3z, fb)
                if lattice:
                    if far:
                        b3x, b3y, b3z = mic_lattice(b3x, b3y, b3z, table, b)
                # n1 = b1 x b2, n2 = b2 x b3
                n1x = b1y * b2z - b1z * b2y
                n1y = b1z * b2x - b1x * b2z
                n1z = b1x * b2y - b1y * b2x
                n2x = b2y * b3z - b2z * b3y
                n2y = b2z * b3x - b2x * b3z
                n2z = b2x * b3y - b2y * b3x
                xs[q] = n1x * n2x + n1y * n2y + n1z * n2z
                ys[q] = np.sqrt(b2x * b2x + b2y * b2y + b2z * b2z) * (
                    b1x * n2x + b1y * n2y + b1z * n2z
                )
                if (
                    n1x * n1x + n1y * n1y + n1z * n1z == 0.0
                    or n2x * n2x + n2y * n2y + n2z * n2z == 0.0
                ):
                    xs[q] = np.nan
            for q in range(n_quads):
                v = _atan2(ys[q], xs[q])
                out[f, q] = v if xs[q] == xs[q] else np.nan
            for q in range(n_quads):
                # a tiny negative y with x < 0 rounds to -pi, and rounding to float32 can
                # land on -float32(pi) < -pi: fold both onto +pi so the range is (-pi, pi]
                if out[f, q] <= -np.pi:
                    out[f, q] = -out[f, q]

    return run


_DIHEDRALS = {False: _dihedrals_for(False), True: _dihedrals_for(True)}


def dihedrals_kernel(x, quads, table, out):
    """out[f, q] = dihedral i-j-k-l in (-pi, pi], IUPAC sign (as MDAnalysis and MDTraj):
    with b1 = j - i, b2 = k - j, b3 = l - k,
    phi = atan2(|b2| b1 . (b2 x b3), (b1 x b2) . (b2 x b3)). NaN where a plane is
    undefined (b1 x b2 = 0 or b2 x b3 = 0: coincident or collinear atoms)."""
    work = quads.shape[0] * 12
    in_threads(_DIHEDRALS[has_lattice(table)], x.shape[0], work, x, quads, table, out)


@nb.njit(**PARALLEL_JIT)
def inverse_eigvals_kernel(x, table, out, bad):
    """Eigenvalues, largest first, of the (N, N) matrix M[i, j] = 1 / r_ij (i != j),
    M[i, i] = 0, per frame into out (F, N). ``bad[f]`` is set to i * N + j for the first
    coincident pair (r = 0, where M is undefined) and that frame's row is left NaN."""
    n_frames, n = x.shape[0], x.shape[1]
    # a single box serves every frame: stride 0 over the table's rows
    box_stride = 0 if table.shape[0] == 1 else 1
    for f in nb.prange(n_frames):
        b = f * box_stride
        m = np.zeros((n, n), dtype=np.float64)
        bad[f] = -1
        for i in range(n - 1):
            for j in range(i + 1, n):
                dx = np.float64(x[f, j, 0]) - np.float64(x[f, i, 0])
                dy = np.float64(x[f, j, 1]) - np.float64(x[f, i, 1])
                dz = np.float64(x[f, j, 2]) - np.float64(x[f, i, 2])
                dx, dy, dz = mic(dx, dy, dz, table, b)
                r2 = dx * dx + dy * dy + dz * dz
                if r2 == 0.0 and bad[f] < 0:
                    bad[f] = i * n + j
                v = 1.0 / np.sqrt(r2) if r2 > 0.0 else 0.0
                m[i, j] = v
                m[j, i] = v
        if bad[f] >= 0:
            for i in range(n):
                out[f, i] = np.nan
            continue
        ev = np.linalg.eigvalsh(m)
        for i in range(n):
            out[f, i] = ev[n - 1 - i]


# ------------------------------------------------------------------ featurisation


def inverse_kernel(r, out):
    """out = 1 / r elementwise over (F, P); a zero distance (coincident points) gives NaN,
    which the API reports as undefined, rather than inf."""
    in_threads(_inverse_run, r.shape[0], r.shape[1], r, out)


@nb.njit(**JIT)
def _inverse_run(start, stop, r, out):
    n_frames, n_cols = r.shape
    for f in range(start, stop):
        for p in range(n_cols):
            v = np.float64(r[f, p])
            out[f, p] = 1.0 / v if v != 0.0 else np.nan


def rbf_kernel(r, centers, gamma, out):
    """out[f, p, k] = exp(-gamma (r[f, p] - centers[k])^2): r (F, P), centers (K,)."""
    in_threads(_rbf_run, r.shape[0], r.shape[1] * centers.shape[0], r, centers, gamma, out)


@nb.njit(**JIT)
def _rbf_run(start, stop, r, centers, gamma, out):
    n_frames, n_cols = r.shape
    n_k = centers.shape[0]
    for f in range(start, stop):
        for p in range(n_cols):
            v = np.float64(r[f, p])
            for k in range(n_k):
                d = v - centers[k]
                out[f, p, k] = np.exp(-gamma * d * d)


def bins_kernel(r, centers, out):
    """One-hot (F, P, K) uint8: the bin of the centre nearest r[f, p] is 1.

    Centres are equally spaced, so the nearest one is a rounding away; values beyond the
    outer centres fall in the first or last bin (open-ended end bins). NaN gives no bin.
    """
    in_threads(_bins_run, r.shape[0], r.shape[1] * centers.shape[0], r, centers, out)


@nb.njit(**JIT)
def _bins_run(start, stop, r, centers, out):
    n_frames, n_cols = r.shape
    n_k = centers.shape[0]
    lo = centers[0]
    step = (centers[n_k - 1] - centers[0]) / (n_k - 1)
    for f in range(start, stop):
        for p in range(n_cols):
            for k in range(n_k):
                out[f, p, k] = 0
            v = np.float64(r[f, p])
            if v != v:
                continue
            k = np.floor((v - lo) / step + 0.5)
            # "not k >= 0" also catches NaN ((v - lo) / step with inf - inf or 0 / 0):
            # np.int64(NaN) is a huge negative index and numba does not check bounds
            if not k >= 0.0:
                k = 0.0
            elif k > n_k - 1:
                k = n_k - 1.0
            out[f, p, np.int64(k)] = 1


def repeat_kernel(r, n_k, out):
    """out[f, p, k] = r[f, p] for k < n_k."""
    in_threads(_repeat_run, r.shape[0], r.shape[1] * n_k, r, n_k, out)


@nb.njit(**JIT)
def _repeat_run(start, stop, r, n_k, out):
    n_frames, n_cols = r.shape
    for f in range(start, stop):
        for p in range(n_cols):
            v = r[f, p]
            for k in range(n_k):
                out[f, p, k] = v


def sincos_kernel(phi, out):
    """out[f, q] = (sin phi, cos phi) for angles phi (F, Q) -> (F, Q, 2)."""
    in_threads(_sincos_run, phi.shape[0], 4 * phi.shape[1], phi, out)


@nb.njit(**JIT)
def _sincos_run(start, stop, phi, out):
    n_frames, n_cols = phi.shape
    for f in range(start, stop):
        for q in range(n_cols):
            v = np.float64(phi[f, q])
            out[f, q, 0] = np.sin(v)
            out[f, q, 1] = np.cos(v)
