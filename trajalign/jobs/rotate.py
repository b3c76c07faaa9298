"""``trajalign rotate``: Kabsch superposition, principal axes, or point-vector frames.

The fit atoms (``--fit-select``, read by the source into ``Block.aux``) define each
frame's rigid motion; every written atom moves with it. The average reference is found
in :meth:`RotateJob.prepare` by passes over the source block by block, so memory stays
bounded. Principal axes with ``--sign continuity`` carry the previous frame's axes from
block to block (job state when blocks come in order, :meth:`RotateJob.stitch` when they
do not), so a chunked run equals a single-block run.
"""

from __future__ import annotations

import os

import numpy as np

from .._names import DIAGNOSTICS, FRAME_TIME, POSITION, ROTATE_METHODS, TRANSLATION
from .._validate import check_finite_frames
from ..align import (
    DEGENERATE_GAP,
    PRINCIPAL_CENTERS,
    SIGN_MODES,
    average_reference,
    check_fit_count,
    check_points,
    fit_weights,
    kabsch_warnings,
    points_block,
    prepare_reference,
    principal_block,
    principal_frame_lists,
    principal_warnings,
    raise_if_nonfinite,
    superpose_block,
)
from ..diagnostics import consecutive_rmsd
from ..errors import DataError, InputError, ParameterError
from ..pipeline import BlockResult, Job, chunk_size

__all__ = [
    "DIAG",
    "FIT_INDICES",
    "JUMPS",
    "MASS_TOL",
    "REF",
    "RMSD",
    "ROT",
    "match_atoms",
    "parse_points",
    "RotateJob",
    "trajectory_format",
    "write_trajectory",
]

ROT = "trajalign/alignment/rotation"
REF = "trajalign/alignment/reference"
FIT_INDICES = "trajalign/alignment/fit_indices"
DIAG = DIAGNOSTICS
JUMPS = f"{DIAG}/consecutive_rmsd"
RMSD = "observables/rmsd/value"


def parse_points(text: str | None) -> tuple[int, ...]:
    """``"I,J[,K]"`` -> ints."""
    if text is None:
        raise ParameterError("--method point needs --points I,J[,K]", "e.g. --points 0,1,2")
    try:
        pts = tuple(int(p) for p in str(text).replace(" ", "").split(","))
    except ValueError:
        raise ParameterError(
            f"cannot read --points {text!r}", "give two or three indices such as 0,1,2"
        ) from None
    if len(pts) not in (2, 3):
        raise ParameterError(
            f"--points {text!r} has {len(pts)} indices", "give I,J in 2D or I,J,K in 3D"
        )
    return pts


def _load_reference_array(path: str) -> np.ndarray:
    try:
        if path.lower().endswith(".npz"):
            with np.load(path, allow_pickle=False) as npz:
                if len(npz.files) != 1:
                    raise InputError(
                        f"reference {path} holds {len(npz.files)} arrays",
                        "save the reference alone, or as a .npy",
                    )
                return np.asarray(npz[npz.files[0]])
        return np.asarray(np.load(path, allow_pickle=False))
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(
            f"cannot read reference {path} ({exc})", "save it with numpy.save as (atoms, dim)"
        ) from None


#: masses that differ by more than this (amu) are different atoms (MDAnalysis
#: ``get_matching_atoms`` uses the same tolerance)
MASS_TOL = 0.1


def _atom_label(atoms, i: int) -> str:
    a = atoms[int(i)]
    return f"{a.resname} {a.resid} {a.name}"


def _identity_keys(atoms) -> np.ndarray:
    """One string per atom: residue name, residue number, atom name."""
    parts = (atoms.resnames, atoms.resids, atoms.names)
    return np.array(["\x00".join(map(str, t)) for t in zip(*parts, strict=True)])


