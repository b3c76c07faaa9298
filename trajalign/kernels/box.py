"""Exact minimum image for any periodic box, however skewed.

A box is summarised once per frame in a row of a float64 *box table*
(:func:`box_table_kernel`); :func:`mic` then maps one difference vector to its minimum
image using only that row, with nothing allocated, so it can sit in the inner loop of a
pair kernel.

Why a table: reducing a vector into the lower-triangular cell and searching the 27
neighbouring images (MDAnalysis, LAMMPS, the old ``geometry._mic``) is only exact when the
box vectors are short and nearly orthogonal. For a strongly skewed cell (angles near 45
degrees) the true minimum image can lie outside that 3x3x3 block and distances come out
several angstrom too long. The table holds a *reduced* basis of the same lattice (short,
nearly orthogonal vectors obtained by unimodular integer row operations), and enough
about it to prove, per vector, that the answer is the shortest image.

Row layout (``TABLE_WIDTH`` = 51 columns, float64):

====== ======================================================================
column content
====== ======================================================================
0      mode: 0 no periodicity, 1 orthorhombic (per-axis), 2 lattice
       (triclinic 3D, or a 2D lattice when the c row is zero), -1 invalid
       (box vectors that span no lattice; the API refuses these)
1      ``h2``: (lambda_1 / 2)^2 shrunk by 1e-12 relative, lambda_1 the length of the
       shortest nonzero lattice vector. A vector no longer than lambda_1 / 2 is its
       own minimum image.
2-10   reduced basis ``R`` as rows, row-major: ``R[i, j]`` at ``2 + 3 i + j``
       (mode 1: the diagonal holds the edges)
11-19  ``R^-1`` row-major, ``G[i, j]`` at ``11 + 3 i + j``; fractional coordinates are
       ``f_j = sum_i d_i G[i, j]`` (mode 1: diagonal 1 / edge, 0 for a zero edge)
20-22  Euclidean norms of the columns of ``R^-1``
23-50  seven slicing vectors ``s_k`` with ``|s_k|^2 / 2``: ``(sx, sy, sz, half)`` at
       ``23 + 4 k``; unused ones (2D) are zero with ``half = inf``
====== ======================================================================

Proof that :func:`mic` is exact (lattice mode). Let ``d0 = d - round(d R^-1) R``, a
lattice translate of ``d``.

1. Fast path: if a lattice translate ``x`` of ``d`` (``d`` itself, then ``d0``) has
   ``|x| <= lambda_1 / 2``, then for every nonzero lattice vector ``L``,
   ``|x + L| >= |L| - |x| >= lambda_1 / 2 >= |x|``: ``x`` is a minimum image.
2. Slicer: ``x`` is a minimum image iff ``x . v <= |v|^2 / 2`` for every Voronoi-relevant
   vector ``v``. By Voronoi's theorem (Conway & Sloane, *Sphere Packings, Lattices and
   Groups*, ch. 21, Thm. 10) ``v`` is relevant iff ``+-v`` are the only shortest vectors
   of the coset ``v + 2L``; in 3D there are 7 nonzero cosets of ``L / 2L``, so the seven
   stored coset minima ``s_k`` contain every relevant vector up to sign. While some
   ``|x . s_k| > |s_k|^2 / 2``, stepping ``x -/+= s_k`` strictly shortens ``x``; when a
   full pass moves nothing, ``x`` is in the Voronoi cell, i.e. a minimum image.
3. Fallback (after ``_PASSES`` passes, only conceivable through rounding at exact ties):
   any image shorter than ``d0`` is ``d0 + L`` with ``|d0 + L| < |d0|``, so
   ``|L| < 2 |d0|``. Writing ``L = n R`` with integer ``n``, ``n_i = L . col_i(R^-1)``,
   hence ``|n_i| <= |L| |col_i(R^-1)| < 2 |d0| colnorm_i``. Enumerating that box of
   integer vectors therefore meets every shorter image; the shortest found is exact.

The same bound (with ``|s| <= |c R|`` for the coset representative ``c``) makes the
enumeration that finds the coset minima in :func:`box_table_kernel` exhaustive, and
``lambda_1`` is the smallest coset minimum: a shortest vector ``v`` cannot lie in
``2L`` (``v / 2`` would be shorter).
"""

import types

import numba as nb
import numpy as np

