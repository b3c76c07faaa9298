"""The compile-ahead child (trajalign._ahead): what it fills the cache with is what a run
loads, and nothing about it can harm the run that started it."""

import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from trajalign import _ahead

from .conftest import SAMPLE


def _probe(path):
    """A stand-in for a cached dispatcher whose cache index is ``path``."""
    return SimpleNamespace(_cache=SimpleNamespace(_cache_file=SimpleNamespace(_index_path=path)))


@pytest.fixture
def may_fork(monkeypatch):
    # the test process has pytest's threads and may run on one core: let it fork anyway
    monkeypatch.setattr(_ahead.threading, "active_count", lambda: 1)
    monkeypatch.setattr(_ahead, "_cores", lambda: 2)
    monkeypatch.delenv("TRAJALIGN_COMPILE_AHEAD", raising=False)
    yield
    _ahead.wait()


def test_a_failing_child_is_silent_and_the_caller_goes_on(may_fork, tmp_path, capfd):
    marker = tmp_path / "ran"

    def warm():
        marker.write_text("yes")
        print("noise on stdout")
        os.write(2, b"noise on stderr\n")
        raise RuntimeError("a compile that failed")

    assert _ahead.start(warm, _probe(str(tmp_path / "missing.nbi")))
    _ahead.wait()
    assert marker.read_text() == "yes"  # the child ran
    out, err = capfd.readouterr()
    assert "noise" not in out and "noise" not in err
    _ahead.wait()  # nothing left to wait for: returns at once


def test_wait_stops_a_child_that_takes_too_long(may_fork, monkeypatch, tmp_path):
    monkeypatch.setattr(_ahead, "TIMEOUT", 0.5)
    assert _ahead.start(lambda: time.sleep(60), _probe(str(tmp_path / "missing.nbi")))
    pid = _ahead._child[-1]
    t0 = time.monotonic()
    _ahead.wait()
    assert time.monotonic() - t0 < 10
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)


def test_no_child_for_a_filled_cache_nor_when_turned_off(may_fork, monkeypatch, tmp_path):
    index = tmp_path / "there.nbi"
    index.write_bytes(b"")
    assert not _ahead.start(lambda: None, _probe(str(index)))
    assert not _ahead.start(lambda: None, object())  # not a cached dispatcher: no child
    monkeypatch.setenv("TRAJALIGN_COMPILE_AHEAD", "0")
    assert not _ahead.start(lambda: None, _probe(str(tmp_path / "missing.nbi")))
    monkeypatch.delenv("TRAJALIGN_COMPILE_AHEAD")
    monkeypatch.setattr(_ahead.threading, "active_count", lambda: 2)  # a thread: no fork
    assert not _ahead.start(lambda: None, _probe(str(tmp_path / "missing.nbi")))
    assert not _ahead._child


_COLD_RUN = """
import json, os, sys
from trajalign.cli import main
try:
    main(sys.argv[1:], hard_exit=False)
except SystemExit:
    pass
from trajalign import kernels
from trajalign.kernels import box, diagnostics, kabsch, mindist, principal, pbc, xtc
def kernel(dotted):
    if dotted == "principal._PRINCIPAL_RUN[3]":
        return principal._PRINCIPAL_RUN[3]
    module, name = dotted.split(".")
    return getattr(getattr(kernels, module), name)
def counts(*kernels):
    return {
        "compiled": sum(sum(k.stats.cache_misses.values()) for k in kernels),
        "loaded": sum(sum(k.stats.cache_hits.values()) for k in kernels),
    }
print(json.dumps({
    "ahead": counts(*map(kernel, os.environ["AHEAD_KERNELS"].split())),
    "own": counts(kernel(os.environ["OWN_KERNEL"])),
    "box table": counts(kernel("box.box_table_kernel")),
}))
"""


