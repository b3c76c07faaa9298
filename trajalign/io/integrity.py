"""Damaged trajectory files: found before a decoder sees them, and named when it fails.

Trajectories get damaged: a job killed while writing, a full disk, a bad copy. The readers
of MDAnalysis then crash the process (XTC's decompressor reads garbage bits out of
bounds), count the frames they can find and silently drop the rest (TRR, the last partial
frame of DCD, mdcrd, multi-frame PDB), or fail with a message that names neither the file
nor the frame. This module holds

- structural checks run when a source is opened, cheap enough for every run (about
  25 ms for a 20000-frame XTC): each XTC and TRR frame's XDR header at its offset (magic
  number, atom count, precision, box, sizes, the next frame's offset), the record
  markers of every DCD frame, the frame counts of DCD, NetCDF and mdcrd files against
  their sizes (:func:`check_trajectory`);
- :func:`preflight`, for what MDAnalysis does while opening an XTC/TRR (indexing it with
  a C walk that trusts every size, decoding frames 0 and 1): a header walk here first
  where no offsets cache exists, and frames 0 and 1 decoded in a forked child;
- :func:`crash_error`, for :class:`~trajalign.io.guard.GuardedReader` (XTC frames
  decoded in a forked child process), so that a decoder crash on a frame whose header is
  intact but whose compressed data is not becomes an error naming the file and the frame
  instead of a dead process;
- :func:`damaged`, the one shape of those errors:
  ``FILE: what is wrong, from which frame or byte (what to do)``.

XTC inputs are read by the native reader (:mod:`trajalign.io.xtc`), which walks and
checks the headers itself and cannot crash; the XTC parts here serve
``--xtc-reader mdanalysis`` (and MDAnalysis' offsets walk of TRR files).

Structural checks cannot see every damage (random bytes inside a TRR or DCD frame's
coordinates are still numbers); they make sure no frame is lost or invented silently.
"""

from __future__ import annotations

import mmap
import os
import signal
import struct

import numpy as np

from ..errors import InputError, TrajalignError
from .guard import DecoderCrash, guard_available

__all__ = [
    "CRASH_SIGNALS",
    "MAX_COORDINATE",
    "TRR_MAGIC",
    "XTC_HEADER",
    "XTC_MAGIC",
    "bad_boxes",
    "box_error",
    "box_error_at",
    "check_trajectory",
    "coordinates_error",
    "crash_error",
    "damaged",
    "DamagedFileError",
    "implausible_frames",
    "locate",
    "needs_guard",
    "netcdf_layout",
    "open_error",
    "parts",
    "preflight",
    "read_error",
    "reader_format",
    "scan_source",
    "stopped_error",
    "trr_frame_sizes",
    "trr_header_faults",
    "trr_precision",
    "xdr_walk",
    "xtc_frame_sizes",
    "xtc_header_faults",
]

XTC_MAGIC = 1995
TRR_MAGIC = 1993
#: bytes of an XTC frame header before its compressed data (for more than 9 atoms)
XTC_HEADER = 92
#: length of XTC's table of magic integers: a header's ``smallidx`` indexes it
_XTC_LASTIDX = 73
_XTC_FIRSTIDX = 9
#: a box edge longer than this (nm) in an XTC/TRR header is not a box but damage
_MAX_BOX_NM = 1e6

_TOOLS = {
    "XTC": "gmx check -f",
    "TRR": "gmx check -f",
    "DCD": "catdcd or cpptraj",
    "NCDF": "ncdump -h or cpptraj",
    "TRJ": "cpptraj",
}


class DamagedFileError(InputError):
    """An input trajectory file is damaged: truncated, overwritten, or not decodable.

    Parameters
    ----------
    path : str
        The damaged file.
    what : str
        What is wrong, and where (frame, byte).
    good : int or None
        Frames of the whole input (all files) before the damage, all readable: the
        ``--stop`` that uses them. None where it is not known.
    tool : str, optional
        A program that checks files of this format.
    """

    def __init__(self, path: str, what: str, good: int | None, tool: str | None = None):
        steps = []
        if good:
            steps.append(f"use the {good} good frames before it with --stop {good}")
        if tool:
            steps.append(f"check it with {tool} {os.path.basename(path)}")
        steps.append("write it again" if steps else "write the file again")
        hint = ", ".join(steps[:-1]) + (", or " if len(steps) > 1 else "") + steps[-1]
        super().__init__(f"{path}: {what}", hint)
        self.path, self.what, self.good, self.tool = path, what, good, tool

    def __reduce__(self):
        # rebuilt from its fields when it crosses processes (a worker's block), with
        # what was changed on the way (a Dask task prefixes the worker's name)
        return (DamagedFileError, (self.path, self.what, self.good, self.tool), dict(self.__dict__))

    def shifted(self, frames: int) -> DamagedFileError:
        """The same error for a file that follows ``frames`` frames of other files."""
        good = None if self.good is None else self.good + frames
        return DamagedFileError(self.path, self.what, good, self.tool)