from ._config import HELPER_JIT, JIT, PARALLEL_JIT

# The box table's kernels (box_table_kernel and the helpers it calls) round every
# operation as IEEE double arithmetic does, no fastmath, and square by multiplying, so
# that Python running the same code (box_table_python) gives the same bits
TABLE_JIT = dict(JIT, fastmath=False)
TABLE_HELPER_JIT = dict(HELPER_JIT, fastmath=False)

__all__ = [
    "N_SLICE",
    "TABLE_WIDTH",
    "box_table_kernel",
    "box_table_python",
    "frame_box",
    "mic",
    "mic_frame",
    "mic_lattice",
    "minimum_image_kernel",
]

TABLE_WIDTH = 51
MODE, H2, BASIS, INVERSE, COLNORM, SLICE = 0, 1, 2, 11, 20, 23
N_SLICE = 7

# an edge this short counts as zero (not periodic along it), as MDAnalysis skips edges
# <= FLT_EPSILON
_ZERO_EDGE = 1e-12
# slicer passes before the proven enumeration takes over; from a reduced basis the
# slicer needs one or two (measured), so this only guards against a rounding cycle
_PASSES = 8
# Babai roundings before the slicer: each one shrinks a residual left by float64
# rounding by about 2^-50, so 24 bring even 1e300 down to the cell. One suffices while
# the lattice steps taken stay below _ONE_ROUNDING (2^40): the rounding error is then
# below 2^40 * 2^-52 of a box vector, 1/4096 of one
_ROUNDINGS = 24
_ONE_ROUNDING = 2.0**40
# enumeration radius (Angstrom-like units of the box) beyond which it is not attempted:
# after the roundings the residual is within the cell, so this only stops NaN/inf
_ENUMERATE_LIMIT = 1e6


@nb.njit(**TABLE_HELPER_JIT)
def _try_shorten(v, u, i, wx, wy, wz, w0, w1, w2):
    """Replace row ``v[i]`` by ``v[i] - c w`` (c the nearest integer to the projection)
    if that is shorter; ``u`` carries the same integer operation. Returns True if done."""
    ww = wx * wx + wy * wy + wz * wz
    if ww == 0.0:
        return False
    c = np.floor((v[i, 0] * wx + v[i, 1] * wy + v[i, 2] * wz) / ww + 0.5)
    if c == 0.0:
        return False
    nx, ny, nz = v[i, 0] - c * wx, v[i, 1] - c * wy, v[i, 2] - c * wz
    old = v[i, 0] * v[i, 0] + v[i, 1] * v[i, 1] + v[i, 2] * v[i, 2]
    # a strict relative decrease: each accepted step shortens the basis, so the loop
    # cannot cycle on rounding noise
    if nx * nx + ny * ny + nz * nz >= old * (1.0 - 1e-12):
        return False
    v[i, 0], v[i, 1], v[i, 2] = nx, ny, nz
    u[i, 0] -= c * w0
    u[i, 1] -= c * w1
    u[i, 2] -= c * w2
    return True


@nb.njit(**TABLE_HELPER_JIT)
def _reduce(h, k, v):
    """Reduced basis of the lattice spanned by the first ``k`` rows of ``h`` into ``v``
    (rows sorted by length), by unimodular integer row operations only."""
    u = np.zeros((3, 3))
    w = np.zeros((3, 3))
    for i in range(3):
        u[i, i] = 1.0
        for j in range(3):
            w[i, j] = h[i, j] if i < k else 0.0
    # pairwise Lagrange/Gauss steps, then each vector against the sum and difference of
    # the other two, until nothing shortens. Quality only affects speed (fewer slow
    # paths in mic), never correctness.
    for _ in range(1000):
        moved = False
        for i in range(k):
            for j in range(k):
                if i != j and _try_shorten(
                    w, u, i, w[j, 0], w[j, 1], w[j, 2], u[j, 0], u[j, 1], u[j, 2]
                ):
                    moved = True
        if k == 3:
            for i in range(3):
                j, m = (i + 1) % 3, (i + 2) % 3
                for s in (1.0, -1.0):
                    if _try_shorten(
                        w,
                        u,
                        i,
                        w[j, 0] + s * w[m, 0],
                        w[j, 1] + s * w[m, 1],
                        w[j, 2] + s * w[m, 2],
                        u[j, 0] + s * u[m, 0],
                        u[j, 1] + s * u[m, 1],
                        u[j, 2] + s * u[m, 2],
                    ):
                        moved = True
        if not moved:
            break
    # rebuild the basis from the exact integer matrix u (small integers, exact in
    # float64): one rounding per element instead of the accumulated drift of the steps
    for i in range(3):
        for j in range(3):
            acc = 0.0
            for m in range(k):
                acc += u[i, m] * h[m, j]
            v[i, j] = acc if i < k else 0.0
    # sort the first k rows by length (a permutation is unimodular too)
    for i in range(k):
        for j in range(i + 1, k):
            ni = v[i, 0] * v[i, 0] + v[i, 1] * v[i, 1] + v[i, 2] * v[i, 2]
            nj = v[j, 0] * v[j, 0] + v[j, 1] * v[j, 1] + v[j, 2] * v[j, 2]
            if nj < ni:
                for c in range(3):
                    v[i, c], v[j, c] = v[j, c], v[i, c]


