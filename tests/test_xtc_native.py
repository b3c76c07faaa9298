"""trajalign's own XTC decoder against MDAnalysis' (the oracle), and on damaged files.

Bit-equality is checked on the float32 values and on their raw bits (``view(uint32)``):
every XTC of MDAnalysisTests, files MDAnalysis' writer makes at other precisions (the
large-integer path, and the path whose triplets take more than 64 bits), partial decodes
cut at every atom of the first runs, and random coordinates (hypothesis). Damaged files:
every status code reached by a constructed edit, truncation at every kind of cut, and
random bytes in the compressed data decoded in a child process (no signal, no hang, only
status codes and ``DamagedFileError``).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trajalign.errors import ParameterError
from trajalign.io import xtc
from trajalign.io.integrity import DamagedFileError
from trajalign.kernels import xtc as K

mdt = pytest.importorskip("MDAnalysisTests.datafiles")
from MDAnalysis.coordinates.XTC import XTCReader, XTCWriter  # noqa: E402
from MDAnalysis.lib.formats.libmdaxdr import XTCFile  # noqa: E402

# every XTC shipped by MDAnalysisTests: 5, 10, 100, 19385, 33876, 43480, 47681 atoms
DATA_XTC = [
    "COORDINATES_XTC",
    "XTC_multi_frame",
    "RANDOM_WALK",
    "XTC_sub_sol",
    "AUX_EDR_XTC",
    "XTC_MEMPROT",
    "XTC",
]
CODES = {
    name: getattr(K, name)
    for name in (
        "OK BAD_MAGIC NATOMS NATOMS_REPEAT PRECISION RANGE SIZE SMALLIDX_START "
        "SMALLIDX_CHANGE BITS_PAST_END RUN_PAST_NATOMS BYTES_PAST_FILE HEADER_PAST_FILE "
        "BYTE_COUNT NBYTES VALUE_RANGE RUN_LENGTH BOX"
    ).split()
}


def bits(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def assert_bit_equal(a, b) -> None:
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.dtype == np.float32 and b.dtype == np.float32
    assert np.array_equal(a, b, equal_nan=True)
    assert np.array_equal(bits(a), bits(b))


def mda_frames(path: str):
    """MDAnalysis' positions, dimensions (zeros where it reports None), times, steps."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = XTCReader(path)
        pos, dims, times, steps = [], [], [], []
        for ts in r:
            pos.append(ts.positions.copy())
            d = ts.dimensions
            dims.append(np.zeros(6, np.float32) if d is None else np.array(d, np.float32))
            times.append(ts.time)
            steps.append(ts.data["step"])
        offsets = np.asarray(r._xdr.offsets, np.int64)
        r.close()
    return np.array(pos), np.array(dims), np.array(times), np.array(steps), offsets


def stored_boxes(path: str) -> np.ndarray:
    """The nm box vectors as MDAnalysis' low-level reader returns them."""
    f = XTCFile(path)
    boxes = np.array([fr.box for fr in f])
    f.close()
    return boxes


def check_file(path: str) -> xtc.XTCIndex:
    """Every frame, every atom, box, time and step of ``path`` equal to MDAnalysis'."""
    pos, dims, times, steps, offsets = mda_frames(path)
    ix = xtc.build_index(path)
    assert ix.fault is None and ix.n_frames == len(pos)
    assert np.array_equal(ix.offsets, offsets)
    assert np.array_equal(ix.times, times) and np.array_equal(ix.steps, steps)
    b = xtc.XTCReader(ix).read(np.arange(ix.n_frames))
    assert_bit_equal(b.coords, pos)
    assert_bit_equal(b.dimensions(), dims)
    nm = stored_boxes(path)
    assert_bit_equal(b.boxes_nm, nm)
    assert_bit_equal(b.boxes, nm * np.float32(10))
    assert np.array_equal(b.times, times) and b.times.dtype == np.float64
    assert np.array_equal(b.steps, steps)
    return ix


@pytest.mark.parametrize("name", DATA_XTC)
def test_every_mdanalysistests_xtc_is_bit_equal(name):
    path = getattr(mdt, name)
    ix = check_file(path)
    # a full decode also checks that each stream ends at its stored byte count
    assert xtc.XTCReader(ix).verify() is None


