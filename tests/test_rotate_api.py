"""ta.superpose / ta.align_principal / ta.align_points against numpy references, scipy,
a brute-force 2D search, MDAnalysis, and hypothesis properties."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

import trajalign as ta
from trajalign.errors import DataError, NumericalError, ParameterError, SelectionError

from . import reference as ref


def random_rotation(rng, dim):
    if dim == 2:
        t = rng.uniform(-np.pi, np.pi)
        return np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    return Rotation.random(random_state=rng.integers(2**31)).as_matrix()


def rigid(X, rng, per_frame):
    """X moved by random proper rotations and translations (one per frame or global)."""
    F, _, dim = X.shape
    n = F if per_frame else 1
    Q = np.array([random_rotation(rng, dim) for _ in range(n)])
    t = rng.normal(scale=10.0, size=(n, 1, dim))
    return np.einsum("fnd,fde->fne", X, np.broadcast_to(Q, (F, dim, dim))) + t


def gyration(Y, w=None):
    n = Y.shape[1]
    w = np.full(n, 1.0 / n) if w is None else w / w.sum()
    return np.einsum("n,fna,fnb->fab", w, Y, Y)


# ---------------------------------------------------------------------------- Kabsch


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_superpose_matches_svd_reference(dim, dtype, unchanged):
    rng = np.random.default_rng(1)
    X = unchanged((rng.normal(size=(6, 9, dim)) * 5 + 40).astype(dtype))
    R0 = rng.normal(size=(9, dim))
    w = rng.uniform(1, 16, 9)
    res = ta.superpose(X, R0, weights=w)
    exp, rots, cs, rmsd = ref.ref_kabsch(X, R0, w)
    assert res.coords.dtype == dtype and res.coords.shape == X.shape
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(res.coords, exp, atol=tol * 50)
    np.testing.assert_allclose(res.rotation, rots, atol=tol)
    np.testing.assert_allclose(res.translation, cs, atol=tol * 50)
    np.testing.assert_allclose(res.rmsd, rmsd, atol=tol * 10)
    np.testing.assert_allclose(np.linalg.det(res.rotation), 1.0, atol=1e-12)
    # the contract: coords[t] == (X[t] - translation[t]) @ rotation[t]
    again = np.einsum("fnd,fde->fne", X - res.translation[:, None], res.rotation)
    np.testing.assert_allclose(res.coords, again, atol=tol * 50)


def test_superpose_against_scipy_align_vectors_including_near_reflections():
    rng = np.random.default_rng(2)
    for trial in range(30):
        x = rng.normal(size=(7, 3))
        target = rng.normal(size=(7, 3))
        if trial % 3 == 0:  # best orthogonal fit is (nearly) a reflection
            target = x * np.array([-1.0, 1.0, 1.0]) + rng.normal(scale=1e-3, size=x.shape)
        if trial % 3 == 1:  # nearly planar fit atoms
            x[:, 2] *= 1e-6
            target = x @ random_rotation(rng, 3) + rng.normal(scale=1e-2, size=x.shape)
        w = rng.uniform(0.5, 2.0, 7)
        res = ta.superpose(x[None], target, weights=w)
        xc = x - (w / w.sum()) @ x
        tc = target - (w / w.sum()) @ target
        # scipy: a ~ C b (column vectors); ours: (x - c) @ R ~ ref, so R = C.T
        C, _ = Rotation.align_vectors(tc, xc, weights=w)
        np.testing.assert_allclose(res.rotation[0], C.as_matrix().T, atol=1e-7)
        assert np.linalg.det(res.rotation[0]) == pytest.approx(1.0, abs=1e-12)
        assert res.diagnostics["fit_status"][0] != 2


def test_superpose_2d_against_brute_force_angle():
    rng = np.random.default_rng(3)
    for _ in range(10):
        x = rng.normal(size=(6, 2))
        target = rng.normal(size=(6, 2))
        res = ta.superpose(x[None], target)
        t = ref.brute_force_angle_2d(x - x.mean(0), target - target.mean(0))
        expected = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
        # the search minimises a quadratic near its optimum: t is good to ~sqrt(eps)
        np.testing.assert_allclose(res.rotation[0], expected, atol=1e-6)


@pytest.mark.parametrize("eps", [1e-2, 1e-5, 1e-7, 1e-9, 0.0])
def test_qcp_is_optimal_near_degenerate_eigenvalues(eps):
    """S = U diag(1, 1, -(1 - eps)) V^T: the best proper rotation is unique for eps > 0
    but the top two eigenvalues of the key matrix are only 2 eps apart, which is where the
    adjugate vanishes and QCP must fall back to the eigen solver, not to the identity."""
    from trajalign.kernels.kabsch import rotation_3d

    rng = np.random.default_rng(4)
    U, V = random_rotation(rng, 3), random_rotation(rng, 3)
    S = U @ np.diag([1.0, 1.0, -(1.0 - eps)]) @ V.T
    rot = np.empty((3, 3))
    lam, status = rotation_3d(S, 3.0, rot)
    best = 1.0 + 1.0 - (1.0 - eps)  # s1 + s2 - s3: the optimum over proper rotations
    assert np.sum(rot * S) == pytest.approx(best, abs=1e-10)  # tr(R^T S) reaches it
    assert lam == pytest.approx(best, abs=1e-10)
    assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-12)
    if eps == 0.0:
        assert status == 2  # truly not unique: reported, so the caller warns
    elif eps >= 1e-5:
        assert status in (0, 1)  # 1e-5 takes the eigen fallback here, 1e-2 plain QCP


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_frames_left_to_the_eigen_fallback_match_svd_kabsch(dtype):
    """Near-mirror frames (S ~ diag(1, 1, -(1 - eps))), which QCP leaves to the eigen
    solver outside the kernel, between ordinary frames: rotation, translation, RMSD and
    the moved atoms (more atoms than fit atoms) all as the SVD reference, with status 1."""
    from trajalign.align import superpose_block
    from trajalign.kernels.kabsch import fit_frames

    rng = np.random.default_rng(11)
    m = 40
    target = rng.normal(size=(m, 3))
    target -= target.mean(0)
    # whitened (sum w r r^T = I / 3 up to the weights): S is then diag(1, 1, -(1-eps)) / 3
    # times a rotation for the mirrored frames
    u, _, vt = np.linalg.svd(target, full_matrices=False)
    target = u @ vt * np.sqrt(m / 3.0)
    frames, eps = [], 1e-5
    for k in range(6):
        r = random_rotation(rng, 3)
        x = target @ r.T + rng.normal(size=3) * 5
        if k % 2:
            x = (target @ np.diag([1.0, 1.0, -(1.0 - eps)])) @ r.T + rng.normal(size=3)
        frames.append(x)
    xfit = np.array(frames).astype(dtype)
    extra = rng.normal(size=(6, 7, 3)).astype(dtype)
    x = np.concatenate([xfit, extra], axis=1)
    w = np.full(m, 1.0 / m)
    out, rot, trans, rmsd, status = superpose_block(x, xfit, w, target)
    assert set(status[1::2]) == {1} and set(status[0::2]) == {0}  # the fallback did run
    aligned, r_ref, c_ref, rmsd_ref = ref.ref_kabsch(xfit, target, w)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(rot, r_ref, atol=tol)
    np.testing.assert_allclose(trans, c_ref, atol=tol)
    np.testing.assert_allclose(rmsd, rmsd_ref, atol=tol)
    moved = (x.astype(np.float64) - c_ref[:, None]) @ r_ref
    np.testing.assert_allclose(out, moved, atol=10 * tol)
    assert out.dtype == dtype
    # the fit-only kernel (average reference) takes the same fallback
    rot2, trans2 = np.empty_like(rot), np.empty_like(trans)
    rmsd2, status2 = np.empty_like(rmsd), np.empty_like(status)
    fit_frames(xfit, w, target, rot2, trans2, rmsd2, status2)
    np.testing.assert_array_equal(status2, status)
    np.testing.assert_allclose(rot2, rot, atol=1e-12)
    np.testing.assert_allclose(rmsd2, rmsd, atol=1e-12)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("has_prev", [False, True])
def test_principal_signs_as_a_frame_by_frame_loop(dim, mode, has_prev):
    """The vectorised sign choice against the rule written as a loop, on axes that
    wander (sign flips, swapped axes) and skews that are sometimes below the tolerance."""
    from trajalign.kernels.principal import choose_signs

    rng = np.random.default_rng(dim * 10 + mode + 100 * has_prev)
    n = 60

    def small_turn():
        if dim == 2:
            t = rng.normal(scale=0.3)
            return np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
        return Rotation.from_rotvec(rng.normal(scale=0.3, size=3)).as_matrix()

    base = random_rotation(rng, dim)
    axes = []
    for _ in range(n):
        base = base @ small_turn()
        a = base * rng.choice([-1.0, 1.0], size=dim)
        if rng.random() < 0.1:
            a = a[:, rng.permutation(dim)]
        axes.append(a)
    axes = np.array(axes)
    skew = rng.normal(size=(n, dim)) * np.where(rng.random((n, dim)) < 0.2, 1e-8, 1.0)
    prev = random_rotation(rng, dim)
    expected = ref.ref_choose_signs(axes, skew, mode, prev, has_prev)
    got = [np.empty_like(axes), skew.copy(), np.empty((n, dim), bool), np.empty(n, bool)]
    got += [np.empty(n, bool), np.empty((n, dim))]
    choose_signs(axes, got[1], mode, prev, has_prev, got[0], got[2], got[3], got[4], got[5])
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
    assert expected[3].any() and expected[2].any()  # the data do hold flips and swaps
    assert mode != 1 or expected[4].any()


def test_degenerate_frames_are_warned_not_silent():
    rng = np.random.default_rng(5)
    target = rng.normal(size=(5, 3))
    X = np.stack([target, np.outer(np.arange(5.0), [1.0, 2.0, 0.5])])  # frame 1 collinear
    with pytest.warns(RuntimeWarning, match=r"not unique in 1 frame\(s\) \(1\)"):
        res = ta.superpose(X, target)
    assert list(res.diagnostics["fit_status"])[1] == 2
    assert res.rmsd[0] == pytest.approx(0.0, abs=1e-7)


def test_superpose_fit_subset_moves_every_point():
    rng = np.random.default_rng(6)
    base = rng.normal(size=(12, 3))
    X = rigid(np.broadcast_to(base, (4, 12, 3)).copy(), rng, per_frame=True)
    res = ta.superpose(X, reference=2, fit=[0, 3, 5, 7])
    # rigid copies: every point of every frame lands on frame 2's aligned points
    np.testing.assert_allclose(res.coords, np.broadcast_to(res.coords[2], X.shape), atol=1e-9)
    np.testing.assert_allclose(res.rmsd, 0.0, atol=1e-6)


def test_average_reference_is_a_fixed_point():
    rng = np.random.default_rng(7)
    base = rng.normal(size=(10, 3)) * 3
    X = rigid(base + rng.normal(scale=0.3, size=(30, 10, 3)), rng, per_frame=True)
    res = ta.superpose(X, "average")
    # the reference is the mean of the frames aligned onto it (to the iteration's tolerance)
    np.testing.assert_allclose(res.coords.mean(axis=0), res.reference, atol=1e-4)
    # and no other choice among the frames gives a lower mean square deviation
    first = ta.superpose(X, "first")
    assert np.mean(res.rmsd**2) <= np.mean(first.rmsd**2)


def test_superpose_errors():
    X = np.zeros((2, 5, 3)) + np.arange(5)[:, None]
    good = np.random.default_rng(0).normal(size=(2, 5, 3))
    with pytest.raises(SelectionError, match="at least 3"):
        ta.superpose(good[:, :2], good[0, :2])
    with pytest.raises(DataError, match="shape"):
        ta.superpose(good, good[0, :4])
    bad_ref = good[0].copy()
    bad_ref[1, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ta.superpose(good, bad_ref)
    with pytest.raises(NumericalError, match="one line"):
        ta.superpose(good, X[0])
    with pytest.raises(SelectionError, match="out of range"):
        ta.superpose(good, reference=5)
    nan = good.copy()
    nan[1, 2, 0] = np.inf
    with pytest.raises(DataError, match="frame 1"):
        ta.superpose(nan, good[0])
    with pytest.raises(ParameterError, match="unknown reference"):
        ta.superpose(good, "median")


# ------------------------------------------------------------------ hypothesis: Kabsch

seeds = st.integers(0, 2**32 - 1)
dims = st.sampled_from([2, 3])


@given(seed=seeds, dim=dims, n=st.integers(4, 10))
def test_superpose_invariant_to_rigid_motions_of_frames(seed, dim, n):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3, n, dim)) * rng.uniform(0.5, 5)
    target = rng.normal(size=(n, dim))
    a = ta.superpose(X, target)
    b = ta.superpose(rigid(X, rng, per_frame=True), target)
    np.testing.assert_allclose(a.coords, b.coords, atol=1e-8)
    np.testing.assert_allclose(a.rmsd, b.rmsd, atol=1e-8)


@given(seed=seeds, dim=dims, n=st.integers(3, 10))
def test_superpose_recovers_a_known_rotation(seed, dim, n):
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(n, dim))
    assume(np.linalg.svd(target - target.mean(0), compute_uv=False)[dim - 2] > 1e-3)
    Q = random_rotation(rng, dim)
    shift = rng.normal(size=dim) * 20
    frame = (target - target.mean(0)) @ Q + shift
    res = ta.superpose(frame[None], target)
    # (frame - shift) @ R = target_c, so R = Q^-1 = Q^T
    np.testing.assert_allclose(res.rotation[0], Q.T, atol=1e-8)
    np.testing.assert_allclose(res.translation[0], shift, atol=1e-8)
    assert np.linalg.det(res.rotation[0]) == pytest.approx(1.0, abs=1e-12)
    assert res.rmsd[0] == pytest.approx(0.0, abs=1e-6)


@given(seed=seeds, dim=dims, n=st.integers(3, 12))
def test_rmsd_after_fit_never_exceeds_before(seed, dim, n):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(4, n, dim)) + rng.normal(size=dim) * 3
    target = rng.normal(size=(n, dim))
    w = rng.uniform(0.1, 3.0, n)
    res = ta.superpose(X, target, weights=w)
    wn = w / w.sum()
    tc = target - wn @ target
    before_raw = np.sqrt(np.einsum("n,fn->f", wn, np.sum((X - target) ** 2, axis=2)))
    centred = X - np.einsum("n,fnd->fd", wn, X)[:, None]
    before_centred = np.sqrt(np.einsum("n,fn->f", wn, np.sum((centred - tc) ** 2, axis=2)))
    assert np.all(res.rmsd <= before_raw + 1e-9)
    assert np.all(res.rmsd <= before_centred + 1e-9)
    # and the reported RMSD is the RMSD of the returned coordinates
    actual = np.sqrt(np.einsum("n,fn->f", wn, np.sum((res.coords - tc) ** 2, axis=2)))
    np.testing.assert_allclose(res.rmsd, actual, atol=1e-7)


# ------------------------------------------------------------------ principal axes


@pytest.mark.filterwarnings("ignore:principal axes swapped:RuntimeWarning")
@pytest.mark.parametrize("dim", [2, 3])
def test_principal_matches_reference_skew(dim, unchanged):
    rng = np.random.default_rng(8)
    X = unchanged(rng.normal(size=(5, 10, dim)) * [3.0, 2.0, 1.0][:dim] + 7)
    m = rng.uniform(1, 12, 10)
    res = ta.align_principal(X, masses=m, sign="skew")
    exp, rots, evs = ref.ref_principal(X, m, sign="skew")
    np.testing.assert_allclose(res.coords, exp, atol=1e-10)
    np.testing.assert_allclose(res.rotation, rots, atol=1e-10)
    np.testing.assert_allclose(res.diagnostics["eigenvalues"], evs, atol=1e-10)
    assert res.rmsd is None
    np.testing.assert_allclose(np.linalg.det(res.rotation), 1.0, atol=1e-12)


@pytest.mark.filterwarnings("ignore:principal axes swapped:RuntimeWarning")
def test_principal_sign_none_is_the_solver_up_to_sign():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(5, 8, 3)) * [3.0, 2.0, 1.0]
    a = ta.align_principal(X, sign="none")
    b = ta.align_principal(X, sign="skew")
    np.testing.assert_allclose(np.abs(a.coords), np.abs(b.coords), atol=1e-10)


@given(seed=seeds, dim=dims, n=st.integers(4, 10))
def test_principal_aligned_gyration_is_diagonal_and_ordered(seed, dim, n):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3, n, dim)) * rng.uniform(0.2, 3.0, dim)
    m = rng.uniform(0.5, 5.0, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = ta.align_principal(X, masses=m)
    G = gyration(res.coords, m)
    scale = np.trace(G, axis1=1, axis2=2)[:, None, None]
    off = G - np.einsum("fd,de->fde", np.diagonal(G, axis1=1, axis2=2), np.eye(dim))
    assert np.all(np.abs(off) <= 1e-9 * scale)
    diag = np.diagonal(G, axis1=1, axis2=2)
    assert np.all(np.diff(diag, axis=1) <= 1e-9 * scale[:, 0])
    np.testing.assert_allclose(diag, res.diagnostics["eigenvalues"], atol=1e-9)


def _frames_with_middle_eigenvalues(rng, middle, n):
    """(len(middle), n, 3) frames whose gyration tensors have eigenvalues 3, middle[f]
    and 1, each randomly rotated and moved."""
    X = np.empty((len(middle), n, 3))
    for f, mid in enumerate(middle):
        p = rng.normal(size=(n, 3))
        p -= p.mean(axis=0)
        # whiten to unit gyration, then give the axes the eigenvalues wanted
        evals, evecs = np.linalg.eigh(p.T @ p / n)
        p = p @ evecs / np.sqrt(evals) * np.sqrt([1.0, mid, 3.0])
        X[f] = p @ random_rotation(rng, 3) + rng.normal(size=3)
    return X


def _closed_form_solves(X):
    """Per frame, whether the closed-form 3D eigen solver accepts its gyration tensor
    (False: the frame goes to the eigh fallback)."""
    from trajalign.kernels.principal import _sym3_eigen

    from ._jit import jit_caller

    sym3_eigen = jit_caller(_sym3_eigen)
    ax = np.empty((3, 3))
    ok = []
    for g in gyration(X - X.mean(axis=1, keepdims=True)):
        ok.append(sym3_eigen(g[0, 0], g[0, 1], g[0, 2], g[1, 1], g[1, 2], g[2, 2], ax)[-1])
    return np.array(ok)


@pytest.mark.parametrize("delta", [1e-5, 0.0])
def test_principal_close_eigenvalues_go_to_the_eigen_fallback(delta):
    """Gyration tensors with two eigenvalues 1 and 1 + delta: the closed form declines
    (its eigenvectors lose eps / gap) and the frame goes to NumPy's eigh, which
    finishes after the kernel; the aligned frames must still be diagonal and ordered."""
    X = _frames_with_middle_eigenvalues(np.random.default_rng(31), [1.0 + delta] * 4, 12)
    G0 = gyration(X - X.mean(axis=1, keepdims=True))
    assert not _closed_form_solves(X).any()  # so the frames below do take the fallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = ta.align_principal(X, center="geometric")
    expected = np.linalg.eigvalsh(G0)[:, ::-1]
    np.testing.assert_allclose(res.diagnostics["eigenvalues"], expected, atol=1e-12)
    G = gyration(res.coords)
    off = G - np.einsum("fd,de->fde", np.diagonal(G, axis1=1, axis2=2), np.eye(3))
    assert np.all(np.abs(off) <= 1e-12)
    np.testing.assert_allclose(np.linalg.det(res.rotation), 1.0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sign", ["skew", "continuity"])
def test_principal_fallback_frames_between_ordinary_ones_match_eigh(dtype, sign):
    """Frames the closed form declines (eigenvalues 1 and 1 + 1e-5), finished after the
    kernel in NumPy, between frames it solves, against a frame-by-frame eigh reference:
    the same eigenvalues, axes and coordinates (skew signs), or the same up to the sign
    of each axis (continuity, which may keep a frame's axis against its skew)."""
    middle = [1.0 + (1e-5 if f % 3 == 1 else 0.7) for f in range(9)]
    X = _frames_with_middle_eigenvalues(np.random.default_rng(7), middle, 15).astype(dtype)
    # so that frames 1, 4, 7 do take the fallback, and only they
    np.testing.assert_array_equal(_closed_form_solves(X), np.arange(9) % 3 != 1)
    res = ta.align_principal(X, center="geometric", sign=sign)
    want, rots, evs = ref.ref_principal(X, sign="skew")
    tol = 1e-9 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(res.diagnostics["eigenvalues"], evs, rtol=tol, atol=tol)
    if sign == "skew":
        np.testing.assert_allclose(res.rotation, rots, atol=tol)
        np.testing.assert_allclose(res.coords, want, atol=tol * 10)
    else:
        # each axis equals the reference's up to sign, the frame right-handed
        dots = np.einsum("fdk,fdk->fk", res.rotation, rots)
        np.testing.assert_allclose(np.abs(dots), 1.0, atol=tol)
        np.testing.assert_allclose(np.linalg.det(res.rotation), 1.0, atol=1e-12)
        np.testing.assert_allclose(np.abs(res.coords), np.abs(want), atol=tol * 10)


@given(seed=seeds, dim=dims, n=st.integers(4, 10))
def test_principal_skew_invariant_to_per_frame_motions(seed, dim, n):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3, n, dim)) * rng.uniform(0.5, 3.0, dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = ta.align_principal(X, sign="skew", center="geometric")
        b = ta.align_principal(rigid(X, rng, per_frame=True), sign="skew", center="geometric")
    assume(np.all(a.diagnostics["gap"] > 1e-4))
    assume(np.all(np.abs(a.diagnostics["skewness"][:, : dim - 1]) > 1e-4))
    np.testing.assert_allclose(a.coords, b.coords, atol=1e-7)


@given(seed=seeds, dim=dims, n=st.integers(4, 10))
def test_principal_continuity_invariant_to_global_motion(seed, dim, n):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, dim)) * rng.uniform(0.5, 3.0, dim)
    X = base + rng.normal(scale=0.05, size=(6, n, dim))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = ta.align_principal(X)
        b = ta.align_principal(rigid(X, rng, per_frame=False))
    assume(np.all(a.diagnostics["gap"] > 1e-3))
    assume(np.all(np.abs(a.diagnostics["skewness"][0, : dim - 1]) > 1e-4))
    np.testing.assert_allclose(a.coords, b.coords, atol=1e-7)


