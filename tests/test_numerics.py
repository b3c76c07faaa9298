"""Numerical trust: float32 against float64, self-superposition, reflections and planar
fit sets, and no silent identity (MDAnalysis #119, MDTraj #1575 and #1798).

Measured (float32 input against the float64 data it was rounded from, largest deviation
over all frames and atoms): AdK (3341 atoms, 10 frames) positions 2.5e-6 A for superpose
(first/average), principal and center, distances 4.8e-6 A, RMSD 3e-8 A; align_points
3.8e-5 A, because points 0-1-2 of AdK are 1 A apart and the axis error grows with
distance / |I-J|. Butane: 3e-6 A, RMSD 4e-7 A. Self-superposition RMSD: float64
1e-14..1e-13 A (also of copies rotated and moved by 100-250 A), float32 exact copies
1e-14 A, float32 copies rounded after the motion 1e-5 A (their own rounding).
"""

from __future__ import annotations

import warnings

import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysisTests.datafiles import DCD, PSF
from scipy.spatial.transform import Rotation

import trajalign as ta

from .conftest import BUTANE_DCD, BUTANE_PDB

# float32 keeps 24 bits: a coordinate of 40 A is rounded by up to 2.4e-6 A, and every
# output is computed in float64 from those values and rounded once more when stored.
# So float32 results differ from float64 ones by a few 1e-6 A, and 1e-4 A (the
# requirement) leaves a factor 10 of margin for larger systems (|x| up to ~500 A).
F32_TOL = 1e-4


def _load(top, traj, step):
    u = mda.Universe(str(top), str(traj))
    X = np.stack([u.atoms.positions.astype(np.float64) for _ in u.trajectory[::step]])
    return X, u.atoms.masses.astype(np.float64)


@pytest.fixture(scope="module", params=["adk", "butane"])
def real(request):
    """(X float64, masses): real frames moved by a float64 rigid motion, so that the
    float32 copy is a genuine rounding of them and not the same numbers."""
    if request.param == "adk":
        X, m = _load(PSF, DCD, 10)
    else:
        X, m = _load(BUTANE_PDB, BUTANE_DCD, 100)
    Q = Rotation.random(random_state=1).as_matrix()
    return X @ Q + np.array([0.123456789, -7.7654321, 3.3]), m


