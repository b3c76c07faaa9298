"""Issue 16 at protein scale: references paired by identity, diagnose figures that open at
any atom count, and the principal-axes definitions (--weights none, --sign skew).

MDAnalysisTests' adenylate kinase (PSF/DCD, 3341 atoms, 214 residues, 98 frames) is the
protein; MDAnalysis and numpy are the independent references.
"""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest

import trajalign as ta
from trajalign import diagnostics as dg
from trajalign import plots
from trajalign.errors import DataError

mda = pytest.importorskip("MDAnalysis")
datafiles = pytest.importorskip("MDAnalysisTests.datafiles")
PSF, DCD, PRM = datafiles.PSF, datafiles.DCD, datafiles.PRM

FRAME = 30
RMSD = "observables/rmsd/value"


@pytest.fixture(scope="module")
def adk():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(PSF, DCD)


@pytest.fixture(scope="module")
def refs(adk, tmp_path_factory):
    """Frame 30's backbone as PDB files: in order, reordered (CA, N, O, C per residue),
    with one residue renamed; the reordered one as .npy; the whole protein reordered."""
    d = tmp_path_factory.mktemp("refs")
    adk.trajectory[FRAME]
    bb = adk.select_atoms("backbone")
    order = []
    for res in bb.residues:
        atoms = bb[bb.resindices == res.resindex]
        for name in ("CA", "N", "O", "C", "OT1", "OT2"):
            order += [a.index for a in atoms if a.name == name]
    reordered = adk.atoms[order]
    assert reordered.n_atoms == bb.n_atoms and not np.array_equal(order, bb.indices)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bb.write(d / "bb.pdb")
        reordered.write(d / "bb_reordered.pdb")
        np.save(d / "bb_reordered.npy", reordered.positions)
        renamed = mda.Merge(bb)
        renamed.residues[5].resname = "GLY"  # LEU 6 in adk
        renamed.atoms.write(d / "bb_renamed.pdb")
        # the whole protein, each residue's atoms reversed
        whole = np.concatenate([r.atoms.indices[::-1] for r in adk.residues])
        adk.atoms[whole].write(d / "all_reordered.pdb")
    adk.trajectory[0]
    return d


def _rotate(cli, tmp_path, *extra):
    out = tmp_path / "o.h5"
    r = cli("rotate", DCD, "-t", PSF, "--stop", 40, "-o", out, "--json", *extra)
    return r, out


# ------------------------------------------------------------- reference by identity


def test_reordered_reference_is_paired_by_name(cli, tmp_path, refs, adk):
    r, out = _rotate(cli, tmp_path, "--fit-select", "backbone", "--reference", refs / "bb.pdb")
    assert r.code == 0, r.stderr
    with h5py.File(out) as f:
        in_order = f[RMSD][()]
        assert f["trajalign/alignment/reference"].attrs["matched"].startswith("by identity")
    (tmp_path / "o.h5").unlink()
    r, out = _rotate(
        cli, tmp_path, "--fit-select", "backbone", "--reference", refs / "bb_reordered.pdb"
    )
    assert r.code == 0, r.stderr
    warn = [w for w in json.loads(r.stdout)["warnings"] if "another order" in w]
    assert warn and "MET 1 CA" in warn[0] and "MET 1 N" in warn[0]
    with h5py.File(out) as f:
        rmsd = f[RMSD][()]
        assert "reordered" in f["trajalign/alignment/reference"].attrs["matched"]
    # frame 30 is the reference: RMSD 0 up to the PDB's 0.001 A precision (1.35 A when
    # the atoms were paired by position)
    assert rmsd[FRAME] < 1e-3
    np.testing.assert_allclose(rmsd, in_order, atol=1e-6)
    # MDAnalysis, independently: the unweighted RMSD after superposition at frame 10
    from MDAnalysis.analysis.rms import rmsd as mda_rmsd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mda.Universe(refs / "bb.pdb").atoms.positions
    adk.trajectory[10]
    expect = mda_rmsd(adk.select_atoms("backbone").positions, ref, center=True, superposition=True)
    adk.trajectory[0]
    assert abs(rmsd[10] - expect) < 1e-4