def test_principal_continuity_removes_the_jumps_of_sign_none(chain2d):
    X = chain2d[:400]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        none = ta.align_principal(X, sign="none")
        cont = ta.align_principal(X, sign="continuity")
    swap = cont.diagnostics["axis_swap"]
    assert np.array_equal(swap, none.diagnostics["axis_swap"])
    # a jump = an axis pointing against the previous frame's, where no swap explains it
    jumps_none = none.diagnostics["sign_flip"].any(axis=1) & ~swap
    jumps_cont = cont.diagnostics["sign_flip"].any(axis=1) & ~swap
    assert jumps_none.sum() >= 5 and jumps_cont.sum() == 0


def test_principal_errors():
    X = np.zeros((3, 4, 3))
    X[:, :, 0] = np.arange(4)
    with pytest.raises(NumericalError, match="frame 0 lie on one line"):
        ta.align_principal(X)
    Y = np.random.default_rng(0).normal(size=(3, 4, 3))
    Y[2] = 1.0
    with pytest.raises(NumericalError, match="frame 2 are all at the centre"):
        ta.align_principal(Y)
    with pytest.raises(SelectionError, match="at least 3 non-collinear"):
        ta.align_principal(Y[:, :2])
    with pytest.raises(ParameterError, match="sign"):
        ta.align_principal(Y, sign="up")


