"""Periodic repair (issue 12): whole molecules, clusters, no jumps, on synthetic systems
whose truth is known by construction and on real GROMACS data against MDAnalysis."""

from __future__ import annotations

import json
import warnings

import h5py
import MDAnalysis as mda
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trajalign as ta
from trajalign.io import open_source
from trajalign.pbc import plan_molecules

from . import reference as ref

# a strongly skewed but valid triclinic cell (angles far from 90 degrees)
DIMS = np.array([25.0, 27.0, 30.0, 65.0, 75.0, 110.0])
H = ref.ref_box_vectors(DIMS)


def wrap_atoms(x, h):
    """Every atom into the cell on its own, as a wrapped trajectory is written."""
    h = np.broadcast_to(h, (x.shape[0], 3, 3))
    f = np.einsum("fnd,fde->fne", x, np.linalg.inv(h))
    return np.einsum("fnd,fde->fne", f - np.floor(f), h)


def stiff_chain(rng, n_frames=30, n=40, bond=1.5, drift=2.0):
    """A stiff chain (about 45 A long, more than half the box) that flexes and drifts
    by more than a box length over the frames."""
    d = np.cumsum(rng.normal(scale=0.15, size=(n, 3)), axis=0) + [1.0, 0.3, 0.2]
    d = bond * d / np.linalg.norm(d, axis=1, keepdims=True)
    c = np.cumsum(d, axis=0)
    t = np.arange(n_frames)[:, None, None]
    noise = rng.normal(scale=0.05, size=(n_frames, n, 3))
    return c[None] + drift * t * np.array([0.7, 0.5, 0.4]) + noise


def lattice_offsets(y, x, h):
    """(F, N, 3) coefficients of y - x in the box rows h (integers if y and x differ by
    lattice vectors)."""
    h = np.broadcast_to(h, (y.shape[0], 3, 3))
    return np.einsum("fnd,fde->fne", y - x, np.linalg.inv(h))


def chain_bonds(n, start=0):
    return np.stack([np.arange(start, start + n - 1), np.arange(start + 1, start + n)], 1)


# ------------------------------------------------------------------ whole molecules


def bfs_forest(bonds, m):
    """Plain-Python reference of the molecule plan's trees: roots in increasing order,
    each molecule breadth-first from its root, neighbours in increasing order."""
    from collections import deque

    nbrs = [set() for _ in range(m)]
    for a, b in bonds:
        if a != b:
            nbrs[a].add(b)
            nbrs[b].add(a)
    order, parent, mol = [], [-1] * m, [-1] * m
    k = -1
    for r in range(m):
        if mol[r] >= 0:
            continue
        k += 1
        mol[r] = k
        queue = deque([r])
        while queue:
            i = queue.popleft()
            order.append(i)
            for j in sorted(nbrs[i]):
                if mol[j] < 0:
                    mol[j] = k
                    parent[j] = i
                    queue.append(j)
    return np.array(order), np.array(parent), np.array(mol)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 60), data=st.data())
def test_molecule_plan_trees_match_a_plain_breadth_first_search(m, data):
    pairs = data.draw(st.lists(st.tuples(st.integers(0, m - 1), st.integers(0, m - 1))))
    bonds = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    plan = plan_molecules(bonds, m, np.arange(m))
    order, parent, mol = bfs_forest(bonds, m)
    np.testing.assert_array_equal(plan.order, order)
    np.testing.assert_array_equal(plan.parent, parent)
    np.testing.assert_array_equal(plan.mol, mol)
    starts = np.searchsorted(mol[order], np.arange(mol.max() + 2))
    np.testing.assert_array_equal(plan.mol_ptr, starts)


def test_molecule_plan_of_a_solvated_gromacs_system_matches_the_reference():
    from MDAnalysisTests.datafiles import TPR

    u = mda.Universe(TPR)  # adenylate kinase in water and ions: 22173 molecules
    bonds = u.bonds.indices.astype(np.int64)
    plan = plan_molecules(bonds, len(u.atoms), np.arange(len(u.atoms)))
    order, parent, mol = bfs_forest(bonds, len(u.atoms))
    assert plan.mol_ptr.size - 1 == len(u.atoms.fragments) == 22173
    np.testing.assert_array_equal(plan.order, order)
    np.testing.assert_array_equal(plan.parent, parent)
    np.testing.assert_array_equal(plan.mol, mol)


