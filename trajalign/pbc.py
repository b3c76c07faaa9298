"""Periodic-boundary repair: whole molecules, clusters of molecules, no jumps.

Production trajectories are written with every atom (or molecule) wrapped into the box,
so a molecule can be split across the boundary, a complex can sit in two images, and
atoms jump by a box vector between frames. A fit or a distance on such frames is silently
wrong. The repair here runs on the full frame before the selection is sliced out:

- ``whole``: every molecule (bond-connected fragment) holding a selected atom is made
  whole, each atom in the image nearest its parent in a breadth-first spanning tree
  (as GROMACS ``trjconv -pbc mol``, MDAnalysis ``unwrap``, MDTraj
  ``make_molecules_whole``);
- ``cluster``: ``whole``, then the molecules are shifted by lattice vectors so that they
  stay together (single linkage by the minimum image, as ``trjconv -pbc cluster``);
- ``nojump``: frame 0 as ``cluster``, then every atom follows a continuous path: its
  integer image changes by the rounded change of its fractional coordinates (Kulke &
  Vermaas, JCTC 2022, eq. B6; MDAnalysis ``NoJump``). Images are integers, so blocks
  of any size, Dask workers and ``--resume`` give identical bits.

A :class:`MoleculePlan` is built once per input (spanning forest, molecule numbers,
representative atoms); :class:`Repair` applies it to blocks with the Numba kernels of
:mod:`trajalign.kernels.pbc`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._names import PBC_MODES
from .box import box_rows, inverse_rows
from .errors import ParameterError

__all__ = [
    "CHECK_MAX_PAIRS",
    "PBC_MODES",
    "SPREAD_LIMIT",
    "MoleculePlan",
    "Repair",
    "cluster",
    "make_whole",
    "nojump",
    "pad3_float64",
    "plan_molecules",
    "repair_structure",
]
#: atoms of a molecule compared when clusters are formed (spread along its spanning tree)
CLUSTER_REPS = 128
#: pair evaluations per frame above which a cluster is refused (a solvated system)
CLUSTER_MAX_PAIRS = 2e8
#: pair evaluations per frame up to which ``whole`` checks whether molecules sit apart
CHECK_MAX_PAIRS = 1e6
#: fraction of a box length a selection may span before it is reported as possibly split
SPREAD_LIMIT = 0.5


@dataclass(frozen=True)
class MoleculePlan:
    """The molecules a repair moves, fixed once per input.

    Attributes
    ----------
    atoms : (M,) int64
        Source indices of every atom of every molecule holding a needed atom, sorted.
    order : (M,) int64
        Positions in ``atoms``, molecule by molecule, each in breadth-first order.
    parent : (M,) int64
        Position of each atom's parent in the spanning tree, -1 for the root.
    mol : (M,) int64
        Molecule number of each atom (0 .. n_molecules - 1).
    mol_ptr : (n_molecules + 1,) int64
        ``order[mol_ptr[m]:mol_ptr[m + 1]]`` are molecule ``m``'s atoms.
    reps, rep_ptr : int64
        Representative atoms of each molecule for clustering, in the same layout.
    first : int
        The largest molecule: clusters are built around it.
    bonded : bool
        False when no bonds were known: every atom is its own molecule.
    """

    atoms: np.ndarray
    order: np.ndarray
    parent: np.ndarray
    mol: np.ndarray
    mol_ptr: np.ndarray
    reps: np.ndarray
    rep_ptr: np.ndarray
    first: int
    bonded: bool

    @property
    def n_molecules(self) -> int:
        return int(self.mol_ptr.size - 1)

    def positions(self, indices: np.ndarray) -> np.ndarray:
        """Positions in ``atoms`` of the source atoms ``indices`` (all must be in it)."""
        return np.searchsorted(self.atoms, np.asarray(indices, dtype=np.int64))

    def cluster_pairs(self) -> float:
        """Pair evaluations per frame of :func:`cluster_kernel` (about)."""
        r = np.diff(self.rep_ptr).astype(np.float64)
        return 0.5 * (r.sum() ** 2 - (r * r).sum())


def plan_molecules(bonds: np.ndarray | None, n_atoms: int, needed: np.ndarray) -> MoleculePlan:
    """The molecules holding the ``needed`` atoms, with their spanning trees.

    Parameters
    ----------
    bonds : (B, 2) int array or None
        Bonded atom pairs in the whole system's numbering (all bonds of the topology,
        not only the selection's). None: no molecules are known, each needed atom is its
        own.
    n_atoms : int
        Atoms in the system.
    needed : (K,) int array
        Atoms whose molecules are repaired (the selection and the fit atoms).

    Returns
    -------
    MoleculePlan
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    needed = np.unique(np.asarray(needed, dtype=np.int64))
    if bonds is None or len(bonds) == 0:
        atoms = needed
        local_bonds = np.zeros((0, 2), dtype=np.int64)
        bonded = False
    else:
        b = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
        if b.size and (b.min() < 0 or b.max() >= n_atoms):
            raise ParameterError(
                f"a bond names atom {int(b.max())}, but there are {n_atoms} atoms",
                "give bonds as 0-based index pairs of the input's atoms",
            )
        graph = coo_matrix((np.ones(len(b), np.int8), (b[:, 0], b[:, 1])), (n_atoms, n_atoms))
        _, labels = connected_components(graph, directed=False)
        keep = np.isin(labels, np.unique(labels[needed]))
        atoms = np.flatnonzero(keep).astype(np.int64)
        pos = np.full(n_atoms, -1, dtype=np.int64)
        pos[atoms] = np.arange(atoms.size)
        local_bonds = pos[b]
        local_bonds = local_bonds[np.all(local_bonds >= 0, axis=1)]
        bonded = True
    m = atoms.size
    lb = np.concatenate([local_bonds, local_bonds[:, ::-1]])
    lb = lb[lb[:, 0] != lb[:, 1]]  # a self-bond is not an edge
    ordering = np.lexsort((lb[:, 1], lb[:, 0]))
    lb = lb[ordering]
    indptr = np.zeros(m + 1, dtype=np.int64)
    np.add.at(indptr, lb[:, 0] + 1, 1)
    indptr = np.cumsum(indptr)
    order, parent, mol, n_mol = _spanning_forest(indptr, np.ascontiguousarray(lb[:, 1]))
    mol_ptr = np.searchsorted(mol[order], np.arange(n_mol + 1)).astype(np.int64)
    sizes = np.diff(mol_ptr)
    reps, rep_ptr = [], [0]
    for k in range(n_mol):
        seg = order[mol_ptr[k] : mol_ptr[k + 1]]
        if seg.size > CLUSTER_REPS:
            seg = seg[np.linspace(0, seg.size - 1, CLUSTER_REPS).round().astype(np.int64)]
        reps.append(seg)
        rep_ptr.append(rep_ptr[-1] + seg.size)
    return MoleculePlan(
        atoms=atoms,
        order=order,
        parent=parent,
        mol=mol,
        mol_ptr=mol_ptr,
        reps=np.concatenate(reps) if reps else np.zeros(0, np.int64),
        rep_ptr=np.asarray(rep_ptr, dtype=np.int64),
        first=int(np.argmax(sizes)) if n_mol else 0,
        bonded=bonded,
    )