@nb.njit(**TABLE_HELPER_JIT)
def _inverse(v, k, g):
    """``g = v^-1`` for a 3D basis (k = 3), or the inverse of the xy block padded with
    zeros for a 2D lattice in the xy-plane (k = 2)."""
    g[:] = 0.0
    if k == 2:
        det = v[0, 0] * v[1, 1] - v[0, 1] * v[1, 0]
        g[0, 0], g[0, 1] = v[1, 1] / det, -v[0, 1] / det
        g[1, 0], g[1, 1] = -v[1, 0] / det, v[0, 0] / det
        return
    # adjugate / determinant
    c00 = v[1, 1] * v[2, 2] - v[1, 2] * v[2, 1]
    c01 = v[1, 2] * v[2, 0] - v[1, 0] * v[2, 2]
    c02 = v[1, 0] * v[2, 1] - v[1, 1] * v[2, 0]
    det = v[0, 0] * c00 + v[0, 1] * c01 + v[0, 2] * c02
    g[0, 0] = c00 / det
    g[1, 0] = c01 / det
    g[2, 0] = c02 / det
    g[0, 1] = (v[0, 2] * v[2, 1] - v[0, 1] * v[2, 2]) / det
    g[1, 1] = (v[0, 0] * v[2, 2] - v[0, 2] * v[2, 0]) / det
    g[2, 1] = (v[0, 1] * v[2, 0] - v[0, 0] * v[2, 1]) / det
    g[0, 2] = (v[0, 1] * v[1, 2] - v[0, 2] * v[1, 1]) / det
    g[1, 2] = (v[0, 2] * v[1, 0] - v[0, 0] * v[1, 2]) / det
    g[2, 2] = (v[0, 0] * v[1, 1] - v[0, 1] * v[1, 0]) / det


@nb.njit(**TABLE_HELPER_JIT)
def _coset_minimum(v, cn, c0, c1, c2):
    """Shortest lattice vector ``n v`` with ``n = (c0, c1, c2) mod 2``, by exhaustive
    enumeration: it is no longer than the representative ``c v``, so (module docstring,
    step 3) ``|n_i| <= |c v| cn_i``."""
    rx = c0 * v[0, 0] + c1 * v[1, 0] + c2 * v[2, 0]
    ry = c0 * v[0, 1] + c1 * v[1, 1] + c2 * v[2, 1]
    rz = c0 * v[0, 2] + c1 * v[1, 2] + c2 * v[2, 2]
    best = rx * rx + ry * ry + rz * rz
    bx, by, bz = rx, ry, rz
    r = np.sqrt(best) * (1.0 + 1e-9)
    m0 = int(r * cn[0]) + 1
    m1 = int(r * cn[1]) + 1
    m2 = int(r * cn[2]) + 1
    for n0 in range(-m0, m0 + 1):
        if (n0 - c0) % 2 != 0:
            continue
        for n1 in range(-m1, m1 + 1):
            if (n1 - c1) % 2 != 0:
                continue
            for n2 in range(-m2, m2 + 1):
                if (n2 - c2) % 2 != 0:
                    continue
                x = n0 * v[0, 0] + n1 * v[1, 0] + n2 * v[2, 0]
                y = n0 * v[0, 1] + n1 * v[1, 1] + n2 * v[2, 1]
                z = n0 * v[0, 2] + n1 * v[1, 2] + n2 * v[2, 2]
                q = x * x + y * y + z * z
                if q < best:
                    best, bx, by, bz = q, x, y, z
    return bx, by, bz, best


