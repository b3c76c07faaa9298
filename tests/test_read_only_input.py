"""Read-only input (``np.load(..., mmap_mode="r")``, an array a library handed over with
``writeable=False``) is accepted by every public function that runs a kernel, and gives
what a writable copy of it gives (to rounding: the two are compiled separately, and the
kernels' fast-math sums may round differently from one compilation to the next).

Numba compiles a kernel again for read-only arrays (a type of their own), so this is
checked here once per function, on float32 coordinates (what trajectories hold); the
other tests check that inputs are left unchanged by comparing them after the call
(the ``unchanged`` fixture), which needs no second compilation.
"""

from __future__ import annotations

import numpy as np
import pytest

import trajalign as ta
from trajalign.features import mindist

DIMS = np.array([9.0, 10.0, 11.0, 80.0, 95.0, 70.0])  # a triclinic box (A, degrees)
BONDS = np.array([[i, i + 1] for i in range(8)])

CALLS = {
    "center-com": lambda x: ta.center_with_translation(x, "com", masses=np.arange(1.0, 10.0)),
    "center-point": lambda x: ta.center_with_translation(x, "point", point=3),
    "superpose": lambda x: ta.superpose(x, "average", weights=np.arange(1.0, 10.0)),
    "principal": lambda x: ta.align_principal(x, np.arange(1.0, 10.0), "continuity"),
    "points": lambda x: ta.align_points(x, 0, 4, 6 if x.shape[2] == 3 else None),
    "distances": lambda x: ta.distances(x, [[0, 1], [2, 7]]),
    "distances-all-box": lambda x: ta.distances(x, "all", box=DIMS),
    "angles-box": lambda x: ta.angles(x, [[0, 1, 2], [3, 5, 8]], box=DIMS),
    "dihedrals": lambda x: ta.dihedrals(x, [[0, 1, 2, 3], [2, 4, 6, 8]]),
    "eigvals": lambda x: ta.eigvals(x),
    "minimum_image": lambda x: ta.minimum_image(x[0], DIMS),
    "make_whole": lambda x: ta.make_whole(x, DIMS, BONDS),
    "mindist": lambda x: mindist(x, [[0, 1], [2, 3, 4], [8]], [[0, 1], [0, 2], [1, 2]], DIMS),
    "inverse": lambda r: ta.inverse(r),  # on (F, P) distances, not coordinates
}
PLANAR = {"center-com", "center-point", "superpose", "principal", "points"}


def _arrays(result) -> list[np.ndarray]:
    """The arrays of a result: an array, a tuple of them, or an AlignResult."""
    if isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, tuple):
        return [a for r in result for a in _arrays(r)]
    return [a for a in vars(result).values() if isinstance(a, np.ndarray)]


@pytest.mark.filterwarnings("ignore:principal axes swapped:RuntimeWarning")
@pytest.mark.parametrize(
    "name, dim", [(n, 3) for n in CALLS] + [(n, 2) for n in CALLS if n in PLANAR]
)
def test_read_only_input_gives_the_writable_result(name, dim):
    rng = np.random.default_rng(11)
    x = (np.cumsum(rng.normal(0, 1.5, (4, 9, dim)), axis=1) + 3.0).astype(np.float32)
    if name == "inverse":
        x = np.abs(x).reshape(len(x), -1) + np.float32(1.0)
    frozen = x.copy()
    frozen.flags.writeable = False
    got = _arrays(CALLS[name](frozen))
    want = _arrays(CALLS[name](x))
    assert got and len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        # float32 outputs to a few ulps of float32, float64 ones (rotations, RMSDs) of
        # float64, relative to the largest value
        tol = (1e-6 if g.dtype == np.float32 else 1e-13) * max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, rtol=0, atol=tol)