@pytest.mark.parametrize(
    ("method", "case"), [("kabsch", "xtc"), ("principal", "dcd-cluster")], ids=["xtc", "dcd"]
)
def test_a_cold_run_loads_the_kernels_the_child_compiled(tmp_path, method, case):
    """With an empty cache, a run loads the kernels compiled ahead (the fit and jump
    kernels of ``rotate``: the child compiled them, with the run's own signatures) while
    it compiles kernels of its own: the XTC decoder, or the periodic repair of a DCD with
    ``--pbc cluster``. The same counters in the same empty cache see the run's own
    compilation, so the loaded kernels can only come from the child. (With the child
    turned off, which ``test_no_child_for_a_filled_cache_nor_when_turned_off`` checks,
    the run compiles them too: a third cold run, 8-15 s, that showed nothing more.
    ``internal``'s child runs the same machinery: a cold run of it, 12-23 s here, is
    replaced by the checks of its signatures and its wait below.)"""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the child is started only with two or more cores")
    from MDAnalysisTests.datafiles import GRO, XTC

    if case == "xtc":
        args, own = [XTC, "-t", GRO, "-s", "protein"], "xtc._decode_run"
    else:
        dimer = [SAMPLE / "dimer.dcd", "-t", SAMPLE / "dimer.pdb", "-s", "resname CHA"]
        args, own = [*map(str, dimer), "--pbc", "cluster"], "pbc._cluster_run"
    command = ["rotate", *args, "--method", method]
    fit = "kabsch._superpose3" if method == "kabsch" else "principal._PRINCIPAL_RUN[3]"
    ahead = f"{fit} diagnostics.consecutive_rmsd_kernel"
    env = dict(
        os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), OWN_KERNEL=own, AHEAD_KERNELS=ahead
    )
    env.pop("TRAJALIGN_COMPILE_AHEAD", None)
    env.pop("TRAJALIGN_PYTHON_BOXES", None)
    args = ["-q", *command, "-o", str(tmp_path / "o.h5")]
    p = subprocess.run(
        [sys.executable, "-c", _COLD_RUN, *args], env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "o.h5").exists()
    counts = json.loads(p.stdout.strip().splitlines()[-1])
    assert counts["ahead"] == {"compiled": 0, "loaded": 2}, counts
    assert counts["own"]["compiled"] >= 1 and counts["own"]["loaded"] == 0, counts
    # the dimer's 500 triclinic boxes by Python (the kernel's 4-6 s of compilation)
    assert counts["box table"] == {"compiled": 0, "loaded": 0}, counts


_SIGNATURES = """
import json, sys
from trajalign.kernels import mindist
if sys.argv[1] == "child":
    from trajalign.cli import _warm_ahead
    _warm_ahead("mindist")
else:
    from trajalign.cli import main
    try:
        main(sys.argv[2:], hard_exit=False)
    except SystemExit:
        pass
print(json.dumps([str(s) for k in (mindist._mindist_run, mindist._contacts_run)
                  for s in k.signatures]))
"""


def test_the_mindist_child_compiles_the_signatures_an_internal_run_uses(tmp_path):
    """What ``internal``'s compile-ahead child runs (cli._warm_ahead("mindist")) reaches
    the residue-distance and contact kernels with exactly the signatures of an
    ``internal --features mindist,contacts`` run of an XTC (in the filled cache: two
    loads, no cold run)."""
    from MDAnalysisTests.datafiles import TPR, XTC

    run = [XTC, "-t", TPR, "-s", "protein", "--features", "mindist,contacts"]
    seen = {}
    for who, args in (
        ("child", []),
        ("run", ["-q", "internal", *run, "-o", str(tmp_path / "o.h5")]),
    ):
        p = subprocess.run(
            [sys.executable, "-c", _SIGNATURES, who, *args], capture_output=True, text=True
        )
        assert p.returncode == 0, p.stderr
        seen[who] = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(seen["run"]) == 2 and seen["child"] == seen["run"], seen


