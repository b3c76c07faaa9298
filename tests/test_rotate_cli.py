"""``trajalign rotate`` end to end: datasets, MDAnalysis agreement, chunking, trajectory
output, and one clear error line (with nothing written) for each kind of bad input."""

from __future__ import annotations

import json
import warnings

import h5py
import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysisTests.datafiles import DCD, PSF

from .conftest import BUTANE_DCD, BUTANE_PDB, CHAIN2D

BUTANE = (BUTANE_DCD, "-t", BUTANE_PDB)


def read_all(path) -> dict:
    """Every dataset of an HDF5 file (provenance attributes are not datasets)."""
    out = {}
    with h5py.File(path) as f:
        f.visititems(
            lambda name, obj: out.__setitem__(name, obj[()]) if hasattr(obj, "shape") else None
        )
    return out


def butane_frames(start=0, stop=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(BUTANE_PDB), str(BUTANE_DCD))
    return np.stack([u.atoms.positions.copy() for _ in u.trajectory[start:stop]]), u


def check_motion(data, x):
    """aligned[t] == (x[t] - c_t) @ R_t with proper rotations."""
    R = data["trajalign/alignment/rotation"]
    c = data["trajalign/alignment/translation"]
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    again = np.einsum("fnd,fde->fne", x - c[:, None], R)
    np.testing.assert_allclose(data["particles/trajectory/position/value"], again, atol=2e-4)


def test_kabsch_cli_matches_mdanalysis_aligntraj(cli, tmp_path):
    from MDAnalysis.analysis import align

    out = tmp_path / "adk.h5"
    res = cli("rotate", DCD, "-t", PSF, "--fit-select", "name CA", "--stop", 10, "-o", out)
    assert res.code == 0, res.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mobile = mda.Universe(PSF, DCD)
        mobile.transfer_to_memory(stop=10)
        refu = mda.Universe(PSF, DCD)
        aligner = align.AlignTraj(mobile, refu, select="name CA", in_memory=True).run()
    expected = mobile.trajectory.timeseries(order="fac")
    ca = refu.select_atoms("name CA")
    data = read_all(out)
    pos = data["particles/trajectory/position/value"]
    np.testing.assert_allclose(pos + ca.positions.mean(axis=0), expected, atol=1e-3)
    np.testing.assert_allclose(data["observables/rmsd/value"], aligner.results.rmsd, atol=1e-3)
    np.testing.assert_array_equal(data["trajalign/alignment/fit_indices"], ca.indices)
    np.testing.assert_allclose(
        data["trajalign/alignment/reference"], ca.positions - ca.positions.mean(0), atol=1e-4
    )


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--reference", "average", "--weights", "mass"),
        ("--reference", "frame:7", "--fit-select", "name C*"),
        ("--method", "principal", "--sign", "skew"),
        ("--method", "principal", "--center", "point", "--point", 0, "--weights", "none"),
        ("--method", "point", "--points", "0,1,2"),
    ],
)
def test_butane_every_method_writes_a_consistent_motion(cli, tmp_path, args):
    out = tmp_path / "b.h5"
    res = cli("rotate", *BUTANE, "--stop", 60, "-o", out, "--json", *args)
    assert res.code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["frames"] == 60 and summary["atoms"] == 14 and summary["dim"] == 3
    data = read_all(out)
    x, _ = butane_frames(0, 60)
    check_motion(data, x)
    assert data["trajalign/alignment/rotation"].shape == (60, 3, 3)
    assert data["trajalign/alignment/translation"].shape == (60, 3)
    if "principal" in args:
        assert data["trajalign/diagnostics/eigenvalues"].shape == (60, 3)
        assert data["trajalign/diagnostics/gap"].shape == (60, 2)
        assert data["trajalign/diagnostics/sign_flip"].shape == (60, 3)
        assert "observables/rmsd/value" not in data
    elif "point" not in args:
        assert data["observables/rmsd/value"].shape == (60,)
        assert data["trajalign/alignment/reference"].shape[1] == 3