# -------------------------------------------------------------------------- points


@pytest.mark.parametrize("dim", [2, 3])
def test_points_matches_reference_and_is_invariant(dim, unchanged):
    rng = np.random.default_rng(10)
    X = unchanged(rng.normal(size=(5, 8, dim)))
    k = 5 if dim == 3 else None
    res = ta.align_points(X, 2, 6, k)
    np.testing.assert_allclose(res.coords, ref.ref_points(X, 2, 6, k), atol=1e-12)
    moved = ta.align_points(rigid(np.asarray(X), rng, per_frame=True), 2, 6, k)
    np.testing.assert_allclose(res.coords, moved.coords, atol=1e-9)
    assert np.all(res.coords[:, 6, 0] > 0)
    np.testing.assert_allclose(res.coords[:, 6, 1:], 0.0, atol=1e-12)
    if dim == 3:
        assert np.all(res.coords[:, 5, 1] > 0)
        np.testing.assert_allclose(res.coords[:, 5, 2], 0.0, atol=1e-12)


def test_points_chapter_align_point_2d(chain2d):
    """The chapter's center_point + align_point puts 0->1 on -x (it uses p0 - p1); ours
    puts I->J on +x, so align_points(X, 1, 0) after a shift equals the chapter's."""
    X = chain2d[:50].astype(np.float64)
    cp = X - X[:, :1]
    vecs = cp[:, 0] - cp[:, 1]
    ang = -np.arctan2(vecs[:, 1], vecs[:, 0])
    mats = np.swapaxes(np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]]), 0, -1)
    chapter = cp @ mats
    ours = ta.align_points(X, 1, 0).coords
    np.testing.assert_allclose(ours - ours[:, :1], chapter, atol=1e-9)