def test_mindist_waits_for_the_child_before_its_kernel(monkeypatch):
    """The run's one entry to the mindist kernel waits for a compiling child first."""
    import numpy as np

    from trajalign.box import kernel_box_table
    from trajalign.features.mindist import MindistPlan

    waited = []
    monkeypatch.setattr(_ahead, "wait", lambda: waited.append(True))
    plan = MindistPlan(
        offsets=np.array([0, 1, 2]),
        members=np.arange(2),
        pairs=np.array([[0, 1]]),
        periodic=np.zeros(1, dtype=np.uint8),
        n_points=2,
    )
    dist, _ = plan.compute(np.zeros((1, 2, 3), dtype=np.float32), kernel_box_table(None, 0))
    assert waited == [True] and dist.shape == (1, 1)


def test_no_child_for_inputs_whose_run_compiles_nothing_meanwhile(monkeypatch):
    """Only an XTC read by the native decoder, or a trajectory with a periodic treatment
    of every frame (--pbc none, cluster, nojump): elsewhere the child would only move the
    fit's compilation (and arrays may have other signatures)."""
    from trajalign import cli

    started = []
    monkeypatch.setattr(_ahead, "start", lambda *a: started.append(a) or True)
    monkeypatch.setattr(_ahead, "allowed", lambda: True)
    monkeypatch.setattr(_ahead, "cold", lambda dispatcher: True)  # (this cache is filled)
    serial = {"workers": None, "scheduler": None, "scheduler_file": None}
    for paths, reader, pbc in [
        ("a.dcd", None, None), ("a.dcd", None, "auto"), ("a.dcd", None, "whole"),
        ("a.npz", None, None), ("a.npz", None, "cluster"), (["a.dcd", "b.npy"], None, "none"),
        (["a.xtc", "b.trr"], None, None), ("a.xtc", "mdanalysis", None),
    ]:  # fmt: skip
        cli.compile_ahead("kabsch", {"paths": paths, "xtc_reader": reader, "pbc": pbc}, serial)
    cli.compile_ahead("point", {"paths": "a.xtc", "xtc_reader": None}, serial)
    cli.compile_ahead("point", {"paths": "a.dcd", "xtc_reader": None, "pbc": "none"}, serial)
    cli.compile_ahead("kabsch", {"paths": "a.xtc", "xtc_reader": None}, dict(serial, workers=2))
    kw = {"paths": "a.dcd", "xtc_reader": None, "pbc": "cluster"}
    cli.compile_ahead("kabsch", kw, dict(serial, scheduler="tcp://x:1"))
    assert started == []
    cli.compile_ahead("kabsch", {"paths": ["a.xtc", "b.XTC"], "xtc_reader": None}, serial)
    assert len(started) == 1
    for pbc in ("none", "cluster", "nojump"):
        cli.compile_ahead("principal", {"paths": "a.dcd", "xtc_reader": None, "pbc": pbc}, serial)
    assert len(started) == 4
    # internal's residue distances: as a fit (no child for a DCD read whole, nor arrays)
    cli.compile_ahead("mindist", {"paths": "a.dcd", "xtc_reader": None, "pbc": None}, serial)
    cli.compile_ahead("mindist", {"paths": "a.npz", "xtc_reader": None, "pbc": "none"}, serial)
    assert len(started) == 4
    cli.compile_ahead("mindist", {"paths": "a.xtc", "xtc_reader": None}, serial)
    assert len(started) == 5
    # the run's own kernels in the cache already (make demo's info before its rotate):
    # it would have nothing to compile meanwhile
    asked = []
    monkeypatch.setattr(_ahead, "cold", lambda dispatcher: asked.append(dispatcher) and False)
    cli.compile_ahead("kabsch", {"paths": "a.dcd", "xtc_reader": None, "pbc": "cluster"}, serial)
    cli.compile_ahead("kabsch", {"paths": "a.xtc", "xtc_reader": None}, serial)
    assert len(started) == 5
    from trajalign.kernels import pbc, xtc

    assert asked == [pbc._cluster_run, xtc._decode_run]
