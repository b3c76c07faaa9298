"""Fuzzing: random arrays and parameters through the Python API and the command line.

Every call must end in a well-formed result or a :class:`TrajalignError` subclass; any
other exception, a hang, or a crash of the interpreter is a bug. The kernels are Numba
code without bounds checks, so an index or a NaN that slips past validation can read or
write outside an array instead of raising: the result checks below (shapes, finiteness,
proper rotations, the documented identities) catch a kernel that quietly read garbage.

The default budget keeps this file near 30 s. Run a bigger one locally with
``TRAJALIGN_FUZZ_EXAMPLES=3000 pytest tests/test_fuzz.py`` (examples per target).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import trajalign as ta
from trajalign.align import CENTER_METHODS
from trajalign.errors import TrajalignError

_BIG = int(os.environ.get("TRAJALIGN_FUZZ_EXAMPLES", "0"))


def budget(default: int):
    """Hypothesis settings: ``default`` examples, or TRAJALIGN_FUZZ_EXAMPLES when set."""
    return settings(
        max_examples=_BIG or default,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,  # the cli fixture is stateless
        ],
    )


# ------------------------------------------------------------------------ strategies

DTYPES = [
    "float64", "float64", "float32", "float32", "float16",
    "int32", "int64", "bool", "complex128", "object",
]  # fmt: skip
GEOMETRIES = [
    "random", "random", "equal", "collinear", "planar", "near_collinear", "near_planar",
    "huge", "tiny", "extreme", "mixed", "grid",
]  # fmt: skip
SHAPE_KINDS = ["ok"] * 10 + ["ndim2", "ndim4", "ndim1", "no_frames", "no_points", "fortran"]


def _geometry(rng, kind: str, F: int, N: int, D: int) -> np.ndarray:
    """(F, N, D) float64 points of one kind of (possibly degenerate) geometry."""
    origin = rng.normal(scale=20.0, size=(F, 1, D))
    if kind == "equal":  # every point of a frame at one place
        return np.broadcast_to(origin, (F, N, D)).copy()
    if kind in ("collinear", "near_collinear"):
        u = rng.normal(size=(F, 1, D))
        x = origin + rng.normal(scale=5.0, size=(F, N, 1)) * u
        if kind == "near_collinear":
            x += rng.normal(scale=1e-9, size=x.shape)
        return x
    if kind in ("planar", "near_planar") and D >= 3:
        u, v = rng.normal(size=(2, F, 1, D))
        a, b = rng.normal(scale=5.0, size=(2, F, N, 1))
        x = origin + a * u + b * v
        if kind == "near_planar":
            x += rng.normal(scale=1e-9, size=x.shape)
        return x
    if kind == "grid":  # small integers: ties, symmetric shapes, exact cancellations
        return rng.integers(-2, 3, size=(F, N, D)).astype(np.float64)
    scale = {"huge": 1e30, "tiny": 1e-30, "extreme": 1e300}.get(kind, 10.0)
    x = rng.normal(size=(F, N, D)) * scale
    if kind == "mixed" and F > 1:  # one degenerate frame among good ones
        x[rng.integers(F)] = origin[0]
    return x


@st.composite
def arrays(draw, dims=(1, 2, 3, 3, 3, 2, 4), good: bool = False):
    """Coordinates of random shape, dtype, geometry and NaN/inf placement.

    ``good`` restricts to finite float32/float64 (F, N, 2|3) arrays (degenerate geometry
    still allowed), for parameters to be the fuzzed part. Otherwise two draws in three
    are still valid arrays, so that most examples reach the kernels and not only the
    boundary checks.
    """
    good = good or draw(st.integers(0, 2)) > 0
    F = draw(st.integers(1, 6))
    N = draw(st.integers(1, 12))
    D = draw(st.sampled_from((2, 3) if good else dims))
    kind = draw(st.sampled_from(GEOMETRIES))
    if good and kind == "extreme":
        kind = "random"
    dtype = draw(st.sampled_from(["float32", "float64", "int64"] if good else DTYPES))
    shape_kind = (
        draw(st.sampled_from(["ok", "ok", "fortran"]))
        if good
        else draw(st.sampled_from(SHAPE_KINDS))
    )
    n_bad = 0 if good else draw(st.sampled_from([0, 0, 0, 0, 1, 3]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = _geometry(rng, kind, F, N, D)
    if n_bad:  # NaN, +inf, -inf at random places
        flat = x.reshape(-1)
        where = rng.integers(flat.size, size=n_bad)
        flat[where] = rng.choice([np.nan, np.inf, -np.inf], size=n_bad)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dtype == "bool":
            x = x > 0
        elif dtype.startswith("int"):
            x = np.nan_to_num(np.clip(np.round(x), -1e9, 1e9)).astype(dtype)
        elif dtype == "complex128":
            x = x + 1j * draw(st.sampled_from([0.0, 1.0]))
        else:
            x = x.astype(dtype)
    if shape_kind == "ndim2":
        x = x[0]
    elif shape_kind == "ndim4":
        x = x[None]
    elif shape_kind == "ndim1":
        x = x.reshape(-1)
    elif shape_kind == "no_frames":
        x = x[:0]
    elif shape_kind == "no_points":
        x = x[:, :0]
    elif shape_kind == "fortran":
        x = np.asfortranarray(x)
    return x  # _run checks that the call left it unchanged


def indices(n_max: int = 12):
    """A point index: in range, negative, out of range, huge, or not an integer."""
    return st.one_of(
        st.integers(0, max(n_max - 1, 0)),
        st.integers(0, max(n_max - 1, 0)),
        st.integers(-n_max - 3, n_max + 3),
        st.integers(-n_max - 3, n_max + 3).map(np.int64),
        st.sampled_from([2**31, -(2**31) - 1, 2**63 - 1, -(2**63), 2**70]),
        st.sampled_from([1.0, 1.5, -0.5, np.nan, np.inf, -np.inf, None, "1", "x", True]),
    )


@st.composite
def masses(draw, n: int):
    """None, or masses with zeros, negatives, NaN/inf, the wrong length or dtype."""
    kind = draw(
        st.sampled_from(
            ["none", "none", "none", "good", "good", "good", "good", "zeros", "one_zero",
             "negative", "nan", "inf",
             "short", "long", "column", "int", "bool", "scalar"]
        )
    )  # fmt: skip
    if kind == "none":
        return None
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = max(n, 1)  # an array without points gets one mass: the wrong count
    m = rng.uniform(0.5, 20.0, n)
    if kind == "zeros":
        m[:] = 0.0
    elif kind == "one_zero":
        m[rng.integers(n)] = 0.0
    elif kind in ("negative", "nan", "inf"):
        m[rng.integers(n)] = {"negative": -1.0, "nan": np.nan, "inf": np.inf}[kind]
    elif kind == "short":
        m = m[:-1]
    elif kind == "long":
        m = np.append(m, 1.0)
    elif kind == "column":
        m = m[:, None]
    elif kind == "int":
        m = m.astype(np.int64)  # may round a small mass to 0
    elif kind == "bool":
        m = m > 5
    elif kind == "scalar":
        m = np.float64(m[0])
    return m


@st.composite
def tuples(draw, width: int, n: int):
    """Index tuples: right or wrong width, out-of-range, negative, repeated, non-integer."""
    kind = draw(
        st.sampled_from(
            ["good"] * 10 + ["empty", "row", "wrong_width", "ndim3", "float",
             "float_nan", "float_frac", "bool", "uint", "big", "list"]
        )
    )  # fmt: skip
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = draw(st.integers(1, 8))
    t = rng.integers(-2, n + 2, size=(k, width))
    if kind == "good" and n >= width:
        t = np.array([rng.choice(n, width, replace=False) for _ in range(k)])
    if kind == "empty":
        return np.zeros((0, width), dtype=np.int64)
    if kind == "row":
        return t[0]
    if kind == "wrong_width":
        return rng.integers(0, max(n, 1), size=(k, width + draw(st.sampled_from([-1, 1]))))
    if kind == "ndim3":
        return t[None]
    if kind == "float":
        return t.astype(np.float64)
    if kind == "float_nan":
        t = t.astype(np.float64)
        t[0, 0] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e30]))
        return t
    if kind == "float_frac":
        return t + 0.5
    if kind == "bool":
        return t > 0
    if kind == "uint":
        return t.astype(np.uint64)  # negative values wrap to huge ones
    if kind == "big":
        t = t.astype(np.int64)
        t[0, -1] = draw(st.sampled_from([2**62, -(2**62), 2**31, -(2**31)]))
        return t
    if kind == "list":
        return t.tolist()
    return t


@st.composite
def boxes(draw, F: int, D: int):
    kind = draw(
        st.sampled_from(
            ["none"] * 6 + ["ortho", "ortho", "tric", "tric", "cell_bad", "vectors", "vectors_full",
             "per_frame", "wrong_frames", "nan", "zero", "edges2d", "tiny", "scalar"]
        )
    )  # fmt: skip
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.uniform(5.0, 50.0, 3)
    if kind == "none":
        return None
    if kind == "ortho":
        return np.r_[a, 90.0, 90.0, 90.0]
    if kind == "tric":
        return np.r_[a, rng.uniform(60.0, 120.0, 3)]
    if kind == "cell_bad":
        return np.r_[a, rng.uniform(-10.0, 200.0, 3)]
    if kind in ("vectors", "vectors_full"):
        h = np.tril(rng.normal(size=(3, 3)) * 10.0)
        h[np.diag_indices(3)] = np.abs(np.diag(h))
        return h if kind == "vectors" else rng.normal(size=(3, 3))
    if kind == "per_frame":
        return np.tile(np.r_[a, 90.0, 90.0, 90.0], (F, 1))
    if kind == "wrong_frames":
        return np.tile(np.r_[a, 90.0, 90.0, 90.0], (F + 1, 1))
    if kind == "nan":
        return np.r_[a, np.nan, 90.0, 90.0]
    if kind == "zero":
        return np.zeros(6 if D == 3 else 2)
    if kind == "edges2d":
        return a[:2]
    if kind == "tiny":
        return np.r_[a * 1e-20, 90.0, 90.0, 90.0] if D == 3 else a[:2] * 1e-20
    return np.float64(10.0)


# ---------------------------------------------------------------------------- checks


def _run(fn, *args, **kwargs):
    """Call ``fn``; return its result, or None if it raised a TrajalignError. Any other
    exception propagates and fails the test (with hypothesis' minimal example), and so
    does a call that modified an array it was given.

    (The arrays are compared after the call rather than flagged read-only: Numba would
    compile every kernel again for read-only arrays, the same machine code.)"""
    given = [a for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray)]
    before = [a.copy() for a in given]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RuntimeWarnings are part of a good result
        try:
            got = fn(*args, **kwargs)
        except TrajalignError as exc:
            assert str(exc), "an error without a message"
            event(f"{fn.__name__}: {type(exc).__name__}")
            got = None
    for a, b in zip(given, before, strict=True):
        if a.dtype == object:  # NaN objects compare unequal: the same objects, then
            assert all(p is q for p, q in zip(a.flat, b.flat, strict=True)), fn.__name__
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"{fn.__name__} modified its input")
    if got is not None:
        event(f"{fn.__name__}: result")
    return got


def _as64(X) -> np.ndarray:
    return np.asarray(X).astype(np.float64)


def _out_dtype(X) -> np.dtype:
    dt = np.asarray(X).dtype
    return dt if dt in (np.float32, np.float64) else np.dtype(np.float64)


def _scale(*arrays) -> float:
    return max(float(np.max(np.abs(a), initial=0.0)) for a in arrays)


def check_rotations(rot: np.ndarray, F: int, D: int) -> None:
    assert rot.shape == (F, D, D) and rot.dtype == np.float64
    assert np.all(np.isfinite(rot))
    eye = np.einsum("fij,fik->fjk", rot, rot)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(D), eye.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-5)


def check_align(res, X) -> None:
    """The AlignResult contract: shapes, dtypes, finite motion, proper rotations and
    ``coords[t] == (X[t] - translation[t]) @ rotation[t]``."""
    x = _as64(X)
    F, N, D = x.shape
    assert isinstance(res, ta.AlignResult)
    assert res.coords.shape == (F, N, D) and res.coords.dtype == _out_dtype(X)
    check_rotations(res.rotation, F, D)
    assert res.translation.shape == (F, D) and np.all(np.isfinite(res.translation))
    with np.errstate(all="ignore"):
        want = np.einsum("fnd,fde->fne", x - res.translation[:, None], res.rotation)
    # the kernels compute this in float64 and store it in the input's dtype
    eps = 1e-6 if res.coords.dtype == np.float32 else 1e-12
    tol = eps * _scale(x, res.translation) * D
    np.testing.assert_allclose(res.coords, want, rtol=0, atol=tol, equal_nan=True)
    if _scale(x) < 1e30:  # no overflow possible: the result must be finite
        assert np.all(np.isfinite(res.coords))


# ------------------------------------------------------------------------- API: center


@budget(500)
@given(X=arrays(), method=st.sampled_from(["com", "geometric", "point", "COM", ""]),
       data=st.data())  # fmt: skip
def test_fuzz_center(X, method, data):
    n = X.shape[1] if X.ndim == 3 else 3
    m = data.draw(masses(n))
    point = data.draw(indices())
    before = np.array(X, copy=True)
    got = _run(ta.center_with_translation, X, method=method, masses=m, point=point)
    if before.dtype != object:  # (object arrays: read-only flag alone proves it)
        np.testing.assert_array_equal(np.asarray(X), before)
    if got is None:
        return
    out, trans = got
    x = _as64(X)
    F, N, D = x.shape
    assert method in CENTER_METHODS and D in (2, 3)
    assert out.shape == x.shape and out.dtype == _out_dtype(X)
    assert trans.shape == (F, D) and trans.dtype == np.float64
    assert np.all(np.isfinite(trans))
    eps = 1e-6 if out.dtype == np.float32 else 1e-12
    with np.errstate(all="ignore"):
        want = x - trans[:, None]
    np.testing.assert_allclose(out, want, rtol=0, atol=eps * _scale(x), equal_nan=True)
    if method == "point":
        np.testing.assert_array_equal(trans, x[:, int(point) % N])
    else:
        lo, hi = x.min(axis=1), x.max(axis=1)  # a centroid lies in the bounding box
        span = eps * _scale(x)
        assert np.all(trans >= lo - span) and np.all(trans <= hi + span)


# ---------------------------------------------------------------------- API: superpose


@st.composite
def references(draw, X):
    """'first', 'average', a frame number, an (M, D) array, or junk."""
    F, N, D = X.shape if X.ndim == 3 else (1, 3, 3)
    N, D = max(N, 1), max(D, 1)
    kind = draw(
        st.sampled_from(
            ["first", "first", "average", "frame", "array", "array", "array_bad", "junk"]
        )
    )
    if kind in ("first", "average"):
        return kind
    if kind == "frame":
        return draw(st.integers(-F - 2, F + 2))
    if kind == "junk":
        return draw(st.sampled_from(["last", "", 1.5, None]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "array":
        return _geometry(rng, draw(st.sampled_from(GEOMETRIES)), 1, N, D)[0]
    bad = draw(st.sampled_from(["nan", "shape", "dim", "complex", "3d"]))
    r = rng.normal(size=(N, D))
    if bad == "nan":
        r[rng.integers(N), rng.integers(D)] = np.nan
    elif bad == "shape":
        r = rng.normal(size=(N + 1, D))
    elif bad == "dim":
        r = rng.normal(size=(N, 5 - D))
    elif bad == "complex":
        r = r + 1j
    else:
        r = r[None]
    return r


def valid_fit(n: int, least: int):
    """Distinct in-range fit indices, at least ``least`` of them."""
    return st.lists(st.integers(0, n - 1), min_size=least, max_size=n, unique=True)


@st.composite
def fit_lists(draw, n: int):
    kind = draw(
        st.sampled_from(["none", "none", "none", "good", "good", "range", "dup", "empty", "float"])
    )
    if kind == "none":
        return None
    if kind == "good":
        return sorted(draw(st.sets(st.integers(0, max(n - 1, 0)), min_size=1, max_size=n or 1)))
    if kind == "range":
        return draw(st.lists(st.integers(-n - 3, n + 3), min_size=1, max_size=6))
    if kind == "dup":
        return [0, 0, 1]
    if kind == "empty":
        return []
    return [0.0, 1.0, 2.0]


def check_superpose(res, X, fit, weights) -> None:
    check_align(res, X)
    x = _as64(X)
    F, N, D = x.shape
    idx = np.arange(N) if fit is None else np.asarray(fit) % N
    assert res.rmsd.shape == (F,) and np.all(np.isfinite(res.rmsd)) and np.all(res.rmsd >= 0)
    if _scale(x) >= 1e30 or _scale(x) <= 1e-20:
        return  # the identities below are checked to absolute precision
    w = np.ones(len(idx)) if weights is None else np.asarray(weights, float).reshape(-1)
    if w.size == N and len(idx) != N:
        w = w[idx]
    w = w / w.sum()
    ref = res.reference
    xf = x[:, idx]
    centred = xf - res.translation[:, None]
    moved = np.einsum("fnd,fde->fne", centred, res.rotation)
    msd = np.einsum("n,fn->f", w, np.sum((moved - ref) ** 2, axis=2))
    # QCP's msd = Gx + Gy - 2 lambda: cancellation leaves ~1e-13 of Gx + Gy (and float32
    # coordinates reach the fit as float32). The kernels form Gx in one pass as
    # sum w |x|^2 - |m|^2, which leaves a few float64 ulps of the uncentred sum: a frame
    # of coincident points 49 A from the origin reports msd 1.8e-12, not 0 (hypothesis)
    g = np.einsum("n,fn->f", w, np.sum(centred**2, axis=2)) + np.sum(w * np.sum(ref**2, 1))
    uncentred = np.einsum("n,fn->f", w, np.sum(xf**2, axis=2))
    rel = 1e-6 if np.asarray(X).dtype == np.float32 else 1e-9
    tol = rel * g + 1e-14 * uncentred + 1e-12
    np.testing.assert_allclose(res.rmsd**2, msd, rtol=0, atol=tol.max())
    # the fit is never worse than leaving the centred frame unrotated
    msd0 = np.einsum("n,fn->f", w, np.sum((centred - ref) ** 2, axis=2))
    assert np.all(msd <= msd0 + tol)


@budget(500)
@given(X=arrays(), data=st.data())
def test_fuzz_superpose(X, data):
    n = X.shape[1] if X.ndim == 3 else 3
    if data.draw(st.integers(0, 2)) and X.ndim == 3 and n >= 3 and X.shape[0] > 0:
        # valid parameters, so that most examples run the kernel on the fuzzed array
        fit = data.draw(st.one_of(st.none(), valid_fit(n, 3)))
        m = n if fit is None else len(fit)
        reference = data.draw(
            st.one_of(
                st.sampled_from(["first", "average"]),
                st.integers(-X.shape[0], X.shape[0] - 1),
                st.builds(
                    lambda s: _geometry(np.random.default_rng(s), "random", 1, m, X.shape[2])[0],
                    st.integers(0, 2**32 - 1),
                ),
            )
        )
        weights = data.draw(st.one_of(st.none(), st.just(np.linspace(1.0, 2.0, n))))
    else:
        reference = data.draw(references(X))
        fit = data.draw(fit_lists(n))
        weights = data.draw(masses(n))
    got = _run(ta.superpose, X, reference, weights=weights, fit=fit)
    if got is not None:
        check_superpose(got, X, fit, weights)


# ------------------------------------------------------------------ API: principal axes


@budget(500)
@given(
    X=arrays(),
    sign=st.sampled_from(["continuity", "skew", "none", "bogus"]),
    center=st.sampled_from(["com", "geometric", "point", "mass"]),
    weighted=st.booleans(),
    data=st.data(),
)
def test_fuzz_align_principal(X, sign, center, weighted, data):
    n = X.shape[1] if X.ndim == 3 else 3
    if data.draw(st.integers(0, 2)) and n >= 3:  # valid parameters (see superpose)
        sign = sign if sign != "bogus" else "skew"
        center = center if center != "mass" else "com"
        fit = data.draw(st.one_of(st.none(), valid_fit(n, 3)))
        point = data.draw(st.integers(0, (n if fit is None else len(fit)) - 1))
        m = data.draw(st.one_of(st.none(), st.just(np.linspace(1.0, 2.0, n))))
    else:
        m = data.draw(masses(n))
        point = data.draw(indices())
        fit = data.draw(fit_lists(n))
    got = _run(
        ta.align_principal, X, m, sign, center=center, point=point, weighted=weighted, fit=fit
    )
    if got is None:
        return
    check_align(got, X)
    ev = got.diagnostics["eigenvalues"]
    F, _, D = got.coords.shape
    assert ev.shape == (F, D) and np.all(np.isfinite(ev))
    assert np.all(np.diff(ev, axis=1) <= 1e-12 * np.abs(ev[:, :1]))  # decreasing


# -------------------------------------------------------------------------- API: points


@budget(500)
@given(X=arrays(), data=st.data())
def test_fuzz_align_points(X, data):
    n = X.shape[1] if X.ndim == 3 else 3
    D = X.shape[-1] if X.ndim == 3 else 3
    if data.draw(st.integers(0, 2)) and n >= 3:  # valid points (see superpose)
        # three distinct points, each maybe counted from the end (negative)
        ijk = data.draw(st.permutations(range(n)).map(lambda p: p[:3]))
        neg = data.draw(st.lists(st.booleans(), min_size=3, max_size=3))
        i, j, k = (p - n if b else p for p, b in zip(ijk, neg, strict=True))
        k = k if D == 3 else None
    else:
        i, j = data.draw(indices(n)), data.draw(indices(n))
        k = data.draw(st.one_of(st.none(), indices(n)))
    got = _run(ta.align_points, X, i, j, k)
    if got is None:
        return
    check_align(got, X)
    x = _as64(X)
    if _scale(x) >= 1e30:
        return
    c = got.coords.astype(np.float64)
    N = x.shape[1]
    tol = (1e-5 if got.coords.dtype == np.float32 else 1e-10) * max(_scale(x), 1e-300)
    # point i at the origin, i->j along +x (and, 3D, i->k in the xy-plane with y >= 0)
    np.testing.assert_allclose(c[:, int(i) % N], 0.0, atol=tol)
    cj = c[:, int(j) % N]
    assert np.all(cj[:, 0] > 0)
    np.testing.assert_allclose(cj[:, 1:], 0.0, atol=4 * tol)
    if k is not None:
        ck = c[:, int(k) % N]
        np.testing.assert_allclose(ck[:, 2], 0.0, atol=4 * tol)
        assert np.all(ck[:, 1] >= -4 * tol)


# ---------------------------------------------------------------------- API: internal

_WIDTH = {"distances": 2, "angles": 3, "dihedrals": 4}


@budget(500)
@given(
    X=arrays(),
    kind=st.sampled_from(["distances", "angles", "dihedrals", "eigvals"]),
    undefined=st.sampled_from(["raise", "nan", "nan", "ignore"]),
    data=st.data(),
)
def test_fuzz_internal(X, kind, undefined, data):
    F, n, D = X.shape if X.ndim == 3 else (1, 3, 3)
    box = data.draw(boxes(F, D))
    if kind == "eigvals":
        got = _run(ta.eigvals, X, box=box, undefined=undefined)
        if got is not None:
            assert got.shape == (F, n) and got.dtype == _out_dtype(X)
        return
    t = data.draw(st.one_of(tuples(_WIDTH[kind], n), st.sampled_from(["all", "bonds"])))
    fn = getattr(ta, kind)
    if kind == "distances":
        got = _run(fn, X, t, box=box)
    else:
        got = _run(fn, X, t, box=box, undefined=undefined)
    if got is None:
        return
    n_rows = (
        n * (n - 1) // 2 if isinstance(t, str) else np.asarray(t).reshape(-1, _WIDTH[kind]).shape[0]
    )
    assert got.shape == (F, n_rows) and got.dtype == _out_dtype(X)
    v = got.astype(np.float64)
    if kind == "distances":
        ok = np.isnan(v) | (v >= 0)
        sc = _scale(_as64(X))
        # float32 output: the kernels store the squared distance in float32 (a deliberate
        # speed choice), so |d| beyond ~1e19 gives inf and below ~1e-19 gives 0; checked
        # only inside that range (reported as a limitation)
        safe = sc < 1e30 if got.dtype == np.float64 else 1e-15 < sc < 1e15
        if safe:
            ok = np.isfinite(v) & (v >= 0)
            if box is None and n_rows:  # no box: plain Euclidean distances
                p = np.asarray(all_pairs_or(t, n))
                x = _as64(X)
                want = np.linalg.norm(x[:, p[:, 1]] - x[:, p[:, 0]], axis=2)
                np.testing.assert_allclose(v, want, rtol=2e-6 if v.dtype != got.dtype else 1e-6)
        assert np.all(ok)
    elif kind == "angles":
        assert np.all(np.isnan(v) | ((v >= 0) & (v <= np.pi + 1e-6)))
        if undefined == "raise":
            assert not np.isnan(v).any()
    else:
        assert np.all(np.isnan(v) | ((v > -np.pi - 1e-6) & (v <= np.pi + 1e-6)))
        if undefined == "raise":
            assert not np.isnan(v).any()


def all_pairs_or(t, n):
    # (integral float pairs are accepted, as a "float" draw of ``tuples`` gives them)
    return ta.all_pairs(n) if isinstance(t, str) else np.asarray(t).reshape(-1, 2).astype(np.intp)


@st.composite
def value_arrays(draw):
    """(F, P) values (distances, angles) of random dtype with NaN/inf and bad shapes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    F, P = draw(st.integers(0, 5)), draw(st.integers(0, 8))
    scale = draw(st.sampled_from([1.0, 10.0, 1e-30, 1e30, 1e300]))
    v = np.abs(rng.normal(size=(F, P))) * scale
    if v.size and draw(st.booleans()):
        v.reshape(-1)[rng.integers(v.size)] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0]))
    dtype = draw(
        st.sampled_from(
            ["float64", "float64", "float32", "float32", "float16", "int64", "bool",
             "complex128", "object"]
        )
    )  # fmt: skip
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dtype == "int64":
            v = np.nan_to_num(np.clip(v, 0, 1e9)).astype(dtype)
        else:
            v = v.astype(dtype)
    shape = draw(st.sampled_from(["ok"] * 6 + ["1d", "3d"]))
    return v.reshape(-1) if shape == "1d" else v[None] if shape == "3d" else v


