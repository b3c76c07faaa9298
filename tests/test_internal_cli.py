"""``trajalign internal`` end to end: datasets, values, periodic inputs, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import h5py
import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysis.lib import distances as mdd

import trajalign.internal as ti

from . import reference as ref
from .conftest import BUTANE_DCD, BUTANE_PDB, CHAIN2D

F = "trajalign/features"


def only_error_line(res, code=1):
    """The failure contract: exit status, exactly one 'Error: ...' line, no traceback."""
    lines = res.stderr.strip().splitlines()
    assert res.code == code, res
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    return lines[0]


def _universe(*files, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(*files, **kw)


def test_butane_bonded_features_match_mdanalysis(cli, tmp_path):
    out = tmp_path / "b.h5"
    res = cli("internal", BUTANE_DCD, "-t", BUTANE_PDB, "--stop", 50, "-o", out, "--json")
    assert res.code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["method"] == "internal" and summary["frames"] == 50
    u = _universe(str(BUTANE_PDB), str(BUTANE_DCD))
    with h5py.File(out) as f:
        assert "particles/trajectory/position" not in f  # features only
        assert f["trajalign/frames/index"].shape == (50,)
        np.testing.assert_array_equal(f["trajalign/atom_indices"][()], np.arange(14))
        bonds = f[f"{F}/distances/indices"][()]
        angles = f[f"{F}/angles/indices"][()]
        dih = f[f"{F}/dihedrals/indices"][()]
        # butane: 13 bonds in the PDB's CONECT records; 24 angles and 27 dihedrals
        # derived from them (the counts MDAnalysis' guesser gives for the same graph)
        assert bonds.shape == (13, 2) and angles.shape == (24, 3) and dih.shape == (27, 4)
        assert f[f"{F}/distances/value"].attrs["unit"] == "Angstrom"
        assert f[f"{F}/angles/value"].attrs["unit"] == "radian"
        d, a, q = (f[f"{F}/{k}/value"][()] for k in ("distances", "angles", "dihedrals"))
    box = u.dimensions
    for i, ts in enumerate(u.trajectory[:50:7]):
        x = ts.positions
        np.testing.assert_allclose(
            d[i * 7], mdd.calc_bonds(x[bonds[:, 0]], x[bonds[:, 1]], box=box), atol=1e-5
        )
        np.testing.assert_allclose(
            a[i * 7], mdd.calc_angles(*(x[angles[:, k]] for k in range(3)), box=box), atol=1e-5
        )
        ref_q = mdd.calc_dihedrals(*(x[dih[:, k]] for k in range(4)), box=box)
        diff = np.abs(q[i * 7] - ref_q)
        assert np.minimum(diff, 2 * np.pi - diff).max() < 1e-4
    assert np.all(a >= 0) and np.all(a <= np.float32(np.pi))
    assert np.all(q > -np.pi) and np.all(q <= np.float32(np.pi))


def test_chain2d_default_chain_and_transforms(cli, tmp_path, chain2d):
    out = tmp_path / "c.h5"
    res = cli(
        "internal",
        CHAIN2D,
        "--stop",
        40,
        "--transform",
        "inverse,rbf,bins,repeat",
        "--rbf-min",
        "0.5",
        "--rbf-max",
        "6",
        "--rbf-n",
        "12",
        "--chunk-frames",
        "16",
        "-o",
        out,
    )
    assert res.code == 0, res.stderr
    X = chain2d[:40]
    with h5py.File(out) as f:
        assert set(f[F]) == {
            "distances",
            "angles",
            "distances_inverse",
            "distances_rbf",
            "distances_bins",
            "distances_repeat",
        }  # 2D: no dihedrals unless asked (and then an error)
        pairs = f[f"{F}/distances/indices"][()]
        np.testing.assert_array_equal(pairs, ref.ref_chain(12, 2))
        np.testing.assert_array_equal(f[f"{F}/angles/indices"][()], ref.ref_chain(12, 3))
        r = f[f"{F}/distances/value"][()]
        np.testing.assert_allclose(r, ref.ref_distances(X, pairs), atol=1e-5)
        np.testing.assert_allclose(
            f[f"{F}/angles/value"][()], ref.ref_angles(X, ref.ref_chain(12, 3)), atol=1e-5
        )
        rbf = f[f"{F}/distances_rbf/value"]
        assert rbf.shape == (40, 11, 12)
        centers = np.linspace(0.5, 6.0, 12)
        np.testing.assert_allclose(rbf.attrs["centers"], centers)
        gamma = rbf.attrs["gamma"]
        assert gamma == pytest.approx(1 / 0.5**2)  # default: 1 / spacing^2
        np.testing.assert_allclose(rbf[()], ref.ref_rbf(r, centers, gamma), atol=1e-6)
        np.testing.assert_array_equal(f[f"{F}/distances_bins/value"][()], ref.ref_bins(r, centers))
        np.testing.assert_allclose(f[f"{F}/distances_inverse/value"][()], 1 / r, rtol=1e-6)
        rep = f[f"{F}/distances_repeat/value"][()]
        assert rep.shape == (40, 11, 12) and np.all(rep == r[..., None])
        np.testing.assert_array_equal(f[f"{F}/distances_rbf/indices"][()], pairs)


def test_all_pairs_eigvals_and_sincos(cli, tmp_path, chain2d):
    out = tmp_path / "e.h5"
    res = cli(
        "internal", CHAIN2D, "--stop", 30, "--pairs", "all", "--features", "distances,eigvals",
        "-o", out,
    )  # fmt: skip
    assert res.code == 0, res.stderr
    X = chain2d[:30]
    with h5py.File(out) as f:
        assert set(f[F]) == {"distances", "eigvals"}
        np.testing.assert_array_equal(f[f"{F}/distances/indices"][()], ti.all_pairs(12))
        np.testing.assert_allclose(
            f[f"{F}/eigvals/value"][()], ref.ref_inverse_eigvals(X), rtol=1e-5, atol=1e-5
        )
        assert f[f"{F}/eigvals/value"].attrs["unit"] == "1/Angstrom"
    out2 = tmp_path / "s.h5"
    res = cli(
        "internal", BUTANE_DCD, "-t", BUTANE_PDB, "--stop", 5, "--features", "dihedrals",
        "--dihedral-encoding", "sincos", "-o", out2,
    )  # fmt: skip
    assert res.code == 0, res.stderr
    with h5py.File(out2) as f:
        assert set(f[F]) == {"dihedrals", "dihedrals_sincos"}
        q = f[f"{F}/dihedrals/value"][()]
        sc = f[f"{F}/dihedrals_sincos/value"][()]
        np.testing.assert_allclose(sc, np.stack([np.sin(q), np.cos(q)], -1), atol=1e-6)


@pytest.fixture()
def split_molecule(tmp_path):
    """A 4-atom chain bonded across the x boundary of a 10 A box, as a one-frame PDB with
    CONECT records; also returns the unwrapped coordinates."""
    unwrapped = np.array(
        [[8.6, 5.0, 5.0], [9.9, 5.8, 5.0], [10.9, 5.2, 5.6], [12.2, 5.9, 6.3]], dtype=np.float32
    )
    u = mda.Universe.empty(4, trajectory=True)
    u.add_TopologyAttr("names", ["C1", "C2", "C3", "C4"])
    u.add_TopologyAttr("resnames", ["BUT"])
    u.add_TopologyAttr("bonds", [(0, 1), (1, 2), (2, 3)])
    u.atoms.positions = unwrapped - [[0, 0, 0], [0, 0, 0], [10, 0, 0], [10, 0, 0]]
    u.dimensions = [10.0, 10.0, 10.0, 90.0, 90.0, 90.0]
    path = tmp_path / "split.pdb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.atoms.write(str(path))
    return path, unwrapped[None]


def test_periodic_minimum_image_and_no_pbc(cli, tmp_path, split_molecule):
    path, unwrapped = split_molecule
    on, off = tmp_path / "on.h5", tmp_path / "off.h5"
    assert cli("internal", path, "-o", on).code == 0
    assert cli("internal", path, "--no-pbc", "-o", off).code == 0
    with h5py.File(on) as f, h5py.File(off) as g:
        bonds = f[f"{F}/distances/indices"][()]
        np.testing.assert_array_equal(bonds, [[0, 1], [1, 2], [2, 3]])
        for k, fn in (("distances", ref.ref_distances), ("angles", ref.ref_angles)):
            t = f[f"{F}/{k}/indices"][()]
            np.testing.assert_allclose(f[f"{F}/{k}/value"][()], fn(unwrapped, t), atol=1e-5)
        t = f[f"{F}/dihedrals/indices"][()]
        np.testing.assert_allclose(
            f[f"{F}/dihedrals/value"][()], ref.ref_dihedrals(unwrapped, t), atol=1e-5
        )
        # without the minimum image the middle bond spans the box
        assert g[f"{F}/distances/value"][0, 1] > 8.0 > f[f"{F}/distances/value"][0, 1]
        params = json.loads(g["trajalign/provenance"].attrs["parameters"])
        assert params["minimum_image"] is False and params["pbc"]["mode"] == "none"


def test_triclinic_cli_matches_mdanalysis(cli, tmp_path):
    from MDAnalysisTests.datafiles import GRO, XTC

    out = tmp_path / "w.h5"
    sel = "resname SOL and name OW and resid 1000-1100"
    res = cli("internal", XTC, "-t", GRO, "-s", sel, "--pairs", "all", "--stop", 2, "-o", out)
    assert res.code == 0, res.stderr
    u = _universe(GRO, XTC)
    ag = u.select_atoms(sel)
    with h5py.File(out) as f:
        d = f[f"{F}/distances/value"][()]
        np.testing.assert_array_equal(f["trajalign/atom_indices"][()], ag.indices)
    for i, ts in enumerate(u.trajectory[:2]):
        assert not np.allclose(ts.dimensions[3:], 90)
        expected = mdd.self_distance_array(ag.positions, box=ts.dimensions)
        np.testing.assert_allclose(d[i], expected, atol=5e-5)


def test_guess_bonds_for_a_topology_without_bonds(cli, tmp_path):
    gro = tmp_path / "butane.gro"
    _universe(str(BUTANE_PDB)).atoms.write(str(gro))  # GRO carries no bonds
    res = cli("internal", gro, "-o", tmp_path / "x.h5")
    line = only_error_line(res)
    assert "has no bonds" in line and "--guess-bonds" in line
    assert not (tmp_path / "x.h5").exists()
    out = tmp_path / "g.h5"
    res = cli("internal", gro, "--guess-bonds", "-o", out)
    assert res.code == 0, res.stderr
    with h5py.File(out) as f:
        assert f[f"{F}/distances/indices"].shape == (13, 2)
        assert f[f"{F}/angles/indices"].shape == (24, 3)
        assert f[f"{F}/dihedrals/indices"].shape == (27, 4)


def test_pairs_files(cli, tmp_path, chain2d):
    pf, tf = tmp_path / "pairs.txt", tmp_path / "triplets.txt"
    pf.write_text("# my pairs\n0 5\n3, 11  # comma separated works\n\n")
    tf.write_text("0 1 2\n7 3 9\n")
    out = tmp_path / "p.h5"
    res = cli("internal", CHAIN2D, "--stop", 10, "--pairs", pf, "--pairs", tf, "-o", out)
    assert res.code == 0, res.stderr
    with h5py.File(out) as f:
        assert set(f[F]) == {"distances", "angles"}
        np.testing.assert_array_equal(f[f"{F}/distances/indices"][()], [[0, 5], [3, 11]])
        np.testing.assert_allclose(
            f[f"{F}/angles/value"][()], ref.ref_angles(chain2d[:10], [[0, 1, 2], [7, 3, 9]]),
            atol=1e-5,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("0 1\n2 12\n", "line 2: index 12 is out of range for 12 selected points"),
        ("0 1 2 3 4\n", "line 1 has 5 columns"),
        ("0 1\n0 1 2\n", "line 2 has 3 columns, earlier lines 2"),
        ("0 1\nx 2\n", "line 2: 'x 2' is not integer indices"),
        ("0 1.5\n", "is not integer indices"),
        ("# nothing\n", "holds no index tuples"),
    ],
)
def test_bad_pairs_file(cli, tmp_path, content, message):
    pf = tmp_path / "bad.txt"
    pf.write_text(content)
    out = tmp_path / "o.h5"
    line = only_error_line(cli("internal", CHAIN2D, "--pairs", pf, "-o", out))
    assert message in line
    assert not out.exists() and list(tmp_path.iterdir()) == [pf]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--features", "dihedrals"], "dihedrals need 3D coordinates"),
        (["--pairs", "all", "--features", "angles"], "does not go with --pairs all"),
        (["--pairs", "all", "--features", "distances,dihedrals"], "need 3D"),
        (["--transform", "rbf", "--rbf-n", "1"], "--rbf-n 1 is below 2"),
        (["--transform", "rbf", "--rbf-min", "3", "--rbf-max", "3"], "is not above --rbf-min"),
        (["--transform", "bins", "--rbf-max", "-1"], "is not above --rbf-min"),
        (["--transform", "fourier"], "unknown transform 'fourier'"),
        (["--features", "angles", "--transform", "inverse"], "add distances to --features"),
        (["--pairs", "bonds"], "array inputs carry no bonds"),
        (["--pbc", "whole"], "needs a periodic box"),
    ],
)
def test_bad_options(cli, tmp_path, args, message):
    out = tmp_path / "o.h5"
    line = only_error_line(cli("internal", CHAIN2D, *args, "-o", out))
    assert message in line
    assert list(tmp_path.iterdir()) == []


def test_coincident_points_error_or_counted_nan(cli, tmp_path, chain2d):
    X = chain2d[:8].copy()
    X[5, 4] = X[5, 3]  # frame 5: points 3 and 4 coincide
    path = tmp_path / "c.npz"
    np.savez(path, arr=X)
    out = tmp_path / "o.h5"
    line = only_error_line(cli("internal", path, "--start", 2, "-o", out))
    # chain angles (2, 3, 4) and (3, 4, 5) have a zero-length bond; the first is named,
    # in source frame numbering (unchanged by --start)
    assert "angle 2 (points 2-3-4) is undefined in frame 5" in line
    assert "--undefined nan" in line and not out.exists()
    res = cli("internal", path, "--undefined", "nan", "--json", "-o", out)
    assert res.code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["warnings"] == [
        "angles: 2 undefined values written as NaN in 1 frames (coincident or collinear points)"
    ]
    with h5py.File(out) as f:
        a = f[f"{F}/angles/value"][()]
        assert np.isnan(a[5, 2]) and np.isnan(a[5, 3]) and np.isnan(a).sum() == 2
        np.testing.assert_array_equal(f[f"{F}/angles/undefined"][()], [0, 0, 0, 0, 0, 2, 0, 0])
    res = cli("internal", path, "--pairs", "all", "--transform", "inverse", "-o", tmp_path / "i.h5")
    # pair (3, 4) is column 11 + 10 + 9 = 30 of the all-pairs (triu) order for 12 points
    line = only_error_line(res)
    assert "the inverse of distance 30 (points 3-4) is undefined in frame 5" in line
    assert line.endswith("or write NaN there with --undefined nan)")


def test_subprocess_one_line_error_and_exit_status(tmp_path):
    out = tmp_path / "o.h5"
    cmd = [sys.executable, "-m", "trajalign", "internal", str(CHAIN2D), "-o", str(out)]
    p = subprocess.run([*cmd, "--features", "dihedrals"], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        "Error: dihedrals need 3D coordinates; the input is 2D "
        "(ask for --features distances,angles)"
    )
    p = subprocess.run([*cmd, "--dihedral-encoding", "polar"], capture_output=True, text=True)
    assert p.returncode == 2 and "polar" in p.stderr  # a usage error, Click's own
    assert not out.exists()


def test_topology_angles_and_dihedrals_are_used_within_the_selection(cli, tmp_path):
    from MDAnalysisTests.datafiles import DCD, PSF

    out = tmp_path / "adk.h5"
    sel = "resid 1-4"
    res = cli("internal", DCD, "-t", PSF, "-s", sel, "--stop", 2, "-o", out)
    assert res.code == 0, res.stderr
    u = _universe(PSF, DCD)
    ag = u.select_atoms(sel)
    pos = np.full(u.atoms.n_atoms, -1)
    pos[ag.indices] = np.arange(ag.n_atoms)
    with h5py.File(out) as f:
        for name, group in (("angles", u.angles), ("dihedrals", u.dihedrals)):
            t = pos[group.indices]
            t = t[np.all(t >= 0, axis=1)]  # the PSF's own terms inside the selection
            np.testing.assert_array_equal(f[f"{F}/{name}/indices"][()], t)
        t = f[f"{F}/dihedrals/indices"][()]
        q = f[f"{F}/dihedrals/value"][()]
    for i, ts in enumerate(u.trajectory[:2]):
        x = ts.positions[ag.indices]
        expected = mdd.calc_dihedrals(*(x[t[:, k]] for k in range(4)))
        diff = np.abs(q[i] - expected)
        assert np.minimum(diff, 2 * np.pi - diff).max() < 1e-4


def test_oversized_requests_are_refused_before_allocating(cli, tmp_path):
    from MDAnalysisTests.datafiles import GRO, XTC

    out = tmp_path / "o.h5"
    # 47681 atoms: 1.1e9 pairs, or a 17 GiB inverse-distance matrix, per frame
    line = only_error_line(cli("internal", XTC, "-t", GRO, "--pairs", "all", "-o", out))
    assert "--pairs all on 47681 points gives 1.14e+09 distances per frame" in line
    line = only_error_line(cli("internal", XTC, "-t", GRO, "--features", "eigvals", "-o", out))
    assert "eigvals of 47681 points need a 16.9 GiB matrix per frame" in line
    assert not out.exists()
    # eigvals alone need no bonds from the topology (the GRO has none)
    res = cli("internal", XTC, "-t", GRO, "-s", "name CA", "--features", "eigvals",
              "--stop", 2, "-o", out)  # fmt: skip
    assert res.code == 0, res.stderr
    with h5py.File(out) as f:
        assert set(f[F]) == {"eigvals"} and f[f"{F}/eigvals/value"].shape == (2, 214)


def test_default_rbf_gamma_that_underflows_is_one_error_line(cli, tmp_path):
    # found by fuzzing: the message formatted rbf_gamma=None with :g, so the run ended
    # in "Error: unexpected TypeError ..."
    res = cli(
        "internal", CHAIN2D, "--transform", "rbf", "--rbf-min", "-1e300", "--rbf-max", "0",
        "--rbf-n", "2", "-o", tmp_path / "x.h5",
    )  # fmt: skip
    line = only_error_line(res)
    assert "--rbf-gamma 0 is not positive" in line and "unexpected" not in line
    assert not (tmp_path / "x.h5").exists()


def test_undefined_nan_counts_each_feature(tmp_path, cli):
    # every feature that can be undefined gets its own per-frame count, whatever its
    # place among the datasets (a count was once written for the last feature only)
    x = np.random.default_rng(0).normal(size=(5, 6, 3)).astype(np.float32)
    x[2, 1] = x[2, 2]  # coincident points: undefined angles and dihedrals in frame 2
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "o.h5"
    args = ["--features", "angles,dihedrals", "--pairs", "chain", "--undefined", "nan"]
    res = cli("internal", tmp_path / "x.npy", *args, "--dihedral-encoding", "sincos", "-o", out)
    assert res.code == 0, res.stderr
    with h5py.File(out) as f:
        for feat in ("angles", "dihedrals"):
            value = f[f"trajalign/features/{feat}/value"][()]
            counts = f[f"trajalign/features/{feat}/undefined"][()]
            np.testing.assert_array_equal(counts, np.isnan(value).sum(axis=1))
            assert counts[2] > 0
