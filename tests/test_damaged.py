"""Damaged trajectories (issue 14): never a crash, never a silently shortened trajectory,
always one error line that names the file, the frame and what to do.

Every damaged file is made here from a real MDAnalysisTests trajectory (no committed
binaries): random or zero bytes in the middle, random bytes inside one frame's compressed
data, a file cut short, a repeated block, bytes appended, single header fields.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from MDAnalysisTests.datafiles import (
    DCD,
    GRO,
    NCDF,
    PRM,
    PSF,
    TRJ,
    TRR,
    XTC,
    PDB_multiframe,
    PRMncdf,
)

from trajalign.io import open_source
from trajalign.io.integrity import DamagedFileError

from .conftest import invoke

FORMATS = {
    "dcd": (DCD, PSF),
    "xtc": (XTC, GRO),
    "trr": (TRR, GRO),
    "ncdf": (NCDF, PRMncdf),
    "mdcrd": (TRJ, PRM),
    "pdb": (PDB_multiframe, PDB_multiframe),
}


def damage(data: bytes, how: str) -> bytes:
    """``data`` damaged one way (seeded: the same bytes every run)."""
    n = len(data)
    mid = n // 2
    noise = np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    if how == "random":  # 4000 random bytes in the middle
        return data[:mid] + noise + data[mid + 4000 :]
    if how == "zeros":
        return data[:mid] + bytes(4000) + data[mid + 4000 :]
    if how == "cut":  # cut at 60% (7 bytes on: not on a frame boundary of any format)
        return data[: int(n * 0.6) + 7]
    if how == "payload":  # random bytes inside one frame, its header intact
        at = mid + n // 30
        return data[:at] + noise + data[at + 4000 :]
    if how == "lastbyte":
        return data[:-1]
    if how == "repeat":  # a block written twice
        return data[:mid] + data[mid - 4000 : mid] + data[mid:]
    if how == "appended":
        return data + noise[:100]
    if how == "header":  # one byte of the file's first header flipped
        return data[:8] + bytes([data[8] ^ 0xFF]) + data[9:]
    raise ValueError(how)


def make(tmp: Path, fmt: str, how: str) -> tuple[Path, str]:
    src, top = FORMATS[fmt]
    path = tmp / f"{fmt}_{how}{Path(src).suffix}"
    path.write_bytes(damage(Path(src).read_bytes(), how))
    return path, top


#: the payload damage as the native XTC reader names it: the 4000 random bytes start
#: 55043 bytes into frame 5's compressed stream, and atom 15649 is the first one whose
#: decoded value leaves the frame's stored range [minint, maxint]
PAYLOAD = "frame 5 (byte 825872) is damaged: its compressed coordinates are damaged"
#: the same damage read by MDAnalysis (--xtc-reader mdanalysis): its decoder dies by a
#: signal in the guard's child process
PAYLOAD_MDA = "frame 5 cannot be decoded: the XTC decoder crashed"

# (format, damage) -> a fragment of the error line; every damage each format can show
CASES = {
    ("dcd", "random"): "frame 48 (byte 1925924) is damaged: its record markers",
    ("dcd", "zeros"): "frame 48 (byte 1925924) is damaged",
    ("dcd", "cut"): "is truncated: it ends inside frame 58",
    ("dcd", "payload"): "frame 52 (byte 2086388) is damaged",
    ("dcd", "lastbyte"): "it ends inside frame 97",
    ("dcd", "repeat"): "frame 48 (byte 1925924) is damaged",
    # random, repeat: the changed bytes start at n // 2 = 825858, 12 bytes before the
    # end of frame 4's compressed stream (825870; frame 5 starts at 825872): frame 4's
    # last atoms are damaged, which only a full decode sees (test_frame_4_really_is_damaged)
    ("xtc", "random"): "frame 4 (byte 660708) is damaged: its compressed coordinates",
    ("xtc", "zeros"): "frame 5 (byte 825872) is damaged",
    ("xtc", "cut"): "is truncated: it ends inside frame 5",
    ("xtc", "payload"): PAYLOAD + ": atom 15649 decodes outside the frame's range",
    ("xtc", "lastbyte"): "it ends inside frame 9",
    ("xtc", "repeat"): "frame 4 (byte 660708) is damaged: its compressed coordinates",
    ("xtc", "appended"): "frame 10 (byte 1651716) is damaged",
    ("trr", "random"): "frame 5 (byte 5722320) is damaged: its header does not start",
    ("trr", "zeros"): "frame 5 (byte 5722320) is damaged",
    ("trr", "cut"): "is truncated: it ends inside frame 6 (byte 6866784, 7 bytes left)",
    ("trr", "payload"): "frame 5 holds NaN, inf or coordinates beyond",
    ("trr", "lastbyte"): "it ends inside frame 9",
    ("trr", "header"): "frame 0 (byte 0) is damaged: its header does not say GMX_trn_file",
    ("ncdf", "header"): "its NetCDF header cannot be read",
    ("mdcrd", "header"): "byte 8 (line 1) is not text",
    ("trr", "appended"): "frame 10 (byte 11444640) is damaged",
    ("ncdf", "random"): "frame 14 holds the box",
    ("ncdf", "zeros"): "frame 14 has no periodic box, frame 0 has one",
    ("ncdf", "cut"): "its header lists 30 frames (960316 bytes), the file has 576196 bytes",
    ("ncdf", "lastbyte"): "enough for 29",
    ("ncdf", "appended"): "holds 100 bytes more than the 30 frames its header lists need",
    ("mdcrd", "random"): "its frames cannot be counted: 'utf-8' codec",
    ("mdcrd", "zeros"): "frame 5 is damaged: line",
    ("mdcrd", "cut"): "is truncated: it ends inside frame 6",
    ("mdcrd", "repeat"): "frame 5 is damaged: line",
    ("pdb", "random"): "frame 11 cannot be read",
    ("pdb", "cut"): "frame 14 cannot be read",
    ("pdb", "repeat"): "frame 11 cannot be read",
}


def assert_one_error(res, path: Path, out: Path, fragment: str) -> None:
    lines = res.stderr.strip().splitlines()
    assert res.code == 1, res.stderr
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: "), res.stderr
    assert "Traceback" not in res.stderr
    assert fragment in lines[0], lines[0]
    leftovers = [
        p.name for p in out.parent.iterdir() if p.name.startswith((out.name, "." + out.name))
    ]
    assert not leftovers


@pytest.mark.parametrize("fmt,how", sorted(CASES), ids=[f"{f}-{h}" for f, h in sorted(CASES)])
def test_damaged_file_is_one_error_line(tmp_path, fmt, how):
    path, top = make(tmp_path, fmt, how)
    out = tmp_path / "out.h5"
    res = invoke("center", path, "-t", top, "--method", "geometric", "-o", out)
    assert_one_error(res, path, out, CASES[fmt, how])


def test_stop_from_the_message_uses_the_good_frames(tmp_path):
    """The hint's --stop K reads the K good frames of a damaged file, exit 0."""
    for fmt, how, k in (("xtc", "payload", 5), ("trr", "cut", 6), ("dcd", "random", 48)):
        path, top = make(tmp_path, fmt, how)
        res = invoke("center", path, "-t", top, "-o", tmp_path / "o.h5", "--force")
        assert f"--stop {k}" in res.stderr, res.stderr
        res = invoke("center", path, "-t", top, "--stop", k, "-o", tmp_path / "o.h5", "--force")
        assert res.code == 0, res.stderr
        with open_source(path, top=top, stop=k) as src:
            assert src.n_frames == k