def damaged(path: str, what: str, good: int | None, fmt: str = "") -> DamagedFileError:
    """The error for a damaged ``path`` (see :class:`DamagedFileError`); ``fmt`` is an
    MDAnalysis format name (``XTC``, ``TRR``, ``DCD``, ...) that picks the checking tool."""
    return DamagedFileError(path, what, good, _TOOLS.get(fmt.upper()))


def reader_format(reader) -> str:
    """``XTC``, ``TRR``, ``DCD``, ``NCDF``, ``TRJ``, ... of one MDAnalysis reader."""
    name = type(reader).__name__
    return name[: -len("Reader")].upper() if name.endswith("Reader") else name.upper()


def parts(trajectory) -> list:
    """(reader, path, first global frame) of each file of an MDAnalysis trajectory."""
    readers = getattr(trajectory, "readers", None)
    if readers is None:
        return [(trajectory, str(trajectory.filename), 0)]
    starts = getattr(trajectory, "_start_frames", None)
    if starts is None:
        starts = np.cumsum([0] + [r.n_frames for r in readers])
    return [(r, str(r.filename), int(s)) for r, s in zip(readers, starts, strict=False)]


def locate(trajectory, frame: int) -> tuple[str, int, int, str]:
    """(path, frame within that file, first global frame of that file, format) of a
    global ``frame`` of a (possibly chained) MDAnalysis trajectory."""
    found = parts(trajectory)[0]
    for part in parts(trajectory):
        if part[2] <= frame:
            found = part
    reader, path, first = found
    return path, frame - first, first, reader_format(reader)


# ------------------------------------------------------------------ structural checks


def check_trajectory(trajectory, stop: int | None = None) -> None:
    """Check every file of an opened MDAnalysis trajectory before any frame is used.

    Parameters
    ----------
    trajectory : MDAnalysis reader (ChainReader for several files)
        ``universe.trajectory``.
    stop : int, optional
        The ``--stop`` of the run: damage from this global frame on is not an error
        (the user chose to use the good frames before it).

    Raises
    ------
    DamagedFileError
        The first damaged file: which frame or byte, and how many frames before it are
        good.
    """
    for reader, path, first in parts(trajectory):
        if stop is not None and stop <= first:
            return  # the run ends before this file
        fmt = reader_format(reader)
        check = _CHECKS.get(fmt)
        if check is None:
            continue
        err = check(reader, path, first)
        if err is not None and (stop is None or err.good is None or stop > err.good):
            raise err


