"""The command line: center and info end to end, exit codes, messages, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysisTests.datafiles import DCD, PSF

from . import reference as ref
from .conftest import BUTANE_DCD, BUTANE_PDB, CHAIN2D

EXE = [sys.executable, "-m", "trajalign"]


def only_error_line(res):
    """The failure contract: exit 1, exactly one 'Error: ...' line, no traceback."""
    lines = res.stderr.strip().splitlines()
    assert res.code == 1, res
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_center_npz_end_to_end(cli, tmp_path, chain2d):
    out = tmp_path / "c.h5"
    res = cli(
        "center", CHAIN2D, "--method", "geometric", "-o", out, "--json", "--chunk-frames", 500
    )
    assert res.code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["frames"] == 2048 and summary["atoms"] == 12 and summary["dim"] == 2
    assert summary["output"] == str(out) and summary["method"] == "geometric"
    with h5py.File(out) as f:
        np.testing.assert_allclose(
            f["particles/trajectory/position/value"][()], ref.center_com(chain2d)[0], atol=1e-5
        )


def test_center_mdanalysis_selection_slice_and_mda_round_trip(cli, tmp_path):
    out = tmp_path / "b.h5"
    res = cli(
        "center",
        BUTANE_DCD,
        "-t",
        BUTANE_PDB,
        "-s",
        "name C*",
        "--start",
        10,
        "--stop",
        40,
        "--step",
        3,
        "-o",
        out,
    )
    assert res.code == 0, res.stderr
    assert "wrote" in res.stderr
    u = mda.Universe(BUTANE_PDB, BUTANE_DCD)
    carbons = u.select_atoms("name C*")
    X = np.stack([carbons.positions.copy() for _ in u.trajectory[10:40:3]])
    want = ref.center_com(X, carbons.masses)[0]
    carbons.write(tmp_path / "carbons.pdb")  # the topology of the written atoms
    back = mda.Universe(tmp_path / "carbons.pdb", str(out), format="H5MD")
    got = np.stack([back.atoms.positions.copy() for _ in back.trajectory])
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(back.dimensions, [40, 40, 40, 90, 90, 90], atol=1e-4)
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["trajalign/frames/index"][()], np.arange(10, 40, 3))
        np.testing.assert_array_equal(f["trajalign/atom_indices"][()], carbons.indices)


def test_point_method_and_masses_file(cli, tmp_path, chain2d):
    masses = tmp_path / "m.txt"
    np.savetxt(masses, np.arange(1, 13))
    out = tmp_path / "m.h5"
    assert cli("center", CHAIN2D, "--masses", masses, "-o", out).code == 0
    with h5py.File(out) as f:
        np.testing.assert_allclose(
            f["particles/trajectory/position/value"][()],
            ref.center_com(chain2d, np.arange(1, 13))[0],
            atol=1e-5,
        )
    out2 = tmp_path / "p.h5"
    assert cli("center", CHAIN2D, "--method", "point", "--point", 5, "-o", out2).code == 0
    with h5py.File(out2) as f:
        assert np.abs(f["particles/trajectory/position/value"][:, 5]).max() == 0


def test_com_without_masses_warns(cli, tmp_path):
    res = cli("center", CHAIN2D, "-o", tmp_path / "w.h5", "--stop", 3)
    assert res.code == 0 and "Warning: the input has no masses" in res.stderr
    res = cli("-q", "center", CHAIN2D, "-o", tmp_path / "q.h5", "--stop", 3)
    assert res.code == 0 and res.stderr == ""


def test_info(cli):
    res = cli("info", BUTANE_DCD, "-t", BUTANE_PDB, "--json")
    facts = json.loads(res.stdout)
    assert (facts["frames"], facts["points"], facts["dimension"], facts["bonds"]) == (
        1000,
        14,
        3,
        13,
    )
    assert facts["box_first_frame"] == [40.0, 40.0, 40.0, 90.0, 90.0, 90.0]
    assert facts["masses"]["total"] == pytest.approx(4 * 12.011 + 10 * 1.008, rel=1e-5)
    res = cli("info", CHAIN2D)
    assert res.code == 0 and "2048" in res.stdout and "dimension" in res.stdout


def write(tmp_path, name, arr=None, text=None, raw=None):
    p = tmp_path / name
    if arr is not None:
        (np.savez if name.endswith(".npz") else np.save)(p, **arr) if isinstance(
            arr, dict
        ) else np.save(p, arr)
    elif text is not None:
        p.write_text(text)
    elif raw is not None:
        p.write_bytes(raw)
    return p


def bad_cases(tmp_path):
    good = np.zeros((4, 3, 3), dtype=np.float32)
    nan = good.copy()
    nan[2, 1, 0] = np.nan
    big = np.random.default_rng(0).normal(size=(50, 3, 3))
    truncated = tmp_path / "trunc.npz"
    np.savez(truncated, arr=big)
    truncated.write_bytes(truncated.read_bytes()[:300])
    return {
        "missing file": ([tmp_path / "nope.npy"], "no such file"),
        "text as npy": ([write(tmp_path, "t.npy", text="1 2 3\n")], "not a readable numpy"),
        "random bytes as dcd": (
            [write(tmp_path, "r.dcd", raw=os.urandom(512)), "-t", PSF],
            "cannot read",
        ),
        "npz several arrays": (
            [write(tmp_path, "s.npz", arr={"a": good, "b": good})],
            "several arrays",
        ),
        "npz wrong key": (
            [write(tmp_path, "k.npz", arr={"a": good}), "--key", "b"],
            "no array named",
        ),
        "wrong shape": ([write(tmp_path, "w.npy", arr=np.zeros((4, 3)))], "not (frames, points"),
        "object array": (
            [write(tmp_path, "o.npy", arr=np.array([[[1, 2, {}]]], dtype=object))],
            "Python objects",
        ),
        "truncated npz": ([truncated], "not a readable numpy"),
        "zero frames": ([write(tmp_path, "z.npy", arr=np.zeros((0, 3, 3)))], "zero frames"),
        "nan frame": ([write(tmp_path, "n.npy", arr=nan)], "NaN or inf coordinates in frame 2"),
        "atom count mismatch": ([DCD, "-t", BUTANE_PDB], "do not match"),
        "empty selection": ([BUTANE_DCD, "-t", BUTANE_PDB, "-s", "name ZZ"], "matches no atoms"),
        "malformed selection": (
            [BUTANE_DCD, "-t", BUTANE_PDB, "-s", "name ("],
            "cannot use selection",
        ),
        "array index out of range": ([CHAIN2D, "-s", "0-20"], "out of range"),
        "negative mass": (
            [CHAIN2D, "--masses", write(tmp_path, "neg.txt", text="-1\n" * 12)],
            "negative",
        ),
        "zero total mass": (
            [CHAIN2D, "--masses", write(tmp_path, "zero.txt", text="0\n" * 12)],
            "sum to 0",
        ),
        "empty frame slice": ([CHAIN2D, "--start", 5000], "selects no frames"),
        "negative step": ([CHAIN2D, "--step", "-1"], "not positive"),
        "chunk frames zero": ([CHAIN2D, "--chunk-frames", 0], "--chunk-frames 0"),
        "point out of range": ([CHAIN2D, "--method", "point", "--point", 12], "out of range"),
    }


IDS = [
    "missing file",
    "text as npy",
    "random bytes as dcd",
    "npz several arrays",
    "npz wrong key",
    "wrong shape",
    "object array",
    "truncated npz",
    "zero frames",
    "nan frame",
    "atom count mismatch",
    "empty selection",
    "malformed selection",
    "array index out of range",
    "negative mass",
    "zero total mass",
    "empty frame slice",
    "negative step",
    "chunk frames zero",
    "point out of range",
]


@pytest.mark.parametrize("case", IDS)
def test_bad_input_is_one_line_and_writes_nothing(cli, tmp_path, case):
    args, match = bad_cases(tmp_path)[case]
    outdir = tmp_path / "out"
    outdir.mkdir()
    res = cli("center", *args, "-o", outdir / "x.h5")
    line = only_error_line(res)
    assert match in line, line
    assert list(outdir.iterdir()) == []


def test_output_path_errors(cli, tmp_path):
    line = only_error_line(cli("center", CHAIN2D, "-o", tmp_path / "no" / "x.h5"))
    assert "does not exist" in line
    line = only_error_line(cli("center", CHAIN2D, "-o", tmp_path))
    assert "is a folder" in line
    existing = tmp_path / "e.h5"
    existing.write_bytes(b"keep me")
    line = only_error_line(cli("center", CHAIN2D, "-o", existing))
    assert "already exists" in line and "--force" in line
    assert existing.read_bytes() == b"keep me"


def test_usage_errors_exit_2(cli, tmp_path):
    assert cli("center", CHAIN2D).code == 2  # no -o
    assert cli("center", CHAIN2D, "-o", tmp_path / "x.h5", "--method", "middle").code == 2
    assert cli("frobnicate").code == 2
    assert not (tmp_path / "x.h5").exists()


# ------------------------------------------------------------- real subprocesses


def test_subprocess_exit_status_and_no_traceback(tmp_path):
    p = subprocess.run(
        [*EXE, "center", str(tmp_path / "nope.npy"), "-o", str(tmp_path / "o.h5")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1
    assert p.stderr.strip() == f"Error: {tmp_path / 'nope.npy'}: no such file (check the path)"
    p = subprocess.run(
        [*EXE, "-v", "center", str(tmp_path / "nope.npy"), "-o", str(tmp_path / "o.h5")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1 and "Traceback" in p.stderr
    p = subprocess.run([*EXE, "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and "trajalign" in p.stdout


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from trajalign.cli import main\n"
        "try:\n    main(['--help'], hard_exit=False)\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('numba', 'MDAnalysis', 'matplotlib', 'h5py', 'scipy') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in p.stdout, p.stdout + p.stderr


def _start_and_stop(data, out, sig, extra=()):
    """Start a slow run, send ``sig`` once its partial file exists; return the process."""
    proc = subprocess.Popen(
        [*EXE, "center", str(data), "-o", str(out), "--force", "--chunk-frames", "1", *extra],
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = out.parent / f".{out.name}.partial"
    deadline = time.time() + 60
    while time.time() < deadline and not partial.exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc, err, partial


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_keeps_target_and_resume_finishes(tmp_path, sig, code):
    data = tmp_path / "big.npy"
    # one frame per block: 3000 blocks take seconds, far longer than the 0.5 s before the
    # signal, and the resume does not spend minutes on 12000 of them
    X = np.random.default_rng(5).normal(size=(3000, 4, 3)).astype(np.float32)
    np.save(data, X)
    outdir = tmp_path / "out"
    outdir.mkdir()
    existing = outdir / "o.h5"
    existing.write_bytes(b"keep")
    proc, err, partial = _start_and_stop(data, existing, sig)
    assert proc.returncode == code, err
    line = only_error_line(type("R", (), {"code": 1, "stderr": err})())
    assert "--resume" in line and "blocks are kept" in line
    assert existing.read_bytes() == b"keep"  # the target is untouched
    assert partial.exists()
    p = subprocess.run(
        [
            *EXE,
            "center",
            str(data),
            "-o",
            str(existing),
            "--force",
            "--chunk-frames",
            "1",
            "--resume",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert "resumed:" in p.stderr
    assert not partial.exists()
    with h5py.File(existing) as f:
        np.testing.assert_allclose(
            f["particles/trajectory/position/value"][()], ref.center_com(X)[0], atol=1e-5
        )
        assert "resume" not in f["trajalign"]


@pytest.mark.parametrize("command", ["center", "rotate", "internal", "diagnose", "check", "info"])
def test_quiet_and_verbose_after_the_command(cli, tmp_path, command):
    extra = {"diagnose": ["--methods", "kabsch"], "check": ["--method", "kabsch", "--trials", "1"]}
    out = [] if command in ("info", "check", "diagnose") else ["-o", tmp_path / "o.h5"]
    res = cli(command, CHAIN2D, "--stop", "60", *extra.get(command, []), *out, "-q")
    assert res.code == 0, res.stderr
    assert res.stderr == ""
    # -v after the command: the traceback of an error, as -v before it
    res = cli(command, tmp_path / "missing.npz", *out, "-v")
    assert res.code == 1 and "Traceback" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("Error: ")


def test_info_lists_residue_atom_and_segment_names(cli):
    res = cli("info", BUTANE_DCD, "-t", BUTANE_PDB, "--json")
    facts = json.loads(res.stdout)
    assert facts["residues"] == "BUT x1"
    assert facts["atom_names"].startswith("C1 x1, C2 x1") and facts["atom_names"].endswith(
        "and 2 more"
    )
    assert facts["segments"].startswith("BUT x14")
    assert "residues" not in json.loads(cli("info", CHAIN2D, "--json").stdout)


def test_progress_bar_shows_frames_per_second_and_time_left():
    from trajalign.cli import _DelayedBar

    bar = _DelayedBar(1000, "rotate")
    bar.done = 400
    assert bar._rate_and_eta(100.0) == "100 frames/s, 0:00:06 left"
    assert bar._rate_and_eta(0.0) is None


@pytest.mark.parametrize("extra", [[], ["--workers", "2"]], ids=["serial", "workers"])
def test_dcd_run_prints_no_third_party_warning(tmp_path, extra):
    # MDAnalysis' DCDReader raises a DeprecationWarning on every read, and MDAnalysis puts
    # a "once" filter for it in front of ours when it is imported: a real process on a DCD
    # (the driver opens the reader, the workers read frames), and -v brings it back
    out = tmp_path / "o.h5"
    base = [*EXE, "rotate", BUTANE_DCD, "-t", BUTANE_PDB, "-o", str(out), "--force", *extra]
    p = subprocess.run(base, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Warning" not in p.stderr and "warnings.warn" not in p.stderr, p.stderr
    assert p.stderr.startswith("wrote "), p.stderr
    v = subprocess.run([*base, "-v"], capture_output=True, text=True)
    assert v.returncode == 0, v.stderr
    assert "DeprecationWarning" in v.stderr


#: ``python FILE TRAJALIGN-ARGS``: a one-worker Dask cluster (worker processes that write
#: to this script's stderr, as a LocalCluster in a user's terminal does) and one run on it
DASK_RUN = """
import logging, subprocess, sys
from distributed import LocalCluster