def test_make_whole_recovers_a_chain_longer_than_half_the_box(unchanged):
    rng = np.random.default_rng(1)
    truth = stiff_chain(rng)
    wrapped = unchanged(wrap_atoms(truth, H))
    bonds = chain_bonds(truth.shape[1])
    out = ta.make_whole(wrapped, DIMS, bonds)
    # the whole chain differs from the truth by one lattice vector per frame
    k = lattice_offsets(out, truth, H)
    np.testing.assert_allclose(k, np.round(k), atol=1e-6)
    assert np.all(np.round(k) == np.round(k[:, :1]))
    np.testing.assert_allclose(out, ref.ref_make_whole(wrapped, H, bonds), atol=1e-9)
    # the molecule really was split, and is longer than half of every box vector
    assert np.linalg.norm(np.diff(wrapped, axis=1), axis=-1).max() > 10
    assert np.ptp(truth[0] @ np.linalg.inv(H), axis=0).max() > 0.5


def test_make_whole_float32_and_2d():
    rng = np.random.default_rng(2)
    truth = stiff_chain(rng, n_frames=5, n=12)[..., :2].copy()
    box = np.array([9.0, 11.0])
    wrapped = (truth - np.floor(truth / box) * box).astype(np.float32)
    out = ta.make_whole(wrapped, box, "chain")
    assert out.dtype == np.float32 and out.shape == wrapped.shape
    np.testing.assert_allclose(np.diff(out, axis=1), np.diff(truth, axis=1), atol=1e-4)


def test_cluster_of_a_complex_longer_than_half_the_box_is_one_image():
    """Molecules placed after the first are compared where they were moved to: the far
    end of a 5-molecule stack longer than half the box is reached only through them."""
    rng = np.random.default_rng(7)
    a = stiff_chain(rng, n_frames=60, n=5, drift=1.5)
    parts = [a + [0, 4.5 * i, 0.3 * i] for i in range(5)]
    truth = np.concatenate(parts, axis=1)
    bonds = np.concatenate([chain_bonds(5, 5 * i) for i in range(5)])
    out = ta.cluster(wrap_atoms(truth, H), DIMS, bonds)
    k = np.round(lattice_offsets(out, truth, H))
    assert np.all(k == k[:, :1])


def test_cluster_puts_a_split_dimer_into_one_image():
    rng = np.random.default_rng(3)
    a = stiff_chain(rng, n_frames=20, n=10, drift=1.5)
    b = a + [0.0, 4.0, 1.0]  # a second chain alongside, 4 A away
    truth = np.concatenate([a, b], axis=1)
    wrapped = wrap_atoms(truth, H)
    bonds = np.concatenate([chain_bonds(10), chain_bonds(10, 10)])
    whole = ta.make_whole(wrapped, DIMS, bonds)
    k_whole = np.round(lattice_offsets(whole, truth, H))
    assert np.any(k_whole[:, 0] != k_whole[:, 10])  # the chains sit in different images
    out = ta.cluster(wrapped, DIMS, bonds)
    k = lattice_offsets(out, truth, H)
    np.testing.assert_allclose(k, np.round(k), atol=1e-6)
    assert np.all(np.round(k) == np.round(k[:, :1]))


# ---------------------------------------------------------------------- no jumps


def breathing_box(n_frames):
    """Box rows of an NPT-like run: the triclinic cell scales by a few percent."""
    s = 1.0 + 0.03 * np.sin(np.linspace(0, 3 * np.pi, n_frames))
    return H[None] * s[:, None, None]


def diffusing_fractional(rng, n_frames=60, n=25):
    return np.cumsum(rng.normal(scale=0.04, size=(n_frames, n, 3)), axis=0) + rng.random((1, n, 3))