@pytest.mark.parametrize("reader,says", [("native", PAYLOAD), ("mdanalysis", PAYLOAD_MDA)])
def test_decoder_crash_is_an_error_line_in_a_real_process(tmp_path, reader, says):
    """Damaged compressed data kill MDAnalysis' XTC decoder (SIGFPE or SIGSEGV): with
    ``--xtc-reader mdanalysis`` its guard child dies and trajalign exits 1 with one
    line; the native reader returns a status code. Through the console script."""
    path, top = make(tmp_path, "xtc", "payload")
    out = tmp_path / "o.h5"
    cmd = [os.path.join(os.path.dirname(sys.executable), "trajalign")]
    res = subprocess.run(
        [*cmd, "rotate", str(path), "-t", top, "-o", str(out), "--xtc-reader", reader],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1, res.stderr
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"Error: {path}: {says}")
    assert "--stop 5" in lines[0] and "gmx check" in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".o.h5*"))


def test_mdanalysis_itself_crashes_on_that_file(tmp_path):
    """The oracle: the payload damage is one that kills a process reading it with
    MDAnalysis (so the test above proves the guard, not a harmless file)."""
    path, top = make(tmp_path, "xtc", "payload")
    script = (
        "import MDAnalysis as mda, sys\n"
        "u = mda.Universe(sys.argv[1], sys.argv[2])\n"
        "for ts in u.trajectory: pass\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script, top, str(path)], capture_output=True, timeout=120
    )
    assert res.returncode < 0  # killed by a signal


