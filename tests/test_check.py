"""The equivariance check: every method keeps its promises on the sample data, and a
broken method is caught (API and ``trajalign check``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import BUTANE_DCD, BUTANE_PDB, CHAIN2D
from trajalign import diagnostics as dg


@pytest.fixture(scope="module")
def butane():
    import trajalign as ta

    with ta.open_source(BUTANE_DCD, top=BUTANE_PDB) as src:
        return src.read(0, 60).coords, src.masses


def _promised(rows):
    return [r for r in rows if r["promise"] is not None]


@pytest.mark.parametrize("method", dg.methods_for(2, 12))
def test_every_method_keeps_its_promises_on_chain2d(chain2d, method, unchanged):
    x = unchanged(chain2d[:80])
    rows = dg.check_invariance(x, method, trials=2)
    assert [r["transformation"] for r in rows] == list(dg.TRANSFORMATIONS)
    bad = [r for r in rows if r["ok"] is False]
    assert not bad, bad
    if method != "none":
        assert _promised(rows)
    for r in _promised(rows):
        assert r["max_change"] < r["tol"]


@pytest.mark.parametrize("method", dg.methods_for(3, 14))
def test_every_method_keeps_its_promises_on_butane(butane, method):
    x, masses = butane
    rows = dg.check_invariance(x, method, masses=masses, trials=2)
    assert all(r["ok"] is not False for r in rows), [r for r in rows if r["ok"] is False]


def test_planted_non_invariant_transform_is_caught(chain2d):
    """A 'method' that returns the raw coordinates, claimed invariant, must fail every
    rigid motion and the permutation."""

    def raw_coordinates(X, masses):
        return np.asarray(X)

    rows = dg.check_invariance(chain2d[:40], raw_coordinates)
    assert [r["ok"] for r in rows] == [False] * len(dg.TRANSFORMATIONS)
    assert min(r["max_change"] for r in rows) > 1000 * rows[0]["tol"]


def test_subtly_broken_method_is_caught(chain2d):
    """Centering on the mean of the first half only is still translation invariant but
    not permutation equivariant; a Method that claims both is caught on the one only."""

    def half_center(X, masses):
        x = np.asarray(X, dtype=np.float64)
        return x - x[:, : x.shape[1] // 2].mean(axis=1, keepdims=True)

    m = dg.Method(
        "half-center",
        half_center,
        "coords",
        {"translation": "invariant", "rotation": "equivariant", "permutation": "equivariant"},
    )
    rows = {r["transformation"]: r for r in dg.check_invariance(chain2d[:40], m)}
    assert rows["translation"]["ok"] and rows["rotation"]["ok"]
    assert rows["permutation"]["ok"] is False
    assert rows["reflection"]["ok"] is None  # not promised: reported, not judged


def test_principal_continuity_is_not_per_frame_invariant(chain2d):
    """Continuity picks each frame's signs from the previous frame's axes in the lab
    frame, so independent per-frame rotations change it (not promised); skew signs are
    per-frame invariant and promised."""
    cont = {r["transformation"]: r for r in dg.check_invariance(chain2d[:80], "principal")}
    assert cont["rotation per frame"]["promise"] is None
    assert cont["rotation per frame"]["max_change"] > 1.0
    skew = dg.check_invariance(chain2d[:80], "principal", sign="skew")
    assert {r["transformation"]: r["ok"] for r in skew}["rotation per frame"] is True


def test_dihedrals_change_sign_under_reflection(butane):
    x, _ = butane
    rows = {r["transformation"]: r for r in dg.check_invariance(x, "dihedrals")}
    assert rows["reflection"]["promise"] == "negated" and rows["reflection"]["ok"]


def test_tolerance_follows_dtype(chain2d):
    r32 = dg.check_invariance(chain2d[:20], "distances", transformations=["rotation"])[0]
    r64 = dg.check_invariance(
        chain2d[:20].astype(np.float64), "distances", transformations=["rotation"]
    )[0]
    assert r32["tol"] / r64["tol"] == pytest.approx(
        np.finfo(np.float32).eps / np.finfo(np.float64).eps, rel=1e-6
    )
    assert r64["max_change"] < 1e-12


# ------------------------------------------------------------------- command line


def test_check_command_passes_on_sample_data(cli):
    r = cli("check", CHAIN2D, "--frames", "60", "--trials", "1")
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["method", "transformation", "promise"]
    assert "BROKEN" not in r.stdout and "ok" in r.stdout
    assert "0 broken" in r.stderr


def test_check_command_3d_json(cli):
    r = cli(
        "check", BUTANE_DCD, "-t", BUTANE_PDB, "--frames", "30", "--method",
        "kabsch,dihedrals,eigvals", "--transform", "rotation-per-frame,permutation", "--json",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["method"], x["transformation"]) for x in rows][:2] == [
        ("kabsch", "rotation per frame"),
        ("kabsch", "permutation"),
    ]
    assert {x["ok"] for x in rows} <= {True, None}


def test_check_command_fails_on_a_broken_method(cli, monkeypatch):
    real = dg.get_method

    def broken(name, dim=3, **params):
        m = real(name, dim, **params)
        if name == "point":  # the planted bug: forget to align
            m = dg.Method("point", lambda X, masses: np.asarray(X), "coords", m.promises)
        return m

    monkeypatch.setattr(dg.registry, "get_method", broken)  # where resolve_method looks it up
    r = cli("check", CHAIN2D, "--frames", "30", "--method", "kabsch,point", "--json")
    assert r.code == 1
    rows = json.loads(r.stdout)
    assert all(x["ok"] is not False for x in rows if x["method"] == "kabsch")
    assert any(x["ok"] is False for x in rows if x["method"] == "point")
    err = r.stderr.strip().splitlines()
    assert err[-1].startswith("Error: point is not invariant under translation")


@pytest.mark.parametrize(
    "args, message",
    [
        (("--method", "spin"), "--method 'spin'"),
        (("--method", "dihedrals"), "dihedrals need 3D"),
        (("--transform", "shear"), "--transform"),
        (("--frames", "0"), "--frames 0"),
        (("--method", "point", "--points", "0,1,2"), "2D takes two points"),
    ],
)
def test_check_command_bad_input(cli, args, message):
    r = cli("check", CHAIN2D, "--frames", "10", *args)
    assert r.code == 1
    assert r.stderr.startswith("Error: ") and message in r.stderr, r.stderr


def test_check_periodic_images_holds_and_catches_a_repair_that_does_nothing(cli, monkeypatch):
    """The repair makes outputs independent of the images atoms were written in; with the
    repair switched off (planted failure) the check reports the broken promise."""
    from trajalign.pbc import Repair

    from .conftest import SAMPLE

    args = ["check", SAMPLE / "dimer.dcd", "-t", SAMPLE / "dimer.pdb", "-s", "resname CHA"]
    args += ["--pbc", "cluster", "--method", "kabsch,distances", "--frames", 50]
    res = cli(*args, "--transform", "periodic-images", "--json")
    assert res.code == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["transformation"] for r in rows] == ["periodic images"] * 2
    assert all(r["ok"] for r in rows)
    monkeypatch.setattr(Repair, "apply", lambda self, x, h, start, scan=None: {})
    res = cli(*args, "--transform", "periodic-images")
    assert res.code == 1 and "not invariant under periodic images" in res.stderr


def test_every_method_name_has_a_factory():
    # the command line lists the names of trajalign._names without importing numpy; each
    # must be registered, or --method NAME fails only when run
    assert set(dg.METHOD_NAMES) <= set(dg.registered_methods())


def test_a_registered_method_is_one_entry(monkeypatch, chain2d):
    # a new method is one registered factory: get_method builds it, methods_for offers it
    # where it applies, and the check judges its promises
    monkeypatch.setattr(dg.registry, "_REGISTRY", dict(dg.registry._REGISTRY))
    monkeypatch.setattr(dg.registry, "_APPLIES", dict(dg.registry._APPLIES))
    monkeypatch.setattr(dg.registry, "METHOD_NAMES", (*dg.METHOD_NAMES, "radius"))

    def radius(X, masses):
        x = np.asarray(X, dtype=np.float64)
        r = x - x.mean(axis=1, keepdims=True)
        return np.sqrt(np.mean(np.sum(r * r, axis=-1), axis=1))[:, None]

    @dg.register_method("radius", applies=lambda dim, n: n >= 2)
    def _radius(p):
        promises = dict.fromkeys(dg.TRANSFORMATIONS, "invariant")
        return dg.Method("radius", radius, "features", promises)

    assert "radius" in dg.methods_for(2, 12) and "radius" not in dg.methods_for(2, 1)
    rows = dg.check_invariance(chain2d[:20], "radius")
    assert [r["transformation"] for r in rows] == list(dg.TRANSFORMATIONS)
    assert all(r["ok"] for r in rows), rows