def test_nojump_follows_a_breathing_box_and_matches_mdanalysis():
    from MDAnalysis.coordinates.memory import MemoryReader
    from MDAnalysis.transformations import NoJump

    rng = np.random.default_rng(4)
    hs = breathing_box(60)
    s = diffusing_fractional(rng)
    wrapped = np.einsum("fnd,fde->fne", s - np.floor(s), hs)
    out = ta.nojump(wrapped, hs)
    # truth: the continuous fractional path, in the images of frame 0
    truth = np.einsum("fnd,fde->fne", s - np.floor(s[:1]), hs)
    np.testing.assert_allclose(out, truth, atol=1e-9)
    np.testing.assert_allclose(out, ref.ref_nojump(wrapped, hs), atol=1e-9)

    dims = np.array([mda.lib.mdamath.triclinic_box(*h) for h in hs])
    u = mda.Universe.empty(wrapped.shape[1], trajectory=True)
    u.load_new(wrapped.astype(np.float32), format=MemoryReader, dimensions=dims)
    u.trajectory.add_transformations(NoJump())
    mda_out = np.array([ts.positions.copy() for ts in u.trajectory])
    np.testing.assert_allclose(out, mda_out, atol=2e-3)


def _npz(tmp_path, x, box, name="w.npz"):
    path = tmp_path / name
    np.savez(path, arr=x.astype(np.float32), box=box)
    return path


@pytest.fixture()
def periodic_chains(tmp_path):
    """Two stiff chains drifting through a breathing triclinic box, wrapped atom by
    atom, as an .npz with a per-frame box; bonds as a text file."""
    rng = np.random.default_rng(5)
    a = stiff_chain(rng, n_frames=50, n=15, drift=0.8)
    truth = np.concatenate([a, a + [0.0, 4.5, 0.5]], axis=1)
    hs = breathing_box(50)
    # the chains move with the box as an NPT barostat would move them
    s = np.einsum("fnd,de->fne", truth, np.linalg.inv(H))
    truth = np.einsum("fnd,fde->fne", s, hs)
    wrapped = wrap_atoms(truth, hs)
    dims = np.array([mda.lib.mdamath.triclinic_box(*h) for h in hs])
    bonds = tmp_path / "bonds.txt"
    np.savetxt(bonds, np.concatenate([chain_bonds(15), chain_bonds(15, 15)]), fmt="%d")
    return _npz(tmp_path, wrapped, dims), bonds, truth, hs


def test_nojump_blocks_in_any_order_give_identical_bits(periodic_chains):
    path, bonds, truth, hs = periodic_chains
    whole = open_source(path, pbc="nojump", bonds=str(bonds))
    ref_block = whole.read(0, whole.n_frames).coords
    # the complex stays together and continuous: one lattice vector for all frames
    k = lattice_offsets(ref_block.astype(np.float64), truth, hs)
    np.testing.assert_allclose(k, np.round(k), atol=1e-3)
    assert np.all(np.round(k) == np.round(k[:1, :1]))
    for size in (1, 7, 16):
        src = open_source(path, pbc="nojump", bonds=str(bonds))
        starts = list(range(0, src.n_frames, size))
        parts = {s: src.read(s, min(s + size, src.n_frames)).coords for s in starts[::-1]}
        got = np.concatenate([parts[s] for s in starts])
        np.testing.assert_array_equal(got, ref_block)
        # anchors computed once in frame order (what Dask tasks receive)
        src = open_source(path, pbc="nojump", bonds=str(bonds))
        anchors = src.nojump_anchors(starts)
        other = open_source(path, pbc="nojump", bonds=str(bonds))
        for s in starts[::-1]:
            if s:
                other._repair.set_anchor(s, anchors[s])
            stop = min(s + size, src.n_frames)
            np.testing.assert_array_equal(other.read(s, stop).coords, ref_block[s:stop])


