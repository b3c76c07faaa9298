"""One interface over trajectory inputs: numpy arrays and anything MDAnalysis reads.

A :class:`Source` knows its frames, points, dimension, masses, bonds, box and times, and
reads any block ``[start, stop)`` of its (sliced) frames as a float32 array. It is built
from a :class:`SourceSpec` of plain values, so another process can reopen it by path.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import DataError, InputError, ParameterError, SelectionError
from .integrity import (
    ChildError,
    DecoderCrash,
    GuardedReader,
    bad_boxes,
    box_error,
    check_trajectory,
    coordinates_error,
    crash_error,
    implausible_frames,
    needs_guard,
    open_error,
    parts,
    preflight,
    read_error,
    reader_format,
    stopped_error,
)

ARRAY_SUFFIXES = (".npy", ".npz")


@dataclass(frozen=True)
class SourceSpec:
    """Everything needed to open a source again, in another process if need be."""

    paths: tuple[str, ...]
    top: str | None = None
    select: str = "all"
    key: str | None = None
    masses: str | None = None
    length_unit: str | None = None
    start: int | None = None
    stop: int | None = None
    step: int | None = None
    dt: float | None = None
    aux_select: str | None = None
    guess_bonds: bool = False
    pbc: str = "auto"
    box: str | None = None
    bonds: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Block:
    """Frames ``[start, stop)`` of a source.

    coords : (b, N, D) float32; box : (b, 6) float64 ``[a, b, c, alpha, beta, gamma]``
    or None; times : (b,) float64 in ps; frames : (b,) int64 source frame indices;
    aux : (b, M, D) float32 coordinates of the ``aux_select`` atoms (for example the fit
    atoms of a superposition, which need not be among the written ones) or None.
    """

    start: int
    coords: np.ndarray
    times: np.ndarray
    frames: np.ndarray
    box: np.ndarray | None = None
    aux: np.ndarray | None = None
    repair: dict | None = None


@dataclass
class Source:
    """Base class of the readers; see :func:`open_source`."""

    spec: SourceSpec
    kind: str = ""
    n_points: int = 0
    dim: int = 3
    n_atoms_total: int = 0
    frame_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    atom_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    masses: np.ndarray | None = None
    bonds: np.ndarray | None = None
    aux_indices: np.ndarray | None = None
    aux_masses: np.ndarray | None = None
    has_box: bool = False
    length_unit: str = "Angstrom"
    dt: float = 1.0
    total_frames: int = 0
    #: the periodic repair applied (``whole``, ``cluster``, ``nojump``) or ``none``
    pbc_mode: str = "none"
    #: molecule number of each selected point where molecules were made whole, else None
    molecules: np.ndarray | None = None
    _repair: object = None
    _check_split: bool = False
    _several_molecules: bool = False
    #: (start, stop) of the block the caller reads after the next read (see expect)
    _expected: tuple[int, int] | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frame_indices.size)

    def expect(self, start: int | None, stop: int | None) -> None:
        """Say which block ``[start, stop)`` comes after the next :meth:`read` (None:
        the next in order). A reader that decodes ahead (XTC) decodes that one; a
        worker handed blocks out of order would otherwise wait for a wrong guess."""
        self._expected = None if start is None else (int(start), int(stop))

    def read(self, start: int, stop: int) -> Block:
        """Frames ``[start, stop)``: the selection (and ``aux``), periodic repair done."""
        if self._repair is None:
            block = self._read_plain(start, stop)
            if self._check_split and block.box is not None:
                block.repair = {"spread_frames": self._count_spread(block)}
            return block
        frames = self._check_block(start, stop)
        x, times, box = self._read_raw(frames)
        h = self._box_rows(box, frames.size)
        block_repair = self._repair.apply(x, h, start, self._scan)
        if self._several_molecules and self.pbc_mode == "whole":
            # whole molecules may still sit in different images: say so, cluster fixes it
            block_repair["apart_frames"] = self._repair.count_apart(x, h)
        coords = self._take(x, self._sel_pos)
        aux = None if self.aux_indices is None else self._take(x, self._aux_pos)
        return Block(start, coords, times, frames, box=box, aux=aux, repair=block_repair)

    def _take(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """The rows ``pos`` of repaired coordinates as a C-ordered float32 block."""
        if (
            x.shape[-1] == self.dim
            and pos.size == x.shape[1]
            and np.all(pos == np.arange(pos.size))
        ):
            return x  # the selection is every repaired atom (a protein, say): no copy
        # C order: the kernels reshape rows (advanced indexing may return another layout)
        return np.ascontiguousarray(x[:, pos, : self.dim], dtype=np.float32)

    def _read_plain(self, start: int, stop: int) -> Block:  # pragma: no cover - abstract
        raise NotImplementedError

    def _read_atoms(self, frames: np.ndarray, idx: np.ndarray):  # pragma: no cover
        """(positions (b, len(idx), D) float32, times (b,), box or None) of ``frames``."""
        raise NotImplementedError

    def _read_raw(self, frames: np.ndarray):
        """float32 positions of the repaired atoms (2D padded to 3D in float64)."""
        from ..pbc import _pad3

        pos, times, box = self._read_atoms(frames, self._repair.plan.atoms)
        return (pos if pos.shape[-1] == 3 else _pad3(pos)), times, box

    def _scan(self, a: int, b: int):
        """Raw (unrepaired) frames ``[a, b)`` and their box rows, for nojump's state."""
        frames = self._check_block(a, b)
        x, _, box = self._read_raw(frames)
        return x, self._box_rows(box, frames.size)

    def _box_rows(self, box, n: int) -> np.ndarray:
        from ..pbc import box_rows

        if box is None:
            raise DataError(
                f"{self.spec.paths[0]} has frames without a periodic box",
                "use --pbc none for a trajectory without boxes",
            )
        return box_rows(box, n, self.dim)

    def _count_spread(self, block: Block) -> int:
        """Frames whose selection spans more than half the box, or has a bond longer
        than half the box: it may be split across the periodic boundary."""
        from ..kernels.pbc import split_suspect_kernel
        from ..pbc import SPREAD_LIMIT, _pad3, inverse_rows

        n = block.coords.shape[0]
        h = np.broadcast_to(self._box_rows(block.box, n), (n, 3, 3))
        x = block.coords if block.coords.shape[-1] == 3 else _pad3(block.coords)
        use = self.bonds if self.bonds is not None else np.zeros((0, 2), np.int64)
        bad = np.zeros(n, np.bool_)
        hinv = np.ascontiguousarray(inverse_rows(h))
        split_suspect_kernel(x, hinv, np.ascontiguousarray(use), SPREAD_LIMIT, bad)
        return int(np.count_nonzero(bad))

    def nojump_anchors(self, starts) -> dict:
        """nojump's state before each block start (a pass over the frames), for tasks
        that run on other processes; {} for any other repair."""
        from ..pbc import Repair

        if self._repair is None or self._repair.mode != "nojump":
            return {}
        rep = Repair("nojump", self._repair.plan)
        anchors = {}
        for end in sorted({int(s) for s in starts if s > 0}):
            images, fprev = rep._state_at(end, self._scan)
            anchors[end] = (images.copy(), fprev.copy())
            rep.set_anchor(end, anchors[end])  # the next end replays from here
        return anchors

    def _setup_pbc(self, all_bonds: np.ndarray | None) -> None:
        """Choose the repair (``--pbc``) from the box and bonds the input has."""
        from ..pbc import CHECK_MAX_PAIRS, PBC_MODES, Repair, plan_molecules

        mode = self.spec.pbc or "auto"
        if mode not in PBC_MODES:
            raise ParameterError(f"--pbc {mode} is unknown", f"use one of {', '.join(PBC_MODES)}")
        bonded = all_bonds is not None and len(all_bonds) > 0
        if not self.has_box:
            if mode not in ("auto", "none"):
                raise ParameterError(
                    f"--pbc {mode} needs a periodic box, and {self.spec.paths[0]} has none",
                    "drop --pbc, or give an array's box with --box",
                )
            return
        no_bonds = (
            "give a topology with bonds (TPR, PSF, PDB with CONECT), --guess-bonds, "
            "or for arrays --bonds FILE|chain"
        )
        if mode == "auto":
            mode = "whole" if bonded else "none"
        if mode == "none":
            self._check_split = True
            return
        if mode in ("whole", "cluster") and not bonded:
            raise ParameterError(f"--pbc {mode} needs bonds, and the input has none", no_bonds)
        needed = self.atom_indices
        if self.aux_indices is not None:
            needed = np.union1d(needed, self.aux_indices)
        plan = plan_molecules(all_bonds if bonded else None, self.n_atoms_total, needed)
        self._repair = Repair(mode, plan)
        self.pbc_mode = mode
        self._sel_pos = plan.positions(self.atom_indices)
        if self.aux_indices is not None:
            self._aux_pos = plan.positions(self.aux_indices)
        if plan.bonded:
            self.molecules = plan.mol[self._sel_pos]
            # the check of whole molecules in different images costs a cluster pass
            self._several_molecules = (
                np.unique(self.molecules).size > 1 and plan.cluster_pairs() <= CHECK_MAX_PAIRS
            )

    def resolve(self, selection: str) -> np.ndarray:  # pragma: no cover - abstract
        """Indices (in the files' atom numbering) of the atoms ``selection`` picks."""
        raise NotImplementedError

    def _set_aux(self, all_masses: np.ndarray | None) -> None:
        if self.spec.aux_select is not None:
            self.aux_indices = self.resolve(self.spec.aux_select)
            if all_masses is not None:
                self.aux_masses = np.asarray(all_masses, dtype=np.float64)[self.aux_indices]

    def close(self) -> None:
        """Release open files (the source can still be reopened from ``spec``)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_block(self, start: int, stop: int) -> np.ndarray:
        if not 0 <= start <= stop <= self.n_frames:
            raise IndexError(f"block [{start}, {stop}) outside 0..{self.n_frames}")
        return self.frame_indices[start:stop]


def open_source(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    top: str | os.PathLike | None = None,
    select: str = "all",
    key: str | None = None,
    masses: str | os.PathLike | None = None,
    length_unit: str | None = None,
    start: int | None = None,
    stop: int | None = None,
    step: int | None = None,
    dt: float | None = None,
    aux_select: str | None = None,
    guess_bonds: bool = False,
    pbc: str = "auto",
    box: str | None = None,
    bonds: str | os.PathLike | None = None,
) -> Source:
    """Open one trajectory made of one or more consecutive files.

    Parameters
    ----------
    paths : path or sequence of paths
        ``.npy``/``.npz`` arrays shaped (frames, points, 2 or 3), or trajectory files any
        MDAnalysis reader understands. Several paths are consecutive parts of one trajectory.
    top : path, optional
        Topology for MDAnalysis inputs (PSF, PDB, GRO, ...).
    select : str
        MDAnalysis selection, or for arrays an index list such as ``0-11,14`` (inclusive
        ranges, as MDAnalysis' ``index 0-11``). Default ``all``.
    key : str, optional
        Array name inside an ``.npz`` (default: its only array, else ``arr``).
    masses : path, optional
        Text or ``.npy`` file with one mass per point of an array input.
    length_unit : str, optional
        Length unit of array inputs (default ``Angstrom``); MDAnalysis inputs are Angstrom.
    start, stop, step : int, optional
        Frame slice, as Python's ``range``; ``step`` must be positive.
    dt : float, optional
        Time between frames in ps for array inputs (default 1).
    aux_select : str, optional
        A second selection read beside the first into ``Block.aux`` (fit atoms).
    guess_bonds : bool
        MDAnalysis inputs: guess bonds from distances (``Universe(guess_bonds=True)``).
    pbc : {"auto", "whole", "cluster", "nojump", "none"}
        Periodic repair applied to every block before the selection is taken (see
        :mod:`trajalign.pbc`): ``auto`` makes molecules whole where the input has a box
        and bonds, and otherwise changes nothing.
    box : str, optional
        Array inputs: ``"a,b,c[,alpha,beta,gamma]"`` (``"a,b"`` in 2D) for every frame;
        default: a ``box`` array in the ``.npz``, (6,) or (F, 6), (2,) or (F, 2) in 2D.
    bonds : str or path, optional
        Array inputs: a text file of 0-based point index pairs, or ``"chain"``.

    Returns
    -------
    Source
        Reads blocks with ``read(start, stop)``; reopen with ``open_source(**src.spec.as_dict())``.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    spec = SourceSpec(
        paths=tuple(os.fspath(p) for p in paths),
        top=os.fspath(top) if top is not None else None,
        select=select or "all",
        key=key,
        masses=os.fspath(masses) if masses is not None else None,
        length_unit=length_unit,
        start=start,
        stop=stop,
        step=step,
        dt=dt,
        aux_select=aux_select,
        guess_bonds=bool(guess_bonds),
        pbc=pbc or "auto",
        box=box,
        bonds=os.fspath(bonds) if bonds is not None and bonds != "chain" else bonds,
    )
    if not spec.paths:
        raise InputError("no input files given", "name at least one trajectory file")
    for p in (*spec.paths, *([spec.top] if spec.top else [])):
        _check_readable(p)
    is_array = [p.lower().endswith(ARRAY_SUFFIXES) for p in spec.paths]
    if all(is_array):
        if spec.top is not None:
            raise ParameterError(
                "--top was given for array input", "drop -t/--top: arrays carry no topology"
            )
        return ArraySource(spec)
    if any(is_array):
        raise InputError(
            "arrays and MDAnalysis trajectories are mixed in one input",
            "give either .npy/.npz files or trajectory files, not both",
        )
    if spec.masses is not None:
        raise ParameterError(
            "--masses is for array inputs", "MDAnalysis inputs take masses from the topology"
        )
    return MDASource(spec)


def _check_readable(path: str) -> None:
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file", "check the path")
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder, not a file", "name a trajectory file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied", "make the file readable")
    if os.path.getsize(path) == 0:
        raise InputError(
            f"{path}: is empty (0 bytes)", "check that the file was written, or write it again"
        )


def frame_slice(total: int, start, stop, step) -> np.ndarray:
    """Source frame indices selected by ``start:stop:step`` of ``total`` frames."""
    if step is not None and step <= 0:
        raise ParameterError(
            f"--step {step} is not positive", "use a step of 1 or more; frames run forward"
        )
    idx = np.arange(total, dtype=np.int64)[slice(start, stop, step)]
    if idx.size == 0:
        raise ParameterError(
            f"the frame slice start={start} stop={stop} step={step} selects no frames of {total}",
            f"choose --start/--stop within 0..{total}",
        )
    return idx


_INDEX_ITEM = re.compile(r"^\s*(-?\d+)\s*(?:(?:-|:)\s*(-?\d+)\s*)?$")


def parse_index_list(text: str, n: int) -> np.ndarray:
    """Parse ``all`` or ``0-11,14,20:22`` (inclusive ranges) into indices below ``n``."""
    t = text.strip()
    if t.lower().startswith("index "):
        t = t[6:]
    if t.lower() == "all":
        return np.arange(n, dtype=np.int64)
    out: list[int] = []
    for item in re.split(r"[,\s]+", t.strip()):
        if not item:
            continue
        m = _INDEX_ITEM.match(item)
        if not m:
            raise SelectionError(
                f"cannot read point selection {text!r}",
                "for arrays give indices and inclusive ranges such as 0-11,14",
            )
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a:
            raise SelectionError(f"range {item} runs backwards", "write ranges as low-high")
        out.extend(range(a, b + 1))
    idx = np.asarray(out, dtype=np.int64)
    if idx.size == 0:
        raise SelectionError(f"point selection {text!r} is empty", "select at least one point")
    bad = idx[(idx < 0) | (idx >= n)]
    if bad.size:
        raise SelectionError(
            f"point index {bad[0]} in selection {text!r} is out of range for {n} points",
            f"use indices 0 to {n - 1}",
        )
    if np.unique(idx).size != idx.size:
        dup = idx[np.flatnonzero(np.bincount(idx) > 1)[0] == idx][0]
        raise SelectionError(f"point {dup} is selected twice in {text!r}", "list every point once")
    return idx


# --------------------------------------------------------------------------- arrays


def _npz_member_memmap(path: str, member: str):
    """Memory-map an uncompressed ``.npy`` member of a zip; None if it is compressed."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if local[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        fmt = np.lib.format
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            return None
        offset = fh.tell()
    if dtype.hasobject:
        raise DataError(
            f"{path}[{member[:-4]}] holds Python objects",
            "save a numeric array; trajalign never unpickles input",
        )
    order = "F" if fortran else "C"
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)


def _check_npy_header(path: str) -> None:
    """Refuse object dtypes and truncated data before memory-mapping an .npy file."""
    fmt = np.lib.format
    with open(path, "rb") as fh:
        version = fmt.read_magic(fh)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(fh)
        offset = fh.tell()
    if dtype.hasobject:
        raise DataError(
            f"{path} holds Python objects", "save a numeric array; trajalign never unpickles input"
        )
    need = offset + int(np.prod(shape)) * dtype.itemsize
    have = os.path.getsize(path)
    if have < need:
        raise InputError(
            f"{path} is truncated: its header says {shape} {dtype} ({need} bytes), "
            f"the file has {have}",
            "write the file again; it was cut short",
        )


def load_array(path: str, key: str | None) -> np.ndarray:
    """Open one ``.npy``/``.npz`` array without unpickling, memory-mapped where possible."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    is_npy = path.lower().endswith(".npy")
    if (is_npy and magic != b"\x93NUMPY") or (not is_npy and magic[:2] != b"PK"):
        kind = "an .npy array (numpy.save)" if is_npy else "an .npz archive (numpy.savez)"
        raise InputError(
            f"{path} is not a readable numpy array file: it does not start like {kind}",
            "check the file's format and extension",
        )
    try:
        if is_npy:
            _check_npy_header(path)
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
        if not keys:
            raise InputError(f"{path} holds no arrays", "save the coordinates into it")
        if key is None:
            if len(keys) == 1:
                key = keys[0]
            elif "arr" in keys:
                key = "arr"
            else:
                raise InputError(
                    f"{path} holds several arrays ({', '.join(keys)}) and none is named 'arr'",
                    "choose one with --key NAME",
                )
        elif key not in keys:
            raise InputError(
                f"{path} has no array named {key!r} (it has {', '.join(keys)})",
                "pass one of those names to --key",
            )
        mm = _npz_member_memmap(path, key + ".npy")
        if mm is not None:
            return mm
        with np.load(path, allow_pickle=False) as npz:
            return npz[key]
    except (InputError, DataError):
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataError(
                f"{path} holds Python objects",
                "save a numeric array; trajalign never unpickles input",
            ) from None
        raise InputError(
            f"{path} is not a readable numpy array file ({exc})",
            "check that it was written with numpy.save/savez and is complete",
        ) from None
    except (zipfile.BadZipFile, EOFError, OSError, struct.error, KeyError) as exc:
        raise InputError(
            f"{path} is not a readable numpy array file ({type(exc).__name__}: {exc})",
            "check that it was written with numpy.save/savez and is complete",
        ) from None


def _check_array(arr: np.ndarray, path: str) -> None:
    if arr.dtype.hasobject:
        raise DataError(f"{path} holds Python objects", "save a numeric float array")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(
            f"{path} has dtype {arr.dtype}, not real numbers", "save float32 or float64 data"
        )
    if arr.ndim != 3 or arr.shape[-1] not in (2, 3):
        raise DataError(
            f"{path} has shape {arr.shape}, not (frames, points, 2 or 3)",
            "reshape it to (frames, points, dim) before saving",
        )
    if arr.shape[1] == 0:
        raise DataError(f"{path} has zero points per frame", "save at least one point")


class ArraySource(Source):
    """Frames from ``.npy``/``.npz`` files (memory-mapped unless compressed)."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec=spec, kind="array")
        self._arrays = [load_array(p, spec.key) for p in spec.paths]
        for a, p in zip(self._arrays, spec.paths, strict=True):
            _check_array(a, p)
        shapes = {a.shape[1:] for a in self._arrays}
        if len(shapes) > 1:
            raise DataError(
                f"the input arrays have different (points, dim): {sorted(shapes)}",
                "give parts of one trajectory, all with the same points",
            )
        n_all, self.dim = self._arrays[0].shape[1:]
        self.n_atoms_total = int(n_all)
        self._offsets = np.cumsum([0] + [a.shape[0] for a in self._arrays])
        self.total_frames = int(self._offsets[-1])
        if self.total_frames == 0:
            raise DataError(f"{spec.paths[0]} has zero frames", "save at least one frame")
        self.frame_indices = frame_slice(self.total_frames, spec.start, spec.stop, spec.step)
        self.atom_indices = parse_index_list(spec.select, n_all)
        self._all_atoms = self.atom_indices.size == n_all and bool(
            np.all(self.atom_indices == np.arange(n_all))
        )
        self.n_points = int(self.atom_indices.size)
        self.length_unit = spec.length_unit or "Angstrom"
        if spec.dt is not None and not spec.dt > 0:
            raise ParameterError(f"--dt {spec.dt} is not positive", "give the frame spacing in ps")
        self.dt = float(spec.dt) if spec.dt is not None else 1.0
        all_masses = _load_masses(spec.masses, n_all) if spec.masses is not None else None
        if all_masses is not None:
            self.masses = all_masses[self.atom_indices]
        self._set_aux(all_masses)
        self._box = self._load_box()
        self.has_box = self._box is not None
        all_bonds = self._load_bonds()
        if all_bonds is not None:
            self.bonds = _restrict_bonds(all_bonds, self.atom_indices)
        self._setup_pbc(all_bonds)

    def resolve(self, selection: str) -> np.ndarray:
        return parse_index_list(selection, self.n_atoms_total)

    def _read_plain(self, start: int, stop: int) -> Block:
        frames = self._check_block(start, stop)
        out = np.empty((frames.size, self.n_points, self.dim), dtype=np.float32)
        aux = None
        if self.aux_indices is not None:
            aux = np.empty((frames.size, self.aux_indices.size, self.dim), dtype=np.float32)
        for rows, chunk in self._chunks(frames):
            if aux is not None:
                aux[rows] = chunk[:, self.aux_indices]
            out[rows] = chunk if self._all_atoms else chunk[:, self.atom_indices]
        return Block(
            start=start,
            coords=out,
            times=frames * self.dt,
            frames=frames,
            box=self._box_of(frames),
            aux=aux,
        )

    def _chunks(self, frames: np.ndarray):
        """(rows of ``frames``, their frames of one file) for each file they touch."""
        # frames are increasing, so each file contributes one contiguous run of them
        which = np.searchsorted(self._offsets, frames, side="right") - 1
        for part in np.unique(which):
            rows = np.flatnonzero(which == part)
            local = frames[rows] - self._offsets[part]
            arr = self._arrays[part]
            lo, hi = int(local[0]), int(local[-1]) + 1
            chunk = arr[lo:hi]
            if local.size != hi - lo:
                chunk = chunk[local - lo]
            yield rows, chunk

    def _read_atoms(self, frames: np.ndarray, idx: np.ndarray):
        out = np.empty((frames.size, idx.size, self.dim), dtype=np.float32)
        for rows, chunk in self._chunks(frames):
            out[rows] = chunk[:, idx]
        return out, frames * self.dt, self._box_of(frames)

    def _box_of(self, frames: np.ndarray) -> np.ndarray | None:
        if self._box is None:
            return None
        if self._box.shape[0] == 1:
            return np.repeat(self._box, frames.size, axis=0)
        return self._box[frames]

    def _load_box(self) -> np.ndarray | None:
        """The box of an array input: ``--box``, else a ``box`` array in the .npz."""
        spec = self.spec
        width = 6 if self.dim == 3 else 2
        what = "[a, b, c, alpha, beta, gamma]" if self.dim == 3 else "[a, b]"
        if spec.box is not None:
            try:
                vals = [float(v) for v in spec.box.replace(",", " ").split()]
            except ValueError:
                raise ParameterError(
                    f"cannot read --box {spec.box!r}", f"give {what} as numbers, e.g. 40,40,40"
                ) from None
            if self.dim == 3 and len(vals) == 3:
                vals += [90.0, 90.0, 90.0]
            box = np.asarray(vals, dtype=np.float64)[None]
            where = "--box"
        else:
            box, where = None, ""
            for p in spec.paths:
                if p.lower().endswith(".npz") and (spec.key or "arr") != "box":
                    with np.load(p, allow_pickle=False) as npz:
                        if "box" in npz.files:
                            box, where = np.asarray(npz["box"], dtype=np.float64), f"{p}[box]"
                            break
            if box is None:
                return None
            if box.ndim == 1:
                box = box[None]
        if spec.box is not None and box.shape[1] != width:
            raise ParameterError(
                f"--box {spec.box} has {box.shape[1]} numbers, a {self.dim}D input needs "
                f"{width if self.dim == 2 else '3 or 6'}",
                f"give {what}",
            )
        if box.ndim != 2 or box.shape[1] != width or box.shape[0] not in (1, self.total_frames):
            raise ParameterError(
                f"the box from {where} has shape {box.shape}",
                f"give {what} once, or one row per frame ({self.total_frames} frames)",
            )
        from ..box import box_table
        from ..pbc import box_rows

        # the kernels' checks, once, before any block: a cell, a lattice
        box_table(box_rows(box, box.shape[0], self.dim))
        return box

    def _load_bonds(self) -> np.ndarray | None:
        spec = self.spec
        if spec.bonds is None:
            return None
        n = self.n_atoms_total
        if spec.bonds == "chain":
            from ..internal import chain_tuples

            return chain_tuples(n, 2)
        _check_readable(spec.bonds)
        try:
            b = np.loadtxt(spec.bonds, dtype=np.int64, ndmin=2, comments="#")
        except ValueError as exc:
            raise InputError(
                f"cannot read bonds from {spec.bonds} ({exc})",
                "give one pair of 0-based point indices per line",
            ) from None
        if b.size == 0:
            return None
        if b.shape[1] != 2:
            raise ParameterError(
                f"{spec.bonds} has {b.shape[1]} numbers per line, not 2",
                "give one pair of 0-based point indices per line",
            )
        if b.min() < 0 or b.max() >= n:
            bad = int(b.max()) if b.max() >= n else int(b.min())
            raise ParameterError(
                f"{spec.bonds} names point {bad}, outside 0..{n - 1}",
                "give one pair of 0-based point indices per line",
            )
        return b


def _load_masses(path: str, n: int) -> np.ndarray:
    _check_readable(path)
    try:
        if path.lower().endswith(".npy"):
            m = np.load(path, allow_pickle=False)
        else:
            m = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except (ValueError, OSError) as exc:
        raise InputError(
            f"cannot read masses from {path} ({exc})", "give one number per point, one per line"
        ) from None
    m = np.asarray(m, dtype=np.float64).reshape(-1)
    if m.size != n:
        raise ParameterError(
            f"{path} has {m.size} masses for {n} points", "give one mass per point of the array"
        )
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        raise ParameterError(f"{path} has negative, NaN or inf masses", "masses must be >= 0")
    return m


# ----------------------------------------------------------------------- MDAnalysis


def _mda_error(exc: Exception, spec: SourceSpec) -> InputError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    files = ", ".join(([spec.top] if spec.top else []) + list(spec.paths))
    low = msg.lower()
    if "number of atoms" in low or "n_atoms" in low or "atoms" in low and "match" in low:
        return InputError(
            f"topology and trajectory do not match: {msg}",
            "use the topology the trajectory was written with",
        )
    if "vdw radii" in low:
        return InputError(
            f"--guess-bonds cannot guess bonds for {files}: {msg}",
            "use a topology that has bonds (TPR, PSF, PDB with CONECT records)",
        )
    hint = "check that the files are complete and of the format their extension says"
    if spec.top is None:
        hint = "give a topology with -t/--top, or " + hint
    return InputError(f"MDAnalysis cannot read {files}: {msg}", hint)


#: parsed topologies, by the file's identity and options: a ``--workers`` process forked
#: from the driver after it opened the input (see trajalign.pool) inherits the driver's
#: and skips parsing it again (0.6 s for a 47681-atom TPR)
_TOPOLOGIES: dict = {}


def _universe(spec: SourceSpec, args: list):
    """``mda.Universe(*args)``, from an already parsed topology where there is one."""
    import MDAnalysis as mda

    key = None
    if spec.top:
        st = os.stat(spec.top)
        key = (os.path.abspath(spec.top), st.st_size, st.st_mtime_ns, spec.guess_bonds)
        topology = _TOPOLOGIES.get(key)
        if topology is not None:
            return mda.Universe(topology, *spec.paths)
    u = mda.Universe(*args, guess_bonds=spec.guess_bonds)
    if key is not None:
        _TOPOLOGIES.clear()  # one input at a time: the last one's
        _TOPOLOGIES[key] = u._topology
    return u


class MDASource(Source):
    """Frames from any trajectory MDAnalysis reads, with topology data."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec=spec, kind="mdanalysis")
        args = ([spec.top] if spec.top else []) + list(spec.paths)
        preflight(spec.paths, spec.stop)  # what MDAnalysis' opening would crash on
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.universe = _universe(spec, args)
            except Exception as exc:  # MDAnalysis raises many types for bad files
                # a damaged trajectory is named with its first bad frame where we can
                # find it (MDAnalysis' own message names neither)
                raise (open_error(spec.paths) or _mda_error(exc, spec)) from None
        u = self.universe
        ag = self._select(spec.select)
        self.atoms = ag
        self.atom_indices = ag.indices.astype(np.int64)
        self._all_atoms = ag.n_atoms == u.atoms.n_atoms
        self.n_points = int(ag.n_atoms)
        self.n_atoms_total = int(u.atoms.n_atoms)
        self.dim = 3
        self.length_unit = "Angstrom"
        if spec.length_unit not in (None, "Angstrom"):
            raise ParameterError(
                "--length-unit is for array inputs", "MDAnalysis inputs are in Angstrom"
            )
        try:  # text readers count frames on first use, reading the whole file
            self.total_frames = int(u.trajectory.n_frames)
        except Exception as exc:
            raise read_error(u.trajectory, 0, exc, count=True) from None
        # every frame header and the frame counts against the sizes, before any frame
        # is used: no frame lost or invented silently, no decoder fed a broken header
        stop = spec.stop
        if stop is not None and stop < 0:
            stop = max(0, self.total_frames + stop)
        check_trajectory(u.trajectory, stop)
        if self.total_frames == 0:
            raise DataError(f"{spec.paths[0]} has zero frames", "check the trajectory file")
        self.frame_indices = frame_slice(self.total_frames, spec.start, spec.stop, spec.step)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Reader has no dt information, set to 1.0 ps"
            try:
                self.dt = float(u.trajectory.dt)
            except Exception:
                self.dt = 1.0
        all_masses = None
        if hasattr(u.atoms, "masses"):
            all_masses = np.asarray(u.atoms.masses, dtype=np.float64)
            self.masses = all_masses[self.atom_indices]
        self._set_aux(all_masses)
        all_bonds = None
        bonds = getattr(u, "bonds", None)  # a topology group built on each access: once
        if bonds is not None and len(bonds):
            all_bonds = np.asarray(bonds.indices, dtype=np.int64)
            self.bonds = _restrict_bonds(all_bonds, self.atom_indices)
        dims = u.trajectory.ts.dimensions
        self.has_box = dims is not None and bool(np.all(np.asarray(dims[:3]) > 0))
        if spec.box is not None or spec.bonds is not None:
            raise ParameterError(
                "--box and --bonds are for array inputs",
                "MDAnalysis inputs take the box from the trajectory and bonds from the topology",
            )
        self._setup_pbc(all_bonds)
        self._guard = None
        # formats that store raw floats: damaged bytes there still read as numbers
        self._check_values = any(reader_format(r) != "XTC" for r, _, _ in parts(u.trajectory))
        if needs_guard(u.trajectory):
            # forked now, while this process holds no output file or worker threads
            try:
                self._guard = GuardedReader(u.trajectory)
            except OSError:  # no process or shared memory to spare: read here
                self._guard = None

    def _select(self, selection: str):
        try:
            ag = self.universe.select_atoms(selection)
        except Exception as exc:
            raise SelectionError(
                f"cannot use selection {selection!r}: {str(exc).splitlines()[0]}",
                "write an MDAnalysis selection such as 'protein and name CA'",
            ) from None
        if ag.n_atoms == 0:
            raise SelectionError(
                f"selection {selection!r} matches no atoms",
                "check atom and residue names with 'trajalign info'",
            )
        return ag

    def resolve(self, selection: str) -> np.ndarray:
        return self._select(selection).indices.astype(np.int64)

    def _read_frames(self, frames: np.ndarray, selections: list):
        """Positions of ``selections`` (index arrays, None for every atom) in ``frames``.

        Returns a list of (b, M_k, 3) float32 arrays, the times (b,) and the box (b, 6)
        or None. A reader that fails, crashes, stops early or returns a broken box is
        reported as a damaged file, with the file and the frame.
        """
        traj = self.universe.trajectory
        if self._guard is not None:
            try:
                arrays, times, box, count = self._guard.read(
                    frames, selections, self.has_box, predict=self._next_frames(frames)
                )
            except DecoderCrash as crash:
                raise crash_error(traj, crash, frames) from None
            except ChildError as err:
                frame = int(frames[0]) if err.frame is None else err.frame
                raise read_error(traj, frame, err.text) from None
        else:
            arrays, times, box, count = self._read_here(frames, selections)
        if count != frames.size:
            raise stopped_error(traj, int(frames[count]))
        if box is not None:
            bad = bad_boxes(box)
            if bad.size:
                raise box_error(traj, int(frames[bad[0]]), box[bad[0]])
        if self._check_values:
            # frames stored as raw floats (TRR, DCD, NetCDF, text) read from damaged
            # bytes are still numbers: NaN, inf or far beyond any box; XTC stores
            # integers times a precision, whose headers are checked
            for out in arrays:
                bad = implausible_frames(out)
                if bad.size:
                    raise coordinates_error(traj, int(frames[bad[0]]))
        return arrays, times, box

    def _read_here(self, frames: np.ndarray, selections: list):
        """:meth:`_read_frames` in this process (formats whose decoders cannot crash)."""
        n = frames.size
        outs = [
            np.empty((n, self.n_atoms_total if s is None else s.size, 3), dtype=np.float32)
            for s in selections
        ]
        times = np.empty(n, dtype=np.float64)
        box = np.zeros((n, 6), dtype=np.float64) if self.has_box else None
        i = -1
        try:
            for i, ts in enumerate(self._iterate(frames)):
                pos = ts.positions
                for out, sel in zip(outs, selections, strict=True):
                    out[i] = pos if sel is None else pos[sel]
                times[i] = ts.time
                if box is not None and ts.dimensions is not None:
                    box[i] = ts.dimensions
        except Exception as exc:
            at = int(frames[i + 1]) if i + 1 < n else int(frames[-1])
            raise read_error(self.universe.trajectory, at, exc) from None
        return outs, times, box, i + 1

    def _next_frames(self, frames: np.ndarray) -> np.ndarray | None:
        """The block the caller asks for after ``frames``: the one named by
        :meth:`expect`, else the next in order."""
        idx = self.frame_indices
        if self._expected is not None:
            start, stop = self._expected
            self._expected = None
            return idx[start:stop]
        p = int(np.searchsorted(idx, frames[-1]))
        if p >= idx.size or idx[p] != frames[-1]:
            return None
        return idx[p + 1 : p + 1 + frames.size]

    def _iterate(self, frames: np.ndarray):
        traj = self.universe.trajectory
        n = frames.size
        contiguous = n > 0 and frames[-1] - frames[0] == n - 1
        return traj[int(frames[0]) : int(frames[-1]) + 1] if contiguous else traj[frames]

    def _read_atoms(self, frames: np.ndarray, idx: np.ndarray):
        (out,), times, box = self._read_frames(frames, [np.asarray(idx, np.int64)])
        return out, times, box

    def _read_plain(self, start: int, stop: int) -> Block:
        frames = self._check_block(start, stop)
        selections = [None if self._all_atoms else self.atom_indices]
        if self.aux_indices is not None:
            selections.append(self.aux_indices)
        arrays, times, box = self._read_frames(frames, selections)
        aux = arrays[1] if self.aux_indices is not None else None
        return Block(start=start, coords=arrays[0], times=times, frames=frames, box=box, aux=aux)

    def close(self) -> None:
        if getattr(self, "_guard", None) is not None:
            self._guard.close()
            self._guard = None
        try:
            self.universe.trajectory.close()
        except Exception:
            pass


def _restrict_bonds(pairs: np.ndarray, atom_indices: np.ndarray) -> np.ndarray | None:
    """Bonds with both atoms selected, renumbered to positions in ``atom_indices``."""
    pos = np.full(int(max(pairs.max(), atom_indices.max())) + 1, -1, dtype=np.int64)
    pos[atom_indices] = np.arange(atom_indices.size)
    mapped = pos[np.asarray(pairs, dtype=np.int64)]
    keep = np.all(mapped >= 0, axis=1)
    return mapped[keep] if keep.any() else None
