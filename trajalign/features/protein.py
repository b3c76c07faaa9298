"""Protein topology for features: residues, chains, peptide links, named torsions and
residue groups, resolved once from an MDAnalysis selection into index arrays and labels.

Everything here runs once per run, before any frame is read; the per-frame work is
:func:`trajalign.internal.dihedrals` (torsions) and :func:`trajalign.features.mindist`.

Numbering. Atom tuples count positions in the selection (``/trajalign/atom_indices``
numbering, as every feature's ``indices``); residues are 0-based topology residue indices
(``Residue.resindex``, what MDTraj calls ``residue.index`` on the same topology).

Chains. A chain is a run of consecutive residues (topology order) with the same segment
and, where the topology has chain IDs, the same chain ID: a PSF segment, a PDB chain, a
GROMACS molecule block. That is MDTraj's chain (PDB chain ID / TER, PSF segment). Labels
name a chain by its chain ID where the topology has a non-empty one, else by its segment.

Atom names. Torsions and schemes match atom names, never residue names (as MDTraj), with
these aliases from force fields whose names differ from the PDB's (MDTraj applies the
same ones when it reads a PDB with ``standard_names=True``):

- ``CD`` of ILE is ``CD1`` where the residue has no ``CD1`` (CHARMM, GROMOS): it gives
  ILE its chi2 (CA-CB-CG1-CD1).
- the amide hydrogen ``HN`` (CHARMM), ``H1``, ``1H``, ``HN1``, ``HT1`` are ``H``;
  ``OT1``, ``O1``, ``OC1``, ``OCT1`` are ``O``; ``OT2``, ``O2``, ``OC2``, ``OCT2``, ``OT`` are
  ``OXT``. These only decide what is backbone for the ``sidechain`` schemes.
"""

from __future__ import annotations

import itertools
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError, ParameterError, SelectionError

__all__ = [
    "TORSIONS",
    "SCHEMES",
    "ChainBreakWarning",
    "ProteinTopology",
    "torsion_indices",
    "torsions",
    "phi",
    "psi",
    "omega",
    "chi1",
    "chi2",
    "chi3",
    "chi4",
    "chi5",
]

# ------------------------------------------------------------------ definitions

#: Torsion name -> alternative atom patterns; each pattern is four ``(residue offset,
#: atom name)`` with the offset relative to the residue the torsion is labelled at.
#: Written from MDTraj's definitions (mdtraj/geometry/dihedral.py). A residue takes the
#: first pattern it has all atoms of (standard residues match at most one).
TORSIONS: dict[str, tuple[tuple[tuple[int, str], ...], ...]] = {
    "phi": (((-1, "C"), (0, "N"), (0, "CA"), (0, "C")),),
    "psi": (((0, "N"), (0, "CA"), (0, "C"), (1, "N")),),
    "omega": (((0, "CA"), (0, "C"), (1, "N"), (1, "CA")),),
    "chi1": tuple(
        ((0, "N"), (0, "CA"), (0, "CB"), (0, g))
        # CG (most), CG1 (ILE, VAL), SG (CYS), OG (SER), OG1 (THR)
        for g in ("CG", "CG1", "SG", "OG", "OG1")
    ),
    "chi2": tuple(
        ((0, "CA"), (0, "CB"), (0, g), (0, d))
        for g, d in (
            ("CG", "CD"),  # ARG, GLN, GLU, LYS, PRO
            ("CG", "CD1"),  # LEU, PHE, TRP, TYR
            ("CG1", "CD1"),  # ILE (CHARMM/GROMOS CD read as CD1)
            ("CG", "OD1"),  # ASN, ASP
            ("CG", "ND1"),  # HIS
            ("CG", "SD"),  # MET
        )
    ),
    "chi3": tuple(
        ((0, "CB"), (0, g), (0, d), (0, e))
        for g, d, e in (
            ("CG", "CD", "NE"),  # ARG
            ("CG", "CD", "CE"),  # LYS
            ("CG", "CD", "OE1"),  # GLN, GLU
            ("CG", "SD", "CE"),  # MET
        )
    ),
    "chi4": (
        ((0, "CG"), (0, "CD"), (0, "NE"), (0, "CZ")),  # ARG
        ((0, "CG"), (0, "CD"), (0, "CE"), (0, "NZ")),  # LYS
    ),
    "chi5": (((0, "CD"), (0, "NE"), (0, "CZ"), (0, "NH1")),),  # ARG
}
BACKBONE_TORSIONS = ("phi", "psi", "omega")