def test_points_errors():
    X = np.random.default_rng(0).normal(size=(4, 6, 3))
    with pytest.raises(ParameterError, match="third point"):
        ta.align_points(X, 0, 1)
    with pytest.raises(ParameterError, match="two points"):
        ta.align_points(X[..., :2], 0, 1, 2)
    with pytest.raises(SelectionError, match="repeat"):
        ta.align_points(X, 0, 1, 1)
    with pytest.raises(SelectionError, match="out of range"):
        ta.align_points(X, 0, 1, 9)
    Y = X.copy()
    Y[3, 4] = Y[3, 1]
    with pytest.raises(NumericalError, match="coincide in frame 3"):
        ta.align_points(Y, 1, 4, 0)
    Z = X.copy()
    Z[2, 2] = Z[2, 0] + 2.5 * (Z[2, 1] - Z[2, 0])
    with pytest.raises(NumericalError, match="collinear in frame 2"):
        ta.align_points(Z, 0, 1, 2)


# ---------------------------------------------------------------- against MDAnalysis


@pytest.fixture(scope="module")
def adk():
    """Adenylate kinase (MDAnalysisTests PSF/DCD), first 12 frames, all atoms."""
    import MDAnalysis as mda
    from MDAnalysisTests.datafiles import DCD, PSF

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(PSF, DCD)
    X = np.stack([u.atoms.positions.copy() for _ in u.trajectory[:12]])
    return u, X


