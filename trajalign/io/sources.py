"""One interface over trajectory inputs: numpy arrays and anything MDAnalysis reads.

A :class:`Source` knows its frames, points, dimension, masses, bonds, box and times, and
reads any block ``[start, stop)`` of its (sliced) frames as a float32 array. It is built
from a :class:`SourceSpec` of plain values, so another process can reopen it by path.
XTC files are decoded by trajalign's own reader (:mod:`trajalign.io.xtc`) unless the
spec's ``xtc_reader`` says ``mdanalysis``; every other format is read by MDAnalysis.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import DataError, InputError, ParameterError, SelectionError
from .arrays import ArraySource, load_array
from .base import (
    ARRAY_SUFFIXES,
    Block,
    Source,
    SourceSpec,
    check_readable,
    frame_slice,
    parse_index_list,
    restrict_bonds,
)
from .guard import ChildError, DecoderCrash, GuardedReader
from .integrity import (
    bad_boxes,
    box_error,
    box_error_at,
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

__all__ = [
    "ARRAY_SUFFIXES",
    "ArraySource",
    "Block",
    "MDASource",
    "Source",
    "SourceSpec",
    "frame_slice",
    "load_array",
    "open_source",
    "parse_index_list",
    "uses_native_xtc",
    "xtc_reader_choice",
    "XTC_READERS",
]


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
    xtc_reader: str | None = None,
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
    xtc_reader : {"native", "mdanalysis"}, optional
        XTC inputs: trajalign's decoder (:mod:`trajalign.io.xtc`) or MDAnalysis' (in a
        guard child process); default ``TRAJALIGN_XTC_READER``, else ``native``.

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
        xtc_reader=xtc_reader_choice(xtc_reader),
    )
    return _open_spec(spec)


def _open_spec(spec: SourceSpec) -> Source:
    """The reader for ``spec``: arrays, or MDAnalysis (with the native XTC reader)."""
    if not spec.paths:
        raise InputError("no input files given", "name at least one trajectory file")
    for p in (*spec.paths, *([spec.top] if spec.top else [])):
        check_readable(p)
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


#: the XTC readers ``--xtc-reader`` and ``TRAJALIGN_XTC_READER`` choose between
XTC_READERS = ("native", "mdanalysis")


def xtc_reader_choice(value: str | None = None) -> str:
    """The XTC reader a source uses: ``value``, else ``TRAJALIGN_XTC_READER``, else
    ``native``.

    Raises
    ------
    ParameterError
        A name that is neither ``native`` nor ``mdanalysis``.
    """
    if value:
        choice, origin = value, "--xtc-reader"
    else:
        choice = os.environ.get("TRAJALIGN_XTC_READER", "") or "native"
        origin = "TRAJALIGN_XTC_READER"
    choice = choice.strip().lower()
    if choice not in XTC_READERS:
        raise ParameterError(
            f"{origin} {choice!r} is not an XTC reader", f"use one of {', '.join(XTC_READERS)}"
        )
    return choice


def uses_native_xtc(spec: SourceSpec) -> bool:
    """Every file of ``spec`` is an XTC and the native reader is chosen (MDAnalysis
    reads everything else)."""
    return spec.xtc_reader == "native" and all(p.lower().endswith(".xtc") for p in spec.paths)


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


def _universe(spec: SourceSpec, args: list, **reader_kw):
    """``mda.Universe(*args, **reader_kw)``, from an already parsed topology where there
    is one (``args`` is the topology, then the coordinates)."""
    import MDAnalysis as mda

    key = None
    if spec.top:
        st = os.stat(spec.top)
        key = (os.path.abspath(spec.top), st.st_size, st.st_mtime_ns, spec.guess_bonds)
        entry = _TOPOLOGIES.get(key)
        if entry is not None:
            return mda.Universe(entry["topology"], *args[1:], **reader_kw)
    u = mda.Universe(*args, guess_bonds=spec.guess_bonds, **reader_kw)
    if key is not None:
        _TOPOLOGIES.clear()  # one input at a time: the last one's
        _TOPOLOGIES[key] = {"topology": u._topology}
    return u


def topology_indices(u, attr: str) -> np.ndarray | None:
    """The atom tuples of a topology attribute (``bonds``, ``angles``, ``dihedrals``) as
    a read-only int64 array, or None where it lists none: once per parsed topology
    (MDAnalysis builds the group on every access, 0.16 s for the bonds of a solvated
    protein, paid again by every input of a ``--each`` dataset)."""
    entry = next((e for e in _TOPOLOGIES.values() if e["topology"] is u._topology), {})
    if attr in entry:
        return entry[attr]
    group = getattr(u, attr, None)
    arr = None
    if group is not None and len(group):
        arr = np.asarray(group.indices, dtype=np.int64)
        arr.flags.writeable = False
    if entry:
        entry[attr] = arr
    return arr


def _open_universe(spec: SourceSpec, args: list, **reader_kw):
    """:func:`_universe`, with MDAnalysis' many error types turned into one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _universe(spec, args, **reader_kw)
        except Exception as exc:  # MDAnalysis raises many types for bad files
            # a damaged trajectory is named with its first bad frame where we can
            # find it (MDAnalysis' own message names neither)
            bad = None if reader_kw else open_error(spec.paths)
            raise (bad or _mda_error(exc, spec)) from None


def _stop_frame(stop: int | None, total: int) -> int | None:
    """A ``--stop`` as a frame number (a negative one counts from ``total``)."""
    return max(0, total + stop) if stop is not None and stop < 0 else stop


