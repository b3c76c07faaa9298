"""Periodic-repair kernels: whole molecules, clusters of molecules, no jumps.

Conventions:

- ``x`` is (F, M, 3) float32 or float64, the coordinates of the atoms being repaired
  (every atom of every molecule that holds a selected atom), modified in place. The
  arithmetic is float64; a float32 coordinate is rounded once, when a lattice vector
  computed in float64 is added to it (so float32 input costs no float64 copy).
- ``p`` is a box table from :func:`trajalign.box.box_table` with one row per frame, or one
  row for every frame (``pstride`` 0); :func:`trajalign.kernels.box.mic` gives the exact
  minimum image with it.
- A molecule plan (see :mod:`trajalign.pbc`): ``order`` lists the atoms molecule by
  molecule, each molecule in breadth-first order from its root, ``parent`` gives each
  atom's parent in that spanning tree (-1 for a root) and ``mol`` its molecule number.
"""

import numba as nb
import numpy as np

from ._borrow import borrow
from ._config import EXACT_FASTMATH, EXACT_PARALLEL_JIT, JIT
from ._threads import in_threads
from .box import mic

__all__ = [
    "PARALLEL_JIT",
    "cluster_kernel",
    "nojump_kernel",
    "split_suspect",
    "whole_kernel",
]

# Arithmetic in written order (no contract/reassoc): with them LLVM may peel the first
# frame of a loop and round it differently, and a frame's bits would then depend on
# where a block starts (seen: one ulp in nojump at a block boundary).
PARALLEL_JIT = EXACT_PARALLEL_JIT
EXACT_JIT = dict(JIT, fastmath=EXACT_FASTMATH)


def whole_kernel(x, order, parent, mol, p, pstride, split):
    """Make every molecule whole: each atom takes the image nearest its parent.

    ``split[f]`` receives the number of molecules that were split in frame ``f``.
    """
    work = order.size * 6
    in_threads(_whole_run, x.shape[0], work, x, order, parent, mol, p, pstride, split)


# Serial kernels over ranges of frames in threads, not prange loops (each prange loop
# cost its kernel about half a second of compilation on an empty cache). The minimum
# image is inlined with the box table as an argument: on borrowed views (._borrow) of
# the arguments that costs no reference counting per atom.
@nb.njit(**EXACT_JIT)
def _whole_run(start, stop, x, order, parent, mol, p, pstride, split):
    x, order, parent, p = borrow(x), borrow(order), borrow(parent), borrow(p)
    n_atoms = order.size
    for f in range(start, stop):
        b = f * pstride
        count = 0
        moved = False
        for t in range(n_atoms):
            k = order[t]
            j = parent[k]
            if j < 0:  # a new molecule starts at its root, which stays where it is
                moved = False
                continue
            kx, ky, kz = np.float64(x[f, k, 0]), np.float64(x[f, k, 1]), np.float64(x[f, k, 2])
            dx = kx - np.float64(x[f, j, 0])
            dy = ky - np.float64(x[f, j, 1])
            dz = kz - np.float64(x[f, j, 2])
            mx, my, mz = mic(dx, dy, dz, p, b)
            if mx != dx or my != dy or mz != dz:
                if not moved:
                    count += 1
                    moved = True
                # move by the lattice vector only, so the bond keeps the file's precision
                x[f, k, 0] = kx - (dx - mx)
                x[f, k, 1] = ky - (dy - my)
                x[f, k, 2] = kz - (dz - mz)
        split[f] = count


def cluster_kernel(x, order, mol_ptr, reps, rep_ptr, first, p, pstride, moved):
    """Place whole molecules in the images that keep them together (single linkage).

    Starting from molecule ``first`` (left where it is), the molecule whose nearest
    representative atom is closest, by the minimum image, to the molecules already placed
    joins next, shifted by the lattice vector that realises that distance (Prim's
    algorithm on the complete graph of molecules). ``order[mol_ptr[m]:mol_ptr[m + 1]]``
    are molecule ``m``'s atoms, ``reps[rep_ptr[m]:rep_ptr[m + 1]]`` the ones compared.
    ``moved[f]`` receives the number of molecules shifted in frame ``f``.
    """
    work = 3 * order.size + 6 * reps.size
    args = (x, order, mol_ptr, reps, rep_ptr, first, p, pstride, moved)
    in_threads(_cluster_run, x.shape[0], work, *args)