def _pair(fn, X, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(X.astype(np.float32), *args, **kwargs), fn(X, *args, **kwargs)


@pytest.mark.parametrize("reference", ["first", "average", 3])
def test_superpose_float32_matches_float64(real, reference):
    X, m = real
    r32, r64 = _pair(ta.superpose, X, reference, weights=m)
    assert r32.coords.dtype == np.float32 and r64.coords.dtype == np.float64
    assert np.abs(r32.coords - r64.coords).max() < F32_TOL
    assert np.abs(r32.rmsd - r64.rmsd).max() < F32_TOL
    assert np.abs(r32.translation - r64.translation).max() < F32_TOL
    # the rotation moves atoms up to Rmax from the centre: its error times Rmax counts
    rmax = np.linalg.norm(X - r64.translation[:, None], axis=2).max()
    assert np.abs(r32.rotation - r64.rotation).max() * rmax < F32_TOL


def test_principal_points_center_distances_float32_match_float64(real):
    X, m = real
    for fn, args in [
        (ta.align_principal, (m,)),
        (ta.align_points, (0, 1, 2)),
    ]:
        r32, r64 = _pair(fn, X, *args)
        assert np.abs(r32.coords - r64.coords).max() < F32_TOL, fn.__name__
    for method in ("com", "geometric", "point"):
        c32, c64 = _pair(ta.center, X, method, masses=m, point=1)
        assert c32.dtype == np.float32 and np.abs(c32 - c64).max() < F32_TOL
    n = X.shape[1]
    pairs = np.random.default_rng(2).choice(n, size=(4000, 2)) if n > 100 else "all"
    if not isinstance(pairs, str):
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    d32, d64 = _pair(ta.distances, X, pairs)
    assert d32.dtype == np.float32 and np.abs(d32 - d64).max() < F32_TOL


# ----------------------------------------------------------------- self-superposition


def test_self_superposition_rmsd_is_zero(real):
    X, m = real
    ref0 = X[0]
    Q = Rotation.random(random_state=3).as_matrix()
    copies = np.stack([ref0, ref0 @ Q, ref0 + 100.0, ref0 @ Q.T - 250.0])
    for weights in (None, m):
        # float64: the direct msd sum leaves the rounding of the moved copies,
        # ~1e-15 |x|; 1e-6 A is the requirement, 1e-10 A is what is attainable here
        res = ta.superpose(copies, ref0, weights=weights)
        assert np.all(res.rmsd <= 1e-10), res.rmsd
        np.testing.assert_allclose(res.rotation[1], Q.T, atol=1e-12)
        # float32, the same numbers: nothing to round, so the same 1e-10 A holds
        x32 = ref0.astype(np.float32)
        res = ta.superpose(np.stack([x32, x32]), x32, weights=weights)
        assert np.all(res.rmsd <= 1e-10), res.rmsd
        # float32 copies rounded after the motion differ from the reference by that
        # rounding (|x| eps32 / 2: 1.7e-5 A at the 290 A of the copy moved by -250 A;
        # measured RMSD 1e-5 A), which no fit can undo: the requirement, 1e-4 A, holds
        res = ta.superpose(copies.astype(np.float32), x32, weights=weights)
        assert np.all(res.rmsd <= F32_TOL), res.rmsd


# ------------------------------------------------- optimal proper rotation, references


def svd_kabsch(x, ref, w=None):
    """Row-convention optimal proper rotation and RMSD (SVD with the determinant fix)."""
    w = np.full(len(x), 1.0 / len(x)) if w is None else w / w.sum()
    xc = x - w @ x
    rc = ref - w @ ref
    u, _, vt = np.linalg.svd((w[:, None] * xc).T @ rc)
    d = np.ones(x.shape[1])
    d[-1] = np.sign(np.linalg.det(u @ vt))
    R = (u * d) @ vt
    return R, np.sqrt(w @ np.sum((xc @ R - rc) ** 2, axis=1))


def _reflect(y):
    return y * np.array([1.0, 1.0, -1.0])


SHAPES = {
    # the best orthogonal match is a reflection: a rotation must not be returned as one
    "mirror": lambda rng, ref: _reflect(ref),
    "mirror_noisy": lambda rng, ref: _reflect(ref) + rng.normal(scale=0.3, size=ref.shape),
    # planar and nearly planar fit atoms (both structures): the rotation is still unique
    "planar": lambda rng, ref: ref + rng.normal(scale=0.2, size=ref.shape) * [1, 1, 0],
    "near_planar": lambda rng, ref: ref + rng.normal(scale=0.2, size=ref.shape) * [1, 1, 1e-7],
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", range(8))
def test_reflection_and_planar_fits_are_optimal_rotations(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    n = 12
    ref = rng.normal(scale=5.0, size=(n, 3))
    if shape in ("planar", "near_planar"):
        ref[:, 2] = 0.0 if shape == "planar" else rng.normal(scale=1e-7, size=n)
    y = SHAPES[shape](rng, ref)
    Q = Rotation.random(random_state=seed).as_matrix()
    x = (y @ Q.T + rng.normal(scale=30.0, size=3)).astype(dtype)
    w = rng.uniform(1.0, 16.0, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ta.superpose(x[None], ref, weights=w)
    R = res.rotation[0]
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    R_svd, rmsd_svd = svd_kabsch(x.astype(np.float64), ref, w)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    # the optimal RMSD, whatever the optimum's uniqueness
    assert abs(res.rmsd[0] - rmsd_svd) < tol
    if shape in ("planar", "near_planar", "mirror_noisy"):
        # a unique optimum: the rotation itself agrees with SVD and with scipy
        np.testing.assert_allclose(R, R_svd, atol=tol * 10)
        xc = x.astype(np.float64) - res.translation[0]
        rot, _ = Rotation.align_vectors(ref - w @ ref / w.sum(), xc, weights=w)
        np.testing.assert_allclose(R, rot.as_matrix().T, atol=tol * 10)


# ----------------------------------------------------------- never a silent identity


def _rotation(axis, angle):
    axis = np.asarray(axis, dtype=np.float64)
    return Rotation.from_rotvec(angle * axis / np.linalg.norm(axis)).as_matrix()


ANGLES = [1e-9, 1e-4, 0.5, np.pi / 2, np.pi - 1e-6, np.pi - 1e-9, np.pi]


@pytest.mark.parametrize("angle", ANGLES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("dim", [2, 3])
def test_rotated_input_is_never_answered_with_identity(angle, dtype, dim):
    # rotations near 0 and near/at 180 degrees are where QCP's adjugate vanishes and
    # solvers fall back; the fit must recover the rotation, never return I quietly
    rng = np.random.default_rng(int(angle * 1e3) + dim)
    ref = rng.normal(scale=6.0, size=(20, dim))
    ref -= ref.mean(axis=0)
    axes = [rng.normal(size=3), np.array([0.0, 0.0, 1.0]), np.array([1.0, 1.0, 1.0])]
    for axis in axes:
        Q = _rotation(axis, angle)[:dim, :dim] if dim == 3 else _rotation([0, 0, 1], angle)[:2, :2]
        x = (ref @ Q.T + 5.0).astype(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a unique optimum: no "not unique" warning
            res = ta.superpose(x[None], ref)
        assert res.diagnostics["fit_status"][0] in (0, 1)
        # aligned = (x - c) @ R = ref @ Q.T @ R, so R = Q
        tol = 1e-5 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(res.rotation[0], Q, atol=tol)
        assert res.rmsd[0] < (1e-4 if dtype == np.float32 else 1e-9)
        if angle > 1e-3:
            assert np.abs(res.rotation[0] - np.eye(dim)).max() > 1e-4


def test_point_and_principal_frames_follow_a_rotation():
    # the other rotation methods: rotating the input leaves their output unchanged, so
    # their rotation absorbed it (an identity would leave the output rotated)
    rng = np.random.default_rng(5)
    X = rng.normal(scale=4.0, size=(3, 15, 3)) * [3.0, 2.0, 1.0]
    for angle in (np.pi, np.pi - 1e-9, 1e-9, 2.0):
        Q = _rotation(rng.normal(size=3), angle)
        for fn, args in [(ta.align_principal, ()), (ta.align_points, (0, 1, 2))]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                a = fn(X, *args, sign="skew") if args == () else fn(X, *args)
                b = fn(X @ Q.T + 3.0, *args, sign="skew") if args == () else fn(X @ Q.T, *args)
            np.testing.assert_allclose(b.coords, a.coords, atol=1e-9)
