"""XTC decoding kernels: GROMACS' compressed coordinates, bounds-checked, one status per frame.

An XTC file is frames one after another, every scalar 4 bytes big-endian (XDR). A frame is
a 56-byte header (magic 1995, natoms, step, time, the 3x3 box in nm, natoms again), then
for more than 9 atoms the precision, the integer bounding box ``minint``/``maxint``, the
initial ``smallidx``, a byte count and that many bytes of bit stream (padded to 4 bytes);
for 9 atoms or fewer, 3 x natoms raw floats.

The bit stream codes each atom as an integer triplet ``round(x_nm * precision)``: a "big"
triplet relative to ``minint`` (one mixed-radix number of ``bitsize`` bits, or three
fields of ``bit_length(sizeint[d])`` bits when a range exceeds 2^24), a flag bit and, if
set, 5 bits giving a new run length and a change of ``smallidx``; then ``run / 3`` "small"
triplets, each a mixed-radix number of ``smallidx`` bits holding offsets from the previous
atom. The first small atom of a run is the atom *before* the big one (the writer swapped
them, which compresses water better), so an iteration emits ``1 + run / 3`` consecutive
atoms, starting with that small one.

Every read here is checked against the frame's byte count and the array's end (Numba
checks nothing), and every value that indexes a table or sizes a loop is validated
before use, so damaged bytes give a status code, never a crash or an endless loop.

Rounding, bit-equal to MDAnalysis' ``XTCReader`` (checked in tests/test_xtc_native.py):
nm = float32(float32(i) * float32(1 / precision)), where ``1 / precision`` is computed in
double and rounded to float32 (xdrfile's ``inv_precision``); Angstrom = float32(nm * 10)
(MDAnalysis' in-place ``positions *= 10.0`` on float32). No ``fastmath`` here: it would
fold the two products into one and lose that bit-equality.

Status codes are the module constants ``OK``, ``BAD_MAGIC``, ...; ``detail`` says where
(the atom, or the value found), see :func:`trajalign.io.xtc.frame_error`.
"""

import numba as nb
import numpy as np

from ._borrow import borrow
from ._bytes import be32, be64, bits_to_f32, bswap64
from ._config import HELPER_JIT, JIT
from ._threads import in_threads

# exact IEEE arithmetic in written order: the bit-equality above depends on it
XTC_JIT = {k: v for k, v in JIT.items() if k != "fastmath"}
XTC_HELPER_JIT = {k: v for k, v in HELPER_JIT.items() if k != "fastmath"}
# the bit readers take the file's array: as calls they cost an array hand-over and a
# reference count each (measured 2x the decode); inlined in Numba's IR, on a borrowed
# view of the array (decode_frame, ._borrow), they cost nothing; their loads and byte
# swaps are single LLVM instructions (._bytes), cheap to inline at every call site
_INLINE = dict(XTC_JIT, inline="always")

MAGIC = 1995
#: bytes of the header common to both layouts (up to and including natoms again)
SHORT_HEADER = 56
#: bytes before the compressed stream (for more than 9 atoms)
HEADER = 92

# -- status codes (one per frame); 0 is a frame decoded as far as it was asked
OK = 0
BAD_MAGIC = 1  #: detail: the magic number found
NATOMS = 2  #: detail: the atom count the header says
NATOMS_REPEAT = 3  #: detail: the atom count the coordinate block says
PRECISION = 4  #: the precision is NaN, inf or <= 0
RANGE = 5  #: detail: the axis whose maxint < minint
SIZE = 6  #: detail: the axis whose range maxint - minint + 1 >= 2^31
SMALLIDX_START = 7  #: detail: the initial smallidx (outside [9, 72])
SMALLIDX_CHANGE = 8  #: detail: the atom after which smallidx left [9, 72]
BITS_PAST_END = 9  #: detail: the atom being decoded when the stream ran out
RUN_PAST_NATOMS = 10  #: detail: the first atom of the run
BYTES_PAST_FILE = 11  #: detail: the bytes the frame needs (the file ends first)
HEADER_PAST_FILE = 12  #: detail: the bytes the header needs (the file ends inside it)
BYTE_COUNT = 13  #: full decode: detail: the bytes the stream used (not its stored count)
NBYTES = 14  #: detail: the stored byte count (<= 0)
VALUE_RANGE = 15  #: detail: an atom decoded outside the frame's range [minint, maxint]
RUN_LENGTH = 16  #: detail: the atom whose run code is above 26 (no writer makes one)
BOX = 17  #: the box or time is NaN or inf, a box edge longer than 1e6 nm, a diagonal < 0

