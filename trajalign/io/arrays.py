"""Arrays as trajectories: ``.npy`` / ``.npz`` files shaped (frames, points, 2 or 3),
memory-mapped where the file allows it (:class:`ArraySource`)."""

from __future__ import annotations

import os
import struct
import zipfile

import numpy as np

from ..errors import DataError, InputError, ParameterError
from .base import (
    Block,
    Source,
    SourceSpec,
    check_readable,
    frame_slice,
    parse_index_list,
    restrict_bonds,
)

__all__ = ["ArraySource", "load_array"]

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
            self.bonds = restrict_bonds(all_bonds, self.atom_indices)
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
        from ..box import box_rows, box_table

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
        check_readable(spec.bonds)
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
    check_readable(path)
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
