"""Exact minimum image (trajalign.box, trajalign.kernels.box) against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import trajalign
import trajalign.internal as ti
from trajalign.box import box_table, minimum_image
from trajalign.errors import DataError, ParameterError
from trajalign.kernels import box as kb

from . import reference as ref
from ._jit import jit_caller

# the largest brute-force reach the property test pays for: (2 * 12 + 1)^3 images
MAX_REACH = 12


def _cell(dims):
    """Box vectors of [a, b, c, alpha, beta, gamma], or None if they make no cell (or a
    nearly flat one, which only blows up the brute-force reach)."""
    try:
        h = ti.box_vectors(np.asarray(dims, dtype=np.float64))
    except ParameterError:
        return None
    return h if h[2, 2] > 1e-3 * dims[2] else None


def _check_exact(v, got, h):
    """``got`` is an image of ``v`` (v + integer lattice vector) and no image is shorter;
    False if the brute force would need a reach beyond ``MAX_REACH`` (not checked).

    No image is shorter: the shortest image m satisfies |m - got| <= |m| + |got| <=
    2 |got|, so writing m - got = n H, |n_i| <= 2 |got| |col_i(H^-1)|. A brute-force
    search of the UNREDUCED box with that reach around ``got`` is therefore exhaustive,
    and independent of the kernel's reduced basis and slicer.
    """
    v = np.asarray(v, dtype=np.float64).reshape(-1, 3)
    got = np.asarray(got, dtype=np.float64).reshape(-1, 3)
    hinv = np.linalg.pinv(h)
    n = (got - v) @ hinv
    # coordinates up to 1e4 in a 5 A box: n ~ 2e3, rounding ~1e-12 of it
    np.testing.assert_allclose(n, np.rint(n), atol=1e-6)
    reach = int(np.ceil(2 * np.linalg.norm(got, axis=1).max() * np.linalg.norm(hinv, axis=0).max()))
    if reach > MAX_REACH:
        return False
    best = ref.ref_minimum_image(got, h, reach=max(reach, 4))
    want, have = np.linalg.norm(best, axis=1), np.linalg.norm(got, axis=1)
    # 1e-9 relative, with an absolute floor at the rounding of the largest input
    scale = max(1.0, np.abs(v).max(), np.abs(h).max())
    np.testing.assert_allclose(have, want, rtol=1e-9, atol=1e-12 * scale)
    return True


lengths = st.floats(5.0, 100.0)
angles = st.floats(40.0, 140.0)
boxes = st.tuples(lengths, lengths, lengths, angles, angles, angles)


@st.composite
def vectors(draw, k_max=6):
    """(K, 3) difference vectors on a random scale: bond-like, box-like or huge."""
    k = draw(st.integers(1, k_max))
    scale = draw(st.sampled_from([2.0, 60.0, 1e4]))
    return draw(arrays(np.float64, (k, 3), elements=st.floats(-scale, scale)))


@settings(max_examples=150, deadline=None)
@given(dims=boxes, v=vectors())
def test_triclinic_matches_brute_force(dims, v):
    h = _cell(dims)
    assume(h is not None)
    got = minimum_image(v, np.array(dims))
    assume(_check_exact(v, got, h))
    # the same box given as vectors
    np.testing.assert_array_equal(minimum_image(v, h), got)


@settings(max_examples=40, deadline=None)
@given(dims=boxes)
def test_table_row(dims):
    """The reduced basis is the same lattice (integer matrix of determinant +-1 from the
    box), G is its inverse, and h2 is at most (lambda_1 / 2)^2."""
    h = _cell(dims)
    assume(h is not None)
    assume(np.any(h[[1, 2, 2], [0, 0, 1]] != 0))  # triclinic (mode 2)
    row = box_table(h)[0]
    assert row.shape == (kb.TABLE_WIDTH,) and row[kb.MODE] == 2.0
    r = row[kb.BASIS : kb.BASIS + 9].reshape(3, 3)
    g = row[kb.INVERSE : kb.INVERSE + 9].reshape(3, 3)
    u = r @ np.linalg.inv(h)
    np.testing.assert_allclose(u, np.rint(u), atol=1e-8)
    assert abs(round(np.linalg.det(np.rint(u)))) == 1
    np.testing.assert_allclose(r @ g, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(row[kb.COLNORM : kb.COLNORM + 3], np.linalg.norm(g, axis=0))
    # lambda_1 by brute force: lambda_1 <= |r_0|, so |n_i| <= |r_0| colnorm_i suffices
    reach = int(np.linalg.norm(r[0]) * np.linalg.norm(g, axis=0).max()) + 1
    n = np.stack(np.meshgrid(*[np.arange(-reach, reach + 1)] * 3, indexing="ij"), -1)
    n = n.reshape(-1, 3)
    lam = np.linalg.norm((n[np.any(n != 0, axis=1)] @ r), axis=1).min()
    assert row[kb.H2] <= (lam / 2) ** 2
    np.testing.assert_allclose(row[kb.H2], (lam / 2) ** 2, rtol=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    dims=boxes,
    flat=st.booleans(),
    scale=st.sampled_from([1e-3, 1.0, 1e6]),
)
def test_table_run_by_python_has_the_kernels_bits(dims, flat, scale):
    """kernels.box.box_table_python (the kernel's code run by Python, for runs that would
    otherwise compile it first) gives the compiled kernel's rows bit for bit, for 3D
    cells, 2D lattices (c row zero) and orthorhombic boxes, at any scale."""
    h = _cell(dims)
    assume(h is not None)
    h = h * scale
    if flat:
        h[2] = 0.0
    hs = np.ascontiguousarray(np.stack([h, np.diag(np.diag(h))]))
    want = np.empty((2, kb.TABLE_WIDTH))
    got = np.empty((2, kb.TABLE_WIDTH))
    kb.box_table_kernel(hs, want)
    kb.box_table_python(hs, got)
    np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))


def test_box_table_runs_the_kernel_by_python_only_before_it_is_compiled(monkeypatch):
    """box_table takes the Python run while the kernel is neither compiled nor in the
    cache, for up to PYTHON_BOXES boxes a process (TRAJALIGN_PYTHON_BOXES), then the
    kernel; the rows are the same either way."""
    import trajalign.box as tb
    from trajalign import _ahead

    calls = []
    kernel, run_by_python = kb.box_table_kernel, kb.box_table_python

    class Cold:
        signatures: list = []

        def __call__(self, h, out):
            calls.append(("kernel", h.shape[0]))
            kernel(h, out)

    def python(h, out):
        calls.append(("python", h.shape[0]))
        run_by_python(h, out)

    monkeypatch.setattr(kb, "box_table_kernel", Cold())
    monkeypatch.setattr(kb, "box_table_python", python)
    monkeypatch.setattr(_ahead, "cold", lambda dispatcher: True)
    monkeypatch.setattr(tb, "_python_boxes", [0])
    monkeypatch.setattr(tb, "PYTHON_BOXES", 3)
    monkeypatch.delenv("TRAJALIGN_PYTHON_BOXES", raising=False)
    h = ti.box_vectors(np.array([40.0, 40.0, 40.0, 60.0, 60.0, 90.0]))
    boxes = np.stack([h * (1 + 0.01 * i) for i in range(5)])
    want = box_table(boxes)  # (2 boxes beyond the limit of 3: the kernel)
    assert calls == [("kernel", 5)]
    assert [box_table(b) for b in boxes[:3]] and calls[1:] == [("python", 1)] * 3
    np.testing.assert_array_equal(np.concatenate([box_table(b) for b in boxes[3:]]), want[3:])
    assert calls[4:] == [("kernel", 1)] * 2  # the limit is the process's, not the call's
    monkeypatch.setattr(tb, "_python_boxes", [0])
    monkeypatch.setenv("TRAJALIGN_PYTHON_BOXES", "0")
    box_table(boxes[0])
    assert calls[-1] == ("kernel", 1)
    monkeypatch.setenv("TRAJALIGN_PYTHON_BOXES", "many")  # not a number: the default
    box_table(boxes[0])
    assert calls[-1] == ("python", 1)
    monkeypatch.setattr(_ahead, "cold", lambda dispatcher: False)  # in the cache: load it
    box_table(boxes[0])
    assert calls[-1] == ("kernel", 1)


@settings(max_examples=40, deadline=None)
@given(dims=boxes, v=vectors(k_max=4))
def test_enumeration_fallback_is_exact(dims, v):
    """The proven enumeration mic falls back to gives the same lengths on its own."""
    h = _cell(dims)
    assume(h is not None)
    table = box_table(h)
    enumerate_ = jit_caller(kb._mic_enumerate)
    got = np.array([enumerate_(*(x - np.rint(x @ np.linalg.inv(h)) @ h), table, 0) for x in v])
    want = minimum_image(v, h)
    np.testing.assert_allclose(
        np.linalg.norm(got, axis=1), np.linalg.norm(want, axis=1), rtol=1e-9, atol=1e-9
    )


_HUGE = """
import numpy as np, trajalign as ta
dims = [10.0, 11.0, 12.0, 70.0, 80.0, 65.0]
for v in (1e16, 1e18, 1e20, 1e25, 1e300):
    # three points, so that [(0, 1)] takes the pair-list kernel and "all" the other
    x = np.array([[[0.0, 0.0, 0.0], [v, 0.7 * v, -0.3 * v], [1.0, 2.0, 3.0]]])
    print(ta.distances(x, [(0, 1)], box=dims)[0, 0], ta.distances(x, "all", box=dims)[0, 0])
