"""Readers: arrays (npy/npz, memory-mapped), MDAnalysis trajectories, slicing, reopening."""

from __future__ import annotations

import pickle
import zipfile
from concurrent.futures import ProcessPoolExecutor

import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysisTests.datafiles import DCD, GRO, PSF, XTC

from trajalign.errors import DataError, InputError, ParameterError, SelectionError
from trajalign.io import open_source
from trajalign.io.sources import parse_index_list

from .conftest import BUTANE_DCD, BUTANE_PDB, CHAIN2D


@pytest.fixture()
def arr(tmp_path):
    rng = np.random.default_rng(3)
    return rng.normal(size=(30, 7, 3))


def read_all(src, chunk=7):
    return np.concatenate(
        [src.read(s, min(s + chunk, src.n_frames)).coords for s in range(0, src.n_frames, chunk)]
    )


def test_npy_is_memory_mapped_and_read_as_float32(tmp_path, arr):
    p = tmp_path / "x.npy"
    np.save(p, arr)
    src = open_source(p)
    assert isinstance(src._arrays[0], np.memmap)
    assert (src.n_frames, src.n_points, src.dim) == (30, 7, 3)
    got = read_all(src)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, arr.astype(np.float32))


def test_uncompressed_npz_member_is_memory_mapped(tmp_path, arr):
    p = tmp_path / "x.npz"
    np.savez(p, coords=arr, other=np.zeros(3))
    src = open_source(p, key="coords")
    assert isinstance(src._arrays[0], np.memmap)
    np.testing.assert_array_equal(read_all(src), arr.astype(np.float32))


def test_compressed_npz_is_loaded(tmp_path, arr):
    p = tmp_path / "x.npz"
    np.savez_compressed(p, arr=arr)
    np.testing.assert_array_equal(read_all(open_source(p)), arr.astype(np.float32))


def test_npz_key_rules(tmp_path, arr):
    p = tmp_path / "two.npz"
    np.savez(p, a=arr, b=arr)
    with pytest.raises(InputError, match="several arrays .*--key"):
        open_source(p)
    with pytest.raises(InputError, match="no array named 'c'"):
        open_source(p, key="c")
    q = tmp_path / "arr.npz"
    np.savez(q, arr=arr, extra=arr[:2])
    assert open_source(q).n_frames == 30  # falls back to 'arr', as the chapter's paths.npz


def test_several_files_are_one_trajectory_and_slicing(tmp_path, arr):
    np.save(tmp_path / "a.npy", arr[:13])
    np.save(tmp_path / "b.npy", arr[13:])
    src = open_source([tmp_path / "a.npy", tmp_path / "b.npy"], start=3, stop=28, step=4)
    np.testing.assert_array_equal(src.frame_indices, np.arange(30)[3:28:4])
    np.testing.assert_array_equal(read_all(src, 2), arr[3:28:4].astype(np.float32))
    b = src.read(1, 3)
    np.testing.assert_array_equal(b.frames, [7, 11])
    np.testing.assert_array_equal(b.times, [7.0, 11.0])


def test_array_selection_and_masses(tmp_path, arr):
    np.save(tmp_path / "x.npy", arr)
    np.savetxt(tmp_path / "m.txt", np.arange(1.0, 8.0))
    src = open_source(tmp_path / "x.npy", select="1-3,6", masses=tmp_path / "m.txt")
    np.testing.assert_array_equal(src.atom_indices, [1, 2, 3, 6])
    np.testing.assert_array_equal(src.masses, [2.0, 3.0, 4.0, 7.0])
    np.testing.assert_array_equal(read_all(src), arr[:, [1, 2, 3, 6]].astype(np.float32))


def test_parse_index_list():
    np.testing.assert_array_equal(parse_index_list("index 0-2, 5", 6), [0, 1, 2, 5])
    np.testing.assert_array_equal(parse_index_list("all", 3), [0, 1, 2])
    for bad, match in [
        ("0-9", "out of range"),
        ("1,1", "twice"),
        ("a-b", "cannot read"),
        ("3-1", "backwards"),
        ("", "empty"),
    ]:
        with pytest.raises(SelectionError, match=match):
            parse_index_list(bad, 6)


@pytest.mark.parametrize(
    "content, match",
    [
        (lambda p: p.write_text("hello"), "not a readable numpy"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: np.save(p, np.zeros((3, 4))), "not \\(frames, points, 2 or 3\\)"),
        (lambda p: np.save(p, np.zeros((0, 4, 3))), "zero frames"),
        (lambda p: np.save(p, np.array([[[{}]]], dtype=object)), "Python objects"),
        (lambda p: np.save(p, np.zeros((2, 3, 3), dtype=complex)), "not real numbers"),
    ],
)
def test_bad_npy_files(tmp_path, content, match):
    p = tmp_path / "bad.npy"
    content(p)
    with pytest.raises((InputError, DataError), match=match):
        open_source(p)


def test_truncated_npz(tmp_path, arr):
    p = tmp_path / "x.npz"
    np.savez(p, arr=arr)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not a readable numpy"):
        open_source(p)


