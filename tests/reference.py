"""Plain numpy/scipy versions of every kernel: slow, obvious, and the oracle of the tests.

Shapes follow the library: X is (F, N, D). Nothing here imports trajalign.
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------- centering
# (the chapter's center_com / center_point, with optional mass weights)


def center_com(X, masses=None):
    X = np.asarray(X, dtype=np.float64)
    if masses is None:
        c = X.mean(axis=1, keepdims=True)
    else:
        w = np.asarray(masses, dtype=np.float64)
        c = np.einsum("n,fnd->fd", w / w.sum(), X)[:, None, :]
    return X - c, c[:, 0, :]


def center_point(X, k=0):
    X = np.asarray(X, dtype=np.float64)
    c = X[:, k : k + 1, :]
    return X - c, c[:, 0, :]