def _gather(path: str, offsets: np.ndarray, width: int) -> np.ndarray:
    """(len(offsets), width) uint8: the bytes at each offset (zero past the end)."""
    out = np.zeros((offsets.size, width), dtype=np.uint8)
    if offsets.size == 0:
        return out
    if hasattr(os, "pread"):
        # one read per frame: the kernel copies from its page cache; mapping the file
        # instead costs a page fault per frame (twice the time for 20000 frames)
        fd = os.open(path, os.O_RDONLY)
        try:
            buf = b"".join([os.pread(fd, width, int(o)).ljust(width, b"\0") for o in offsets])
        finally:
            os.close(fd)
        out[:] = np.frombuffer(buf, dtype=np.uint8).reshape(offsets.size, width)
        return out
    with open(path, "rb") as fh:  # pragma: no cover - platforms without pread
        for k, o in enumerate(offsets):
            fh.seek(int(o))
            chunk = fh.read(width)
            out[k, : len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
    return out


def _be(raw: np.ndarray, at: int, kind: str = ">i4") -> np.ndarray:
    """Big-endian field at byte ``at`` of every row of ``raw`` (as int64 / float64)."""
    size = np.dtype(kind).itemsize
    col = np.ascontiguousarray(raw[:, at : at + size]).view(kind)[:, 0]
    return col.astype(np.float64 if kind[1] == "f" else np.int64)


def xtc_header_faults(raw: np.ndarray, natoms: int) -> list:
    """Per-frame faults of XTC headers: a list of (bool (n,) mask, description) in the
    order a reader meets them. ``raw``: (n, 92) uint8, the bytes at each frame offset."""
    magic = _be(raw, 0)
    faults = [(magic != XTC_MAGIC, "its header does not start with the XTC magic number 1995")]
    faults.append(
        (
            (_be(raw, 4) != natoms) | (_be(raw, 52) != natoms),
            f"its header does not say {natoms} atoms",
        )
    )
    box = np.stack([_be(raw, 16 + 4 * k, ">f4") for k in range(9)], axis=1)
    with np.errstate(invalid="ignore"):
        bad_box = ~np.isfinite(box).all(axis=1) | (np.abs(box) > _MAX_BOX_NM).any(axis=1)
        bad_box |= (box[:, [0, 4, 8]] < 0).any(axis=1)
    faults.append((bad_box | ~np.isfinite(_be(raw, 12, ">f4")), "its box or time is not numbers"))
    if natoms > 9:
        prec = _be(raw, 56, ">f4")
        with np.errstate(invalid="ignore"):
            bad_prec = ~(np.isfinite(prec) & (prec > 0))
        faults.append((bad_prec, "its precision is not a positive number"))
        lo = np.stack([_be(raw, 60 + 4 * k) for k in range(3)], axis=1)
        hi = np.stack([_be(raw, 72 + 4 * k) for k in range(3)], axis=1)
        faults.append(((hi < lo).any(axis=1), "its coordinate range runs backwards"))
        small = _be(raw, 84)
        faults.append(
            ((small < _XTC_FIRSTIDX) | (small >= _XTC_LASTIDX), "its compression level is invalid")
        )
        faults.append((_be(raw, 88) <= 0, "its compressed size is not positive"))
    return faults


def xtc_frame_sizes(raw: np.ndarray, natoms: int) -> np.ndarray:
    """Bytes of each XTC frame from its header (int64 (n,))."""
    if natoms <= 9:
        return np.full(raw.shape[0], 56 + 12 * natoms, dtype=np.int64)
    count = _be(raw, 88)
    return XTC_HEADER + ((count + 3) & ~3)


def trr_header_faults(raw: np.ndarray, natoms: int) -> list:
    """Per-frame faults of TRR headers, as :func:`xtc_header_faults`; ``raw`` (n, 92)."""
    magic = "its header does not start with the TRR magic number 1993"
    faults = [(_be(raw, 0) != TRR_MAGIC, magic)]
    version = (_be(raw, 4) != 13) | (_be(raw, 8) != 12)
    version |= (raw[:, 12:24] != np.frombuffer(b"GMX_trn_file", np.uint8)).any(axis=1)
    faults.append((version, "its header does not say GMX_trn_file"))
    faults.append((_be(raw, 64) != natoms, f"its header does not say {natoms} atoms"))
    prec = trr_precision(raw, natoms)
    faults.append((prec == 0, "its box and coordinate sizes do not fit its atom count"))
    return faults


_TRR_SIZES = (24, 28, 32, 36, 40, 44, 48, 52, 56, 60)  # ir e box vir pres top sym x v f


def trr_precision(raw: np.ndarray, natoms: int) -> np.ndarray:
    """4 or 8 (bytes per real) of each TRR frame, 0 where its sizes do not add up."""
    sizes = np.stack([_be(raw, at) for at in _TRR_SIZES], axis=1)
    prec = np.zeros(raw.shape[0], dtype=np.int64)
    for p in (4, 8):
        ok = (sizes >= 0).all(axis=1)
        for k in (2, 3, 4):  # box, virial, pressure: 0 or 3x3 reals
            ok &= np.isin(sizes[:, k], (0, 9 * p))
        for k in (7, 8, 9):  # x, v, f: 0 or natoms x 3 reals
            ok &= np.isin(sizes[:, k], (0, 3 * natoms * p))
        ok &= (sizes[:, [2, 7, 8, 9]] > 0).any(axis=1)  # the size tells the precision
        prec[ok & (prec == 0)] = p
    return prec


def trr_frame_sizes(raw: np.ndarray, natoms: int) -> np.ndarray:
    """Bytes of each TRR frame from its header (int64 (n,); header only where unsized)."""
    sizes = np.stack([_be(raw, at) for at in _TRR_SIZES], axis=1)
    prec = trr_precision(raw, natoms)
    return 76 + 2 * prec + np.where(prec > 0, sizes.sum(axis=1), 0)


def _xdr_check(path: str, offsets: np.ndarray, natoms: int, first: int, fmt: str):
    """First damaged frame of an XTC/TRR file from its frames' headers, or None.

    ``offsets`` are the frame offsets MDAnalysis found by jumping from header to header
    (it checks no magic number on the way, and stops at the first header it cannot read).
    """
    faults_of = xtc_header_faults if fmt == "XTC" else trr_header_faults
    sizes_of = xtc_frame_sizes if fmt == "XTC" else trr_frame_sizes
    size = os.path.getsize(path)
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.size == 0:
        return damaged(path, "has no readable frame", None, fmt)
    raw = _gather(path, offsets, XTC_HEADER)
    bad = np.zeros(offsets.size, dtype=bool)
    reason = np.full(offsets.size, -1)
    faults = faults_of(raw, natoms)
    for k, (mask, _) in enumerate(faults):
        reason[mask & ~bad] = k
        bad |= mask
    ends = offsets + sizes_of(raw, natoms)
    # each frame must end where the next begins, and the last at the end of the file
    nxt = np.append(offsets[1:], size)
    gap = ~bad & (ends != nxt)
    if bad.any() or gap.any():
        k = int(np.flatnonzero(bad | gap)[0])
    else:
        return None
    at = int(offsets[k])
    if bad[k]:
        what = faults[int(reason[k])][1]
        if fmt == "XTC" and k and not _decodes(path, int(offsets[k - 1])):
            return _previous_damaged(path, k, at, what, first)
        return damaged(path, f"frame {k} (byte {at}) is damaged: {what}", first + k, fmt)
    # the header is intact but the frame does not end where the next begins
    if k == offsets.size - 1:
        if ends[k] > size:
            return damaged(
                path,
                f"is truncated: it ends inside frame {k} (byte {at}; the frame needs "
                f"{int(ends[k] - at)} bytes, {size - at} are left)",
                first + k,
                fmt,
            )
        tail = size - int(ends[k])
        return damaged(
            path,
            f"after frame {k} the file has {tail} more bytes that are not a readable "
            f"frame (byte {int(ends[k])} on)",
            first + k + 1,
            fmt,
        )
    return damaged(
        path,
        f"frame {k} (byte {at}) is damaged: its size does not reach the next frame",
        first + k,
        fmt,
    )


def _check_xtc(reader, path: str, first: int):
    return _xdr_check(path, reader._xdr.offsets, reader._xdr.n_atoms, first, "XTC")


def _check_trr(reader, path: str, first: int):
    return _xdr_check(path, reader._xdr.offsets, reader._xdr.n_atoms, first, "TRR")


def xdr_walk(path: str, natoms: int | None = None) -> tuple[DamagedFileError | None, int]:
    """Walk an XTC/TRR file header by header (where MDAnalysis could not index it):
    (the error naming its first damaged frame or None, the frames walked)."""
    err, k = _xdr_walk(path, natoms)
    return err, k


def _xdr_walk(path: str, natoms: int | None):
    fmt = "XTC" if path.lower().endswith(".xtc") else "TRR"
    faults_of = xtc_header_faults if fmt == "XTC" else trr_header_faults
    sizes_of = xtc_frame_sizes if fmt == "XTC" else trr_frame_sizes
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(XTC_HEADER)
        if natoms is None:
            if len(head) < 8:
                return damaged(path, f"is too short ({size} bytes) to hold a frame", None, fmt), 0
            natoms = struct.unpack(">i", head[4:8] if fmt == "XTC" else head[64:68])[0]
        prev, at, k = 0, 0, 0
        while at < size:
            fh.seek(at)
            buf = fh.read(XTC_HEADER).ljust(XTC_HEADER, b"\0")
            raw = np.frombuffer(buf, np.uint8)[None]
            for mask, what in faults_of(raw, natoms):
                if mask[0] and k and size - at < XTC_HEADER:
                    left = size - at
                    what = f"is truncated: it ends inside frame {k} (byte {at}, {left} bytes left)"
                    return damaged(path, what, k, fmt), k
                if mask[0] and k == 0 and what.startswith("its header does not start"):
                    what = f"is not an {fmt} file: it does not start with the {fmt} magic number"
                    return damaged(path, what, None, fmt), 0
                if mask[0] and fmt == "XTC" and k and not _decodes(path, prev):
                    return _previous_damaged(path, k, at, what, 0), k - 1
                if mask[0]:
                    if k == 0 and size - at < XTC_HEADER:
                        short = f"is too short ({size} bytes) to hold a frame"
                        return damaged(path, short, None, fmt), 0
                    return damaged(path, f"frame {k} (byte {at}) is damaged: {what}", k, fmt), k
            end = at + int(sizes_of(raw, natoms)[0])
            if end > size:
                what = f"is truncated: it ends inside frame {k} (byte {at})"
                return damaged(path, what, k, fmt), k
            prev, at, k = at, end, k + 1
    return None, k


def _check_dcd(reader, path: str, first: int):
    """DCD: every frame's Fortran record markers in place, and whole frames only."""
    f = getattr(reader, "_file", None)
    if f is None:
        return None
    n = int(reader.n_frames)
    size = os.path.getsize(path)
    expected = f._header_size + f._firstframesize + (n - 1) * f._framesize if n else 0
    # markers first: bytes inserted in the middle shift every later frame (and leave
    # the size off by a part of a frame, which alone would point at the end)
    err = _dcd_markers(reader, f, path, first, n)
    if err is not None:
        return err
    if n and size != expected:
        what = (
            f"is truncated: it ends inside frame {n} (byte {expected}; a frame is "
            f"{f._framesize} bytes, {size - expected} are left)"
        )
        return damaged(path, what, first + n, "DCD")
    return None


def _dcd_markers(reader, f, path: str, first: int, n: int):
    natoms = int(reader.n_atoms)
    cell = 56 if f._framesize == 12 * natoms + 80 else 0  # a unit cell record
    if n < 1 or f._framesize != cell + 3 * (4 * natoms + 8) or f._firstframesize != f._framesize:
        return None  # fixed atoms or a 4th dimension: sizes only
    rec = 4 * natoms
    at = [(0, 48), (52, 48)] if cell else []
    for k in range(3):
        base = cell + k * (rec + 8)
        at += [(base, rec), (base + 4 + rec, rec)]
    offsets = f._header_size + np.arange(n, dtype=np.int64) * f._framesize
    bad = np.zeros(n, dtype=bool)
    endian = "<i4" if _dcd_little(path) else ">i4"
    for pos, value in at:
        raw = _gather(path, offsets + pos, 4)
        bad |= raw.view(endian)[:, 0] != value
    if not bad.any():
        return None
    k = int(np.flatnonzero(bad)[0])
    what = f"frame {k} (byte {int(offsets[k])}) is damaged: its record markers do not say its size"
    return damaged(path, what, first + k, "DCD")


def _dcd_little(path: str) -> bool:
    with open(path, "rb") as fh:
        return struct.unpack("<i", fh.read(4))[0] == 84


def _check_ncdf(reader, path: str, first: int):
    """NetCDF: the frame count in the header against the file's size."""
    try:
        n_hdr, need_of = netcdf_layout(path)
    except (ValueError, struct.error, OSError):
        return None
    size = os.path.getsize(path)
    if need_of(n_hdr) == size:
        return None
    if need_of(n_hdr) > size:
        whole = 0
        while whole < n_hdr and need_of(whole + 1) <= size:
            whole += 1
        what = (
            f"is truncated: its header lists {n_hdr} frames ({need_of(n_hdr)} bytes), "
            f"the file has {size} bytes, enough for {whole}"
        )
        return damaged(path, what, first + whole, "NCDF")
    more = 0
    while need_of(n_hdr + more + 1) <= size:
        more += 1
    what = (
        f"holds {size - need_of(n_hdr)} bytes more than the {n_hdr} frames its header "
        "lists need: bytes were inserted or appended"
        + (f" (or {more} frames written after the header's count)" if more else "")
    )
    # where the extra bytes sit is unknown: no frame count is sure to be good
    return damaged(path, what, None, "NCDF")


def netcdf_layout(path: str):
    """(frames in the header, bytes needed for k frames as a function of k) of a
    classic or 64-bit-offset netCDF file (AMBER's NetCDF trajectories)."""
    with open(path, "rb") as fh:
        data = fh.read(1 << 20)
    if data[:3] != b"CDF" or data[3] not in (1, 2):
        raise ValueError("not a classic netCDF file")
    off8 = data[3] == 2
    pos = 4
    numrecs = struct.unpack(">i", data[pos : pos + 4])[0]
    pos += 4

    def i4():
        nonlocal pos
        v = struct.unpack(">i", data[pos : pos + 4])[0]
        pos += 4
        return v

    def name():
        nonlocal pos
        n = i4()
        pos += (n + 3) & ~3

    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8}

    def attrs():
        nonlocal pos
        tag, n = i4(), i4()
        if tag not in (0, 12):  # ABSENT or NC_ATTRIBUTE
            raise ValueError("damaged attribute list")
        for _ in range(n if tag else 0):
            name()
            t, m = i4(), i4()
            pos += (m * sizes[t] + 3) & ~3

    tag, ndims = i4(), i4()
    if tag not in (0, 10):  # ABSENT or NC_DIMENSION
        raise ValueError("damaged dimension list")
    dims = []
    for _ in range(ndims if tag else 0):
        name()
        dims.append(i4())
    attrs()
    tag, nvars = i4(), i4()
    if tag not in (0, 11):  # ABSENT or NC_VARIABLE
        raise ValueError("damaged variable list")
    rec_sizes, rec_begin, fixed_end = [], None, pos
    for _ in range(nvars if tag else 0):
        name()
        nd = i4()
        ids = [i4() for _ in range(nd)]
        attrs()
        i4()  # type
        vsize = i4()
        begin = struct.unpack(">q" if off8 else ">i", data[pos : pos + (8 if off8 else 4)])[0]
        pos += 8 if off8 else 4
        if ids and dims[ids[0]] == 0:  # the record (frame) dimension
            rec_sizes.append(vsize)
            rec_begin = begin if rec_begin is None else min(rec_begin, begin)
        else:
            fixed_end = max(fixed_end, begin + vsize)
    recsize = sum(rec_sizes)
    if rec_begin is None:
        return numrecs, lambda k: fixed_end
    return numrecs, lambda k: max(fixed_end, rec_begin + k * recsize)