@pytest.mark.parametrize("weights", [None, "mass"])
def test_superpose_matches_mdanalysis_aligntraj(adk, weights):
    import MDAnalysis as mda
    from MDAnalysis.analysis import align

    u, X = adk
    mobile = mda.Universe(u.filename, X, format=mda.coordinates.memory.MemoryReader)
    refu = mda.Universe(u.filename, X[:1], format=mda.coordinates.memory.MemoryReader)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aligner = align.AlignTraj(
            mobile, refu, select="name CA", weights=weights, in_memory=True
        ).run()
    expected = mobile.trajectory.timeseries(order="fac")
    ca = u.select_atoms("name CA").indices
    m = u.atoms.masses[ca] if weights == "mass" else None
    res = ta.superpose(X, X[0, ca], weights=m, fit=ca)
    # MDAnalysis puts the aligned frames at the reference's (weighted) centroid
    w = np.full(ca.size, 1.0 / ca.size) if m is None else m / m.sum()
    ref_com = w @ X[0, ca].astype(np.float64)
    np.testing.assert_allclose(res.coords + ref_com, expected, atol=1e-3)
    np.testing.assert_allclose(res.rmsd, aligner.results.rmsd, atol=1e-3)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("scale", [1e155, 1e200, 1e307])
def test_coordinates_whose_squares_overflow_are_an_error_not_an_identity(dim, scale):
    # found by fuzzing: superpose returned the identity with RMSD 0 (a silent "fit"),
    # align_principal a SystemError from eigh inside the kernel, align_points a rotation
    # of determinant 0; the coordinates are finite, only their squares overflow
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, 5, dim)) * scale
    calls = [
        lambda: ta.superpose(X),
        lambda: ta.superpose(X, "average"),
        lambda: ta.superpose(X / scale, X[0]),
        lambda: ta.align_principal(X),
        lambda: ta.align_points(X, 0, 1, 2 if dim == 3 else None),
    ]
    for call in calls:
        with pytest.raises(NumericalError, match="too large"):
            call()


