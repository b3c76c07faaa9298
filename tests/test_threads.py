"""Serial kernels over frame ranges in threads (``kernels._threads``): the bits of one call
whatever the split, and errors reach the caller."""

from __future__ import annotations

import numpy as np
import pytest

import trajalign as ta
from trajalign.kernels import _threads


@pytest.fixture
def split(monkeypatch):
    """Make in_threads split every call into ``n`` ranges (3 by default), however small."""
    import numba

    def set_threads(n: int = 3) -> None:
        monkeypatch.setattr(_threads, "MIN_WORK", 1)
        monkeypatch.setattr(numba, "get_num_threads", lambda: n)

    return set_threads


def _frames(dim: int = 3, n_frames: int = 23, n_points: int = 17, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_points, dim)) * 3.0
    # a moving, slowly rotating body: principal axes and fits that change frame to frame
    x = base[None] + rng.normal(size=(n_frames, n_points, dim)) * 0.3
    x += np.linspace(0, 5, n_frames)[:, None, None]
    return x.astype(np.float32)


def _results(fn):
    out = fn()
    if isinstance(out, tuple | list):
        return [np.asarray(v) for v in out]
    if hasattr(out, "coords"):
        return [
            np.asarray(getattr(out, k))
            for k in vars(out)
            if isinstance(getattr(out, k), np.ndarray)
        ]
    if hasattr(out, "value"):
        return [np.asarray(out.value), np.asarray(out.atoms)]
    return [np.asarray(out)]


CASES = {
    "superpose": lambda x: ta.superpose(x, reference="first"),
    "superpose-average": lambda x: ta.superpose(x, reference="average"),
    "superpose-subset": lambda x: ta.superpose(x, fit=np.arange(5)),
    "superpose-2d": lambda x: ta.superpose(x[..., :2]),
    "principal-continuity": lambda x: ta.align_principal(x, sign="continuity"),
    "principal-skew-2d": lambda x: ta.align_principal(x[..., :2], sign="skew"),
    "center": lambda x: ta.center(x, method="geometric"),
    "center-point": lambda x: ta.center(x, method="point", point=3),
    "points": lambda x: ta.align_points(x, 0, 1, 2),
    "inverse-rbf": lambda x: ta.rbf(ta.inverse(ta.distances(x, "all")), n=5),
    "bins": lambda x: ta.bins(ta.distances(x, "all"), n=4),
    "sincos": lambda x: ta.sincos(ta.dihedrals(x, np.array([[0, 1, 2, 3], [4, 5, 6, 7]]))),
    "mindist": lambda x: ta.mindist(
        x, [[0, 1, 2], [5, 6], [9, 10, 11, 12]], [[0, 1], [0, 2], [1, 2]]
    ),
}


@pytest.mark.parametrize("threads", [2, 3, 7])
@pytest.mark.parametrize("case", sorted(CASES))
def test_threads_give_the_bits_of_one_call(split, case, threads):
    x = _frames()
    one = _results(lambda: CASES[case](x))
    split(threads)
    many = _results(lambda: CASES[case](x))
    assert len(one) == len(many) > 0
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, b)


def test_small_calls_run_in_the_calling_thread(monkeypatch):
    import threading

    seen = []

    def kernel(start, stop, out):
        seen.append(threading.get_ident())
        out[start:stop] = 1

    out = np.zeros(10)
    _threads.in_threads(kernel, 10, 1, out)  # 10 values: far below MIN_WORK
    assert seen == [threading.get_ident()] and np.all(out == 1)


def test_ranges_cover_every_item_once(split):
    split(4)
    out = np.zeros(11, dtype=np.int64)

    def kernel(start, stop, out):
        out[start:stop] += 1

    _threads.in_threads(kernel, 11, 1, out)
    assert np.all(out == 1)


def test_an_error_in_a_thread_reaches_the_caller(split):
    split(3)

    def kernel(start, stop):
        if start > 0:
            raise ValueError(f"range {start}:{stop}")

    with pytest.raises(ValueError, match="range"):
        _threads.in_threads(kernel, 9, 1)