def test_object_npz_member_is_refused_without_unpickling(tmp_path):
    p = tmp_path / "o.npz"
    np.savez(p, arr=np.array([[[object()]]], dtype=object))
    assert zipfile.is_zipfile(p)
    with pytest.raises(DataError, match="Python objects"):
        open_source(p)


def test_slicing_errors(tmp_path, arr):
    np.save(tmp_path / "x.npy", arr)
    with pytest.raises(ParameterError, match="selects no frames"):
        open_source(tmp_path / "x.npy", start=40)
    with pytest.raises(ParameterError, match="not positive"):
        open_source(tmp_path / "x.npy", step=-1)


def test_missing_and_folder_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_source(tmp_path / "nope.npy")
    with pytest.raises(InputError, match="is a folder"):
        open_source(tmp_path)


# ------------------------------------------------------------------ MDAnalysis inputs


@pytest.mark.parametrize("top, traj, sel", [(PSF, DCD, "name CA"), (GRO, XTC, "resid 1-20")])
def test_mdanalysis_reader_matches_mdanalysis(top, traj, sel):
    src = open_source(traj, top=top, select=sel, start=1, stop=9, step=2)
    u = mda.Universe(top, traj)
    ag = u.select_atoms(sel)
    want = np.stack([ag.positions.copy() for _ in u.trajectory[1:9:2]])
    times = [ts.time for ts in u.trajectory[1:9:2]]
    got = read_all(src, 3)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(src.atom_indices, ag.indices)
    np.testing.assert_allclose(np.concatenate([src.read(0, 4).times]), times)
    np.testing.assert_allclose(src.masses, ag.masses)
    assert src.has_box == (u.dimensions is not None)


def test_box_bonds_and_masses_of_sample():
    src = open_source(BUTANE_DCD, top=BUTANE_PDB, select="name C*")
    assert src.has_box
    np.testing.assert_allclose(src.read(0, 1).box[0], [40, 40, 40, 90, 90, 90])
    # the 3 C-C bonds among the 4 carbons survive the selection, renumbered 0..3
    assert sorted(map(tuple, src.bonds.tolist())) == [(0, 1), (0, 2), (1, 3)]
    np.testing.assert_allclose(src.masses, 12.011, rtol=1e-4)


def test_mdanalysis_errors(tmp_path):
    with pytest.raises(SelectionError, match="matches no atoms"):
        open_source(DCD, top=PSF, select="name XYZ")
    with pytest.raises(SelectionError, match="cannot use selection"):
        open_source(DCD, top=PSF, select="name CA and (")
    with pytest.raises(InputError, match="do not match|cannot read"):
        open_source(DCD, top=BUTANE_PDB)
    bad = tmp_path / "junk.dcd"
    bad.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(InputError):
        open_source(bad, top=PSF)
    with pytest.raises(ParameterError, match="--top was given"):
        open_source(CHAIN2D, top=PSF)


def _read_in_child(spec_dict):
    src = open_source(**spec_dict)
    return src.read(2, 5).coords


def test_source_reopens_by_path_in_another_process():
    src = open_source(DCD, top=PSF, select="name CA", step=3)
    spec = pickle.loads(pickle.dumps(src.spec))
    with ProcessPoolExecutor(1) as pool:
        child = pool.submit(_read_in_child, spec.as_dict()).result()
    np.testing.assert_array_equal(child, src.read(2, 5).coords)


def test_run_lock_names_its_run_and_leaves_nothing(tmp_path):
    import json
    import os

    from trajalign.io.output import RunLock

    target = tmp_path / "out.h5"
    with RunLock(target) as lock:
        held = json.loads(lock.path.read_text())
        assert held["pid"] == os.getpid()
        assert [p.name for p in tmp_path.iterdir()] == [".out.h5.lock"]
    assert list(tmp_path.iterdir()) == []


def test_an_empty_lock_is_a_killed_run_once_it_is_old(tmp_path):
    """A run killed between creating its lock file and writing it left an empty lock,
    which later runs took for one being written, forever (a CI run of
    test_each.py::test_resume_after_sigkill_mid_list_loses_nothing_finished). Locks are
    now created with their text; an old unreadable one, and the half-made lock file of
    a dead process, are taken over."""
    import os
    import subprocess
    import sys
    import time

    from trajalign.errors import OutputError
    from trajalign.io.output import _UNREADABLE_STALE_SECONDS, RunLock

    target = tmp_path / "out.h5"
    lock = tmp_path / ".out.h5.lock"
    lock.write_text("")
    with pytest.raises(OutputError, match="another run is writing"):
        RunLock(target).__enter__()  # fresh: perhaps being written this instant
    old = time.time() - 2 * _UNREADABLE_STALE_SECONDS
    os.utime(lock, (old, old))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    litter = tmp_path / f".out.h5.lock.{dead}"
    litter.write_text("{}")
    with RunLock(target):
        assert lock.read_text() != "" and not litter.exists()
    assert list(tmp_path.iterdir()) == []
