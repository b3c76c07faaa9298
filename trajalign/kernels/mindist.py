"""Exact minimum distance between groups of atoms (residues), with the atom pair that
realises it.

Conventions:

- ``x`` is (F, N, 3) float32 or float64. Groups are given in CSR form: the atoms of group
  ``g`` are ``members[offsets[g]:offsets[g + 1]]`` (selection positions, each group
  non-empty). ``pairs`` (K, 2) int64 index groups; ``periodic`` (K,) uint8 says which pairs
  take the minimum image (pairs that span molecules) and which are measured directly
  (pairs within one whole molecule).
- ``table`` is a box table (F or 1 rows), :mod:`trajalign.kernels.box`.
- ``prange`` over frames; each frame writes only its own rows of ``dist`` (F, K) and
  ``arg`` (F, K, 2) (the two atoms, selection numbering).

Why it is exact though most atom pairs are never measured. Each frame first copies the
grouped atoms into a contiguous float64 buffer and computes, per group, a centre ``c``
(the mean of its atoms) and a radius ``r`` (the largest distance of an atom from ``c``).
For atoms ``i`` of group A and ``j`` of group B and any lattice vector ``L`` (``L = 0``
without a box), the triangle inequality gives

    |x_j - x_i + L| >= |c_B - x_i + L| - r_B >= |c_B - c_A + L| - r_A - r_B.

So with ``best`` the smallest atom-pair distance found so far, an atom ``i`` whose
``|mic(c_B - x_i)| - r_B`` exceeds ``best`` cannot take part in a shorter pair and is
skipped, and so is an atom ``j`` whose ``|mic(x_j - c_A)| - r_A`` exceeds ``best``. The
bounds hold for any coordinates (whole or not), so skipping never changes a value; only
the amount of skipped work depends on the geometry. A good first ``best`` (the pair of
the atom of A nearest ``c_B`` and the atom of B nearest ``c_A``) makes most atoms skip.

Periodic pairs: if ``S`` is the lattice vector that takes ``c_B - c_A`` to its minimum
image and ``|c_B - c_A + S| + r_A + r_B`` is at most half the shortest lattice vector,
every ``x_j - x_i + S`` is no longer than that half, hence its own minimum image (the fast
path of :func:`trajalign.kernels.box.mic`): the pair is measured as an ordinary pair with
B shifted by ``S``. Otherwise every atom pair takes :func:`~trajalign.kernels.box.mic`.
"""

import numba as nb
import numpy as np

from ._config import JIT, PARALLEL_JIT
from .box import H2, MODE, mic

# bounds are compared with a relative slack so that rounding in the centre, radius and
# distance sums can only make an atom be measured, never skipped wrongly
_SLACK = 1e-9


@nb.njit(**JIT)
def _pair_min(buf, ao, a1, bo, b1, ca, cb, ra, rb, sx, sy, sz, wrap, table, b, ui, vj):
    """Minimum over atoms ``buf[ao:a1]`` x ``buf[bo:b1]`` of ``|x_j - x_i + s|`` (``wrap``:
    of the minimum image of ``x_j - x_i`` instead). ``ca``/``cb`` are the centres (B's
    already shifted by ``s``), ``ui``/``vj`` scratch of the groups' sizes. Returns the
    squared distance and the two buffer rows."""
    # distances of A's atoms to B's centre and B's atoms to A's centre (bounds, and the
    # seed pair)
    ia, ib = ao, bo
    best_u = np.inf
    for i in range(ao, a1):
        dx, dy, dz = cb[0] - buf[i, 0], cb[1] - buf[i, 1], cb[2] - buf[i, 2]
        if wrap:
            dx, dy, dz = mic(dx, dy, dz, table, b)
        u = np.sqrt(dx * dx + dy * dy + dz * dz)
        ui[i - ao] = u - rb
        if u < best_u:
            best_u, ia = u, i
    best_v = np.inf
    for j in range(bo, b1):
        dx, dy, dz = buf[j, 0] + sx - ca[0], buf[j, 1] + sy - ca[1], buf[j, 2] + sz - ca[2]
        if wrap:
            dx, dy, dz = mic(dx, dy, dz, table, b)
        v = np.sqrt(dx * dx + dy * dy + dz * dz)
        vj[j - bo] = v - ra
        if v < best_v:
            best_v, ib = v, j
    dx = buf[ib, 0] + sx - buf[ia, 0]
    dy = buf[ib, 1] + sy - buf[ia, 1]
    dz = buf[ib, 2] + sz - buf[ia, 2]
    if wrap:
        dx, dy, dz = mic(dx, dy, dz, table, b)
    best2 = dx * dx + dy * dy + dz * dz
    bi, bj = ia, ib
    best = np.sqrt(best2) * (1.0 + _SLACK)
    for i in range(ao, a1):
        if ui[i - ao] > best:
            continue
        xi, yi, zi = buf[i, 0] - sx, buf[i, 1] - sy, buf[i, 2] - sz
        for j in range(bo, b1):
            if vj[j - bo] > best:
                continue
            dx, dy, dz = buf[j, 0] - xi, buf[j, 1] - yi, buf[j, 2] - zi
            if wrap:
                dx, dy, dz = mic(dx, dy, dz, table, b)
            d2 = dx * dx + dy * dy + dz * dz
            if d2 < best2:
                best2, bi, bj = d2, i, j
                best = np.sqrt(best2) * (1.0 + _SLACK)
    return best2, bi, bj