def test_npy_reference_stays_positional(cli, tmp_path, refs):
    r, out = _rotate(
        cli, tmp_path, "--fit-select", "backbone", "--reference", refs / "bb_reordered.npy"
    )
    assert r.code == 0, r.stderr
    with h5py.File(out) as f:
        assert f[RMSD][FRAME] > 1.0  # no names, no pairing: as documented


def test_whole_system_reference_in_another_order(cli, tmp_path, refs):
    r, out = _rotate(cli, tmp_path, "--reference", refs / "all_reordered.pdb")
    assert r.code == 0, r.stderr
    assert any("another order" in w for w in json.loads(r.stdout)["warnings"])
    with h5py.File(out) as f:
        assert f[RMSD][FRAME] < 1e-3


def test_mismatched_reference_names_both_atoms(cli, tmp_path, refs):
    r, out = _rotate(
        cli, tmp_path, "--fit-select", "backbone", "--reference", refs / "bb_renamed.pdb"
    )
    assert r.code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "LEU 6 N" in lines[0] and "GLY 6 N" in lines[0] and "Traceback" not in r.stderr
    assert not out.exists()


def test_topology_without_coordinates_is_one_clean_line(cli, tmp_path):
    r, out = _rotate(cli, tmp_path, "--reference", PRM)
    assert r.code == 1
    lines = r.stderr.strip().splitlines()
    assert lines == [lines[0]] and "no coordinates" in lines[0]
    assert "NoDataError" not in r.stderr and "report" not in r.stderr


def _group(names, resnames=None, resids=None, masses=None):
    n = len(names)
    u = mda.Universe.empty(n, n_residues=n, atom_resindex=np.arange(n), trajectory=True)
    u.add_TopologyAttr("names", names)
    u.add_TopologyAttr("resnames", resnames or ["ALA"] * n)
    u.add_TopologyAttr("resids", resids or list(range(1, n + 1)))
    u.add_TopologyAttr("masses", masses or [12.011] * n)
    return u.atoms


def test_match_atoms_masses_and_repeats():
    from trajalign.jobs.rotate import match_atoms

    a = _group(["N", "CA", "C"])
    # the same atoms: no reordering
    assert match_atoms(a, a, "ref.pdb")[0] is None
    # a mass beyond 0.1 amu (as MDAnalysis AlignTraj) is another atom, named on both sides
    b = _group(["N", "CA", "C"], masses=[12.011, 13.5, 12.011])
    with pytest.raises(DataError, match=r"atom 1 \(ALA 2 CA\).*mass 13\.5 vs 12\.01"):
        match_atoms(b, a, "ref.pdb")
    # a permutation is undone: ref[perm] is in the order of the fit atoms
    c = _group(["C", "N", "CA"], resids=[3, 1, 2])
    perm, note = match_atoms(c, a, "ref.pdb")
    np.testing.assert_array_equal(perm, [1, 2, 0])
    assert "another order" in note
    # identities that repeat cannot be reordered safely
    d = _group(["X", "X", "Y"], resids=[1, 1, 1])
    e = _group(["Y", "X", "X"], resids=[1, 1, 1])
    with pytest.raises(DataError, match="cannot be paired safely"):
        match_atoms(e, d, "ref.pdb")


# ------------------------------------------------------------------ diagnose figures


@pytest.fixture(scope="module")
def adk_diagnose(tmp_path_factory):
    from .conftest import invoke

    d = tmp_path_factory.mktemp("diag")
    out, figs = d / "d.h5", d / "figs"
    r = invoke("diagnose", DCD, "-t", PSF, "--stop", 20, "-o", out, "--plot", figs, "--json")
    assert r.code == 0, r.stderr
    return json.loads(r.stdout), out, figs


def test_every_adk_figure_opens_and_is_at_most_4000_wide(adk_diagnose):
    from PIL import Image

    summary, _, figs = adk_diagnose
    names = sorted(p.name for p in figs.iterdir())
    assert names == ["jumps.png", "overlay.png", "perturbation.png", "sensitivity.png"]
    for p in figs.iterdir():
        with Image.open(p) as im:  # PIL refuses decompression bombs (> 179M pixels)
            im.load()
            assert im.size[0] <= 4000 and im.size[1] <= 4000, (p.name, im.size)


