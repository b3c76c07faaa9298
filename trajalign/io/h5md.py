"""HDF5 output in the H5MD 1.1 layout of CONTRACT.md, written block by block.

Every dataset is preallocated for the known frame count; :meth:`H5MDWriter.write_block`
writes one block of frames at its offset, so blocks may arrive in any order.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import platform
import socket
import sys
from datetime import datetime, timezone
from importlib import metadata

import numpy as np

from .._hashes import BackgroundHashes, sha256
from .._names import FRAME_TIME, POSITION
from .._version import __version__

__all__ = [
    "DEPENDENCIES",
    "BackgroundHashes",
    "dependency_versions",
    "H5MDWriter",
    "sha256",
    "triclinic_vectors",
]

DEPENDENCIES = ("numpy", "scipy", "numba", "MDAnalysis", "h5py", "click", "dask", "distributed")


def dependency_versions() -> dict[str, str]:
    """Versions of Python and of trajalign's dependencies, for the provenance."""
    return dict(_versions())


@functools.lru_cache(maxsize=1)
def _versions() -> tuple:
    # importlib.metadata scans site-packages on every call (0.1 s, paid by every output
    # of a --each dataset); the versions cannot change within a process
    out = {"python": sys.version.split()[0]}
    for name in DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return tuple(out.items())


def triclinic_vectors(box: np.ndarray) -> np.ndarray:
    """(b, 6) ``[a, b, c, alpha, beta, gamma]`` -> (b, 3, 3) box vectors as rows;
    (b, 2) 2D edge lengths -> (b, 2, 2) diagonal."""
    box = np.asarray(box)
    if box.shape[-1] == 2:
        out = np.zeros((box.shape[0], 2, 2), dtype=np.float32)
        out[:, 0, 0], out[:, 1, 1] = box[:, 0], box[:, 1]
        return out
    from MDAnalysis.lib.mdamath import triclinic_vectors as tv

    return np.stack([tv(b) for b in box]).astype(np.float32)


