"""trajalign: alignment-invariant data from molecular-dynamics trajectories.

The public functions are imported lazily so that ``import trajalign`` (and the
command line's ``--help``) does not pay for numba, MDAnalysis or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import (
    ClusterError,
    DataError,
    InputError,
    NumericalError,
    OutputError,
    ParameterError,
    ResumeError,
    SelectionError,
    TrajalignError,
)

_LAZY = {
    "center": "align",
    "center_with_translation": "align",
    "superpose": "align",
    "align_principal": "align",
    "align_points": "align",
    "AlignResult": "align",
    "distances": "internal",
    "angles": "internal",
    "dihedrals": "internal",
    "inverse": "internal",
    "rbf": "internal",
    "bins": "internal",
    "repeat": "internal",
    "sincos": "internal",
    "eigvals": "internal",
    "rbf_centers": "internal",
    "all_pairs": "internal",
    "chain_tuples": "internal",
    "angles_from_bonds": "internal",
    "dihedrals_from_bonds": "internal",
    "read_tuples": "internal",
    "box_vectors": "box",
    "minimum_image": "box",
    "open_source": "io",
    "make_whole": "pbc",
    "cluster": "pbc",
    "nojump": "pbc",
    "read_features": "features.read",
    "torsion_indices": "features",
    "torsions": "features",
    "phi": "features",
    "psi": "features",
    "omega": "features",
    "chi1": "features",
    "chi2": "features",
    "chi3": "features",
    "chi4": "features",
    "chi5": "features",
    "mindist": "features",
    "residue_mindist": "features",
    "contacts": "features",
    "ProteinTopology": "features",
    "ChainBreakWarning": "features",
}

__all__ = [
    "__version__",
    "DataError",
    "InputError",
    "ClusterError",
    "ResumeError",
    "NumericalError",
    "OutputError",
    "ParameterError",
    "SelectionError",
    "TrajalignError",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'trajalign' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from .align import center, center_with_translation  # noqa: F401
    from .io import open_source  # noqa: F401