def test_nojump_identical_across_chunk_sizes_and_resume_through_the_cli(
    cli, tmp_path, periodic_chains
):
    path, bonds, _, _ = periodic_chains
    outs = []
    for chunk in (50, 6):
        out = tmp_path / f"n{chunk}.h5"
        res = cli(
            "rotate", path, "--bonds", bonds, "--pbc", "nojump", "--chunk-frames", chunk,
            "-o", out, "--json",
        )  # fmt: skip
        assert res.code == 0, res.stderr
        summary = json.loads(res.stdout)
        assert summary["pbc"]["mode"] == "nojump"
        with h5py.File(out) as f:
            outs.append(f["particles/trajectory/position/value"][()])
    np.testing.assert_array_equal(outs[0], outs[1])


# -------------------------------------------------------- invariance under images


@settings(max_examples=15)
@given(st.integers(0, 2**32 - 1))
def test_repair_ignores_which_image_each_atom_was_written_in(seed):
    """Moving any atom by any lattice vector changes nothing after the repair: internal
    coordinates equal, and the whole-made frames differ by one lattice vector."""
    rng = np.random.default_rng(seed)
    truth = stiff_chain(rng, n_frames=4, n=20)
    bonds = chain_bonds(20)
    wrapped = wrap_atoms(truth, H)
    moved = wrapped + rng.integers(-3, 4, size=wrapped.shape) @ H
    a = ta.make_whole(wrapped, DIMS, bonds)
    b = ta.make_whole(moved, DIMS, bonds)
    k = lattice_offsets(b, a, H)
    np.testing.assert_allclose(k, np.round(k), atol=1e-6)
    assert np.all(np.round(k) == np.round(k[:, :1]))
    pairs = np.array([(0, 19), (3, 11), (5, 6)])
    np.testing.assert_allclose(ta.distances(a, pairs), ta.distances(b, pairs), atol=1e-8)
    np.testing.assert_allclose(ta.distances(a, pairs), ta.distances(truth, pairs), atol=1e-8)


# ------------------------------------------------------------ real GROMACS data