class MDASource(Source):
    """Frames from any trajectory MDAnalysis reads, with topology data.

    XTC files are decoded by trajalign's own reader (:mod:`trajalign.io.xtc`) unless
    ``spec.xtc_reader`` is ``mdanalysis``: the universe then holds the topology and
    frame 0 only (a memory reader), and :attr:`xtc` the indexed files.
    """

    def topology_tuples(self, attr: str) -> np.ndarray | None:
        """(K, 2|3|4) atom tuples the topology lists (``bonds``, ``angles``,
        ``dihedrals``), in topology numbering; None where it lists none."""
        return topology_indices(self.universe, attr)

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec=spec, kind="mdanalysis")
        self._guard = None
        #: the native reader's indexed XTC files (:class:`~trajalign.io.xtc.XTCChain`),
        #: or None where MDAnalysis reads the frames
        self.xtc = None
        if uses_native_xtc(spec):
            self.universe = self._open_native(spec)
        else:
            self.universe = self._open_mdanalysis(spec)
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
        if self.total_frames == 0:
            raise DataError(f"{spec.paths[0]} has zero frames", "check the trajectory file")
        self.frame_indices = frame_slice(self.total_frames, spec.start, spec.stop, spec.step)
        all_masses = None
        if hasattr(u.atoms, "masses"):
            all_masses = np.asarray(u.atoms.masses, dtype=np.float64)
            self.masses = all_masses[self.atom_indices]
        self._set_aux(all_masses)
        all_bonds = topology_indices(u, "bonds")
        if all_bonds is not None:
            self.bonds = restrict_bonds(all_bonds, self.atom_indices)
        dims = u.trajectory.ts.dimensions
        self.has_box = dims is not None and bool(np.all(np.asarray(dims[:3]) > 0))
        if spec.box is not None or spec.bonds is not None:
            raise ParameterError(
                "--box and --bonds are for array inputs",
                "MDAnalysis inputs take the box from the trajectory and bonds from the topology",
            )
        self._setup_pbc(all_bonds)
        if self.xtc is None and needs_guard(u.trajectory):
            # forked now, while this process holds no output file or worker threads
            try:
                self._guard = GuardedReader(u.trajectory)
            except OSError:  # no process or shared memory to spare: read here
                self._guard = None

    def _open_native(self, spec: SourceSpec):
        """Index the XTC files (every header checked), decode frame 0 (one thread: no
        Numba thread pool is started before ``--workers`` fork), and make a universe of
        the topology and that frame."""
        from MDAnalysis.coordinates.memory import MemoryReader

        from .xtc import XTCChain

        chain = self.xtc = XTCChain.open(spec.paths)
        err = chain.error(_stop_frame(spec.stop, chain.n_frames))
        if err is not None:
            raise err
        if chain.n_frames == 0:
            raise DataError(f"{spec.paths[0]} has zero frames", "check the trajectory file")
        x0, dims = chain.first_frame()
        reader_kw = dict(format=MemoryReader, dimensions=dims if np.all(dims[:3] > 0) else None)
        if spec.top is None:  # atoms without names, as MDAnalysis opens an XTC alone
            import MDAnalysis as mda

            u = mda.Universe.empty(chain.natoms, trajectory=False)
            u.load_new(x0[None], **reader_kw)
        else:
            u = _open_universe(spec, [spec.top, x0[None]], **reader_kw)
        self.total_frames = chain.n_frames
        self.dt = chain.dt
        self._check_values = False  # XTC stores integers in a checked range
        return u

    def _open_mdanalysis(self, spec: SourceSpec):
        """Open the files with MDAnalysis, after the checks its opening needs."""
        args = ([spec.top] if spec.top else []) + list(spec.paths)
        preflight(spec.paths, spec.stop)  # what MDAnalysis' opening would crash on
        u = _open_universe(spec, args)
        try:  # text readers count frames on first use, reading the whole file
            self.total_frames = int(u.trajectory.n_frames)
        except Exception as exc:
            raise read_error(u.trajectory, 0, exc, count=True) from None
        # every frame header and the frame counts against the sizes, before any frame
        # is used: no frame lost or invented silently, no decoder fed a broken header
        check_trajectory(u.trajectory, _stop_frame(spec.stop, self.total_frames))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Reader has no dt information, set to 1.0 ps"
            try:
                self.dt = float(u.trajectory.dt)
            except Exception:
                self.dt = 1.0
        # formats that store raw floats: damaged bytes there still read as numbers
        self._check_values = any(reader_format(r) != "XTC" for r, _, _ in parts(u.trajectory))
        return u

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
        if self.xtc is not None:
            return self._read_native(frames, selections)
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

    def _read_native(self, frames: np.ndarray, selections: list):
        """:meth:`_read_frames` by the native XTC reader: atoms up to the highest one
        any selection needs (selection, fit atoms, repaired molecules), every frame of
        a block decoded in parallel."""
        from .xtc import read_selections

        arrays, times, box = read_selections(self.xtc, frames, selections, self.has_box)
        if box is not None:
            bad = bad_boxes(box)
            if bad.size:
                frame = int(frames[bad[0]])
                path, local = self.xtc.where(frame)
                raise box_error_at(path, local, frame, box[bad[0]], "XTC")
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
        if getattr(self, "xtc", None) is not None:
            self.xtc.close()  # its memory maps (reopened by the next read)
        if getattr(self, "_guard", None) is not None:
            self._guard.close()
            self._guard = None
        try:
            self.universe.trajectory.close()
        except Exception:
            pass
