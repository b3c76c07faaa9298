"""The reader interface: :class:`SourceSpec` (plain values to reopen a source anywhere),
:class:`Block` (frames read) and :class:`Source` (the base class of the readers in
:mod:`trajalign.io.arrays` and :mod:`trajalign.io.sources`), with the helpers both kinds
of reader share: frame slices, index lists, readable paths, bonds within a selection.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import DataError, InputError, ParameterError, SelectionError

__all__ = [
    "ARRAY_SUFFIXES",
    "Block",
    "Source",
    "SourceSpec",
    "check_readable",
    "frame_slice",
    "parse_index_list",
    "restrict_bonds",
]

ARRAY_SUFFIXES = (".npy", ".npz")


@dataclass(frozen=True)
class SourceSpec:
    """Everything needed to open a source again, in another process if need be."""

    paths: tuple[str, ...]
    top: str | None = None
    select: str = "all"
    key: str | None = None
    masses: str | None = None
    length_unit: str | None = None
    start: int | None = None
    stop: int | None = None
    step: int | None = None
    dt: float | None = None
    aux_select: str | None = None
    guess_bonds: bool = False
    pbc: str = "auto"
    box: str | None = None
    bonds: str | None = None
    #: the XTC reader: ``native`` (trajalign's, :mod:`trajalign.io.xtc`) or
    #: ``mdanalysis``; resolved when the source is opened, so workers inherit it
    xtc_reader: str = "native"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Block:
    """Frames ``[start, stop)`` of a source.

    coords : (b, N, D) float32; box : (b, 6) float64 ``[a, b, c, alpha, beta, gamma]``
    or None; times : (b,) float64 in ps; frames : (b,) int64 source frame indices;
    aux : (b, M, D) float32 coordinates of the ``aux_select`` atoms (for example the fit
    atoms of a superposition, which need not be among the written ones) or None.
    """

    start: int
    coords: np.ndarray
    times: np.ndarray
    frames: np.ndarray
    box: np.ndarray | None = None
    aux: np.ndarray | None = None
    repair: dict | None = None


@dataclass
class Source:
    """Base class of the readers; see :func:`open_source`."""

    spec: SourceSpec
    kind: str = ""
    n_points: int = 0
    dim: int = 3
    n_atoms_total: int = 0
    frame_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    atom_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    masses: np.ndarray | None = None
    bonds: np.ndarray | None = None
    aux_indices: np.ndarray | None = None
    aux_masses: np.ndarray | None = None
    has_box: bool = False
    length_unit: str = "Angstrom"
    dt: float = 1.0
    total_frames: int = 0
    #: the periodic repair applied (``whole``, ``cluster``, ``nojump``) or ``none``
    pbc_mode: str = "none"
    #: molecule number of each selected point where molecules were made whole, else None
    molecules: np.ndarray | None = None
    _repair: object = None
    _check_split: bool = False
    _several_molecules: bool = False
    #: (start, stop) of the block the caller reads after the next read (see expect)
    _expected: tuple[int, int] | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frame_indices.size)

    def expect(self, start: int | None, stop: int | None) -> None:
        """Say which block ``[start, stop)`` comes after the next :meth:`read` (None:
        the next in order). A reader that decodes ahead (XTC) decodes that one; a
        worker handed blocks out of order would otherwise wait for a wrong guess."""
        self._expected = None if start is None else (int(start), int(stop))

    def read(self, start: int, stop: int) -> Block:
        """Frames ``[start, stop)``: the selection (and ``aux``), periodic repair done."""
        if self._repair is None:
            block = self._read_plain(start, stop)
            if self._check_split and block.box is not None:
                block.repair = {"spread_frames": self._count_spread(block)}
            return block
        frames = self._check_block(start, stop)
        x, times, box = self._read_raw(frames)
        h = self._box_rows(box, frames.size)
        block_repair = self._repair.apply(x, h, start, self._scan)
        if self._several_molecules and self.pbc_mode == "whole":
            # whole molecules may still sit in different images: say so, cluster fixes it
            block_repair["apart_frames"] = self._repair.count_apart(x, h)
        coords = self._take(x, self._sel_pos)
        aux = None if self.aux_indices is None else self._take(x, self._aux_pos)
        return Block(start, coords, times, frames, box=box, aux=aux, repair=block_repair)

    def _take(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """The rows ``pos`` of repaired coordinates as a C-ordered float32 block."""
        if (
            x.shape[-1] == self.dim
            and pos.size == x.shape[1]
            and np.all(pos == np.arange(pos.size))
        ):
            return x  # the selection is every repaired atom (a protein, say): no copy
        # C order: the kernels reshape rows (advanced indexing may return another layout)
        return np.ascontiguousarray(x[:, pos, : self.dim], dtype=np.float32)

    def _read_plain(self, start: int, stop: int) -> Block:  # pragma: no cover - abstract
        raise NotImplementedError

    def _read_atoms(self, frames: np.ndarray, idx: np.ndarray):  # pragma: no cover
        """(positions (b, len(idx), D) float32, times (b,), box or None) of ``frames``."""
        raise NotImplementedError

    def _read_raw(self, frames: np.ndarray):
        """float32 positions of the repaired atoms (2D padded to 3D in float64)."""
        from ..pbc import pad3_float64

        pos, times, box = self._read_atoms(frames, self._repair.plan.atoms)
        return (pos if pos.shape[-1] == 3 else pad3_float64(pos)), times, box

    def _scan(self, a: int, b: int):
        """Raw (unrepaired) frames ``[a, b)`` and their box rows, for nojump's state."""
        frames = self._check_block(a, b)
        x, _, box = self._read_raw(frames)
        return x, self._box_rows(box, frames.size)

    def _box_rows(self, box, n: int) -> np.ndarray:
        from ..box import box_rows

        if box is None:
            raise DataError(
                f"{self.spec.paths[0]} has frames without a periodic box",
                "use --pbc none for a trajectory without boxes",
            )
        return box_rows(box, n, self.dim)

    def _count_spread(self, block: Block) -> int:
        """Frames whose selection spans more than half the box, or has a bond longer
        than half the box: it may be split across the periodic boundary."""
        from ..box import inverse_rows
        from ..kernels.pbc import split_suspect
        from ..pbc import SPREAD_LIMIT, pad3_float64

        n = block.coords.shape[0]
        h = np.broadcast_to(self._box_rows(block.box, n), (n, 3, 3))
        x = block.coords if block.coords.shape[-1] == 3 else pad3_float64(block.coords)
        use = self.bonds if self.bonds is not None else np.zeros((0, 2), np.int64)
        bad = np.zeros(n, np.bool_)
        hinv = np.ascontiguousarray(inverse_rows(h))
        split_suspect(x, hinv, np.ascontiguousarray(use), SPREAD_LIMIT, bad)
        return int(np.count_nonzero(bad))

    def nojump_anchors(self, starts) -> dict:
        """nojump's state before each block start (a pass over the frames), for tasks
        that run on other processes; {} for any other repair."""
        from ..pbc import Repair

        if self._repair is None or self._repair.mode != "nojump":
            return {}
        rep = Repair("nojump", self._repair.plan)
        anchors = {}
        for end in sorted({int(s) for s in starts if s > 0}):
            images, fprev = rep._state_at(end, self._scan)
            anchors[end] = (images.copy(), fprev.copy())
            rep.set_anchor(end, anchors[end])  # the next end replays from here
        return anchors

    def _setup_pbc(self, all_bonds: np.ndarray | None) -> None:
        """Choose the repair (``--pbc``) from the box and bonds the input has."""
        from ..pbc import CHECK_MAX_PAIRS, PBC_MODES, Repair

        mode = self.spec.pbc or "auto"
        if mode not in PBC_MODES:
            raise ParameterError(f"--pbc {mode} is unknown", f"use one of {', '.join(PBC_MODES)}")
        bonded = all_bonds is not None and len(all_bonds) > 0
        if not self.has_box:
            if mode not in ("auto", "none"):
                raise ParameterError(
                    f"--pbc {mode} needs a periodic box, and {self.spec.paths[0]} has none",
                    "drop --pbc, or give an array's box with --box",
                )
            return
        no_bonds = (
            "give a topology with bonds (TPR, PSF, PDB with CONECT), --guess-bonds, "
            "or for arrays --bonds FILE|chain"
        )
        if mode == "auto":
            mode = "whole" if bonded else "none"
        if mode == "none":
            self._check_split = True
            return
        if mode in ("whole", "cluster") and not bonded:
            raise ParameterError(f"--pbc {mode} needs bonds, and the input has none", no_bonds)
        needed = self.atom_indices
        if self.aux_indices is not None:
            needed = np.union1d(needed, self.aux_indices)
        plan = _plan(all_bonds if bonded else None, self.n_atoms_total, needed)
        self._repair = Repair(mode, plan)
        self.pbc_mode = mode
        self._sel_pos = plan.positions(self.atom_indices)
        if self.aux_indices is not None:
            self._aux_pos = plan.positions(self.aux_indices)
        if plan.bonded:
            self.molecules = plan.mol[self._sel_pos]
            # the check of whole molecules in different images costs a cluster pass
            self._several_molecules = (
                np.unique(self.molecules).size > 1 and plan.cluster_pairs() <= CHECK_MAX_PAIRS
            )

    def topology_tuples(self, attr: str) -> np.ndarray | None:
        """Atom tuples a topology lists (``bonds``, ``angles``, ``dihedrals``); None for
        inputs without a topology."""
        return None

    def resolve(self, selection: str) -> np.ndarray:  # pragma: no cover - abstract
        """Indices (in the files' atom numbering) of the atoms ``selection`` picks."""
        raise NotImplementedError

    def _set_aux(self, all_masses: np.ndarray | None) -> None:
        if self.spec.aux_select is not None:
            self.aux_indices = self.resolve(self.spec.aux_select)
            if all_masses is not None:
                self.aux_masses = np.asarray(all_masses, dtype=np.float64)[self.aux_indices]

    def close(self) -> None:
        """Release open files (the source can still be reopened from ``spec``)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_block(self, start: int, stop: int) -> np.ndarray:
        if not 0 <= start <= stop <= self.n_frames:
            raise IndexError(f"block [{start}, {stop}) outside 0..{self.n_frames}")
        return self.frame_indices[start:stop]


#: the last molecule plan: (bonds array, atoms, needed atoms, plan)
_LAST_PLAN: list = []


def _plan(bonds: np.ndarray | None, n_atoms: int, needed: np.ndarray):
    """:func:`trajalign.pbc.plan_molecules`, kept for the next input of a dataset with
    the same (cached, read-only) bonds array and atoms: 0.2 s per input saved on a
    solvated protein."""
    from ..pbc import plan_molecules

    key = (n_atoms, needed.tobytes())
    if _LAST_PLAN and _LAST_PLAN[0] is bonds and bonds is not None and _LAST_PLAN[1] == key:
        return _LAST_PLAN[2]
    plan = plan_molecules(bonds, n_atoms, needed)
    if bonds is not None and not bonds.flags.writeable:  # only a cached topology's bonds
        _LAST_PLAN[:] = [bonds, key, plan]
    return plan


def check_readable(path: str) -> None:
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file", "check the path")
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder, not a file", "name a trajectory file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied", "make the file readable")
    if os.path.getsize(path) == 0:
        raise InputError(
            f"{path}: is empty (0 bytes)", "check that the file was written, or write it again"
        )


def frame_slice(total: int, start, stop, step) -> np.ndarray:
    """Source frame indices selected by ``start:stop:step`` of ``total`` frames."""
    if step is not None and step <= 0:
        raise ParameterError(
            f"--step {step} is not positive", "use a step of 1 or more; frames run forward"
        )
    idx = np.arange(total, dtype=np.int64)[slice(start, stop, step)]
    if idx.size == 0:
        raise ParameterError(
            f"the frame slice start={start} stop={stop} step={step} selects no frames of {total}",
            f"choose --start/--stop within 0..{total}",
        )
    return idx


_INDEX_ITEM = re.compile(r"^\s*(-?\d+)\s*(?:(?:-|:)\s*(-?\d+)\s*)?$")


def parse_index_list(text: str, n: int) -> np.ndarray:
    """Parse ``all`` or ``0-11,14,20:22`` (inclusive ranges) into indices below ``n``."""
    t = text.strip()
    if t.lower().startswith("index "):
        t = t[6:]
    if t.lower() == "all":
        return np.arange(n, dtype=np.int64)
    out: list[int] = []
    for item in re.split(r"[,\s]+", t.strip()):
        if not item:
            continue
        m = _INDEX_ITEM.match(item)
        if not m:
            raise SelectionError(
                f"cannot read point selection {text!r}",
                "for arrays give indices and inclusive ranges such as 0-11,14",
            )
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a:
            raise SelectionError(f"range {item} runs backwards", "write ranges as low-high")
        out.extend(range(a, b + 1))
    idx = np.asarray(out, dtype=np.int64)
    if idx.size == 0:
        raise SelectionError(f"point selection {text!r} is empty", "select at least one point")
    bad = idx[(idx < 0) | (idx >= n)]
    if bad.size:
        raise SelectionError(
            f"point index {bad[0]} in selection {text!r} is out of range for {n} points",
            f"use indices 0 to {n - 1}",
        )
    if np.unique(idx).size != idx.size:
        dup = idx[np.flatnonzero(np.bincount(idx) > 1)[0] == idx][0]
        raise SelectionError(f"point {dup} is selected twice in {text!r}", "list every point once")
    return idx


def restrict_bonds(pairs: np.ndarray, atom_indices: np.ndarray) -> np.ndarray | None:
    """Bonds with both atoms selected, renumbered to positions in ``atom_indices``."""
    pos = np.full(int(max(pairs.max(), atom_indices.max())) + 1, -1, dtype=np.int64)
    pos[atom_indices] = np.arange(atom_indices.size)
    mapped = pos[np.asarray(pairs, dtype=np.int64)]
    keep = np.all(mapped >= 0, axis=1)
    return mapped[keep] if keep.any() else None
