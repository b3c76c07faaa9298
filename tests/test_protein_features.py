"""Protein features (named torsions, residue minimum distances, contacts) against MDTraj
on MDAnalysisTests proteins, and the mindist kernel against a plain-numpy brute force.

MDTraj sees the same atoms through a PDB of the selection written by MDAnalysis (its
reader applies standard names: CHARMM HN -> H, ILE CD -> CD1, ...) with the frames'
coordinates put in directly (nm), so both tools measure identical numbers.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

mda = pytest.importorskip("MDAnalysis")
md = pytest.importorskip("mdtraj")
datafiles = pytest.importorskip("MDAnalysisTests.datafiles")

from trajalign.errors import InputError, ParameterError, SelectionError  # noqa: E402
from trajalign.features import (  # noqa: E402
    ChainBreakWarning,
    ProteinTopology,
    contacts,
    mindist,
    residue_mindist,
    torsion_indices,
    torsions,
)
from trajalign.internal import dihedrals  # noqa: E402

TORSION_NAMES = ("phi", "psi", "omega", "chi1", "chi2", "chi3", "chi4", "chi5")
SCHEMES = ("ca", "closest", "closest-heavy", "sidechain", "sidechain-heavy")
N_FRAMES = 3

SYSTEMS = {
    "charmm": ("PSF", "DCD"),  # adenylate kinase, CHARMM names (HN, ILE CD, HSD)
    "gromacs": ("TPR", "XTC"),  # the same protein, OPLS-AA, triclinic box
    "amber": ("PRM", "TRJ"),  # 14-residue peptide, Amber names
    "amber-capped": ("PRMpbc", "TRJpbc_bz2"),  # ACE-ALA-NME in water, periodic
}


def _universe(system):
    top, trj = SYSTEMS[system]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(getattr(datafiles, top), getattr(datafiles, trj))


def _frames(u, ag, n=N_FRAMES):
    out = []
    for _ts in u.trajectory[:n]:
        out.append(ag.positions.astype(np.float32))
    u.trajectory[0]
    return np.stack(out)


_PDB_NAMES = {"LYSH": "LYS", "CYSH": "CYS", "CYS2": "CYS", "HISA": "HIS", "HISB": "HIS",
              "HISH": "HIS"}  # fmt: skip


def _mdtraj(ag, x, tmp_path, name="sel.pdb"):
    """An MDTraj trajectory of the selection ``ag`` with frames ``x`` (Angstrom)."""
    path = tmp_path / name
    res = ag.residues
    names = res.resnames.copy()
    # MDTraj counts side chains only in residues it knows by name: give GROMACS' protonation
    # names (LYSH, CYSH, HISB) their PDB names in the file it reads
    res.resnames = [_PDB_NAMES.get(s, s) for s in names]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ag.write(str(path))
    finally:
        res.resnames = names
    t = md.load(str(path))
    assert t.n_atoms == len(ag)
    return md.Trajectory(np.asarray(x, dtype=np.float32) / 10.0, t.topology)


@pytest.fixture(scope="module", params=list(SYSTEMS))
def system(request, tmp_path_factory):
    u = _universe(request.param)
    ag = u.select_atoms("protein")
    x = _frames(u, ag)
    t = _mdtraj(ag, x, tmp_path_factory.mktemp(request.param))
    return request.param, u, ag, x, t


def _wrapped(d):
    return np.abs(np.arctan2(np.sin(d), np.cos(d)))


# ---------------------------------------------------------------------- torsions


@pytest.mark.parametrize("name", TORSION_NAMES)
def test_torsions_equal_mdtraj(system, name):
    label, u, ag, x, t = system
    quads, labels = torsion_indices(ag, name, x[0])
    ref_idx, ref = getattr(md, f"compute_{name}")(t, periodic=False)
    ours = [tuple(q) for q in quads.tolist()]
    theirs = [tuple(q) for q in ref_idx.tolist()]
    assert set(ours) == set(theirs), f"{label} {name}"
    assert len(labels) == len(ours) == len(set(labels))
    if not ours:
        return
    where = {q: k for k, q in enumerate(theirs)}
    values = dihedrals(x, quads)
    assert _wrapped(values - ref[:, [where[q] for q in ours]]).max() < 1e-4
    # per feature by residue, in topology order
    res = ag.atoms[quads[:, 1]].resindices
    assert np.all(np.diff(res) > 0)


def test_torsion_labels_and_ile_alias():
    u = _universe("charmm")
    ag = u.select_atoms("protein")
    quads, labels = torsion_indices(ag, "chi2")
    # CHARMM names ILE's delta carbon CD: the alias gives ILE its chi2 (CA-CB-CG1-CD)
    ile = [k for k, s in enumerate(labels) if s.startswith("chi2 ILE")]
    n_ile = int(np.count_nonzero(ag.residues.resnames == "ILE"))
    assert len(ile) == n_ile > 0
    assert set(ag.atoms[quads[ile[0]]].names) == {"CA", "CB", "CG1", "CD"}
    phi_q, phi_l = torsion_indices(ag, "phi")
    r = ag.atoms[phi_q[0, 1]].residue
    assert phi_l[0] == f"phi {r.resname} {r.resid} 4AKE"
    assert ag.atoms[phi_q[0]].names.tolist() == ["C", "N", "CA", "C"]


def test_named_torsion_functions_match_indices():
    from trajalign.features import phi

    u = _universe("amber")
    ag = u.select_atoms("protein")
    x = _frames(u, ag)
    values, labels = phi(x, ag)
    quads, labels2 = torsion_indices(ag, "phi")
    assert labels == labels2
    np.testing.assert_array_equal(values, dihedrals(x, quads))
    v2, _ = torsions(x, ag, "PHI")
    np.testing.assert_array_equal(values, v2)


def _gap_universe(tmp_path, bonds: bool):
    """Adenylate kinase without residues 50-52 (a removed loop)."""
    u = _universe("charmm")
    ag = u.select_atoms("protein and not resid 50:52")
    if bonds:
        return u, ag
    path = tmp_path / "gap.pdb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ag.write(str(path), bonds=None)
        v = mda.Universe(str(path))
    assert not hasattr(v, "bonds") or len(v.bonds) == 0
    return v, v.atoms


@pytest.mark.parametrize("bonds", [True, False], ids=["topology-bonds", "distance"])
def test_removed_loop_left_out_and_warned(tmp_path, bonds):
    u, ag = _gap_universe(tmp_path, bonds)
    x = ag.positions[None].astype(np.float32)
    t = _mdtraj(ag, x, tmp_path, "gap_md.pdb")
    r49, r53 = ag.select_atoms("resid 49").residues[0], ag.select_atoms("resid 53").residues[0]
    # the PDB round trip (no bonds) gives chain ID X, MDAnalysis' default
    where = "segment 4AKE" if bonds else "chain X"
    msg = (
        f"chain break between {r49.resname} 49 and {r53.resname} 53 ({where}): "
        "phi/psi/omega there left out"
    )
    pos = {int(a): k for k, a in enumerate(ag.indices)}
    gap_atoms = {pos[int(r49.atoms.select_atoms("name C").indices[0])],
                 pos[int(r53.atoms.select_atoms("name N").indices[0])]}  # fmt: skip
    for name in ("phi", "psi", "omega"):
        with pytest.warns(ChainBreakWarning) as rec:
            quads, _ = torsion_indices(ag, name, x[0])
        assert [str(w.message) for w in rec] == [msg]
        ref_idx = getattr(md, f"compute_{name}")(t)[0]
        theirs = {tuple(q) for q in ref_idx.tolist()}
        spanning = {q for q in theirs if gap_atoms <= set(q)}
        # MDTraj joins residues 49 and 53 by index; trajalign leaves that torsion out
        assert len(spanning) == 1
        assert {tuple(q) for q in quads.tolist()} == theirs - spanning
    # side chains do not cross residues: no warning, MDTraj's set
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quads, _ = torsion_indices(ag, "chi1", x[0])
    assert {tuple(q) for q in quads.tolist()} == {tuple(q) for q in md.compute_chi1(t)[0]}


def test_no_protein_is_a_one_line_error():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(datafiles.PSF_TRICLINIC, datafiles.DCD_TRICLINIC)
    with pytest.raises(SelectionError) as exc:
        torsion_indices(u.atoms, "phi")
    assert str(exc.value) == (
        "phi needs atoms named N, CA, C: the selection has none "
        "(use --features dihedrals with --pairs FILE for other molecules)"
    )
    with pytest.raises(SelectionError, match="chi1 needs atoms named N, CA, C:"):
        torsion_indices(u.atoms, "chi1")


def test_unknown_names_list_the_choices():
    ag = _universe("amber").select_atoms("protein")
    with pytest.raises(ParameterError, match="choose from phi, psi, omega, chi1"):
        torsion_indices(ag, "chi6")
    with pytest.raises(ParameterError, match="choose from ca, closest, closest-heavy"):
        residue_mindist(ag.positions[None], ag, scheme="heavy")


# ----------------------------------------------------------------------- mindist


@pytest.mark.parametrize("scheme", SCHEMES)
def test_mindist_equals_mdtraj(system, scheme):
    label, u, ag, x, t = system
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MDTraj's GLY note for sidechain-heavy
        try:
            ref, ref_pairs = md.compute_contacts(t, "all", scheme=scheme, periodic=False)
        except ValueError as exc:  # too short for MDTraj's all: compare our error
            assert "No acceptable residue pairs" in str(exc)
            with pytest.raises(SelectionError, match="gives no residue pairs"):
                residue_mindist(x, ag, scheme)
            return
    r = residue_mindist(x, ag, scheme)
    assert r.value.dtype == np.float32 and r.atoms.dtype == np.int32
    assert r.value.shape == (N_FRAMES, len(r.labels)) == (N_FRAMES, r.residues.shape[0])
    assert len(set(r.labels)) == len(r.labels)
    # one chain: trajalign's all is MDTraj's all (MDTraj residue index = topology index
    # here, as the selection starts at residue 0 and has every residue)
    ours = {tuple(p): k for k, p in enumerate(r.residues.tolist())}
    assert set(ours) == {tuple(p) for p in ref_pairs.tolist()}
    cols = [ours[tuple(p)] for p in ref_pairs.tolist()]
    np.testing.assert_allclose(r.value[:, cols], ref * 10.0, rtol=0, atol=2e-4)
    # the atom pair realises the distance and belongs to the two residues
    f = np.arange(N_FRAMES)[:, None]
    real = np.linalg.norm(x[f, r.atoms[..., 0]].astype(np.float64) - x[f, r.atoms[..., 1]], axis=-1)
    np.testing.assert_allclose(real, r.value, rtol=0, atol=1e-5)
    res = ag.atoms.resindices
    for side in (0, 1):
        assert np.all(res[r.atoms[..., side]] == r.residues[None, :, side])


def test_all_pairs_add_inter_chain_pairs(tmp_path):
    u = _universe("charmm")
    u.add_TopologyAttr("chainIDs", np.where(u.atoms.resindices < 100, "A", "B"))
    ag = u.select_atoms("protein")
    x = _frames(u, ag, 2)
    t = _mdtraj(ag, x, tmp_path)
    assert t.n_chains == 2
    ref, ref_pairs = md.compute_contacts(t, "all", scheme="closest-heavy", periodic=False)
    r = residue_mindist(x, ag, "closest-heavy")
    inter = {(i, j) for i in range(100) for j in range(100, 214)}
    mdtraj_all = {tuple(p) for p in ref_pairs.tolist()}
    assert not mdtraj_all & inter  # MDTraj's all leaves inter-chain pairs out
    ours = {tuple(p): k for k, p in enumerate(r.residues.tolist())}
    assert set(ours) == mdtraj_all | inter
    np.testing.assert_allclose(
        r.value[:, [ours[tuple(p)] for p in ref_pairs.tolist()]], ref * 10, rtol=0, atol=2e-4
    )
    inter_pairs = sorted(inter)
    ref_inter, _ = md.compute_contacts(t, inter_pairs, scheme="closest-heavy", periodic=False)
    np.testing.assert_allclose(
        r.value[:, [ours[p] for p in inter_pairs]], ref_inter * 10, rtol=0, atol=2e-4
    )
    assert r.labels[ours[(0, 100)]] == "mindist MET 1 A - " + (
        f"{ag.residues[100].resname} {ag.residues[100].resid} B (closest-heavy)"
    )
    # no phi across the chain boundary, as MDTraj
    quads, _ = torsion_indices(ag, "phi")
    assert {tuple(q) for q in quads.tolist()} == {tuple(q) for q in md.compute_phi(t)[0]}


def test_residue_pairs_file(tmp_path):
    u = _universe("amber")
    ag = u.select_atoms("protein")
    x = _frames(u, ag)
    t = _mdtraj(ag, x, tmp_path)
    path = tmp_path / "pairs.txt"
    path.write_text("# residue pairs\n0 5\n3, 1  # reversed order is kept\n\n12 13\n")
    r = residue_mindist(x, ag, "sidechain-heavy", residue_pairs=path)
    np.testing.assert_array_equal(r.residues, [[0, 5], [3, 1], [12, 13]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, _ = md.compute_contacts(t, [[0, 5], [3, 1], [12, 13]], scheme="sidechain-heavy")
    np.testing.assert_allclose(r.value, ref * 10, rtol=0, atol=2e-4)
    for text, match in (
        ("0 99\n", "residue 99 has no selected atom"),
        ("0 1 2\n", "has 3 columns"),
        ("2 2\n", "with itself"),
        ("0 4\n4 0\n", "repeats a pair"),
    ):
        path.write_text(text)
        with pytest.raises(InputError, match=match):
            residue_mindist(x, ag, residue_pairs=path)


# --------------------------------------------------------- kernel vs brute force


def _lattice(h, n=3):
    grid = np.array(list(itertools.product(range(-n, n + 1), repeat=3)), dtype=np.float64)
    return grid @ h  # (27.., 3) lattice vectors


def _brute(x, groups, pairs, h=None, direct=None):
    """Minimum over every atom pair and every lattice image in [-3, 3]^3 (``direct``
    pairs: the image in the array only)."""
    x = x.astype(np.float64)
    shifts = np.zeros((1, 3)) if h is None else _lattice(h)
    direct = np.zeros(len(pairs), bool) if direct is None else direct
    out = np.empty((x.shape[0], len(pairs)))
    for f, xf in enumerate(x):
        # squared distance of atoms i, j with j shifted by s, for every atom pair at once:
        # |x_j + s - x_i|^2 = |x_j - x_i|^2 + 2 (x_j - x_i).s + |s|^2
        base = ((xf[None, :, :] - xf[:, None, :]) ** 2).sum(axis=-1)
        imaged = np.full_like(base, np.inf)
        for s in shifts:
            p = xf @ s
            np.minimum(imaged, base + 2.0 * (p[None, :] - p[:, None]) + s @ s, out=imaged)
        for k, (a, b) in enumerate(pairs):
            d2 = base if direct[k] else imaged
            out[f, k] = np.sqrt(max(d2[np.ix_(groups[a], groups[b])].min(), 0.0))
    return out


def _random_groups(rng, n_points, n_groups, spread=1.5, scale=30.0, max_size=8):
    centres = rng.uniform(0, scale, (n_groups, 3))
    sizes = rng.integers(1, max_size + 1, n_groups)
    x0, groups, start = [], [], 0
    for c, s in zip(centres, sizes, strict=True):
        x0.append(c + rng.normal(0, spread, (s, 3)))
        groups.append(np.arange(start, start + s))
        start += s
    return np.concatenate(x0), groups


@pytest.mark.parametrize("max_size", [8, 24], ids=["small-groups", "bounded-groups"])
@pytest.mark.parametrize("box_kind", ["none", "orthorhombic", "triclinic"])
def test_mindist_equals_brute_force(box_kind, max_size, unchanged):
    # groups up to 8 atoms are measured in full; larger pairs (> 100 atom pairs) go
    # through the bounding-sphere path
    rng = np.random.default_rng(7)
    x0, groups = _random_groups(rng, 0, 40, max_size=max_size)
    n = x0.shape[0]
    x = unchanged((x0[None] + rng.normal(0, 0.7, (4, n, 3))).astype(np.float32))
    pairs = np.array([(i, j) for i in range(40) for j in range(i + 1, 40)])
    if box_kind == "none":
        box, h = None, None
    elif box_kind == "orthorhombic":
        box = np.array([22.0, 25.0, 19.0, 90.0, 90.0, 90.0])
        h = np.diag(box[:3])
    else:
        # a skewed cell: rows a, b, c lower triangular
        h = np.array([[21.0, 0.0, 0.0], [9.0, 19.0, 0.0], [-7.0, 8.0, 17.0]])
        box = h
    dist, arg = mindist(x, groups, pairs, box=box)
    ref = _brute(x, groups, pairs, h)
    np.testing.assert_allclose(dist, ref, rtol=0, atol=2e-5)
    # the arg-min atoms lie in their groups and realise the distance (minimum image)
    g_of = np.concatenate([np.full(g.size, k) for k, g in enumerate(groups)])
    assert np.all(g_of[arg[..., 0]] == pairs[:, 0]) and np.all(g_of[arg[..., 1]] == pairs[:, 1])
    f = np.arange(x.shape[0])[:, None]
    v = x[f, arg[..., 1]].astype(np.float64) - x[f, arg[..., 0]]
    shifts = np.zeros((1, 3)) if h is None else _lattice(h)
    real = np.linalg.norm(v[..., None, :] + shifts, axis=-1).min(axis=-1)
    np.testing.assert_allclose(real, dist, rtol=0, atol=2e-5)


def test_mindist_molecules_measure_whole_molecules_directly():
    rng = np.random.default_rng(3)
    x0, groups = _random_groups(rng, 0, 12, scale=30.0)
    x = x0[None].astype(np.float64)
    pairs = np.array([(i, j) for i in range(12) for j in range(i + 1, 12)])
    box = np.array([20.0, 20.0, 20.0, 90.0, 90.0, 90.0])
    # groups 0-5 form one molecule (may be longer than half the box), the rest others
    mol = np.concatenate([np.full(g.size, 0 if k < 6 else k) for k, g in enumerate(groups)])
    dist, _ = mindist(x, groups, pairs, box=box, molecules=mol)
    direct = (pairs[:, 0] < 6) & (pairs[:, 1] < 6)
    ref = _brute(x, groups, pairs, np.diag(box[:3]), direct=direct)
    np.testing.assert_allclose(dist, ref, rtol=0, atol=1e-5)  # float32 output
    assert np.any(dist[0, direct] > _brute(x, groups, pairs[direct], np.diag(box[:3]))[0])


def test_mindist_periodic_protein_in_box(tmp_path):
    """GROMACS adenylate kinase in its rhombic-dodecahedron box: pairs within one molecule
    are measured as read; without molecules every atom pair takes the minimum image, as
    MDTraj's periodic=True."""
    u = _universe("gromacs")
    ag = u.select_atoms("protein")
    x = _frames(u, ag, 2)
    box = u.dimensions.copy()
    plain = residue_mindist(x, ag)
    whole = residue_mindist(x, ag, box=box, molecules=np.zeros(len(ag), dtype=np.int64))
    np.testing.assert_array_equal(plain.value, whole.value)
    wrapped = residue_mindist(x, ag, box=box)
    t = _mdtraj(ag, x, tmp_path)
    t.unitcell_vectors = np.broadcast_to(
        mda.lib.mdamath.triclinic_vectors(box) / 10.0, (2, 3, 3)
    ).astype(np.float32)
    ref, _ = md.compute_contacts(t, "all", scheme="closest-heavy", periodic=True)
    # the minimum image is never longer than the vector as read (these frames hold the
    # protein split across the boundary, so some pairs are shorter)
    assert np.all(wrapped.value <= plain.value + 1e-6)
    np.testing.assert_allclose(wrapped.value, ref * 10, rtol=0, atol=2e-4)