if __name__ == "__main__":
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=logging.ERROR,
    ) as c:
        cmd = [*sys.argv[1:], "--scheduler", c.scheduler_address]
        sys.exit(subprocess.run(cmd).returncode)
"""


def test_dcd_run_on_dask_workers_prints_no_third_party_warning(tmp_path):
    # the workers read the frames (a DeprecationWarning from MDAnalysis on every read):
    # a driver without -v has its tasks hide what is not trajalign's, in the worker too
    script = tmp_path / "dask_run.py"
    script.write_text(DASK_RUN)
    out = tmp_path / "o.h5"
    run = [*EXE, "rotate", BUTANE_DCD, "-t", BUTANE_PDB, "-o", str(out), "--chunk-frames", "97"]
    cmd = [sys.executable, str(script), *map(str, run)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Warning" not in p.stderr and "warnings.warn" not in p.stderr, p.stderr
    assert out.exists()


def test_silenced_tasks_restore_the_process_after_the_last_of_several_threads():
    from trajalign import _warnings

    was_silenced = _warnings.silenced()  # (by an in-process command-line run before)
    _warnings.restore()
    try:
        _tasks_in_threads()
    finally:
        if was_silenced:
            _warnings.silence()


def _tasks_in_threads():
    import threading
    import warnings

    from trajalign import _warnings

    before = (list(warnings.filters), warnings.showwarning, sys.unraisablehook)
    inside, go = threading.Barrier(3), threading.Event()

    def task():
        with _warnings.silenced_tasks():
            inside.wait()
            go.wait()

    threads = [threading.Thread(target=task) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()  # both tasks are in: the process is silenced
    assert _warnings.silenced() and warnings.showwarning is not before[1]
    go.set()
    for t in threads:
        t.join()
    assert not _warnings.silenced()
    assert (warnings.showwarning, sys.unraisablehook) == before[1:]
    # the filters as they were (restore() adds Python's implicit last rule, "default")
    assert warnings.filters[: len(before[0])] == before[0]
    assert [f[0] for f in warnings.filters[len(before[0]) :]] in ([], ["default"])
