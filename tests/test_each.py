"""``--each``: a dataset of trajectories, one output per input, each equal to a run on
that input alone (issue 24)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysisTests.datafiles import TPR_xvf, XTC_sub_sol

from .conftest import BUTANE_DCD, BUTANE_PDB
from .test_h5md import datasets

EXE = [sys.executable, "-m", "trajalign"]


def same_data(a: Path, b: Path) -> None:
    """Every dataset of two outputs is equal (the provenance records its own argv)."""
    da, db = datasets(a), datasets(b)
    assert da.keys() == db.keys()
    for k in da:
        if "provenance" not in k:
            np.testing.assert_array_equal(da[k], db[k], err_msg=k)


@pytest.fixture()
def replicas(tmp_path) -> list[Path]:
    """Three copies of a real GROMACS trajectory, as rep0/traj.xtc ... rep2/traj.xtc
    (the shape of a replica project), and flat copies r0.xtc ... r2.xtc."""
    paths = []
    for i in range(3):
        d = tmp_path / f"rep{i}"
        d.mkdir()
        shutil.copy(XTC_sub_sol, d / "traj.xtc")
        shutil.copy(XTC_sub_sol, tmp_path / f"r{i}.xtc")
        paths.append(tmp_path / f"r{i}.xtc")
    return paths


def test_each_output_equals_a_run_on_that_input_alone(tmp_path, replicas, cli):
    args = ["-t", TPR_xvf, "-s", "protein and name CA", "--features", "distances,angles"]
    args += ["--pairs", "chain"]
    res = cli("internal", *replicas, *args, "--each", "-o", tmp_path / "feats")
    assert res.code == 0, res.stderr
    for p in replicas:
        alone = tmp_path / f"alone_{p.stem}.h5"
        assert cli("internal", p, *args, "-o", alone).code == 0
        same_data(tmp_path / "feats" / f"{p.stem}.h5", alone)
        with h5py.File(tmp_path / "feats" / f"{p.stem}.h5") as f:
            # each output's provenance names its own input only
            inputs = json.loads(f["trajalign/provenance"].attrs["inputs"])
            assert [os.path.basename(i["path"]) for i in inputs] == [p.name, "cobrotoxin.tpr"]


def test_each_with_workers_equals_serial(tmp_path, replicas, cli):
    args = ["-t", TPR_xvf, "-s", "protein", "--each", "--chunk-frames", "1"]
    assert cli("center", *replicas, *args, "-o", tmp_path / "serial").code == 0
    res = cli("center", *replicas, *args, "--workers", "2", "-o", tmp_path / "pool")
    assert res.code == 0, res.stderr
    for p in replicas:
        same_data(tmp_path / "serial" / f"{p.stem}.h5", tmp_path / "pool" / f"{p.stem}.h5")


def test_colliding_stems_are_refused_before_anything_is_read(tmp_path, replicas, cli):
    trajs = [tmp_path / f"rep{i}" / "traj.xtc" for i in range(3)]
    out = tmp_path / "feats"
    res = cli("center", *trajs, "-t", TPR_xvf, "--each", "-o", out)
    assert res.code == 1
    (line,) = res.stderr.strip().splitlines()
    assert str(trajs[0]) in line and str(trajs[1]) in line and "--each-name parent" in line
    assert not out.exists()  # refused before the folder was made
    res = cli("center", *trajs, "-t", TPR_xvf, "--each", "--each-name", "parent", "-o", out)
    assert res.code == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"rep{i}_traj.h5" for i in range(3)]


def test_an_existing_output_is_refused_before_any_is_written(tmp_path, replicas, cli):
    out = tmp_path / "feats"
    out.mkdir()
    (out / "r2.h5").write_bytes(b"mine")
    res = cli("center", *replicas, "-t", TPR_xvf, "--each", "-o", out)
    assert res.code == 1 and "r2.h5 exists" in res.stderr and "--force" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["r2.h5"]  # r0, r1 not written
    assert (out / "r2.h5").read_bytes() == b"mine"
    assert cli("center", *replicas, "-t", TPR_xvf, "--each", "-o", out, "--force").code == 0
    with h5py.File(out / "r2.h5"):
        pass


def _damaged_copy(tmp_path: Path) -> Path:
    bad = tmp_path / "r1.xtc"
    data = Path(XTC_sub_sol).read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # a cut in the middle: a truncated frame
    return bad


def test_keep_going_writes_the_others_and_lists_the_failed(tmp_path, replicas, cli):
    _damaged_copy(tmp_path)
    out = tmp_path / "feats"
    res = cli("center", *replicas, "-t", TPR_xvf, "--each", "-o", out)
    assert res.code == 1  # by default the damaged input stops the run
    assert res.stderr.strip().splitlines()[-1].startswith(f"Error: {replicas[1]}: is truncated")
    assert sorted(p.name for p in out.iterdir()) == ["r0.h5"]  # the one before it is kept
    res = cli("center", *replicas, "-t", TPR_xvf, "--each", "-o", out, "--force", "--keep-going")
    assert res.code == 1
    lines = res.stderr.strip().splitlines()
    assert any(line.startswith(f"failed {replicas[1]}: ") for line in lines)
    assert lines[-1] == (
        "Error: 1 input(s) failed: r1.xtc (each one's error is listed above; the other "
        "outputs are written)"
    )
    assert sorted(p.name for p in out.iterdir()) == ["r0.h5", "r2.h5"]
    res = cli(
        "center", *replicas, "-t", TPR_xvf, "--each", "-o", tmp_path / "j", "--keep-going", "--json"
    )
    rows = json.loads(res.stdout)["outputs"]
    assert [r["status"] for r in rows] == ["done", "failed", "done"]
    assert "truncated" in rows[1]["error"]
    assert (
        rows[0]["frames"]
        == rows[2]["frames"]
        == mda.Universe(TPR_xvf, XTC_sub_sol).trajectory.n_frames
    )


def test_resume_after_sigkill_mid_list_loses_nothing_finished(tmp_path):
    inputs = []
    for i in range(6):
        inputs.append(tmp_path / f"b{i}.dcd")
        shutil.copy(BUTANE_DCD, inputs[-1])
    out = tmp_path / "out"
    base = [*EXE, "-q", "center", *map(str, inputs), "-t", BUTANE_PDB, "--each"]
    base += ["--chunk-frames", "50"]
    cmd = [*base, "-o", str(out)]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "b1.h5").exists():  # two inputs finished, the third under way
        assert time.time() < deadline and p.poll() is None, p.stderr.read()
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    finished = {q.name: q.stat().st_mtime_ns for q in out.glob("*.h5")}
    assert {"b0.h5", "b1.h5"} <= set(finished)
    res = subprocess.run([*cmd, "--resume", "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    status = {Path(r["output"]).name: r["status"] for r in json.loads(res.stdout)["outputs"]}
    assert all(status[name] == "kept" for name in finished)
    for name, mtime in finished.items():  # finished outputs are left as they were
        assert (out / name).stat().st_mtime_ns == mtime
    fresh = tmp_path / "fresh"
    subprocess.run([*base, "-o", str(fresh)], check=True, capture_output=True)
    for q in inputs:
        same_data(out / f"{q.stem}.h5", fresh / f"{q.stem}.h5")
    assert not list(out.glob(".*"))  # no partial output or lock left


def test_rotate_each_fits_every_input_onto_one_reference(tmp_path, cli):
    a, b = tmp_path / "a.dcd", tmp_path / "b.dcd"
    shutil.copy(BUTANE_DCD, a)
    shutil.copy(BUTANE_DCD, b)
    kw = ["-t", BUTANE_PDB, "--fit-select", "name C*"]
    for ref in ("first", "average"):
        out = tmp_path / ref
        assert cli("rotate", b, a, *kw, "--reference", ref, "--each", "-o", out).code == 0
        # the same reference as a run over both inputs as one trajectory: the first
        # input's first frame, or the average over every input's frames
        joined = tmp_path / f"{ref}.h5"
        assert cli("rotate", b, a, *kw, "--reference", ref, "-o", joined).code == 0
        with h5py.File(joined) as j, h5py.File(out / "a.h5") as fa, h5py.File(out / "b.h5") as fb:
            ref_j = j["trajalign/alignment/reference"][()]
            np.testing.assert_array_equal(fa["trajalign/alignment/reference"][()], ref_j)
            np.testing.assert_array_equal(fb["trajalign/alignment/reference"][()], ref_j)
            pos = j["particles/trajectory/position/value"]
            np.testing.assert_array_equal(fb["particles/trajectory/position/value"], pos[:1000])


def test_each_options_without_each_and_write_traj_are_refused(tmp_path, cli):
    res = cli("center", BUTANE_DCD, "-t", BUTANE_PDB, "--keep-going", "-o", tmp_path / "o.h5")
    assert res.code == 1 and "--keep-going goes with --each" in res.stderr
    res = cli(
        "rotate",
        BUTANE_DCD,
        "-t",
        BUTANE_PDB,
        "--each",
        "-o",
        tmp_path / "o",
        "--write-traj",
        tmp_path / "o.xtc",
    )
    assert res.code == 1 and "--write-traj writes one trajectory" in res.stderr
    (tmp_path / "file").write_text("")
    res = cli("center", BUTANE_DCD, "-t", BUTANE_PDB, "--each", "-o", tmp_path / "file")
    assert res.code == 1 and "is a file; with --each it names a folder" in res.stderr


def test_info_check_each_counts_each_files_good_frames_on_its_own(tmp_path, replicas, cli):
    bad = _damaged_copy(tmp_path)  # replaces r1.xtc: 1 good frame before the cut
    n = mda.Universe(TPR_xvf, XTC_sub_sol).trajectory.n_frames
    joined = cli("info", replicas[0], bad, "-t", TPR_xvf, "--check")
    assert f"--stop {n + 1}" in joined.stderr  # one trajectory: the frames of r0 count too
    res = cli("info", replicas[0], bad, "-t", TPR_xvf, "--check", "--each")
    assert res.code == 1
    assert res.stderr.strip().splitlines()[-1].startswith(f"Error: {bad}: is truncated")
    assert "--stop 1," in res.stderr  # a trajectory of its own: its one good frame