_REALS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-100, 100),
    st.floats(0, 20),
    st.sampled_from([0.0, 1.0, 10.0, -1e308, 1e308]),
)


@budget(500)
@given(
    r=value_arrays(),
    kind=st.sampled_from(["inverse", "rbf", "bins", "repeat", "sincos", "centers"]),
    r_min=_REALS,
    r_max=_REALS,
    n=st.one_of(
        st.integers(2, 40),
        st.integers(-2, 40),
        st.sampled_from([2.0, 2.5, np.nan, np.inf, True, None]),
    ),
    gamma=st.one_of(st.none(), _REALS),
    undefined=st.sampled_from(["raise", "nan", "x"]),
)
def test_fuzz_featurisations(r, kind, r_min, r_max, n, gamma, undefined):
    if kind == "inverse":
        got = _run(ta.inverse, r, undefined=undefined)
    elif kind == "rbf":
        got = _run(ta.rbf, r, r_min, r_max, n, gamma)
    elif kind == "bins":
        got = _run(ta.bins, r, r_min, r_max, n)
    elif kind == "repeat":
        got = _run(ta.repeat, r, n)
    elif kind == "sincos":
        got = _run(ta.sincos, r)
    else:
        got = _run(ta.rbf_centers, r_min, r_max, n)
        if got is not None:
            assert got.shape == (int(n),) and np.all(np.isfinite(got))
            assert np.all(np.diff(got) > 0)
        return
    if got is None:
        return
    F, P = r.shape
    if kind == "bins":
        assert got.shape == (F, P, int(n)) and got.dtype == np.uint8
        rv = np.asarray(r, dtype=np.float64)
        # exactly one hot bin per non-NaN value, none for NaN
        np.testing.assert_array_equal(got.sum(axis=2), (~np.isnan(rv)).astype(int))
    elif kind == "rbf":
        assert got.shape == (F, P, int(n))
        assert np.all(np.isnan(got) | ((got >= 0) & (got <= 1)))
    elif kind == "inverse":
        assert got.shape == (F, P)
        if undefined == "raise":
            assert (
                not np.isnan(got.astype(np.float64)).any()
                or np.isnan(np.asarray(r, dtype=np.float64)).any()
            )