@nb.njit(**TABLE_HELPER_JIT)
def _box_row(h, row):
    """Fill one table row from one (3, 3) lower-triangular box (module docstring)."""
    row[:] = 0.0
    for k in range(N_SLICE):
        row[SLICE + 4 * k + 3] = np.inf
    ax, by, cz = abs(h[0, 0]), abs(h[1, 1]), abs(h[2, 2])
    bx, cx, cy = h[1, 0], h[2, 0], h[2, 1]
    if bx == 0.0 and cx == 0.0 and cy == 0.0:
        # orthorhombic: per-axis rounding; a zero edge gets a zero inverse, which turns
        # the rounding off along that axis
        shortest = np.inf
        for i, e in enumerate((ax, by, cz)):
            if e > _ZERO_EDGE:
                row[BASIS + 4 * i] = e
                row[INVERSE + 4 * i] = 1.0 / e
                row[COLNORM + i] = 1.0 / e
                shortest = min(shortest, e)
        if shortest == np.inf:
            row[MODE] = 0.0
            row[H2] = np.inf
        else:
            row[MODE] = 1.0
            row[H2] = 0.25 * shortest * shortest * (1.0 - 1e-12)
        return
    # a lattice needs a and b; c either spans the third dimension or is absent (a 2D
    # lattice in the xy-plane); anything else spans no lattice
    if ax <= _ZERO_EDGE or by <= _ZERO_EDGE:
        row[MODE] = -1.0
        return
    if cz > _ZERO_EDGE:
        k = 3
    elif abs(cx) <= _ZERO_EDGE and abs(cy) <= _ZERO_EDGE:
        k = 2
    else:
        row[MODE] = -1.0
        return
    v = np.empty((3, 3))
    g = np.empty((3, 3))
    _reduce(h, k, v)
    _inverse(v, k, g)
    cn = np.zeros(3)
    for j in range(3):
        cn[j] = np.sqrt(g[0, j] * g[0, j] + g[1, j] * g[1, j] + g[2, j] * g[2, j])
        row[COLNORM + j] = cn[j]
        for i in range(3):
            row[BASIS + 3 * i + j] = v[i, j]
            row[INVERSE + 3 * i + j] = g[i, j]
    lam2 = np.inf
    slot = 0
    for c in range(1, 8):
        c0, c1, c2 = c & 1, (c >> 1) & 1, (c >> 2) & 1
        if k == 2 and c2 == 1:
            continue
        sx, sy, sz, q = _coset_minimum(v, cn, c0, c1, c2)
        o = SLICE + 4 * slot
        row[o], row[o + 1], row[o + 2], row[o + 3] = sx, sy, sz, 0.5 * q
        lam2 = min(lam2, q)
        slot += 1
    row[MODE] = 2.0
    # the shrink keeps the bound safe against the rounding of lam2 itself
    row[H2] = 0.25 * lam2 * (1.0 - 1e-12)


# serial: a parallel loop costs seconds of compilation, and the caller
# (trajalign.box.box_table) passes only the distinct triclinic boxes, one for an NVT run
@nb.njit(**TABLE_JIT)
def box_table_kernel(h, out):
    """Box table rows for ``h`` (B, 3, 3) float64 lower-triangular box vectors (rows)
    into ``out`` (B, TABLE_WIDTH) float64; layout in the module docstring."""
    for b in range(h.shape[0]):
        _box_row(h[b], out[b])


# the Python code of the table's kernels, as defined here (for box_table_python)
_TABLE_CODE = {
    k.py_func.__name__: k.py_func
    for k in (_try_shorten, _reduce, _inverse, _coset_minimum, _box_row, box_table_kernel)
}
_TABLE_PYTHON: list = []  # box_table_kernel's code as Python functions, made once