def test_sensitivity_is_grouped_by_residue_in_the_hdf5(adk_diagnose, adk):
    _, out, _ = adk_diagnose
    with h5py.File(out) as f:
        s = f["trajalign/diagnostics/sensitivity"]
        value, group, grouped = s["value"][()], s["group"][()], s["grouped"][()]
        assert s["group"].attrs["kind"] == "residue"
        labels = [x.decode() for x in s["group_labels"][()]]
        far = s["far_points"][()]
    assert group.shape == (adk.atoms.n_atoms,) and len(labels) == adk.residues.n_residues
    assert labels[0] == "MET1" and labels[-1] == f"GLY{adk.residues.resids[-1]}"
    # the group of each atom is its residue, and grouped the mean over the residue's atoms
    np.testing.assert_array_equal(group, adk.atoms.resindices)
    for r in (0, 57, 213):
        atoms = adk.residues[r].atoms.indices
        np.testing.assert_allclose(grouped[:, :, r], value[:, :, atoms].mean(axis=-1))
    # far points: the farther half of the other atoms from the moved one, in space
    x = adk.trajectory[0].positions.astype(np.float64)
    d = np.linalg.norm(x - x[1], axis=1)
    others = np.delete(np.arange(len(x)), 1)
    np.testing.assert_array_equal(far, others[d[others] >= np.median(d[others])])


def test_far_point_sensitivity_keeps_three_digits(adk_diagnose, adk):
    summary, _, _ = adk_diagnose
    # centring on the centre of mass moves every other atom by m_1 / M per unit move of
    # atom 1: an independent number, 4.3e-5, that must not print as 0
    expect = adk.atoms.masses[1] / adk.atoms.masses.sum()
    got = summary["far_point_sensitivity"]["center-com"]
    assert got == float(f"{expect:.3g}") and got > 0
    assert summary["far_points"]["count"] == (adk.atoms.n_atoms - 1) // 2


def test_perturbation_figure_has_a_panel_per_method(chain2d):
    methods = ["none", "center-com", "kabsch", "principal", "point"]
    aligned = {m: dg.perturb_aligned(chain2d[0], m, 1) for m in methods}
    fig = plots.perturbation_figure(aligned, 1, 0.2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [f"Perturb 1: {plots.label(m)}" for m in methods]
    plots._plt().close(fig)


def test_large_overlay_draws_a_sample_with_its_mean():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 2000, 3))
    ax = plots.plot_overlay(x)
    lines = ax.get_lines()
    # at most 48 frames of at most 400 points, then the mean of the drawn sample
    assert len(lines) == plots.MAX_DRAWN_FRAMES + 1
    assert all(len(ln.get_xdata()) <= plots.MAX_DRAWN_POINTS for ln in lines)
    drawn = plots.sample_points(2000)
    frames = plots.sample_points(100, plots.MAX_DRAWN_FRAMES)
    np.testing.assert_allclose(lines[-1].get_xdata(), x[frames][:, drawn, 0].mean(axis=0))
    plots._plt().close(ax.figure)


def test_point_groups_bins_and_residues():
    g, labels, kind = dg.point_groups(10)
    assert kind == "point" and g.tolist() == list(range(10))
    g, labels, kind = dg.point_groups(1000, max_groups=256)
    assert kind == "bin" and g.max() + 1 == len(labels) <= 256
    assert np.all(np.diff(g) >= 0) and labels[0] == "0-3"
    # residues numbered out of order keep the order in which they appear
    res = np.repeat([7, 3, 9], [300, 300, 300])
    g, labels, kind = dg.point_groups(900, res, [f"R{r}" for r in res], max_groups=256)
    assert kind == "residue" and labels == ["R7", "R3", "R9"] and g[0] == 0 and g[-1] == 2
    v = np.arange(2 * 900, dtype=float).reshape(2, 900)
    np.testing.assert_allclose(dg.group_mean(v, g), v.reshape(2, 3, 300).mean(axis=-1))


# ---------------------------------------------------------- principal definitions


def _numpy_axes(x, w):
    """Plain numpy: the w-weighted centroid and gyration tensor's axes (largest first)."""
    c = w @ x
    d = x - c
    evals, vecs = np.linalg.eigh((w[:, None] * d).T @ d)
    return c, vecs[:, ::-1]


