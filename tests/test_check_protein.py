"""``check`` at protein scale (issue 16): the input's own tuples, ill-conditioned dihedrals
left out and counted, tolerances that follow each method's conditioning, planted faults
caught, ``--sign none`` reported broken, and capped points for the all-pairs methods.

Real systems from MDAnalysisTests: adenylate kinase (CHARMM PSF/DCD, GROMACS TPR/XTC),
Amber alanine dipeptide in water (prmtop/NetCDF) and an NMR ensemble (multi-model PDB).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import trajalign as ta
from trajalign import diagnostics as dg
from trajalign.jobs.internal import bonded_tuples

mdt = pytest.importorskip("MDAnalysisTests.datafiles")


@pytest.fixture(scope="module")
def adk():
    """10 frames of adenylate kinase (3341 atoms, float32), masses, topology tuples."""
    with ta.open_source(mdt.DCD, top=mdt.PSF) as src:
        return src.read(0, 10).coords, src.masses, bonded_tuples(src), src.universe


def _turn(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _broken(rows):
    return {r["transformation"] for r in rows if r["ok"] is False}


# ------------------------------------------------------------------- conditioning


def _fd_gradient_norms(func, frame: np.ndarray, atoms, h: float = 1e-6) -> float:
    """Sum over ``atoms`` of the norm of d func / d r_atom, by central differences."""
    total = 0.0
    for a in atoms:
        g = np.zeros(3)
        for d in range(3):
            up, down = frame.copy(), frame.copy()
            up[a, d] += h
            down[a, d] -= h
            g[d] = (func(up[None]) - func(down[None])) / (2 * h)
        total += np.linalg.norm(g)
    return total


def test_dihedral_conditioning_is_the_gradient_norm(adk):
    """The sensitivity of a dihedral is the sum of its four gradient norms: compared with
    central differences of ta.dihedrals in float64; the flanking sines with MDAnalysis."""
    from MDAnalysis.lib.distances import calc_angles

    x, _, tuples, _ = adk
    frame = x[0].astype(np.float64)
    quads = tuples["dihedrals"][::997][:8]
    kappa, sin_min = dg.dihedral_conditioning(frame[None], quads)
    for q, k in zip(quads, kappa, strict=True):
        fd = _fd_gradient_norms(lambda y, q=q: ta.dihedrals(y, q[None])[0, 0], frame, q)
        assert k == pytest.approx(fd, rel=1e-5)
    a1 = calc_angles(frame[quads[:, 0]], frame[quads[:, 1]], frame[quads[:, 2]])
    a2 = calc_angles(frame[quads[:, 1]], frame[quads[:, 2]], frame[quads[:, 3]])
    np.testing.assert_allclose(sin_min, np.minimum(np.sin(a1), np.sin(a2)), rtol=1e-9)


def test_angle_conditioning_bounds_the_gradient(adk):
    x, _, tuples, _ = adk
    frame = x[0].astype(np.float64)
    trips = tuples["angles"][::1009][:6]
    kappa = dg.angle_conditioning(frame[None], trips)
    for t, k in zip(trips, kappa, strict=True):
        fd = _fd_gradient_norms(lambda y, t=t: ta.angles(y, t[None])[0, 0], frame, t)
        assert fd <= k * (1 + 1e-6) and k <= 2 * fd


@pytest.mark.parametrize("method", ["kabsch", "principal", "point"])
def test_conditioning_bounds_the_change_under_a_small_move(adk, method):
    """Moving every point by at most d changes the output by at most conditioning x d
    (float64, so the move, not rounding, is what changes it)."""
    x, masses, _, _ = adk
    x64 = x[:4].astype(np.float64)
    m = dg.get_method(method, 3, sign="skew")
    kappa = m.conditioning(x64, masses)
    rng = np.random.default_rng(1)
    d = 1e-5
    for _ in range(3):
        step = rng.normal(size=x64.shape)
        step *= d / np.linalg.norm(step, axis=-1, keepdims=True)  # every point by d
        a = np.asarray(m(x64, masses).values)
        b = np.asarray(m(x64 + step, masses).values)
        change = np.linalg.norm(b - a, axis=-1).max()
        assert change <= kappa * d
    assert kappa > 2.0  # a lever arm, not the bare centring


# ---------------------------------------------------------------- tuples and false alarms


def test_topology_tuples_are_the_universes(adk):
    import MDAnalysis as mda

    x, masses, tuples, _ = adk
    u = mda.Universe(mdt.PSF, mdt.DCD)
    assert len(tuples["dihedrals"]) == len(u.dihedrals) and len(tuples["angles"]) == len(u.angles)
    m = dg.get_method("dihedrals", 3, tuples=tuples)
    assert m.description == "the input's dihedrals"
    np.testing.assert_allclose(
        m(x[:2]).values,
        np.asarray([u.dihedrals.values() for _ in u.trajectory[:2]]),
        atol=2e-5,
    )
    rows = dg.check_invariance(x, m, masses=masses, trials=2)
    assert not _broken(rows) and all(r["note"] == "" for r in rows)


def test_consecutive_dihedrals_leave_out_the_nearly_straight_and_count_them(adk):
    """The issue's false alarm: dihedrals over consecutive atoms of adk include
    HZ1-HZ2-HZ3-C of a lysine (an angle of 0.11 degrees between unbonded hydrogens). They
    are left out, counted, and the rest keep every promise."""
    from MDAnalysis.lib.distances import calc_angles

    x, masses, _, u = adk
    rows = dg.check_invariance(x, "dihedrals", masses=masses, trials=2)
    assert not _broken(rows), rows
    quads = ta.chain_tuples(x.shape[1], 4)
    sines = np.ones(len(quads))
    for frame in x.astype(np.float64):
        for a, b, c in ((0, 1, 2), (1, 2, 3)):
            ang = calc_angles(frame[quads[:, a]], frame[quads[:, b]], frame[quads[:, c]])
            sines = np.minimum(sines, np.sin(ang))
    bad = sines < np.sin(np.radians(dg.COLLINEAR_DEG))
    assert 0 < bad.sum() < len(quads) // 10
    assert rows[0]["note"] == (
        f"{bad.sum()} of {len(quads)} dihedrals left out: a bond angle within "
        f"{dg.COLLINEAR_DEG:g} degrees of straight"
    )
    names = [tuple(u.atoms[list(q)].names) for q in quads[bad]]
    assert ("HZ1", "HZ2", "HZ3", "C") in names


def test_float64_input_has_no_false_alarm(adk):
    """In float64 the methods' own precision (QCP's Newton step) sets the change."""
    x, masses, tuples, _ = adk
    x64 = x[:5].astype(np.float64)
    for method in dg.methods_for(3, x.shape[1]):
        rows = dg.check_invariance(
            x64, method, masses=masses, trials=1, tuples=tuples, max_points=60
        )
        assert not _broken(rows), (method, rows)


# ------------------------------------------------------------------ planted faults


@pytest.mark.filterwarnings("ignore:principal axes swapped order")
def test_planted_faults_on_a_protein_are_caught(adk):
    """A centring 1e-4 A off along x, and an extra turn of 0.01 degrees in Kabsch and in
    principal axes, each break a promise; the healthy methods keep every one."""
    x, masses, _, _ = adk
    turn = _turn(0.01)

    def off_center(X, w):
        return ta.center(X, "com", masses=w) - np.array([1e-4, 0.0, 0.0])

    def kabsch_turned(X, w):
        r = ta.superpose(X, "first")
        return (np.asarray(X, np.float64) - r.translation[:, None]) @ r.rotation @ turn

    def principal_turned(X, w):
        # the turn in the lab frame, before the axes: a rotation of the input moves it
        r = ta.align_principal(X, masses=w, sign="skew")
        return np.matmul(np.asarray(X, np.float64) - r.translation[:, None], turn @ r.rotation)

    for fault, name in (
        (off_center, "center-com"),
        (kabsch_turned, "kabsch"),
        (principal_turned, "principal"),
    ):
        good = dg.get_method(name, 3, sign="skew")
        assert not _broken(dg.check_invariance(x, good, masses=masses))
        bad = dg.Method(name, fault, "coords", good.promises, conditioning=good.conditioning)
        rows = dg.check_invariance(x, bad, masses=masses)
        assert "rotation" in _broken(rows) or "rotation per frame" in _broken(rows), name
        worst = max(r["max_change"] / r["tol"] for r in rows if r["ok"] is False)
        assert worst > 1.4, (name, worst)


def test_check_command_catches_an_off_centre(cli, monkeypatch):
    real = dg.get_method

    def planted(name, dim=3, **params):
        m = real(name, dim, **params)
        if name == "center-com":
            f = m.func
            m.func = lambda X, w: f(X, w) - np.array([1e-4, 0.0, 0.0])
        return m

    monkeypatch.setattr(dg.registry, "get_method", planted)  # where resolve_method looks it up
    r = cli("check", mdt.DCD, "-t", mdt.PSF, "--frames", 10, "--method", "center-com", "--json")
    assert r.code == 1, r.stderr
    rows = json.loads(r.stdout)
    assert {x["transformation"] for x in rows if x["ok"] is False} >= {"rotation per frame"}
    assert r.stderr.strip().splitlines()[-1].startswith("Error: center-com is not equivariant")


def test_sign_none_is_reported_broken(cli):
    """--sign none keeps the eigen solver's signs: one rotation changes the output by tens
    of angstroms; check says so and exits 1 (the issue's "ok *" on every row)."""
    r = cli("check", mdt.PDB_multiframe, "--method", "principal", "--sign", "none", "--json")
    assert r.code == 1
    rows = {x["transformation"]: x for x in json.loads(r.stdout)}
    assert rows["rotation"]["ok"] is False and rows["rotation"]["max_change"] > 10
    assert rows["rotation per frame"]["ok"] is False
    assert rows["translation"]["ok"] is True
    assert "eigen solver" in rows["rotation"]["note"]
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("Error: principal is not invariant under rotation")
    assert "--sign skew" in err
    ok = cli("check", mdt.PDB_multiframe, "--method", "principal", "--sign", "skew")
    assert ok.code == 0, ok.stderr


# ------------------------------------------------------------- real systems, scale


@pytest.mark.parametrize(
    "args",
    [
        (mdt.DCD, "-t", mdt.PSF, "--frames", 10),
        (mdt.NCDF, "-t", mdt.PRMncdf, "--frames", 10),
        (mdt.PDB_multiframe, "--frames", 10),
        (mdt.XTC, "-t", mdt.TPR, "-s", "protein", "--frames", 5),
    ],
    ids=["adk-psf-dcd", "amber-bala", "nmr-ensemble", "adk-tpr-xtc"],
)
def test_every_method_passes_on_real_systems(cli, args):
    r = cli("check", *args, "--trials", 2, "--json")
    assert r.code == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {x["method"] for x in rows} == set(dg.methods_for(3, 100))
    assert all(x["ok"] is not False for x in rows)
    assert sum(x["ok"] is True for x in rows) >= 40


def test_all_pairs_methods_run_on_capped_points(cli, adk):
    x, masses, _, _ = adk
    idx = dg.even_points(x.shape[1], 50)
    assert idx[0] == 0 and idx[-1] == x.shape[1] - 1 and np.all(np.diff(idx) > 0)
    assert idx.size == 50 and dg.even_points(40, 50) is None
    rows = dg.check_invariance(x[:3], "eigvals", transformations=["rotation"], max_points=50)
    assert rows[0]["note"] == f"eigvals on 50 of {x.shape[1]} points, evenly spaced"
    assert rows[0]["ok"]
    r = cli("check", mdt.DCD, "-t", mdt.PSF, "--frames", 3, "--method", "distances,eigvals",
            "--atoms", 50, "--trials", 1)  # fmt: skip
    assert r.code == 0, r.stderr
    # distances use the topology's bonds (linear cost), eigvals the 50 points
    assert "eigvals on 50 evenly spaced points" in r.stderr
    assert "distances on" not in r.stderr and "the first 3 of 98 frames" in r.stderr
    assert "*" in r.stdout and "on 50 of 3341 points" in r.stdout


def test_progress_counts_every_frame_of_every_run(adk):
    x, masses, _, _ = adk
    seen = []
    dg.check_invariance(x[:4], "kabsch", trials=2, progress=seen.append)
    assert sum(seen) == 4 * (1 + 2 * len(dg.TRANSFORMATIONS))