def test_large_but_safe_coordinates_still_fit():
    # up to ~1e60 the float64 sums do not overflow: the fit is exact, not refused
    rng = np.random.default_rng(4)
    ref0 = rng.normal(size=(7, 3))
    Q = Rotation.random(random_state=5).as_matrix()
    X = (ref0 @ Q.T)[None] * 1e60
    res = ta.superpose(X, ref0 * 1e60)
    np.testing.assert_allclose(res.rotation[0], Q, atol=1e-12)
    assert res.rmsd[0] <= 1e-12 * 1e60
    res = ta.align_principal(X)
    np.testing.assert_allclose(np.linalg.det(res.rotation), 1.0)


@pytest.mark.parametrize("shift", [0.0, 100.0, 1000.0])
def test_self_superposition_rmsd_is_zero_to_float_precision(shift):
    # Gx + Gy - 2 lambda cancels to ~sqrt(eps) |x|: a copy of the reference moved by
    # 100 A used to report RMSD 4e-6 A (MDAnalysis #119); near-perfect fits now sum the
    # msd directly, which leaves only the rounding of the moved coordinates (~1e-13 A)
    rng = np.random.default_rng(11)
    ref0 = rng.normal(scale=8.0, size=(40, 3)) + 20.0
    Q = Rotation.random(random_state=12).as_matrix()
    X = np.stack([ref0, ref0 @ Q.T + shift, ref0 + shift])
    res = ta.superpose(X, ref0, weights=rng.uniform(1, 16, 40))
    assert np.all(res.rmsd <= 1e-12), res.rmsd
    res = ta.superpose(X[:, :, :2].copy(), ref0[:, :2])
    assert res.rmsd[0] <= 1e-12 and res.rmsd[2] <= 1e-12, res.rmsd


