"""The H5MD output: layout, MDAnalysis round trip, blockwise writing, atomic files."""

from __future__ import annotations

import json

import h5py
import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysisTests.datafiles import DCD, PSF

import trajalign as ta
from trajalign.errors import OutputError
from trajalign.io import open_source
from trajalign.io.output import AtomicOutput
from trajalign.jobs.center import CenterJob
from trajalign.pipeline import BlockResult, Job, run

from . import reference as ref
from .conftest import BUTANE_DCD, BUTANE_PDB, CHAIN2D


def datasets(path):
    """Every dataset by every path that reaches it (hard links included)."""
    out = {}

    def walk(group, prefix):
        for name, obj in group.items():
            if isinstance(obj, h5py.Dataset):
                out[prefix + name] = obj[()]
            else:
                walk(obj, prefix + name + "/")

    with h5py.File(path) as f:
        walk(f, "")
    return out


def test_layout_and_values_3d(tmp_path):
    out = tmp_path / "c.h5"
    src = open_source(BUTANE_DCD, top=BUTANE_PDB, stop=50)
    summary = run(src, CenterJob("com"), str(out), chunk_frames=16, argv=["test"])
    assert summary["frames"] == 50 and summary["atoms"] == 14 and summary["dim"] == 3
    u = mda.Universe(BUTANE_PDB, BUTANE_DCD)
    X = np.stack([u.atoms.positions.copy() for _ in u.trajectory[:50]])
    want, trans = ref.center_com(X, u.atoms.masses)
    with h5py.File(out) as f:
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        assert f["h5md/creator"].attrs["name"] == "trajalign"
        pos = f["particles/trajectory/position"]
        assert pos["value"].dtype == np.float32 and pos["value"].chunks == (1, 14, 3)
        assert pos["value"].attrs["unit"] == "Angstrom"
        np.testing.assert_allclose(pos["value"][()], want, atol=2e-5)
        # step and time are hard links to the frame tables, not copies
        assert pos["step"].id == f["trajalign/frames/index"].id
        assert pos["time"].id == f["trajalign/frames/time"].id
        assert f["trajalign/frames/time"].attrs["unit"] == "ps"
        np.testing.assert_array_equal(f["trajalign/frames/index"][()], np.arange(50))
        np.testing.assert_allclose(f["trajalign/alignment/translation"][()], trans, atol=2e-5)
        np.testing.assert_array_equal(f["trajalign/atom_indices"][()], np.arange(14))
        box = f["particles/trajectory/box"]
        assert box.attrs["dimension"] == 3
        assert [b.decode() for b in box.attrs["boundary"]] == ["periodic"] * 3
        np.testing.assert_allclose(box["edges/value"][0], np.eye(3) * 40)
        prov = f["trajalign/provenance"].attrs
        inputs = json.loads(prov["inputs"])
        assert [i["size"] for i in inputs] == [BUTANE_DCD.stat().st_size, BUTANE_PDB.stat().st_size]
        assert all(len(i["sha256"]) == 64 for i in inputs)
        assert json.loads(prov["parameters"])["method"] == "com"
        assert json.loads(prov["argv"]) == ["test"]
        assert "numba" in json.loads(prov["dependencies"])


def test_mdanalysis_reads_the_output_back(tmp_path):
    out = tmp_path / "adk.h5"
    src = open_source(DCD, top=PSF, select="all", stop=10)
    run(src, CenterJob("geometric"), str(out))
    u = mda.Universe(PSF, str(out), format="H5MD")
    ref_u = mda.Universe(PSF, DCD)
    assert u.trajectory.n_frames == 10
    for ts, ts_ref in zip(u.trajectory, ref_u.trajectory[:10], strict=True):
        want = ref_u.atoms.positions - ref_u.atoms.positions.mean(0)
        np.testing.assert_allclose(u.atoms.positions, want, atol=1e-4)
        assert ts.time == pytest.approx(ts_ref.time)
        assert ts.dimensions is None and ts_ref.dimensions is None  # adk_dims.dcd: no box


def test_2d_output_and_no_box(tmp_path):
    out = tmp_path / "c2.h5"
    run(open_source(CHAIN2D, step=4), CenterJob("point", point=3), str(out), chunk_frames=100)
    d = datasets(out)
    X = np.load(CHAIN2D)["arr"][::4]
    np.testing.assert_allclose(
        d["particles/trajectory/position/value"], ref.center_point(X, 3)[0], atol=1e-6
    )
    assert "particles/trajectory/box/edges/value" not in d
    with h5py.File(out) as f:
        assert f["particles/trajectory/box"].attrs["dimension"] == 2


@pytest.mark.parametrize("chunk", [1, 7, 333, None])
def test_blocks_give_the_same_file(tmp_path, chunk):
    one = tmp_path / "one.h5"
    many = tmp_path / "many.h5"
    run(open_source(CHAIN2D, stop=333), CenterJob("com"), str(one), chunk_frames=10_000)
    run(open_source(CHAIN2D, stop=333), CenterJob("com"), str(many), chunk_frames=chunk)
    a, b = datasets(one), datasets(many)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


class FailingJob(Job):
    method = "fails"

    def process(self, block):
        if block.start > 0:
            raise RuntimeError("disk on fire")
        return BlockResult(block.coords)