@nb.njit(**PARALLEL_JIT)
def mindist_kernel(x, offsets, members, pairs, periodic, table, dist, arg):
    """``dist[f, k]`` = smallest distance between an atom of group ``pairs[k, 0]`` and one
    of group ``pairs[k, 1]`` in frame ``f``; ``arg[f, k]`` the two atoms (selection
    positions, first from the first group). Layout in the module docstring."""
    n_frames = x.shape[0]
    n_groups = offsets.shape[0] - 1
    n_members = members.shape[0]
    n_pairs = pairs.shape[0]
    box_stride = 0 if table.shape[0] == 1 else 1
    # the largest group bounds the per-pair scratch
    widest = 0
    for g in range(n_groups):
        widest = max(widest, offsets[g + 1] - offsets[g])
    for f in nb.prange(n_frames):
        b = f * box_stride
        has_box = table[b, MODE] == 1.0 or table[b, MODE] == 2.0
        # half the shortest lattice vector (inf without a box)
        half = np.sqrt(table[b, H2]) if has_box else np.inf
        buf = np.empty((n_members, 3), dtype=np.float64)
        for m in range(n_members):
            a = members[m]
            buf[m, 0] = x[f, a, 0]
            buf[m, 1] = x[f, a, 1]
            buf[m, 2] = x[f, a, 2]
        cen = np.zeros((n_groups, 3), dtype=np.float64)
        rad = np.zeros(n_groups, dtype=np.float64)
        for g in range(n_groups):
            o, e = offsets[g], offsets[g + 1]
            for m in range(o, e):
                cen[g, 0] += buf[m, 0]
                cen[g, 1] += buf[m, 1]
                cen[g, 2] += buf[m, 2]
            cen[g] /= e - o
            r2 = 0.0
            for m in range(o, e):
                dx, dy, dz = buf[m, 0] - cen[g, 0], buf[m, 1] - cen[g, 1], buf[m, 2] - cen[g, 2]
                r2 = max(r2, dx * dx + dy * dy + dz * dz)
            # a slightly larger radius keeps every bound below the true distance
            rad[g] = np.sqrt(r2) * (1.0 + _SLACK) + 1e-12
        ui = np.empty(widest, dtype=np.float64)
        vj = np.empty(widest, dtype=np.float64)
        cb = np.empty(3, dtype=np.float64)
        for k in range(n_pairs):
            ga, gb = pairs[k, 0], pairs[k, 1]
            ao, a1 = offsets[ga], offsets[ga + 1]
            bo, b1 = offsets[gb], offsets[gb + 1]
            ra, rb = rad[ga], rad[gb]
            sx, sy, sz = 0.0, 0.0, 0.0
            wrap = False
            if periodic[k] != 0 and has_box:
                dx = cen[gb, 0] - cen[ga, 0]
                dy = cen[gb, 1] - cen[ga, 1]
                dz = cen[gb, 2] - cen[ga, 2]
                mx, my, mz = mic(dx, dy, dz, table, b)
                if np.sqrt(mx * mx + my * my + mz * mz) + ra + rb <= half * (1.0 - _SLACK):
                    # every atom pair shifted by S is its own minimum image
                    sx, sy, sz = mx - dx, my - dy, mz - dz
                else:
                    wrap = True
            cb[0] = cen[gb, 0] + sx
            cb[1] = cen[gb, 1] + sy
            cb[2] = cen[gb, 2] + sz
            best2, bi, bj = _pair_min(
                buf, ao, a1, bo, b1, cen[ga], cb, ra, rb, sx, sy, sz, wrap, table, b, ui, vj
            )
            dist[f, k] = np.sqrt(best2)
            arg[f, k, 0] = members[bi]
            arg[f, k, 1] = members[bj]


@nb.njit(**PARALLEL_JIT)
def contacts_kernel(d, cutoff, out):
    """``out[f, k] = d[f, k] <= cutoff`` as uint8 (0 for NaN)."""
    for f in nb.prange(d.shape[0]):
        for k in range(d.shape[1]):
            out[f, k] = 1 if d[f, k] <= cutoff else 0


@nb.njit(**PARALLEL_JIT)
def logistic_kernel(d, center, steepness, out):
    """``out[f, k] = 1 / (1 + exp(steepness (d - center)))``, in float64 then stored."""
    for f in nb.prange(d.shape[0]):
        for k in range(d.shape[1]):
            z = steepness * (np.float64(d[f, k]) - center)
            # exp overflows to inf for z > 709: the value is then 0, as it should be
            out[f, k] = 1.0 / (1.0 + np.exp(z))