@nb.njit(**EXACT_JIT)
def _cluster_run(start, stop, x, order, mol_ptr, reps, rep_ptr, first, p, pstride, moved):
    x, order, mol_ptr, p = borrow(x), borrow(order), borrow(mol_ptr), borrow(p)
    reps, rep_ptr = borrow(reps), borrow(rep_ptr)
    n_mol = mol_ptr.size - 1
    placed = np.zeros(n_mol, np.bool_)
    best = np.empty(n_mol)
    cand = np.zeros((n_mol, 3))
    for f in range(start, stop):
        b = f * pstride
        placed[:] = False
        best[:] = np.inf
        cand[:] = 0.0
        q = first
        placed[q] = True
        count = 0
        for _ in range(n_mol - 1):
            # distances of the unplaced molecules to the molecule placed last
            for m in range(n_mol):
                if placed[m]:
                    continue
                for ia in range(rep_ptr[q], rep_ptr[q + 1]):
                    a = reps[ia]
                    # molecule q was moved in place when it was placed
                    ax = np.float64(x[f, a, 0])
                    ay = np.float64(x[f, a, 1])
                    az = np.float64(x[f, a, 2])
                    for ib in range(rep_ptr[m], rep_ptr[m + 1]):
                        c = reps[ib]
                        dx = np.float64(x[f, c, 0]) - ax
                        dy = np.float64(x[f, c, 1]) - ay
                        dz = np.float64(x[f, c, 2]) - az
                        mx, my, mz = mic(dx, dy, dz, p, b)
                        d2 = mx * mx + my * my + mz * mz
                        if d2 < best[m]:
                            best[m] = d2
                            cand[m, 0] = mx - dx
                            cand[m, 1] = my - dy
                            cand[m, 2] = mz - dz
            q = -1
            for m in range(n_mol):
                if not placed[m] and (q < 0 or best[m] < best[q]):
                    q = m
            placed[q] = True
            sx, sy, sz = cand[q, 0], cand[q, 1], cand[q, 2]
            if sx != 0.0 or sy != 0.0 or sz != 0.0:
                count += 1
                for t in range(mol_ptr[q], mol_ptr[q + 1]):
                    k = order[t]
                    x[f, k, 0] = np.float64(x[f, k, 0]) + sx
                    x[f, k, 1] = np.float64(x[f, k, 1]) + sy
                    x[f, k, 2] = np.float64(x[f, k, 2]) + sz
        moved[f] = count


