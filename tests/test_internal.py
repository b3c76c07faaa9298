"""Internal coordinates (issue 4): the Python API against numpy references, MDAnalysis and
MDTraj, property tests, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation

import trajalign.box as tbox
import trajalign.internal as ti
from trajalign.errors import DataError, NumericalError, ParameterError, SelectionError

from . import reference as ref

mda = pytest.importorskip("MDAnalysis")
from MDAnalysis.lib import distances as mdd  # noqa: E402
from MDAnalysis.lib.mdamath import triclinic_vectors  # noqa: E402


def _universe(*files, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(*files, **kw)


@pytest.fixture(scope="module")
def adk():
    """AdK (PSF + DCD from MDAnalysisTests): 3 frames, topology bonds/angles/dihedrals."""
    from MDAnalysisTests.datafiles import DCD, PSF

    u = _universe(PSF, DCD)
    X = np.stack([ts.positions.copy() for ts in u.trajectory[:3]])
    sel = u.select_atoms("resid 1-20")  # 300-odd atoms keep the test fast
    idx = sel.indices
    pos = np.full(u.atoms.n_atoms, -1)
    pos[idx] = np.arange(idx.size)

    def inside(group):
        t = pos[group.indices]
        return t[np.all(t >= 0, axis=1)]

    return {
        "X": X[:, idx],
        "bonds": inside(u.bonds),
        "angles": inside(u.angles),
        "dihedrals": inside(u.dihedrals),
    }


@pytest.fixture(scope="module")
def water_triclinic():
    """Solvent of the GRO/XTC pair of MDAnalysisTests, which lives in a triclinic
    (rhombic dodecahedron, angles 60/60/90) box: 3 frames of 600 atoms, boxes (3, 6)."""
    from MDAnalysisTests.datafiles import GRO, XTC

    u = _universe(GRO, XTC)
    ag = u.select_atoms("resname SOL")[:600]
    X, boxes = [], []
    for ts in u.trajectory[:3]:
        X.append(ag.positions.copy())
        boxes.append(ts.dimensions.copy())
    return np.stack(X), np.stack(boxes)


def _random_tuples(rng, n, width, k):
    t = np.stack([rng.choice(n, width, replace=False) for _ in range(k)])
    return t.astype(np.int64)


def _angle_diff(a, b):
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return np.minimum(d, 2 * np.pi - d)


# ----------------------------------------------------------------- MDAnalysis


def test_bonded_terms_match_mdanalysis_without_box(adk):
    X = adk["X"]
    d = ti.distances(X, adk["bonds"])
    a = ti.angles(X, adk["angles"])
    q = ti.dihedrals(X, adk["dihedrals"])
    assert d.dtype == np.float32 and a.dtype == np.float32 and q.dtype == np.float32
    for f in range(X.shape[0]):
        x = X[f]
        b, t, p = adk["bonds"], adk["angles"], adk["dihedrals"]
        np.testing.assert_allclose(d[f], mdd.calc_bonds(x[b[:, 0]], x[b[:, 1]]), atol=2e-5)
        np.testing.assert_allclose(
            a[f], mdd.calc_angles(x[t[:, 0]], x[t[:, 1]], x[t[:, 2]]), atol=2e-5
        )
        ref_q = mdd.calc_dihedrals(*(x[p[:, k]] for k in range(4)))
        assert _angle_diff(q[f], ref_q).max() < 1e-4


def test_triclinic_box_matches_mdanalysis(water_triclinic):
    X, boxes = water_triclinic
    assert not np.allclose(boxes[0, 3:], 90)  # the point of this test
    rng = np.random.default_rng(4)
    P, T, Q = (_random_tuples(rng, X.shape[1], w, 400) for w in (2, 3, 4))
    d = ti.distances(X, P, box=boxes)
    a = ti.angles(X, T, box=boxes)
    q = ti.dihedrals(X, Q, box=boxes)
    for f in range(X.shape[0]):
        x, box = X[f], boxes[f]
        ref_d = mdd.calc_bonds(x[P[:, 0]], x[P[:, 1]], box=box)
        # random pairs span the box: many need an image shift, some the 27-image search
        assert np.mean(np.abs(ref_d - mdd.calc_bonds(x[P[:, 0]], x[P[:, 1]])) > 1) > 0.5
        np.testing.assert_allclose(d[f], ref_d, atol=5e-5)
        ref_a = mdd.calc_angles(*(x[T[:, k]] for k in range(3)), box=box)
        np.testing.assert_allclose(a[f], ref_a, atol=5e-5)
        # MDAnalysis forms difference vectors in float32; random quadruplets include
        # ill-conditioned ones, so the dihedral tolerance is looser
        ref_q = mdd.calc_dihedrals(*(x[Q[:, k]] for k in range(4)), box=box)
        assert np.median(_angle_diff(q[f], ref_q)) < 1e-5
        assert np.quantile(_angle_diff(q[f], ref_q), 0.99) < 1e-3


def test_triclinic_box_matches_brute_force_minimum_image(water_triclinic):
    X, boxes = water_triclinic
    X = X[:1].astype(np.float64)
    rng = np.random.default_rng(5)
    P = _random_tuples(rng, X.shape[1], 2, 500)
    h = ref.ref_box_vectors(boxes[0])
    np.testing.assert_allclose(ti.box_vectors(boxes[0]), triclinic_vectors(boxes[0]), atol=1e-4)
    np.testing.assert_allclose(
        ti.distances(X, P, box=boxes[0]), ref.ref_distances(X, P, h), atol=1e-9
    )


def test_orthorhombic_box_matches_mdanalysis_and_wraps():
    rng = np.random.default_rng(6)
    box = np.array([12.0, 15.0, 9.0, 90, 90, 90])
    X = (rng.random((3, 50, 3)) * box[:3]).astype(np.float32)
    P = _random_tuples(rng, 50, 2, 300)
    T = _random_tuples(rng, 50, 3, 300)
    Q = _random_tuples(rng, 50, 4, 300)
    d = ti.distances(X, P, box=box)
    assert d.max() <= np.linalg.norm(box[:3]) / 2 + 1e-5  # nothing beyond half the box
    for f in range(3):
        x = X[f]
        np.testing.assert_allclose(d[f], mdd.calc_bonds(x[P[:, 0]], x[P[:, 1]], box=box), atol=2e-5)
        np.testing.assert_allclose(
            ti.angles(X, T, box=box)[f],
            mdd.calc_angles(*(x[T[:, k]] for k in range(3)), box=box),
            atol=2e-5,
        )
        ref_q = mdd.calc_dihedrals(*(x[Q[:, k]] for k in range(4)), box=box)
        assert np.median(_angle_diff(ti.dihedrals(X, Q, box=box)[f], ref_q)) < 1e-5
    # the all-pairs kernel and the general one agree under the box too
    np.testing.assert_array_equal(
        ti.distances(X, "all", box=box), ti.distances(X, ti.all_pairs(50), box=box)
    )


def test_box_forms_agree(water_triclinic):
    X, boxes = water_triclinic
    P = _random_tuples(np.random.default_rng(7), X.shape[1], 2, 100)
    per_frame = ti.distances(X, P, box=boxes)
    vectors = np.stack([triclinic_vectors(b) for b in boxes])
    np.testing.assert_allclose(ti.distances(X, P, box=vectors), per_frame, atol=1e-4)
    one = ti.distances(X[:1], P, box=boxes[0])
    np.testing.assert_allclose(one, per_frame[:1], atol=1e-6)
    np.testing.assert_allclose(ti.distances(X[:1], P, box=vectors[0]), one, atol=1e-4)


# --------------------------------------------------------------------- MDTraj


def test_matches_mdtraj(adk, water_triclinic):
    md = pytest.importorskip("mdtraj")
    X = adk["X"]
    top = md.Topology()
    res = top.add_residue("X", top.add_chain())
    for _ in range(X.shape[1]):
        top.add_atom("C", md.element.carbon, res)
    traj = md.Trajectory(X / 10.0, top)  # MDTraj works in nm
    np.testing.assert_allclose(
        ti.distances(X, adk["bonds"]),
        10 * md.compute_distances(traj, adk["bonds"], periodic=False),
        atol=1e-4,
    )
    np.testing.assert_allclose(
        ti.angles(X, adk["angles"]),
        md.compute_angles(traj, adk["angles"], periodic=False),
        atol=1e-4,
    )
    assert (
        _angle_diff(
            ti.dihedrals(X, adk["dihedrals"]),
            md.compute_dihedrals(traj, adk["dihedrals"], periodic=False),
        ).max()
        < 1e-4
    )
    # periodic, triclinic: MDTraj's minimum image is exact for separations below half
    # the box, so compare pairs within 8 A (bonded-like); the box is 80 A
    W, boxes = water_triclinic
    wtop = md.Topology()
    res = wtop.add_residue("W", wtop.add_chain())
    for _ in range(W.shape[1]):
        wtop.add_atom("O", md.element.oxygen, res)
    vec = np.stack([triclinic_vectors(b) for b in boxes]) / 10.0
    wtraj = md.Trajectory(W / 10.0, wtop)
    wtraj.unitcell_vectors = vec
    d_all = ti.distances(W, "all", box=boxes)
    pairs = ti.all_pairs(W.shape[1])[np.flatnonzero(d_all.max(axis=0) < 8.0)][:2000]
    assert len(pairs) > 100
    np.testing.assert_allclose(
        ti.distances(W, pairs, box=boxes),
        10 * md.compute_distances(wtraj, pairs, periodic=True),
        atol=2e-4,
    )


# --------------------------------------------------------------- numpy reference


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chain_tuples_match_reference(chain2d, dim, dtype, unchanged):
    if dim == 2:
        X = unchanged(chain2d[:50].astype(dtype))
    else:
        rng = np.random.default_rng(8)
        X = unchanged(np.cumsum(rng.normal(size=(20, 15, 3)), axis=1).astype(dtype))
    n = X.shape[1]
    before = X.copy()
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for w, fn, rf in ((2, ti.distances, ref.ref_distances), (3, ti.angles, ref.ref_angles)):
        t = ti.chain_tuples(n, w)
        np.testing.assert_array_equal(t, ref.ref_chain(n, w))
        out = fn(X, t)
        assert out.dtype == dtype and out.shape == (X.shape[0], n - w + 1)
        np.testing.assert_allclose(out, rf(X, t), atol=tol, rtol=tol)
    if dim == 3:
        t = ti.chain_tuples(n, 4)
        out = ti.dihedrals(X, t)
        assert _angle_diff(out, ref.ref_dihedrals(X, t)).max() < tol
    np.testing.assert_array_equal(X, before)


def test_all_pairs_matches_pdist_order(chain2d):
    from scipy.spatial.distance import pdist

    X = chain2d[:5]
    d = ti.distances(X, "all")
    np.testing.assert_allclose(d, np.stack([pdist(x) for x in X.astype(np.float64)]), atol=1e-5)
    # the fast all-pairs kernel and the general tuple kernel give identical numbers
    p = ti.all_pairs(X.shape[1])
    from trajalign.kernels.geometry import distances_kernel

    out = np.empty_like(d)
    distances_kernel(tbox.pad3(X), p, tbox.kernel_box_table(np.zeros((1, 3, 3)), 0), out)
    np.testing.assert_array_equal(d, out)


def test_2d_periodic_box_matches_reference():
    rng = np.random.default_rng(9)
    X = rng.random((4, 30, 2)) * [10.0, 6.0]
    P = _random_tuples(rng, 30, 2, 100)
    T = _random_tuples(rng, 30, 3, 100)
    h = np.diag([10.0, 6.0, 0.0])  # z is not periodic (and always 0)
    np.testing.assert_allclose(
        ti.distances(X, P, box=[10.0, 6.0]), ref.ref_distances(X, P, h * [1, 1, 0]), atol=1e-9
    )
    np.testing.assert_allclose(ti.angles(X, T, box=[10.0, 6.0]), ref.ref_angles(X, T, h), atol=1e-9)


def test_bond_graph_derivation_matches_mdanalysis_guesser():
    from .conftest import BUTANE_PDB

    u = _universe(str(BUTANE_PDB), guess_bonds=True)
    bonds = u.bonds.indices
    a = ti.angles_from_bonds(bonds)
    q = ti.dihedrals_from_bonds(bonds)
    canon_a = {tuple(t) if t[0] < t[2] else tuple(t[::-1]) for t in u.angles.indices.tolist()}
    canon_q = {tuple(t) if t[1] < t[2] else tuple(t[::-1]) for t in u.dihedrals.indices.tolist()}
    assert {tuple(t) for t in a.tolist()} == canon_a and len(a) == 24
    assert {tuple(t) for t in q.tolist()} == canon_q and len(q) == 27


def test_eigvals_and_featurisations_match_reference(chain2d):
    X = chain2d[:20].astype(np.float64)
    np.testing.assert_allclose(ti.eigvals(X), ref.ref_inverse_eigvals(X), atol=1e-10)
    r = ti.distances(X, "all")
    c = ti.rbf_centers(0.5, 6.0, 12)
    g = ti.default_gamma(c)
    np.testing.assert_allclose(ti.rbf(r, 0.5, 6.0, 12), ref.ref_rbf(r, c, g), atol=1e-12)
    np.testing.assert_allclose(ti.rbf(r, 0.5, 6.0, 12, gamma=0.3), ref.ref_rbf(r, c, 0.3))
    np.testing.assert_array_equal(ti.bins(r, 0.5, 6.0, 12), ref.ref_bins(r, c))
    np.testing.assert_allclose(ti.inverse(r), 1.0 / r)
    rep = ti.repeat(r, 5)
    assert rep.shape == (*r.shape, 5) and np.all(rep == r[..., None])
    phi = ti.dihedrals(np.random.default_rng(1).normal(size=(3, 6, 3)), ti.chain_tuples(6, 4))
    sc = ti.sincos(phi)
    np.testing.assert_allclose(sc, np.stack([np.sin(phi), np.cos(phi)], -1), atol=1e-12)


def test_dihedral_range_and_trans():
    # a planar zig-zag: trans is +pi exactly in float64 (never -pi), cis is 0
    trans = np.array([[[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]])
    cis = np.array([[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]])
    q = [[0, 1, 2, 3]]
    assert ti.dihedrals(trans, q)[0, 0] == pytest.approx(np.pi)
    assert ti.dihedrals(trans.astype(np.float32), q)[0, 0] > 0
    assert ti.dihedrals(cis, q)[0, 0] == pytest.approx(0.0, abs=1e-12)
    # IUPAC sign: looking along j->k (+x, with +z up, +y is on the left), the near bond
    # j->i points left (+y) and the far bond k->l up (+z): a clockwise quarter turn, +pi/2;
    # MDAnalysis' calc_dihedrals gives the same value on these points
    gauche = np.array([[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 1.0]]])
    expected = mdd.calc_dihedrals(*(gauche[0, k][None] for k in range(4)))[0]
    assert ti.dihedrals(gauche, q)[0, 0] == pytest.approx(expected)
    assert expected == pytest.approx(np.pi / 2)


# ------------------------------------------------------------------- properties

coords3 = arrays(
    np.float64,
    st.tuples(st.integers(1, 3), st.integers(5, 9), st.just(3)),
    elements=st.floats(-10, 10, allow_nan=False, width=64),
)


def _rigid(seed):
    rng = np.random.default_rng(seed)
    return Rotation.random(random_state=rng).as_matrix(), rng.normal(size=3) * 20


def _well_conditioned(X, t, min_dist=0.3, min_sin=0.1):
    """True if every tuple has bonds longer than min_dist and, for width >= 3, its
    consecutive bonds are not nearly parallel (the quantities are then stable)."""
    for k in range(t.shape[1] - 1):
        if np.min(np.linalg.norm(X[:, t[:, k + 1]] - X[:, t[:, k]], axis=-1)) < min_dist:
            return False
    for k in range(t.shape[1] - 2):
        u = X[:, t[:, k]] - X[:, t[:, k + 1]]
        v = X[:, t[:, k + 2]] - X[:, t[:, k + 1]]
        s = np.linalg.norm(np.cross(u, v), axis=-1) / (
            np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1)
        )
        if np.min(s) < min_sin:
            return False
    return True


@given(X=coords3, seed=st.integers(0, 2**32 - 1))
def test_invariant_under_rigid_motion(X, seed):
    R, c = _rigid(seed)
    Y = X @ R.T + c
    n = X.shape[1]
    np.testing.assert_allclose(ti.distances(Y, "all"), ti.distances(X, "all"), atol=1e-8)
    for w, fn in ((3, ti.angles), (4, ti.dihedrals)):
        t = ti.chain_tuples(n, w)
        if _well_conditioned(X, t):
            assert _angle_diff(fn(Y, t), fn(X, t)).max() < 1e-6
    if np.min(ti.distances(X, "all")) > 0.3:
        scale = np.abs(ti.eigvals(X)).max()
        np.testing.assert_allclose(ti.eigvals(Y), ti.eigvals(X), atol=1e-9 * max(scale, 1))


@given(X=coords3, seed=st.integers(0, 2**32 - 1))
def test_dihedrals_flip_sign_under_reflection(X, seed):
    t = ti.chain_tuples(X.shape[1], 4)
    if not _well_conditioned(X, t):
        return
    R, c = _rigid(seed)
    mirror = np.diag([1.0, 1.0, -1.0]) @ R  # an improper orthogonal map, det -1
    q, qm = ti.dihedrals(X, t), ti.dihedrals(X @ mirror.T + c, t)
    assert _angle_diff(qm, -q).max() < 1e-6
    np.testing.assert_allclose(ti.angles(X @ mirror.T, t[:, :3]), ti.angles(X, t[:, :3]), atol=1e-6)


@given(X=coords3, seed=st.integers(0, 2**32 - 1))
def test_eigvals_invariant_under_permutation(X, seed):
    if np.min(ti.distances(X, "all")) < 0.3:
        return
    perm = np.random.default_rng(seed).permutation(X.shape[1])
    ev = ti.eigvals(X)
    np.testing.assert_allclose(ti.eigvals(X[:, perm]), ev, atol=1e-9 * np.abs(ev).max())
    # and the sorted distances, for contrast, do not say which atom is which
    assert np.all(np.diff(ev, axis=1) <= 1e-12)


@given(
    u=arrays(np.float64, (2, 6), elements=st.floats(-0.2, 1.2)),
    n=st.integers(2, 30),
    lo=st.floats(0.0, 2.0),
    width=st.floats(1.0, 10.0),
)
def test_rbf_peaks_at_nearest_centre(u, n, lo, width):
    hi = lo + width
    r = lo + u * width  # around the centres; far outside them every Gaussian underflows
    c = ti.rbf_centers(lo, hi, n)
    e = ti.rbf(r, lo, hi, n)
    dist = np.abs(r[..., None] - c)
    nearest = np.argmin(dist, axis=-1)
    # where two centres are (nearly) equally close the peak may be either of them
    srt = np.sort(dist, axis=-1)
    clear = srt[..., 1] - srt[..., 0] > 1e-9 * (1 + width)
    assert np.all((np.argmax(e, axis=-1) == nearest)[clear])
    assert np.all(e <= 1.0) and np.all(e >= 0.0)
    b = ti.bins(r, lo, hi, n)
    assert np.all(b.sum(axis=-1) == 1)  # open-ended end bins: always exactly one hot
    assert np.all((np.argmax(b, axis=-1) == nearest)[clear])


# --------------------------------------------------------------------- bad input


def test_bad_tuples_and_2d_dihedrals(chain2d):
    X = chain2d[:3]
    with pytest.raises(SelectionError, match="out of range for 12 points"):
        ti.distances(X, [[0, 12]])
    with pytest.raises(SelectionError, match="not \\(K, 3\\)"):
        ti.angles(X, [[0, 1]])
    with pytest.raises(SelectionError, match="non-integer"):
        ti.distances(X, [[0.5, 1]])
    with pytest.raises(SelectionError, match="repeats a point"):
        ti.angles(X, [[0, 1, 0]])
    with pytest.raises(DataError, match="dihedrals need 3D"):
        ti.dihedrals(X, [[0, 1, 2, 3]])
    with pytest.raises(ParameterError, match="box"):
        ti.distances(X, [[0, 1]], box=[1.0, 2.0, 3.0])
    with pytest.raises(ParameterError, match="below 2"):
        ti.rbf(np.ones((2, 2)), 0, 1, 1)
    with pytest.raises(ParameterError, match="not above"):
        ti.bins(np.ones((2, 2)), 2, 1, 5)


def test_coincident_points_raise_or_give_nan():
    X = np.random.default_rng(2).normal(size=(4, 5, 3))
    X[2, 3] = X[2, 2]  # frame 2: points 2 and 3 coincide
    with pytest.raises(NumericalError, match=r"angle 1 \(points 1-2-3\) is undefined in frame 2"):
        ti.angles(X, ti.chain_tuples(5, 3))
    with pytest.raises(NumericalError, match=r"frame 2"):
        ti.dihedrals(X, ti.chain_tuples(5, 4))
    with pytest.raises(NumericalError, match=r"points 2 and 3 coincide"):
        ti.eigvals(X)
    with pytest.raises(NumericalError, match="frame 2"):
        ti.inverse(ti.distances(X, "all"))
    a = ti.angles(X, ti.chain_tuples(5, 3), undefined="nan")
    assert np.isnan(a).sum() == 2 and np.all(np.isnan(a[2, 1:]))
    assert np.all(np.isnan(ti.eigvals(X, undefined="nan")[2]))
    # collinear points leave a dihedral undefined too, with no coincident points
    line = np.zeros((1, 4, 3))
    line[0, :, 0] = [0, 1, 2, 3]
    assert np.isnan(ti.dihedrals(line, [[0, 1, 2, 3]], undefined="nan")[0, 0])


def test_vectorised_atan2_matches_numpy():
    """The kernels' own arctangent (Cephes' rational approximation) against libm."""
    from trajalign.kernels.geometry import _atan2

    from ._jit import jit_caller

    rng = np.random.default_rng(11)
    mag = 10.0 ** rng.uniform(-12, 12, size=(2, 4000))
    y, x = rng.choice([-1.0, 1.0], size=(2, 4000)) * mag
    special = [(0.0, 1.0), (0.0, -1.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 0.0), (1.0, 1.0),
               (-1.0, -1.0), (1e-300, -1.0), (0.66, 1.0), (0.6600001, 1.0), (2.0, 3.0)]  # fmt: skip
    y = np.concatenate([y, [s[0] for s in special]])
    x = np.concatenate([x, [s[1] for s in special]])
    atan2 = jit_caller(_atan2)
    got = np.array([atan2(a, b) for a, b in zip(y, x, strict=True)])
    want = np.arctan2(y, x)
    assert np.all(np.abs(got - want) <= 4 * np.spacing(np.abs(want)) + 1e-300)


@pytest.mark.parametrize("n", [np.inf, -np.inf, np.nan, 2.5])
def test_rbf_count_that_is_not_an_integer_is_refused(n):
    # found by fuzzing: n = inf raised OverflowError from int()
    with pytest.raises(ParameterError):
        ti.rbf_centers(0.0, 1.0, n)
    with pytest.raises(ParameterError):
        ti.bins(np.ones((1, 1)), 0.0, 1.0, n)


@pytest.mark.parametrize("lo,hi,n", [(-1e308, 1e308, 3), (0.0, 5e-324, 40), (-1.5e308, 1.5e308, 2)])
def test_unrepresentable_centres_are_refused_not_a_crash(lo, hi, n):
    # found by fuzzing: r_max - r_min overflowed to NaN/inf centres, the bins kernel
    # turned (r - NaN) / step into the index np.int64(NaN) and the interpreter died
    # with a segmentation fault (numba does not check bounds)
    with pytest.raises(ParameterError, match="not representable"):
        ti.bins(np.array([[0.0, 2.0]]), lo, hi, n)
    with pytest.raises(ParameterError, match="not representable"):
        ti.rbf(np.array([[0.0, 2.0]]), lo, hi, n)


def test_bins_kernel_never_indexes_with_nan():
    # the kernel itself stays in bounds whatever the centres (defence in depth)
    from trajalign.kernels.geometry import bins_kernel

    out = np.full((1, 3, 3), 7, dtype=np.uint8)
    bins_kernel(np.array([[0.0, 1.0, np.inf]]), np.array([np.nan, 1.0, 2.0]), out)
    assert out.sum() == 3 and set(np.unique(out)) <= {0, 1}


def test_default_gamma_that_underflows_is_a_parameter_error():
    # spacing 1e300: 1 / spacing^2 is 0
    with pytest.raises(ParameterError, match="rbf-gamma 0 is not positive"):
        ti.rbf(np.ones((1, 1)), -1e300, 0.0, 2)


# --------------------------------------- exact minimum image in skewed boxes (issue 12)


def _exact_images(d, h):
    """Shortest lattice translate of each vector of ``d`` (..., 3) in the box rows ``h``,
    and the gap to the next shortest image (0 for a tie), by brute force; None if the
    search would be too large.

    Exhaustive: start from a short translate ``m1`` (rounding in the unreduced box, then
    the 125 nearest shifts). Every image ``m`` no longer than ``|m1| + 1`` differs from
    ``m1`` by ``L = n h`` with ``|L| <= 2 |m1| + 1``, and ``n_i = L . col_i(h^-1)``, so
    ``|n_i| <= (2 |m1| + 1) |col_i(h^-1)|`` bounds the search per axis (cf. test_box).
    """
    shape = d.shape
    d = np.asarray(d, dtype=np.float64).reshape(-1, 3)
    hinv = np.linalg.inv(h)
    m1 = ref.ref_minimum_image(d - np.rint(d @ hinv) @ h, h, reach=2)
    r = np.linalg.norm(m1, axis=1).max()
    reach = np.ceil((2 * r + 1) * np.linalg.norm(hinv, axis=0)).astype(int)
    if np.prod(2 * reach + 1) > 20000:
        return None
    grid = np.meshgrid(*[np.arange(-k, k + 1) for k in reach], indexing="ij")
    cand = m1[:, None, :] + np.stack(grid, -1).reshape(-1, 3) @ h
    q = np.linalg.norm(cand, axis=-1)
    k = np.argsort(q, axis=1)[:, :2]
    best = np.take_along_axis(cand, k[:, :1, None], axis=1)[:, 0]
    gap = np.diff(np.take_along_axis(q, k, axis=1), axis=1)[:, 0]
    return best.reshape(shape), gap.reshape(shape[:-1])


def _unwrapped(X, t, h):
    """Each tuple of ``t`` (K, w) laid out as its own chain of w points joined by the
    exact minimum images: (F, K * w, 3), the (K, w) tuples into it, and the smallest
    gap to a second image per tuple (F, K). The reference functions then need no box."""
    steps = X[:, t[:, 1:]] - X[:, t[:, :-1]]  # (F, K, w - 1, 3)
    found = _exact_images(steps, h)
    if found is None:
        return None
    m, gap = found
    Y = np.concatenate([X[:, t[:, :1]], X[:, t[:, :1]] + np.cumsum(m, axis=2)], axis=2)
    idx = np.arange(t.size).reshape(t.shape)
    return Y.reshape(X.shape[0], -1, 3), idx, gap.min(axis=2)


skewed_boxes = st.tuples(*[st.floats(10.0, 60.0)] * 3, *[st.floats(40.0, 140.0)] * 3).map(np.array)
far_coords = arrays(
    np.float64,
    st.tuples(st.integers(1, 2), st.integers(4, 7), st.just(3)),
    elements=st.floats(-1e3, 1e3, allow_nan=False, width=64),
)


@settings(max_examples=150)
@given(dims=skewed_boxes, X=far_coords, seed=st.integers(0, 2**32 - 1))
def test_skewed_triclinic_box_matches_brute_force(dims, X, seed):
    """Distances, angles, dihedrals and eigvals in cells of any skew, with coordinates
    far outside the box, against an exhaustive search over lattice translations."""
    try:
        h = ti.box_vectors(dims)
    except ParameterError:
        return  # the angles make no cell
    if h[2, 2] < 1e-3 * dims[2]:
        return  # nearly flat: only blows up the brute force
    n = X.shape[1]
    rng = np.random.default_rng(seed)
    tuples = {w: np.stack([rng.permutation(n)[:w] for _ in range(6)]) for w in (2, 3, 4)}
    ref_pairs = _unwrapped(X, tuples[2], h)
    ref_all = _unwrapped(X, ti.all_pairs(n), h)
    if ref_pairs is None or ref_all is None:
        return

    # distances: ties do not matter (equal lengths); the all-pairs and tuple kernels
    Y, idx, _ = ref_all
    want = ref.ref_distances(Y, idx)
    np.testing.assert_allclose(ti.distances(X, "all", box=dims), want, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(
        ti.distances(X, ti.all_pairs(n)[:, ::-1], box=h), want, rtol=1e-12, atol=1e-9
    )
    Y, idx, _ = ref_pairs
    np.testing.assert_allclose(
        ti.distances(X, tuples[2], box=dims), ref.ref_distances(Y, idx), rtol=1e-12, atol=1e-9
    )
    if want.min() > 1e-3:
        ev = ti.eigvals(X, box=dims)
        for f in range(X.shape[0]):
            m = np.zeros((n, n))
            m[np.triu_indices(n, 1)] = 1.0 / want[f]
            w = np.linalg.eigvalsh(m + m.T)[::-1]
            np.testing.assert_allclose(ev[f], w, atol=1e-9 * np.abs(w).max())

    # angles and dihedrals, of jittered points (hypothesis favours coincident ones): only
    # where the nearest image is unique (a tie may pick either image) and the value is
    # well conditioned
    Xj = X + rng.uniform(-3.0, 3.0, X.shape)
    for w, fn, rfn in ((3, ti.angles, ref.ref_angles), (4, ti.dihedrals, ref.ref_dihedrals)):
        found = _unwrapped(Xj, tuples[w], h)
        if found is None:
            continue
        Y, idx, gap = found
        got = fn(Xj, tuples[w], box=dims, undefined="nan")
        with np.errstate(invalid="ignore"):
            want = rfn(Y, idx)
        ok = gap > 1e-6
        for k in range(len(idx)):
            ok[:, k] &= _well_conditioned(Y, idx[k : k + 1], min_dist=1e-2, min_sin=1e-3)
        assert np.all(_angle_diff(got, want)[ok] < 1e-6)


def test_skewed_box_where_the_27_image_search_missed(unchanged):
    """The issue-12 case: v = (-16, 21, 13) in [30, 50, 70, 50, 105, 60] is 13.4488 A
    long at its minimum image v - a + b - c; the reduce-then-27-images search gave
    28.06 A. Both distance kernels, box forms, float32, per-frame boxes, angles, eigvals."""
    dims = unchanged([30.0, 50.0, 70.0, 50.0, 105.0, 60.0])
    h = ti.box_vectors(dims)
    v = np.array([-16.0, 21.0, 13.0])
    r = 13.448785811026774
    X = unchanged(np.array([[[0.0, 0.0, 0.0], v, [1.0, 0.0, 0.0]]]))
    for box in (dims, h, h[None], np.asarray(dims)[None]):
        np.testing.assert_allclose(ti.distances(X[:, :2], "all", box=box), [[r]], rtol=1e-12)
        np.testing.assert_allclose(ti.distances(X, [[1, 0]], box=box), [[r]], rtol=1e-12)
    np.testing.assert_allclose(
        ti.distances(X.astype(np.float32), [[0, 1], [1, 0]], box=dims), [[r, r]], rtol=1e-6
    )
    np.testing.assert_allclose(ti.eigvals(X[:, :2], box=dims), [[1 / r, -1 / r]], rtol=1e-12)
    m = v - h[0] + h[1] - h[2]
    np.testing.assert_allclose(
        ti.angles(X, [[1, 0, 2]], box=dims), [[np.arccos(m[0] / r)]], rtol=1e-12
    )
    # per-frame boxes that mix an orthorhombic and the skewed cell: each frame its own
    # box (the all-pairs kernel picks its loop per frame)
    X2 = np.concatenate([X, X])
    boxes = np.array([[20.0, 20.0, 20.0, 90.0, 90.0, 90.0], dims])
    ortho = np.linalg.norm(v - 20.0 * np.rint(v / 20.0))
    for pairs in ("all", [[1, 0], [2, 0], [2, 1]]):
        d = ti.distances(X2, pairs, box=boxes)
        np.testing.assert_allclose(d[0], ti.distances(X, pairs, box=boxes[0])[0])
        np.testing.assert_allclose(d[1], ti.distances(X, pairs, box=dims)[0])
        np.testing.assert_allclose(d[:, 0], [ortho, r], rtol=1e-12)


def test_triclinic_box_without_a_lattice_is_refused():
    """A triclinic box with a zero a edge spans no lattice (the minimum image is
    undefined): refused, as by trajalign.minimum_image. A zero c row is a 2D lattice."""
    X = np.array([[[0.0, 0.0, 0.0], [9.0, 11.0, 0.0], [1.0, 2.0, 0.5]]])
    with pytest.raises(ParameterError, match="no lattice"):
        ti.distances(X, "all", box=[0.0, 10.0, 10.0, 60.0, 90.0, 90.0])
    h = ti.box_vectors([10.0, 12.0, 0.0, 90.0, 90.0, 60.0])
    assert np.all(h[2] == 0)
    want = np.linalg.norm(ref.ref_minimum_image(X[0, 1] - X[0, 0], h, reach=3))
    np.testing.assert_allclose(ti.distances(X[:, :2], "all", box=h), [[want]], rtol=1e-12)