def test_reference_structure_file_equals_frame_zero(cli, tmp_path):
    """butane.pdb is frame 0 of butane.dcd written to 3 decimals."""
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert cli("rotate", *BUTANE, "--stop", 20, "--reference", BUTANE_PDB, "-o", a).code == 0
    assert cli("rotate", *BUTANE, "--stop", 20, "--reference", "frame:0", "-o", b).code == 0
    pa = read_all(a)["particles/trajectory/position/value"]
    pb = read_all(b)["particles/trajectory/position/value"]
    np.testing.assert_allclose(pa, pb, atol=5e-3)
    npy = tmp_path / "ref.npy"
    np.save(npy, read_all(b)["trajalign/alignment/reference"])
    c = tmp_path / "c.h5"
    assert cli("rotate", *BUTANE, "--stop", 20, "--reference", npy, "-o", c).code == 0
    np.testing.assert_allclose(read_all(c)["particles/trajectory/position/value"], pb, atol=1e-5)


def test_chunked_runs_equal_one_block(cli, tmp_path):
    """Continuity carries the previous frame's axes across blocks: exact equality."""
    for args in (
        ("--method", "principal"),
        ("--method", "principal", "--sign", "none"),
        ("--reference", "average"),
    ):
        one, many = tmp_path / "one.h5", tmp_path / "many.h5"
        common = ("rotate", CHAIN2D, "--stop", 300, *args, "--force")
        assert cli(*common, "-o", one, "--chunk-frames", 100000).code == 0
        assert cli(*common, "-o", many, "--chunk-frames", 7).code == 0
        a, b = read_all(one), read_all(many)
        assert a.keys() == b.keys()
        for name in a:
            if "average" in args and a[name].dtype.kind == "f":
                # the average's sums run in another order over other blocks
                np.testing.assert_allclose(a[name], b[name], atol=1e-6, err_msg=name)
            else:
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_chain2d_sign_none_jumps_and_continuity_does_not(cli, tmp_path):
    none, cont = tmp_path / "none.h5", tmp_path / "cont.h5"
    r1 = cli("rotate", CHAIN2D, "--method", "principal", "--sign", "none", "-o", none)
    r2 = cli("rotate", CHAIN2D, "--method", "principal", "-o", cont)
    assert r1.code == 0 and r2.code == 0
    a, b = read_all(none), read_all(cont)
    swap = b["trajalign/diagnostics/axis_swap"]
    jumps_none = a["trajalign/diagnostics/sign_flip"].any(axis=1) & ~swap
    jumps_cont = b["trajalign/diagnostics/sign_flip"].any(axis=1) & ~swap
    assert jumps_none.sum() > 20 and jumps_cont.sum() == 0
    # the flips are real: aligned frames jump by far more there than elsewhere
    pos = a["particles/trajectory/position/value"]
    step = np.sqrt(np.mean(np.sum(np.diff(pos, axis=0) ** 2, axis=2), axis=1))
    assert np.median(step[jumps_none[1:]]) > 10 * np.median(step)
    # swaps (eigenvalues crossing) are reported as warnings naming frames
    assert "swapped order" in r2.stderr


def test_write_traj_round_trip_and_refusal(cli, tmp_path):
    out, traj = tmp_path / "b.h5", tmp_path / "b.xtc"
    res = cli("rotate", *BUTANE, "--stop", 30, "-o", out, "--write-traj", traj)
    assert res.code == 0, res.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(BUTANE_PDB), str(traj))
    xtc = np.stack([u.atoms.positions.copy() for _ in u.trajectory])
    # XTC keeps 1e-3 nm: positions round to the nearest 0.01 Angstrom
    pos = read_all(out)["particles/trajectory/position/value"]
    np.testing.assert_allclose(xtc, pos, atol=5.1e-3)
    np.testing.assert_allclose(u.trajectory[3].time, 3.0)
    # an existing trajectory is refused before any work: no new HDF5 file appears
    again = tmp_path / "c.h5"
    res = cli("rotate", *BUTANE, "--stop", 30, "-o", again, "--write-traj", traj)
    assert res.code == 1 and "already exists" in res.stderr and not again.exists()
    res = cli("rotate", CHAIN2D, "-o", again, "--write-traj", tmp_path / "c.xtc")
    assert res.code == 1 and "3D" in res.stderr and not again.exists()
    res = cli("rotate", *BUTANE, "-o", again, "--write-traj", tmp_path / "c.foo")
    assert res.code == 1 and "no trajectory writer" in res.stderr and not again.exists()


