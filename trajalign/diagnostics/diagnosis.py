"""The library side of ``trajalign diagnose``: one pass over the input that scans every
alignment for jumps (and what the periodic repair changed), then the perturbation
sensitivity on one frame, and the summary the command prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._names import AXES, JUMP_K, JUMP_WINDOW, MAX_PERTURBED, PERTURB_AMOUNT, PERTURB_STEPS
from ..errors import ParameterError
from ..groups import point_groups
from .jumps import JumpScan, RepairEffect
from .registry import get_method
from .sensitivity import far_points, perturb_aligned, sensitivity_matrix


@dataclass
class Diagnosis:
    """Everything ``diagnose`` measured on one input (:func:`diagnose`).

    Attributes
    ----------
    methods : list of str
        The alignments compared.
    scan : JumpScan
        Jumps, thresholds, principal-axes diagnostics and the overlay sample, finished.
    effect : RepairEffect or None
        RMSD to the first frame with the periodic repair and as read (None without one).
    pbc : dict
        ``mode`` and the repair's counts (and ``median_rmsd_to_first`` with ``effect``).
    frame_index : ndarray, shape (F,), int64
        Frame numbers in the input.
    times : ndarray, shape (F,), float64
    frame : ndarray, shape (N, D)
        The perturbed frame, as read.
    perturbed : list of int
        Points perturbed one at a time.
    matrix : ndarray, shape (M, P, N), float64
        :func:`sensitivity_matrix` over ``methods`` and ``perturbed``.
    aligned : dict
        Method -> (steps, N, D) float64: the perturbed copies of ``perturb_point``, aligned.
    groups : tuple
        ``(group, labels, kind)`` of :func:`trajalign.groups.point_groups`.
    far : ndarray, shape (K,), int64
        The points far from the moved one (:func:`far_points`), ``far_cut`` their
        smallest distance.
    """

    methods: list
    params: dict
    jump_k: float
    jump_window: int
    perturb_frame: int
    perturb_point: int
    steps: int
    amount: float
    axis: int
    n_frames: int
    n_points: int
    dim: int
    unit: str
    spec: object
    inputs: list
    atom_indices: np.ndarray
    bonds: np.ndarray | None
    residues: np.ndarray | None
    residue_labels: list | None
    atom_names: np.ndarray | None
    scan: JumpScan
    effect: RepairEffect | None
    pbc: dict
    frame_index: np.ndarray
    times: np.ndarray
    frame: np.ndarray
    perturbed: list
    matrix: np.ndarray = field(repr=False, default=None)
    aligned: dict = field(repr=False, default_factory=dict)
    groups: tuple = ()
    far: np.ndarray = field(repr=False, default=None)
    far_cut: float = 0.0

    @property
    def axis_name(self) -> str:
        return AXES[self.axis]

    def summary(self) -> dict:
        """The numbers ``diagnose`` prints: jumps per method and their frames, the
        periodic repair, principal-axes swaps and flips, and the far points' sensitivity
        (``output``, ``plots`` and ``seconds`` are the command's to fill in)."""
        methods, scan = self.methods, self.scan
        summary = {
            "output": None,
            "plots": [],
            "frames": self.n_frames,
            "atoms": self.n_points,
            "dim": self.dim,
            "methods": methods,
            "jumps": {m: int(scan.flags[m].sum()) for m in methods},
            "jump_frames": {
                m: [int(f) for f in self.frame_index[scan.flags[m]][:20]] for m in methods
            },
            "pbc": self.pbc,
        }
        if "principal" in scan.methods and scan.principal:
            summary["principal_axis_swaps"] = int(scan.principal["axis_swap"].sum())
            summary["principal_sign_flips"] = int(scan.principal["sign_flip"].any(axis=1).sum())
        p_idx = self.perturbed.index(self.perturb_point)
        if self.far.size:
            summary["far_points"] = {
                "count": int(self.far.size),
                "min_distance": float(f"{self.far_cut:.3g}"),
            }
            summary["far_point_sensitivity"] = {
                m: float(f"{float(self.matrix[k, p_idx, self.far].mean()):.3g}")
                for k, m in enumerate(methods)
            }
        return summary


def validate_diagnose(
    chunk_frames: int, steps: int, amount: float, jump_k: float, jump_window: int
) -> None:
    """Refuse options of :func:`diagnose` that cannot work, before any input is read."""
    if chunk_frames < 1:
        raise ParameterError(f"--chunk-frames {chunk_frames} is not positive", "give 1+")
    if steps < 2 or not amount > 0:
        raise ParameterError(
            "--perturb-steps needs 2 or more and --perturb-amount a positive length",
            "e.g. --perturb-steps 16 --perturb-amount 0.2",
        )
    if jump_k <= 0 or jump_window < 1:
        raise ParameterError("--jump-k must be positive and --jump-window 1 or more", "e.g. 10, 51")


def perturbed_points(asked: Sequence[int] | str | None, n_points: int, point: int) -> list[int]:
    """The points perturbed one at a time, sorted, ``point`` always among them.

    Parameters
    ----------
    asked : sequence of int, "all" or None
        None: every point up to :data:`MAX_PERTURBED` points, else that many evenly
        spaced.
    n_points : int
    point : int
        The perturbed point of the figures.

    Returns
    -------
    list of int
    """
    if asked is None:
        if n_points <= MAX_PERTURBED:
            return list(range(n_points))
        pts = set(np.linspace(0, n_points - 1, MAX_PERTURBED).round().astype(int).tolist())
        return sorted(pts | {point})
    if isinstance(asked, str) and asked == "all":
        return list(range(n_points))
    pts = sorted(set(asked) | {point})
    bad = [p for p in pts if not 0 <= p < n_points]
    if bad:
        raise ParameterError(
            f"--perturb-points {bad[0]} is outside the {n_points} points", f"use 0..{n_points - 1}"
        )
    return pts


def _check_source(source, methods, points, axis: int, pf: int, pp: int) -> None:
    n_frames, n_points, dim = source.n_frames, source.n_points, source.dim
    if n_frames == 0:
        raise ParameterError("the frame selection is empty", "check --start/--stop/--step")
    if "point" in methods and points is not None and len(points) != dim:
        raise ParameterError(
            f"--points {','.join(str(p) for p in points)} does not fit {dim}D data",
            "give I,J in 2D and I,J,K in 3D",
        )
    if axis >= dim:
        raise ParameterError(f"--perturb-axis z needs 3D data; the input is {dim}D", "use x or y")
    if not 0 <= pf < n_frames:
        raise ParameterError(
            f"--perturb-frame {pf} is outside the {n_frames} selected frames",
            f"give 0..{n_frames - 1}",
        )
    if not 0 <= pp < n_points:
        raise ParameterError(
            f"--perturb-point {pp} is outside the {n_points} points", f"give 0..{n_points - 1}"
        )


def _residues(source):
    """(residue index per point, residue label per point, atom names) of an MDAnalysis
    input, or three Nones (arrays, or a topology without residues)."""
    universe = getattr(source, "universe", None)
    if universe is None:
        return None, None, None
    ag = universe.atoms[source.atom_indices]
    try:
        residues = ag.resindices
        labels = [f"{n}{i}" for n, i in zip(ag.resnames, ag.resids, strict=True)]
    except (AttributeError, TypeError):  # a topology with no residue names
        return None, None, None
    names = getattr(ag, "names", None)
    return residues, labels, names


def _scan(source, src: dict, scan: JumpScan, chunk_frames: int):
    """Read every block once: the jump scan, and with a periodic repair the same frames as
    read. Returns (frame index, times, RepairEffect or None, repair counts)."""
    from ..io import open_source

    n_frames = source.n_frames
    frame_index = np.empty(n_frames, dtype=np.int64)
    times = np.empty(n_frames)
    # where a periodic repair runs, the same frames as read show what it changed
    effect = raw = None
    if source.pbc_mode != "none":
        effect = RepairEffect()
        raw = open_source(**dict(src, pbc="none"))
    repaired: dict[str, int] = {}
    try:
        for start in range(0, n_frames, chunk_frames):
            stop = min(start + chunk_frames, n_frames)
            block = source.read(start, stop)
            for key, value in (block.repair or {}).items():
                repaired[key] = repaired.get(key, 0) + value
            scan.add(block.coords)
            if effect is not None:
                effect.add(block.coords, raw.read(start, stop).coords)
            frame_index[start : start + len(block.frames)] = block.frames
            times[start : start + len(block.frames)] = block.times
    finally:
        if raw is not None:
            raw.close()
    return frame_index, times, effect, repaired


def diagnose(
    src: dict,
    methods: Sequence[str],
    *,
    point: int = 0,
    points: Sequence[int] | None = None,
    sign: str = "continuity",
    jump_k: float = JUMP_K,
    jump_window: int = JUMP_WINDOW,
    perturb_frame: int = 0,
    perturb_point: int = 1,
    perturbed: Sequence[int] | str | None = None,
    steps: int = PERTURB_STEPS,
    amount: float = PERTURB_AMOUNT,
    axis: int = 0,
    chunk_frames: int = 4096,
) -> Diagnosis:
    """Diagnose alignments of one input: jumps over time, perturbation sensitivity.

    Parameters
    ----------
    src : dict
        Keyword arguments of :func:`trajalign.io.open_source`.
    methods : sequence of str
        Coordinate methods (:data:`~trajalign._names.COORD_METHODS`).
    point, points, sign
        Parameters of the methods (:func:`get_method`).
    jump_k, jump_window
        The jump rule (:func:`jump_threshold`).
    perturb_frame, perturb_point
        The frame (0-based within the selection) and point of the perturbation figures.
    perturbed : sequence of int, "all" or None
        Points of the sensitivity matrix (:func:`perturbed_points`).
    steps, amount, axis
        The perturbation: copies, largest move (length units) and direction (0, 1, 2).
    chunk_frames : int
        Frames read per block.

    Returns
    -------
    Diagnosis
    """
    from ..io import open_source

    validate_diagnose(chunk_frames, steps, amount, jump_k, jump_window)
    methods = list(methods)
    params = {"point": point, "points": points, "sign": sign}
    pf, pp = perturb_frame, perturb_point
    with open_source(**src) as source:
        _check_source(source, methods, points, axis, pf, pp)
        n_frames, n_points, dim = source.n_frames, source.n_points, source.dim
        chosen = perturbed_points(perturbed, n_points, pp)
        masses = source.masses
        # every method is tried on the perturbation frame first: a bad option (point out
        # of range, collinear points) stops the run before the long scan
        frame = source.read(pf, pf + 1).coords[0]
        for m in methods:
            get_method(m, dim, **params)(frame[None], masses)
        scan = JumpScan(methods, n_frames, dim, masses, **params)
        frame_index, times, effect, repaired = _scan(source, src, scan, chunk_frames)
        scan.finish(jump_k, jump_window)
        pbc = {"mode": source.pbc_mode, **repaired}
        if effect is not None:
            effect.finish()
            pbc["median_rmsd_to_first"] = {k: round(v, 4) for k, v in effect.medians().items()}
        inputs = list(source.spec.paths)
        if source.spec.top:
            inputs.append(source.spec.top)
        residues, res_labels, atom_names = _residues(source)
        d = Diagnosis(
            methods, params, jump_k, jump_window, pf, pp, steps, amount, axis,
            n_frames, n_points, dim, source.length_unit, source.spec, inputs,
            source.atom_indices, source.bonds, residues, res_labels, atom_names,
            scan, effect, pbc, frame_index, times, frame, chosen,
        )  # fmt: skip
    # at protein scale figures show residues (or bins of points)
    d.groups = point_groups(n_points, residues, res_labels)
    pert = dict(steps=steps, amount=amount, axis=axis, masses=masses)
    d.matrix = sensitivity_matrix(frame, methods, chosen, **pert, method_params=params)
    d.aligned = {m: perturb_aligned(frame, m, pp, **pert, method_params=params) for m in methods}
    # far in space: the half of the other points farthest from the moved one
    d.far, d.far_cut = far_points(frame, pp)
    return d


__all__ = ["Diagnosis", "validate_diagnose", "diagnose", "perturbed_points"]