def header(path: str, frame: int = 0) -> dict:
    """Fields of one frame header, read with struct (an independent parse)."""
    import struct

    ix = xtc.build_index(path)
    with open(path, "rb") as fh:
        fh.seek(int(ix.offsets[frame]))
        raw = fh.read(92)
    lo = struct.unpack(">3i", raw[60:72])
    hi = struct.unpack(">3i", raw[72:84])
    return {
        "precision": struct.unpack(">f", raw[56:60])[0],
        "sizes": [h - m + 1 for h, m in zip(hi, lo, strict=True)],
        "smallidx": struct.unpack(">i", raw[84:88])[0],
    }


@pytest.fixture(scope="module")
def adk_positions():
    pos, dims, times, steps, _ = mda_frames(mdt.XTC)
    return pos[:3], dims[:3]


def write_xtc(path, positions, dims, precision, decimals: bool = True) -> None:
    """Write frames with MDAnalysis: its XTCWriter (``precision`` in decimal places) or
    its low-level XTCFile (``precision`` the factor itself)."""
    if decimals:
        import MDAnalysis as mda
        from MDAnalysis.coordinates.memory import MemoryReader

        u = mda.Universe.empty(positions.shape[1], trajectory=False)
        u.load_new(np.asarray(positions, np.float32), format=MemoryReader, dimensions=dims, dt=2.5)
        with XTCWriter(str(path), positions.shape[1], precision=precision) as w:
            for _ in u.trajectory:
                w.write(u)
        return
    f = XTCFile(str(path), "w")
    box = np.diag([8.0, 7.0, 6.0]).astype(np.float32)
    for k, x in enumerate(positions):
        f.write(np.asarray(x, np.float32) / 10, box, k * 7 - 3, 0.1 * k, float(precision))
    f.close()


@pytest.mark.parametrize(
    "precision, decimals, path_kind",
    [
        (1, True, "normal"),
        (2, True, "normal"),
        (4.5, True, "normal"),
        (5.5, True, "normal"),  # a big triplet of exactly 64 bits
        (6, True, "wide"),  # sizes <= 2^24 but their product needs 69 bits
        (7, True, "large"),  # a size above 2^24: three fields per big atom; small
        (7.3, True, "large"),  # triplets of 60-64 bits and more (smallidx from 60, 63)
        (12345.678, False, "normal"),
        (333.0, False, "normal"),
    ],
)
def test_other_precisions_are_bit_equal(tmp_path, adk_positions, precision, decimals, path_kind):
    pos, dims = adk_positions
    path = tmp_path / "p.xtc"
    write_xtc(path, pos, dims, precision, decimals)
    h = header(str(path))
    big = max(h["sizes"]) > 0xFFFFFF
    wide = not big and int(np.prod(h["sizes"], dtype=object)).bit_length() > 64
    assert {"large": big, "wide": wide, "normal": not (big or wide)}[path_kind]
    check_file(str(path))


def full_and_index(path):
    ix = xtc.build_index(path)
    return ix, xtc.XTCReader(ix).read(np.arange(min(ix.n_frames, 2))).coords


@pytest.mark.parametrize("name", ["XTC", "XTC_sub_sol", "RANDOM_WALK"])
def test_partial_decodes_equal_the_full_one(name):
    """Cut at every atom of the first runs (protein start, first waters), at random
    atoms, and at the last atoms: the prefix is the full decode's, bit for bit."""
    path = getattr(mdt, name)
    ix, full = full_and_index(path)
    n = ix.natoms
    rng = np.random.default_rng(7)
    cuts = set(range(min(n, 200)))
    solvent = 3341 if n == 47681 else n // 2  # adk's protein ends at atom 3340
    cuts |= set(range(solvent - 20, min(n, solvent + 60)))
    cuts |= set(rng.integers(0, n, 40).tolist()) | set(range(max(0, n - 12), n))
    reader = xtc.XTCReader(ix)
    frames = np.arange(full.shape[0])
    for last in sorted(cuts):
        part = reader.read(frames, last).coords
        assert part.shape == (frames.size, last + 1, 3)
        assert np.array_equal(bits(part), bits(full[:, : last + 1])), last