@pytest.mark.parametrize(
    "field,at",
    [("magic", 0), ("natoms", 4), ("box", 16), ("precision", 56), ("smallidx", 84), ("bytes", 88)],
)
def test_each_xtc_header_field_is_checked(tmp_path, field, at):
    """A broken field of frame 3's header is named before any decoder sees it."""
    from MDAnalysis.lib.formats.libmdaxdr import XTCFile

    with XTCFile(XTC) as f:
        offsets = f.offsets
    data = bytearray(Path(XTC).read_bytes())
    pos = int(offsets[3]) + at
    data[pos : pos + 4] = {
        "magic": (1993).to_bytes(4, "big"),
        "natoms": (12).to_bytes(4, "big"),
        "box": b"\x7f\xc0\x00\x00",  # NaN
        "precision": b"\xbf\x80\x00\x00",  # -1.0
        "smallidx": (200).to_bytes(4, "big"),
        "bytes": (16).to_bytes(4, "big"),
    }[field]
    path = tmp_path / f"{field}.xtc"
    path.write_bytes(bytes(data))
    with pytest.raises(
        DamagedFileError, match=f"frame 3 \\(byte {int(offsets[3])}\\)|frame 4 "
    ) as exc:
        open_source(path, top=GRO)
    assert exc.value.good in (3, 4) and exc.value.path == str(path)


def test_several_files_name_the_damaged_one_and_count_the_frames_before(tmp_path):
    """Damage in the second of two files: that file is named, --stop counts both."""
    good = tmp_path / "a.xtc"
    good.write_bytes(Path(XTC).read_bytes())
    bad, top = make(tmp_path, "xtc", "payload")
    out = tmp_path / "o.h5"
    res = invoke("center", good, bad, "-t", top, "-o", out)
    assert_one_error(res, bad, out, PAYLOAD)
    assert "--stop 15" in res.stderr
    cut, _ = make(tmp_path, "trr", "cut")
    res = invoke("center", TRR, cut, "-t", top, "-o", out)
    assert_one_error(res, cut, out, "it ends inside frame 6")
    assert "--stop 16" in res.stderr


def test_info_check_reports_each_file_and_writes_nothing(tmp_path):
    good = tmp_path / "good.xtc"
    good.write_bytes(Path(XTC).read_bytes())
    crash, top = make(tmp_path, "xtc", "payload")
    cut, _ = make(tmp_path, "xtc", "cut")
    before = sorted(p.name for p in tmp_path.iterdir())
    res = invoke("info", good, crash, cut, "-t", top, "--check")
    assert res.code == 1
    rows = [line for line in res.stdout.splitlines() if line.startswith("check")]
    assert len(rows) == 3
    assert rows[0].endswith(f"{good}: 10 frames, all readable")
    assert f"{crash}: {PAYLOAD}" in rows[1] and "--stop 15" in rows[1]
    assert f"{cut}: is truncated: it ends inside frame 5" in rows[2]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {crash}: frame 5")
    assert "1 more damaged file(s) listed above" in lines[0]
    after = sorted(p.name for p in tmp_path.iterdir() if "_offsets." not in p.name)
    assert after == before
    res = invoke("info", good, "-t", top, "--check", "--json")
    assert res.code == 0
    import json

    facts = json.loads(res.stdout)
    assert facts["check"] == [{"path": str(good), "ok": True, "frames": 10, "error": None}]


def test_info_without_check_refuses_a_damaged_file(tmp_path):
    cut, top = make(tmp_path, "trr", "cut")
    res = invoke("info", cut, "-t", top)
    assert res.code == 1 and res.stderr.startswith(f"Error: {cut}: is truncated")


def test_guarded_reading_equals_reading_in_process(tmp_path, monkeypatch):
    """The child-process reader returns the frames MDAnalysis reads here, for slices,
    selections with fit atoms, and blocks read out of order (the guess is wrong)."""
    kw = dict(top=GRO, select="name CA", aux_select="backbone", start=1, step=2)
    kw["xtc_reader"] = "mdanalysis"
    with open_source(XTC, **kw) as guarded:
        assert guarded._guard is not None
        got = [guarded.read(s, min(s + 2, guarded.n_frames)) for s in (0, 2, 4, 2, 0)]
    monkeypatch.setenv("TRAJALIGN_GUARD", "0")
    with open_source(XTC, **kw) as plain:
        assert plain._guard is None
        want = [plain.read(s, min(s + 2, plain.n_frames)) for s in (0, 2, 4, 2, 0)]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.coords, w.coords)
        np.testing.assert_array_equal(g.aux, w.aux)
        np.testing.assert_array_equal(g.box, w.box)
        np.testing.assert_array_equal(g.times, w.times)
        np.testing.assert_array_equal(g.frames, w.frames)


