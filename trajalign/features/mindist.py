"""Minimum distances between groups of atoms (residues) and contact maps over them.

:func:`mindist` is the array-level function (any groups of points, like
:func:`trajalign.distances`); :func:`residue_mindist` resolves residue groups and pairs
from an MDAnalysis selection first (MDTraj ``compute_contacts`` semantics, plus
inter-chain pairs and the atom pair of each minimum). Both go through a
:class:`MindistPlan`, the frozen CSR form the kernel takes, which a pipeline job builds
once and applies per block (:meth:`MindistPlan.compute`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .._validate import as_coords
from ..errors import DataError, ParameterError, SelectionError

__all__ = [
    "CONTACT_TRANSFORMS",
    "MindistPlan",
    "ResidueMindist",
    "contacts",
    "mindist",
    "mindist_plan",
    "residue_mindist",
]

CONTACT_TRANSFORMS = ("step", "logistic")

# Dense runs (:mod:`trajalign.kernels.mindist`): a pair joins one when its two groups have
# at most this many atom pairs (larger groups gain from the bounding spheres) ...
_DENSE_MAX = 4096
# ... and a run of partners of one group breaks where this many buffer atoms that are no
# partner's lie between two partners (measured for nothing inside a run)
_DENSE_GAP = 8


@dataclass(frozen=True)
class MindistPlan:
    """Groups, pairs and periodic flags in the kernel's form, built once.

    Attributes
    ----------
    offsets : ndarray, shape (G + 1,), int64
        Group ``g`` is ``members[offsets[g]:offsets[g + 1]]``.
    members : ndarray, shape (M,), int64
        Point indices (selection positions) of the groups, concatenated.
    pairs : ndarray, shape (K, 2), int64
        Group indices of each pair.
    periodic : ndarray, shape (K,), uint8
        1 where the pair takes the minimum image (its atoms span molecules, or no
        molecules were given), 0 where it lies in one whole molecule.
    n_points : int
        Points the indices refer to.
    """

    offsets: np.ndarray
    members: np.ndarray
    pairs: np.ndarray
    periodic: np.ndarray
    n_points: int
    _schedules: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n_pairs(self) -> int:
        return int(self.pairs.shape[0])

    def schedule(self, wrap: bool) -> tuple[np.ndarray, ...]:
        """Which pairs the kernel measures one by one and which in dense runs.

        A dense run is a group ``A`` and partners ``B_1 < B_2 < ...`` (group order, so
        buffer order) whose atoms lie close together in the kernel's buffer: the kernel
        measures every atom of ``A`` against the whole buffer span from the first to the
        last partner in one long loop, then takes each partner's share of it. Worth it for
        dense pair lists (``all``): two or more partners, gaps of at most
        :data:`_DENSE_GAP` atoms, at most :data:`_DENSE_MAX` atom pairs per pair.

        Parameters
        ----------
        wrap : bool
            The frames have a box: pairs that take the minimum image (``periodic``) stay
            with the one-by-one path.

        Returns
        -------
        sparse : ndarray, shape (S,), int64
            Pair indices measured one by one.
        runs : ndarray, shape (R, 3), int64
            Group ``A``, first and one-past-last buffer position of the span, per run.
        run_ptr : ndarray, shape (R + 1,), int64
            Run ``r`` holds ``run_pairs[run_ptr[r]:run_ptr[r + 1]]``.
        run_pairs : ndarray, shape (P,), int64
            Pair indices, by run, partners in buffer order.
        run_last : ndarray, shape (P,), int64
            Buffer position of each partner's last atom; ``-1 -`` it where the pair is
            written (partner, A).
        """
        key = bool(wrap)
        if key not in self._schedules:
            self._schedules[key] = _schedule(self, key)
        return self._schedules[key]

    def frame_bytes(self) -> int:
        """Output bytes per frame: float32 distance + two int32 atoms per pair, plus the
        kernel's per-thread scratch (float64 coordinates of the members)."""
        return 12 * self.n_pairs

    def compute(
        self, x: np.ndarray, table: np.ndarray, dense: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run the kernel on validated coordinates.

        Parameters
        ----------
        x : ndarray, shape (F, N, 3), float32 or float64, C-contiguous
            ``N == n_points`` (2D input padded with z = 0).
        table : ndarray, shape (1 or F, TABLE_WIDTH), float64
            Box table (:func:`trajalign.box.box_table`, or one mode-0 row for no box).
        dense : bool
            Use the dense runs of :meth:`schedule`; False measures every pair one by one
            (the same values and atoms, slower for dense pair lists: a reference).

        Returns
        -------
        dist : ndarray, shape (F, K), float32
        atoms : ndarray, shape (F, K, 2), int32
            Point indices realising each minimum (first from the pair's first group).
        """
        from .. import _ahead
        from ..kernels.mindist import mindist_kernel

        _ahead.wait()  # a child compiling this kernel into the cache (trajalign._ahead)
        f = x.shape[0]
        dist = np.empty((f, self.n_pairs), dtype=np.float32)
        arg = np.empty((f, self.n_pairs, 2), dtype=np.int32)
        if self.n_pairs and f:
            mode = table[:, 0]
            sparse, runs, run_ptr, run_pairs, run_last = self.schedule(
                bool(np.any((mode == 1) | (mode == 2)))
            )
            if not dense:
                sparse = np.arange(self.n_pairs, dtype=np.int64)
                runs, run_ptr = np.zeros((0, 3), dtype=np.int64), np.zeros(1, dtype=np.int64)
                run_pairs = run_last = np.zeros(0, dtype=np.int64)
            # a squared distance in x's dtype is within a few units of rounding of the
            # exact one; 16 eps leaves room for the order fastmath sums in
            tol = 16.0 * float(np.finfo(x.dtype).eps)
            mindist_kernel(
                x, self.offsets, self.members, self.pairs, self.periodic, table,
                sparse, runs, run_ptr, run_pairs, run_last, tol, dist, arg,
            )  # fmt: skip
        return dist, arg


def _schedule(plan: MindistPlan, wrap: bool):
    """:meth:`MindistPlan.schedule`, built with numpy (no loop over pairs)."""
    off, p = plan.offsets, plan.pairs
    size = np.diff(off)
    lo_g, hi_g = p.min(axis=1), p.max(axis=1)
    ok = size[lo_g] * size[hi_g] <= _DENSE_MAX
    if wrap:
        ok &= plan.periodic == 0
    cand = np.flatnonzero(ok)
    # by group A (the pair's lower group), then partner
    cand = cand[np.lexsort((hi_g[cand], lo_g[cand]))]
    a, b = lo_g[cand], hi_g[cand]
    # a new run where A changes or the gap of atoms before the partner is too wide
    new = np.ones(cand.size, dtype=bool)
    if cand.size:
        new[1:] = (a[1:] != a[:-1]) | (off[b[1:]] - off[b[:-1] + 1] > _DENSE_GAP)
    run_of = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    count = np.diff(np.append(first, cand.size))
    dense = count >= 2  # one partner alone is measured as well one by one
    in_dense = dense[run_of] if cand.size else np.zeros(0, dtype=bool)
    run_pairs = np.ascontiguousarray(cand[in_dense], dtype=np.int64)
    # buffer position of the partner's last atom, -1 - it where the pair is (B, A)
    last = off[b[in_dense] + 1] - 1
    run_last = np.where(p[run_pairs, 0] == a[in_dense], last, -1 - last).astype(np.int64)
    first, count = first[dense], count[dense]
    last = first + count - 1
    runs = np.stack([a[first], off[b[first]], off[b[last] + 1]], axis=1).astype(np.int64)
    run_ptr = np.zeros(first.size + 1, dtype=np.int64)
    run_ptr[1:] = np.cumsum(count)
    mask = np.ones(p.shape[0], dtype=bool)
    mask[run_pairs] = False
    sparse = np.flatnonzero(mask).astype(np.int64)
    return sparse, np.ascontiguousarray(runs.reshape(-1, 3)), run_ptr, run_pairs, run_last


def mindist_plan(groups, pairs, n_points: int, molecules=None) -> MindistPlan:
    """Check groups and pairs and build a :class:`MindistPlan`.

    Parameters
    ----------
    groups : sequence of array_like of int
        Point indices of each group, each non-empty, ``0 <= index < n_points``.
    pairs : array_like, shape (K, 2), int
        Indices into ``groups``; the two groups of a pair differ.
    n_points : int
    molecules : array_like, shape (n_points,), int, optional
        Molecule number of each point where molecules were made whole: pairs whose
        atoms all lie in one molecule are measured without the minimum image. Default:
        every pair takes it (where a box is given).

    Raises
    ------
    SelectionError
        An empty group, an index out of range, a pair of one group with itself.
    """
    gs = []
    for g, grp in enumerate(groups):
        a = np.asarray(grp)
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise SelectionError(f"group {g} holds non-integer indices", "give point indices")
        a = a.astype(np.int64).reshape(-1)
        if a.size == 0:
            raise SelectionError(f"group {g} is empty", "give every group at least one point")
        if a.min() < 0 or a.max() >= n_points:
            raise SelectionError(
                f"group {g} has an index out of range for {n_points} points",
                f"use indices 0 to {n_points - 1}",
            )
        gs.append(a)
    if not gs:
        raise SelectionError("no groups given", "give at least two groups of points")
    offsets = np.zeros(len(gs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([g.size for g in gs])
    members = np.ascontiguousarray(np.concatenate(gs))
    p = np.asarray(pairs)
    if p.size == 0:
        p = np.zeros((0, 2), dtype=np.int64)
    if p.ndim == 1 and p.size == 2:
        p = p[None]
    if p.ndim != 2 or p.shape[1] != 2 or not np.issubdtype(p.dtype, np.integer):
        raise SelectionError(
            f"pairs has shape {p.shape} and dtype {p.dtype}, not (K, 2) integers",
            "give one row of two group indices per pair",
        )
    p = np.ascontiguousarray(p, dtype=np.int64)
    bad = np.flatnonzero(np.any((p < 0) | (p >= len(gs)), axis=1))
    if bad.size:
        raise SelectionError(
            f"pairs row {bad[0]} {p[bad[0]].tolist()} is out of range for {len(gs)} groups",
            f"use group indices 0 to {len(gs) - 1}",
        )
    same = np.flatnonzero(p[:, 0] == p[:, 1])
    if same.size:
        raise SelectionError(
            f"pairs row {same[0]} pairs group {p[same[0], 0]} with itself",
            "a pair needs two groups",
        )
    periodic = np.ones(p.shape[0], dtype=np.uint8)
    if molecules is not None:
        mol = np.asarray(molecules).reshape(-1)
        if mol.shape != (n_points,):
            raise SelectionError(
                f"molecules has {mol.size} entries for {n_points} points",
                "give one molecule number per point",
            )
        # a group is "in one molecule" when all its atoms are: its number, else -1
        gm = np.array([mol[g[0]] if np.all(mol[g] == mol[g[0]]) else -1 for g in gs])
        one = (gm[p[:, 0]] >= 0) & (gm[p[:, 0]] == gm[p[:, 1]])
        periodic[one] = 0
    return MindistPlan(offsets, members, p, periodic, int(n_points))


def _table(box, n_frames: int, dim: int) -> np.ndarray:
    """Box table for :meth:`MindistPlan.compute` from a box in any form
    :func:`trajalign.distances` takes."""
    from ..box import as_box, kernel_box_table

    h, mode = as_box(box, n_frames, dim)
    return kernel_box_table(h, mode)


def _coords3(X) -> np.ndarray:
    x = as_coords(X)
    if x.shape[2] == 3:
        return x
    out = np.zeros((*x.shape[:2], 3), dtype=x.dtype)
    out[:, :, :2] = x
    return out


def mindist(
    X: np.ndarray, groups, pairs, box: np.ndarray | None = None, molecules=None
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest distance between the points of two groups, per pair of groups and frame.

    Exact: every atom pair that could be the closest is measured (bounding spheres only
    skip pairs that provably cannot be), so the result equals a brute-force minimum.

    Parameters
    ----------
    X : array_like, shape (F, N, D), D in {2, 3}, float32 or float64
        Coordinates. Not modified.
    groups : sequence of array_like of int
        Point indices of each group (e.g. the atoms of a residue), each non-empty.
    pairs : array_like, shape (K, 2), int
        Indices into ``groups``.
    box : array_like, optional
        Periodic cell, as for :func:`trajalign.distances`: the exact minimum image of
        every point pair, however skewed the box. ``None``: no periodicity.
    molecules : array_like, shape (N,), int, optional
        Molecule number of each point, for coordinates whose molecules are whole: pairs
        inside one molecule are then measured directly (a molecule longer than half the
        box stays whole), pairs across molecules by the minimum image.

    Returns
    -------
    dist : ndarray, shape (F, K), float32
        Minimum distances in the length unit of ``X``, computed in float64.
    atoms : ndarray, shape (F, K, 2), int32
        The two points realising each minimum, the first from ``groups[pairs[k, 0]]``;
        between equally close pairs either may be given.

    Raises
    ------
    DataError
        ``X`` is not (F, N, 2|3) finite numbers.
    SelectionError
        Malformed groups or pairs.
    ParameterError
        A malformed box.

    See Also
    --------
    residue_mindist, mdtraj.compute_contacts
    """
    x = _coords3(X)
    plan = mindist_plan(groups, pairs, x.shape[1], molecules)
    return plan.compute(x, _table(box, x.shape[0], np.asarray(X).shape[-1]))


@dataclass(frozen=True)
class ResidueMindist:
    """Result of :func:`residue_mindist`.

    Attributes
    ----------
    value : ndarray, shape (F, K), float32
        Minimum distances (length unit of the coordinates, Angstrom for MDAnalysis).
    atoms : ndarray, shape (F, K, 2), int32
        Selection positions of the atom pair realising each minimum.
    residues : ndarray, shape (K, 2), int64
        0-based topology residue indices of each pair (as MDTraj returns them).
    labels : list of str, length K
        ``"mindist LYS 12 A - GLU 87 A (closest-heavy)"``.
    """

    value: np.ndarray
    atoms: np.ndarray
    residues: np.ndarray
    labels: list


def residue_mindist(
    X: np.ndarray,
    atoms,
    scheme: str = "closest-heavy",
    residue_pairs: str | os.PathLike = "all",
    box: np.ndarray | None = None,
    molecules=None,
) -> ResidueMindist:
    """Residue-residue minimum distances of a protein selection (MDTraj semantics).

    Parameters
    ----------
    X : array_like, shape (F, N, 3)
        Coordinates of the selection ``atoms`` (N atoms, in its order), Angstrom.
    atoms : MDAnalysis.core.groups.AtomGroup
        The selection.
    scheme : {"ca", "closest", "closest-heavy", "sidechain", "sidechain-heavy"}
        Which atoms of a residue count (:meth:`ProteinTopology.groups`).
    residue_pairs : "all" or path
        ``all``: residues ``|i - j| >= 3`` apart within a chain plus every inter-chain
        pair; or a file of two 0-based topology residue indices per line
        (:meth:`ProteinTopology.residue_pairs`).
    box, molecules
        As for :func:`mindist`.

    Returns
    -------
    ResidueMindist
    """
    from .protein import ProteinTopology

    x = _coords3(X)
    if x.shape[1] != len(atoms):
        raise DataError(
            f"X has {x.shape[1]} points but the selection {len(atoms)} atoms",
            "pass the coordinates of the selected atoms",
        )
    top = ProteinTopology.from_atoms(atoms, x[0])
    groups = top.groups(scheme)
    rows = top.residue_pairs(residue_pairs, groups)
    used = np.unique(rows)
    # only the groups the pairs use go to the kernel
    remap = np.full(top.n_residues, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    plan = mindist_plan([groups[r] for r in used], remap[rows], x.shape[1], molecules)
    dist, arg = plan.compute(x, _table(box, x.shape[0], 3))
    return ResidueMindist(dist, arg, top.resindex[rows], top.pair_labels(rows, scheme.lower()))


def contacts(
    dist: np.ndarray,
    cutoff: float = 4.5,
    transform: Literal["step", "logistic"] = "step",
    steepness: float = 2.0,
) -> np.ndarray:
    """Contact map from minimum distances.

    Parameters
    ----------
    dist : array_like, shape (F, K), float
        Distances, e.g. :func:`mindist` values (Angstrom). Not modified.
    cutoff : float
        ``step``: a contact where ``dist <= cutoff``; ``logistic``: the centre ``c``.
    transform : {"step", "logistic"}
        ``step`` gives uint8 0/1 (0 for NaN); ``logistic`` gives
        ``1 / (1 + exp(steepness (dist - cutoff)))`` as float32 (MSMBuilder's
        ``LogisticContactFeaturizer``), 1/2 at the cutoff.
    steepness : float
        In 1 / length unit; default 2 per Angstrom (MSMBuilder's 20 per nm).

    Returns
    -------
    ndarray, shape (F, K), uint8 or float32
    """
    from ..kernels.mindist import contacts_kernel, logistic_kernel

    a = np.asarray(dist)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.floating):
        raise DataError(
            f"dist has shape {a.shape} and dtype {a.dtype}, not (frames, pairs) floats",
            "pass the (F, K) output of mindist",
        )
    a = np.ascontiguousarray(a)
    c = float(cutoff)
    if not np.isfinite(c):
        raise ParameterError(f"--contact-cutoff {cutoff} is not finite", "give a distance")
    if transform == "step":
        out = np.empty(a.shape, dtype=np.uint8)
        contacts_kernel(a, c, out)
        return out
    if transform != "logistic":
        raise ParameterError(
            f"unknown contact transform {transform!r}",
            f"choose from {', '.join(CONTACT_TRANSFORMS)}",
        )
    k = float(steepness)
    if not (np.isfinite(k) and k > 0):
        raise ParameterError(f"--contact-steepness {steepness} is not positive", "give k > 0")
    out = np.empty(a.shape, dtype=np.float32)
    logistic_kernel(a, c, k, out)
    return out