def test_failure_leaves_nothing_and_keeps_existing_output(tmp_path):
    out = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        run(open_source(CHAIN2D), FailingJob(), str(out), chunk_frames=100)
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"precious")
    with pytest.raises(RuntimeError):
        run(open_source(CHAIN2D), FailingJob(), str(out), chunk_frames=100, force=True)
    assert out.read_bytes() == b"precious"
    assert list(tmp_path.iterdir()) == [out]


def test_output_checks(tmp_path):
    (tmp_path / "exists.h5").write_bytes(b"x")
    with pytest.raises(OutputError, match="already exists .*--force"):
        AtomicOutput(tmp_path / "exists.h5")
    with pytest.raises(OutputError, match="is a folder"):
        AtomicOutput(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        AtomicOutput(tmp_path / "missing" / "out.h5")


def test_force_replaces_and_file_is_readable_by_others(tmp_path):
    out = tmp_path / "o.h5"
    out.write_bytes(b"old")
    run(open_source(CHAIN2D, stop=5), CenterJob(), str(out), force=True)
    assert h5py.is_hdf5(out)
    assert out.stat().st_mode & 0o044  # not the 0600 of a raw mkstemp file


def test_api_reexports():
    assert ta.open_source is open_source


def test_provenance_checksums_are_the_files_sha256(tmp_path):
    # through the command line, whose serial runs start the hashes before the imports
    import hashlib

    from .conftest import invoke

    out = tmp_path / "c.h5"
    r = invoke("center", str(BUTANE_DCD), "-t", str(BUTANE_PDB), "-o", str(out))
    assert r.code == 0, r.stderr
    with h5py.File(out) as f:
        inputs = json.loads(f["trajalign/provenance"].attrs["inputs"])
    for item, path in zip(inputs, (BUTANE_DCD, BUTANE_PDB), strict=True):
        assert item["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_early_hashes_are_reused_and_a_changed_file_is_hashed_again(tmp_path):
    import hashlib
    import os

    from trajalign._hashes import BackgroundHashes, start_hashes

    p = tmp_path / "data.bin"
    p.write_bytes(b"first" * 1000)
    start_hashes([str(p), str(tmp_path / "missing.bin")])
    later = BackgroundHashes([str(p)])
    assert later._paths == [] and later._thread is None  # the early hash, not a new read
    assert later.get(str(p)) == hashlib.sha256(b"first" * 1000).hexdigest()
    p.write_bytes(b"second" * 1000)
    os.utime(p, ns=(1, 1))  # a new version, whatever the filesystem's mtime resolution
    again = BackgroundHashes([str(p)])
    assert again._paths == [str(p)]
    assert again.get(str(p)) == hashlib.sha256(b"second" * 1000).hexdigest()


def test_child_hashes_match_hashlib_and_survive_a_killed_child(tmp_path):
    import hashlib
    import os
    import signal

    from trajalign._hashes import ChildHashes, sha256

    files = []
    for i, size in enumerate((0, 1, (16 << 20) + 3)):  # empty, tiny, more than one piece
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(np.random.default_rng(i).bytes(size))
        files.append(str(p))
    want = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in files]
    assert [sha256(p) for p in files] == want
    hashes = ChildHashes([*files, str(tmp_path / "missing.bin")])
    assert [hashes.get(p) for p in files] == want
    with pytest.raises(OSError):  # the child wrote "-": the parent tries, and fails, itself
        hashes.get(str(tmp_path / "missing.bin"))
    # a child killed before it wrote anything: the parent hashes the files itself
    killed = ChildHashes(files)
    os.kill(killed._pid, signal.SIGKILL)
    assert [killed.get(p) for p in files] == want


def test_a_single_threaded_process_hashes_in_a_child(tmp_path):
    # the command line's case (a process with no other thread, a large input); checked
    # in a fresh interpreter, since a pytest worker may have threads
    import hashlib
    import subprocess
    import sys

    p = tmp_path / "data.bin"
    p.write_bytes(b"x" * 100000)
    code = (
        "import sys, trajalign._hashes as h; h.FORK_ABOVE = 0; h.start_hashes([sys.argv[1]]); "
        "(e,) = h._STARTED.values(); print(type(e).__name__, h.BackgroundHashes([sys.argv[1]])"
        ".get(sys.argv[1]))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ChildHashes", hashlib.sha256(b"x" * 100000).hexdigest()]


def test_a_failed_fork_hashes_in_a_thread(tmp_path, monkeypatch):
    import hashlib
    import os
    import stat

    from trajalign import _hashes

    def no_fork():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(_hashes, "FORK_ABOVE", 0)
    monkeypatch.setattr(_hashes.threading, "active_count", lambda: 1)
    monkeypatch.setattr(os, "fork", no_fork)
    pipes = []
    real_pipe = os.pipe

    def recorded_pipe():
        pipes.extend(real_pipe())
        return pipes[-2], pipes[-1]

    monkeypatch.setattr(os, "pipe", recorded_pipe)
    p = tmp_path / "data.bin"
    p.write_bytes(b"y" * 5000)
    _hashes.start_hashes([str(p)])
    (started,) = [h for k, h in _hashes._STARTED.items() if k[0] == str(p)]
    assert isinstance(started, _hashes.BackgroundHashes)
    assert started.get(str(p)) == hashlib.sha256(b"y" * 5000).hexdigest()
    assert len(pipes) == 2
    # the pipe was closed again; counting /proc/self/fd raced with the hashing thread's
    # open file, and a closed descriptor may since name another (non-pipe) file
    for fd in pipes:
        try:
            assert not stat.S_ISFIFO(os.fstat(fd).st_mode)
        except OSError:
            pass
