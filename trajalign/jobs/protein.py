"""Protein features of ``trajalign internal``: named torsions, residue minimum distances
and contacts, resolved once per run from the source's topology
(:class:`trajalign.features.ProteinTopology`) into index arrays, a mindist plan and labels.

The per-block work stays in :class:`trajalign.jobs.internal.InternalJob`: torsions go
through the same dihedral path as ``--features dihedrals`` (whole molecules measured
directly, tuples across molecules by the minimum image), mindist through
:meth:`trajalign.features.MindistPlan.compute`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError, SelectionError
from ..features.mindist import CONTACT_TRANSFORMS, MindistPlan, mindist_plan
from ..features.protein import SCHEMES, TORSIONS, ProteinTopology

__all__ = [
    "CONTACT_TRANSFORMS",
    "PROTEIN_FEATURES",
    "SCHEMES",
    "TORSION_FEATURES",
    "MindistSetup",
    "check_contact_options",
    "mindist_setup",
    "protein_topology",
    "protein_tuples",
    "torsion_tuples",
]

TORSION_FEATURES = tuple(TORSIONS)
PROTEIN_FEATURES = (*TORSION_FEATURES, "mindist", "contacts")
_TORSION_HINT = "use --features dihedrals with --pairs FILE for other molecules"
_MINDIST_HINT = "use --features distances with --pairs FILE for other molecules"


def _no_protein(feature: str, why: str) -> SelectionError:
    if feature in TORSION_FEATURES:
        return SelectionError(f"{feature} needs atoms named N, CA, C: {why}", _TORSION_HINT)
    what = f"{feature} needs protein residues (atoms named CA): {why}"
    return SelectionError(what, _MINDIST_HINT)


def protein_topology(source, features: list[str]) -> ProteinTopology:
    """The selection's residues, chains and peptide links (first frame, repaired).

    Parameters
    ----------
    source : Source
        An open source; an MDAnalysis one (arrays carry no atom names).
    features : list of str
        The protein features asked for (named in the error for arrays).

    Raises
    ------
    SelectionError
        An array input.
    """
    atoms = getattr(source, "atoms", None)
    if source.kind != "mdanalysis" or atoms is None:
        raise _no_protein(features[0], "an array input has no atom names")
    # the peptide-bond distance test (topologies without bonds) wants whole molecules
    first = np.asarray(source.read(0, 1).coords[0], dtype=np.float64)
    return ProteinTopology.from_atoms(atoms, first, bonds=source.bonds)


def torsion_tuples(top: ProteinTopology, name: str) -> tuple[np.ndarray, list[str]]:
    """Quadruplets and labels of torsion ``name``; none at all in a selection without
    protein residues is an error."""
    try:
        return top.torsions(name)
    except SelectionError:
        raise _no_protein(name, "the selection has none") from None


@dataclass
class MindistSetup:
    """What a run needs for ``mindist``/``contacts``.

    Attributes
    ----------
    plan : MindistPlan
    residues : ndarray, shape (K, 2), int32
        0-based topology residue indices of each pair.
    labels : list of str, length K
        ``"mindist LYS 12 A - GLU 87 A (closest-heavy)"``.
    scheme : str
    """

    plan: MindistPlan
    residues: np.ndarray
    labels: list
    scheme: str

    @property
    def n_pairs(self) -> int:
        return self.plan.n_pairs


def mindist_setup(
    top: ProteinTopology, scheme: str, residue_pairs, n_points: int, molecules=None
) -> MindistSetup:
    """Residue groups of ``scheme`` and pairs of ``residue_pairs`` as a kernel plan.

    Parameters
    ----------
    top : ProteinTopology
    scheme : str
        One of :data:`SCHEMES`.
    residue_pairs : "all" or path
    n_points : int
    molecules : ndarray, shape (n_points,), optional
        Molecule numbers where molecules are whole and the box is used (pairs within one
        molecule measured directly); None measures every pair by the minimum image (or
        without a box, directly).

    Raises
    ------
    ParameterError
        An unknown scheme (names the choices).
    SelectionError
        ``all`` on a selection without protein residues.
    """
    s = str(scheme).lower()
    if s not in SCHEMES:
        raise ParameterError(f"unknown --scheme {scheme!r}", f"choose from {', '.join(SCHEMES)}")
    groups = top.groups(s)
    spec = residue_pairs or "all"
    if isinstance(spec, str) and spec.lower() == "all":
        # upper() of the distinct names only (np.char works per element)
        if not np.any(np.char.upper(np.unique(top.names.astype(str))) == "CA"):
            raise _no_protein("mindist", "the selection has none")
    rows = top.residue_pairs(spec, groups)
    used = np.unique(rows)
    remap = np.full(top.n_residues, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    plan = mindist_plan([groups[r] for r in used], remap[rows], n_points, molecules)
    residues = top.resindex[rows].astype(np.int32)
    return MindistSetup(plan, residues, top.pair_labels(rows, s), s)


def check_contact_options(cutoff: float, transform: str, steepness: float) -> None:
    """Refuse contact options that cannot work, before the input is opened."""
    if transform not in CONTACT_TRANSFORMS:
        raise ParameterError(
            f"unknown --contact-transform {transform!r}",
            f"choose from {', '.join(CONTACT_TRANSFORMS)}",
        )
    if not np.isfinite(cutoff) or cutoff < 0:
        raise ParameterError(f"--contact-cutoff {cutoff} is not a distance", "give a cutoff >= 0")
    if not (np.isfinite(steepness) and steepness > 0):
        raise ParameterError(
            f"--contact-steepness {steepness} is not positive", "give a steepness > 0"
        )


def protein_tuples(source, names: list[str]) -> dict:
    """Quadruplets of the torsions in ``names`` and, for ``mindist``, the plan of every
    residue pair (``closest-heavy``, ``all``), for ``trajalign check``.

    Returns
    -------
    dict
        ``{"phi": (Q, 4) int64, ..., "mindist": MindistPlan}``.
    """
    top = protein_topology(source, names)
    out: dict = {}
    for name in names:
        if name in TORSION_FEATURES:
            out[name] = torsion_tuples(top, name)[0]
        elif name == "mindist":
            out[name] = mindist_setup(top, "closest-heavy", "all", source.n_points).plan
    return out
