"""ta.center against the plain numpy reference, properties, and input checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import trajalign as ta
from trajalign.errors import DataError, ParameterError, SelectionError

from . import reference as ref


def coords(dim=None, max_frames=6, max_points=9):
    """Finite coordinate arrays (F, N, D) of moderate magnitude."""
    dims = st.sampled_from([2, 3]) if dim is None else st.just(dim)
    shape = st.tuples(st.integers(1, max_frames), st.integers(1, max_points), dims)
    return shape.flatmap(
        lambda s: arrays(np.float64, s, elements=st.floats(-50, 50, allow_nan=False, width=64))
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dim", [2, 3])
def test_com_matches_reference(dtype, dim, unchanged):
    rng = np.random.default_rng(0)
    X = unchanged(rng.normal(size=(17, 8, dim)).astype(dtype) * 5 + 3)
    m = rng.uniform(1, 16, size=8)
    for masses in (None, m):
        got = ta.center(X, "com", masses=masses)
        want, _ = ref.center_com(X, masses)
        assert got.dtype == dtype
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, atol=tol)


def test_geometric_ignores_masses_and_point_method(unchanged):
    rng = np.random.default_rng(1)
    X = unchanged(rng.normal(size=(5, 6, 3)))
    np.testing.assert_allclose(
        ta.center(X, "geometric", masses=np.arange(1.0, 7.0)), ref.center_com(X)[0], atol=1e-12
    )
    got, trans = ta.center_with_translation(X, "point", point=4)
    want, wtrans = ref.center_point(X, 4)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(trans, wtrans)
    np.testing.assert_array_equal(ta.center(X, "point", point=-1), ref.center_point(X, 5)[0])


def test_translation_returned_reconstructs_input():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(4, 5, 3)).astype(np.float32)
    out, trans = ta.center_with_translation(X, "com", masses=rng.uniform(1, 2, 5))
    assert trans.shape == (4, 3) and trans.dtype == np.float64
    np.testing.assert_allclose(out + trans[:, None, :], X, atol=1e-5)


@given(coords(), st.sampled_from(["com", "geometric", "point"]))
def test_centering_is_idempotent(X, method):
    once = ta.center(X, method)
    twice = ta.center(once, method)
    np.testing.assert_allclose(twice, once, atol=1e-9)


@given(coords(), st.sampled_from(["com", "geometric", "point"]), st.data())
def test_centering_is_translation_invariant(X, method, data):
    shift = data.draw(
        arrays(np.float64, (X.shape[0], 1, X.shape[2]), elements=st.floats(-1e3, 1e3))
    )
    np.testing.assert_allclose(ta.center(X + shift, method), ta.center(X, method), atol=1e-9)


def test_integer_input_is_converted_to_float64():
    X = np.arange(24).reshape(2, 4, 3)
    out = ta.center(X, "geometric")
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref.center_com(X)[0])


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros((4, 3)), "one frame without a frame axis"),
        (np.zeros((2, 4, 4)), "not \\(frames, points, 2 or 3\\)"),
        (np.zeros((0, 4, 3)), "zero frames"),
        (np.zeros((2, 0, 3)), "zero points"),
        (np.array([[[None, 1, 2]]], dtype=object), "not numbers"),
    ],
)
def test_bad_shapes_and_dtypes(X, match):
    with pytest.raises(DataError, match=match):
        ta.center(X)


def test_nan_names_the_first_bad_frame():
    X = np.zeros((10, 3, 3))
    X[7, 1, 2] = np.nan
    X[9, 0, 0] = np.inf
    with pytest.raises(DataError, match="frame 7"):
        ta.center(X)


def test_bad_parameters():
    X = np.ones((2, 3, 3))
    with pytest.raises(ParameterError, match="negative"):
        ta.center(X, masses=[1, -1, 1])
    with pytest.raises(ParameterError, match="sum to 0"):
        ta.center(X, masses=[0, 0, 0])
    with pytest.raises(ParameterError, match="3 points"):
        ta.center(X, masses=[1, 1])
    with pytest.raises(SelectionError, match="out of range"):
        ta.center(X, "point", point=3)
    with pytest.raises(ParameterError, match="unknown centering method"):
        ta.center(X, "middle")


@pytest.mark.parametrize("point", [np.inf, -np.inf, np.nan, 1.5, np.float64(-0.5)])
def test_point_index_that_is_not_an_integer_is_refused(point):
    # found by fuzzing: int(inf) raised OverflowError, and 1.5 silently became point 1
    with pytest.raises(SelectionError, match="not an integer"):
        ta.center(np.ones((1, 3, 3)), "point", point=point)
    with pytest.raises(SelectionError, match="not an integer"):
        ta.align_points(np.eye(3)[None], 0, point, 2)
    # integral floats are still indices
    np.testing.assert_array_equal(ta.center(np.eye(3)[None], "point", point=2.0)[0, 2], 0)
