"""The catalogue of bad input and faults (docs/errors.md): one test per row.

Each case runs the real command-line entry point and must fail with exit status 1 (or 2
for Click's usage errors), exactly one ``Error:`` line naming the problem, no traceback,
and no file at the output path. ``python -m tests.test_catalogue`` rewrites
docs/errors.md from these cases and the messages they actually produce.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from MDAnalysisTests.datafiles import (
    DCD,
    GRO,
    NCDF,
    PRM,
    PSF,
    TPR,
    TRJ,
    TRR,
    XTC,
    PDB_multiframe,
    PRMncdf,
)

from .conftest import BUTANE_DCD, BUTANE_PDB, CHAIN2D, ROOT, invoke

DOC = ROOT / "docs" / "errors.md"


@dataclass
class Case:
    id: str
    what: str  # the situation, as the catalogue names it
    args: Callable[[Path], list]  # command line after "trajalign", given a tmp folder
    expect: str  # a fragment of the one error line
    code: int = 1
    add_output: bool = True  # append "-o TMP/out/result.h5" unless the args have -o


def npy(tmp, name, arr):
    p = tmp / name
    np.save(p, arr)
    return p


def raw(tmp, name, data: bytes):
    p = tmp / name
    p.write_bytes(data)
    return p


def npz(tmp, name, **arrays):
    p = tmp / name
    np.savez(p, **arrays)
    return p


def txt(tmp, name, text: str):
    p = tmp / name
    p.write_text(text)
    return p


def damaged_copy(tmp, src, how: str):
    """A copy of ``src`` damaged as in tests/test_damaged.py (seeded, made here)."""
    from .test_damaged import damage

    p = tmp / f"{how}{Path(src).suffix}"
    p.write_bytes(damage(Path(src).read_bytes(), how))
    return p


def truncated(tmp, name, src):
    data = Path(src).read_bytes()
    return raw(tmp, name, data[: len(data) // 3])


GOOD = np.random.default_rng(0).normal(size=(6, 5, 3)).astype(np.float32)


def with_nan(a, frame):
    a = a.copy()
    a[frame, 1, 0] = np.nan
    return a


def with_inf(a, frame):
    a = a.copy()
    a[frame, 0, 2] = np.inf
    return a


C = "center"
CASES = [
    # ---------------------------------------------------------------- files
    Case(
        "missing-file", "input file does not exist", lambda t: [C, t / "nope.npy"], "no such file"
    ),
    Case("folder-input", "input path is a folder", lambda t: [C, t], "is a folder"),
    Case(
        "empty-file",
        "empty (0-byte) file",
        lambda t: [C, raw(t, "e.npy", b"")],
        "is empty (0 bytes)",
    ),
    Case(
        "truncated-npz",
        "truncated .npz archive",
        lambda t: [C, truncated(t, "t.npz", npz(t, "full.npz", arr=GOOD))],
        "not a readable numpy",
    ),
    Case(
        "truncated-npy",
        "truncated .npy file",
        lambda t: [C, truncated(t, "t.npy", npy(t, "full.npy", GOOD))],
        "is truncated: its header says",
    ),
    Case(
        "truncated-dcd",
        "truncated DCD trajectory",
        lambda t: [C, truncated(t, "t.dcd", BUTANE_DCD), "-t", BUTANE_PDB],
        "is truncated: it ends inside frame",
    ),
    Case(
        "truncated-xtc",
        "truncated XTC trajectory (its last counted frame is cut)",
        lambda t: [
            C,
            raw(t, "t.xtc", Path(XTC).read_bytes()[: int(Path(XTC).stat().st_size * 0.55)]),
            "-t",
            GRO,
        ],
        # 55% of the file: frame 5 (bytes 825872-991043) is cut 82571 bytes in
        "is truncated: it ends inside frame 5 (byte 825872; the frame needs 165172 bytes",
    ),
    Case(
        "text-as-npy",
        "text file with an .npy extension",
        lambda t: [C, raw(t, "t.npy", b"1.0 2.0 3.0\n")],
        "does not start like an .npy",
    ),
    Case(
        "random-as-dcd",
        "random bytes with a .dcd extension",
        lambda t: [C, raw(t, "r.dcd", os.urandom(4096)), "-t", PSF],
        "cannot read",
    ),
    Case(
        "random-as-xtc",
        "random bytes with an .xtc extension",
        lambda t: [C, raw(t, "r.xtc", os.urandom(4096)), "-t", GRO],
        "is not an XTC file",
    ),
    Case(
        "text-as-pdb-top",
        "a topology that is not one",
        lambda t: [C, DCD, "-t", raw(t, "top.psf", b"hello\n")],
        "cannot read",
    ),
    Case(
        "truncated-dcd-stop",
        "truncated DCD with --stop past its complete frames",
        lambda t: [C, truncated(t, "t.dcd", BUTANE_DCD), "-t", BUTANE_PDB, "--stop", 400],
        "--stop 332",
    ),  # 332 = whole frames in the first third of the 1000-frame file
    # ------------------------------------------- damaged trajectories (tests/test_damaged.py)
    Case(
        "xtc-decoder-crash",
        "XTC with random bytes inside one frame's compressed data (MDAnalysis dies by "
        "SIGFPE/SIGSEGV on it): the native decoder's bounds checks name the frame",
        lambda t: ["rotate", damaged_copy(t, XTC, "payload"), "-t", GRO],
        # the noise starts 55043 bytes into frame 5's stream; atom 15649 is the first
        # to decode outside the frame's stored range
        "frame 5 (byte 825872) is damaged: its compressed coordinates are damaged: atom "
        "15649 decodes outside the frame's range",
    ),
    Case(
        "xtc-decoder-crash-mdanalysis",
        "the same file with --xtc-reader mdanalysis: MDAnalysis decodes in a child "
        "process, whose death by a signal is reported",
        lambda t: (
            ["rotate", damaged_copy(t, XTC, "payload"), "-t", GRO] + ["--xtc-reader", "mdanalysis"]
        ),
        "frame 5 cannot be decoded: the XTC decoder crashed",
    ),
    Case(
        "xtc-damaged-header",
        "XTC with random bytes over the last 12 bytes of frame 4's compressed data and "
        "frame 5's header: the header walk stops at frame 5, and frame 4, which does not "
        "decode to its end, is named",
        lambda t: [C, damaged_copy(t, XTC, "random"), "-t", GRO],
        "frame 4 (byte 660708) is damaged: its compressed coordinates are damaged",
    ),
    Case(
        "xtc-trailing-bytes",
        "XTC with bytes appended after its last frame",
        lambda t: [C, damaged_copy(t, XTC, "appended"), "-t", GRO],
        "frame 10 (byte 1651716) is damaged",
    ),
    Case(
        "trr-truncated",
        "TRR cut short (MDAnalysis alone reads the whole frames and drops the rest)",
        lambda t: [C, damaged_copy(t, TRR, "cut"), "-t", GRO],
        "is truncated: it ends inside frame 6",
    ),
    Case(
        "trr-damaged-middle",
        "TRR with zero bytes over a frame header (MDAnalysis alone reads 5 of 10 frames)",
        lambda t: [C, damaged_copy(t, TRR, "zeros"), "-t", GRO],
        "frame 5 (byte 5722320) is damaged",
    ),
    Case(
        "trr-damaged-coordinates",
        "TRR with random bytes inside a frame's coordinates (NaN, inf, absurd values)",
        lambda t: [C, damaged_copy(t, TRR, "payload"), "-t", GRO],
        "frame 5 holds NaN, inf or coordinates beyond",
    ),
    Case(
        "dcd-damaged-middle",
        "DCD with random bytes in the middle (record markers checked for every frame)",
        lambda t: [C, damaged_copy(t, DCD, "random"), "-t", PSF],
        "frame 48 (byte 1925924) is damaged: its record markers",
    ),
    Case(
        "netcdf-truncated",
        "AMBER NetCDF cut short (frame count in the header against the size)",
        lambda t: [C, damaged_copy(t, NCDF, "cut"), "-t", PRMncdf],
        "is truncated: its header lists 30 frames",
    ),
    Case(
        "netcdf-damaged-box",
        "AMBER NetCDF with random bytes in the middle (a frame's box is no box)",
        lambda t: [C, damaged_copy(t, NCDF, "random"), "-t", PRMncdf],
        "frame 14 holds the box",
    ),
    Case(
        "netcdf-zero-box",
        "AMBER NetCDF with zero bytes in the middle (MDAnalysis fails on the zero cell "
        "with a Python TypeError)",
        lambda t: [C, damaged_copy(t, NCDF, "zeros"), "-t", PRMncdf],
        "frame 14 has no periodic box, frame 0 has one",
    ),
    Case(
        "mdcrd-damaged",
        "AMBER ASCII mdcrd with zero bytes in the middle (first bad line named)",
        lambda t: [C, damaged_copy(t, TRJ, "zeros"), "-t", PRM],
        "frame 5 is damaged: line",
    ),
    Case(
        "mdcrd-truncated",
        "AMBER ASCII mdcrd cut short",
        lambda t: [C, damaged_copy(t, TRJ, "cut"), "-t", PRM],
        "is truncated: it ends inside frame 6",
    ),
    Case(
        "pdb-multiframe-truncated",
        "multi-frame PDB cut short (its last model has fewer atoms)",
        lambda t: [C, damaged_copy(t, PDB_multiframe, "cut"), "-t", PDB_multiframe],
        "frame 14 cannot be read",
    ),
    Case(
        "damaged-second-file",
        "two XTC files, the second damaged: that one named, --stop counting both",
        lambda t: [C, XTC, damaged_copy(t, XTC, "payload"), "-t", GRO],
        "--stop 15",
    ),
    Case(
        "damaged-resume",
        "--resume on a damaged file: no partial output kept",
        lambda t: [C, damaged_copy(t, XTC, "payload"), "-t", GRO, "--resume"],
        "frame 5 (byte 825872) is damaged",
    ),
    Case(
        "info-check",
        "info --check on a damaged file: each file's first bad frame, nothing written",
        lambda t: ["info", damaged_copy(t, TRR, "cut"), "-t", GRO, "--check"],
        "is truncated: it ends inside frame 6",
        add_output=False,
    ),
    # ---------------------------------------------------------------- arrays
    Case(
        "npz-several-arrays",
        ".npz with several arrays and no --key",
        lambda t: [C, npz(t, "s.npz", a=GOOD, b=GOOD)],
        "several arrays",
    ),
    Case(
        "npz-wrong-key",
        ".npz without the --key array",
        lambda t: [C, npz(t, "k.npz", coords=GOOD), "--key", "xyz"],
        "no array named 'xyz'",
    ),
    Case(
        "wrong-shape-2d",
        "array that is not (frames, points, 2|3): 2 axes",
        lambda t: [C, npy(t, "w.npy", np.zeros((5, 3)))],
        "not (frames, points, 2 or 3)",
    ),
    Case(
        "wrong-shape-dim4",
        "array that is not (frames, points, 2|3): 4 coordinates",
        lambda t: [C, npy(t, "w.npy", np.zeros((5, 3, 4)))],
        "not (frames, points, 2 or 3)",
    ),
    Case(
        "object-array",
        "object (pickled) array: never unpickled",
        lambda t: [C, npy(t, "o.npy", np.array([[[1, 2, None]]], dtype=object))],
        "Python objects",
    ),
    Case(
        "complex-array",
        "complex numbers",
        lambda t: [C, npy(t, "c.npy", np.zeros((2, 3, 3), complex))],
        "not real numbers",
    ),
    Case(
        "zero-frames",
        "array with zero frames",
        lambda t: [C, npy(t, "z.npy", np.zeros((0, 3, 3)))],
        "zero frames",
    ),
    Case(
        "zero-points",
        "array with zero points",
        lambda t: [C, npy(t, "z.npy", np.zeros((4, 0, 3)))],
        "zero points",
    ),
    Case(
        "nan-coordinates",
        "NaN coordinates (first bad frame named)",
        lambda t: [C, npy(t, "n.npy", with_nan(GOOD, 4))],
        "NaN or inf coordinates in frame 4",
    ),
    Case(
        "inf-coordinates",
        "inf coordinates, with a frame slice (source frame named)",
        lambda t: [C, npy(t, "i.npy", with_inf(GOOD, 5)), "--start", 1],
        "NaN or inf coordinates in frame 5",
    ),
    Case(
        "nan-rotate",
        "NaN coordinates in rotate",
        lambda t: ["rotate", npy(t, "n.npy", with_nan(GOOD, 3))],
        "NaN or inf coordinates in frame 3",
    ),
    Case(
        "nan-internal",
        "NaN coordinates in internal",
        lambda t: ["internal", npy(t, "n.npy", with_nan(GOOD, 2)), "--chunk-frames", 2],
        "NaN or inf coordinates in frame 2",
    ),
    Case(
        "protein-feature-array",
        "a protein feature (phi) on an array input",
        lambda t: ["internal", CHAIN2D, "--features", "phi"],
        "phi needs atoms named N, CA, C: an array input has no atom names",
    ),
    Case(
        "protein-feature-no-protein",
        "a protein feature on a selection without protein residues",
        lambda t: ["internal", BUTANE_DCD, "-t", BUTANE_PDB, "--features", "mindist"],
        "mindist needs protein residues (atoms named CA): the selection has none",
    ),
    Case(
        "unknown-scheme",
        "internal --scheme that is not one of the mindist schemes",
        lambda t: [
            "internal",
            BUTANE_DCD,
            "-t",
            BUTANE_PDB,
            "--features",
            "mindist",
            "--scheme",
            "heavy",
        ],  # fmt: skip
        "choose from ca, closest, closest-heavy, sidechain, sidechain-heavy",
    ),
    # ---------------------------------------------------------------- topology, selection
    Case(
        "atom-count-mismatch",
        "topology and trajectory with different atom counts",
        lambda t: [C, DCD, "-t", BUTANE_PDB],
        "do not match",
    ),
    Case(
        "xtc-atom-count-mismatch",
        "XTC with a topology of another atom count (native reader)",
        lambda t: [C, XTC, "-t", PSF],
        "topology and trajectory do not match",
    ),
    Case(
        "empty-selection",
        "selection that matches no atoms",
        lambda t: [C, BUTANE_DCD, "-t", BUTANE_PDB, "-s", "name XX"],
        "matches no atoms",
    ),
    Case(
        "malformed-selection",
        "malformed MDAnalysis selection",
        lambda t: [C, BUTANE_DCD, "-t", BUTANE_PDB, "-s", "name C* and ("],
        "cannot use selection",
    ),
    Case(
        "array-selection-range",
        "array index selection out of range",
        lambda t: [C, CHAIN2D, "-s", "0-40"],
        "out of range for 12 points",
    ),
    Case(
        "array-selection-repeated",
        "array index selection with a repeated index",
        lambda t: [C, CHAIN2D, "-s", "1,2,2"],
        "selected twice",
    ),
    Case(
        "array-selection-garbage",
        "array selection that is not an index list",
        lambda t: [C, CHAIN2D, "-s", "name CA"],
        "cannot read point selection",
    ),
    Case(
        "point-out-of-range",
        "--point out of range",
        lambda t: [C, CHAIN2D, "--method", "point", "--point", 12],
        "out of range",
    ),
    Case(
        "points-out-of-range",
        "rotate --points out of range",
        lambda t: ["rotate", CHAIN2D, "--method", "point", "--points", "0,99"],
        "out of range",
    ),
    Case(
        "points-repeated",
        "rotate --points repeated",
        lambda t: ["rotate", CHAIN2D, "--method", "point", "--points", "3,3"],
        "3",
    ),
    Case(
        "coincident-points",
        "coincident points for the point alignment (frame named)",
        lambda t: [
            "rotate",
            npy(t, "c.npy", np.zeros((3, 4, 2))),
            "--method",
            "point",
            "--points",
            "0,1",
        ],
        "frame 0",
    ),
    # ---------------------------------------------------------------- references
    Case(
        "reference-frame-range",
        "reference frame out of range",
        lambda t: ["rotate", CHAIN2D, "--reference", "frame:5000"],
        "5000",
    ),
    Case(
        "reference-atom-count",
        "reference file with another atom count",
        lambda t: ["rotate", CHAIN2D, "--reference", npy(t, "r.npy", np.zeros((5, 2)))],
        "5",
    ),
    Case(
        "reference-nan",
        "reference containing NaN",
        lambda t: ["rotate", CHAIN2D, "--reference", npy(t, "r.npy", np.full((12, 2), np.nan))],
        "NaN",
    ),
    Case(
        "too-few-fit-atoms",
        "fewer fit atoms than Kabsch needs (3D: 3)",
        lambda t: ["rotate", BUTANE_DCD, "-t", BUTANE_PDB, "--fit-select", "name C1 C2"],
        "3",
    ),
    # ---------------------------------------------------------------- frame slices, numbers
    Case(
        "empty-slice",
        "frame slice that selects no frames",
        lambda t: [C, CHAIN2D, "--start", 3000],
        "selects no frames",
    ),
    Case("negative-step", "negative --step", lambda t: [C, CHAIN2D, "--step", -2], "not positive"),
    Case(
        "chunk-zero",
        "--chunk-frames 0",
        lambda t: [C, CHAIN2D, "--chunk-frames", 0],
        "--chunk-frames 0 is not positive",
    ),
    Case("memory-zero", "--memory 0", lambda t: [C, CHAIN2D, "--memory", 0], "not positive"),
    Case(
        "threads-zero",
        "--threads 0",
        lambda t: [C, CHAIN2D, "--threads", 0],
        "--threads 0 is not positive",
    ),
    Case(
        "workers-zero",
        "--workers 0",
        lambda t: [C, CHAIN2D, "--workers", 0],
        "--workers 0 is not positive",
    ),
    Case(
        "negative-masses",
        "negative masses",
        lambda t: [C, CHAIN2D, "--masses", raw(t, "m.txt", b"-1\n" * 12)],
        "negative",
    ),
    Case(
        "zero-total-mass",
        "masses summing to zero",
        lambda t: [C, CHAIN2D, "--masses", raw(t, "m.txt", b"0\n" * 12)],
        "sum to 0",
    ),
    Case(
        "masses-count",
        "masses file with the wrong count",
        lambda t: [C, CHAIN2D, "--masses", raw(t, "m.txt", b"1\n" * 5)],
        "5 masses for 12",
    ),
    Case(
        "rbf-n-one",
        "--rbf-n 1",
        lambda t: ["internal", CHAIN2D, "--transform", "rbf", "--rbf-n", 1],
        "--rbf-n",
    ),
    Case(
        "rbf-range",
        "--rbf-max <= --rbf-min",
        lambda t: ["internal", CHAIN2D, "--transform", "rbf", "--rbf-min", 5, "--rbf-max", 2],
        "--rbf-max",
    ),
    Case(
        "dihedrals-2d",
        "dihedrals on 2D data",
        lambda t: ["internal", CHAIN2D, "--features", "dihedrals"],
        "3D",
    ),
    Case(
        "angles-all-pairs",
        "angles with --pairs all",
        lambda t: ["internal", CHAIN2D, "--pairs", "all", "--features", "angles"],
        "angles",
    ),
    Case(
        "pairs-file-range",
        "pairs file with an index out of range",
        lambda t: ["internal", CHAIN2D, "--pairs", raw(t, "p.txt", b"0 1\n3 40\n")],
        "40",
    ),
    Case(
        "pairs-file-columns",
        "pairs file with 5 columns",
        lambda t: ["internal", CHAIN2D, "--pairs", raw(t, "p.txt", b"0 1 2 3 4\n")],
        "5",
    ),
    Case(
        "pairs-file-text",
        "pairs file with non-integers",
        lambda t: ["internal", CHAIN2D, "--pairs", raw(t, "p.txt", b"0 a\n")],
        "p.txt",
    ),
    Case(
        "array-with-top",
        "--top given for an array input",
        lambda t: [C, CHAIN2D, "-t", PSF],
        "--top was given for array input",
    ),
    Case(
        "mixed-inputs",
        "arrays and trajectories mixed",
        lambda t: [C, CHAIN2D, DCD, "-t", PSF],
        "mixed",
    ),
    # ---------------------------------------------------------------- outputs, cluster
    Case(
        "output-is-folder",
        "output path is a folder",
        lambda t: [C, CHAIN2D, "-o", t],
        "is a folder",
    ),
    Case(
        "output-folder-missing",
        "output folder does not exist",
        lambda t: [C, CHAIN2D, "-o", t / "missing" / "o.h5"],
        "does not exist",
    ),
    Case(
        "output-exists",
        "output exists and no --force (it is kept)",
        lambda t: [C, CHAIN2D, "-o", raw(t, "exists.h5", b"keep")],
        "already exists",
    ),
    Case(
        "scheduler-file-missing",
        "Dask scheduler file that does not exist",
        lambda t: [C, CHAIN2D, "--scheduler-file", t / "sched.json"],
        "scheduler file",
    ),
    Case(
        "scheduler-unreachable",
        "unreachable Dask scheduler (10 s timeout)",
        lambda t: [C, CHAIN2D, "--scheduler", "tcp://127.0.0.1:9"],
        "cannot reach the Dask scheduler",
    ),
    Case(
        "resume-other-parameters",
        "--resume of a partial output made with other options",
        lambda t: _partial_then([C, CHAIN2D, "--method", "geometric"], t),
        "other parameters or inputs",
    ),
    # ---------------------------------------------------------------- usage (Click, exit 2)
    Case(
        "unknown-method",
        "unknown --method (usage error)",
        lambda t: ["rotate", CHAIN2D, "--method", "quaternions"],
        "Invalid value",
        code=2,
    ),
    Case(
        "unknown-option",
        "an option that does not exist (usage error)",
        lambda t: [C, CHAIN2D, "--no-such-option"],
        "No such option",
        code=2,
    ),
    Case(
        "missing-output",
        "no -o/--output (usage error)",
        lambda t: [C, CHAIN2D],
        "Missing option '-o'",
        code=2,
        add_output=False,
    ),
    Case(
        "pbc-without-box",
        "--pbc whole/cluster/nojump on an input without a periodic box",
        lambda t: [C, CHAIN2D, "--pbc", "whole"],
        "needs a periodic box",
    ),
    Case(
        "pbc-without-bonds",
        "--pbc whole or cluster on an input without bonds",
        lambda t: (
            [C, npz(t, "b.npz", arr=GOOD, box=np.array([9.0, 9, 9, 90, 90, 90]))]
            + ["--pbc", "cluster"]
        ),
        "needs bonds",
    ),
    Case(
        "pbc-cluster-too-big",
        "--pbc cluster over a whole solvated system",
        lambda t: [C, XTC, "-t", TPR, "--pbc", "cluster", "--stop", 1],
        "select the complex to keep together",
    ),
    Case(
        "bad-box-option",
        "--box that is not numbers, or of the wrong length",
        lambda t: [C, CHAIN2D, "--box", "9,11,12"],
        "has 3 numbers, a 2D input needs 2",
    ),
    Case(
        "bad-box-array",
        "a box array in the .npz that makes no cell",
        lambda t: [C, npz(t, "c.npz", arr=GOOD, box=np.array([9.0, 9, 9, 10, 10, 170]))],
        "box angles do not make a cell",
    ),
    Case(
        "bonds-out-of-range",
        "--bonds naming a point that does not exist",
        lambda t: [C, CHAIN2D, "--bonds", txt(t, "bonds.txt", "0 1\n1 99\n")],
        "names point 99, outside 0..11",
    ),
    Case(
        "guess-bonds-fails",
        "--guess-bonds on a topology whose atom types have no known radius",
        lambda t: [C, XTC, "-t", GRO, "--guess-bonds", "--stop", 1],
        "--guess-bonds cannot guess bonds",
    ),
    Case(
        "triclinic-zero-edge",
        "a triclinic box with an edge of length zero",
        lambda t: (
            [C, npz(t, "z.npz", arr=GOOD, box=np.array([9.0, 0, 9, 90, 60, 90]))]
            + ["--bonds", "chain"]
        ),
        "edge",
    ),
]


def _partial_then(args, tmp):
    """Leave a partial output of another run at the default output path, then resume."""
    from trajalign.io import open_source
    from trajalign.jobs.center import CenterJob
    from trajalign.pipeline import run

    out = tmp / "out.h5"

    class Stop(CenterJob):
        def process(self, block):
            if block.start > 0:
                raise KeyboardInterrupt
            return super().process(block)

    with pytest.raises(KeyboardInterrupt):
        run(open_source(CHAIN2D), Stop("com"), str(out), chunk_frames=100)
    return [*args, "--chunk-frames", 100, "--resume", "-o", out]


def run_case(case: Case, tmp: Path):
    args = [str(a) for a in case.args(tmp)]
    has_output = "-o" in args
    out = tmp / "out" / "result.h5"
    out.parent.mkdir(exist_ok=True)
    if not has_output and case.add_output:
        args += ["-o", str(out)]
    before = {p: p.stat().st_mtime_ns for p in tmp.rglob("*") if p.is_file()}
    res = invoke(*args)
    return res, out, before


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_catalogue_case(case, tmp_path, monkeypatch):
    from trajalign.executors import DaskExecutor

    # the unreachable scheduler's case waits for the connect timeout: the same code path
    # and message with 1 s instead of the default 10 s
    monkeypatch.setattr(DaskExecutor, "CONNECT_TIMEOUT", 1.0)
    res, out, before = run_case(case, tmp_path)
    assert res.code == case.code, (res.code, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr
    if case.code == 1:
        assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert case.expect in res.stderr, res.stderr
    assert not out.exists()
    # nothing that existed was changed, and no new file is left beside the outputs,
    # except a partial output kept for --resume
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    for p, t in before.items():
        assert after.get(p) == t, f"{p} changed"
    new = [p for p in after if p not in before]
    # MDAnalysis caches XTC frame offsets in hidden .<name>_offsets.{npz,lock} files
    assert all(p.name.endswith(".partial") or "_offsets." in p.name for p in new), new


def test_docs_list_every_case():
    doc = DOC.read_text()
    for case in CASES:
        assert f"`{case.id}`" in doc, (
            f"docs/errors.md lacks {case.id}; run python -m tests.test_catalogue"
        )


def _row_message(case: Case, tmp: Path) -> str:
    res, _, _ = run_case(case, tmp)
    msg = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else ""
    msg = re.sub(r"/\S*/site-packages/MDAnalysisTests/data/", "", msg)
    msg = msg.replace(str(tmp), "TMP").replace(str(ROOT) + "/", "")
    return msg.replace("|", "\\|")


def write_doc() -> None:
    import tempfile

    rows = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as d:
            rows.append(
                f"| `{case.id}` | {case.what} | {case.code} | `{_row_message(case, Path(d))}` |"
            )
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(
        "# Bad input and faults\n\n"
        "Every row is a test in `tests/test_catalogue.py`, run through the real command\n"
        "line: exit status (1 for bad data or a failed run, 2 for Click's usage errors),\n"
        "exactly one line on stderr, no traceback (rerun with `-v` for one), no file at\n"
        "the output path, and an existing output untouched. The messages below are what\n"
        "the commands print (temporary paths shown as TMP). Regenerate this page with\n"
        "`python -m tests.test_catalogue`.\n\n"
        "| case | situation | exit | message |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n"
        + EXTRA_ROWS
        + "\n"
        + xtc_messages()
    )


def xtc_messages() -> str:
    """The native XTC reader's messages, one row per status code of its decoder."""
    from trajalign.io import xtc
    from trajalign.kernels import xtc as kernels

    status = (
        "BAD_MAGIC NATOMS NATOMS_REPEAT PRECISION RANGE SIZE SMALLIDX_START SMALLIDX_CHANGE "
        "BITS_PAST_END RUN_PAST_NATOMS BYTES_PAST_FILE HEADER_PAST_FILE BYTE_COUNT NBYTES "
        "VALUE_RANGE RUN_LENGTH BOX"
    ).split()
    names = {getattr(kernels, name): name for name in status}
    rows = [
        f"| {code} | `{names[code]}` | {text.format(n='N', d='D', nbytes='S')} |"
        for code, text in sorted(xtc.MESSAGES.items())
    ]
    return (
        "The native XTC reader (`trajalign/io/xtc.py`, the default for XTC inputs) names a\n"
        "frame it cannot decode as `FILE: frame K (byte B) is damaged: WHAT (use the K good\n"
        "frames before it with --stop K, check it with gmx check -f FILE, or write it again)`,\n"
        "WHAT one of these, by the decoder's status code (D is the code's detail: an atom,\n"
        "an axis, a count; N the topology's atom count; S the stored byte count). A cut frame reads `is truncated: it\n"
        "ends inside frame K (byte B; the frame needs S bytes, L are left)`, and a file whose\n"
        "first bytes are no XTC frame `is not an XTC file`. With `--xtc-reader mdanalysis`,\n"
        "the messages are those of the rows above marked mdanalysis.\n\n"
        "| code | status | WHAT |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    )


EXTRA_ROWS = """Faults tested elsewhere (same contract):

| case | situation | where |
|---|---|---|
| `ctrl-c`, `sigterm` | Ctrl-C or SIGTERM mid-run: exit 130/143, the target untouched, finished blocks kept in `.<name>.partial` for `--resume` | `tests/test_cli.py::test_interrupt_keeps_target_and_resume_finishes` |
| `sigkill` | SIGKILL mid-run: rerun with `--resume` gives the file of an uninterrupted run | `tests/test_scale.py::test_sigkill_then_resume_equals_uninterrupted` |
| `write-fails` | an I/O error while writing (full disk): `Error: writing the output failed: ...`, no file left | `tests/test_scale.py::test_write_error_leaves_nothing` |
| `worker-dies` | a Dask worker process dies mid-block: Dask retries the block elsewhere; if it keeps dying, `Error: a Dask task failed (KilledWorker ...)`; no partial block is ever written | `tests/test_scale.py::test_worker_death_*` |
| `resume-changed-input` | `--resume` after the input changed (size or modification time) | `tests/test_scale.py::test_resume_after_interrupt_equals_uninterrupted` |
"""


if __name__ == "__main__":
    write_doc()
    print(f"wrote {DOC}")
