"""Exact minimum distance between groups of atoms (residues), with the atom pair that
realises it.

Conventions:

- ``x`` is (F, N, 3) float32 or float64. Groups are given in CSR form: the atoms of group
  ``g`` are ``members[offsets[g]:offsets[g + 1]]`` (selection positions, each group
  non-empty). ``pairs`` (K, 2) int64 index groups; ``periodic`` (K,) uint8 says which pairs
  take the minimum image (pairs that span molecules) and which are measured directly
  (pairs within one whole molecule).
- ``table`` is a box table (F or 1 rows), :mod:`trajalign.kernels.box`.
- ranges of frames side by side in threads (:mod:`._threads`); each frame writes only
  its own rows of ``dist`` (F, K) and ``arg`` (F, K, 2) (the two atoms, selection
  numbering). Per-thread scratch is allocated once per frame.
- Two paths (:meth:`trajalign.features.MindistPlan.schedule` says which pair takes
  which): ``sparse`` pairs one by one (below), and *dense runs* for dense pair lists.

Dense runs. A run is a group A and partners B_1 < B_2 < ... whose atoms lie close together
in the buffer (``runs[r]`` = A, first and one-past-last buffer position of the span from
the first partner to the last; ``run_pairs`` its pairs, ``run_last`` each partner's last
atom, ``-1 -`` it where the pair is written (B, A)). Per run, in ``x``'s dtype (float32
for trajectories: eight lanes):

1. column minima ``col[m] = min over i in A of |x_m - x_i|^2`` for every atom ``m`` of the
   span, in one long loop over the span per two atoms of A (no branch, no bound);
2. one branch-free scan over the span, restarting at each group, giving per partner the
   smallest column minimum (at span atom ``j``) and the second smallest;
3. per partner, ``|x_j - x_i|^2`` for every atom ``i`` of A (partners in the lanes): the
   atom ``i`` nearest ``j`` and the second nearest.

The winner ``(i, j)`` is then the exact minimum: with ``tol`` a bound on the relative
rounding of a squared distance in that dtype (16 eps; the exact one is within ~5 units),
if every other column's minimum exceeds ``col[j] (1 + tol)`` and every other atom of A is
farther from ``j`` than ``(1 + tol)`` times ``i``, no other atom pair can be as close in
exact arithmetic. Its distance is recomputed in float64 from the same buffer and formula
as the sparse path (equal after the float32 rounding of ``dist`` on every one of the
22 million values of the features benchmark). Where either margin
fails (a tie or a near-tie within rounding, or a squared distance below ``_FLOOR`` where
float32 could underflow), the pair is measured by the sparse path, so ties resolve
exactly as there. A pair that needs the minimum image never takes a dense run in a frame
with a box (the plan leaves ``periodic`` pairs out when the frames have one).

Why the sparse path is exact though most atom pairs are never measured. Each frame
first copies the grouped atoms into a contiguous float64 buffer and computes, per group,
a centre ``c`` (the mean of its atoms) and a radius ``r`` (the largest distance of an
atom from ``c``).
For atoms ``i`` of group A and ``j`` of group B and any lattice vector ``L`` (``L = 0``
without a box), the triangle inequality gives

    |x_j - x_i + L| >= |c_B - x_i + L| - r_B >= |c_B - c_A + L| - r_A - r_B.

So with ``best`` the smallest atom-pair distance found so far, an atom ``i`` whose
``|c_B - x_i + L| - r_B`` exceeds ``best`` cannot take part in a shorter pair and its row
is skipped. The bound holds for any coordinates (whole or not), so skipping never changes
a value; only the amount of skipped work depends on the geometry. The first ``best`` is
the row of the atom of A nearest ``c_B``. Rows are minima without an index (they
vectorise); the index is found afterwards in the winning row only. Pairs of at most
``_BRUTE_MAX`` atom pairs (two residues of heavy atoms) are measured in full: there the
bounds cost more than they save.

Periodic pairs: if ``S`` is the lattice vector that takes ``c_B - c_A`` to its minimum
image and ``|c_B - c_A + S| + r_A + r_B`` is at most half the shortest lattice vector,
every ``x_j - x_i + S`` is no longer than that half, hence its own minimum image (the fast
path of :func:`trajalign.kernels.box.mic`): the pair is measured as an ordinary pair with
B shifted by ``S``. Otherwise every atom pair takes :func:`~trajalign.kernels.box.mic`.
"""