def test_mindist_rejects_bad_groups():
    x = np.zeros((1, 4, 3))
    with pytest.raises(SelectionError, match="group 1 is empty"):
        mindist(x, [[0], []], [[0, 1]])
    with pytest.raises(SelectionError, match="out of range for 4 points"):
        mindist(x, [[0], [7]], [[0, 1]])
    with pytest.raises(SelectionError, match="with itself"):
        mindist(x, [[0], [1]], [[1, 1]])


# ------------------------------------------- dense runs against the one-by-one path


def _cdist_ref(x, groups, pairs):
    """Smallest distance and one realising atom pair per pair and frame, by
    scipy.spatial.distance.cdist on each pair (float64)."""
    from scipy.spatial.distance import cdist

    x = np.asarray(x, dtype=np.float64)
    out = np.empty((x.shape[0], len(pairs)))
    for f in range(x.shape[0]):
        for k, (a, b) in enumerate(pairs):
            out[f, k] = cdist(x[f, groups[a]], x[f, groups[b]]).min()
    return out


def _plan_and_table(x, groups, pairs, box=None, molecules=None):
    from trajalign.features import mindist_plan
    from trajalign.features.mindist import _table

    plan = mindist_plan(groups, pairs, x.shape[1], molecules)
    return plan, _table(box, x.shape[0], 3)


