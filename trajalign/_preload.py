"""Imported once by the fork server that ``--workers`` processes are forked from.

Everything a worker needs before its first block is paid here, once, beside the driver's
own start-up, instead of in every worker after it: the imports (trajalign's readers,
jobs and kernels, MDAnalysis' topology parsers and XTC reader) and Numba's first load of
a cached kernel, which initialises its code generator (0.2 s). Only a serial kernel is
run: a parallel one would start Numba's thread pool, and a process with threads must
not fork.
"""

from __future__ import annotations

import MDAnalysis.coordinates.XTC  # noqa: F401
import MDAnalysis.topology.TPRParser  # noqa: F401
import numpy as np

from . import align, executors, internal, pbc  # noqa: F401
from .io import sources  # noqa: F401
from .jobs import center, rotate  # noqa: F401
from .jobs import internal as internal_job  # noqa: F401


def _warm() -> None:
    try:
        pbc.plan_molecules(np.array([[0, 1]], dtype=np.int64), 2, np.array([0], np.int64))
    except Exception:  # a warm-up only: the worker loads it again if this failed
        pass


_warm()