def _universe(*files, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(*files, **kw)


def test_rotate_on_split_protein_matches_mdanalysis_unwrap_and_aligntraj(cli, tmp_path):
    from MDAnalysis import transformations
    from MDAnalysis.analysis import align
    from MDAnalysisTests.datafiles import TPR, XTC

    out, raw = tmp_path / "w.h5", tmp_path / "raw.h5"
    res = cli("rotate", XTC, "-t", TPR, "-s", "protein", "-o", out, "--json")
    assert res.code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["pbc"]["mode"] == "whole" and summary["pbc"]["split_frames"] == 10
    assert cli("rotate", XTC, "-t", TPR, "-s", "protein", "--pbc", "none", "-o", raw).code == 0

    u = _universe(TPR, XTC)
    protein = u.select_atoms("protein")
    u.trajectory.add_transformations(transformations.unwrap(protein))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = align.AlignTraj(u, u, select="protein", in_memory=True).run()
    mda_rmsd = run.results.rmsd
    with h5py.File(out) as f, h5py.File(raw) as g:
        ours = f["observables/rmsd/value"][()]
        broken = g["observables/rmsd/value"][()]
        aligned = f["particles/trajectory/position/value"][()]
    np.testing.assert_allclose(ours, mda_rmsd, atol=2e-3)
    assert broken[1:].min() > 5 > ours.max()  # without the repair: 9-22 A
    # same aligned structures up to the reference's placement (MDAnalysis keeps it)
    mda_pos = np.array([protein.positions for ts in u.trajectory])
    d_ours = ta.distances(aligned[:, ::50], "all")
    d_mda = ta.distances(mda_pos[:, ::50], "all")
    np.testing.assert_allclose(d_ours, d_mda, atol=2e-3)


def test_internal_ca_distances_are_those_of_the_whole_protein(cli, tmp_path):
    from MDAnalysis import transformations
    from MDAnalysis.lib.distances import self_distance_array
    from MDAnalysisTests.datafiles import TPR, XTC

    out = tmp_path / "ca.h5"
    res = cli("internal", XTC, "-t", TPR, "-s", "name CA", "--pairs", "all", "--stop", 3, "-o", out)
    assert res.code == 0, res.stderr
    u = _universe(TPR, XTC)
    u.trajectory.add_transformations(transformations.unwrap(u.select_atoms("protein")))
    ca = u.select_atoms("name CA")
    want = np.array([self_distance_array(ca.positions) for ts in u.trajectory[:3]])
    with h5py.File(out) as f:
        got = f["trajalign/features/distances/value"][()]
    np.testing.assert_allclose(got, want, atol=2e-3)
    assert want.max() > 40  # longer than half the box's shortest lattice vector


# ------------------------------------------------------------------ bad input


def only_error_line(res):
    lines = res.stderr.strip().splitlines()
    assert res.code == 1, res
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    return lines[0]


def test_modes_that_need_a_box_or_bonds_say_so(cli, tmp_path, periodic_chains):
    from .conftest import CHAIN2D

    out = tmp_path / "o.h5"
    assert "needs a periodic box" in only_error_line(
        cli("center", CHAIN2D, "--pbc", "whole", "-o", out)
    )
    path, _, _, _ = periodic_chains
    line = only_error_line(cli("rotate", path, "--pbc", "cluster", "-o", out))
    assert "needs bonds" in line and "--bonds" in line
    assert not out.exists()


def test_auto_without_bonds_warns_about_a_split_selection(cli, tmp_path, periodic_chains):
    path, bonds, _, _ = periodic_chains
    res = cli("rotate", path, "-o", tmp_path / "a.h5")
    assert res.code == 0
    assert "may be split across the boundary" in res.stderr and "--bonds" in res.stderr
    res = cli("rotate", path, "--bonds", bonds, "-o", tmp_path / "b.h5")
    assert res.code == 0 and "may be split" not in res.stderr
    assert "periodic repair (whole)" in res.stderr


def test_a_wrapped_whole_system_reference_file_is_repaired_like_the_frames(cli, tmp_path):
    from MDAnalysisTests.datafiles import TPR, XTC

    u = _universe(TPR, XTC)
    gro = tmp_path / "frame0.gro"  # frame 0 as GROMACS writes it: protein split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.atoms.write(str(gro))
    a, b = tmp_path / "first.h5", tmp_path / "file.h5"
    assert cli("rotate", XTC, "-t", TPR, "-s", "protein", "--stop", 4, "-o", a).code == 0
    res = cli("rotate", XTC, "-t", TPR, "-s", "protein", "--stop", 4, "--reference", gro, "-o", b)
    assert res.code == 0, res.stderr
    with h5py.File(a) as f, h5py.File(b) as g:
        np.testing.assert_allclose(
            g["observables/rmsd/value"][()], f["observables/rmsd/value"][()], atol=2e-3
        )


# ---------------------------------------------------- the periodic sample system


def _dimer_truth():
    from .conftest import SAMPLE

    with np.load(SAMPLE / "dimer_truth.npz") as f:
        return f["arr"].astype(np.float64)


def _boxes(u):
    return np.array([ts.triclinic_dimensions.astype(np.float64) for ts in u.trajectory])


@pytest.mark.parametrize("mode", ["cluster", "nojump"])
def test_sample_dimer_is_put_back_together(mode):
    """Through MDAnalysis (PDB bonds, DCD boxes): the complex equals the unwrapped truth
    up to one lattice vector per frame (nojump: one for the whole run)."""
    from .conftest import SAMPLE

    src = open_source(
        SAMPLE / "dimer.dcd", top=SAMPLE / "dimer.pdb", select="resname CHA", pbc=mode
    )
    got = src.read(0, src.n_frames).coords.astype(np.float64)
    truth = _dimer_truth()[:, src.atom_indices]
    hs = _boxes(_universe(SAMPLE / "dimer.pdb", SAMPLE / "dimer.dcd"))
    k = lattice_offsets(got, truth, hs)
    np.testing.assert_allclose(k, np.round(k), atol=1e-4)
    k = np.round(k)
    assert np.all(k == k[:, :1])
    if mode == "nojump":
        assert np.all(k == k[:1, :1])


def test_diagnose_shows_the_repair_with_numbers_and_a_figure(cli, tmp_path):
    from .conftest import SAMPLE

    out, figs = tmp_path / "d.h5", tmp_path / "figs"
    res = cli(
        "diagnose", SAMPLE / "dimer.dcd", "-t", SAMPLE / "dimer.pdb", "-s", "resname CHA",
        "--pbc", "cluster", "--methods", "kabsch", "-o", out, "--plot", figs, "--json",
    )  # fmt: skip
    assert res.code == 0, res.stderr
    med = json.loads(res.stdout)["pbc"]["median_rmsd_to_first"]
    assert med["repaired"] < 1.0 < 10.0 < med["as read"]
    with h5py.File(out) as f:
        rep = f["trajalign/diagnostics/pbc/rmsd_repaired"][()]
        raw = f["trajalign/diagnostics/pbc/rmsd_as_read"][()]
    # the repaired series is the Kabsch RMSD of the unwrapped truth (an oracle)
    truth = _dimer_truth()[:, :24]
    want = ta.superpose(truth, truth[0]).rmsd
    np.testing.assert_allclose(rep, want, atol=2e-3)
    assert raw.shape == rep.shape
    assert (figs / "pbc_rmsd.png").stat().st_size > 10_000


def test_whole_warns_when_a_complex_sits_in_two_images(cli, tmp_path):
    from .conftest import SAMPLE

    args = ["rotate", SAMPLE / "dimer.dcd", "-t", SAMPLE / "dimer.pdb", "-s", "resname CHA"]
    res = cli(*args, "-o", tmp_path / "w.h5", "--json")
    assert res.code == 0
    summary = json.loads(res.stdout)
    assert summary["pbc"]["mode"] == "whole" and summary["pbc"]["apart_frames"] > 400
    assert "sit in different periodic images" in res.stderr and "--pbc cluster" in res.stderr
    res = cli(*args, "--pbc", "cluster", "-o", tmp_path / "c.h5")
    assert res.code == 0 and "different periodic images" not in res.stderr
    with h5py.File(tmp_path / "w.h5") as w, h5py.File(tmp_path / "c.h5") as c:
        assert (
            np.median(w["observables/rmsd/value"]) > 3 > 1 > c["observables/rmsd/value"][()].max()
        )


def test_2d_array_with_box_and_chain_bonds_through_the_cli(cli, tmp_path):
    rng = np.random.default_rng(8)
    truth = stiff_chain(rng, n_frames=20, n=12)[..., :2]
    edges = np.array([9.0, 11.0])
    wrapped = truth - np.floor(truth / edges) * edges
    path = _npz(tmp_path, wrapped, edges)
    out = tmp_path / "i.h5"
    res = cli("internal", path, "--bonds", "chain", "--pairs", "all", "-o", out, "--json")
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["pbc"]["mode"] == "whole"
    with h5py.File(out) as f:
        got = f["trajalign/features/distances/value"][()]
    np.testing.assert_allclose(got, ta.distances(truth, "all"), atol=1e-4)
    # --box on the command line instead of the array's
    plain = tmp_path / "plain.npy"
    np.save(plain, wrapped.astype(np.float32))
    res = cli("internal", plain, "--box", "9,11", "--bonds", "chain", "--pairs", "all",
              "-o", tmp_path / "j.h5")  # fmt: skip
    assert res.code == 0, res.stderr
    with h5py.File(tmp_path / "j.h5") as f:
        np.testing.assert_array_equal(f["trajalign/features/distances/value"][()], got)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--box", "9,x"], "cannot read --box"),
        (["--box", "9,11,12"], "has 3 numbers, a 2D input needs 2"),
        (["--bonds", "nofile.txt"], "nofile.txt: no such file"),
    ],
)
def test_bad_box_and_bonds_options(cli, tmp_path, args, message):
    from .conftest import CHAIN2D

    line = only_error_line(cli("center", CHAIN2D, *args, "-o", tmp_path / "o.h5"))
    assert message in line
    assert list(tmp_path.iterdir()) == []