import numba as nb
import numpy as np

from ._borrow import borrow
from ._config import HELPER_JIT, JIT
from ._threads import in_threads
from .box import H2, MODE, mic

# bounds are compared with a relative slack so that rounding in the centre, radius and
# distance sums can only make an atom be measured, never skipped wrongly
_SLACK = 1e-9
# atom pairs up to which a residue pair is measured in full: for two residues of ~8 heavy
# atoms the bounds (one pass over A, a seed row) save less than they cost (measured on
# adenylate kinase: 1.4 ms per frame in full, 3.4 ms with bounds, one thread)
_BRUTE_MAX = 100
# squared distances below this (float32 underflow territory) always take the float64 path
_FLOOR = 1e-20


@nb.njit(inline="always", **JIT)
def _row_min(bx, by, bz, bo, b1, xi, yi, zi):
    """Smallest squared distance from ``(xi, yi, zi)`` to the buffer rows ``bo:b1``; a
    min without its index, so that the loop vectorises."""
    row = np.inf
    for j in range(bo, b1):
        dx, dy, dz = bx[j] - xi, by[j] - yi, bz[j] - zi
        row = min(row, dx * dx + dy * dy + dz * dz)
    return row


@nb.njit(inline="always", **JIT)
def _row_arg(bx, by, bz, bo, b1, xi, yi, zi, row):
    """The buffer row in ``bo:b1`` at squared distance ``row`` (from :func:`_row_min`)."""
    for j in range(bo, b1):
        dx, dy, dz = bx[j] - xi, by[j] - yi, bz[j] - zi
        if dx * dx + dy * dy + dz * dz == row:
            return j
    return bo


# _pair_min and _pair_min_wrap are ordinary calls from _one_pair: inlined at Numba's IR
# level with it (and with the row and image helpers they inline), their typing was 7 s of
# mindist's compilation on an empty cache; as calls they take borrowed arrays, and the
# features benchmark measures the same speed (pairs one by one 1.56 -> 1.43 s, noise)
@nb.njit(**HELPER_JIT)
def _pair_min(bx, by, bz, ao, a1, bo, b1, cbx, cby, cbz, rb, sx, sy, sz, ui):
    """Minimum over atoms ``ao:a1`` x ``bo:b1`` of the buffer of ``|x_j + s - x_i|``, with
    ``(cbx, cby, cbz)`` B's centre already shifted by ``s``; ``ui`` scratch. Returns the
    squared distance and the two buffer rows."""
    # squared distances of A's atoms to B's centre: the bound of each row, and the seed
    n_a = a1 - ao
    for i in range(n_a):
        dx, dy, dz = cbx - bx[ao + i], cby - by[ao + i], cbz - bz[ao + i]
        ui[i] = dx * dx + dy * dy + dz * dz
    ia = ao
    best_u = ui[0]
    for i in range(1, n_a):
        if ui[i] < best_u:
            best_u, ia = ui[i], ao + i
    # the seed row: the atom of A nearest B's centre against all of B
    xs, ys, zs = bx[ia] - sx, by[ia] - sy, bz[ia] - sz
    best2 = _row_min(bx, by, bz, bo, b1, xs, ys, zs)
    bi = ia
    lim = np.sqrt(best2) * (1.0 + _SLACK) + rb
    lim2 = lim * lim
    for i in range(n_a):
        # no atom of B is nearer to x_i than |c_B - x_i| - r_B
        if ui[i] > lim2 or ao + i == ia:
            continue
        xi, yi, zi = bx[ao + i] - sx, by[ao + i] - sy, bz[ao + i] - sz
        row = _row_min(bx, by, bz, bo, b1, xi, yi, zi)
        if row < best2:
            best2, bi = row, ao + i
            lim = np.sqrt(best2) * (1.0 + _SLACK) + rb
            lim2 = lim * lim
    xi, yi, zi = bx[bi] - sx, by[bi] - sy, bz[bi] - sz
    return best2, bi, _row_arg(bx, by, bz, bo, b1, xi, yi, zi, best2)


