"""Column labels of feature datasets: one unique UTF-8 string per column.

Every ``/trajalign/features/<name>`` group of an ``internal`` output holds ``labels``
(K,), one per column of ``value``; a feature expanded along a last axis (``rbf``,
``bins``, ``repeat``, ``sincos``) also holds ``labels_last`` (B,), one per entry of that
axis. :func:`trajalign.read_features` joins the two as ``"<label> <last label>"`` when it
flattens an expanded feature in C order.

Formats:

- atoms of MDAnalysis inputs: ``"CA LYS 12"`` (atom name, residue name, residue number);
  of arrays: the point's index in the selection.
- ``"distance CA LYS 12 - CA GLU 87"``, ``"angle 0 - 1 - 2"``, ``"dihedral ..."``,
  ``"inverse distance ..."``, ``"eigval 0"`` (largest first);
- protein features: ``"phi ALA 2 A"``, ``"mindist LYS 12 A - GLU 87 A (closest-heavy)"``,
  ``"contact LYS 12 A - GLU 87 A (closest-heavy)"`` (:mod:`trajalign.features.protein`);
- last axes: ``"sin"``, ``"cos"``; ``"rbf 3.5 Angstrom"``; ``"bin 3.5 Angstrom"`` (the
  bin's centre); ``"repeat 0"``.

A label that would repeat (two atoms of one residue with the same name) gets the
selection positions of its tuple appended, ``" #3-7"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "KINDS",
    "atom_texts",
    "flat_labels",
    "last_axis_labels",
    "make_unique",
    "tuple_labels",
]

#: feature name -> the word its labels start with
KINDS = {"distances": "distance", "angles": "angle", "dihedrals": "dihedral"}


def atom_texts(atoms=None, n_points: int | None = None) -> list[str]:
    """One short text per selected point.

    Parameters
    ----------
    atoms : MDAnalysis.core.groups.AtomGroup, optional
        The selection; ``"CA LYS 12"`` per atom where the topology has names, residue
        names and numbers.
    n_points : int, optional
        Without ``atoms`` (arrays): ``"0"``, ``"1"``, ... for this many points.

    Returns
    -------
    list of str
    """
    if atoms is None:
        return [str(i) for i in range(int(n_points or 0))]
    try:
        names = np.asarray(atoms.names).astype(str)
        resnames = np.asarray(atoms.resnames).astype(str)
        resids = np.asarray(atoms.resids).astype(np.int64)
    except Exception:  # noqa: BLE001 - MDAnalysis raises NoDataError for absent attributes
        return [str(i) for i in range(len(atoms))]
    return [f"{a} {r} {i}" for a, r, i in zip(names, resnames, resids.tolist(), strict=True)]


def make_unique(labels: list[str], keys: Sequence[str]) -> list[str]:
    """Labels with ``" #<key>"`` appended to those that occur more than once."""
    seen: dict[str, int] = {}
    for s in labels:
        seen[s] = seen.get(s, 0) + 1
    if all(v == 1 for v in seen.values()):
        return labels
    return [s if seen[s] == 1 else f"{s} #{k}" for s, k in zip(labels, keys, strict=True)]


def tuple_labels(kind: str, tuples: np.ndarray, texts: Sequence[str]) -> list[str]:
    """``"<kind> <atom> - <atom> ..."`` per row of ``tuples``, unique.

    Parameters
    ----------
    kind : str
        First word (``distance``, ``angle``, ``dihedral``).
    tuples : ndarray, shape (K, W), int
        Selection positions.
    texts : sequence of str
        Per point, from :func:`atom_texts`.

    Returns
    -------
    list of str, length K
    """
    t = np.asarray(tuples).tolist()
    labels = [f"{kind} " + " - ".join(texts[i] for i in row) for row in t]
    return make_unique(labels, ["-".join(map(str, row)) for row in t])


def last_axis_labels(transform: str, centers=None, unit: str = "") -> list[str]:
    """Labels of the last axis of an expanded feature.

    Parameters
    ----------
    transform : {"sincos", "rbf", "bins", "repeat"}
    centers : array_like, optional
        The ``rbf``/``bins`` centres (their count is also ``repeat``'s length).
    unit : str
        Length unit of the centres.

    Returns
    -------
    list of str
    """
    if transform == "sincos":
        return ["sin", "cos"]
    c = np.asarray(centers, dtype=np.float64).reshape(-1)
    if transform == "repeat":
        return [f"repeat {k}" for k in range(c.size)]
    word = "rbf" if transform == "rbf" else "bin"
    out = [f"{word} {v:.6g} {unit}".rstrip() for v in c.tolist()]
    return make_unique(out, [str(k) for k in range(c.size)])


def flat_labels(labels: Sequence[str], last: Sequence[str] | None) -> list[str]:
    """Labels of a (F, K, B) feature flattened to (F, K * B) in C order."""
    if not last:
        return list(labels)
    return [f"{a} {b}" for a in labels for b in last]
