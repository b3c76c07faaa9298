"""Protein features through ``trajalign internal`` end to end (issue 22, phase 2): HDF5
values against the library API and MDTraj, labels on every dataset, ``read_features``,
``info`` on an output, ``check`` rows, and the one-line errors.

Data: adenylate kinase from MDAnalysisTests (CHARMM PSF/DCD: 214 residues, one chain,
3341 atoms), the first few frames only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

import trajalign as ta

from .conftest import BUTANE_DCD, BUTANE_PDB, CHAIN2D, invoke

mda = pytest.importorskip("MDAnalysis")
md = pytest.importorskip("mdtraj")
mdt = pytest.importorskip("MDAnalysisTests.datafiles")

F = "trajalign/features"
N_FRAMES = 4
# adenylate kinase: 214 residues in one chain -> pairs |i - j| >= 3 = C(214, 2) - 213 - 212
ADK_PAIRS = 22366


def _universe():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(mdt.PSF, mdt.DCD)


def _frames(u, ag):
    return np.stack([ag.positions.astype(np.float32) for _ in u.trajectory[:N_FRAMES]])


def _mdtraj(ag, x, folder):
    """MDTraj trajectory of ``ag`` with frames ``x`` (Angstrom) via a PDB MDAnalysis wrote
    (MDTraj's PDB reader applies standard names: CHARMM HN -> H, ILE CD -> CD1)."""
    path = folder / "sel.pdb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ag.write(str(path))
    top = md.load(str(path)).topology
    return md.Trajectory(x / 10.0, top)


@pytest.fixture(scope="module")
def adk_run(tmp_path_factory):
    """One internal run on adk with torsions, sincos, mindist and contacts."""
    folder = tmp_path_factory.mktemp("adk")
    out = folder / "adk.h5"
    res = invoke("internal", mdt.DCD, "-t", mdt.PSF, "--stop", N_FRAMES,
                 "--features", "phi,psi,chi2,mindist,contacts", "--dihedral-encoding", "sincos",
                 "--contact-transform", "logistic", "-o", out, "--json", "-q")  # fmt: skip
    assert res.code == 0, res.stderr
    summary = json.loads(res.stdout)
    u = _universe()
    ag = u.atoms
    return out, summary, u, ag, _frames(u, ag), folder


def _wrapped(d):
    return np.abs(np.arctan2(np.sin(d), np.cos(d)))


def test_torsions_equal_api_and_mdtraj(adk_run):
    out, summary, u, ag, x, folder = adk_run
    t = _mdtraj(ag, x, folder)
    with h5py.File(out) as f:
        for name in ("phi", "psi", "chi2"):
            g = f[f"{F}/{name}"]
            values, quads = g["value"][()], g["indices"][()]
            labels = [s.decode() for s in g["labels"][()]]
            api, api_labels = ta.torsions(x, ag, name)
            np.testing.assert_allclose(values, api, atol=1e-6)
            assert labels == api_labels
            ref_idx, ref = getattr(md, f"compute_{name}")(t, periodic=False)
            where = {tuple(q): k for k, q in enumerate(ref_idx.tolist())}
            assert set(where) == {tuple(q) for q in quads.tolist()}
            cols = [where[tuple(q)] for q in quads.tolist()]
            assert _wrapped(values - ref[:, cols]).max() < 1e-4
            sc = f[f"{F}/{name}_sincos/value"][()]
            np.testing.assert_allclose(sc[..., 0], np.sin(values), atol=1e-6)
            np.testing.assert_allclose(sc[..., 1], np.cos(values), atol=1e-6)
    assert summary["frames"] == N_FRAMES and summary["warnings"] == []


def test_mindist_equals_api_and_mdtraj(adk_run):
    out, _, u, ag, x, folder = adk_run
    with h5py.File(out) as f:
        g = f[f"{F}/mindist"]
        dist, atoms, residues = g["value"][()], g["atoms"][()], g["residues"][()]
        labels = [s.decode() for s in g["labels"][()]]
        cont = f[f"{F}/contacts/value"][()]
        assert f[f"{F}/contacts/value"].attrs["transform"] == "logistic"
    assert dist.shape == (N_FRAMES, ADK_PAIRS) and atoms.dtype == np.int32
    assert residues.dtype == np.int32 and residues.shape == (ADK_PAIRS, 2)
    api = ta.residue_mindist(x, ag)
    np.testing.assert_allclose(dist, api.value, atol=1e-5)
    np.testing.assert_array_equal(residues, api.residues)
    assert labels == api.labels
    # the stored atom pairs realise the minimum
    d = np.linalg.norm(
        np.take_along_axis(x, atoms[..., 0].reshape(N_FRAMES, -1, 1), 1)
        - np.take_along_axis(x, atoms[..., 1].reshape(N_FRAMES, -1, 1), 1),
        axis=2,
    )
    np.testing.assert_allclose(d, dist, atol=1e-3)
    # one chain: MDTraj's all is the same pair list; it works in nm
    t = _mdtraj(ag, x, folder)
    ref, ref_pairs = md.compute_contacts(t, scheme="closest-heavy", periodic=False)
    np.testing.assert_array_equal(ref_pairs, residues)
    assert np.abs(dist - 10.0 * ref).max() < 2e-4
    # logistic contacts, MSMBuilder's formula with the defaults 4.5 A and 2 / A
    np.testing.assert_allclose(cont, 1.0 / (1.0 + np.exp(2.0 * (dist - 4.5))), atol=1e-6)


def _check_labels(path):
    """Every feature: labels count == columns, unique, labels_last == last axis."""
    seen = []
    with h5py.File(path) as f:
        for name, g in f[F].items():
            v = g["value"]
            labels = [s.decode() for s in g["labels"][()]]
            assert len(labels) == v.shape[1] == len(set(labels)), name
            if v.ndim == 3:
                last = [s.decode() for s in g["labels_last"][()]]
                assert len(last) == v.shape[2] == len(set(last)), name
            else:
                assert "labels_last" not in g, name
            seen.append(name)
    return seen


def test_labels_on_every_feature_and_transform(cli, tmp_path, adk_run):
    assert len(_check_labels(adk_run[0])) == 8
    out = tmp_path / "b.h5"
    res = cli("internal", BUTANE_DCD, "-t", BUTANE_PDB, "--stop", 5, "--transform",
              "inverse,rbf,bins,repeat", "--rbf-n", 4, "--dihedral-encoding", "sincos",
              "-o", out)  # fmt: skip
    assert res.code == 0, res.stderr
    assert len(_check_labels(out)) == 8
    with h5py.File(out) as f:
        lab = f[f"{F}/distances/labels"][0].decode()
        idx = f[f"{F}/distances/indices"][0]
        assert f[f"{F}/distances_inverse/labels"][0].decode() == "inverse " + lab
        assert [s.decode() for s in f[f"{F}/distances_rbf/labels_last"][()]] == [
            f"rbf {c:g} Angstrom" for c in np.linspace(0, 10, 4)
        ]
    u = mda.Universe(str(BUTANE_PDB))
    a, b = u.atoms[idx]
    assert lab == f"distance {a.name} {a.resname} {a.resid} - {b.name} {b.resname} {b.resid}"
    out2 = tmp_path / "c.h5"
    res = cli("internal", CHAIN2D, "--pairs", "all", "--features", "distances,eigvals",
              "--stop", 3, "-o", out2)  # fmt: skip
    assert res.code == 0, res.stderr
    assert _check_labels(out2) == ["distances", "eigvals"]
    with h5py.File(out2) as f:
        assert f[f"{F}/distances/labels"][0].decode() == "distance 0 - 1"
        assert f[f"{F}/eigvals/labels"][-1].decode() == "eigval 11"


def test_read_features_round_trip_and_errors(adk_run, tmp_path, cli):
    out = adk_run[0]
    X, labels = ta.read_features(out, ["psi", "phi_sincos", "contacts"])
    with h5py.File(out) as f:
        psi = f[f"{F}/psi/value"][()]
        sc = f[f"{F}/phi_sincos/value"][()]
        cont = f[f"{F}/contacts/value"][()]
        phi_labels = [s.decode() for s in f[f"{F}/phi/labels"][()]]
    assert X.dtype == np.float32 and X.shape == (
        N_FRAMES,
        psi.shape[1] + sc[0].size + cont.shape[1],
    )
    np.testing.assert_array_equal(X, np.hstack([psi, sc.reshape(N_FRAMES, -1), cont]))
    assert len(labels) == X.shape[1] == len(set(labels))
    k = psi.shape[1]
    # C order: (residue, [sin, cos]) with sin fastest-changing second
    assert labels[k : k + 2] == [f"{phi_labels[0]} sin", f"{phi_labels[0]} cos"]
    all_x, all_labels = ta.read_features(out)
    assert all_x.shape[1] == len(all_labels)
    assert all_labels[: len(phi_labels)] == phi_labels  # phi first, as --features asked
    xs, same = ta.read_features([out, out], "psi")
    assert len(xs) == 2 and same == labels[:k]
    with pytest.raises(ta.InputError, match=r"has no feature 'omega' \(it has phi, psi, chi2"):
        ta.read_features(out, ["phi", "omega"])
    other = tmp_path / "short.h5"
    res = cli("internal", mdt.DCD, "-t", mdt.PSF, "-s", "resid 1-50", "--stop", 2,
              "--features", "psi", "-o", other)  # fmt: skip
    assert res.code == 0, res.stderr
    with pytest.raises(ta.InputError, match="feature columns that differ"):
        ta.read_features([out, other], ["psi"])


def test_info_lists_the_features(adk_run, cli):
    out = adk_run[0]
    res = cli("info", out)
    assert res.code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[1].split() == ["method", "internal"]
    assert lines[2].split() == ["frames", str(N_FRAMES)]
    row = next(ln for ln in lines if ln.strip().startswith("mindist "))
    assert f"{N_FRAMES}x{ADK_PAIRS} float32 Angstrom: mindist MET 1 4AKE - ILE 4 4AKE" in row
    facts = json.loads(cli("info", out, "--json").stdout)
    names = [ft["name"] for ft in facts["features"]]
    assert names[:3] == ["phi", "psi", "chi2"] and "contacts" in names
    assert facts["features"][0]["first_labels"][0] == "phi ARG 2 4AKE"


def test_check_rows_for_protein_features(cli):
    res = cli("check", mdt.DCD, "-t", mdt.PSF, "--method", "phi,mindist", "--frames", 2,
              "--trials", 1, "--json")  # fmt: skip
    assert res.code == 0, res.stderr
    rows = {(r["method"], r["transformation"]): r for r in json.loads(res.stdout)}
    assert rows[("phi", "reflection")]["promise"] == "negated"
    assert rows[("mindist", "reflection")]["promise"] == "invariant"
    for method in ("phi", "mindist"):
        for motion in ("rotation", "translation per frame", "reflection"):
            assert rows[(method, motion)]["ok"] is True, (method, motion)


def test_chain_break_warned_once_and_memory_sizes_blocks(cli, tmp_path):
    out = tmp_path / "gap.h5"
    res = cli("internal", mdt.DCD, "-t", mdt.PSF, "-s", "protein and not resid 50-52",
              "--stop", 3, "--features", "phi,mindist", "--chunk-frames", 1, "--json",
              "-o", out)  # fmt: skip
    assert res.code == 0, res.stderr
    warn = [w for w in json.loads(res.stdout)["warnings"] if "chain break" in w]
    r = _universe().residues
    a, b = f"{r[48].resname} 49", f"{r[52].resname} 53"
    assert warn == [f"chain break between {a} and {b} (segment 4AKE): phi/psi/omega there left out"]
    with h5py.File(out) as f:
        labels = [s.decode() for s in f[f"{F}/phi/labels"][()]]
    assert f"phi {b} 4AKE" not in labels and f"phi {a} 4AKE" in labels

    from trajalign.io import open_source
    from trajalign.jobs.internal import InternalJob

    with open_source([mdt.DCD], top=mdt.PSF) as src:
        job = InternalJob(features="mindist,contacts")
        job.prepare(src)
        # distance + two int32 atoms + uint8 contact (and their intermediates) per pair
        assert job.frame_bytes(src) >= 13 * ADK_PAIRS


def test_no_protein_and_unknown_scheme_are_one_line_errors(cli, tmp_path):
    out = tmp_path / "o.h5"
    p = subprocess.run(
        [sys.executable, "-m", "trajalign", "internal", str(CHAIN2D), "--features", "phi",
         "-o", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 1
    assert p.stderr.strip() == (
        "Error: phi needs atoms named N, CA, C: an array input has no atom names "
        "(use --features dihedrals with --pairs FILE for other molecules)"
    )
    res = cli("internal", BUTANE_DCD, "-t", BUTANE_PDB, "--features", "psi", "-o", out)
    assert res.code == 1
    assert res.stderr.strip() == (
        "Error: psi needs atoms named N, CA, C: the selection has none "
        "(use --features dihedrals with --pairs FILE for other molecules)"
    )
    res = cli("internal", BUTANE_DCD, "-t", BUTANE_PDB, "--features", "mindist", "-o", out)
    assert res.code == 1 and "mindist needs protein residues" in res.stderr
    res = cli("internal", BUTANE_DCD, "-t", BUTANE_PDB, "--features", "mindist", "--scheme",
              "heavy", "-o", out)  # fmt: skip
    assert res.code == 1
    assert res.stderr.strip() == (
        "Error: unknown --scheme 'heavy' (choose from ca, closest, closest-heavy, sidechain, "
        "sidechain-heavy)"
    )
    assert not out.exists()