def test_info_names_the_repair(cli):
    from .conftest import SAMPLE

    res = cli("info", SAMPLE / "dimer.dcd", "-t", SAMPLE / "dimer.pdb", "--json")
    facts = json.loads(res.stdout)
    assert facts["pbc"].startswith("whole (52 molecule(s)")
    res = cli("info", SAMPLE / "dimer.dcd", "-t", SAMPLE / "dimer.pdb", "--pbc", "none")
    assert "may be split across the boundary in frame 0" in res.stdout


def test_nojump_with_a_frame_step_warns(cli, tmp_path):
    from .conftest import SAMPLE

    args = ["center", SAMPLE / "dimer.dcd", "-t", SAMPLE / "dimer.pdb", "-s", "resname CHA"]
    res = cli(*args, "--pbc", "nojump", "--step", 5, "-o", tmp_path / "a.h5")
    assert res.code == 0 and "--pbc nojump with --step 5" in res.stderr
    res = cli(*args, "--pbc", "nojump", "-o", tmp_path / "b.h5")
    assert res.code == 0 and "--step" not in res.stderr


def test_whole_agrees_with_mdtraj_make_molecules_whole_on_the_sample_dimer():
    import mdtraj as md

    from .conftest import SAMPLE

    t = md.load(str(SAMPLE / "dimer.dcd"), top=str(SAMPLE / "dimer.pdb"))
    theirs = t.make_molecules_whole(inplace=False).xyz[:, :24] * 10.0  # nm -> A
    src = open_source(SAMPLE / "dimer.dcd", top=SAMPLE / "dimer.pdb", pbc="whole")
    ours = src.read(0, src.n_frames).coords[:, :24]
    for chain in (slice(0, 12), slice(12, 24)):
        d_ours = ta.distances(ours[:, chain], "all")
        d_theirs = ta.distances(theirs[:, chain], "all")
        np.testing.assert_allclose(d_ours, d_theirs, atol=1e-4)
        assert d_ours.max() > 15  # longer than half the 30 A box's shortest height