"""


def test_huge_vectors_in_a_triclinic_box_end_inside_the_cell():
    """Coordinates of 1e20 box lengths once sent the lattice search into an enumeration of
    billions of images (float64 rounding left a residual of thousands of box lengths after
    one Babai rounding; found by test_fuzz_internal). Run in a child so that a regression
    fails by timeout instead of hanging the suite. The image must lie within the covering
    radius of the box, at most half the length of the box diagonal bound
    0.5 * sqrt(a^2 + b^2 + c^2) (Babai's bound for any basis)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _HUGE], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    got = np.array(run.stdout.split(), dtype=float)
    assert got.shape == (10,) and np.all(np.isfinite(got))
    assert np.all(got <= 0.5 * np.sqrt(10.0**2 + 11.0**2 + 12.0**2) + 1e-9), got


def test_skewed_box_where_27_images_miss():
    """A strongly skewed cell: the shortest image is v + (-a + b - c), 13.45 A.

    Reduce-into-the-cell-then-27-images (MDAnalysis, LAMMPS, ``geometry._mic`` before
    issue 12) answered 28.06 A here: ``trajalign.internal.distances([[[0, 0, 0], v]],
    "all", dims)`` gave 28.059698 on the day this test was written.
    """
    dims = np.array([30.0, 50.0, 70.0, 50.0, 105.0, 60.0])
    h = ti.box_vectors(dims)
    v = np.array([-16.0, 21.0, 13.0])
    got = minimum_image(v, dims)
    np.testing.assert_allclose(got, v - h[0] + h[1] - h[2], rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(got), 13.448785811026774, rtol=1e-12)
    assert _check_exact(v, got, h)


def test_orthorhombic_and_zero_edges():
    rng = np.random.default_rng(1)
    v = rng.uniform(-300, 300, (500, 3))
    edges = np.array([10.0, 20.0, 30.0])
    got = minimum_image(v, [*edges, 90, 90, 90])
    np.testing.assert_allclose(got, v - edges * np.floor(v / edges + 0.5), atol=1e-12)
    assert np.all(np.abs(got) <= edges / 2 + 1e-12)
    assert _check_exact(v, got, np.diag(edges))
    # a zero edge: not periodic along it
    got = minimum_image(v, np.diag([10.0, 0.0, 30.0]))
    np.testing.assert_array_equal(got[:, 1], v[:, 1])
    np.testing.assert_allclose(got[:, [0, 2]], minimum_image(v, np.diag(edges))[:, [0, 2]])
    # no box at all (all edges zero, or None)
    np.testing.assert_array_equal(minimum_image(v, np.zeros((3, 3))), v)
    np.testing.assert_array_equal(minimum_image(v, None), v)


def test_2d_rectangle():
    rng = np.random.default_rng(2)
    v = rng.uniform(-50, 50, (7, 5, 2))
    got = minimum_image(v, [8.0, 12.0])
    assert got.shape == v.shape
    np.testing.assert_allclose(got, v - [8, 12] * np.floor(v / [8, 12] + 0.5), atol=1e-12)
    got = minimum_image(v, [8.0, 0.0])
    np.testing.assert_array_equal(got[..., 1], v[..., 1])


def test_2d_lattice_from_box_vectors():
    """A 2D oblique lattice given as (3, 3) vectors with a zero c row: only a and b are
    reduced; compared with brute force in the plane (c = 0 adds no images)."""
    h = np.array([[10.0, 0, 0], [-37.0, 3.0, 0], [0, 0, 0]])
    rng = np.random.default_rng(3)
    v = rng.uniform(-100, 100, (300, 2))
    got = minimum_image(v, h)
    assert got.shape == v.shape
    # the lattice is reduced to a = (10, 0), b + 4a = (3, 3); the pseudo-inverse in
    # _check_exact is the inverse of the xy block, and the zero c row adds no images
    z = np.zeros((len(v), 1))
    assert _check_exact(np.c_[v, z], np.c_[got, z], h)


def test_float32_in_float32_out(unchanged):
    rng = np.random.default_rng(4)
    dims = np.array([20.0, 25.0, 30.0, 60.0, 70.0, 80.0])
    v = unchanged(rng.uniform(-100, 100, (100, 3)).astype(np.float32))
    got = minimum_image(v, dims)
    assert got.dtype == np.float32 and got.shape == v.shape
    want = minimum_image(v.astype(np.float64), dims)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert minimum_image(np.array([[1, 2, 3]]), dims).dtype == np.float64


def test_per_frame_boxes(unchanged):
    rng = np.random.default_rng(5)
    dims = unchanged(
        np.array([[20.0, 25, 30, 60, 70, 80], [40, 40, 40, 90, 90, 90], [30, 50, 70, 50, 105, 60]])
    )
    v = unchanged(rng.uniform(-200, 200, (3, 11, 3)))
    got = minimum_image(v, dims)
    for f in range(3):
        np.testing.assert_array_equal(got[f], minimum_image(v[f], dims[f]))
    h = ti.box_vectors(dims)
    np.testing.assert_array_equal(minimum_image(v, h), got)
    # 2D: one rectangle per frame
    v2 = v[..., :2]
    got2 = minimum_image(v2, [[8.0, 9.0], [10.0, 11.0], [12.0, 0.0]])
    np.testing.assert_array_equal(got2[1], minimum_image(v2[1], [10.0, 11.0]))


def test_single_vector_and_empty():
    dims = [10.0, 10.0, 10.0, 90.0, 90.0, 90.0]
    np.testing.assert_array_equal(minimum_image([9.0, 1.0, -6.0], dims), [-1.0, 1.0, 4.0])
    assert minimum_image(np.empty((0, 3)), dims).shape == (0, 3)


def test_top_level_export():
    assert trajalign.minimum_image is minimum_image
    assert "minimum_image" in trajalign.__all__


@pytest.mark.parametrize(
    ("v", "box", "error", "match"),
    [
        (np.zeros(3), [10, 10, 0, 60, 70, 80], ParameterError, "zero edge"),
        (np.zeros(3), np.array([[10.0, 1, 0], [0, 10, 0], [0, 0, 10]]), ParameterError, "lower"),
        (np.zeros(3), [10, 10, np.nan, 90, 90, 90], ParameterError, "NaN"),
        (np.zeros((2, 4, 3)), np.ones((3, 6)) * 90, ParameterError, "3 boxes for 2 frames"),
        (np.zeros(2), np.eye(3), ParameterError, "nonzero c row"),
        (np.array([np.nan, 0, 0]), [10, 10, 10, 90, 90, 90], DataError, "NaN"),
        (np.zeros(4), [10, 10, 10, 90, 90, 90], DataError, "shape"),
        (np.array(["a", "b", "c"]), [10, 10, 10, 90, 90, 90], DataError, "dtype"),
    ],
)
def test_bad_input(v, box, error, match):
    with pytest.raises(error, match=match):
        minimum_image(v, box)


@pytest.mark.parametrize(
    ("h", "match"),
    [
        (np.zeros((0, 3, 3)), "shape"),
        (np.zeros((3, 4)), "shape"),
        (np.array([[10.0, 0, 0], [5, 0, 0], [1, 1, 10]]), "no lattice"),
        (np.array([[10.0, 0, 0], [5, 5, 0], [1, 1, 0]]), "no lattice"),
        (np.array([[10.0, 0, 0], [0, -5, 0], [0, 0, 10]]), "negative"),
    ],
)
def test_box_table_refuses(h, match):
    with pytest.raises(ParameterError, match=match):
        box_table(h)