def _check_atoms(x, groups, pairs, dist, arg, atol):
    """The atom pair of each minimum lies in the pair's groups (first from the first) and
    realises the distance."""
    g_of = np.concatenate([np.full(len(g), k) for k, g in enumerate(groups)])
    order = np.concatenate(groups)
    grp = np.empty(x.shape[1], dtype=np.int64)
    grp[order] = g_of
    assert np.all(grp[arg[..., 0]] == pairs[:, 0]) and np.all(grp[arg[..., 1]] == pairs[:, 1])
    f = np.arange(x.shape[0])[:, None]
    real = np.linalg.norm(x[f, arg[..., 1]].astype(np.float64) - x[f, arg[..., 0]], axis=-1)
    np.testing.assert_allclose(real, dist, rtol=0, atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_runs_equal_one_by_one_and_cdist(dtype, unchanged):
    # groups of 1 to 9 points along a chain (like residues), every pair |i - j| >= 2 in
    # the order (j, i) for some rows: dense runs, with pairs written (partner, A)
    rng = np.random.default_rng(11)
    n_groups = 30
    sizes = rng.integers(1, 10, n_groups)
    sizes[[0, 7, 8]] = 1  # groups of one atom, also neighbours of each other
    centres = np.cumsum(rng.normal(0, 2.5, (n_groups, 3)), axis=0)
    x0 = np.concatenate(
        [c + rng.normal(0, 1.2, (s, 3)) for c, s in zip(centres, sizes, strict=True)]
    )
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    groups = [np.arange(bounds[g], bounds[g + 1]) for g in range(n_groups)]
    x = unchanged((x0[None] + rng.normal(0, 0.5, (5, x0.shape[0], 3))).astype(dtype))
    pairs = np.array([(i, j) for i in range(n_groups) for j in range(i + 2, n_groups)])
    flip = rng.random(len(pairs)) < 0.3
    pairs[flip] = pairs[flip][:, ::-1]
    plan, table = _plan_and_table(x, groups, pairs)
    sparse, runs, run_ptr, run_pairs, _ = plan.schedule(False)
    # the dense path is the one under test: nearly every pair is in a run
    assert run_pairs.size >= 0.9 * len(pairs) and runs.shape[0] > 0
    dist, arg = plan.compute(x, table)
    ref_d, ref_a = plan.compute(x, table, dense=False)
    np.testing.assert_array_equal(dist, ref_d)
    np.testing.assert_array_equal(arg, ref_a)
    np.testing.assert_allclose(dist, _cdist_ref(x, groups, pairs), rtol=0, atol=1e-5)
    _check_atoms(x, groups, pairs, dist, arg, 1e-5)


def test_dense_runs_resolve_ties_as_one_by_one():
    # integer coordinates on a grid: many atom pairs at exactly the same distance, and
    # atoms repeated in two groups (distance 0); the dense path hands these to the
    # one-by-one path, so both give the same atoms
    rng = np.random.default_rng(5)
    x0 = rng.integers(0, 6, (120, 3)).astype(np.float32)
    groups = [np.arange(4 * g, 4 * g + 4) for g in range(30)]
    groups[3] = np.array([9, 50, 51])  # shares atom 9 with group 2
    pairs = np.array([(i, j) for i in range(30) for j in range(i + 1, 30)])
    x = np.stack([x0, x0[::-1].copy()])
    plan, table = _plan_and_table(x, groups, pairs)
    assert plan.schedule(False)[3].size > 0.9 * len(pairs)
    dist, arg = plan.compute(x, table)
    ref_d, ref_a = plan.compute(x, table, dense=False)
    np.testing.assert_array_equal(dist, ref_d)
    np.testing.assert_array_equal(arg, ref_a)
    np.testing.assert_allclose(dist, _cdist_ref(x, groups, pairs), rtol=0, atol=1e-6)
    k23 = int(np.flatnonzero((pairs[:, 0] == 2) & (pairs[:, 1] == 3))[0])
    assert np.all(dist[:, k23] == 0.0)


def test_dense_runs_in_a_box_leave_periodic_pairs_to_the_minimum_image():
    # two molecules in a small box: pairs inside molecule 0 are dense runs measured
    # directly, pairs across molecules take the exact minimum image one by one
    rng = np.random.default_rng(2)
    x0, groups = _random_groups(rng, 0, 24, spread=1.0, scale=18.0, max_size=6)
    x = (x0[None] + rng.normal(0, 0.4, (3, x0.shape[0], 3))).astype(np.float32)
    box = np.array([16.0, 17.0, 15.0, 90.0, 90.0, 90.0])
    mol = np.concatenate([np.full(g.size, 0 if k < 14 else 1) for k, g in enumerate(groups)])
    pairs = np.array([(i, j) for i in range(24) for j in range(i + 1, 24)])
    plan, table = _plan_and_table(x, groups, pairs, box=box, molecules=mol)
    sparse, runs, _, run_pairs, _ = plan.schedule(True)
    assert not np.any(plan.periodic[run_pairs]) and run_pairs.size > 0
    assert np.all(np.isin(np.flatnonzero(plan.periodic), sparse))
    dist, arg = plan.compute(x, table)
    ref_d, ref_a = plan.compute(x, table, dense=False)
    np.testing.assert_array_equal(dist, ref_d)
    np.testing.assert_array_equal(arg, ref_a)
    direct = plan.periodic == 0
    ref = _brute(x, groups, pairs, np.diag(box[:3]), direct=direct)
    np.testing.assert_allclose(dist, ref, rtol=0, atol=2e-5)
    # without a box the same plan measures every pair directly, dense runs included
    plain, _ = plan.compute(x, _plan_and_table(x, groups, pairs)[1])
    assert plan.schedule(False)[3].size > run_pairs.size
    np.testing.assert_allclose(plain, _cdist_ref(x, groups, pairs), rtol=0, atol=1e-5)


def test_residue_pairs_file_takes_dense_runs(tmp_path):
    # a FILE of every pair among residues 10-49 of adenylate kinase, half of them written
    # (high, low): the same numbers as cdist on the heavy atoms
    u = _universe("charmm")
    ag = u.select_atoms("protein")
    x = _frames(u, ag, 2)
    lines = []
    for i in range(10, 50):
        for j in range(i + 1, 50):
            lines.append(f"{j} {i}" if (i + j) % 2 else f"{i} {j}")
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(lines) + "\n")
    r = residue_mindist(x, ag, "closest-heavy", residue_pairs=path)
    top = ProteinTopology.from_atoms(ag, x[0])
    groups = top.groups("closest-heavy")
    rows = np.array([[int(v) for v in s.split()] for s in lines])
    np.testing.assert_array_equal(r.residues, rows)
    np.testing.assert_allclose(r.value, _cdist_ref(x, groups, rows), rtol=0, atol=1e-5)
    res = ag.atoms.resindices
    for side in (0, 1):
        assert np.all(res[r.atoms[..., side]] == r.residues[None, :, side])


# ---------------------------------------------------------------------- contacts


def test_contacts_step_and_logistic():
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 10, (5, 30)).astype(np.float32)
    d[0, 0] = 4.5  # at the cutoff: a contact (<=)
    step = contacts(d, 4.5)
    assert step.dtype == np.uint8
    np.testing.assert_array_equal(step, (d <= 4.5).astype(np.uint8))
    logi = contacts(d, 4.5, "logistic", steepness=3.0)
    assert logi.dtype == np.float32
    np.testing.assert_allclose(logi, 1 / (1 + np.exp(3.0 * (d.astype(np.float64) - 4.5))),
                               rtol=1e-6)  # fmt: skip
    assert contacts(np.array([[1e6]]), 4.5, "logistic")[0, 0] == 0.0
    with pytest.raises(ParameterError, match="choose from step, logistic"):
        contacts(d, 4.5, "sigmoid")


def test_protein_topology_chain_labels_use_chain_ids():
    u = _universe("gromacs")
    top = ProteinTopology.from_atoms(u.select_atoms("protein"))
    assert top.chain_kind == "chain" and set(top.chains) == {"AKeco"}
    assert top.breaks == []
