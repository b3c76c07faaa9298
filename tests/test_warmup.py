"""``trajalign compile``: every kernel into Numba's cache, exit status 0/1."""

from __future__ import annotations

import json
import subprocess
import sys

EXE = [sys.executable, "-m", "trajalign"]


def test_compile_reaches_every_kernel():
    # a new process: no kernel is in memory yet, so every entry kernel has to be compiled
    # or loaded from the cache by one of the command's code paths to count as reached.
    # (This file runs late in the suite: most kernels are in the cache by then, and the
    # test takes about 20 s; from an empty cache it compiles everything, minutes.)
    p = subprocess.run([*EXE, "compile", "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["missing"] == [] and summary["failed"] == []
    assert summary["compiled"] + summary["loaded"] > 0
    assert "kernel signatures" not in p.stderr  # --json: the summary line is the JSON
    # a second process loads every kernel from the cache: none may have a cache key that
    # changes from process to process (a closed-over dispatcher did: recompiled each run)
    p = subprocess.run([*EXE, "compile", "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    again = json.loads(p.stdout)
    assert again["compiled"] == 0 and again["loaded"] > 0


def test_entry_kernels_are_the_ones_no_kernel_calls():
    from trajalign.cli.warmup import _dispatchers, entry_kernels

    disp = _dispatchers()
    entries = entry_kernels(disp)
    # called from Python; the helpers they call are compiled with them
    assert {"kabsch._superpose3", "center._center_weighted_run", "box.box_table_kernel"} <= set(
        entries
    )
    assert not {"kabsch._qcp3", "kabsch._quat_to_rot", "box._mic_lattice"} & set(entries)


def test_a_failed_code_path_exits_1(cli, monkeypatch, tmp_path):
    from trajalign.cli import warmup

    monkeypatch.setattr(
        warmup, "warmup_runs", lambda paths, out: [["center", str(tmp_path / "no.npz"), "-o", out]]
    )
    res = cli("compile")
    assert res.code == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("Error: a code path failed: trajalign center") and "no.npz" in line