def _check_trj(reader, path: str, first: int):
    """ASCII mdcrd: the lines of the file against its whole frames (MDAnalysis counts
    frames by lines and drops a cut last frame silently)."""
    if path.lower().endswith((".gz", ".bz2")):
        return None  # compressed: its bytes are not its lines
    n = int(reader.n_frames)
    lpf = reader.lines_per_frame + (1 if reader.periodic else 0)
    lines = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    lines += last != b"\n"  # a last line without its newline
    bad = _first_bad_trj_line(path, reader, lpf) if lines != 1 + n * lpf else None
    if bad is not None:
        line, k = bad
        what = f"frame {k} is damaged: line {line} does not hold the numbers a frame's does"
        if line == lines:  # the file's last line, cut
            what = f"is truncated: it ends inside frame {k} (line {line} is cut)"
        return damaged(path, what, first + k, "TRJ")
    if lines > 1 + n * lpf:
        extra = lines - 1 - n * lpf
        what = (
            f"is truncated: it ends inside frame {n} (line {lines}; a frame is {lpf} "
            f"lines, {extra} are left)"
        )
        return damaged(path, what, first + n, "TRJ")
    return None


def _first_bad_trj_line(path: str, reader, lpf: int):
    """(line number, frame) of the first line of an mdcrd that is not 8-column numbers
    of the expected count, or None (the check of a file whose line count is off)."""
    n_values = 3 * int(reader.n_atoms)
    per_frame = [10] * (n_values // 10) + ([n_values % 10] if n_values % 10 else [])
    if reader.periodic:
        per_frame.append(3)
    allowed = set(b"0123456789.-+ eE")
    with open(path, "rb") as fh:
        fh.readline()  # title
        for j, line in enumerate(fh, start=2):
            body = line.rstrip(b"\r\n")
            q = (j - 2) % lpf
            if len(body) != 8 * per_frame[q] or not set(body) <= allowed:
                return j, (j - 2) // lpf
    return None


_CHECKS = {
    "XTC": _check_xtc,
    "TRR": _check_trr,
    "DCD": _check_dcd,
    "NCDF": _check_ncdf,
    "TRJ": _check_trj,
}


def read_error(
    trajectory, frame: int, exc: BaseException | str, count: bool = False
) -> DamagedFileError:
    """A reader failed on global ``frame`` (``count``: while counting the frames of a
    text file, which reads all of it): name the file, the frame, the cause."""
    path, local, _, fmt = locate(trajectory, frame)
    text = exc if isinstance(exc, str) else (str(exc).strip() or type(exc).__name__)
    text = " ".join(text.split())  # MDAnalysis messages may span lines
    if len(text) > 160:
        text = text[:157] + "..."
    if count:
        return damaged(path, f"its frames cannot be counted: {text}", None, fmt)
    if fmt == "NCDF":
        # MDAnalysis' NetCDF reader fails on a frame whose cell is zero (zeroed bytes)
        # with a Python internal ("'NoneType' object is not subscriptable"): name the box
        row = _ncdf_box(trajectory, frame)
        if row is not None and bad_boxes(row[None]).size:
            return box_error(trajectory, frame, row)
    return damaged(path, f"frame {local} cannot be read: {text}", frame, fmt)


def _ncdf_box(trajectory, frame: int) -> np.ndarray | None:
    """``[a, b, c, alpha, beta, gamma]`` of global ``frame`` of a NetCDF part, read from
    the file's variables without the reader's conversion, or None (no box, no access)."""
    found = parts(trajectory)[0]
    for part in parts(trajectory):
        if part[2] <= frame:
            found = part
    reader, _, first = found
    try:
        variables = reader.trjfile.variables
        if "cell_lengths" not in variables or "cell_angles" not in variables:
            return None
        lengths = np.asarray(variables["cell_lengths"][frame - first], dtype=np.float64)
        angles = np.asarray(variables["cell_angles"][frame - first], dtype=np.float64)
        return np.concatenate([lengths.reshape(3), angles.reshape(3)])
    except Exception:  # a reader without these variables: the generic message
        return None


#: how a decoder dies on damaged data (other signals come from outside: SIGKILL, ...)
CRASH_SIGNALS = ("SIGSEGV", "SIGFPE", "SIGABRT", "SIGBUS", "SIGILL")

#: coordinates beyond this (Angstrom, 1 mm) are not a molecule's but damaged bytes
MAX_COORDINATE = 1e7


def implausible_frames(x: np.ndarray) -> np.ndarray:
    """Frames of a (b, N, 3) block holding NaN, inf or coordinates beyond
    :data:`MAX_COORDINATE`: indices, int64 (k,)."""
    if x.size == 0:
        return np.zeros(0, dtype=np.int64)
    flat = x.reshape(x.shape[0], -1)
    # a max and a min (NaN propagates, and compares False) cost half of max(abs(x)),
    # which makes a temporary block
    hi, lo = flat.max(axis=1), flat.min(axis=1)
    with np.errstate(invalid="ignore"):
        return np.flatnonzero(~((hi <= MAX_COORDINATE) & (lo >= -MAX_COORDINATE)))


def coordinates_error(trajectory, frame: int) -> DamagedFileError:
    """Global ``frame`` holds NaN, inf or absurd coordinates."""
    path, local, _, fmt = locate(trajectory, frame)
    what = (
        f"frame {local} holds NaN, inf or coordinates beyond {MAX_COORDINATE:.0e} Angstrom: "
        "its data are damaged (or the simulation blew up there)"
    )
    return damaged(path, what, frame, fmt)


def stopped_error(trajectory, frame: int) -> DamagedFileError:
    """A reader ended before global ``frame`` it had counted."""
    path, local, _, fmt = locate(trajectory, frame)
    what = f"the reader ended before frame {local}: the file is damaged there"
    return damaged(path, what, frame, fmt)


def bad_boxes(box: np.ndarray) -> np.ndarray:
    """Rows of a (b, 6) ``[a, b, c, alpha, beta, gamma]`` box array that are no box
    (NaN, inf, a length <= 0, an angle outside (0, 180)): indices, int64 (k,)."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(box).all(axis=1)
        ok &= (box[:, :3] > 0).all(axis=1)
        ok &= ((box[:, 3:] > 0) & (box[:, 3:] < 180)).all(axis=1)
    return np.flatnonzero(~ok)


def box_error(trajectory, frame: int, row: np.ndarray) -> DamagedFileError:
    """Global ``frame`` holds a box that is none: its data are damaged."""
    path, local, _, fmt = locate(trajectory, frame)
    return box_error_at(path, local, frame, row, fmt)


def box_error_at(path: str, local: int, frame: int, row: np.ndarray, fmt: str):
    """Frame ``local`` of ``path`` (global ``frame``) holds the box ``row`` (6,), which
    is none: the :class:`DamagedFileError` (``fmt`` picks the checking tool)."""
    if not np.any(row):
        what = f"frame {local} has no periodic box, frame 0 has one: the frame is damaged"
    else:
        shown = ", ".join(f"{v:.4g}" for v in row)
        what = f"frame {local} holds the box [{shown}], which is no box: the frame is damaged"
    return damaged(path, what, frame, fmt)


def crash_error(trajectory, crash: DecoderCrash, frames: np.ndarray) -> TrajalignError:
    """The decoder died on a frame: its compressed data are damaged. (Killed from
    outside, by the out-of-memory killer or a signal to the process group, it is no
    damage of the file.)"""
    frame = crash.frame if crash.frame is not None else int(frames[0])
    path, local, _, fmt = locate(trajectory, frame)
    if crash.signal not in CRASH_SIGNALS:
        return TrajalignError(
            f"the process reading {path} was killed ({crash.signal}) at frame {local}",
            "run again; if it was the out-of-memory killer, give a smaller --memory",
        )
    what = (
        f"frame {local} cannot be decoded: the {fmt} decoder crashed ({crash.signal}) "
        "on its compressed coordinates, which are damaged"
    )
    return damaged(path, what, frame, fmt)


def open_error(paths) -> DamagedFileError | None:
    """Why MDAnalysis could not open ``paths``, where one of them is a damaged XTC, TRR
    or NetCDF file (its first bad frame named); None if none is found damaged."""
    first: int | None = 0  # global frames before this file (None: not known)
    for path in map(str, paths):
        low = path.lower()
        err, count = None, None
        try:
            if low.endswith((".xtc", ".trr")):
                err, count = xdr_walk(path)
            elif low.endswith((".ncdf", ".nc")):
                try:
                    count = netcdf_layout(path)[0]
                except (ValueError, struct.error, KeyError, IndexError):
                    what = "its NetCDF header cannot be read: the file is damaged, or not NetCDF"
                    return damaged(path, what, None, "NCDF")
                err = _check_ncdf(None, path, 0)
            elif low.endswith(_TEXT_SUFFIXES):
                err = _text_error(path)
        except (OSError, ValueError, struct.error, KeyError, IndexError):
            err, count = None, None
        if err is not None:
            good = None if first is None or err.good is None else first + err.good
            return damaged(path, err.what, good, _format_of(path))
        first = None if first is None or count is None else first + count
    return None


#: text trajectory formats: a damaged byte there is often no text at all
_TEXT_SUFFIXES = (".mdcrd", ".crd", ".trj", ".pdb", ".ent", ".gro", ".xyz", ".lammpstrj")


def _format_of(path: str) -> str:
    """The MDAnalysis format name of a trajectory path, from its extension."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return {"nc": "NCDF", "mdcrd": "TRJ", "crd": "TRJ"}.get(ext, ext.upper())


def _text_error(path: str) -> DamagedFileError | None:
    """A text trajectory whose first MiB holds bytes that are no text, or None."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not a character cut by the 1 MiB boundary
            line = head[: exc.start].count(b"\n") + 1
            what = f"byte {exc.start} (line {line}) is not text: the file is damaged"
            return damaged(path, what, None, _format_of(path))
    return None


def preflight(paths, stop: int | None = None) -> None:
    """Checks of XTC/TRR files before MDAnalysis opens them, where its opening could
    crash the process: its frame index is built by a C walk that trusts every size
    it reads (done when no valid ``.NAME_offsets.npz`` cache exists), and it decodes
    frames 0 and 1. Walk the headers here first, and decode those frames in a child.

    Raises
    ------
    DamagedFileError
    """
    first: int | None = 0
    for path in map(str, paths):
        low = path.lower()
        if not low.endswith((".xtc", ".trr")):
            first = None
            continue
        count = _offsets_cached(path)
        if count is None:
            err, count = xdr_walk(path)
            if err is not None:
                err = err.shifted(first) if first else err
                if stop is None or err.good is None or stop > err.good:
                    raise err
        if low.endswith(".xtc") and guard_available():
            err = _decode_first_frames(path)
            if err is not None:
                raise err.shifted(first) if first else err
        first = None if first is None or count is None else first + count


def _offsets_cached(path: str) -> int | None:
    """Frames in MDAnalysis' offsets cache of ``path`` where it will use it (so it
    walks nothing), else None."""
    head, tail = os.path.split(path)
    cache = os.path.join(head, f".{tail}_offsets.npz")
    try:
        with np.load(cache) as data:
            same = data["ctime"] == os.path.getctime(path)
            same = same and data["size"] == os.path.getsize(path)
            return int(data["offsets"].size) if same else None
    except Exception:
        return None


def _previous_damaged(path: str, k: int, at: int, what: str, first: int):
    """Frame ``k``'s header is bad, and frame ``k - 1`` (whose size says where frame
    ``k`` starts) does not decode either: the damage starts in frame ``k - 1``."""
    what = (
        f"frame {k - 1} is damaged: it does not decode, and the next header (byte {at}) "
        f"is not one ({what})"
    )
    return damaged(path, what, first + k - 1, "XTC")


def _decodes(path: str, offset: int) -> bool:
    """The XTC frame at ``offset`` decodes to finite, plausible coordinates (tried in a
    forked child: it may crash)."""
    from MDAnalysis.lib.formats.libmdaxdr import XTCFile

    if not guard_available():  # pragma: no cover - no fork: cannot try safely
        return True
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        import faulthandler

        faulthandler.disable()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's
        code = 1
        try:
            with XTCFile(path) as f:
                f.set_offsets(np.array([offset], dtype=np.int64))
                f.seek(0)
                x = f.read().x
                code = 0 if np.isfinite(x).all() and np.abs(x).max() < MAX_COORDINATE else 1
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return signal.Signals(os.WTERMSIG(status)).name not in CRASH_SIGNALS
    return os.WEXITSTATUS(status) == 0


def _decode_first_frames(path: str) -> DamagedFileError | None:
    """Decode frames 0 and 1 of an XTC in a forked child (MDAnalysis reads them while
    opening the file, in this process); the error if the decoder crashes."""
    from MDAnalysis.lib.formats.libmdaxdr import XTCFile

    progress = mmap.mmap(-1, 8)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        import faulthandler

        faulthandler.disable()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's
        try:
            with XTCFile(path) as f:
                for k in range(2):
                    progress[:8] = struct.pack("<q", k)
                    f.read()
        except BaseException:
            pass  # a Python error is MDAnalysis' to report, with its own message
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if not os.WIFSIGNALED(status):
        return None
    k = struct.unpack("<q", progress[:8])[0]
    name = signal.Signals(os.WTERMSIG(status)).name
    if name not in CRASH_SIGNALS:
        return None  # killed from outside: no verdict on the file
    what = (
        f"frame {k} cannot be decoded: the XTC decoder crashed ({name}) on its compressed "
        "coordinates, which are damaged"
    )
    return damaged(path, what, k, "XTC")


def needs_guard(trajectory) -> bool:
    """Decode in a child process: an XTC input (compressed frames), unless
    ``TRAJALIGN_GUARD=0`` or the platform has no fork."""
    if os.environ.get("TRAJALIGN_GUARD", "1") == "0" or not guard_available():
        return False
    return any(reader_format(r) == "XTC" for r, _, _ in parts(trajectory))


def scan_source(source, progress=None) -> int:
    """Read every frame of an open source, as ``gmx check`` does; the number read.

    Parameters
    ----------
    source : trajalign.io.sources.Source
        Opened with one file (so a damage names it).
    progress : callable, optional
        Called with the frames of each block read.

    Raises
    ------
    DamagedFileError
        The first damaged frame: a reader error, a decoder crash, a broken box, NaN,
        inf or absurd coordinates.
    """
    chain = getattr(source, "xtc", None)
    if chain is not None:
        return _scan_xtc(source, chain, progress)
    chunk = max(1, (1 << 24) // max(1, source.n_points * source.dim))
    for start in range(0, source.n_frames, chunk):
        stop = min(start + chunk, source.n_frames)
        block = source.read(start, stop)
        bad = implausible_frames(block.coords)
        if bad.size:
            frame = int(block.frames[bad[0]])
            universe = getattr(source, "universe", None)
            if universe is not None:
                raise coordinates_error(universe.trajectory, frame)
            what = f"frame {frame} holds NaN, inf or coordinates beyond {MAX_COORDINATE:.0e}"
            raise damaged(source.spec.paths[0], what, frame)
        if progress is not None:
            progress(stop - start)
    return source.n_frames


def _scan_xtc(source, chain, progress) -> int:
    """:func:`scan_source` by the native XTC reader (``chain``, an
    :class:`~trajalign.io.xtc.XTCChain`): every atom of every frame decoded, each
    stream's byte count checked (a partial decode of a selection cannot check it)."""
    frames = source.frame_indices
    chunk = max(1, (1 << 26) // max(1, chain.natoms * 12))
    for start in range(0, frames.size, chunk):
        stop = min(start + chunk, frames.size)
        chain.read(frames[start:stop])  # raises the first damaged frame's error
        if progress is not None:
            progress(stop - start)
    return source.n_frames
