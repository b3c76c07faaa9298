"""The native XTC reader behind every source and command (issue 23, phase 2).

MDAnalysis' own reader (``--xtc-reader mdanalysis``) is the oracle: sources opened with
either reader must agree on every fact and every bit of every block, and ``rotate``
must write the same HDF5 datasets (serial, ``--workers 2``, frame slices, several
files, a reference frame).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor

import h5py
import numpy as np
import pytest
from MDAnalysisTests.datafiles import (
    COORDINATES_TOPOLOGY,
    COORDINATES_XTC,
    GRO,
    TPR,
    XTC,
    PDB_sub_sol,
    XTC_sub_sol,
)

from trajalign.errors import ParameterError
from trajalign.io import open_source
from trajalign.io.sources import xtc_reader_choice

from .conftest import invoke

FACTS = ("total_frames", "n_frames", "n_points", "n_atoms_total", "dt", "has_box", "pbc_mode")


def both(paths, **kw):
    """The same input opened by each reader: (native, mdanalysis)."""
    return (
        open_source(paths, xtc_reader="native", **kw),
        open_source(paths, xtc_reader="mdanalysis", **kw),
    )


def assert_same_block(a, b) -> None:
    for name in ("coords", "aux", "box", "times", "frames"):
        x, y = getattr(a, name), getattr(b, name)
        if y is None:
            assert x is None, name
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, name
        # bit for bit (NaN-safe): the raw bytes
        xb, yb = np.ascontiguousarray(x).view(np.uint8), np.ascontiguousarray(y).view(np.uint8)
        assert np.array_equal(xb, yb), name
        if name in ("coords", "aux"):
            assert x.flags.c_contiguous, name  # the kernels reshape rows
    assert a.repair == b.repair


@pytest.mark.parametrize(
    "paths,kw",
    [
        ([XTC], dict(top=TPR, select="protein")),
        ([XTC], dict(top=TPR, select="resname NA or name CA", pbc="whole")),
        ([XTC], dict(top=TPR, select="name CA", aux_select="backbone", pbc="nojump")),
        ([XTC, XTC], dict(top=GRO, select="name CA", aux_select="backbone", start=1, step=3)),
        ([XTC], dict(top=GRO, select="all", stop=-2)),
        ([COORDINATES_XTC], dict(top=COORDINATES_TOPOLOGY)),
        ([XTC_sub_sol], dict(top=PDB_sub_sol, select="not resname SOL")),
    ],
    ids=["protein", "ions-whole", "nojump-aux", "two-files-slice", "all-stop", "5-atoms", "sub"],
)
def test_sources_agree_bit_for_bit(paths, kw):
    nat, mda = both(paths, **kw)
    with nat, mda:
        assert nat.xtc is not None and nat._guard is None  # no child process
        assert mda.xtc is None
        for fact in FACTS:
            assert getattr(nat, fact) == getattr(mda, fact), fact
        np.testing.assert_array_equal(nat.frame_indices, mda.frame_indices)
        np.testing.assert_array_equal(nat.atom_indices, mda.atom_indices)
        np.testing.assert_array_equal(nat.universe.atoms.positions, mda.universe.atoms.positions)
        n = nat.n_frames
        # in order, then out of order and repeated (no read-ahead to rely on)
        for s in [*range(0, n, 3), n - 1, 0, n // 2]:
            assert_same_block(nat.read(s, min(s + 3, n)), mda.read(s, min(s + 3, n)))


def test_a_single_frame_file_has_the_same_time_step(tmp_path):
    one = tmp_path / "one.xtc"
    with open(XTC, "rb") as fh:
        one.write_bytes(fh.read()[:165188])  # frame 0: bytes [0, 165188)
    nat, mda = both([one], top=GRO)
    with nat, mda:
        assert (nat.total_frames, nat.dt) == (mda.total_frames, mda.dt) == (1, mda.dt)


def test_the_reader_is_chosen_by_option_then_environment(monkeypatch):
    monkeypatch.delenv("TRAJALIGN_XTC_READER", raising=False)
    assert xtc_reader_choice(None) == "native"
    monkeypatch.setenv("TRAJALIGN_XTC_READER", "MDAnalysis")
    assert xtc_reader_choice(None) == "mdanalysis"
    assert xtc_reader_choice("native") == "native"  # the option wins
    with open_source(XTC, top=GRO, stop=2) as src:
        assert src.spec.xtc_reader == "mdanalysis" and src.xtc is None
        assert src._guard is not None
    monkeypatch.setenv("TRAJALIGN_XTC_READER", "molly")
    with pytest.raises(ParameterError, match="TRAJALIGN_XTC_READER 'molly' is not an XTC"):
        open_source(XTC, top=GRO)


def _reopen(spec: dict):
    with open_source(**spec) as src:
        return src.spec.xtc_reader, src.xtc is not None, src.read(0, 2).coords


@pytest.mark.parametrize("reader", ["native", "mdanalysis"])
def test_workers_reopen_with_the_spec_s_reader(monkeypatch, reader):
    """A worker process reopens the source from its spec with the driver's reader, what
    ever its own environment says."""
    monkeypatch.delenv("TRAJALIGN_XTC_READER", raising=False)
    with open_source(XTC, top=GRO, select="name CA", xtc_reader=reader) as src:
        spec = pickle.loads(pickle.dumps(src.spec.as_dict()))
        want = src.read(0, 2).coords
    other = "native" if reader == "mdanalysis" else "mdanalysis"
    monkeypatch.setenv("TRAJALIGN_XTC_READER", other)  # inherited by the worker
    # spawned: this process may run Numba's OpenMP threads, which forbid a fork
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        got_reader, native, coords = pool.submit(_reopen, spec).result()
    assert (got_reader, native) == (reader, reader == "native")
    np.testing.assert_array_equal(coords, want)


def datasets(path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return out


def assert_same_datasets(a, b) -> None:
    da, db = datasets(a), datasets(b)
    assert sorted(da) == sorted(db)
    assert len(da) > 3
    for name in da:
        x, y = np.asarray(da[name]), np.asarray(db[name])
        assert x.dtype == y.dtype and x.shape == y.shape, name
        if x.dtype.kind in "fiub":
            assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), name
        else:
            assert np.array_equal(x, y), name


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--workers", "2", "--chunk-frames", "2"],
        ["--start", "1", "--stop", "9", "--step", "3"],
        ["--reference", "frame:7", "--chunk-frames", "3"],
    ],
    ids=["serial", "workers", "slice", "reference"],
)
def test_rotate_writes_the_same_datasets_with_either_reader(tmp_path, extra):
    """rotate -s protein of the solvated adenylate kinase (periodic repair from the
    TPR's bonds): the native run and the MDAnalysis run write equal datasets."""
    outs = {}
    for reader in ("native", "mdanalysis"):
        outs[reader] = tmp_path / f"{reader}.h5"
        res = invoke(
            "rotate", XTC, "-t", TPR, "-s", "protein", "-o", outs[reader],
            "--xtc-reader", reader, *extra,
        )  # fmt: skip
        assert res.code == 0, res.stderr
    assert_same_datasets(outs["native"], outs["mdanalysis"])


def test_rotate_of_two_files_all_atoms_is_the_same(tmp_path):
    outs = {}
    for reader in ("native", "mdanalysis"):
        outs[reader] = tmp_path / f"{reader}.h5"
        res = invoke(
            "rotate", XTC, XTC, "-t", GRO, "-o", outs[reader], "--xtc-reader", reader,
            "--chunk-frames", "4",
        )  # fmt: skip
        assert res.code == 0, res.stderr
    assert_same_datasets(outs["native"], outs["mdanalysis"])


def test_a_run_resumes_with_the_other_reader(tmp_path):
    """The reader changes no bit, so it is not part of a run's identity: a partial
    output of a native run is finished by an MDAnalysis run, and equals a whole run."""
    from trajalign.jobs.rotate import RotateJob
    from trajalign.pipeline import run

    class Stop(RotateJob):
        def process(self, block):
            if block.start > 0:
                raise KeyboardInterrupt
            return super().process(block)

    out, whole = tmp_path / "o.h5", tmp_path / "whole.h5"
    kw = dict(top=TPR, select="protein")
    with pytest.raises(KeyboardInterrupt), open_source(XTC, xtc_reader="native", **kw) as src:
        run(src, Stop(), str(out), chunk_frames=3)
    with open_source(XTC, xtc_reader="mdanalysis", **kw) as src:
        summary = run(src, RotateJob(), str(out), chunk_frames=3, resume=True)
    assert any(w.startswith("resumed: 1 of 4 blocks") for w in summary["warnings"]), summary
    with open_source(XTC, **kw) as src:
        run(src, RotateJob(), str(whole), chunk_frames=3)
    assert_same_datasets(out, whole)


def test_info_check_decodes_every_atom_of_every_frame(tmp_path, monkeypatch):
    """info --check with a selection still decodes whole frames (a partial decode
    cannot check a stream's byte count)."""
    from trajalign.io import xtc

    seen = []
    real = xtc.XTCChain.read

    def spy(self, frames, last_atom=None):
        seen.append(last_atom)
        return real(self, frames, last_atom)

    monkeypatch.setattr(xtc.XTCChain, "read", spy)
    res = invoke("info", XTC, "-t", GRO, "-s", "name CA", "--check")
    assert res.code == 0, res.stderr
    assert None in seen
    assert os.path.exists(XTC)