def match_atoms(ref_atoms, atoms, path: str, what: str = "fit atoms", one: str = "fit atom"):
    """Pair the atoms of a reference structure with ``atoms`` by identity.

    Two atoms are the same where residue name, residue number and atom name agree, and
    their elements (where both files give elements) or else masses (within
    :data:`MASS_TOL`, as MDAnalysis ``AlignTraj``) agree. The same atoms listed in
    another order are reordered (each identity must then be unique); anything else is an
    error naming the first atom that differs on both sides.

    Parameters
    ----------
    ref_atoms, atoms : MDAnalysis AtomGroup
        The reference's atoms and the input's, of equal length M.
    path : str
        The reference file, for messages.
    what, one : str
        What ``atoms`` are and one of them, for messages ("fit atoms", "fit atom").

    Returns
    -------
    perm : ndarray, shape (M,), int64, or None
        ``ref_positions[perm]`` lists the reference in the order of ``atoms``; None when
        the order is already the same (or a side has no names: paired by position).
    note : str
        How the atoms were paired (stored with the reference in the HDF5 output).

    Raises
    ------
    DataError
        The atoms differ, or the same identity occurs twice so no reordering is safe.
    """
    n = len(atoms)
    if not all(hasattr(g, a) for g in (ref_atoms, atoms) for a in ("names", "resnames", "resids")):
        return None, "by position (a file without atom names)"
    rk, ak = _identity_keys(ref_atoms), _identity_keys(atoms)
    hint = (
        "write the reference from the input's own topology (e.g. with MDAnalysis), or "
        "give a .npy array to pair atoms by position"
    )
    perm = None
    if not np.array_equal(rk, ak):
        order_r, order_a = np.argsort(rk, kind="stable"), np.argsort(ak, kind="stable")
        same_set = np.array_equal(rk[order_r], ak[order_a])
        if not same_set:
            ref_has = set(rk.tolist())
            k = next(i for i in range(n) if ak[i] not in ref_has)
            raise DataError(
                f"reference {path} does not hold the {what}: {one} {k} "
                f"({_atom_label(atoms, k)}) is not in it (reference atom {k} is "
                f"{_atom_label(ref_atoms, k)})",
                hint,
            )
        if np.unique(ak).size != n:
            k = int(np.flatnonzero(rk != ak)[0])
            raise DataError(
                f"reference {path} lists the {what} in another order (reference atom {k} "
                f"is {_atom_label(ref_atoms, k)}, {one} {k} is "
                f"{_atom_label(atoms, k)}) and residue and atom names repeat, so they "
                "cannot be paired safely",
                hint,
            )
        perm = np.empty(n, dtype=np.int64)
        perm[order_a] = order_r
    pr = np.arange(n) if perm is None else perm
    use_elements = all(
        hasattr(g, "elements") and all(str(e).strip() for e in g.elements)
        for g in (ref_atoms, atoms)
    )
    if use_elements:
        ref_v = np.array([str(e).strip().upper() for e in ref_atoms.elements])[pr]
        my_v = np.array([str(e).strip().upper() for e in atoms.elements])
        bad = np.flatnonzero(ref_v != my_v)
        kind = "element"
    elif hasattr(ref_atoms, "masses") and hasattr(atoms, "masses"):
        ref_v = np.asarray(ref_atoms.masses, dtype=np.float64)[pr]
        my_v = np.asarray(atoms.masses, dtype=np.float64)
        bad = np.flatnonzero(~(np.abs(ref_v - my_v) <= MASS_TOL))
        kind = "mass"
    else:
        bad, kind = np.zeros(0, np.int64), "name"
    if bad.size:
        k = int(bad[0])
        mine = str(my_v[k]) if kind == "element" else f"{my_v[k]:.4g}"
        theirs = str(ref_v[k]) if kind == "element" else f"{ref_v[k]:.4g}"
        raise DataError(
            f"reference {path} atom {int(pr[k])} ({_atom_label(ref_atoms, pr[k])}) and "
            f"{one} {k} ({_atom_label(atoms, k)}) differ: "
            f"{kind} {theirs} vs {mine}" + (f" (and {bad.size - 1} more)" if bad.size > 1 else ""),
            hint,
        )
    if perm is None:
        return None, f"by identity (residue, atom name, {kind})"
    moved = int(np.sum(perm != np.arange(n)))
    k = int(np.flatnonzero(perm != np.arange(n))[0])
    return perm, (
        f"reference {path} lists the {what} in another order ({moved} of {n} atoms; "
        f"first: reference atom {k} is {_atom_label(ref_atoms, k)}, {one} {k} is "
        f"{_atom_label(atoms, k)}): reordered to pair them by residue and atom name"
    )