class H5MDWriter:
    """Write one trajalign HDF5 file.

    Parameters
    ----------
    path : str
        File to create (normally the temporary path of :class:`~trajalign.io.output.AtomicOutput`).
    n_frames, n_points, dim : int
        Sizes of the aligned coordinates ``/particles/trajectory/position/value``.
    length_unit : str
        ``unit`` attribute of lengths.
    has_box : bool
        Write ``/particles/trajectory/box/edges`` (periodic boundary) from each block's box.
    box_is_provenance : bool
        With ``has_box``: the written positions no longer lie in the input's box (rotated
        frames), so the box is not their periodic cell. The boundary is ``"none"`` and each
        frame's input box vectors go to ``/trajalign/input_box`` (F, D, D) instead.
    atom_indices : (N,) int
        Source indices of the written points.
    positions : bool
        Write ``/particles/trajectory/position`` (False for feature-only outputs).
    locking : bool or "best-effort", optional
        HDF5 file locking (h5py's ``locking``); None follows ``HDF5_USE_FILE_LOCKING``.
    exclusive : bool
        Fail if ``path`` exists instead of truncating it (HDF5 truncates a file before
        it checks the lock, so "w" would wipe a file another process is writing).
    """

    def __init__(
        self,
        path: str,
        n_frames: int,
        n_points: int,
        dim: int,
        length_unit: str = "Angstrom",
        has_box: bool = False,
        box_is_provenance: bool = False,
        atom_indices: np.ndarray | None = None,
        time_unit: str = "ps",
        positions: bool = True,
        locking: bool | str | None = None,
        exclusive: bool = False,
    ) -> None:
        import h5py

        self.n_frames, self.n_points, self.dim = n_frames, n_points, dim
        self.length_unit = length_unit
        self.has_box = has_box
        mode = "w-" if exclusive else "w"
        self.f = h5py.File(path, mode, libver=("earliest", "v114"), locking=locking)
        f = self.f
        h5 = f.create_group("h5md")
        h5.attrs["version"] = np.array([1, 1], dtype=np.int32)
        try:
            user = getpass.getuser()
        except Exception:
            user = "unknown"
        h5.create_group("author").attrs["name"] = user
        creator = h5.create_group("creator")
        creator.attrs["name"] = "trajalign"
        creator.attrs["version"] = __version__

        frames = f.create_group("trajalign/frames")
        self.index = frames.create_dataset("index", (n_frames,), dtype=np.int64)
        self.time = frames.create_dataset("time", (n_frames,), dtype=np.float64)
        self.time.attrs["unit"] = time_unit
        idx = np.arange(n_points) if atom_indices is None else np.asarray(atom_indices)
        f.create_dataset("trajalign/atom_indices", data=idx.astype(np.int64))

        traj = f.create_group("particles/trajectory")
        box = traj.create_group("box")
        box.attrs["dimension"] = np.int32(dim)
        periodic = has_box and not box_is_provenance
        boundary = "periodic" if periodic else "none"
        box.attrs["boundary"] = np.array([boundary.encode()] * dim, dtype="S8")
        if has_box:
            if box_is_provenance:
                where, name = f.require_group("trajalign"), "input_box"
            else:
                where, name = box.create_group("edges"), "value"
                where["step"] = self.index
                where["time"] = self.time
            self.edges = where.create_dataset(
                name,
                (n_frames, dim, dim),
                dtype=np.float32,
                chunks=(min(n_frames, 1024), dim, dim),
            )
            self.edges.attrs["unit"] = length_unit
            if box_is_provenance:
                self.edges.attrs["description"] = (
                    "the input's box vectors (rows) per frame; the positions were rotated "
                    "and do not lie in this box"
                )
        self.position = None
        if positions:
            pos = traj.create_group("position")
            pos["step"] = self.index  # hard links: one copy of the frame numbers
            pos["time"] = self.time
            self.position = pos.create_dataset(
                "value", (n_frames, n_points, dim), dtype=np.float32, chunks=(1, n_points, dim)
            )
            self.position.attrs["unit"] = length_unit
        self._extra: dict[str, object] = {}

    @classmethod
    def reopen(cls, path: str, locking: bool | str | None = None) -> H5MDWriter:
        """Open a partial output again (``--resume``) with every dataset bound by name."""
        import h5py

        self = cls.__new__(cls)
        self.f = f = h5py.File(path, "r+", locking=locking)
        self.index = f["trajalign/frames/index"]
        self.time = f[FRAME_TIME]
        self.n_frames = self.index.shape[0]
        self.position = f.get(POSITION)
        self.edges = f.get("particles/trajectory/box/edges/value")
        if self.edges is None:
            self.edges = f.get("trajalign/input_box")
        self.has_box = self.edges is not None
        self._extra = {}

        def bind(name, obj):
            if isinstance(obj, h5py.Dataset):
                self._extra[name] = obj

        f.visititems(bind)
        return self

    # ------------------------------------------------------------------ datasets
    def create(self, name: str, shape: tuple, dtype=np.float64, attrs: dict | None = None):
        """Preallocate a per-frame dataset (first axis = frames) or a fixed one."""
        ds = self.f.create_dataset(name, shape, dtype=dtype)
        for k, v in (attrs or {}).items():
            ds.attrs[k] = v
        self._extra[name] = ds
        return ds

    def create_observable(self, name: str, shape: tuple = (), unit: str | None = None):
        """Preallocate ``/observables/<name>/{step,time,value}`` (H5MD observables)."""
        g = self.f.create_group(f"observables/{name}")
        g["step"] = self.index
        g["time"] = self.time
        ds = g.create_dataset("value", (self.n_frames, *shape), dtype=np.float64)
        if unit:
            ds.attrs["unit"] = unit
        self._extra[f"observables/{name}/value"] = ds
        return ds

    def write_block(self, offset: int, frames, times, coords, box=None, **extra) -> None:
        """Write one block of frames at ``offset``; ``extra`` maps created dataset names
        to (b, ...) arrays."""
        stop = offset + len(frames)
        self.index[offset:stop] = frames
        self.time[offset:stop] = times
        if self.position is not None and coords is not None:
            self.position[offset:stop] = coords
        if self.has_box and box is not None:
            self.edges[offset:stop] = triclinic_vectors(box)
        for name, value in extra.items():
            self._extra[name][offset:stop] = value

    def write_provenance(
        self,
        argv: list[str],
        inputs: list[str],
        parameters: dict,
        hashes: BackgroundHashes | None = None,
    ) -> None:
        """Record how this file was made under ``/trajalign/provenance`` (``hashes``: the
        inputs' checksums, started early; else they are computed here)."""
        digest = hashes.get if hashes is not None else sha256
        g = self.f.require_group("trajalign/provenance")
        g.attrs["trajalign_version"] = __version__
        g.attrs["argv"] = json.dumps(list(argv))
        g.attrs["inputs"] = json.dumps(
            [
                {"path": os.path.abspath(p), "size": os.path.getsize(p), "sha256": digest(p)}
                for p in inputs
            ]
        )
        g.attrs["parameters"] = json.dumps(parameters, sort_keys=True, default=str)
        g.attrs["dependencies"] = json.dumps(dependency_versions(), sort_keys=True)
        g.attrs["utc_time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        g.attrs["host"] = socket.gethostname()
        g.attrs["platform"] = platform.platform()

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        if self.f:
            self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
