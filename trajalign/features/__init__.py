"""Features for machine learning on protein trajectories.

- :mod:`trajalign.features.protein`: residues, chains and peptide links of a selection;
  named torsions (phi, psi, omega, chi1-chi5 by atom names, never across a chain break)
  and residue groups for the mindist schemes, resolved once into index arrays + labels.
- :mod:`trajalign.features.labels`: the column labels every feature dataset carries.
- :mod:`trajalign.features.read`: :func:`read_features`, one training matrix from outputs.
- :mod:`trajalign.features.mindist`: exact residue (or any group) minimum distances with
  the atom pair of each minimum, and contact maps; kernel in
  :mod:`trajalign.kernels.mindist`.

Generic distances, angles and dihedrals stay in :mod:`trajalign.internal`.
"""

from .mindist import (
    CONTACT_TRANSFORMS,
    MindistPlan,
    ResidueMindist,
    contacts,
    mindist,
    mindist_plan,
    residue_mindist,
)
from .protein import (
    SCHEMES,
    TORSIONS,
    ChainBreakWarning,
    ProteinTopology,
    chi1,
    chi2,
    chi3,
    chi4,
    chi5,
    omega,
    phi,
    psi,
    torsion_indices,
    torsions,
)
from .read import read_features

__all__ = [
    "CONTACT_TRANSFORMS",
    "SCHEMES",
    "TORSIONS",
    "ChainBreakWarning",
    "MindistPlan",
    "ProteinTopology",
    "ResidueMindist",
    "chi1",
    "chi2",
    "chi3",
    "chi4",
    "chi5",
    "contacts",
    "mindist",
    "mindist_plan",
    "omega",
    "phi",
    "psi",
    "read_features",
    "residue_mindist",
    "torsion_indices",
    "torsions",
]