def test_partial_decode_reads_a_prefix_of_the_stream():
    """A decode of the protein stops early: the stream past the protein's bytes can be
    garbage and the partial decode is unchanged (the full one fails)."""
    path = mdt.XTC
    ix, full = full_and_index(path)
    data = np.fromfile(path, np.uint8)
    off = int(ix.offsets[0])
    nbytes = int(data[off + 88 : off + 92].view(">i4")[0])
    data[off + 92 + nbytes // 2 : off + 92 + nbytes] = 0xFF  # the solvent's half
    out = np.empty((3341, 3), np.float32)
    box = np.empty((3, 3), np.float32)
    s, _, _, _ = K.decode_frame(frozen(data), off, ix.natoms, out, box, scratch())
    assert s == K.OK and np.array_equal(bits(out), bits(full[0, :3341]))
    out = np.empty((ix.natoms, 3), np.float32)
    s, _, _, _ = K.decode_frame(frozen(data), off, ix.natoms, out, box, scratch())
    assert s != K.OK


def test_block_of_frames_in_any_order_with_repeats():
    ix, full = full_and_index(mdt.XTC)
    ix = xtc.build_index(mdt.XTC)
    everything = xtc.XTCReader(ix).read(np.arange(ix.n_frames)).coords
    frames = np.array([9, 0, 3, 3, 7])
    b = xtc.read_block(ix, frames, 5000)
    assert np.array_equal(bits(b[0]), bits(everything[frames, :5001]))
    assert b[1].shape == (5, 3, 3) and np.array_equal(b[2], ix.times[frames])
    assert np.array_equal(b[3], ix.steps[frames])


@st.composite
def trajectories(draw):
    n = draw(st.integers(1, 60))
    frames = draw(st.integers(1, 3))
    spread = draw(st.sampled_from([0.05, 0.3, 2.0, 20.0]))  # small steps make runs
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    start = rng.uniform(-300, 300, 3)
    steps = rng.normal(0.0, spread, (frames, n, 3))
    x = (start + np.cumsum(steps, axis=1)).astype(np.float32)
    return x, draw(st.sampled_from([1, 2, 3, 4]))


@settings(deadline=None, max_examples=40)
@given(trajectories())
def test_random_coordinates_written_by_mdanalysis_read_back_bit_equal(tmp_path_factory, traj):
    x, precision = traj
    path = tmp_path_factory.mktemp("h") / "r.xtc"
    dims = np.tile(np.array([70.0, 80.0, 90.0, 90.0, 90.0, 90.0], np.float32), (x.shape[0], 1))
    write_xtc(path, x, dims, precision)
    pos, mdims, times, steps, _ = mda_frames(str(path))
    ix = xtc.build_index(str(path))
    b = xtc.XTCReader(ix).read(np.arange(ix.n_frames))
    assert_bit_equal(b.coords, pos)
    assert_bit_equal(b.dimensions(), mdims)
    assert np.array_equal(b.times, times) and np.array_equal(b.steps, steps)
    assert xtc.XTCReader(ix).verify() is None
    last = x.shape[1] // 2
    assert np.array_equal(bits(xtc.read_block(ix, [0], last)[0]), bits(pos[:1, : last + 1]))


# ------------------------------------------------------------------- damaged data


def scratch() -> np.ndarray:
    """The header scratch ``decode_frame`` takes from its caller."""
    return np.empty(K.H_LEN, np.int64)


def frozen(data: np.ndarray) -> np.ndarray:
    """A read-only view of file bytes, as the reader hands them to the decoder (a
    read-only memory map): Numba compiles the decoder again for writable arrays."""
    view = data.view()
    view.flags.writeable = False
    return view


def frame_bytes(name="XTC_sub_sol"):
    path = getattr(mdt, name)
    ix = xtc.build_index(path)
    return path, ix, np.fromfile(path, np.uint8)


def decode_status(data, off, natoms, n_out=None):
    out = np.empty((natoms if n_out is None else n_out, 3), np.float32)
    box = np.empty((3, 3), np.float32)
    return K.decode_frame(frozen(data), off, natoms, out, box, scratch())[:2]


def put(data, at, fmt, value):
    data[at : at + 4] = np.frombuffer(np.array([value], dtype=fmt).tobytes(), np.uint8)


@pytest.mark.parametrize(
    "edit, code",
    [
        ((0, ">i4", 1996), "BAD_MAGIC"),
        ((4, ">i4", 19384), "NATOMS"),
        ((52, ">i4", 19384), "NATOMS_REPEAT"),
        ((56, ">f4", -1.0), "PRECISION"),
        ((56, ">f4", np.nan), "PRECISION"),
        ((56, ">f4", np.inf), "PRECISION"),
        ((56, ">f4", 0.0), "PRECISION"),
        ((72, ">i4", -(2**31)), "RANGE"),
        ((60, ">i4", -(2**31)), "SIZE"),
        ((84, ">i4", 8), "SMALLIDX_START"),
        ((84, ">i4", 73), "SMALLIDX_START"),
        ((84, ">i4", -5), "SMALLIDX_START"),
        ((88, ">i4", 0), "NBYTES"),
        ((88, ">i4", -4), "NBYTES"),
        ((88, ">i4", 2**31 - 1), "BYTES_PAST_FILE"),
        ((12, ">f4", np.nan), "BOX"),
        ((16, ">f4", np.inf), "BOX"),
        ((32, ">f4", -2.0), "BOX"),
        ((40, ">f4", 2e6), "BOX"),
    ],
)
def test_each_header_fault_has_its_code(edit, code):
    path, ix, data = frame_bytes()
    at, fmt, value = edit
    off = int(ix.offsets[1])
    put(data, off + at, fmt, value)
    s, _ = decode_status(data, off, ix.natoms)
    assert s == CODES[code]
    err = xtc.XTCReader(ix).frame_error(1, s, 0)
    assert isinstance(err, DamagedFileError) and "\n" not in str(err)
    assert path in str(err) and "--stop 1" in str(err)


def test_stream_faults_have_their_codes():
    path, ix, data = frame_bytes()
    off = int(ix.offsets[0])
    nbytes = int(data[off + 88 : off + 92].view(">i4")[0])
    # a longer stored count than the stream uses (the bytes are there)
    d = data.copy()
    put(d, off + 88, ">i4", nbytes - (nbytes % 4) + 4 if nbytes % 4 else nbytes + 4)
    assert decode_status(d, off, ix.natoms)[0] == K.BYTE_COUNT
    # a shorter one: the stream runs out
    d = data.copy()
    put(d, off + 88, ">i4", nbytes // 2)
    s, detail = decode_status(d, off, ix.natoms)
    assert s == K.BITS_PAST_END and 0 < detail < ix.natoms
    # fewer atoms than the stream holds: a run crosses the end, or bytes are left over
    seen = set()
    for n in range(ix.natoms - 400, ix.natoms - 370):
        d = data.copy()
        put(d, off + 4, ">i4", n)
        put(d, off + 52, ">i4", n)
        seen.add(decode_status(d, off, n)[0])
    assert seen == {K.RUN_PAST_NATOMS, K.BYTE_COUNT}
    # a run code above 26: set the first flag and its 5 bits to 1
    d = data.copy()
    h = header(path)
    bitsize = int(np.prod(h["sizes"], dtype=object)).bit_length()
    start = 8 * (off + 92) + bitsize
    for b in range(start, start + 6):
        d[b >> 3] |= np.uint8(0x80 >> (b & 7))
    assert decode_status(d, off, ix.natoms)[0] == K.RUN_LENGTH


def test_every_code_has_a_message():
    for name, code in CODES.items():
        if code != K.OK:
            assert code in xtc.MESSAGES, name
    err = xtc.frame_error("a.xtc", 3, 1000, K.BYTES_PAST_FILE, 500, 10, 1200)
    assert "is truncated: it ends inside frame 3" in str(err) and "--stop 3" in str(err)
    assert err.good == 3 and err.tool and "gmx check" in str(err)
    err = xtc.frame_error("a.xtc", 2, 80, K.BYTE_COUNT, 99, 10, 1200, 98)
    assert "uses 99 bytes, not the 98 stored" in str(err)


@pytest.mark.parametrize("name", ["XTC_multi_frame", "XTC_sub_sol"])
def test_truncated_files_keep_their_good_frames(tmp_path, name):
    path = getattr(mdt, name)
    ix = xtc.build_index(path)
    raw = open(path, "rb").read()
    ends = list(ix.offsets[1:]) + [len(raw)]
    cuts = {int(ix.offsets[-1]) + c for c in (1, 10, 55, 56, 60, 91, 92, 100)}
    cuts |= {int(ends[0]) - 1, int(ends[-1]) - 1, int(ix.offsets[1]) + 3}
    for cut in sorted(c for c in cuts if c < len(raw)):
        p = tmp_path / "cut.xtc"
        p.write_bytes(raw[:cut])
        cut_ix = xtc.build_index(str(p), ix.natoms)
        k = int(np.searchsorted(ix.offsets, cut, side="right")) - 1  # the frame it cuts
        assert cut_ix.n_frames == k and cut_ix.fault is not None and cut_ix.fault.frame == k
        err = cut_ix.error()
        assert f"is truncated: it ends inside frame {k}" in str(err)
        assert (f"--stop {k}" in str(err)) == (k > 0)
        reader = xtc.XTCReader(cut_ix)
        if k:
            assert reader.verify() is not None  # the fault, after the good frames
            got = reader.read(np.arange(k)).coords
            assert np.array_equal(bits(got), bits(xtc.XTCReader(ix).read(np.arange(k)).coords))
        with pytest.raises(DamagedFileError, match="truncated"):
            reader.read([k])


def test_flipped_magic_and_a_wrong_topology(tmp_path):
    path = mdt.XTC_multi_frame
    ix = xtc.build_index(path)
    raw = bytearray(open(path, "rb").read())
    raw[int(ix.offsets[4]) + 3] ^= 0x01
    p = tmp_path / "m.xtc"
    p.write_bytes(bytes(raw))
    bad = xtc.build_index(str(p))
    assert bad.n_frames == 4 and bad.fault.code == K.BAD_MAGIC and bad.fault.frame == 4
    assert f"frame 4 (byte {int(ix.offsets[4])}) is damaged" in str(bad.error())
    assert "--stop 4" in str(bad.error())
    junk = tmp_path / "junk.xtc"
    junk.write_bytes(os.urandom(4096))
    assert "is not an XTC file" in str(xtc.build_index(str(junk), 10).error())
    junk.write_bytes(open(path, "rb").read()[:30])
    assert "is too short (30 bytes) to hold a frame" in str(xtc.build_index(str(junk)).error())
    other = xtc.build_index(path, natoms=11)
    assert other.n_frames == 0 and other.fault.code == K.NATOMS
    assert "says 10 atoms, the topology has 11" in str(other.error())


def test_a_damaged_byte_count_is_placed_in_its_frame(tmp_path):
    """Frame 1's byte count too large sends the walk into frame 2's data: the bad
    header is frame 2's, but frame 1 does not decode, so frame 1 is named."""
    path = mdt.XTC_sub_sol
    ix = xtc.build_index(path)
    raw = bytearray(open(path, "rb").read())
    at = int(ix.offsets[1]) + 88
    n = int.from_bytes(raw[at : at + 4], "big") + 40
    raw[at : at + 4] = n.to_bytes(4, "big")
    p = tmp_path / "n.xtc"
    p.write_bytes(bytes(raw))
    bad = xtc.build_index(str(p))
    assert bad.n_frames == 1 and bad.fault.frame == 1 and bad.fault.code == K.BYTE_COUNT
    assert "--stop 1" in str(bad.error())


def test_reader_api(tmp_path):
    ix = xtc.build_index(mdt.XTC_multi_frame)
    r = xtc.XTCReader(ix)
    with pytest.raises(ParameterError):
        r.read([0], 10)
    with pytest.raises(ParameterError):
        r.read([10])
    out = np.zeros((2, 4, 3), np.float32)
    b = r.read([1, 2], 3, out=out)
    assert b.coords is out
    with pytest.raises(ParameterError):
        r.read([1, 2], 4, out=out)
    again = pickle.loads(pickle.dumps(r))
    assert np.array_equal(again.read([1, 2], 3).coords, out)
    assert xtc.last_needed_atom(np.array([3, 9]), None, np.array([4])) == 9
    assert xtc.last_needed_atom(None) == -1
    assert not ix.offsets.flags.writeable and ix.current()


FUZZ = textwrap.dedent(
    """
    import json, sys, numpy as np
    from trajalign.io import xtc
    from trajalign.io.integrity import DamagedFileError
    from trajalign.kernels import xtc as K
    path, trials, seed, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    ix = xtc.build_index(path)
    base = np.fromfile(path, np.uint8)
    rng = np.random.default_rng(seed)
    tally = {}
    out = np.empty((ix.natoms, 3), np.float32)
    box = np.empty((3, 3), np.float32)
    h = np.empty(K.H_LEN, np.int64)
    ends = list(ix.offsets[1:]) + [base.size]
    for t in range(trials):
        f = int(rng.integers(ix.n_frames))
        lo, hi = int(ix.offsets[f]) + 92, int(ends[f])
        d = base.copy()
        k = int(rng.integers(1, 9))
        kind = "run" if rng.random() < 0.5 else "flip"
        if kind == "run":  # a run of random bytes
            at = int(rng.integers(lo, hi - k))
            d[at : at + k] = rng.integers(0, 256, k, dtype=np.uint8)
        else:  # scattered bit flips
            for at in rng.integers(lo, hi, k):
                d[at] ^= np.uint8(1 << int(rng.integers(8)))
        ro = d.view()
        ro.flags.writeable = False  # read-only, as the reader's memory map
        at = int(ix.offsets[f])
        s, _, _, _ = K.decode_frame(ro, at, ix.natoms, out, box, h)
        s2, _, _, _ = K.decode_frame(ro, at, ix.natoms, out[:ix.natoms // 3], box, h)
        tally[str(s)] = tally.get(str(s), 0) + 1
        tally[kind + "_" + str(s != 0)] = tally.get(kind + "_" + str(s != 0), 0) + 1
        tally["partial_" + str(s2)] = tally.get("partial_" + str(s2), 0) + 1
        if t % 25 == 0:  # through the file layer too
            d.tofile(tmp)
            try:
                fix = xtc.build_index(tmp, ix.natoms)
                xtc.XTCReader(fix).verify()
                xtc.XTCReader(fix).read(np.arange(fix.n_frames), ix.natoms // 2)
            except DamagedFileError:
                pass
    # random bytes anywhere (headers too) of the whole file, through the file layer
    for t in range(trials // 4):
        d = base.copy()
        for at in rng.integers(0, d.size, int(rng.integers(1, 6))):
            d[at] = rng.integers(0, 256)
        d[: int(rng.integers(0, 2)) * int(rng.integers(0, d.size))].tofile(tmp)
        if rng.random() < 0.5:
            d.tofile(tmp)
        try:
            fix = xtc.build_index(tmp)
            xtc.XTCReader(fix).verify()
        except DamagedFileError:
            pass
        tally["file"] = tally.get("file", 0) + 1
    print(json.dumps(tally))
    """
)


def test_random_bytes_in_compressed_data_never_crash(tmp_path):
    """Random bytes and bit flips in the compressed data of real frames, decoded fully
    and partially in a child process: it ends normally (no signal, no hang, nothing on
    stderr), every status is a known code, and a part of the damage is caught."""
    env = dict(os.environ)
    tally = {}
    for name, trials in (("XTC_sub_sol", 400), ("RANDOM_WALK", 400), ("XTC_multi_frame", 400)):
        proc = subprocess.run(
            [sys.executable, "-c", FUZZ, getattr(mdt, name), str(trials), "1", str(tmp_path / "f")],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stderr.strip() == "" or "NumbaWarning" in proc.stderr, proc.stderr[-2000:]
        for key, v in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            tally[key] = tally.get(key, 0) + v
    known = {str(c) for c in CODES.values()}
    assert tally["file"] == 300
    full = {k: v for k, v in tally.items() if k[0].isdigit()}
    assert set(full) <= known
    assert {k[8:] for k in tally if k.startswith("partial_")} <= known
    # XTC has no checksum: damage that only changes values (a coordinate's bits, still in
    # range) decodes like a valid frame in any decoder. What changes the stream's structure
    # or leaves the frame's bounding box is caught: measured 20-70% of these edits.
    total = sum(v for k, v in full.items() if k in known)
    caught = total - full.get("0", 0)
    assert caught >= 0.15 * total, tally


def test_several_files_are_one_trajectory(tmp_path):
    """Global frames run through the files in order (as MDAnalysis' ChainReader); a
    damaged later file's error counts the good frames of the files before it."""
    a = mdt.XTC_multi_frame
    raw = open(a, "rb").read()
    ix = xtc.build_index(a)
    cut = tmp_path / "cut.xtc"
    cut.write_bytes(raw[: int(ix.offsets[6]) + 20])  # frames 0-5 whole, 6 cut
    chain = xtc.XTCChain.open([a, str(cut), a])
    assert chain.n_frames == 16 and chain.error(stop=16) is None
    err = chain.error()
    assert "cut.xtc: is truncated: it ends inside frame 6" in str(err) and err.good == 16
    pos = mda_frames(a)[0]
    frames = np.array([0, 9, 10, 15, 3, 12])
    got = chain.read(frames, 6)
    expect = np.concatenate([pos, pos[:6]])[frames, :7]
    assert np.array_equal(bits(got.coords), bits(expect))
    assert np.array_equal(got.times, np.concatenate([ix.times, ix.times[:6]])[frames])
    with pytest.raises(DamagedFileError, match="--stop 16"):
        chain.read([15, 16])
    with pytest.raises(ParameterError):
        chain.read([-1])
    assert chain.times().size == 16 and ix.dt == float(ix.times[1] - ix.times[0])