def test_write_traj_holds_the_repaired_aligned_frames(cli, tmp_path):
    from .conftest import SAMPLE

    out, xtc = tmp_path / "c.h5", tmp_path / "c.xtc"
    res = cli(
        "rotate", SAMPLE / "dimer.dcd", "-t", SAMPLE / "dimer.pdb", "-s", "resname CHA",
        "--pbc", "cluster", "-o", out, "--write-traj", xtc,
    )  # fmt: skip
    assert res.code == 0, res.stderr
    from MDAnalysis.coordinates.XTC import XTCReader

    with XTCReader(str(xtc)) as r:  # the selection's 24 atoms
        written = np.array([ts.positions.copy() for ts in r])
    with h5py.File(out) as f:
        # XTC keeps 0.001 nm: rounding up to 0.005 A
        want = f["particles/trajectory/position/value"][()]
        np.testing.assert_allclose(written, want, atol=5.1e-3)


def test_nojump_of_float32_frames_decides_in_float64():
    """Trajectory blocks are float32; the previous frame's fractional coordinates are kept
    in float64 from the first block on, as the anchors of later blocks are. The atom
    here moves by 0.5 + 9e-9 of box vector a (found by a random search in this box): an
    image step in float64, none with float32 fractions (the first block's, before)."""
    from trajalign.box import box_rows
    from trajalign.pbc import Repair

    h = box_rows([10.0, 11.0, 12.0, 70.0, 80.0, 65.0], 1, 3)
    x = np.array(
        [[[9.011757850646973, 6.1546406745910645, -2.750930070877075]],
         [[14.011757850646973, 6.1546406745910645, -2.7509303092956543]]],
        dtype=np.float32,
    )  # fmt: skip
    want = ref.ref_nojump(x.astype(np.float64), h[0])
    got = x.copy()
    Repair("nojump", plan_molecules(None, 1, np.arange(1))).apply(got, h, 0)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert abs(got[1, 0, 0] - x[1, 0, 0]) > 5  # the step was taken