class RotateJob(Job):
    """Rotate every frame (see the module docstring).

    Parameters
    ----------
    method : {"kabsch", "principal", "point"}
    reference : str
        Kabsch: ``first``, ``frame:K`` (K in the trajectory's own frame numbering),
        ``average``, or a structure file (MDAnalysis-readable, or ``.npy`` (M, D)).
    weights : {"mass", "none"} or None
        Fit / gyration weights; None is the method's default (kabsch: none,
        principal: mass, falling back to none with a warning when there are no masses).
    center : {"com", "geometric", "point"} or None
        Principal: the centre. None follows the weights: com with mass weights,
        geometric with ``weights="none"`` (or without masses, with a warning).
    point : int
        Principal with ``center="point"``: the fit atom at the centre.
    sign : {"continuity", "skew", "none"} or None
        Principal: sign rule (default continuity).
    points : str or tuple of int
        Point: ``I,J[,K]``, positions within the fit atoms.
    chunk_frames, memory_mb : optional
        Block size of the average reference's passes (as the run's).
    """

    # rotated frames no longer lie in the input's box: it is kept as /trajalign/input_box
    positions_in_input_box = False
    shares_dataset = True  # --each: one reference for every input (kabsch)

    def __init__(
        self,
        method: str = "kabsch",
        reference: str = "first",
        weights: str | None = None,
        center: str | None = None,
        point: int = 0,
        sign: str | None = None,
        points=None,
        chunk_frames: int | None = None,
        memory_mb: float | None = None,
    ) -> None:
        super().__init__()
        if method not in ROTATE_METHODS:
            raise ParameterError(
                f"unknown rotation method {method!r}", f"use one of {', '.join(ROTATE_METHODS)}"
            )
        if weights not in (None, "mass", "none"):
            raise ParameterError(f"unknown --weights {weights!r}", "use mass or none")
        if sign is not None and sign not in SIGN_MODES:
            raise ParameterError(f"unknown --sign {sign!r}", f"use one of {', '.join(SIGN_MODES)}")
        if center is not None and center not in PRINCIPAL_CENTERS:
            raise ParameterError(
                f"unknown --center {center!r}", f"use one of {', '.join(PRINCIPAL_CENTERS)}"
            )
        self.method = method
        self.reference = reference or "first"
        self.weights = weights
        # None: follows the weights (com with mass weights, geometric without), set in
        # prepare() once the masses are known
        self.center = center
        self.point = point
        self.sign = sign or "continuity"
        self.points = parse_points(points) if isinstance(points, str) else points
        self.chunk_frames = chunk_frames
        self.memory_mb = memory_mb
        # stitch() runs in the driver on every block: it collects the frames that warnings
        # name, which process() on a worker could not report back. Only sign continuity
        # needs the blocks in frame order (it follows the last written frame); the others
        # are written as they arrive, so workers can each read a contiguous share
        self.ordered = method == "principal" and self.sign == "continuity"
        self._frame_msgs: list[str] = []
        self._bad: dict[str, list[np.ndarray]] = {}
        self._prev: np.ndarray | None = None  # last frame's axes, continuity state
        self._prev_index = -1  # the block position of that frame
        self.reference_note = ""
        self.reference_match = ""  # how a reference file's atoms were paired
        self.average_passes = 0
        # --each: the reference found once for every input, (centred fit atoms, note)
        self.shared_reference: tuple[np.ndarray, str] | None = None

    def _refresh_warnings(self) -> None:
        """Rewrite the frame-list warnings in place (the pipeline may append to the list,
        and the run summary copies it once at the end)."""
        bad = {k: np.unique(np.concatenate(v)) for k, v in self._bad.items()}
        msgs: list[str] = []
        if self.method == "kabsch" and "fit_status" in bad:
            fr = bad["fit_status"]
            msgs = kabsch_warnings(np.full(fr.size, 2, dtype=np.int8), fr)
        elif self.method == "principal":
            lists = {k: bad.get(k, np.zeros(0, np.int64)) for k in _PRINCIPAL_LISTS}
            msgs = principal_warnings(lists, self.sign)
        for m in self._frame_msgs:
            if m in self.warnings:
                self.warnings.remove(m)
        self.warnings.extend(msgs)
        self._frame_msgs = msgs

    def _note_frames(self, kind: str, frames: np.ndarray) -> None:
        if len(frames):
            self._bad.setdefault(kind, []).append(np.asarray(frames, dtype=np.int64))
            self._refresh_warnings()

    # ------------------------------------------------------------------ prepare
    def prepare(self, source) -> None:
        dim = source.dim
        self.dim = dim
        self.has_aux = source.aux_indices is not None
        self.fit_indices = source.aux_indices if self.has_aux else source.atom_indices
        n_fit = int(self.fit_indices.size)
        self.n_fit = n_fit
        # source frame numbers are an arithmetic progression (a slice): keep two ints, not
        # an array that every task would carry
        fi = source.frame_indices
        self._frame0 = int(fi[0])
        self._frame_step = int(fi[1] - fi[0]) if fi.size > 1 else 1
        masses = source.aux_masses if self.has_aux else source.masses
        what = "fit atoms" if self.has_aux else "selected atoms"
        need = 3 if dim == 3 else 2
        hint = f"select at least {need} atoms with " + (
            "--fit-select" if self.has_aux else "--select, or fit on others with --fit-select"
        )
        if self.method == "kabsch":
            check_fit_count("kabsch", n_fit, dim, what, hint)
            self.weights = self.weights or "none"
            if self.weights == "mass" and masses is None:
                raise ParameterError(
                    "--weights mass needs masses, and the input has none",
                    "give --masses FILE for array inputs, or use --weights none",
                )
            self.w = fit_weights(masses if self.weights == "mass" else None, n_fit)
            self.refc = self._resolve_reference(source)
        elif self.method == "principal":
            check_fit_count("principal", n_fit, dim, what, hint)
            if self.weights == "mass" and masses is None:
                raise ParameterError(
                    "--weights mass needs masses, and the input has none",
                    "give --masses FILE for array inputs, or use --weights none",
                )
            no_masses = []
            if self.weights is None:
                self.weights = "mass" if masses is not None else "none"
                if masses is None:
                    no_masses.append("the gyration tensor is unweighted")
            if self.center is None:
                # --weights none means unweighted throughout: the tensor about its own
                # (geometric) centroid, not about the centre of mass
                self.center = "com" if self.weights == "mass" else "geometric"
                if masses is None and no_masses:
                    no_masses.append("the centre is the geometric one")
            elif self.center == "com" and masses is None:
                no_masses.append("the centre is the geometric one")
            if no_masses:
                self.warnings.append(
                    f"the input has no masses: {' and '.join(no_masses)} "
                    "(give --masses FILE for array inputs)"
                )
            self.wg = fit_weights(masses if self.weights == "mass" else None, n_fit)
            self.wc = fit_weights(masses if self.center == "com" else None, n_fit)
            if self.center == "point":
                from .._validate import as_index

                self.point = as_index(self.point, n_fit, "--point")
            else:
                self.point = -1
        else:
            if self.points is None:
                raise ParameterError("--method point needs --points I,J[,K]", "e.g. --points 0,1,2")
            pts = list(self.points) + [None] * (3 - len(self.points))
            what = "--points index (within --fit-select)" if self.has_aux else "--points index"
            try:
                self.ijk = check_points(pts[0], pts[1], pts[2], n_fit, dim, what)
            except (ParameterError, DataError) as err:
                raise type(err)(err.message, err.hint) from None

    def _fit_of(self, block) -> np.ndarray:
        return block.aux if self.has_aux else block.coords

    def _block_size(self, source) -> int:
        return chunk_size(
            source.n_points + self.n_fit, source.dim, self.chunk_frames, self.memory_mb
        )

    def dataset_state(self, sources) -> tuple[np.ndarray, str] | None:
        """``--each``: one reference for every input, so that all outputs share one frame
        of reference: ``first`` and ``frame:K`` are frames of the first input (as
        prepared), ``average`` the average over every input's frames. A structure file is
        the same file for each input anyway."""
        if self.method != "kabsch":
            return None
        if self.reference == "average":
            self.refc = self._average(None, sources)
        return self.refc, self.reference_note

    def use_dataset_state(self, state: tuple[np.ndarray, str] | None) -> None:
        self.shared_reference = state

    def _resolve_reference(self, source) -> np.ndarray:
        if self.shared_reference is not None:
            refc, self.reference_note = self.shared_reference
            return refc
        ref = self.reference
        dim = source.dim
        if ref == "first":
            block = source.read(0, 1)
            x = self._fit_of(block)
            check_finite_frames(x, "the reference (first frame)", block.frames)
            self.reference_note = f"frame:{int(block.frames[0])}"
            return prepare_reference(x[0], self.w, dim, f"frame {int(block.frames[0])}")
        if ref.startswith("frame:"):
            return self._reference_frame(source, ref[6:])
        if ref == "average":
            return self._average(source)
        if not os.path.exists(ref):
            raise InputError(
                f"reference {ref!r} is neither first, average, frame:K nor an existing file",
                "give --reference first, frame:K, average, or a structure file",
            )
        self.reference_note = os.path.abspath(ref)
        return prepare_reference(self._reference_file(source, ref), self.w, dim, f"reference {ref}")

    def _reference_frame(self, source, text: str) -> np.ndarray:
        from ..io import open_source

        try:
            k = int(text)
        except ValueError:
            raise ParameterError(
                f"--reference frame:{text} does not name a frame number", "write e.g. frame:0"
            ) from None
        total = source.total_frames
        if not -total <= k < total:
            raise ParameterError(
                f"reference frame {k} is out of range: the trajectory has {total} frames",
                f"use frame:0 to frame:{total - 1}",
            )
        k %= total
        # the reference need not be among the sliced frames: reopen the input at frame k
        spec = dict(source.spec.as_dict(), start=k, stop=k + 1, step=None)
        with open_source(**spec) as one:
            block = one.read(0, 1)
        x = self._fit_of(block)
        check_finite_frames(x, "the reference", block.frames)
        self.reference_note = f"frame:{k}"
        return prepare_reference(x[0], self.w, source.dim, f"reference frame {k}")

    def _reference_file(self, source, path: str) -> np.ndarray:
        n_fit, n_total = self.n_fit, source.n_atoms_total
        if path.lower().endswith((".npy", ".npz")):
            arr = _load_reference_array(path)
            if arr.ndim == 3 and arr.shape[0] == 1:
                arr = arr[0]
            if arr.ndim != 2 or arr.shape[-1] != source.dim:
                raise DataError(
                    f"reference {path} has shape {arr.shape}, not (atoms, {source.dim})",
                    f"save the {n_fit} fit atoms as an ({n_fit}, {source.dim}) array",
                )
            if arr.shape[0] == n_fit:
                return arr
            if arr.shape[0] == n_total:
                return arr[self.fit_indices]
            raise DataError(
                f"reference {path} has {arr.shape[0]} atoms, but the fit uses {n_fit} "
                f"(of {n_total} in the input)",
                f"give {n_fit} positions (the fit atoms) or {n_total} (every atom)",
            )
        if source.dim != 3:
            raise ParameterError(
                f"reference {path} is a structure file, but the input is 2D",
                "give a .npy array of shape (fit atoms, 2)",
            )
        import warnings

        import MDAnalysis as mda

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                u = mda.Universe(path)
            except Exception as exc:
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InputError(
                    f"MDAnalysis cannot read reference {path}: {msg}",
                    "give a structure file (PDB, GRO, ...) or a .npy array",
                ) from None
        if not hasattr(u, "trajectory"):
            # a topology alone (PRMTOP, PSF, TPR without frames) parses but has no positions
            raise InputError(
                f"reference {path} holds a topology but no coordinates",
                "give a structure file with coordinates (PDB, GRO, CRD, ...), e.g. one "
                "frame of the run written with MDAnalysis",
            )
        pos = np.asarray(u.atoms.positions, dtype=np.float64)
        # MDAnalysis inputs carry atom names: the reference is paired by identity, never
        # by position alone (a reference in another atom order would fit the wrong atoms)
        mine = getattr(source, "universe", None)
        if pos.shape[0] == n_total:
            # a whole-system structure (a GRO of the run) is wrapped like the frames
            from ..pbc import repair_structure

            if mine is not None:
                perm = self._match(u.atoms, mine.atoms, path, "input's atoms", "input atom")
                if perm is not None:
                    pos = pos[perm]
            return repair_structure(pos, u.dimensions, source)[self.fit_indices]
        if pos.shape[0] == n_fit:
            ag = u.atoms
        else:
            sel = source.spec.aux_select if self.has_aux else source.spec.select
            try:
                ag = u.select_atoms(sel)
            except Exception:
                ag = None
            if ag is None or ag.n_atoms != n_fit:
                raise DataError(
                    f"reference {path} has {pos.shape[0]} atoms, but the fit uses {n_fit} "
                    f"(of {n_total} in the input)"
                    + (
                        f" and selection {sel!r} picks {ag.n_atoms} there" if ag is not None else ""
                    ),
                    "give a structure with the fit atoms, or of the whole system",
                )
        pos = np.asarray(ag.positions, dtype=np.float64)
        if mine is not None:
            perm = self._match(ag, mine.atoms[self.fit_indices], path, "fit atoms", "fit atom")
            if perm is not None:
                pos = pos[perm]
        return pos

    def _match(self, ref_atoms, atoms, path: str, what: str, one: str) -> np.ndarray | None:
        """Pair the reference's atoms with ``atoms`` by identity (see
        :func:`match_atoms`); note a reordering in the warnings and the HDF5 reference."""
        perm, note = match_atoms(ref_atoms, atoms, path, what, one)
        self.reference_match = note
        if perm is not None:
            self.warnings.append(note)
        return perm

    def _average(self, source, sources=None) -> np.ndarray:
        """The iterated average structure over the frames of ``source``, or of every
        source that ``sources()`` opens in turn (``--each``)."""

        def inputs():
            if sources is None:
                yield source
            else:
                yield from sources()

        def blocks():
            for src in inputs():
                chunk = self._block_size(src)
                for start in range(0, src.n_frames, chunk):
                    block = src.read(start, min(start + chunk, src.n_frames))
                    x = self._fit_of(block)
                    check_finite_frames(x, "the input", block.frames)
                    yield x

        opened = inputs()
        first = next(opened).read(0, 1)  # before the generator closes what it opened
        opened.close()
        x0 = self._fit_of(first)
        check_finite_frames(x0, "the input", first.frames)
        refc, passes, ok = average_reference(blocks, x0[0], self.w)
        self.average_passes = passes
        self.reference_note = "average"
        if not ok:
            self.warnings.append(
                f"the average structure still moved after {passes} passes; it is used as is"
            )
        return refc

    # ------------------------------------------------------------------ output
    def frame_bytes(self, source) -> int:
        # results per frame (float64): rotation, translation and diagnostics, plus the
        # fit atoms read beside the coordinates
        d = source.dim
        fit = self.n_fit * d * 4 if self.has_aux else 0
        return 8 * (d * d + 6 * d + 4) + fit

    def output_shape(self, source) -> tuple[int, int]:
        return source.n_points, source.dim

    def declare(self, writer, source) -> None:
        n, d, unit = source.n_frames, source.dim, source.length_unit
        rot = writer.create(ROT, (n, d, d))
        rot.attrs["convention"] = "aligned[t] = (x[t] - translation[t]) @ rotation[t]"
        writer.create(TRANSLATION, (n, d), attrs={"unit": unit})
        fit = writer.create(FIT_INDICES, (self.n_fit,), dtype=np.int64)
        fit[...] = self.fit_indices
        if self.method == "kabsch":
            ref = writer.create(REF, (self.n_fit, d), attrs={"unit": unit})
            ref[...] = self.refc
            ref.attrs["source"] = self.reference_note
            if self.reference_match:
                ref.attrs["matched"] = self.reference_match
            ref.attrs["centered"] = "on the weighted centroid of the fit atoms"
            writer.create_observable("rmsd", unit=unit)
            writer.create(f"{DIAG}/fit_status", (n,), dtype=np.int8).attrs["codes"] = (
                "0 closed form or QCP, 1 eigen-solver fallback, 2 optimum not unique"
            )
        elif self.method == "principal":
            writer.create(f"{DIAG}/eigenvalues", (n, d), attrs={"unit": f"{unit}^2"})
            writer.create(f"{DIAG}/gap", (n, d - 1))
            writer.create(f"{DIAG}/skewness", (n, d))
            writer.create(f"{DIAG}/sign_flip", (n, d), dtype=np.bool_)
            writer.create(f"{DIAG}/axis_swap", (n,), dtype=np.bool_)
            writer.create(f"{DIAG}/skew_undefined", (n,), dtype=np.bool_)
        writer.create(JUMPS, (n,))  # within-block values; finalize() adds block boundaries

    # ------------------------------------------------------------------ blocks
    def process(self, block) -> BlockResult:
        result = self._align(block)
        result.extra[JUMPS] = consecutive_rmsd(result.coords)
        return result

    def _align(self, block) -> BlockResult:
        x = block.coords
        xfit = self._fit_of(block)
        if self.has_aux:
            # frames are numbered within the block; the pipeline renames them
            check_finite_frames(xfit, "the input")
        if self.method != "kabsch" or self.has_aux:
            check_finite_frames(x, "the input")
        if self.method == "kabsch":
            out, rot, trans, rmsd, status = superpose_block(x, xfit, self.w, self.refc)
            if not self.has_aux:
                raise_if_nonfinite(trans)  # NaN in a fit atom reaches its translation
            self._note_frames("fit_status", block.frames[status == 2])
            extra = {ROT: rot, TRANSLATION: trans, RMSD: rmsd, f"{DIAG}/fit_status": status}
            return BlockResult(out, extra)
        if self.method == "point":
            i, j, k = self.ijk
            out, rot, trans = points_block(x, xfit, i, j, k, block.frames)
            return BlockResult(out, {ROT: rot, TRANSLATION: trans})
        # principal: continuity state only when this block follows the last one processed
        prev = self._prev if self._prev_index == block.start - 1 else None
        out, rot, trans, diag, last = principal_block(
            x, xfit, self.wc, self.point, self.wg, self.sign, prev, block.frames
        )
        self._prev, self._prev_index = last, block.start + len(block.frames) - 1
        if self.sign == "continuity" and block.start > 0 and prev is None:
            # the block's first frame fell back to skew; stitch() decides it
            diag["skew_undefined"][0] = False
        for kind, frames in principal_frame_lists(diag, block.frames, DEGENERATE_GAP).items():
            if kind == "skew_undefined" and self.sign == "continuity" and block.start > 0:
                continue
            self._note_frames(kind, frames)
        extra = {ROT: rot, TRANSLATION: trans}
        extra.update({f"{DIAG}/{k}": v for k, v in diag.items()})
        return BlockResult(out, extra)

    def finalize(self, writer) -> None:
        # each block scored its own consecutive frames; the first frame of a block needs the
        # frame before it, read back from the output (two frames per block)
        from ..diagnostics import store_jump_diagnostics

        scores = writer.f[JUMPS][()]
        pos = writer.position
        for s in np.flatnonzero(np.isnan(scores[1:])) + 1:
            scores[s] = consecutive_rmsd(pos[s - 1 : s + 1])[1]
        found = store_jump_diagnostics(writer.f, scores)
        n = found["jumps"]
        if n:
            shown = ", ".join(str(int(f)) for f in found["frames"][:8])
            more = f" and {n - 8} more" if n > 8 else ""
            self.warnings.append(
                f"the aligned frames jump in {n} frame(s) ({shown}{more}): "
                "consecutive-frame RMSD more than 10 robust standard deviations above its "
                "running median "
                "(see /trajalign/diagnostics/jump_flag; draw it with --plot DIR)"
            )

    def stitch(self, result: BlockResult, writer, start: int) -> BlockResult:
        """Called in the driver, in frame order, before a block is written.

        Principal axes with continuity: flip the block's axes to follow the last written
        frame (a no-op when the block was processed right after it). Every method: note the
        frames that warnings name.
        """
        n = len(result.coords) if result.coords is not None else 0
        frames = self._frame0 + self._frame_step * (start + np.arange(n, dtype=np.int64))
        if self.method == "kabsch":
            self._note_frames("fit_status", frames[result.extra[f"{DIAG}/fit_status"] == 2])
            return result
        if self.method != "principal":
            return result
        if self.sign == "continuity" and start > 0:
            self._continue_axes(result, np.asarray(writer.f[ROT][start - 1], dtype=np.float64))
        diag = {k: result.extra[f"{DIAG}/{k}"] for k in ("gap", "axis_swap", "skew_undefined")}
        for kind, fr in principal_frame_lists(diag, frames, DEGENERATE_GAP).items():
            self._note_frames(kind, fr)
        return result

    def _continue_axes(self, result: BlockResult, prev: np.ndarray) -> None:
        rot = result.extra[ROT]
        d = rot.shape[-1]
        signs = np.ones(d)
        for k in range(d - 1):
            if float(rot[0, :, k] @ prev[:, k]) < 0.0:
                signs[k] = -1.0
        signs[-1] = signs[0] if d == 2 else signs[0] * signs[1]
        if np.any(signs < 0):
            result.extra[ROT] = rot * signs
            result.coords = result.coords * signs.astype(result.coords.dtype)
            result.extra[f"{DIAG}/skewness"] = result.extra[f"{DIAG}/skewness"] * signs
        # the first frame's jump flags are relative to the previous block's last frame,
        # and its sign came from continuity, not skew
        dots = result.extra[ROT][0].T @ prev
        result.extra[f"{DIAG}/sign_flip"][0] = np.diag(dots) < 0.0
        result.extra[f"{DIAG}/axis_swap"][0] = bool(
            np.any(np.argmax(np.abs(dots), axis=1) != np.arange(d))
        )
        result.extra[f"{DIAG}/skew_undefined"][0] = False

    def parameters(self) -> dict:
        p: dict = {"method": self.method, "fit_atoms": int(getattr(self, "n_fit", 0))}
        if self.method == "kabsch":
            p.update(reference=self.reference_note or self.reference, weights=self.weights)
            if self.reference == "average":
                p["average_passes"] = self.average_passes
        elif self.method == "principal":
            p.update(sign=self.sign, center=self.center, weights=self.weights)
            if self.center == "point":
                p["point"] = self.point
        else:
            p["points"] = [int(v) for v in self.points]
        return p