@nb.njit(**HELPER_JIT)
def _pair_min_wrap(bx, by, bz, ao, a1, bo, b1, cbx, cby, cbz, rb, table, b, ui):
    """As :func:`_pair_min` with the minimum image of every vector (no shift)."""
    ia = ao
    best_u = np.inf
    for i in range(ao, a1):
        dx, dy, dz = mic(cbx - bx[i], cby - by[i], cbz - bz[i], table, b)
        u = dx * dx + dy * dy + dz * dz
        ui[i - ao] = u
        if u < best_u:
            best_u, ia = u, i
    best2 = np.inf
    bi, bj = ia, bo
    lim2 = np.inf
    for i in range(ao, a1):
        if ui[i - ao] > lim2:
            continue
        for j in range(bo, b1):
            dx, dy, dz = mic(bx[j] - bx[i], by[j] - by[i], bz[j] - bz[i], table, b)
            d2 = dx * dx + dy * dy + dz * dz
            if d2 < best2:
                best2, bi, bj = d2, i, j
                lim = np.sqrt(best2) * (1.0 + _SLACK) + rb
                lim2 = lim * lim
    return best2, bi, bj


@nb.njit(inline="always", **JIT)
def _one_pair(bx, by, bz, offsets, ga, gb, wrap, has_box, half, cx, cy, cz, rad, table, b, ui):
    """Minimum over the atom pairs of groups ``ga`` x ``gb`` in float64 (the bounded path):
    the squared distance and the two buffer rows. ``wrap``: the pair takes the minimum
    image (when the frame has a box)."""
    ao, a1 = offsets[ga], offsets[ga + 1]
    bo, b1 = offsets[gb], offsets[gb + 1]
    sx, sy, sz = 0.0, 0.0, 0.0
    if wrap and has_box:
        dx, dy, dz = cx[gb] - cx[ga], cy[gb] - cy[ga], cz[gb] - cz[ga]
        mx, my, mz = mic(dx, dy, dz, table, b)
        if np.sqrt(mx * mx + my * my + mz * mz) + rad[ga] + rad[gb] > half * (1.0 - _SLACK):
            return _pair_min_wrap(
                bx, by, bz, ao, a1, bo, b1, cx[gb], cy[gb], cz[gb], rad[gb], table, b, ui
            )
        # every atom pair shifted by S is its own minimum image
        sx, sy, sz = mx - dx, my - dy, mz - dz
    if (a1 - ao) * (b1 - bo) <= _BRUTE_MAX:
        # small groups: every row, a vectorised min each (bounds cost more here)
        best2, bi = np.inf, ao
        for i in range(ao, a1):
            row = _row_min(bx, by, bz, bo, b1, bx[i] - sx, by[i] - sy, bz[i] - sz)
            if row < best2:
                best2, bi = row, i
        bj = _row_arg(bx, by, bz, bo, b1, bx[bi] - sx, by[bi] - sy, bz[bi] - sz, best2)
        return best2, bi, bj
    return _pair_min(
        bx, by, bz, ao, a1, bo, b1, cx[gb] + sx, cy[gb] + sy, cz[gb] + sz, rad[gb],
        sx, sy, sz, ui,
    )  # fmt: skip


