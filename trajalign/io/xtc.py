"""trajalign's own XTC reader: a frozen per-file index, and blocks decoded in parallel.

MDAnalysis decodes every atom of every XTC frame in one thread, and its C decoder trusts
the bytes it reads (damaged data crash it). This reader

- walks the frame headers once (:func:`build_index`: offsets, times, steps, every header
  checked), giving a frozen, picklable :class:`XTCIndex` a Dask worker can carry;
- decodes a block of frames with :func:`trajalign.kernels.xtc.decode_block` on every
  Numba thread, only atoms ``[0, last_atom]`` of each frame (the decoder is sequential
  within a frame, so the cost is set by the highest atom index needed), reading the
  file through a memory map so only the pages decoded are read;
- returns float32 Angstrom coordinates bit-equal to MDAnalysis' ``XTCReader``, and turns
  each frame's status code into the usual :class:`~trajalign.io.integrity.DamagedFileError`
  naming the file and the frame (:func:`frame_error`, one table of messages).

No decoder call can crash the process, so XTC needs no forked guard child.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from .integrity import DamagedFileError, damaged

__all__ = [
    "XTCBlock",
    "XTCChain",
    "XTCFault",
    "XTCIndex",
    "XTCReader",
    "box_dimensions",
    "build_index",
    "frame_error",
    "last_needed_atom",
    "read_block",
    "read_selections",
]


def _k():
    from ..kernels import xtc  # numba: imported on first use only

    return xtc


#: what each status code means, as the ``what`` of a :class:`DamagedFileError`;
#: formatted with ``n`` (the expected atom count) and ``d`` (the kernel's detail)
MESSAGES = {
    1: "its header does not start with the XTC magic number 1995 (it has {d})",
    2: "its header says {d} atoms, the topology has {n}",
    3: "its coordinates say {d} atoms, its header and the topology {n}",
    4: "its precision is not a positive number",
    5: "its coordinate range runs backwards (axis {d})",
    6: "its coordinate range is too large for 31 bits (axis {d})",
    7: "its compression level {d} is invalid (not 9 to 72)",
    8: "its compressed coordinates are damaged: the compression level leaves its table "
    "after atom {d}",
    9: "its compressed coordinates are damaged: they run past their byte count at atom {d}",
    10: "its compressed coordinates are damaged: the run of atoms from atom {d} goes past "
    "the atom count",
    11: "is truncated",
    12: "is truncated",
    13: "its compressed coordinates are damaged: decoding them uses {d} bytes, not the "
    "{nbytes} stored",
    14: "its compressed size {d} is not positive",
    15: "its compressed coordinates are damaged: atom {d} decodes outside the frame's range",
    16: "its compressed coordinates are damaged: no writer makes the run length at atom {d}",
    17: "its box or time is not numbers",
}

_TOOL_FMT = "XTC"


@dataclass(frozen=True)
class XTCFault:
    """The first bad frame a header walk met: status ``code`` of frame ``frame`` at
    byte ``byte``, with the kernel's ``detail``."""

    code: int
    frame: int
    byte: int
    detail: int