_PRINCIPAL_LISTS = ("degenerate", "swap", "skew_undefined")


def trajectory_format(target: str) -> str:
    """The MDAnalysis writer format for ``target`` (from its extension), or an error."""
    from MDAnalysis.coordinates.core import get_writer_for

    ext = os.path.splitext(str(target))[1].lstrip(".").upper()
    if not ext:
        raise ParameterError(
            f"--write-traj {target} has no extension", "name the format, e.g. out.xtc"
        )
    try:
        get_writer_for(str(target), format=ext, multiframe=True)
    except (TypeError, ValueError):
        raise ParameterError(
            f"MDAnalysis has no trajectory writer for {target}",
            "use a trajectory extension such as .xtc, .dcd, .trr or .pdb",
        ) from None
    return ext


def write_trajectory(h5_path: str, source, target: str, force: bool = False) -> None:
    """Write the aligned coordinates of ``h5_path`` through an MDAnalysis writer.

    The format follows ``target``'s extension (XTC, DCD, PDB, GRO, TRR, ...). Written to
    a temporary file beside ``target`` and renamed when complete; an existing target is
    refused unless ``force``. Reads the HDF5 file block by block (bounded memory). The
    box is not written: the aligned frames are rotated against it.
    """
    import warnings

    import h5py
    import MDAnalysis as mda

    from ..io.output import AtomicOutput

    if source.dim != 3:
        raise ParameterError("--write-traj needs 3D coordinates", "drop --write-traj for 2D input")
    ext = trajectory_format(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if source.kind == "mdanalysis":
            u = mda.Merge(source.universe.atoms[source.atom_indices])
        else:
            u = mda.Universe.empty(source.n_points, trajectory=True)
            u.add_TopologyAttr("names", ["X"] * source.n_points)
        with (
            AtomicOutput(target, force=force, option="--write-traj") as tmp,
            h5py.File(h5_path, "r") as f,
        ):
            pos = f[POSITION]
            times = f[FRAME_TIME]
            n = pos.shape[0]
            step = max(1, min(n, 2**26 // max(1, pos.shape[1] * 12)))
            try:
                writer = mda.Writer(str(tmp), n_atoms=u.atoms.n_atoms, format=ext)
            except (TypeError, ValueError) as exc:
                raise ParameterError(
                    f"MDAnalysis cannot write {target}: {exc}",
                    "use a trajectory extension such as .xtc, .dcd or .pdb",
                ) from None
            with writer:
                ts = u.trajectory.ts
                ts.dimensions = None
                for s in range(0, n, step):
                    block = pos[s : s + step]
                    tb = times[s : s + step]
                    for i in range(block.shape[0]):
                        u.atoms.positions = block[i]
                        ts.time = float(tb[i])
                        ts.frame = s + i
                        writer.write(u.atoms)


__all__ = ["RotateJob", "match_atoms", "parse_points", "trajectory_format", "write_trajectory"]