# ------------------------------------------------------------------------------- CLI


def _write_npy(path: Path, X) -> None:
    arr = np.asarray(X)
    np.save(path, arr, allow_pickle=arr.dtype == object)


@st.composite
def cli_cases(draw):
    """argv (after the command) for a random command, options and input array."""
    command = draw(st.sampled_from(["center", "rotate", "internal"]))
    args: list[str] = []
    n_pts = 12
    if command == "center":
        args += ["--method", draw(st.sampled_from(["com", "geometric", "point"]))]
        if draw(st.booleans()):
            args += ["--point", str(draw(st.integers(-14, 14)))]
    elif command == "rotate":
        method = draw(st.sampled_from(["kabsch", "principal", "point"]))
        args += ["--method", method]
        if method == "kabsch" and draw(st.booleans()):
            args += ["--reference", draw(
                st.sampled_from(["first", "average", "frame:0", "frame:3", "frame:-1",
                                 "frame:99", "frame:x", "last"])
            )]  # fmt: skip
        if method == "principal":
            if draw(st.booleans()):
                args += ["--sign", draw(st.sampled_from(["continuity", "skew", "none"]))]
            if draw(st.booleans()):
                args += ["--center", "point", "--point", str(draw(st.integers(-3, 14)))]
        if method == "point":
            k = draw(st.integers(2, 3))
            pts = [str(draw(st.integers(-2, n_pts + 1))) for _ in range(k)]
            args += ["--points", draw(st.sampled_from([",".join(pts), "0,1", "0,1,2", "a,b", ""]))]
        if draw(st.integers(0, 3)) == 0:
            args += ["--fit-select", draw(st.sampled_from(["0-2", "0,1", "0-11", "5-99", "3"]))]
        if draw(st.integers(0, 3)) == 0:
            args += ["--weights", draw(st.sampled_from(["mass", "none"]))]
    else:
        feats = draw(st.sampled_from(
            ["distances", "angles", "dihedrals", "distances,angles,dihedrals", "eigvals",
             "distances,eigvals"]
        ))  # fmt: skip
        args += ["--features", feats]
        args += ["--pairs", draw(st.sampled_from(["chain", "all", "bonds"]))]
        if draw(st.booleans()):
            args += [
                "--transform",
                draw(
                    st.sampled_from(
                        ["inverse", "rbf", "bins", "repeat", "inverse,rbf,bins,repeat", "none"]
                    )
                ),
            ]
        if draw(st.booleans()):
            args += ["--undefined", draw(st.sampled_from(["nan", "error"]))]
        if draw(st.integers(0, 3)) == 0:
            args += ["--rbf-n", str(draw(st.integers(-1, 6)))]
            args += ["--rbf-min", str(draw(st.sampled_from([0.0, 5.0, -1e300, float("nan")])))]
        if draw(st.integers(0, 3)) == 0:
            args += ["--dihedral-encoding", "sincos"]
    if draw(st.integers(0, 3)) == 0:
        args += ["-s", draw(st.sampled_from(["0-3", "1,5,7", "0-20", "-1", "2-1", "x"]))]
    if draw(st.integers(0, 3)) == 0:
        args += ["--start", str(draw(st.integers(-3, 7)))]
    if draw(st.integers(0, 3)) == 0:
        args += ["--step", str(draw(st.integers(-1, 3)))]
    if draw(st.integers(0, 3)) == 0:
        args += ["--chunk-frames", str(draw(st.integers(-1, 4)))]
    masses_kind = draw(st.sampled_from(["none", "none", "good", "bad"]))
    X = draw(arrays(dims=(2, 3, 3, 3, 1, 4)))
    return command, args, X, masses_kind