#: residue-group schemes of :meth:`ProteinTopology.groups` (MDTraj ``compute_contacts``)
SCHEMES = ("ca", "closest", "closest-heavy", "sidechain", "sidechain-heavy")

_ALIASES = {
    "HN": "H", "H1": "H", "1H": "H", "HN1": "H", "HT1": "H",
    "OT1": "O", "O1": "O", "OC1": "O", "OCT1": "O",
    "OT2": "OXT", "O2": "OXT", "OC2": "OXT", "OCT2": "OXT", "OT": "OXT",
}  # fmt: skip
# MDTraj's Atom.is_sidechain: a protein residue's atoms other than these
_BACKBONE_NAMES = frozenset({"N", "CA", "C", "O", "H", "HA"})
# C(i)-N(i+1) counts as a peptide bond within this distance where the topology has no bonds
PEPTIDE_BOND_MAX = 2.0


class ChainBreakWarning(UserWarning):
    """Two consecutive residues of a chain are not joined by a peptide bond."""


# -------------------------------------------------------------------- topology


@dataclass(frozen=True)
class ProteinTopology:
    """Residues of a selection, their chains and peptide links, resolved once.

    Build it with :meth:`from_atoms`. Residues are those with at least one selected atom,
    in topology order.

    Attributes
    ----------
    resindex : ndarray, shape (R,), int64
        Topology residue index of each residue.
    resnames, resids, chains : list of str, ndarray (R,) int64, list of str
        Name, number and chain label of each residue (labels).
    chain : ndarray, shape (R,), int64
        Chain number of each residue (0, 1, ... in topology order).
    offsets : ndarray, shape (R + 1,), int64
        Atoms of residue ``r`` are selection positions ``offsets[r]:offsets[r+1]`` of
        ``order``.
    order : ndarray, shape (N,), int64
        Selection positions sorted by residue (stable).
    names : ndarray, shape (N,), str
        Atom names of the selection after the aliases of the module docstring.
    hydrogen : ndarray, shape (N,), bool
    protein : ndarray, shape (R,), bool
        The residue has atoms named N, CA and C in the topology (selected or not).
    link : ndarray, shape (R,), bool
        ``link[r]``: residue ``r`` and ``r + 1`` are one chain and peptide-bonded
        (C(r)-N(r+1) among the topology's bonds, else within 2.0 A in the first frame).
    breaks : list of str
        One message per chain break (consecutive residues of a chain, both with their
        C / N selected, not bonded).
    """

    resindex: np.ndarray
    resnames: list
    resids: np.ndarray
    chains: list
    chain: np.ndarray
    chain_kind: str
    offsets: np.ndarray
    order: np.ndarray
    names: np.ndarray
    hydrogen: np.ndarray
    protein: np.ndarray
    link: np.ndarray
    breaks: list = field(default_factory=list)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_atoms(cls, atoms, positions=None, bonds=None) -> ProteinTopology:
        """Resolve an MDAnalysis AtomGroup.

        Parameters
        ----------
        atoms : MDAnalysis.core.groups.AtomGroup
            The selection, in the order its positions are numbered (unique atoms).
        positions : array_like, shape (N, 3), optional
            Coordinates of the selection in the first frame (Angstrom, molecules whole),
            for the peptide-bond distance test when the topology has no bonds; default
            ``atoms.positions``.
        bonds : array_like, shape (B, 2), int, optional
            The topology's bonds within the selection, in selection positions (what
            :attr:`Source.bonds` holds), to spare building MDAnalysis' bond group;
            default: the universe's bonds.

        Raises
        ------
        SelectionError
            An empty selection, or one that repeats an atom.
        """
        n = len(atoms)
        if n == 0:
            raise SelectionError("the selection is empty", "select some atoms with -s")
        idx = np.asarray(atoms.indices, dtype=np.int64)
        if np.unique(idx).size != n:
            raise SelectionError("the selection repeats an atom", "select each atom once")
        raw = np.asarray(atoms.names, dtype=object)
        resnames_atom = np.asarray(atoms.resnames).astype(str)
        res_atom = np.asarray(atoms.resindices, dtype=np.int64)
        order = np.argsort(res_atom, kind="stable").astype(np.int64)
        resindex, first, counts = np.unique(res_atom[order], return_index=True, return_counts=True)
        resindex = resindex.astype(np.int64)
        offsets = np.zeros(resindex.size + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(counts)
        first_atom = order[first]
        resnames = resnames_atom[first_atom].tolist()
        resids = np.asarray(atoms.universe.residues[resindex].resids, dtype=np.int64)
        # row of each selected atom in the residue table
        row = np.empty(n, dtype=np.int64)
        row[order] = np.repeat(np.arange(resindex.size), counts)
        names = _aliased(raw)  # object: "CD1" must fit
        # ILE CD -> CD1 where the residue has no CD1
        has_cd1 = np.bincount(row, weights=names == "CD1", minlength=resindex.size) > 0
        is_ile = resnames_atom == "ILE"
        names[(names == "CD") & is_ile & ~has_cd1[row]] = "CD1"
        names = names.astype(str)
        protein = _protein_residues(atoms.universe, resindex)
        hydrogen = _hydrogens(atoms, raw)
        # one value per residue, taken before the conversion to str (3341 atoms, 214
        # residues for adenylate kinase)
        segids = np.asarray(atoms.segids)[first_atom].astype(str)
        chain_ids = None
        if hasattr(atoms, "chainIDs"):
            c = np.asarray(atoms.chainIDs)[first_atom].astype(str)
            if np.all(np.char.strip(c) != ""):
                chain_ids = c
        other = chain_ids if chain_ids is not None else segids
        new_chain = (segids[1:] != segids[:-1]) | (other[1:] != other[:-1])
        chain = np.concatenate([[0], np.cumsum(new_chain)]).astype(np.int64)
        chains = [str(s).strip() for s in other]
        chain_kind = "chain" if chain_ids is not None else "segment"

        x0 = np.asarray(atoms.positions if positions is None else positions, dtype=np.float64)
        if x0.shape != (n, 3):
            raise SelectionError(
                f"positions have shape {x0.shape}, not ({n}, 3) for {n} selected atoms",
                "give the first frame's coordinates of the selection",
            )
        c_at = _named(order, offsets, names, "C")
        n_at = _named(order, offsets, names, "N")
        link = np.zeros(resindex.size, dtype=bool)
        candidates = np.flatnonzero(
            (chain[:-1] == chain[1:]) & (c_at[:-1] >= 0) & (n_at[1:] >= 0)
        ).astype(np.int64)
        bonded = _bonded(atoms, idx, c_at[candidates], n_at[candidates + 1], bonds)
        if bonded is None:
            d = np.linalg.norm(x0[n_at[candidates + 1]] - x0[c_at[candidates]], axis=1)
            bonded = d <= PEPTIDE_BOND_MAX
        link[candidates] = bonded
        top = cls(
            resindex=resindex,
            resnames=resnames,
            resids=resids,
            chains=chains,
            chain=chain,
            chain_kind=chain_kind,
            offsets=offsets,
            order=order,
            names=names,
            hydrogen=hydrogen,
            protein=protein,
            link=link,
        )
        for r in candidates[~bonded]:
            top.breaks.append(
                f"chain break between {top.residue_label(r, chain=False)} and "
                f"{top.residue_label(r + 1, chain=False)} ({chain_kind} {chains[r]}): "
                "phi/psi/omega there left out"
            )
        return top

    # ----------------------------------------------------------------- labels
    @property
    def n_residues(self) -> int:
        return int(self.resindex.size)

    def residue_label(self, r: int, chain: bool = True) -> str:
        """``"ALA 2 A"``: residue name, number and chain label of residue ``r``."""
        text = f"{self.resnames[r]} {self.resids[r]}"
        return f"{text} {self.chains[r]}" if chain and self.chains[r] else text

    def _atoms(self, r: int) -> np.ndarray:
        """Selection positions of the atoms of residue ``r``."""
        return self.order[self.offsets[r] : self.offsets[r + 1]]

    def _unique(self, labels: list[str], rows: np.ndarray) -> list[str]:
        """Labels made unique: repeated ones (same number in two chains that share a
        label, insertion codes) get the topology residue index appended."""
        seen: dict[str, int] = {}
        for s in labels:
            seen[s] = seen.get(s, 0) + 1
        out = []
        for s, r in zip(labels, rows, strict=True):
            out.append(s if seen[s] == 1 else f"{s} #{r}")
        return out

    # --------------------------------------------------------------- torsions
    def torsions(self, name: str) -> tuple[np.ndarray, list[str]]:
        """Atom quadruplets and labels of one named torsion.

        Parameters
        ----------
        name : str
            One of :data:`TORSIONS` (``phi``, ``psi``, ``omega``, ``chi1`` ... ``chi5``).

        Returns
        -------
        indices : ndarray, shape (K, 4), int64
            Selection positions, one row per residue that has the torsion, in residue
            order; a torsion over two residues only where they are peptide-bonded.
        labels : list of str, length K
            ``"phi ALA 2 A"``: torsion name, residue name, number and chain.

        Raises
        ------
        ParameterError
            An unknown name.
        SelectionError
            The selection has no residue with atoms named N, CA and C (no protein).
        """
        key = str(name).lower()
        if key not in TORSIONS:
            raise ParameterError(f"unknown torsion {name!r}", f"choose from {', '.join(TORSIONS)}")
        patterns = TORSIONS[key]
        named: dict[str, np.ndarray] = {}

        def at(atom: str) -> np.ndarray:
            if atom not in named:
                named[atom] = _named(self.order, self.offsets, self.names, atom)
            return named[atom]

        # no protein at all is an error; a protein without the torsion (chi5 without
        # ARG) gives no columns
        if not np.any((at("N") >= 0) & (at("CA") >= 0) & (at("C") >= 0)):
            raise SelectionError(
                f"{key} needs atoms named N, CA, C: the selection has none",
                "use --features dihedrals with --pairs FILE for other molecules",
            )
        n_res = self.n_residues
        r = np.arange(n_res)
        quads = np.full((n_res, 4), -1, dtype=np.int64)
        for pat in patterns:
            todo = quads[:, 0] < 0
            cand = np.empty((n_res, 4), dtype=np.int64)
            ok = todo.copy()
            for k, (off, atom) in enumerate(pat):
                q = r + off
                inside = (q >= 0) & (q < n_res)
                qc = np.clip(q, 0, n_res - 1)
                # a neighbour counts only across a peptide bond of the same chain
                if off < 0:
                    inside &= self.link[qc]
                elif off > 0:
                    inside &= self.link
                cand[:, k] = np.where(inside, at(atom)[qc], -1)
                ok &= cand[:, k] >= 0
            quads[ok] = cand[ok]
        res = np.flatnonzero(quads[:, 0] >= 0)
        rows = quads[res]
        indices = np.ascontiguousarray(rows, dtype=np.int64).reshape(-1, 4)
        labels = self._unique(
            [f"{key} {self.residue_label(i)}" for i in res.tolist()], self.resindex[res]
        )
        return indices, labels

    # ----------------------------------------------------------------- groups
    def groups(self, scheme: str = "closest-heavy") -> list[np.ndarray]:
        """Atoms of each residue under a mindist scheme (MDTraj ``compute_contacts``).

        Parameters
        ----------
        scheme : {"ca", "closest", "closest-heavy", "sidechain", "sidechain-heavy"}
            ``ca``: the atom named CA; ``closest``: every selected atom; ``closest-heavy``:
            every non-hydrogen; ``sidechain``: atoms of a protein residue other than N,
            CA, C, O, H, HA (so OXT and N-terminal H2/H3 count, as in MDTraj);
            ``sidechain-heavy``: those without hydrogens, except GLY, which keeps its
            HA2/HA3 (it has no heavy side-chain atom; MDTraj does the same).

        Returns
        -------
        list of ndarray, length R
            Selection positions (int64) of each residue's group; may be empty.

        Raises
        ------
        ParameterError
            An unknown scheme.
        SelectionError
            ``ca`` and a residue with more than one selected atom named CA.
        """
        s = str(scheme).lower()
        if s not in SCHEMES:
            raise ParameterError(f"unknown scheme {scheme!r}", f"choose from {', '.join(SCHEMES)}")
        out = []
        for r in range(self.n_residues):
            pos = self.order[self.offsets[r] : self.offsets[r + 1]]
            nm = self.names[pos]
            if s == "ca":
                keep = nm == "CA"
                if keep.sum() > 1:
                    raise SelectionError(
                        f"residue {self.residue_label(r)} has {int(keep.sum())} atoms named CA",
                        "use another --scheme, or select one CA per residue",
                    )
            elif s == "closest":
                keep = np.ones(pos.size, dtype=bool)
            elif s == "closest-heavy":
                keep = ~self.hydrogen[pos]
            else:
                keep = ~np.isin(nm, list(_BACKBONE_NAMES)) & self.protein[r]
                if s == "sidechain-heavy" and self.resnames[r] != "GLY":
                    keep &= ~self.hydrogen[pos]
            out.append(np.ascontiguousarray(pos[keep], dtype=np.int64))
        return out

    def residue_pairs(
        self, spec: str | os.PathLike = "all", groups: list[np.ndarray] | None = None
    ) -> np.ndarray:
        """Residue pairs for mindist, as rows of this table (0 ... R-1).

        Parameters
        ----------
        spec : "all" or path
            ``all``: every pair ``i < j`` of residues that have a selected atom named CA
            (MDTraj's test for a protein residue) and, given ``groups``, a non-empty
            group, with ``resindex[j] - resindex[i] >= 3`` within a chain plus every
            inter-chain pair (MDTraj's ``all`` leaves inter-chain pairs out). A path: a
            text file of two 0-based topology residue indices per line (spaces, tabs or
            commas; ``#`` starts a comment), the order of the columns kept.
        groups : list of ndarray, optional
            From :meth:`groups`; a file pair with an empty group is an error.

        Returns
        -------
        ndarray, shape (K, 2), int64
            Rows of this table; ``resindex[pairs]`` are topology residue indices.
        """
        if isinstance(spec, str) and spec.lower() == "all":
            is_ca = _upper_is(self.names, "CA")[self.order]
            ok = np.add.reduceat(is_ca, self.offsets[:-1]) > 0 if is_ca.size else is_ca
            if groups is not None:
                ok &= np.array([g.size > 0 for g in groups], dtype=bool)
            rows = np.flatnonzero(ok)
            i, j = np.triu_indices(rows.size, 1)
            a, b = rows[i], rows[j]
            keep = (self.chain[a] != self.chain[b]) | (self.resindex[b] - self.resindex[a] >= 3)
            pairs = np.stack([a[keep], b[keep]], axis=1).astype(np.int64)
            if pairs.shape[0] == 0:
                raise SelectionError(
                    "--residue-pairs all gives no residue pairs: the selection needs protein "
                    "residues at least 3 apart in a chain, or in two chains",
                    "select more residues with -s",
                )
            return pairs
        return self._read_pairs(os.fspath(spec), groups)

    def _read_pairs(self, path: str, groups) -> np.ndarray:
        if not os.path.isfile(path):
            raise InputError(f"--residue-pairs {path}: no such file", "give all or a file")
        row_of = {int(r): k for k, r in enumerate(self.resindex)}
        rows: list[tuple[int, int]] = []
        seen: set[tuple[int, int]] = set()
        with open(path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                text = line.split("#", 1)[0].replace(",", " ").split()
                if not text:
                    continue
                where = f"{path} line {lineno}"
                try:
                    vals = [int(t) for t in text]
                except ValueError:
                    raise InputError(
                        f"{where}: {' '.join(text)!r} is not residue indices",
                        "write two 0-based topology residue indices per line",
                    ) from None
                if len(vals) != 2:
                    raise InputError(
                        f"{where} has {len(vals)} columns",
                        "write two 0-based topology residue indices per line",
                    )
                for v in vals:
                    if v not in row_of:
                        raise InputError(
                            f"{where}: residue {v} has no selected atom",
                            "use 0-based topology residue indices of selected residues",
                        )
                    if groups is not None and groups[row_of[v]].size == 0:
                        raise InputError(
                            f"{where}: residue {self.residue_label(row_of[v])} has no atoms "
                            "in this scheme",
                            "choose another --scheme or drop the pair",
                        )
                if vals[0] == vals[1]:
                    raise InputError(f"{where} pairs a residue with itself", "give two residues")
                key = (min(vals), max(vals))
                if key in seen:
                    raise InputError(f"{where} repeats a pair", "give each pair once")
                seen.add(key)
                rows.append((row_of[vals[0]], row_of[vals[1]]))
        if not rows:
            raise InputError(f"{path} holds no residue pairs", "write one pair per line")
        return np.array(rows, dtype=np.int64)

    def pair_labels(self, pairs: np.ndarray, scheme: str) -> list[str]:
        """``"mindist LYS 12 A - GLU 87 A (closest-heavy)"`` for each row of ``pairs``."""
        rows = np.asarray(pairs).tolist()
        # one text per residue, not per pair (22366 pairs of adenylate kinase)
        res = [self.residue_label(r) for r in range(self.n_residues)]
        lab = [f"mindist {res[a]} - {res[b]} ({scheme})" for a, b in rows]
        if len(set(lab)) == len(lab):
            return lab
        ri = self.resindex.tolist()
        return self._unique(lab, [f"{ri[a]}-{ri[b]}" for a, b in rows])


# ---------------------------------------------------------------------- helpers


def _aliased(raw: np.ndarray) -> np.ndarray:
    """Atom names after :data:`_ALIASES`, as an object array (so that a longer name such
    as "CD1" can be put in later). A dict look-up per atom in a list costs less than
    sorting the names for np.unique."""
    return np.array([_ALIASES.get(s, s) for s in raw.tolist()] or [], dtype=object)


def _protein_residues(universe, resindex: np.ndarray) -> np.ndarray:
    """Whether each residue has atoms named N, CA and C in the topology (selected or
    not), aliases applied."""
    atoms = universe.residues[resindex].atoms  # the residues' atoms only, not the solvent
    every = _aliased(np.asarray(atoms.names, dtype=object))
    # resindex is sorted and unique (np.unique): the row of each atom's residue
    res = np.searchsorted(resindex, np.asarray(atoms.resindices, dtype=np.int64))
    ok = np.ones(resindex.size, dtype=bool)
    for atom in ("N", "CA", "C"):
        ok &= np.bincount(res, weights=every == atom, minlength=resindex.size) > 0
    return ok


def _named(order, offsets, names, atom: str) -> np.ndarray:
    """Selection position of the atom called ``atom`` in each residue, -1 if none."""
    out = np.full(offsets.size - 1, -1, dtype=np.int64)
    hit = np.flatnonzero(names[order] == atom)
    res = np.searchsorted(offsets, hit, side="right") - 1
    # the first such atom of a residue
    out[res[::-1]] = order[hit[::-1]]
    return out


def _bonded(atoms, idx, c_pos, n_pos, sel_bonds=None) -> np.ndarray | None:
    """Whether atoms ``idx[c_pos[k]]`` and ``idx[n_pos[k]]`` are bonded in the topology;
    None where the topology has no bonds. ``sel_bonds``: the bonds within the selection
    (selection positions), given by the caller."""
    if sel_bonds is not None:
        b = np.asarray(sel_bonds, dtype=np.int64).reshape(-1, 2)
        return _pair_in(b, c_pos, n_pos, idx.size) if b.size else None
    bonds = _universe_bonds(atoms.universe)
    if bonds is None or len(bonds) == 0:
        return None
    b = np.asarray(bonds, dtype=np.int64)
    return _pair_in(b, idx[c_pos], idx[n_pos], int(max(b.max(), idx.max())) + 1)


def _upper_is(names: np.ndarray, text: str) -> np.ndarray:
    """``names.upper() == text`` per element, one upper() per distinct name."""
    uniq, inv = np.unique(np.asarray(names).astype(str), return_inverse=True)
    return np.array([s.upper() == text for s in uniq.tolist()], dtype=bool)[inv.reshape(-1)]


def _universe_bonds(universe) -> np.ndarray | None:
    """The topology's bonds as (B, 2) atom indices, in no particular order (only
    membership is asked). ``universe.bonds`` builds a sorted bond group on every access
    (60 ms for adenylate kinase's PSF, 0.7 s for its TPR), so the topology's own list is
    read where MDAnalysis has it, the public group otherwise."""
    raw = getattr(getattr(universe, "_topology", None), "bonds", None)
    values = getattr(raw, "values", None)
    if values is not None:
        flat = itertools.chain.from_iterable(values)
        return np.fromiter(flat, dtype=np.int64, count=2 * len(values)).reshape(-1, 2)
    try:
        return np.asarray(universe.bonds.indices, dtype=np.int64).reshape(-1, 2)
    except Exception:  # noqa: BLE001 - MDAnalysis raises NoDataError for absent bonds
        return None


def _pair_in(bonds: np.ndarray, ci: np.ndarray, ni: np.ndarray, n_all: int) -> np.ndarray:
    """Whether each (ci[k], ni[k]) is a row of ``bonds`` (either order)."""
    key = np.minimum(bonds[:, 0], bonds[:, 1]) * n_all + np.maximum(bonds[:, 0], bonds[:, 1])
    want = np.minimum(ci, ni) * n_all + np.maximum(ci, ni)
    return np.isin(want, key)


def _hydrogens(atoms, raw_names: np.ndarray) -> np.ndarray:
    """Hydrogen flags: the topology's elements where it has them, else the name (first
    letter after leading digits is H, as MDTraj guesses elements from PDB names)."""
    names = [str(s) for s in raw_names.tolist()]
    # one test per distinct name or element (a protein has a few dozen)
    by_name = {s: s.lstrip("0123456789")[:1].upper() == "H" for s in set(names)}
    from_name = np.fromiter((by_name[s] for s in names), dtype=bool, count=len(names))
    if hasattr(atoms, "elements"):
        elements = [str(e).strip().upper() for e in np.asarray(atoms.elements).tolist()]
        # an empty element is unknown: the name decides
        return np.array(
            [e == "H" if e else h for e, h in zip(elements, from_name.tolist(), strict=True)],
            dtype=bool,
        )
    return from_name


# --------------------------------------------------------------------- public


def torsion_indices(atoms, name: str, positions=None, warn: bool = True):
    """Atom quadruplets and labels of a named protein torsion in a selection.

    Parameters
    ----------
    atoms : MDAnalysis.core.groups.AtomGroup
        The selection; quadruplets count its atoms from 0.
    name : str
        ``phi``, ``psi``, ``omega`` (labelled at residue i: CA C N(i+1) CA(i+1)) or
        ``chi1`` ... ``chi5``, with MDTraj's atom definitions and the aliases of
        :mod:`trajalign.features.protein` (CHARMM/GROMOS ILE ``CD`` as ``CD1``).
    positions : array_like, shape (N, 3), optional
        First-frame coordinates (whole molecules) for the peptide-bond test where the
        topology has no bonds; default ``atoms.positions``.
    warn : bool
        Issue a :class:`ChainBreakWarning` per chain break that leaves a backbone torsion
        out.

    Returns
    -------
    indices : ndarray, shape (K, 4), int64
        Feed them to :func:`trajalign.dihedrals` (radians in (-pi, pi], IUPAC sign).
    labels : list of str, length K
        ``"phi ALA 2 A"``, unique.

    Raises
    ------
    ParameterError
        An unknown torsion name.
    SelectionError
        The selection has no atoms of the names the torsion needs (no protein).

    Examples
    --------
    >>> quads, labels = torsion_indices(u.select_atoms("protein"), "phi")  # doctest: +SKIP
    >>> phi = trajalign.dihedrals(X, quads)  # doctest: +SKIP
    """
    top = ProteinTopology.from_atoms(atoms, positions)
    indices, labels = top.torsions(name)
    if warn and str(name).lower() in BACKBONE_TORSIONS:
        for msg in top.breaks:
            warnings.warn(msg, ChainBreakWarning, stacklevel=2)
    return indices, labels


def torsions(X, atoms, name: str, box=None, warn: bool = True):
    """Values and labels of a named protein torsion over a trajectory.

    Parameters
    ----------
    X : array_like, shape (F, N, 3), float32 or float64
        Coordinates of the selection ``atoms`` (N atoms, in its order). Not modified.
    atoms : MDAnalysis.core.groups.AtomGroup
        The selection.
    name : str
        As for :func:`torsion_indices`.
    box : array_like, optional
        Periodic cell, as for :func:`trajalign.dihedrals` (every bond vector takes the
        minimum image); leave it out for whole molecules.
    warn : bool
        Warn once per chain break (:class:`ChainBreakWarning`).

    Returns
    -------
    values : ndarray, shape (F, K), dtype of ``X``
        Radians in (-pi, pi], IUPAC sign; equal to MDTraj's ``compute_phi`` etc.
    labels : list of str, length K
    """
    from ..internal import dihedrals

    x = np.asarray(X)
    if x.ndim != 3 or x.shape[1] != len(atoms):
        raise SelectionError(
            f"X has shape {x.shape}, not (frames, {len(atoms)}, 3) for the selection",
            "pass the coordinates of the selected atoms",
        )
    top = ProteinTopology.from_atoms(atoms, x[0])
    quads, labels = top.torsions(name)
    if warn and str(name).lower() in BACKBONE_TORSIONS:
        for msg in top.breaks:
            warnings.warn(msg, ChainBreakWarning, stacklevel=2)
    return dihedrals(x, quads, box), labels


def _named_torsion(name: str):
    def feature(X, atoms, box=None):
        return torsions(X, atoms, name, box)

    feature.__name__ = feature.__qualname__ = name
    feature.__doc__ = f"""{name} of every residue of a protein selection.

    ``{name}(X, atoms, box=None)`` is ``torsions(X, atoms, "{name}", box)``: returns
    ``(values (F, K) radians, labels)``; see :func:`torsions` and :data:`TORSIONS`.
    """
    return feature


phi = _named_torsion("phi")
psi = _named_torsion("psi")
omega = _named_torsion("omega")
chi1 = _named_torsion("chi1")
chi2 = _named_torsion("chi2")
chi3 = _named_torsion("chi3")
chi4 = _named_torsion("chi4")
chi5 = _named_torsion("chi5")