@nb.njit(**PARALLEL_JIT)
def nojump_kernel(x, h, hinv, images, fprev, skip_first):
    """Unwrap frames so no atom jumps across the boundary (Kulke & Vermaas 2022, B6).

    ``x`` (b, M, 3) float64 wrapped coordinates, replaced by ``x + images @ h``; ``h`` and
    ``hinv`` (b, 3, 3) each frame's box rows and their inverse; ``images`` (M, 3) int64
    and ``fprev`` (M, 3) float64 the state after the frame before the block (integer image
    of each atom, fractional wrapped coordinates), updated to the state after the block's
    last frame. Frame 0 of the block only sets ``fprev`` when ``skip_first`` (the first
    frame of the trajectory, whose images are given). The image step of an atom is the
    rounded change of its fractional coordinates, each frame in its own box, so a box
    that changes (NPT) scales positions as the barostat did. Returns the number of
    boundary crossings undone.
    """
    n_frames, n_atoms = x.shape[0], x.shape[1]
    crossings = 0
    for i in nb.prange(n_atoms):
        for t in range(n_frames):
            x0, x1, x2 = np.float64(x[t, i, 0]), np.float64(x[t, i, 1]), np.float64(x[t, i, 2])
            f0 = x0 * hinv[t, 0, 0] + x1 * hinv[t, 1, 0] + x2 * hinv[t, 2, 0]
            f1 = x1 * hinv[t, 1, 1] + x2 * hinv[t, 2, 1]
            f2 = x2 * hinv[t, 2, 2]
            if not (skip_first and t == 0):
                s0 = np.floor(f0 - fprev[i, 0] + 0.5)
                s1 = np.floor(f1 - fprev[i, 1] + 0.5)
                s2 = np.floor(f2 - fprev[i, 2] + 0.5)
                if s0 != 0.0 or s1 != 0.0 or s2 != 0.0:
                    crossings += 1
                    images[i, 0] -= np.int64(s0)
                    images[i, 1] -= np.int64(s1)
                    images[i, 2] -= np.int64(s2)
            fprev[i, 0] = f0
            fprev[i, 1] = f1
            fprev[i, 2] = f2
            n0 = np.float64(images[i, 0])
            n1 = np.float64(images[i, 1])
            n2 = np.float64(images[i, 2])
            # h is lower triangular: rows a = (ax, 0, 0), b = (bx, by, 0), c = (cx, cy, cz)
            x[t, i, 0] = x0 + (n0 * h[t, 0, 0] + n1 * h[t, 1, 0] + n2 * h[t, 2, 0])
            x[t, i, 1] = x1 + (n1 * h[t, 1, 1] + n2 * h[t, 2, 1])
            x[t, i, 2] = x2 + n2 * h[t, 2, 2]
    return crossings


def split_suspect(x, hinv, bonds, limit, out):
    """Flag frames whose points may be split across the periodic boundary: their extent
    along a box vector passes ``limit`` box lengths (fractional coordinates), or a bond
    is longer than ``limit`` times the smallest diagonal element of the frame's box rows
    (a lower bound of the shortest lattice vector).

    x : (F, N, 3) float32/float64; hinv : (F, 3, 3) float64 inverse box rows; bonds :
    (B, 2) int64; out : (F,) bool.
    """
    work = x.shape[1] * 3 + bonds.shape[0] * 6
    in_threads(_split_suspect_run, x.shape[0], work, x, hinv, bonds, limit, out)


@nb.njit(**EXACT_JIT)
def _split_suspect_run(start, stop, x, hinv, bonds, limit, out):
    # a serial kernel over frames [start, stop) in threads: a prange loop here took
    # 1.4 s to compile on an empty cache, in every --pbc none run with a box
    n_atoms = x.shape[1]
    for t in range(start, stop):
        lo0, lo1, lo2 = np.inf, np.inf, np.inf
        hi0, hi1, hi2 = -np.inf, -np.inf, -np.inf
        for i in range(n_atoms):
            x0, x1, x2 = np.float64(x[t, i, 0]), np.float64(x[t, i, 1]), np.float64(x[t, i, 2])
            f0 = x0 * hinv[t, 0, 0] + x1 * hinv[t, 1, 0] + x2 * hinv[t, 2, 0]
            f1 = x1 * hinv[t, 1, 1] + x2 * hinv[t, 2, 1]
            f2 = x2 * hinv[t, 2, 2]
            lo0, hi0 = min(lo0, f0), max(hi0, f0)
            lo1, hi1 = min(lo1, f1), max(hi1, f1)
            lo2, hi2 = min(lo2, f2), max(hi2, f2)
        bad = max(hi0 - lo0, max(hi1 - lo1, hi2 - lo2)) > limit
        # the box rows' diagonal from the inverse's (a zero there: not periodic)
        edge = np.inf
        for d in range(3):
            if hinv[t, d, d] > 0.0:
                edge = min(edge, 1.0 / hinv[t, d, d])
        cut = (limit * edge) ** 2
        for k in range(bonds.shape[0]):
            if bad:
                break
            a, b = bonds[k, 0], bonds[k, 1]
            dx = np.float64(x[t, a, 0]) - np.float64(x[t, b, 0])
            dy = np.float64(x[t, a, 1]) - np.float64(x[t, b, 1])
            dz = np.float64(x[t, a, 2]) - np.float64(x[t, b, 2])
            bad = dx * dx + dy * dy + dz * dz > cut
        out[t] = bad