def test_closing_a_source_ends_its_reader_process():
    src = open_source(XTC, top=GRO, xtc_reader="mdanalysis")
    pid = src._guard.pid
    src.read(0, 2)
    src.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left


def test_resume_on_a_damaged_file_leaves_nothing(tmp_path):
    path, top = make(tmp_path, "xtc", "payload")
    out = tmp_path / "o.h5"
    res = invoke("center", path, "-t", top, "--chunk-frames", 2, "--resume", "-o", out)
    assert_one_error(res, path, out, PAYLOAD)


def test_workers_report_the_damaged_file(tmp_path):
    """A block read on a Dask worker fails the same way, with the same line."""
    path, top = make(tmp_path, "xtc", "payload")
    out = tmp_path / "o.h5"
    res = invoke("center", path, "-t", top, "--chunk-frames", 1, "--workers", 1, "-o", out)
    assert_one_error(res, path, out, PAYLOAD)


def test_a_reader_killed_from_outside_is_not_called_damage():
    """The out-of-memory killer or a signal to the process group is no damage."""
    import signal

    with open_source(XTC, top=GRO, xtc_reader="mdanalysis") as src:
        os.kill(src._guard.pid, signal.SIGKILL)
        with pytest.raises(Exception, match="was killed \\(SIGKILL\\)") as exc:
            src.read(0, 2)
        assert not isinstance(exc.value, DamagedFileError)
        np.testing.assert_array_equal(src.read(0, 2).frames, [0, 1])  # a new reader


@pytest.mark.parametrize("reader,says", [("native", PAYLOAD), ("mdanalysis", PAYLOAD_MDA)])
def test_after_a_crash_the_good_frames_still_read(tmp_path, reader, says):
    path, top = make(tmp_path, "xtc", "payload")
    with open_source(path, top=top, xtc_reader=reader) as src:
        assert src.read(0, 5).coords.shape[0] == 5
        with pytest.raises(DamagedFileError, match=re.escape(says)) as exc:
            src.read(5, 7)
        assert exc.value.good == 5
        np.testing.assert_array_equal(src.read(2, 4).frames, [2, 3])


def test_guarded_blocks_reuse_their_shared_memory_once_dropped():
    """A block's arrays view shared memory the child wrote (no copy): a slot is reused
    only after the block is dropped, so memory stays at a few blocks."""
    with open_source(XTC, top=GRO, select="name CA", xtc_reader="mdanalysis") as src:
        kept = src.read(0, 2).coords.copy()
        held = src.read(0, 2)
        for s in range(0, 10, 2):
            src.read(s, s + 2)  # dropped at once
        np.testing.assert_array_equal(held.coords, kept)  # not overwritten while held
        assert len(src._guard._slots) <= 4


@pytest.mark.parametrize(
    "args",
    [
        ["rotate"],
        ["internal", "--pairs", "chain"],
        ["diagnose", "--methods", "kabsch"],
        ["check", "--method", "kabsch"],
        ["info", "--check"],
    ],
    ids=lambda a: a[0],
)
def test_every_command_names_the_damaged_file(tmp_path, args):
    """The CA atoms and the last atom: the native reader decodes every frame to its
    end, through the damage (atom 15649 of frame 5)."""
    path, top = make(tmp_path, "xtc", "payload")
    out = tmp_path / "o.h5"
    extra = ["-o", out] if args[0] in ("rotate", "internal") else []
    res = invoke(args[0], path, "-t", top, "-s", "name CA or index 47680", *args[1:], *extra)
    assert_one_error(res, path, out, PAYLOAD)


def test_a_selection_before_the_damage_reads_the_intact_atoms(tmp_path):
    """The decoder is sequential within a frame: the CA atoms (indices below 3341) of
    frame 5 come from bits before the damaged bytes, so the native reader returns the
    undamaged file's values for them, and a run on them succeeds (MDAnalysis decodes
    every atom, and dies)."""
    path, top = make(tmp_path, "xtc", "payload")
    with (
        open_source(path, top=top, select="name CA") as bad,
        open_source(XTC, top=top, select="name CA") as good,
    ):
        assert bad.atom_indices.max() < 15649
        np.testing.assert_array_equal(bad.read(0, 10).coords, good.read(0, 10).coords)


