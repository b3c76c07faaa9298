"""One training matrix from ``internal`` outputs: :func:`read_features`."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from .labels import flat_labels

__all__ = ["FEATURES_ROOT", "feature_names", "read_features"]

FEATURES_ROOT = "trajalign/features"


def _text(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def feature_names(f) -> list[str]:
    """Names of the features of an open output file, in the order the run wrote them
    (its ``order`` attribute; alphabetical for files without one).

    Parameters
    ----------
    f : h5py.File

    Returns
    -------
    list of str
        Groups under ``/trajalign/features`` that hold a ``value`` dataset.
    """
    if FEATURES_ROOT not in f:
        return []
    root = f[FEATURES_ROOT]
    present = [k for k in root if "value" in root[k]]
    order = _text(root.attrs.get("order", []))
    return [k for k in order if k in present] + sorted(k for k in present if k not in order)


def _labels(group, name: str, shape: tuple) -> list[str]:
    """Labels of one feature flattened like its values; numbered for files written
    before labels existed."""
    k = shape[1] if len(shape) > 1 else 1
    labels = _text(group["labels"][()]) if "labels" in group else None
    if labels is None or len(labels) != k:
        labels = [f"{name} {i}" for i in range(k)]
    last = None
    if len(shape) == 3:
        last = _text(group["labels_last"][()]) if "labels_last" in group else None
        if last is None or len(last) != shape[2]:
            last = [str(b) for b in range(shape[2])]
    return flat_labels(labels, last)


def _read_one(path: str, features: list[str] | None) -> tuple[np.ndarray, list[str]]:
    import h5py

    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file", "give the output of trajalign internal")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise InputError(
            f"{path} is not an HDF5 file", "give the output of trajalign internal"
        ) from None
    with f:
        have = feature_names(f)
        if not have:
            raise InputError(
                f"{path} holds no features (no /{FEATURES_ROOT})",
                "give the output of trajalign internal",
            )
        names = have if features is None else features
        missing = [n for n in names if n not in have]
        if missing:
            raise InputError(
                f"{path} has no feature {missing[0]!r}",
                f"it has {', '.join(have)}",
            )
        blocks, labels = [], []
        for name in names:
            g = f[FEATURES_ROOT][name]
            v = g["value"]
            shape = v.shape
            blocks.append(np.asarray(v[()], dtype=np.float32).reshape(shape[0], -1))
            labels += _labels(g, name, shape)
    frames = {b.shape[0] for b in blocks}
    if len(frames) > 1:
        raise InputError(f"{path}: features of different frame counts", "rewrite the file")
    x = np.hstack(blocks) if len(blocks) > 1 else blocks[0]
    return np.ascontiguousarray(x, dtype=np.float32), labels


def read_features(
    path_or_paths: str | os.PathLike | Sequence[str | os.PathLike],
    features: str | Sequence[str] | None = None,
) -> tuple[np.ndarray | list[np.ndarray], list[str]]:
    """Features of ``trajalign internal`` outputs as one (frames, columns) matrix.

    Parameters
    ----------
    path_or_paths : path or sequence of paths
        One output file, or several (one per trajectory, e.g. written with ``--each``).
    features : str or sequence of str, optional
        Dataset names under ``/trajalign/features`` (``"phi,psi"`` or ``["phi", "psi"]``;
        ``distances_rbf``, ``phi_sincos`` ... for transforms), hstacked in this order.
        Default: every feature, in the order the run wrote them (the attribute
        ``order`` of ``/trajalign/features``): the distances, angles, dihedrals and
        torsions in the ``--features`` order, then the distance transforms, the sincos
        encodings, eigvals, mindist and contacts.

    Returns
    -------
    X : ndarray, shape (F, D), float32; or a list of them, one per path
        Expanded features (F, K, B) flattened in C order (B fastest); contacts (uint8)
        as 0.0/1.0.
    labels : list of str, length D
        One per column, unique within each feature: a feature's ``labels``, joined with
        its ``labels_last`` as ``"<label> <last>"`` for expanded ones (``"phi ALA 2 A
        sin"``).

    Raises
    ------
    InputError
        A file that is missing, not HDF5 or holds no features; a feature a file lacks
        (the message lists what it has); files whose columns differ.

    Examples
    --------
    >>> X, labels = read_features("features.h5", ["phi", "psi"])  # doctest: +SKIP
    >>> Xs, labels = read_features(["run1.h5", "run2.h5"])  # doctest: +SKIP
    """
    if isinstance(features, str):
        features = [s.strip() for s in features.split(",") if s.strip()]
    elif features is not None:
        features = [str(s) for s in features]
        if not features:
            raise InputError("features is empty", "name at least one feature, or pass None")
    if isinstance(path_or_paths, str | os.PathLike):
        return _read_one(os.fspath(path_or_paths), features)
    paths = [os.fspath(p) for p in path_or_paths]
    if not paths:
        raise InputError("no paths given", "give one or more outputs of trajalign internal")
    xs, first = [], None
    for path in paths:
        x, labels = _read_one(path, features)
        if first is None:
            first = labels
        elif labels != first:
            where = next(
                (i for i, (a, b) in enumerate(zip(first, labels, strict=False)) if a != b),
                min(len(first), len(labels)),
            )
            theirs = labels[where] if where < len(labels) else "none"
            ours = first[where] if where < len(first) else "none"
            raise InputError(
                f"{path} has {len(labels)} feature columns that differ from {paths[0]}'s "
                f"{len(first)} at column {where} ({theirs!r} vs {ours!r})",
                "featurize every trajectory with the same selection and options",
            )
        xs.append(x)
    return xs, first