def mindist_kernel(*args):
    """``dist[f, k]`` = smallest distance between an atom of group ``pairs[k, 0]`` and one
    of group ``pairs[k, 1]`` in frame ``f``; ``arg[f, k]`` the two atoms (selection
    positions, first from the first group). Layout in the module docstring: ``sparse``
    the pairs measured one by one, ``runs`` / ``run_ptr`` / ``run_pairs`` the dense runs,
    ``tol`` the relative rounding bound of a squared distance in ``x``'s dtype."""
    # args: x, offsets, members, pairs, periodic, table, sparse, runs, run_ptr,
    # run_pairs, run_last, tol, dist, arg (as :func:`_mindist_run` after its range)
    x, members, pairs = args[0], args[2], args[3]
    in_threads(_mindist_run, x.shape[0], 3 * members.shape[0] + 8 * pairs.shape[0], *args)


@nb.njit(**JIT)
def _mindist_run(
    start,
    stop,
    x,
    offsets,
    members,
    pairs,
    periodic,
    table,
    sparse,
    runs,
    run_ptr,
    run_pairs,
    run_last,
    tol,
    dist,
    arg,
):
    n_groups = offsets.shape[0] - 1
    n_members = members.shape[0]
    n_runs = runs.shape[0]
    box_stride = 0 if table.shape[0] == 1 else 1
    widest = 0
    for g in range(n_groups):
        widest = max(widest, offsets[g + 1] - offsets[g])
    span, most = 0, 0
    for r in range(n_runs):
        span = max(span, runs[r, 2] - runs[r, 1])
        most = max(most, run_ptr[r + 1] - run_ptr[r])
    # inf at the first atom of each group, 0 elsewhere: max(running, reset) restarts the
    # segment scan there without a branch (squared distances are >= 0)
    reset = np.zeros(n_members, dtype=x.dtype)
    for g in range(n_groups):
        reset[offsets[g]] = np.inf
    for f in range(start, stop):
        b = f * box_stride
        has_box = table[b, MODE] == 1.0 or table[b, MODE] == 2.0
        # half the shortest lattice vector (inf without a box)
        half = np.sqrt(table[b, H2]) if has_box else np.inf
        b3 = np.empty((3, n_members), dtype=np.float64)
        bx, by, bz = b3[0], b3[1], b3[2]
        # the same coordinates in x's dtype for the dense runs (float32: twice the lanes)
        f3 = np.empty((3, n_members), dtype=x.dtype)
        fx, fy, fz = f3[0], f3[1], f3[2]
        for m in range(n_members):
            a = members[m]
            fx[m] = x[f, a, 0]
            fy[m] = x[f, a, 1]
            fz[m] = x[f, a, 2]
            bx[m] = fx[m]
            by[m] = fy[m]
            bz[m] = fz[m]
        cx = np.empty(n_groups, dtype=np.float64)
        cy = np.empty(n_groups, dtype=np.float64)
        cz = np.empty(n_groups, dtype=np.float64)
        rad = np.empty(n_groups, dtype=np.float64)
        for g in range(n_groups):
            o, e = offsets[g], offsets[g + 1]
            sx = sy = sz = 0.0
            for m in range(o, e):
                sx += bx[m]
                sy += by[m]
                sz += bz[m]
            sx /= e - o
            sy /= e - o
            sz /= e - o
            r2 = 0.0
            for m in range(o, e):
                dx, dy, dz = bx[m] - sx, by[m] - sy, bz[m] - sz
                r2 = max(r2, dx * dx + dy * dy + dz * dz)
            cx[g], cy[g], cz[g] = sx, sy, sz
            # a slightly larger radius keeps every bound below the true distance
            rad[g] = np.sqrt(r2) * (1.0 + _SLACK) + 1e-12
        # the pairs measured one by one: the sparse ones, then those the dense runs hand
        # over (one call site, so the bounded path is inlined once)
        todo = np.empty(sparse.shape[0] + run_pairs.shape[0], dtype=np.int64)
        # element by element: a slice assignment compiles Numba's shape-mismatch error,
        # whose message formatting cost 2.8 s of compilation on an empty cache
        for s in range(sparse.shape[0]):
            todo[s] = sparse[s]
        n_todo = sparse.shape[0]
        # two rows: each pass reads one and writes the other (a running minimum stored
        # in place becomes a masked store, which is slow on AMD)
        acc = np.empty((2, span), dtype=x.dtype)
        seg_min = np.empty(span, dtype=x.dtype)
        seg_second = np.empty(span, dtype=x.dtype)
        seg_pos = np.empty(span, dtype=np.int64)
        w3 = np.empty((3, most), dtype=x.dtype)
        wx, wy, wz = w3[0], w3[1], w3[2]
        w_min = np.empty((2, most), dtype=x.dtype)
        w_second = np.empty((2, most), dtype=x.dtype)
        w_atom = np.empty((2, most), dtype=np.int32)
        w_span = np.empty(most, dtype=np.int64)
        w_sure = np.empty(most, dtype=np.bool_)
        big = x.dtype.type(np.inf)
        for r in range(n_runs):
            ga, lo, hi = runs[r, 0], runs[r, 1], runs[r, 2]
            ao, a1 = offsets[ga], offsets[ga + 1]
            n = hi - lo
            gx, gy, gz = fx[lo:hi], fy[lo:hi], fz[lo:hi]
            # 1. column minima: acc[m] = min over the atoms of A of the squared distance
            # to span atom m, two atoms of A per pass (the second repeats the last if odd)
            cur = 0
            for i0 in range(ao, a1, 2):
                i1 = min(i0 + 1, a1 - 1)
                x0, y0, z0 = fx[i0], fy[i0], fz[i0]
                x1, y1, z1 = fx[i1], fy[i1], fz[i1]
                src, dst = acc[cur], acc[1 - cur]
                first = i0 == ao
                for m in range(n):
                    px, py, pz = gx[m], gy[m], gz[m]
                    dx, dy, dz = px - x0, py - y0, pz - z0
                    e0 = dx * dx + dy * dy + dz * dz
                    dx, dy, dz = px - x1, py - y1, pz - z1
                    e1 = dx * dx + dy * dy + dz * dz
                    e = min(e0, e1)
                    dst[m] = e if first else min(e, src[m])
                cur = 1 - cur
            col = acc[cur]
            # 2. one scan over the span, restarting at each group: the smallest column
            # minimum so far in the group, the second smallest, and where the smallest is
            # (branch-free: short groups would make every loop exit a misprediction)
            rs = reset[lo:hi]
            best, second, pos = big, big, 0
            for m in range(n):
                v = col[m]
                b0 = max(best, rs[m])
                s0 = max(second, rs[m])
                pos = m if v < b0 else pos
                second = min(s0, max(b0, v))
                best = min(b0, v)
                seg_min[m] = best
                seg_second[m] = second
                seg_pos[m] = pos
            # 3. per partner, the winning span atom against every atom of A (partners
            # across the lanes): the atom of A, and the second smallest for the check
            p0, np_ = run_ptr[r], run_ptr[r + 1] - run_ptr[r]
            for q in range(np_):
                last = run_last[p0 + q]
                flip = last < 0
                e = (-1 - last if flip else last) - lo
                j = lo + seg_pos[e]
                wx[q], wy[q], wz[q] = fx[j], fy[j], fz[j]
                w_span[q] = -1 - j if flip else j
                # every other column's minimum exceeds the winner's by more than the
                # rounding of x's dtype: the minimum is in the winning column
                w_sure[q] = seg_second[e] > seg_min[e] * (1.0 + tol) and seg_min[e] > _FLOOR
            m0, s0, t0 = w_min[0], w_second[0], w_atom[0]
            xi, yi, zi = fx[ao], fy[ao], fz[ao]
            for q in range(np_):
                dx, dy, dz = wx[q] - xi, wy[q] - yi, wz[q] - zi
                m0[q] = dx * dx + dy * dy + dz * dz
                s0[q] = big
                t0[q] = ao
            cur = 0
            for i in range(ao + 1, a1):
                xi, yi, zi = fx[i], fy[i], fz[i]
                ii = np.int32(i)
                m0, s0, t0 = w_min[cur], w_second[cur], w_atom[cur]
                m1, s1, t1 = w_min[1 - cur], w_second[1 - cur], w_atom[1 - cur]
                for q in range(np_):
                    dx, dy, dz = wx[q] - xi, wy[q] - yi, wz[q] - zi
                    d2 = dx * dx + dy * dy + dz * dz
                    old = m0[q]
                    s1[q] = min(s0[q], max(old, d2))
                    t1[q] = ii if d2 < old else t0[q]
                    m1[q] = min(old, d2)
                cur = 1 - cur
            m0, s0, t0 = w_min[cur], w_second[cur], w_atom[cur]
            for q in range(np_):
                k = run_pairs[p0 + q]
                # ... and its atom of A nearer than the others by that margin too: the
                # minimum is unique, its distance recomputed in float64
                if not (w_sure[q] and s0[q] > m0[q] * (1.0 + tol)):
                    # a tie or near-tie: the float64 path decides, in the pair's own
                    # order (so ties resolve as for a sparse pair)
                    todo[n_todo] = k
                    n_todo += 1
                    continue
                bi, bj = np.int64(t0[q]), w_span[q]
                if bj < 0:  # the pair is (B, A)
                    bi, bj = -1 - bj, bi
                dx, dy, dz = bx[bj] - bx[bi], by[bj] - by[bi], bz[bj] - bz[bi]
                dist[f, k] = np.sqrt(dx * dx + dy * dy + dz * dz)
                arg[f, k, 0] = members[bi]
                arg[f, k, 1] = members[bj]
        ui = np.empty(widest, dtype=np.float64)
        _measure_pairs(
            f, todo[:n_todo], bx, by, bz, offsets, members, pairs, periodic, has_box, half,
            cx, cy, cz, rad, table, b, ui, dist, arg,
        )  # fmt: skip