def _spanning_forest(
    indptr: np.ndarray, indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Breadth-first spanning forest of an undirected graph in CSR form (``m`` nodes).

    Parameters
    ----------
    indptr : (m + 1,) int64
    indices : (E,) int64
        Each edge in both directions, every row's neighbours in increasing order.

    Returns
    -------
    order : (m,) int64
        The nodes molecule by molecule, each in breadth-first order from its root (its
        lowest node), neighbours visited in increasing order.
    parent : (m,) int64
        Each node's parent in that tree, -1 for a root.
    mol : (m,) int64
        Molecule numbers: molecule ``k`` is the one whose lowest node comes ``k``-th.
    n_mol : int
    """
    # SciPy's traversals rather than a compiled loop: the same trees, and no kernel for
    # every first run to compile (0.4-0.6 s of CPU on an empty Numba cache)
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    m = indptr.size - 1
    if m == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy(), empty.copy(), 0
    ones = np.ones(indices.size, np.int8)
    graph = csr_matrix((ones, indices, indptr), shape=(m, m))
    # components are numbered in the order of their lowest node
    n_mol, labels = connected_components(graph, directed=False)
    mol = labels.astype(np.int64)
    roots = np.unique(mol, return_index=True)[1].astype(np.int64)
    # One breadth-first search from an extra node joined to every root, in increasing
    # order. Molecules share no edge, so each molecule's nodes come out in the order, and
    # with the parents, of a search from its own root; a stable sort by molecule then
    # puts the molecules one after another.
    top = csr_matrix(
        (
            np.ones(indices.size + n_mol, np.int8),
            np.concatenate([indices, roots]),
            np.concatenate([indptr, [indptr[-1] + n_mol]]),
        ),
        shape=(m + 1, m + 1),
    )
    found, pred = breadth_first_order(top, m, directed=True, return_predecessors=True)
    found = found[1:].astype(np.int64)  # without the extra node
    order = found[np.argsort(mol[found], kind="stable")]
    parent = pred[:m].astype(np.int64)
    parent[roots] = -1
    return order, parent, mol, int(n_mol)


def pad3_float64(x: np.ndarray) -> np.ndarray:
    """(..., 2 or 3) -> a C-ordered float64 (..., 3) copy, z = 0 for 2D points."""
    if x.shape[-1] == 3:
        return np.array(x, dtype=np.float64, order="C")
    out = np.zeros(x.shape[:-1] + (3,), dtype=np.float64)
    out[..., : x.shape[-1]] = x
    return out


def _bonds_within_images(x: np.ndarray, parent: np.ndarray, p: np.ndarray) -> bool:
    """True if :func:`trajalign.kernels.pbc.whole_kernel` would move no atom of ``x``.

    Every tree bond (atom minus parent, float64) is tested as the kernel's minimum image
    tests it before it moves anything: in an orthorhombic row the per-axis rounding is
    zero, in a lattice row the vector is within the proven half shortest vector. When no
    bond moves, no position changes and every bond is as read, so the kernel, its
    compilation included, can be skipped; a block with any other bond goes to the kernel.
    """
    child = np.flatnonzero(parent >= 0)
    if child.size == 0:
        return True
    if np.all(p[:, 0] == 0.0):
        return True
    if np.any((p[:, 0] != 1.0) & (p[:, 0] != 2.0) & (p[:, 0] != 0.0)):
        return False
    up = parent[child]
    n_frames = x.shape[0]
    # a frame first, then twice as many each time: a split molecule is usually split
    # from the first frame on, and the answer is then known after one frame's bonds
    cap = max(1, (1 << 21) // (3 * child.size))
    a, step = 0, 1
    while a < n_frames:
        b = min(n_frames, a + step)
        d = x[a:b, child].astype(np.float64) - x[a:b, up].astype(np.float64)
        rows = p[a:b] if p.shape[0] > 1 else p
        mode = rows[:, 0][:, None]
        # the kernel's arithmetic in its order: floor(d * inverse + 0.5) per axis, and
        # dx * dx + dy * dy + dz * dz against h2
        k0 = np.floor(d[..., 0] * rows[:, None, 11] + 0.5) == 0.0
        k1 = np.floor(d[..., 1] * rows[:, None, 15] + 0.5) == 0.0
        k2 = np.floor(d[..., 2] * rows[:, None, 19] + 0.5) == 0.0
        short = d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2]
        keep = np.where(mode == 1.0, k0 & k1 & k2, True)
        keep &= np.where(mode == 2.0, short <= rows[:, None, 1], True)
        if not np.all(keep):
            return False
        a, step = b, min(cap, 2 * step)
    return True


@dataclass
class Repair:
    """A periodic repair in one mode, applied block by block.

    ``nojump`` carries state from one block to the next (each atom's integer image and
    its last fractional coordinates); :meth:`apply` takes it from the block before, from
    an anchor given with :meth:`set_anchor` (a Dask task), or from a scan of the frames
    before the block (``scan``, a callable reading raw frames).
    """

    mode: str
    plan: MoleculePlan
    anchors: dict = field(default_factory=dict)
    # set once whole_kernel has run: it is compiled (or loaded) then, and the check that
    # spares its compilation would only cost time (0.1 s per 1000 frames of a protein)
    whole_ready: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode in ("cluster", "nojump") and self.plan.bonded:
            pairs = self.plan.cluster_pairs()
            if pairs > CLUSTER_MAX_PAIRS:
                raise ParameterError(
                    f"--pbc {self.mode} would cluster {self.plan.n_molecules} molecules "
                    f"({pairs:.1e} atom pairs per frame)",
                    "select the complex to keep together (e.g. 'protein or resname LIG'), "
                    "or use --pbc whole",
                )

    def __getstate__(self):
        state = dict(self.__dict__)
        state["anchors"] = {}  # a task gets its anchor with it, not every block's
        return state

    def set_anchor(self, start: int, anchor) -> None:
        """State after frame ``start - 1`` (images (M, 3) int64, fractional (M, 3))."""
        self.anchors[start] = (np.array(anchor[0], np.int64), np.array(anchor[1], np.float64))

    def _frame_one(self, x0: np.ndarray, p: np.ndarray) -> dict:
        from .kernels.pbc import cluster_kernel, whole_kernel

        plan = self.plan
        tally = {}
        if plan.bonded:
            split = np.zeros(x0.shape[0], np.int64)
            if self.whole_ready or not _bonds_within_images(x0, plan.parent, p):
                whole_kernel(
                    x0, plan.order, plan.parent, plan.mol, p, 0 if p.shape[0] == 1 else 1, split
                )
                self.whole_ready = True
            tally["split_molecules"] = int(split.sum())
            tally["split_frames"] = int(np.count_nonzero(split))
        if (
            self.mode in ("cluster", "nojump")
            and plan.n_molecules > 1
            and (plan.bonded or self.mode == "cluster")
        ):
            moved = np.zeros(x0.shape[0], np.int64)
            cluster_kernel(
                x0,
                plan.order,
                plan.mol_ptr,
                plan.reps,
                plan.rep_ptr,
                plan.first,
                p,
                0 if p.shape[0] == 1 else 1,
                moved,
            )
            tally["regrouped_frames"] = int(np.count_nonzero(moved))
        return tally

    def count_apart(self, x: np.ndarray, h: np.ndarray) -> int:
        """Frames of a whole-made block whose molecules a cluster pass would move: they
        sit in different periodic images (``x`` is not changed)."""
        from .box import box_table
        from .kernels.pbc import cluster_kernel

        plan = self.plan
        y = np.array(x, dtype=np.float64)
        p = box_table(h)
        moved = np.zeros(x.shape[0], np.int64)
        stride = 0 if p.shape[0] == 1 else 1
        cluster_kernel(
            y, plan.order, plan.mol_ptr, plan.reps, plan.rep_ptr, plan.first, p, stride, moved
        )
        return int(np.count_nonzero(moved))

    def apply(self, x: np.ndarray, h: np.ndarray, start: int, scan=None) -> dict:
        """Repair a block in place.

        Parameters
        ----------
        x : (b, M, 3) float64
            Coordinates of ``plan.atoms`` (2D data padded with z = 0), as read.
        h : (b, 3, 3) or (1, 3, 3) float64
            Box rows of each frame (lower triangular).
        start : int
            Position of the block's first frame in the trajectory (for ``nojump``).
        scan : callable, optional
            ``scan(a, b)`` -> (x, h) of raw frames ``[a, b)``, to rebuild ``nojump``'s
            state where no anchor is known.

        Returns
        -------
        dict
            Counts for the run summary (split molecules, regrouped frames, crossings).
        """
        from .box import box_table

        if self.mode in ("whole", "cluster"):
            return self._frame_one(x, box_table(h))
        from .kernels.pbc import nojump_kernel

        if h.shape[0] != x.shape[0]:
            h = np.broadcast_to(h, (x.shape[0], 3, 3)).copy()
        hinv = inverse_rows(h)
        tally: dict = {}
        if start == 0:
            x0 = x[:1].copy()
            tally = self._frame_one(x0, box_table(h[:1]))
            images = np.floor((x0[0] - x[0]) @ hinv[0] + 0.5).astype(np.int64)
            # float64 as the anchors of later blocks are (zeros_like of a float32 block
            # kept the first block's fractions in float32, and compiled the kernel twice)
            fprev = np.zeros(x.shape[1:], np.float64)
            skip = True
        else:
            images, fprev = self._state_at(start, scan)
            skip = False
        tally["crossings"] = int(nojump_kernel(x, h, hinv, images, fprev, skip))
        self.anchors = {start + x.shape[0]: (images, fprev)}
        return tally

    def _state_at(self, start: int, scan):
        if start in self.anchors:
            images, fprev = self.anchors.pop(start)
            return images.copy(), fprev.copy()
        if scan is None:
            raise RuntimeError(f"no nojump state for frame {start}")  # a bug, not input
        # rebuild from the nearest earlier state (or frame 0) by replaying the frames
        known = [s for s in self.anchors if s < start]
        pos = max(known) if known else 0
        step = 1024
        while pos < start:
            stop = min(start, pos + step)
            xs, hs = scan(pos, stop)
            self.apply(xs, hs, pos, scan)
            pos = stop
        images, fprev = self.anchors.pop(start)
        return images, fprev


def repair_structure(pos: np.ndarray, dimensions, source) -> np.ndarray:
    """A whole-system structure (a reference file) repaired as ``source`` repairs its
    frames: molecules whole, and kept together unless the mode is ``whole``.

    ``pos`` (n_atoms_total, 3) float64; ``dimensions`` its ``[a, b, c, alpha, beta,
    gamma]`` or None (then ``pos`` is returned as it is).
    """
    rep = getattr(source, "_repair", None)
    if rep is None or dimensions is None or not np.all(np.asarray(dimensions)[:3] > 0):
        return pos
    mode = "whole" if rep.mode == "whole" else "cluster"
    x = np.ascontiguousarray(pos[rep.plan.atoms][None], dtype=np.float64)
    Repair(mode, rep.plan).apply(x, box_rows(np.asarray(dimensions, np.float64), 1, 3), 0)
    out = np.array(pos, dtype=np.float64)
    out[rep.plan.atoms] = x[0]
    return out


# --------------------------------------------------------------------------- API


def _bond_array(bonds, n: int) -> np.ndarray | None:
    if bonds is None:
        return None
    if isinstance(bonds, str):
        if bonds != "chain":
            raise ParameterError(f"bonds {bonds!r} is not 'chain'", "give index pairs or 'chain'")
        from .internal import chain_tuples

        return chain_tuples(n, 2)
    b = np.asarray(bonds)
    if b.size == 0:
        return np.zeros((0, 2), np.int64)
    if b.ndim != 2 or b.shape[1] != 2 or not np.issubdtype(b.dtype, np.integer):
        raise ParameterError(
            f"bonds have shape {b.shape} and dtype {b.dtype}", "give (B, 2) integer index pairs"
        )
    return b.astype(np.int64)


def _repair_array(X, box, bonds, mode: str) -> np.ndarray:
    from ._validate import as_coords

    x = as_coords(X)
    f, n, d = x.shape
    h = box_rows(box, f, d)
    plan = plan_molecules(_bond_array(bonds, n), n, np.arange(n))
    # plan.atoms is every point, in order, so the padded C-ordered copy is the plan's
    # array as it is (indexing it with plan.atoms made a strided copy, for which Numba
    # compiled the repair's kernels a second time)
    y = pad3_float64(x)
    Repair(mode, plan).apply(y, h, 0)
    return np.ascontiguousarray(y[..., :d], dtype=x.dtype)


def make_whole(X: np.ndarray, box, bonds) -> np.ndarray:
    """Make every bonded molecule whole across the periodic boundary.

    Parameters
    ----------
    X : (F, N, D) float32 or float64, D = 2 or 3
        Coordinates (never modified).
    box : array_like
        ``[a, b, c, alpha, beta, gamma]`` (6,) or (F, 6) (degrees), box rows (3, 3) or
        (F, 3, 3), or 2D edges (2,) or (F, 2).
    bonds : (B, 2) int array or ``"chain"``
        Bonded point pairs; molecules are their connected components.

    Returns
    -------
    (F, N, D) ndarray, X's dtype
        Each molecule's root (its lowest point) stays; every other point moves by a
        lattice vector to the image nearest its parent. Computed in float64.
    """
    return _repair_array(X, box, bonds, "whole")


def cluster(X: np.ndarray, box, bonds=None) -> np.ndarray:
    """:func:`make_whole`, then molecules shifted by lattice vectors to stay together.

    Parameters and result as :func:`make_whole`; without ``bonds`` every point is its own
    molecule. The largest molecule stays where it is; the others join it one by one, the
    nearest (by the minimum image between their atoms) first.
    """
    return _repair_array(X, box, bonds, "cluster")


def nojump(X: np.ndarray, boxes, bonds=None) -> np.ndarray:
    """Remove jumps across the periodic boundary between consecutive frames.

    Parameters
    ----------
    X : (F, N, D) float32 or float64
        Wrapped coordinates (never modified).
    boxes : array_like
        One box for all frames or one per frame, as for :func:`make_whole`; a box that
        changes (NPT) is followed frame by frame.
    bonds : (B, 2) int array or ``"chain"``, optional
        With bonds, frame 0 is first made whole and clustered; without, frame 0 stays as
        it is (as MDAnalysis' ``NoJump``).

    Returns
    -------
    (F, N, D) ndarray, X's dtype
        ``X[t] + n_t @ H_t`` with integer images ``n_t`` that change by the rounded
        change of each point's fractional coordinates.
    """
    return _repair_array(X, boxes, bonds, "nojump")