def _masses_file(tmp: Path, kind: str, X) -> list[str]:
    if kind == "none":
        return []
    n = X.shape[1] if np.ndim(X) == 3 else 3
    path = tmp / "m.txt"
    if kind == "good":
        np.savetxt(path, np.linspace(1.0, 12.0, n))
    else:
        path.write_text("\n".join(["1", "-2", "nan", "x"][: max(n, 1)]))
    return ["--masses", str(path)]


def check_cli(res, out: Path) -> None:
    """The exit-status contract of CONTRACT.md, for one run."""
    assert res.code in (0, 1, 2), res
    assert "Traceback" not in res.stderr, res.stderr
    if res.code == 1:
        lines = res.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("Error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], res.stderr
        # the catch-all of cli.main: an exception that is not a TrajalignError
        assert "unexpected" not in errors[0], errors[0]
    if res.code != 0:
        assert not out.exists(), "a failed run left its output behind"
        assert not any(p.name.endswith(".partial") for p in out.parent.iterdir())
    else:
        with h5py.File(out) as f:  # a complete, readable file
            assert "trajalign/provenance" in f


@budget(200)
@given(case=cli_cases())
def test_fuzz_cli(cli, case):
    command, args, X, masses_kind = case
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "x.npy"
        _write_npy(src, X)
        out = tmp / "out.h5"
        extra = _masses_file(tmp, masses_kind, X)
        res = cli(command, src, *args, *extra, "-o", out)
        event(f"{command}: exit {res.code}")
        check_cli(res, out)


# A few runs through a real interpreter: a segfault or abort in a kernel would kill the
# in-process runner with the test session, and shows here as a negative return code.
SUBPROCESS_CASES = [
    ("center", ["--method", "point", "--point", "11"], "random", "float32"),
    ("center", ["--method", "com"], "nan", "float64"),
    ("rotate", ["--method", "kabsch", "--reference", "average"], "collinear", "float32"),
    ("rotate", ["--method", "principal", "--sign", "skew"], "planar", "float64"),
    ("rotate", ["--method", "point", "--points", "0,11,-1"], "equal", "float32"),
    ("internal", ["--features", "distances,angles,dihedrals,eigvals", "--pairs", "all",
                  "--transform", "inverse,rbf,bins", "--undefined", "nan"], "equal", "int64"),
]  # fmt: skip


@pytest.mark.parametrize("command,args,kind,dtype", SUBPROCESS_CASES)
def test_fuzz_cli_subprocess(tmp_path, command, args, kind, dtype):
    rng = np.random.default_rng(7)
    x = _geometry(rng, kind if kind != "nan" else "random", 4, 12, 3)
    if kind == "nan":
        x[2, 5, 1] = np.nan
    np.save(tmp_path / "x.npy", x.astype(dtype))
    out = tmp_path / "out.h5"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trajalign",
            command,
            str(tmp_path / "x.npy"),
            *args,
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr)
    check_cli(_Res(proc.returncode, proc.stdout, proc.stderr), out)


class _Res:
    def __init__(self, code, stdout, stderr):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self):
        return f"_Res({self.code}, {self.stderr!r})"