def test_an_empty_trajectory_file(tmp_path):
    path = tmp_path / "empty.xtc"
    path.write_bytes(b"")
    res = invoke("center", path, "-t", GRO, "-o", tmp_path / "o.h5")
    assert_one_error(res, path, tmp_path / "o.h5", "")
    assert "is empty (0 bytes)" in res.stderr


def test_a_forked_copy_does_not_end_the_reader_process():
    """multiprocessing's fork copies open sources; closing a copy there leaves this
    process's reader alone."""
    with open_source(XTC, top=GRO, xtc_reader="mdanalysis") as src:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            src.close()
            os._exit(0)
        os.waitpid(pid, 0)
        np.testing.assert_array_equal(src.read(0, 2).frames, [0, 1])


def test_the_error_crosses_processes_whole():
    """Workers send errors back pickled: the fields, and a message changed on the way
    (a Dask task names its worker), survive."""
    import pickle

    err = DamagedFileError("/x/a.xtc", "frame 5 cannot be decoded", 5, "gmx check -f")
    err.message = f"on worker w1: {err.message}"
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) and back.good == 5 and back.path == "/x/a.xtc"


@pytest.mark.parametrize(
    "at,value,says",
    [
        (0, (1995).to_bytes(4, "big"), "does not start with the TRR magic number"),
        (12, b"GMX_xxx_file", "does not say GMX_trn_file"),
        (32, (40).to_bytes(4, "big"), "sizes do not fit its atom count"),
        (64, (12).to_bytes(4, "big"), "does not say 47681 atoms"),
    ],
    ids=["magic", "version", "box-size", "natoms"],
)
def test_each_trr_header_field_is_checked(tmp_path, at, value, says):
    from MDAnalysis.lib.formats.libmdaxdr import TRRFile

    with TRRFile(TRR) as f:
        offsets = f.offsets
    data = bytearray(Path(TRR).read_bytes())
    pos = int(offsets[3]) + at
    data[pos : pos + len(value)] = value
    path = tmp_path / "field.trr"
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedFileError, match=f"frame 3 \\(byte {int(offsets[3])}\\)") as exc:
        open_source(path, top=GRO)
    assert says in str(exc.value) and exc.value.good == 3


@pytest.mark.parametrize("how", ["random", "repeat"])
def test_frame_4_really_is_damaged(tmp_path, how):
    """Why the native reader names frame 4 for these damages: the changed bytes start
    inside frame 4's compressed stream, and MDAnalysis (in a child process: it may die)
    decodes that frame's last atoms to other values than the undamaged file's."""
    from MDAnalysis.lib.formats.libmdaxdr import XTCFile

    with XTCFile(XTC) as f:
        offsets = f.offsets
    data = Path(XTC).read_bytes()
    nbytes = int.from_bytes(data[offsets[4] + 88 : offsets[4] + 92], "big")
    changed = len(data) // 2  # where damage() starts changing bytes
    assert offsets[4] + 92 <= changed < offsets[4] + 92 + nbytes <= offsets[5]
    path, _ = make(tmp_path, "xtc", how)
    script = (
        "import sys, numpy as np\n"
        "from MDAnalysis.lib.formats.libmdaxdr import XTCFile\n"
        "def frame4(p):\n"
        "    with XTCFile(p) as f:\n"
        "        return [f.read() for _ in range(5)][4]\n"
        "a, b = frame4(sys.argv[1]), frame4(sys.argv[2])\n"
        "assert a.step == b.step == 200000\n"
        "print('same' if np.array_equal(a.x, b.x) else 'differ')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script, XTC, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode < 0 or res.stdout.strip() == "differ", (res.stdout, res.stderr)


_NO_FORK = """
import os, sys
def refuse(*a, **k):
    sys.stderr.write("FORKED\\n")
    raise OSError("no fork in this test")
os.fork = os.forkpty = refuse
from trajalign.cli import main
sys.argv = ["trajalign", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("how", ["payload", "random", "zeros", "cut", "repeat", "lastbyte"])
def test_native_reader_forks_no_child_and_dies_by_no_signal(tmp_path, how):
    """The native XTC reader on a damaged file: no process is forked (os.fork refuses,
    and says so), the run ends with exit status 1 and one error line, never a signal."""
    path, top = make(tmp_path, "xtc", how)
    out = tmp_path / "o.h5"
    env = dict(os.environ, TRAJALIGN_XTC_READER="native")
    res = subprocess.run(
        [sys.executable, "-c", _NO_FORK, "rotate", str(path), "-t", top, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert "FORKED" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: "), res.stderr
    assert not out.exists()