@dataclass(frozen=True, eq=False)
class XTCIndex:
    """Where the frames of one XTC file are: built once by :func:`build_index`.

    Attributes
    ----------
    path : str
        The file.
    natoms : int
        Atoms per frame (every header was checked to say so).
    size : int
        The file's size in bytes when indexed.
    mtime_ns : int
        Its modification time then (a changed file needs a new index).
    offsets : (F,) int64
        Byte offset of each good frame (read-only).
    times : (F,) float64
        Each frame's time in ps, as MDAnalysis reports it (the stored float32).
    steps : (F,) int64
        Each frame's step.
    fault : XTCFault or None
        Why the walk stopped before the end of the file (frame ``F`` is bad or cut),
        None if every byte belongs to a good frame.
    """

    path: str
    natoms: int
    size: int
    mtime_ns: int
    offsets: np.ndarray
    times: np.ndarray
    steps: np.ndarray
    fault: XTCFault | None = None

    @property
    def n_frames(self) -> int:
        """Good frames (those before :attr:`fault`)."""
        return int(self.offsets.size)

    def error(self) -> DamagedFileError | None:
        """The :attr:`fault` as the error a run reports (``--stop n_frames`` avoids
        it), or None."""
        if self.fault is None:
            return None
        f = self.fault
        return frame_error(self.path, f.frame, f.byte, f.code, f.detail, self.natoms, self.size)

    @property
    def dt(self) -> float:
        """Time between frames 0 and 1 in ps, as MDAnalysis' ``XTCReader.dt`` computes
        it (0.0 for a single frame)."""
        return float(self.times[1] - self.times[0]) if self.times.size > 1 else 0.0

    def current(self) -> bool:
        """The file still has the size and modification time it was indexed with."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return st.st_size == self.size and st.st_mtime_ns == self.mtime_ns


def frame_error(
    path: str,
    frame: int,
    byte: int,
    code: int,
    detail: int,
    natoms: int,
    size: int | None = None,
    nbytes: int | None = None,
) -> DamagedFileError:
    """The error for frame ``frame`` (at byte ``byte``) of ``path`` whose status is ``code``.

    Parameters
    ----------
    path : str
        The file.
    frame, byte : int
        The frame (within the file) and its first byte.
    code, detail : int
        The kernel's status code and detail (see :mod:`trajalign.kernels.xtc`).
    natoms : int
        The topology's atom count.
    size : int, optional
        The file's size (for a truncated frame's message).
    nbytes : int, optional
        The frame's stored byte count (for a byte-count mismatch).

    Returns
    -------
    DamagedFileError
        ``good`` is ``frame``: the frames before it are usable with ``--stop frame``
        (shift it with :meth:`DamagedFileError.shifted` for a file after others).
    """
    k = _k()
    # frame 0 bad from its first bytes: not an XTC at all (io.integrity's words)
    if frame == 0 and code == k.BAD_MAGIC:
        what = "is not an XTC file: it does not start with the XTC magic number 1995"
        return damaged(path, what, None, _TOOL_FMT)
    if frame == 0 and code == k.HEADER_PAST_FILE and size is not None:
        return damaged(path, f"is too short ({size} bytes) to hold a frame", None, _TOOL_FMT)
    if code in (k.BYTES_PAST_FILE, k.HEADER_PAST_FILE):
        left = (size if size is not None else byte) - byte
        what = (
            f"is truncated: it ends inside frame {frame} (byte {byte}; the frame needs "
            f"{detail} bytes, {left} are left)"
        )
        return damaged(path, what, frame, _TOOL_FMT)
    text = MESSAGES.get(code, "it cannot be decoded (status {d})")
    text = text.format(n=natoms, d=detail, nbytes=nbytes if nbytes is not None else "?")
    return damaged(path, f"frame {frame} (byte {byte}) is damaged: {text}", frame, _TOOL_FMT)


def _word(data: np.ndarray, byte: int) -> int:
    """The big-endian int32 at ``byte`` of ``data`` (the caller checked the bounds)."""
    return int(data[byte : byte + 4].view(">i4")[0])


def _map(path: str) -> np.ndarray:
    """The file as a read-only uint8 array (a memory map; an empty array for 0 bytes)."""
    if os.path.getsize(path) == 0:
        empty = np.zeros(0, np.uint8)
        empty.flags.writeable = False  # as a map is: the kernels compiled for it apply
        return empty
    return np.memmap(path, dtype=np.uint8, mode="r").view(np.ndarray)


def build_index(path: str | os.PathLike, natoms: int | None = None) -> XTCIndex:
    """Walk the frame headers of an XTC file: offsets, times, steps, first bad frame.

    Every header is checked (magic, atom counts, precision, ranges, compression level,
    byte count within the file). Where frame ``k``'s header is bad, frame ``k - 1``
    (whose byte count says where frame ``k`` starts) is decoded fully: if that fails,
    the damage is placed in frame ``k - 1``.

    Parameters
    ----------
    path : path
        The XTC file.
    natoms : int, optional
        The atom count every frame must have (the topology's); default the first
        frame's.

    Returns
    -------
    XTCIndex
        The good frames before the first bad one (``fault`` says which, and why).
    """
    k = _k()
    path = os.fspath(path)
    st = os.stat(path)
    data = _map(path)
    if natoms is None:
        natoms = _word(data, 4) if data.size >= 8 else 0
    box = np.zeros((3, 3), np.float32)
    # capacity from the first frame's size (where a walk of one frame stops); grown if
    # the frames get smaller
    one = np.empty(1, np.int64)
    h = np.empty(k.H_LEN, np.int64)
    count, first_end, _, _ = k.walk(
        data, 0, natoms, one, np.empty(1, np.float32), one.copy(), h, box
    )
    frame_size = int(first_end) if count == 1 else k.HEADER
    cap = int(data.size // max(frame_size, 1) * 1.1) + 16
    parts_o, parts_t, parts_s = [], [], []
    at, total = 0, 0
    status, detail = k.OK, 0
    while True:
        offsets = np.empty(cap, np.int64)
        times = np.empty(cap, np.float32)
        steps = np.empty(cap, np.int64)
        count, at, status, detail = k.walk(data, at, natoms, offsets, times, steps, h, box)
        parts_o.append(offsets[:count])
        parts_t.append(times[:count])
        parts_s.append(steps[:count])
        total += count
        if status != k.OK or at >= data.size:
            break
        cap = max(cap, 1024)  # the frames got smaller than the first: more of them
    offsets = np.concatenate(parts_o)
    times = np.concatenate(parts_t).astype(np.float64)
    steps = np.concatenate(parts_s)
    fault = None
    if status != k.OK:
        fault = XTCFault(int(status), total, int(at), int(detail))
        if total > 0:
            # a bad header right after a frame that does not decode: the damage is in
            # that frame, whose byte count sent the walk to the wrong place
            prev = int(offsets[-1])
            out = np.empty((natoms, 3), np.float32)
            s, d, _, _ = k.decode_frame(data, prev, natoms, out, box, h)
            if s != k.OK:
                fault = XTCFault(int(s), total - 1, prev, int(d))
                offsets, times, steps = offsets[:-1], times[:-1], steps[:-1]
    for a in (offsets, times, steps):
        a.flags.writeable = False
    return XTCIndex(path, int(natoms), int(data.size), st.st_mtime_ns, offsets, times, steps, fault)


@dataclass
class XTCBlock:
    """Frames decoded by :meth:`XTCReader.read`.

    Attributes
    ----------
    coords : (F, last_atom + 1, 3) float32
        Atoms ``[0, last_atom]``, Angstrom, bit-equal to MDAnalysis' ``ts.positions``.
    boxes : (F, 3, 3) float32
        Box vectors (rows), Angstrom: the stored nm times 10 in float32.
    boxes_nm : (F, 3, 3) float32
        The box vectors as stored (nm).
    times : (F,) float64
        ps, as MDAnalysis' ``ts.time``.
    steps : (F,) int64
        As MDAnalysis' ``ts.data["step"]``.
    """

    coords: np.ndarray
    boxes: np.ndarray
    boxes_nm: np.ndarray
    times: np.ndarray
    steps: np.ndarray

    def dimensions(self) -> np.ndarray:
        """``[a, b, c, alpha, beta, gamma]`` of each frame, (F, 6) float32, bit-equal
        to MDAnalysis' ``ts.dimensions`` (see :func:`box_dimensions`)."""
        return box_dimensions(self.boxes_nm)


def _angstrom(boxes_nm: np.ndarray) -> np.ndarray:
    """Box vectors in Angstrom: nm times 10 in float32, as MDAnalysis converts."""
    return boxes_nm * np.float32(10.0)


def box_dimensions(boxes_nm: np.ndarray) -> np.ndarray:
    """MDAnalysis' ``ts.dimensions`` of XTC frames from their stored box vectors.

    Parameters
    ----------
    boxes_nm : (F, 3, 3) float32
        Box vectors (rows) in nm, as stored in the file.

    Returns
    -------
    (F, 6) float32
        ``[a, b, c]`` in Angstrom and the angles in degrees, computed as MDAnalysis does
        (``triclinic_box`` of the nm vectors, then the lengths times 10 in float32), so
        bit-equal to its values; zeros for a box that is none. One call per distinct box.
    """
    from MDAnalysis.lib.mdamath import triclinic_box

    boxes_nm = np.asarray(boxes_nm, dtype=np.float32)
    out = np.empty((boxes_nm.shape[0], 6), np.float32)
    if boxes_nm.shape[0] == 0:
        return out
    flat = np.ascontiguousarray(boxes_nm.reshape(-1, 9))
    uniq, inverse = np.unique(flat.view(np.uint32), axis=0, return_inverse=True)
    rows = np.empty((uniq.shape[0], 6), np.float32)
    for j, u in enumerate(uniq.view(np.float32).reshape(-1, 3, 3)):
        dims = triclinic_box(*u)
        dims[:3] *= 10.0  # MDAnalysis' convert_pos_from_native, in float32
        rows[j] = dims
    out[:] = rows[np.asarray(inverse).reshape(-1)]
    return out


def last_needed_atom(*indices: np.ndarray | None) -> int:
    """The highest atom index among index arrays (None entries skipped): the
    ``last_atom`` a block read needs to cover them all.

    Parameters
    ----------
    *indices : int arrays or None
        Atom indices in the file's numbering (a selection, fit atoms, the atoms of the
        molecules a periodic repair needs).

    Returns
    -------
    int
        The maximum, or -1 when there are none.
    """
    top = -1
    for idx in indices:
        if idx is not None and np.size(idx):
            top = max(top, int(np.max(idx)))
    return top


class XTCReader:
    """Decode blocks of frames of one XTC file in parallel, bit-equal to MDAnalysis.

    Parameters
    ----------
    index : XTCIndex
        From :func:`build_index`. The reader pickles as its index (the memory map is
        reopened where it is used), so it can travel to another process.
    """

    def __init__(self, index: XTCIndex) -> None:
        self.index = index
        self._data: np.ndarray | None = None

    def __getstate__(self):
        return {"index": self.index}

    def __setstate__(self, state):
        self.index = state["index"]
        self._data = None

    @property
    def data(self) -> np.ndarray:
        """The file's bytes (a memory map, opened on first use)."""
        if self._data is None:
            self._data = _map(self.index.path)
            if self._data.size != self.index.size:
                raise DamagedFileError(
                    self.index.path,
                    f"changed since it was indexed ({self.index.size} bytes then, "
                    f"{self._data.size} now)",
                    None,
                )
        return self._data

    def close(self) -> None:
        """Drop the memory map (reopened by the next read)."""
        self._data = None

    def read(
        self, frames: np.ndarray, last_atom: int | None = None, out: np.ndarray | None = None
    ) -> XTCBlock:
        """Decode atoms ``[0, last_atom]`` of ``frames``.

        Parameters
        ----------
        frames : (F,) int
            Frame indices within this file (any order, repeats allowed), each below
            ``index.n_frames``.
        last_atom : int, optional
            The highest atom index needed (default: every atom). Atoms up to it are
            decoded, the rest of each frame is not even read.
        out : (F, last_atom + 1, 3) float32, optional
            Where to decode (C-contiguous); default a new array.

        Returns
        -------
        XTCBlock

        Raises
        ------
        DamagedFileError
            For the first frame (in ``frames`` order) that does not decode, naming the
            file and the frame; a frame at or after the index's fault gives that fault.
        ParameterError
            ``last_atom`` or ``frames`` out of range, ``out`` of the wrong shape.
        """
        k = _k()
        ix = self.index
        frames = np.asarray(frames, dtype=np.int64).reshape(-1)
        last = ix.natoms - 1 if last_atom is None else int(last_atom)
        if not 0 <= last < ix.natoms:
            raise ParameterError(
                f"last atom {last} is outside 0..{ix.natoms - 1}",
                f"{ix.path} has {ix.natoms} atoms per frame",
            )
        if frames.size and (frames.min() < 0 or frames.max() >= ix.n_frames):
            bad = int(frames.max()) if frames.max() >= ix.n_frames else int(frames.min())
            if bad >= ix.n_frames and ix.fault is not None:
                raise ix.error()
            raise ParameterError(
                f"frame {bad} is outside 0..{ix.n_frames - 1}",
                f"{ix.path} has {ix.n_frames} frames",
            )
        n = frames.size
        shape = (n, last + 1, 3)
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ParameterError(
                f"the output array is {out.dtype} {out.shape}, not float32 {shape}",
                "pass a C-contiguous float32 array of that shape, or none",
            )
        boxes = np.empty((n, 3, 3), np.float32)
        times = np.empty(n, np.float32)
        steps = np.empty(n, np.int64)
        status = np.empty(n, np.int64)
        detail = np.empty(n, np.int64)
        offsets = np.ascontiguousarray(ix.offsets[frames])
        if n:
            k.decode_block(self.data, offsets, ix.natoms, out, boxes, times, steps, status, detail)
        bad = np.flatnonzero(status)
        if bad.size:
            j = int(bad[0])
            raise self.frame_error(int(frames[j]), int(status[j]), int(detail[j]))
        return XTCBlock(
            coords=out,
            boxes=_angstrom(boxes),
            boxes_nm=boxes,
            times=times.astype(np.float64),
            steps=steps,
        )

    def frame_error(self, frame: int, code: int, detail: int) -> DamagedFileError:
        """The error for ``frame`` of this file whose status is ``code`` (see
        :func:`frame_error`)."""
        ix = self.index
        byte = int(ix.offsets[frame])
        nbytes = None
        if code == _k().BYTE_COUNT:
            nbytes = _word(self.data, byte + 88)
        return frame_error(ix.path, frame, byte, code, detail, ix.natoms, ix.size, nbytes)

    def verify(self, block: int = 64) -> DamagedFileError | None:
        """Decode every frame fully (checking each stream's byte count), as ``gmx
        check`` does: the error for the first bad frame (the index's fault included),
        or None.

        Parameters
        ----------
        block : int
            Frames decoded at a time.
        """
        ix = self.index
        out = np.empty((min(block, max(ix.n_frames, 1)), ix.natoms, 3), np.float32)
        for a in range(0, ix.n_frames, block):
            frames = np.arange(a, min(a + block, ix.n_frames))
            try:
                self.read(frames, out=out[: frames.size])
            except DamagedFileError as err:
                return err
        return ix.error()


def read_block(
    index: XTCIndex, frames: np.ndarray, last_atom: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode atoms ``[0, last_atom]`` of ``frames`` of an indexed XTC file.

    Parameters
    ----------
    index : XTCIndex
        From :func:`build_index`.
    frames : (F,) int
        Frame indices within the file.
    last_atom : int, optional
        The highest atom index needed (default: every atom).

    Returns
    -------
    coords : (F, last_atom + 1, 3) float32
        Angstrom, bit-equal to MDAnalysis.
    boxes : (F, 3, 3) float32
        Box vectors (rows), Angstrom.
    times : (F,) float64
        ps.
    steps : (F,) int64

    Raises
    ------
    DamagedFileError
        A frame that does not decode (file and frame named).
    """
    b = XTCReader(index).read(frames, last_atom)
    return b.coords, b.boxes, b.times, b.steps


class XTCChain:
    """Several XTC files read as one trajectory (global frame numbers), as MDAnalysis'
    ``ChainReader`` numbers them: the frames of each file after those of the files
    before it.

    Parameters
    ----------
    indices : sequence of XTCIndex
        One per file, in order.

    Attributes
    ----------
    starts : (n_files + 1,) int64
        The global number of each file's first frame, then the total.
    """

    def __init__(self, indices) -> None:
        self.readers = [XTCReader(ix) for ix in indices]
        counts = [r.index.n_frames for r in self.readers]
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        # the first file fault ends the usable frames: what follows it cannot be placed
        self._fault = None
        self._usable = int(self.starts[-1])
        for p, r in enumerate(self.readers):
            if r.index.fault is not None:
                self._fault = p
                self._usable = int(self.starts[p]) + r.index.n_frames
                break

    @classmethod
    def open(cls, paths, natoms: int | None = None) -> XTCChain:
        """Index every file of ``paths`` (each checked to have ``natoms`` atoms, default
        the first file's)."""
        indices = []
        for p in paths:
            ix = build_index(p, natoms)
            natoms = ix.natoms
            indices.append(ix)
        return cls(indices)

    @property
    def n_frames(self) -> int:
        """Usable frames: every frame of every file, or those before the first fault."""
        return self._usable

    @property
    def natoms(self) -> int:
        return self.readers[0].index.natoms

    @property
    def dt(self) -> float:
        """Time between frames in ps, as MDAnalysis reports it for these files: the
        first file's :attr:`XTCIndex.dt` (0.0 where it has a single frame)."""
        return self.readers[0].index.dt

    def where(self, frame: int) -> tuple[str, int]:
        """(path, frame within that file) of global ``frame``."""
        part, local = self.locate(np.array([frame]))
        return self.readers[int(part[0])].index.path, int(local[0])

    def first_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """Frame 0 decoded fully on this thread (no Numba thread pool started, so the
        process may still fork), its stream's byte count checked.

        Returns
        -------
        coords : (natoms, 3) float32
            Angstrom, bit-equal to MDAnalysis.
        dims : (6,) float32
            ``[a, b, c, alpha, beta, gamma]`` as MDAnalysis' ``ts.dimensions`` (zeros
            for no box).

        Raises
        ------
        DamagedFileError
            Frame 0 does not decode.
        """
        k = _k()
        r = self.readers[0]
        out = np.empty((self.natoms, 3), np.float32)
        box = np.empty((3, 3), np.float32)
        at = int(r.index.offsets[0])
        h = np.empty(k.H_LEN, np.int64)
        status, detail, _, _ = k.decode_frame(r.data, at, self.natoms, out, box, h)
        if status != k.OK:
            raise r.frame_error(0, int(status), int(detail))
        return out, box_dimensions(box[None])[0]

    def times(self) -> np.ndarray:
        """(n_frames,) float64 ps of the usable frames, from the indices (nothing decoded)."""
        return np.concatenate([r.index.times for r in self.readers])[: self._usable]

    def error(self, stop: int | None = None) -> DamagedFileError | None:
        """The first file fault, as the error a run over global frames ``[0, stop)``
        meets (every frame when ``stop`` is None), its ``--stop`` in global frames; None
        if there is none or ``stop`` ends the run before it."""
        if self._fault is None or (stop is not None and stop <= self._usable):
            return None
        err = self.readers[self._fault].index.error()
        first = int(self.starts[self._fault])
        return err.shifted(first) if first else err

    def locate(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(file number, frame within that file) of each global frame."""
        frames = np.asarray(frames, dtype=np.int64)
        part = np.searchsorted(self.starts, frames, side="right") - 1
        part = np.minimum(part, len(self.readers) - 1)
        return part, frames - self.starts[part]

    def read(self, frames: np.ndarray, last_atom: int | None = None) -> XTCBlock:
        """Decode atoms ``[0, last_atom]`` of global ``frames`` (see :meth:`XTCReader.read`).

        Raises
        ------
        DamagedFileError
            The first bad frame, or the first file fault for a frame at or after it, its
            ``--stop`` counted in global frames.
        ParameterError
            A frame outside the trajectory, or ``last_atom`` out of range.
        """
        frames = np.asarray(frames, dtype=np.int64).reshape(-1)
        if frames.size and (frames.min() < 0 or frames.max() >= self._usable):
            err = self.error()
            if err is not None and frames.min() >= 0:
                raise err
            bad = int(frames.max()) if frames.max() >= self._usable else int(frames.min())
            raise ParameterError(
                f"frame {bad} is outside 0..{self._usable - 1}",
                f"the trajectory has {self._usable} frames",
            )
        last = self.natoms - 1 if last_atom is None else int(last_atom)
        if len(self.readers) == 1:
            return self.readers[0].read(frames, last)
        part, local = self.locate(frames)
        n = frames.size
        coords = np.empty((n, last + 1, 3), np.float32)
        boxes_nm = np.empty((n, 3, 3), np.float32)
        times = np.empty(n, np.float64)
        steps = np.empty(n, np.int64)
        for p in np.unique(part):
            rows = np.flatnonzero(part == p)
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            contiguous = hi - lo == rows.size  # increasing frames: decode in place
            buf = coords[lo:hi] if contiguous else None
            try:
                b = self.readers[p].read(local[rows], last, out=buf)
            except DamagedFileError as err:
                first = int(self.starts[p])
                raise (err.shifted(first) if first else err) from None
            if not contiguous:
                coords[rows] = b.coords
            boxes_nm[rows] = b.boxes_nm
            times[rows] = b.times
            steps[rows] = b.steps
        return XTCBlock(coords, _angstrom(boxes_nm), boxes_nm, times, steps)

    def close(self) -> None:
        for r in self.readers:
            r.close()


#: bytes of decoded frames a block read holds at a time where it keeps only some atoms
#: (a few ions at the end of a solvated system need nearly every atom decoded)
DECODE_BUDGET = 64 << 20


def _is_prefix(idx: np.ndarray, n: int) -> bool:
    """``idx`` is ``0, 1, ..., n - 1``."""
    return (
        idx.size == n
        and (n == 0 or (idx[0] == 0 and idx[-1] == n - 1))
        and bool(np.all(np.diff(idx) == 1))
    )


def read_selections(
    chain: XTCChain, frames: np.ndarray, selections: list, with_box: bool
) -> tuple[list, np.ndarray, np.ndarray | None]:
    """The atoms of ``selections`` in global ``frames``, decoding each frame only up to
    the highest atom any of them needs.

    Parameters
    ----------
    chain : XTCChain
        The indexed files.
    frames : (F,) int64
        Global frame numbers.
    selections : list of (M_k,) int64 arrays or None
        Atom indices (file numbering), None for every atom.
    with_box : bool
        Return the boxes too.

    Returns
    -------
    arrays : list of (F, M_k, 3) float32
        Angstrom, bit-equal to MDAnalysis' ``ts.positions[sel]``.
    times : (F,) float64
        ps.
    box : (F, 6) float64 or None
        ``[a, b, c, alpha, beta, gamma]`` as MDAnalysis' ``ts.dimensions`` (zeros for a
        frame without a box), None unless ``with_box``.

    Raises
    ------
    DamagedFileError
        The first frame that does not decode, the file and the frame named.
    """
    frames = np.asarray(frames, dtype=np.int64)
    n = frames.size
    whole = any(s is None for s in selections)
    last = chain.natoms - 1 if whole else last_needed_atom(*selections)
    if all(s is None or _is_prefix(s, last + 1) for s in selections):
        b = chain.read(frames, last)  # every array is the decoded block itself
        box = b.dimensions().astype(np.float64) if with_box else None
        return [b.coords for _ in selections], b.times, box
    outs = [np.empty((n, chain.natoms if s is None else s.size, 3), np.float32) for s in selections]
    times = np.empty(n, np.float64)
    box = np.empty((n, 6), np.float64) if with_box else None
    step = max(1, DECODE_BUDGET // ((last + 1) * 12))
    for a in range(0, n, step):
        z = min(n, a + step)
        b = chain.read(frames[a:z], last)
        for out, sel in zip(outs, selections, strict=True):
            out[a:z] = b.coords if sel is None else b.coords[:, sel]
        times[a:z] = b.times
        if box is not None:
            box[a:z] = b.dimensions()
    return outs, times, box