@pytest.mark.parametrize("seed", [402, 508, 630, 1893, 2516])
def test_reported_rmsd_is_that_of_the_returned_rotation(seed):
    # found by fuzzing: nearly collinear fit atoms put a near double root in QCP's
    # quartic, Newton's lambda was off by ~sqrt(eps), and the RMSD reported for an
    # optimal rotation was up to 7e-5 A too large (seed 2516)
    rng = np.random.default_rng(seed)
    n = rng.integers(3, 12)
    u = rng.normal(size=3)
    x = rng.normal(scale=20, size=3) + rng.normal(scale=5.0, size=(n, 1)) * u
    x = x + rng.normal(scale=10.0 ** rng.integers(-12, -5), size=x.shape)
    res = ta.superpose(x[None], rng.normal(scale=10, size=(n, 3)))
    moved = (x - res.translation[0]) @ res.rotation[0]
    achieved = np.sqrt(np.mean(np.sum((moved - res.reference) ** 2, axis=1)))
    assert abs(res.rmsd[0] - achieved) < 1e-9
    _, _, _, best = ref.ref_kabsch(x[None], res.reference)
    assert abs(res.rmsd[0] - best[0]) < 1e-6


def test_api_warnings_speak_api_language(chain2d):
    with pytest.warns(RuntimeWarning) as record:
        res = ta.align_principal(chain2d[:100])
    texts = [str(w.message) for w in record]
    assert any("consider ta.superpose (see result.diagnostics['gap'])" in t for t in texts)
    assert not any("--" in t or "/trajalign/" in t for t in texts)
    assert res.warnings == texts