@nb.njit(**HELPER_JIT)
def _measure_pairs(
    f, todo, bx, by, bz, offsets, members, pairs, periodic, has_box, half, cx, cy, cz, rad,
    table, b, ui, dist, arg,
):  # fmt: skip
    """The pairs ``todo`` of frame ``f`` measured one by one (the bounded path).

    A function of its own so that the arrays the inlined helpers take can be borrowed
    (._borrow): its caller holds them for the call. As they are, every helper call
    would increment and decrement each of them (2.2x slower, measured).
    """
    bx, by, bz, offsets, table, ui = (
        borrow(bx),
        borrow(by),
        borrow(bz),
        borrow(offsets),
        borrow(table),
        borrow(ui),
    )
    cx, cy, cz, rad = borrow(cx), borrow(cy), borrow(cz), borrow(rad)
    for s in range(todo.shape[0]):
        k = todo[s]
        best2, bi, bj = _one_pair(
            bx, by, bz, offsets, pairs[k, 0], pairs[k, 1], periodic[k] != 0, has_box,
            half, cx, cy, cz, rad, table, b, ui,
        )  # fmt: skip
        dist[f, k] = np.sqrt(best2)
        arg[f, k, 0] = members[bi]
        arg[f, k, 1] = members[bj]


def contacts_kernel(d, cutoff, out):
    """``out[f, k] = d[f, k] <= cutoff`` as uint8 (0 for NaN)."""
    in_threads(_contacts_run, d.shape[0], d.shape[1], d, cutoff, out)


@nb.njit(**JIT)
def _contacts_run(start, stop, d, cutoff, out):
    for f in range(start, stop):
        for k in range(d.shape[1]):
            out[f, k] = 1 if d[f, k] <= cutoff else 0


def logistic_kernel(d, center, steepness, out):
    """``out[f, k] = 1 / (1 + exp(steepness (d - center)))``, in float64 then stored."""
    in_threads(_logistic_run, d.shape[0], 4 * d.shape[1], d, center, steepness, out)


@nb.njit(**JIT)
def _logistic_run(start, stop, d, center, steepness, out):
    for f in range(start, stop):
        for k in range(d.shape[1]):
            z = steepness * (np.float64(d[f, k]) - center)
            # exp overflows to inf for z > 709: the value is then 0, as it should be
            out[f, k] = 1.0 / (1.0 + np.exp(z))