def box_table_python(h, out):
    """:func:`box_table_kernel` run by Python: the same code, the same bits (no fastmath
    in the table's kernels), without compiling it. About 1 ms per box here, against
    5-6 s of compilation on an empty cache; :func:`trajalign.box.box_table` chooses."""
    if not _TABLE_PYTHON:
        # one namespace in which the kernels' names are their Python functions, so that
        # each calls the others' Python code, not their compiled dispatchers
        names = dict(globals())
        for name, f in _TABLE_CODE.items():
            names[name] = types.FunctionType(f.__code__, names, name, f.__defaults__)
        _TABLE_PYTHON.append(names["box_table_kernel"])
    with np.errstate(all="ignore"):  # (as the compiled kernel: inf and NaN, no warning)
        _TABLE_PYTHON[0](h, out)


@nb.njit(**HELPER_JIT)
def _mic_enumerate(dx, dy, dz, p, b):
    """Shortest of ``d + n R`` over the integer box of the module docstring, step 3."""
    best = dx * dx + dy * dy + dz * dz
    r = 2.0 * np.sqrt(best) * (1.0 + 1e-9)
    if not r < _ENUMERATE_LIMIT:
        # NaN or overflowed input (no image to find), or a residual the roundings could
        # not bring down: the vector is returned as it is rather than searched for hours
        return dx, dy, dz
    m0 = int(r * p[b, COLNORM])
    m1 = int(r * p[b, COLNORM + 1])
    m2 = int(r * p[b, COLNORM + 2])
    rx, ry, rz = dx, dy, dz
    for n0 in range(-m0, m0 + 1):
        for n1 in range(-m1, m1 + 1):
            for n2 in range(-m2, m2 + 1):
                x = dx + n0 * p[b, 2] + n1 * p[b, 5] + n2 * p[b, 8]
                y = dy + n0 * p[b, 3] + n1 * p[b, 6] + n2 * p[b, 9]
                z = dz + n0 * p[b, 4] + n1 * p[b, 7] + n2 * p[b, 10]
                q = x * x + y * y + z * z
                if q < best:
                    best, rx, ry, rz = q, x, y, z
    return rx, ry, rz


@nb.njit(**HELPER_JIT)
def _mic_lattice(dx, dy, dz, p, b):
    """:func:`mic` of a lattice-mode row for a vector longer than lambda_1 / 2: Babai
    rounding, the slicer, and the enumeration if the slicer did not settle (module
    docstring, steps 1-3)."""
    # nearest lattice point in the reduced basis (Babai rounding). Once, unless the
    # vector was so long (beyond _ONE_ROUNDING lattice steps) that float64 lost its last
    # bits: for 1e20 box lengths one rounding leaves a residual of thousands of box
    # lengths, which the enumeration below would take hours over, so it is rounded
    # again. (Testing every rounding for a zero step instead cost the pair kernels 25 %
    # in triclinic boxes.)
    for _ in range(_ROUNDINGS):
        n0 = np.floor(dx * p[b, 11] + dy * p[b, 14] + dz * p[b, 17] + 0.5)
        n1 = np.floor(dx * p[b, 12] + dy * p[b, 15] + dz * p[b, 18] + 0.5)
        n2 = np.floor(dx * p[b, 13] + dy * p[b, 16] + dz * p[b, 19] + 0.5)
        dx -= n0 * p[b, 2] + n1 * p[b, 5] + n2 * p[b, 8]
        dy -= n0 * p[b, 3] + n1 * p[b, 6] + n2 * p[b, 9]
        dz -= n0 * p[b, 4] + n1 * p[b, 7] + n2 * p[b, 10]
        if abs(n0) + abs(n1) + abs(n2) <= _ONE_ROUNDING:
            break
    if dx * dx + dy * dy + dz * dz <= p[b, H2]:
        return dx, dy, dz
    for _ in range(_PASSES):
        moved = False
        for k in range(N_SLICE):
            o = SLICE + 4 * k
            sx, sy, sz, half = p[b, o], p[b, o + 1], p[b, o + 2], p[b, o + 3]
            t = dx * sx + dy * sy + dz * sz
            if t > half:
                dx, dy, dz = dx - sx, dy - sy, dz - sz
                moved = True
            elif t < -half:
                dx, dy, dz = dx + sx, dy + sy, dz + sz
                moved = True
        if not moved:
            return dx, dy, dz
    return _mic_enumerate(dx, dy, dz, p, b)