#: a frame's header fields, as :func:`read_header` stores them in an int64 (H_LEN,) array
H_NATOMS, H_STEP, H_NBYTES, H_SMALLIDX, H_END = 0, 1, 2, 3, 4
H_MININT, H_MAXINT = 5, 8  # three each
H_LEN = 11

# xdrfile's table: magicints[k]^3 <= 2^k, so a small triplet of index k takes k bits;
# indices below 9 are unused (0), 73 is the table's length
MAGICINTS = np.array(
    [0] * 9
    + [8, 10, 12, 16, 20, 25, 32, 40, 50, 64, 80, 101, 128, 161, 203, 256, 322, 406, 512]
    + [645, 812, 1024, 1290, 1625, 2048, 2580, 3250, 4096, 5060, 6501, 8192, 10321]
    + [13003, 16384, 20642, 26007, 32768, 41285, 52015, 65536, 82570, 104031, 131072]
    + [165140, 208063, 262144, 330280, 416127, 524287, 660561, 832255, 1048576, 1321122]
    + [1664510, 2097152, 2642245, 3329021, 4194304, 5284491, 6658042, 8388607, 10568983]
    + [13316085, 16777216],
    dtype=np.int64,
)
FIRSTIDX = 9
LASTIDX = 73
MAX_BOX_NM = 1e6

_U8 = nb.uint64(8)
_MASK8 = nb.uint64(0xFF)


@nb.njit(**_INLINE)
def _i32(data, p):
    """Big-endian int32 at byte ``p`` of ``data`` (the caller checked p + 4 <= size)."""
    v = np.int64(be32(data, p))
    if v >= 2147483648:
        v -= 4294967296
    return v


@nb.njit(**XTC_HELPER_JIT)
def _bit_length(v):
    """Bits of the non-negative int64 ``v`` (0 for 0)."""
    n = 0
    while v > 0:
        n += 1
        v >>= 1
    return n


# an ordinary call: only the last 8 bytes of a file take it
@nb.njit(**XTC_HELPER_JIT)
def _tail(data, p):
    """The 64 bits from byte ``p`` on where fewer than 8 bytes are left (zeros past the
    end of ``data``)."""
    w = nb.uint64(0)
    for k in range(8):
        w = w << _U8
        if p + k < data.shape[0]:
            w = w | nb.uint64(data[p + k])
    return w


@nb.njit(**_INLINE)
def _window(data, bit):
    """The 64 bits of ``data`` from bit ``bit`` on, most significant first (zeros past
    the end of ``data``)."""
    p = bit >> 3
    w = be64(data, p) if p + 8 <= data.shape[0] else _tail(data, p)
    return w << nb.uint64(bit & 7)


@nb.njit(**_INLINE)
def _bits(data, bit, n):
    """The ``n`` bits (0 <= n <= 57) at bit ``bit``, as an unsigned number (uint64)."""
    if n == 0:
        return nb.uint64(0)
    return _window(data, bit) >> nb.uint64(64 - n)


