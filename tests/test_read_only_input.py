"""Read-only input (``np.load(..., mmap_mode="r")``, an array a library handed over with
``writeable=False``) is accepted by every public function that runs a kernel, and gives
what a writable copy of it gives, bit for bit: the kernels receive a writable alias of it
(``trajalign._validate.as_kernel_input``) and run the code compiled for writable arrays.

Numba would compile every kernel again for read-only arrays (a type of their own:
seconds per kernel on every machine, 29 s of CPU in this file when it did); that none is
compiled is checked here. The other tests check that inputs are left unchanged by
comparing them after the call (the ``unchanged`` fixture), which is also what makes the
writable alias safe.
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
        np.testing.assert_array_equal(g, w)  # the same compiled code
    np.testing.assert_array_equal(frozen, x)  # (and the alias wrote nothing)


@pytest.mark.filterwarnings("ignore:principal axes swapped:RuntimeWarning")
def test_no_kernel_is_compiled_for_read_only_numbers():
    """After the calls above (this file runs in one process), no kernel holds a
    signature with a read-only float array. (The XTC decoder's file bytes are a
    read-only uint8 memory map by design: its kernels are compiled for that type only.)"""
    from numba import types

    from trajalign.cli.warmup import _dispatchers

    for name in CALLS:  # every call once, in case this test runs on its own
        test_read_only_input_gives_the_writable_result(name, 3)
    bad = []
    for key, disp in _dispatchers().items():
        for sig in disp.signatures:
            for arg in sig:
                if isinstance(arg, types.Array) and not arg.mutable:
                    if isinstance(arg.dtype, types.Float):
                        bad.append(f"{key}{sig}")
    assert bad == []