@nb.njit(inline="always", **JIT)
def _round_orthorhombic(dx, dy, dz, ea, eb, ec, ia, ib, ic):
    """Per-axis rounding by edges ``ea, eb, ec`` and their inverses: the one home of the
    orthorhombic minimum image. A zero edge has inverse 0: floor(0.5) = 0, the component
    is left alone."""
    dx -= ea * np.floor(dx * ia + 0.5)
    dy -= eb * np.floor(dy * ib + 0.5)
    dz -= ec * np.floor(dz * ic + 0.5)
    return dx, dy, dz


@nb.njit(inline="always", **JIT)
def mic_orthorhombic(dx, dy, dz, p, b):
    """:func:`mic` for tables without lattice rows (mode 0 or 1): the same images, and
    kernels that call it instead do not compile the lattice search (about 1 s of CPU on
    an empty cache). A mode 2 row would be returned unchanged: callers check the table.
    """
    if p[b, MODE] == 1.0:
        return _round_orthorhombic(
            dx, dy, dz, p[b, 2], p[b, 6], p[b, 10], p[b, 11], p[b, 15], p[b, 19]
        )
    return dx, dy, dz


# For pair loops in serial kernels: an inlined function that takes the table (an array)
# brings a reference count increment and decrement into every iteration, atomic calls
# that stop LLVM from vectorising the loop (3.3x slower dihedrals, measured). Read the
# row's scalars once per frame with frame_box, and take the image with mic_frame, which
# takes scalars only.
@nb.njit(inline="always", **JIT)
def frame_box(p, b):
    """The scalars of row ``b`` of table ``p`` that :func:`mic_frame` needs, as a tuple:
    (orthorhombic, lattice, h2, three edges, their three inverses)."""
    mode = p[b, MODE]
    return (
        mode == 1.0,
        mode == 2.0,
        p[b, H2],
        p[b, 2],
        p[b, 6],
        p[b, 10],
        p[b, 11],
        p[b, 15],
        p[b, 19],
    )


@nb.njit(inline="always", **JIT)
def mic_frame(dx, dy, dz, fb):
    """:func:`mic` from the scalars of :func:`frame_box` ``fb``, up to the lattice
    search: returns ``(dx, dy, dz, far)``. ``far`` (a lattice row and a vector longer
    than lambda_1 / 2) means the image is ``mic_lattice(dx, dy, dz, p, b)``, which the
    caller makes (an ordinary call, compiled only into kernels built for lattices);
    otherwise the vector returned is the image, as :func:`mic` gives it."""
    ortho, lattice, h2, ea, eb, ec, ia, ib, ic = fb
    if ortho:
        dx, dy, dz = _round_orthorhombic(dx, dy, dz, ea, eb, ec, ia, ib, ic)
    far = lattice and dx * dx + dy * dy + dz * dz > h2
    return dx, dy, dz, far


mic_lattice = _mic_lattice


# The common cases (no box, orthorhombic, a vector shorter than lambda_1 / 2) are inlined
# at the Numba IR level: as an ordinary call (Numba's calling convention, a status code
# and an out-pointer) they cost 6 ns per vector, 5x the short-vector path. The lattice
# search is an ordinary call: inlined, its loops were compiled again at every call site
# (three in the dihedral kernel: 12 s of its compilation, 0.5 s now), and it does
# enough work per vector that the call costs little beside it.
@nb.njit(inline="always", **JIT)
def mic(dx, dy, dz, p, b):
    """Minimum image of the float64 difference vector ``(dx, dy, dz)`` in the box of row
    ``b`` of table ``p``; returns the image as three floats. Exact (module docstring);
    between images of equal length either may be returned. Mode 0 and -1 rows return
    the vector unchanged."""
    if p[b, MODE] != 2.0:
        return mic_orthorhombic(dx, dy, dz, p, b)
    # step 1 before any rounding: bonded and other short vectors stop here
    if dx * dx + dy * dy + dz * dz <= p[b, H2]:
        return dx, dy, dz
    return _mic_lattice(dx, dy, dz, p, b)


@nb.njit(**PARALLEL_JIT)
def minimum_image_kernel(v, p, idx, out):
    """``out[m] = mic(v[m])`` in box row ``idx[m]`` of ``p``: v, out (M, 3) float64, idx
    (M,) int64."""
    for m in nb.prange(v.shape[0]):
        b = idx[m]
        out[m, 0], out[m, 1], out[m, 2] = mic(v[m, 0], v[m, 1], v[m, 2], p, b)