def test_weights_none_is_unweighted_throughout(adk):
    x = np.array([adk.atoms.positions for _ in adk.trajectory[:5]], dtype=np.float64)
    m = adk.atoms.masses
    res = ta.align_principal(x, m, sign="skew", weighted=False)
    w = np.full(len(m), 1 / len(m))
    for t in range(len(x)):
        c, axes = _numpy_axes(x[t], w)
        np.testing.assert_allclose(res.translation[t], c, atol=1e-9)
        dots = np.abs(np.sum(res.rotation[t] * axes, axis=0))
        np.testing.assert_allclose(dots, 1.0, atol=1e-9)
    # and mass weights stay mass weights, about the centre of mass
    res = ta.align_principal(x, m, sign="skew")
    c, axes = _numpy_axes(x[0], m / m.sum())
    np.testing.assert_allclose(res.translation[0], c, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.sum(res.rotation[0] * axes, axis=0)), 1.0, atol=1e-9)


def test_cli_weights_none_centres_on_the_geometric_centroid(cli, tmp_path, adk):
    out = tmp_path / "p.h5"
    r = cli(
        "rotate", DCD, "-t", PSF, "--stop", 3, "--method", "principal", "--weights", "none",
        "-o", out, "--json",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    with h5py.File(out) as f:
        trans = f["trajalign/alignment/translation"][()]
        params = json.loads(f["trajalign/provenance"].attrs["parameters"])
    assert params["center"] == "geometric" and params["weights"] == "none"
    x = adk.trajectory[2].positions.astype(np.float64)
    adk.trajectory[0]
    np.testing.assert_allclose(trans[2], x.mean(axis=0), atol=1e-4)
    # an explicit --center is honoured: the unweighted tensor about the centre of mass
    out.unlink()
    r = cli(
        "rotate", DCD, "-t", PSF, "--stop", 3, "--method", "principal", "--weights", "none",
        "--center", "com", "-o", out,
    )  # fmt: skip
    assert r.code == 0, r.stderr
    with h5py.File(out) as f:
        trans = f["trajalign/alignment/translation"][()]
    m = adk.atoms.masses
    np.testing.assert_allclose(trans[2], m @ x / m.sum(), atol=1e-4)


def test_sign_skew_guarantees_the_first_two_axes_only(adk):
    """--sign skew: positive third moment along x and y in every frame; z completes a
    right-handed frame and has negative skewness in 11 of adk's 98 frames (README)."""
    x = np.array([adk.atoms.positions for _ in adk.trajectory], dtype=np.float64)
    m = adk.atoms.masses
    res = ta.align_principal(x, m, sign="skew")
    w = m / m.sum()
    y = res.coords - np.einsum("n,fnd->fd", w, res.coords)[:, None]
    m3 = np.einsum("n,fnd->fd", w, y**3)
    assert np.all(m3[:, :2] > 0)
    assert int(np.sum(m3[:, 2] < 0)) == 11
    np.testing.assert_allclose(np.linalg.det(res.rotation), 1.0, atol=1e-9)


def test_sensitivity_figure_width_is_capped_for_many_perturbed_points(tmp_path):
    """--perturb-points all on a large input: the perturbed points are grouped as the
    columns are, and the figure stays under 4000 pixels however many points there are."""
    from PIL import Image

    n = 3000
    rng = np.random.default_rng(2)
    matrix = rng.random((2, n, n))
    group, labels, kind = dg.point_groups(n)
    fig = plots.sensitivity_figure(
        matrix, ["kabsch", "point"], list(range(n)), 5, group, labels, kind
    )
    top, bottom = (ax for ax in fig.axes if ax.get_images())
    assert top.get_images()[0].get_array().shape == (2, group.max() + 1)
    # each column of the second panel is the mean over its bin of perturbed points of the
    # mean displacement of the other points
    shown = bottom.get_images()[0].get_array()
    others = np.array([[np.delete(matrix[m, p], p).mean() for p in range(12)] for m in range(2)])
    np.testing.assert_allclose(shown[:, 0], others[:, group[:12] == 0].mean(axis=1))
    path = plots.save(fig, tmp_path / "s.png")
    with Image.open(path) as im:
        im.load()
        assert im.size[0] <= 4000