def test_write_traj_failure_with_force_keeps_the_old_outputs(cli, tmp_path, monkeypatch):
    """--force replaces -o only when the trajectory was written too."""
    import errno

    import trajalign.jobs.rotate as jr

    def full_disk(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    out, traj = tmp_path / "b.h5", tmp_path / "b.xtc"
    out.write_bytes(b"old h5")
    traj.write_bytes(b"old xtc")
    monkeypatch.setattr(jr, "write_trajectory", full_disk)
    res = cli("rotate", *BUTANE, "--stop", 30, "-o", out, "--write-traj", traj, "--force")
    assert res.code == 1 and "No space left" in res.stderr, res.stderr
    assert out.read_bytes() == b"old h5" and traj.read_bytes() == b"old xtc"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.h5", "b.xtc"]


# ------------------------------------------------------------------------ bad input


def one_error_line(res, code=1):
    lines = res.stderr.strip().splitlines()
    assert res.code == code, res
    assert "Traceback" not in res.stderr
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
        assert "(" in lines[0] and lines[0].endswith(")")  # the hint: how to fix it
        return lines[0]
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    assert len(errors) == 1, res.stderr
    return errors[0]


@pytest.fixture()
def bad_refs(tmp_path):
    five = tmp_path / "five.pdb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(BUTANE_PDB))
        u.select_atoms("index 0:4").write(str(five))
    nan = tmp_path / "nan.npy"
    arr = u.atoms.positions.astype(np.float64)
    arr[3, 1] = np.nan
    np.save(nan, arr)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((5, 2)))
    return {"five": five, "nan": nan, "wrong": wrong}


@pytest.mark.parametrize(
    "case,args,code,needle",
    [
        ("unknown method", ("--method", "spin"), 2, "--method"),
        ("points out of range", ("--method", "point", "--points", "0,1,99"), 1, "out of range"),
        ("points repeated", ("--method", "point", "--points", "0,1,1"), 1, "repeat"),
        ("points missing K", ("--method", "point", "--points", "0,1"), 1, "third point"),
        ("points unreadable", ("--method", "point", "--points", "a,b"), 1, "--points"),
        ("reference frame", ("--reference", "frame:5000"), 1, "out of range"),
        ("reference keyword", ("--reference", "median"), 1, "frame:K"),
        ("reference atoms", ("--reference", "@five"), 1, "has 5 atoms"),
        ("reference nan", ("--reference", "@nan"), 1, "NaN"),
        ("kabsch 2 fit atoms", ("--fit-select", "index 0 1"), 1, "at least 3"),
        ("principal 2 atoms", ("--method", "principal", "--fit-select", "index 0 1"), 1, "3"),
        (
            "principal 3 atoms is fine",
            ("--method", "principal", "--fit-select", "index 0 1 2"),
            0,
            "",
        ),
        ("option of other method", ("--sign", "skew"), 1, "--method principal"),
        ("weights mass w/o masses", ("@chain", "--weights", "mass"), 1, "--masses"),
        ("kabsch 2D 1 atom", ("@chain", "--fit-select", "3"), 1, "at least 2"),
        ("principal 2D 1 atom", ("@chain", "--method", "principal", "--fit-select", "3"), 1, "2"),
        ("2D reference file", ("@chain", "--reference", "@wrong"), 1, "5 atoms"),
        ("2D points K", ("@chain", "--method", "point", "--points", "0,1,2"), 1, "two points"),
    ],
)
def test_bad_input_one_line_and_nothing_written(cli, tmp_path, bad_refs, case, args, code, needle):
    out = tmp_path / "out.h5"
    inputs = BUTANE
    args = list(args)
    if args and args[0] == "@chain":
        inputs, args = (CHAIN2D,), args[1:]
    args = [bad_refs[a[1:]] if isinstance(a, str) and a[1:] in bad_refs else a for a in args]
    res = cli("rotate", *inputs, "--stop", 20, "-o", out, *args)
    if code == 0:  # C1 C2 C3 of butane are not collinear: a valid run, for contrast
        assert res.code == 0, res.stderr
        return
    line = one_error_line(res, code)
    assert needle in line, line
    assert not out.exists()
    assert not list(tmp_path.glob(".out.h5*")), "no temporary or partial file is left"