@nb.njit(**_INLINE)
def _unpack(data, bit, nbits, s0, s1, s2):
    """One mixed-radix triplet of ``nbits`` bits (1..72) at bit ``bit``, sizes ``s0, s1,
    s2`` (uint64, each 1..2^24): (x, y, z) as uint64, x's high bits beyond 32 dropped as
    xdrfile does.

    The stream holds the number's bytes least significant first, each byte (and the
    last, shorter, chunk) most significant bit first.
    """
    m = (nbits - 1) >> 3  # whole bytes before the last chunk
    last = nbits - 8 * m  # 1..8 bits
    if nbits <= 57:
        # the window byte-reversed: its whole bytes are the number's low bytes in order,
        # and the last chunk is the top ``last`` bits of byte m
        b = bswap64(_window(data, bit))
        low = b & ((nb.uint64(1) << nb.uint64(8 * m)) - nb.uint64(1))
        top = ((b >> nb.uint64(8 * m)) & _MASK8) >> nb.uint64(8 - last)
        v = low | (top << nb.uint64(8 * m))
        z = v % s2
        t = v // s2
        y = t % s1
        x = (t // s1) & nb.uint64(0xFFFFFFFF)
        return x, y, z
    return _unpack_wide(data, bit, m, last, s1, s2)


# an ordinary call, not inlined: only triplets of more than 57 bits (coordinate ranges
# of hundreds of nm at a fine precision) take it, and inlined at both of _unpack's call
# sites it cost about 2 of decode_frame's 9 CPU seconds of compilation
# (benchmarks/compiletime.py) for a path most files never reach
@nb.njit(**XTC_HELPER_JIT)
def _unpack_wide(data, bit, m, last, s1, s2):
    """_unpack for 58..72 bits, ``m`` whole bytes then ``last`` bits."""
    # the number is hi * 2^64 + mid * 2^32 + lo with hi < 2^8; divide limb by limb (each
    # remainder < 2^24, so remainder * 2^32 + limb fits 64 bits)
    lo = nb.uint64(0)
    mid = nb.uint64(0)
    hi = nb.uint64(0)
    for k in range(m + 1):
        width = 8 if k < m else last
        byte = _bits(data, bit + 8 * k, width)
        if k < 4:
            lo = lo | (byte << nb.uint64(8 * k))
        elif k < 8:
            mid = mid | (byte << nb.uint64(8 * (k - 4)))
        else:
            hi = byte
    q2 = hi // s2
    r = hi % s2
    t = (r << nb.uint64(32)) | mid
    q1 = t // s2
    r = t % s2
    t = (r << nb.uint64(32)) | lo
    q0 = t // s2
    z = t % s2
    # quotient q2 * 2^64 + q1 * 2^32 + q0 (q1, q0 < 2^32) divided by s1
    r = q2 % s1
    t = (r << nb.uint64(32)) | q1
    r = t % s1
    t = (r << nb.uint64(32)) | q0
    x = t // s1  # the low 32 bits of the quotient (< 2^32), all xdrfile keeps
    y = t % s1
    return x, y, z


@nb.njit(**XTC_HELPER_JIT)
def read_header(data, off, natoms, h, box):
    """Check the header of the frame at byte ``off``.

    Parameters
    ----------
    data : (size,) uint8
        The whole file.
    off : int
        The frame's first byte.
    natoms : int
        The atom count the topology says.
    h : (H_LEN,) int64
        Receives natoms, step, nbytes, smallidx, the frame's end (one past its last
        byte, padding included), minint[3], maxint[3].
    box : (3, 3) float32
        Receives the box (nm), rows the box vectors.

    Returns
    -------
    status, detail, time, precision : int, int, float32, float32
    """
    size = data.shape[0]
    zero = np.float32(0.0)
    if off < 0 or off + SHORT_HEADER > size:
        return HEADER_PAST_FILE, SHORT_HEADER, zero, zero
    magic = _i32(data, off)
    if magic != MAGIC:
        return BAD_MAGIC, magic, zero, zero
    n = _i32(data, off + 4)
    h[H_NATOMS] = n
    if n != natoms or n < 1:  # (a count below 1 would send a header walk backwards)
        return NATOMS, n, zero, zero
    h[H_STEP] = _i32(data, off + 8)
    time = bits_to_f32(be32(data, off + 12))
    bad = not (abs(time) < np.inf)
    for r in range(3):
        for c in range(3):
            v = bits_to_f32(be32(data, off + 16 + 12 * r + 4 * c))
            box[r, c] = v
            # (the limits of io.integrity's header check: no box is that, only damage)
            bad = bad or not (abs(v) <= MAX_BOX_NM) or (r == c and v < 0)
    lsize = _i32(data, off + 52)
    if lsize != natoms:
        return NATOMS_REPEAT, lsize, time, zero
    if bad:
        return BOX, 0, time, zero
    if natoms <= 9:
        h[H_END] = off + SHORT_HEADER + 12 * natoms
        if h[H_END] > size:
            return BYTES_PAST_FILE, SHORT_HEADER + 12 * natoms, time, zero
        return OK, 0, time, zero
    if off + HEADER > size:
        return HEADER_PAST_FILE, HEADER, time, zero
    prec = bits_to_f32(be32(data, off + 56))
    if not (prec > 0.0 and prec < np.inf):
        return PRECISION, 0, time, prec
    for d in range(3):
        lo = _i32(data, off + 60 + 4 * d)
        hi = _i32(data, off + 72 + 4 * d)
        h[H_MININT + d] = lo
        h[H_MAXINT + d] = hi
        if hi < lo:
            return RANGE, d, time, prec
        if hi - lo + 1 >= 2147483648:
            return SIZE, d, time, prec
    small = _i32(data, off + 84)
    h[H_SMALLIDX] = small
    if small < FIRSTIDX or small >= LASTIDX:
        return SMALLIDX_START, small, time, prec
    nbytes = _i32(data, off + 88)
    h[H_NBYTES] = nbytes
    if nbytes <= 0:
        return NBYTES, nbytes, time, prec
    h[H_END] = off + HEADER + ((nbytes + 3) & ~3)
    if h[H_END] > size:
        return BYTES_PAST_FILE, h[H_END] - off, time, prec
    return OK, 0, time, prec


@nb.njit(**XTC_JIT)
def decode_frame(data, off, natoms, out, box, h):
    """Decode atoms ``[0, out.shape[0])`` of the frame at byte ``off``, in Angstrom.

    Decoding stops as soon as the last wanted atom is written (inside a run if that is
    where it falls); only when every atom is wanted is the stream checked to end at its
    stored byte count.

    Parameters
    ----------
    data : (size,) uint8
        The whole file (a memory map: only the pages decoded are read).
    off : int
        The frame's first byte.
    natoms : int
        The atom count of the topology.
    out : (n, 3) float32
        Receives the first ``n`` atoms (1 <= n <= natoms), Angstrom.
    box : (3, 3) float32
        Receives the box vectors, nm (as stored).
    h : (H_LEN,) int64
        Scratch for the header's fields (see :func:`read_header`).

    Returns
    -------
    status, detail, time, step : int, int, float32, int
        ``status`` 0 for a good frame, else one of the codes of this module.
    """
    # the bit readers below are inlined with the file's array as an argument: a borrowed
    # view (no reference count) keeps two atomic operations per read out of the loop
    data = borrow(data)
    out = borrow(out)
    status, detail, time, prec = read_header(data, off, natoms, h, box)
    step = h[H_STEP]
    if status != OK:
        return status, detail, time, step
    n_out = min(out.shape[0], natoms)
    if n_out < 1:
        return OK, 0, time, step
    ten = np.float32(10.0)
    if natoms <= 9:
        for a in range(n_out):
            for d in range(3):
                out[a, d] = bits_to_f32(be32(data, off + SHORT_HEADER + 12 * a + 4 * d)) * ten
        return OK, 0, time, step

    inv = np.float32(1.0 / np.float64(prec))
    min0, min1, min2 = h[H_MININT], h[H_MININT + 1], h[H_MININT + 2]
    max0, max1, max2 = h[H_MAXINT], h[H_MAXINT + 1], h[H_MAXINT + 2]
    s0 = nb.uint64(h[H_MAXINT] - min0 + 1)
    s1 = nb.uint64(h[H_MAXINT + 1] - min1 + 1)
    s2 = nb.uint64(h[H_MAXINT + 2] - min2 + 1)
    large = (s0 | s1 | s2) > nb.uint64(0xFFFFFF)
    b0 = _bit_length(np.int64(s0))
    b1 = _bit_length(np.int64(s1))
    b2 = _bit_length(np.int64(s2))
    bitsize = b0 + b1 + b2
    if not large:
        # bits of the product s0 * s1 * s2 (< 2^72), without overflowing 64 bits
        p = np.int64(s0) * np.int64(s1)
        a = p >> 24
        lo = (p & 0xFFFFFF) * np.int64(s2)
        hi = a * np.int64(s2) + (lo >> 24)
        bitsize = _bit_length(hi) + 24 if hi > 0 else _bit_length(lo & 0xFFFFFF)
    smallidx = h[H_SMALLIDX]
    smallnum = MAGICINTS[smallidx] >> 1
    smaller = MAGICINTS[max(FIRSTIDX, smallidx - 1)] >> 1
    sizesmall = nb.uint64(MAGICINTS[smallidx])
    nbytes = h[H_NBYTES]
    start = 8 * (off + HEADER)
    bit = start
    end = start + 8 * nbytes
    run = 0
    i = 0  # atoms consumed
    w = 0  # atoms written
    while i < natoms:
        if large:
            if bit + bitsize > end:
                return BITS_PAST_END, i, time, step
            # three fields, read in a loop: one inlined read instead of three (each
            # costs about 0.2 s of compilation)
            u0 = u1 = u2 = nb.uint64(0)
            at = bit
            for d in range(3):
                width = b0 if d == 0 else (b1 if d == 1 else b2)
                v = _bits(data, at, width)
                at += width
                if d == 0:
                    u0 = v
                elif d == 1:
                    u1 = v
                else:
                    u2 = v
        else:
            if bit + bitsize > end:
                return BITS_PAST_END, i, time, step
            u0, u1, u2 = _unpack(data, bit, bitsize, s0, s1, s2)
        if u0 >= s0 or u1 >= s1 or u2 >= s2:
            return VALUE_RANGE, i, time, step
        bit += bitsize
        x = np.int64(u0) + min0
        y = np.int64(u1) + min1
        z = np.int64(u2) + min2
        first = i
        i += 1
        if bit + 1 > end:
            return BITS_PAST_END, first, time, step
        # the flag bit and the 5-bit run code after it, from one read
        code = _window(data, bit)
        bit += 1
        is_smaller = 0
        if code >> nb.uint64(63) != 0:
            if bit + 5 > end:
                return BITS_PAST_END, first, time, step
            v = np.int64((code >> nb.uint64(58)) & nb.uint64(31))
            bit += 5
            if v > 26:
                return RUN_LENGTH, first, time, step
            is_smaller = v % 3 - 1
            run = v - v % 3
        if run > 0:
            nsmall = run // 3
            if first + nsmall >= natoms:
                return RUN_PAST_NATOMS, first, time, step
            if bit + nsmall * smallidx > end:
                return BITS_PAST_END, first, time, step
            for k in range(nsmall):
                u0, u1, u2 = _unpack(data, bit, smallidx, sizesmall, sizesmall, sizesmall)
                if u0 >= sizesmall:
                    return VALUE_RANGE, first + k, time, step
                bit += smallidx
                i += 1
                cx = np.int64(u0) + x - smallnum
                cy = np.int64(u1) + y - smallnum
                cz = np.int64(u2) + z - smallnum
                # every atom of a frame lies in its integer bounding box [minint, maxint]
                if cx < min0 or cx > max0 or cy < min1 or cy > max1 or cz < min2 or cz > max2:
                    return VALUE_RANGE, first + k, time, step
                if k == 0:
                    # the writer swapped this atom with the big one before it: the small
                    # atom comes first, and the next offset is taken from it
                    out[w, 0] = np.float32(np.float32(cx) * inv) * ten
                    out[w, 1] = np.float32(np.float32(cy) * inv) * ten
                    out[w, 2] = np.float32(np.float32(cz) * inv) * ten
                    w += 1
                    if w == n_out:  # the big atom follows, so this decode is partial
                        return OK, 0, time, step
                    out[w, 0] = np.float32(np.float32(x) * inv) * ten
                    out[w, 1] = np.float32(np.float32(y) * inv) * ten
                    out[w, 2] = np.float32(np.float32(z) * inv) * ten
                else:
                    out[w, 0] = np.float32(np.float32(cx) * inv) * ten
                    out[w, 1] = np.float32(np.float32(cy) * inv) * ten
                    out[w, 2] = np.float32(np.float32(cz) * inv) * ten
                x, y, z = cx, cy, cz
                w += 1
                if w == n_out and w < natoms:
                    return OK, 0, time, step
        else:
            out[w, 0] = np.float32(np.float32(x) * inv) * ten
            out[w, 1] = np.float32(np.float32(y) * inv) * ten
            out[w, 2] = np.float32(np.float32(z) * inv) * ten
            w += 1
            if w == n_out and w < natoms:
                return OK, 0, time, step
        if is_smaller != 0 and i < natoms:  # (a last change, which nothing uses, is not)
            smallidx += is_smaller
            if smallidx < FIRSTIDX or smallidx >= LASTIDX:
                return SMALLIDX_CHANGE, i - 1, time, step
            if is_smaller < 0:
                smallnum = smaller
                smaller = MAGICINTS[smallidx - 1] >> 1 if smallidx > FIRSTIDX else 0
            else:
                smaller = smallnum
                smallnum = MAGICINTS[smallidx] >> 1
            sizesmall = nb.uint64(MAGICINTS[smallidx])
    # every atom decoded: the writer stores the bytes it filled, the last one partly
    used = (bit - start + 7) >> 3
    if used != nbytes:
        return BYTE_COUNT, used, time, step
    return OK, 0, time, step


def decode_block(data, offsets, natoms, coords, boxes, times, steps, status, detail):
    """Decode the frames at ``offsets``, atoms ``[0, coords.shape[1])`` of each, on
    Numba's threads (ranges of frames side by side, :mod:`._threads`).

    Parameters
    ----------
    data : (size,) uint8
        The whole file.
    offsets : (F,) int64
        Each frame's first byte.
    natoms : int
        The atom count of the topology.
    coords : (F, n, 3) float32
        Receives the atoms, Angstrom (undefined in frames whose status is not 0).
    boxes : (F, 3, 3) float32
        Receives the box vectors, nm.
    times : (F,) float32
        Receives the times, ps.
    steps : (F,) int64
        Receives the steps.
    status, detail : (F,) int64
        Receive each frame's status code and its detail (see the module's codes).
    """
    # work: the atoms decoded (about a value each); threads only for blocks that pay
    work = coords.shape[1] * 3
    # each frame's header fields: scratch from here, which keeps Numba's array
    # allocation out of the kernels (its compilation, 0.3 s, on every empty cache)
    headers = np.empty((offsets.shape[0], H_LEN), np.int64)
    args = (data, offsets, natoms, coords, boxes, times, steps, status, detail, headers)
    in_threads(_decode_run, offsets.shape[0], work, *args)


# a serial kernel over a range of frames, not a prange loop: Numba's parfor lowering of
# this loop took 1.5 s of CPU to compile on every empty cache
@nb.njit(**XTC_JIT)
def _decode_run(
    start, stop, data, offsets, natoms, coords, boxes, times, steps, status, detail, headers
):
    for f in range(start, stop):
        s, d, t, st = decode_frame(data, offsets[f], natoms, coords[f], boxes[f], headers[f])
        status[f] = s
        detail[f] = d
        times[f] = t
        steps[f] = st


@nb.njit(**XTC_JIT)
def walk(data, start, natoms, offsets, times, steps, h, box):
    """Walk frame headers from byte ``start``, recording each frame's offset, time and
    step, until the file ends, ``offsets`` is full, or a header is bad.

    Parameters
    ----------
    data : (size,) uint8
        The whole file.
    start : int
        The first frame's byte.
    natoms : int
        The atom count every frame must have.
    offsets : (C,) int64
        Receives frame offsets (capacity C).
    times : (C,) float32
        Receives the times, ps.
    steps : (C,) int64
        Receives the steps.
    h : (H_LEN,) int64
        Scratch for a header's fields.
    box : (3, 3) float32
        Scratch for a header's box.

    Returns
    -------
    count, at, status, detail : int
        Frames recorded, the byte where the walk stopped (the file's size at its end,
        else the next frame's offset), and the status of that frame's header (0 when the
        walk stopped at the end of the file or at capacity).
    """
    size = data.shape[0]
    at = start
    count = 0
    while at < size and count < offsets.shape[0]:
        status, detail, time, _ = read_header(data, at, natoms, h, box)
        if status != OK:
            return count, at, status, detail
        offsets[count] = at
        times[count] = time
        steps[count] = h[H_STEP]
        count += 1
        at = h[H_END]
    return count, at, OK, 0