def test_collinear_and_coincident_frames_are_named(cli, tmp_path):
    X = np.random.default_rng(0).normal(size=(10, 6, 3)).astype(np.float32)
    X[6, 2] = X[6, 0] + 2.0 * (X[6, 1] - X[6, 0])  # points 0, 1, 2 collinear in frame 6
    X[8, 4] = X[8, 3]  # points 3 and 4 coincide in frame 8
    src = tmp_path / "x.npy"
    np.save(src, X)
    out = tmp_path / "o.h5"
    line = one_error_line(cli("rotate", src, "--method", "point", "--points", "0,1,2", "-o", out))
    assert "collinear in frame 6" in line and not out.exists()
    line = one_error_line(cli("rotate", src, "--method", "point", "--points", "3,4,0", "-o", out))
    assert "coincide in frame 8" in line and not out.exists()
    X[5, 1, 2] = np.nan
    np.save(src, X)
    line = one_error_line(cli("rotate", src, "--chunk-frames", 3, "-o", out))
    assert "frame 5" in line and not out.exists()
    line = one_error_line(cli("rotate", src, "--fit-select", "0-2", "--chunk-frames", 3, "-o", out))
    assert "frame 5" in line and not out.exists()


def test_continuity_stitch_makes_out_of_order_blocks_equal_in_order(tmp_path):
    """Blocks processed in any order (Dask, --resume) and stitched in frame order give the
    run of one block: stitch() flips a block's axes to follow the last written frame."""
    from trajalign.io import open_source
    from trajalign.jobs.rotate import DIAG, ROT, RotateJob

    with open_source(CHAIN2D, stop=120) as src:
        whole = RotateJob(method="principal")
        whole.prepare(src)
        one = whole.process(src.read(0, 120))
        job = RotateJob(method="principal")
        job.prepare(src)
        starts = [0, 25, 50, 75, 100]
        results = {s: job.process(src.read(s, min(s + 25, 120))) for s in reversed(starts)}

    class Written:  # what stitch() reads back: the rotations already in the file
        f = {ROT: np.zeros((120, 2, 2))}

    for s in starts:
        r = job.stitch(results[s], Written, s)
        Written.f[ROT][s : s + 25] = r.extra[ROT]
        np.testing.assert_array_equal(r.coords, one.coords[s : s + 25])
        for name in (ROT, f"{DIAG}/skewness", f"{DIAG}/sign_flip", f"{DIAG}/axis_swap"):
            np.testing.assert_array_equal(r.extra[name], one.extra[name][s : s + 25])


def test_rotated_output_keeps_the_input_box_as_provenance_only(cli, tmp_path):
    """Rotated frames no longer lie in the input's box: no periodic box on the positions
    (MDAnalysis sees none), the input's boxes under /trajalign/input_box."""
    out = tmp_path / "r.h5"
    res = cli("rotate", *BUTANE, "--stop", 20, "-o", out)
    assert res.code == 0, res.stderr
    with h5py.File(out) as f:
        box = f["particles/trajectory/box"]
        assert [b.decode() for b in box.attrs["boundary"]] == ["none"] * 3
        assert "edges" not in box
        np.testing.assert_allclose(
            f["trajalign/input_box"][()], np.tile(np.eye(3) * 40, (20, 1, 1))
        )
        assert f["trajalign/input_box"].attrs["unit"] == "Angstrom"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(BUTANE_PDB, str(out), format="H5MD")
    assert u.dimensions is None


def test_write_traj_refusal_names_write_traj(cli, tmp_path):
    traj = tmp_path / "b.xtc"
    traj.write_bytes(b"keep")
    res = cli("rotate", *BUTANE, "--stop", 5, "-o", tmp_path / "b.h5", "--write-traj", traj)
    assert res.code == 1 and "choose another --write-traj" in res.stderr, res.stderr
    assert traj.read_bytes() == b"keep" and not (tmp_path / "b.h5").exists()
