"""The library side of ``trajalign check``: which methods and transformations to check on
which frames of an input (:func:`plan_check`), and the run (:meth:`CheckPlan.run`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .._names import CHECK_FRAMES, MAX_POINTS, PERIODIC_IMAGES, PROTEIN_METHODS, TRANSFORMATIONS
from ..errors import ParameterError
from .invariance import check_invariance, check_periodic_images
from .registry import get_method, methods_for

#: features whose tuples come from the topology (bonds, angles, dihedrals; protein
#: torsions and residue pairs)
_BONDED = {"distances", "angles", "dihedrals", *PROTEIN_METHODS}


def validate_check(n_frames: int, trials: int, max_points: int, tol: float | None) -> None:
    """Refuse options of :func:`plan_check` that cannot work, before any input is read."""
    for name, value in (("--frames", n_frames), ("--trials", trials), ("--atoms", max_points)):
        if value < 1:
            raise ParameterError(f"{name} {value} is not positive", f"give {name} 1 or more")
    if tol is not None and not tol >= 0:
        raise ParameterError(f"--tol {tol} is negative", "give a tolerance >= 0")


@dataclass
class CheckPlan:
    """What :func:`plan_check` chose: the frames read, the methods and transformations,
    and the keyword arguments of :func:`check_invariance`.

    Attributes
    ----------
    x : ndarray, shape (n, N, D)
        The first ``n_frames`` frames of the selection (``total`` in all).
    methods : list of str
    motions : list of str
        Transformations of :data:`TRANSFORMATIONS` to check.
    periodic : bool
        Whether the periodic-images check runs too.
    options : dict
        Keyword arguments of :func:`check_invariance` and :func:`check_periodic_images`.
    capped : list of str
        Methods that run on ``max_points`` evenly spaced points.
    """

    x: np.ndarray
    n_frames: int
    total: int
    methods: list
    motions: list
    periodic: bool
    options: dict
    capped: list

    @property
    def n_points(self) -> int:
        return int(self.x.shape[1])

    @property
    def dim(self) -> int:
        return int(self.x.shape[2])

    @property
    def runs(self) -> int:
        """Method runs of :meth:`run` (each over ``n_frames`` frames): progress total."""
        trials, n = self.options["trials"], len(self.methods)
        runs = n * ((1 + trials * len(self.motions)) if self.motions else 0)
        return runs + (n * (1 + trials) if self.periodic else 0)

    def run(self, source, progress: Callable[[int], None] | None = None) -> list[dict]:
        """The check's rows: every method under every motion, then the periodic images.

        ``source`` is the open source :func:`plan_check` read from; ``progress`` is called
        with the number of frames after every run of a method.
        """
        opts = dict(self.options, progress=progress)
        rows = []
        for m in self.methods:
            if self.motions:
                rows += check_invariance(self.x, m, transformations=self.motions, **opts)
        if self.periodic:
            rows += check_periodic_images(source, self.n_frames, self.methods, **opts)
        return rows

    def describe(self, rows: list[dict]) -> str:
        """One line: what was checked, and how many promises broke."""
        n, total = self.n_frames, self.total
        broken = [r for r in rows if r["ok"] is False]
        frames = f"{n} frames" if n == total else f"the first {n} of {total} frames"
        sub = ""
        if self.capped:
            cap = self.options["max_points"]
            sub = f"; {' and '.join(self.capped)} on {cap} evenly spaced points"
        return (
            f"checked {len(self.methods)} method(s) on {frames} x {self.n_points} points "
            f"({self.dim}D{sub}), {self.options['trials']} trial(s) each: "
            f"{len(broken)} broken promise(s)"
        )


def plan_check(
    source,
    methods: Sequence[str] | None = None,
    transformations: Sequence[str] | None = None,
    *,
    n_frames: int = CHECK_FRAMES,
    trials: int = 3,
    tol: float | None = None,
    seed: int | None = 0,
    max_points: int = MAX_POINTS,
    point: int = 0,
    points: Sequence[int] | None = None,
    sign: str = "continuity",
    tuples: dict | Callable | None = None,
) -> CheckPlan:
    """Read the frames to check and choose what to check on them.

    Parameters
    ----------
    source : Source
        An open source (:func:`trajalign.io.open_source`).
    methods : sequence of str, optional
        Registry names; default every method that applies (:func:`methods_for`).
    transformations : sequence of str, optional
        Of :data:`TRANSFORMATIONS` and ``"periodic images"``; default all, with periodic
        images where the source has a periodic repair.
    n_frames : int
        Check on the first ``n_frames`` frames of the selection.
    trials, tol, seed, max_points, point, points, sign
        As :func:`check_invariance` and :func:`get_method`.
    tuples : dict or callable, optional
        The input's own tuples (see :func:`get_method`), or ``tuples(source)`` giving
        them, called only when a distance, angle or dihedral method is checked (deriving
        them from a bond-only topology takes a Python loop).

    Returns
    -------
    CheckPlan
    """
    validate_check(n_frames, trials, max_points, tol)
    n = min(n_frames, source.n_frames)
    if n == 0:
        raise ParameterError("the frame selection is empty", "check --start/--stop/--step")
    x = source.read(0, n).coords
    dim, n_points = source.dim, source.n_points
    methods = list(methods or methods_for(dim, n_points))
    motions = [t for t in (transformations or TRANSFORMATIONS) if t != PERIODIC_IMAGES]
    asked = transformations is not None and PERIODIC_IMAGES in transformations
    periodic = asked or (transformations is None and source.pbc_mode != "none")
    if callable(tuples):
        # a dihedral across unbonded atoms (consecutive indices) measures nothing real and
        # can be nearly undefined: the topology's own tuples, derived only when asked for
        tuples = tuples(source) if _BONDED & set(methods) else None
    options = dict(
        masses=source.masses,
        trials=trials,
        tol=tol,
        seed=seed,
        point=point,
        points=points,
        sign=sign,
        tuples=tuples,
        max_points=max_points,
    )
    capped = [
        m
        for m in methods
        if n_points > max_points and get_method(m, dim, tuples=tuples).scaling > 1
    ]
    return CheckPlan(x, n, source.n_frames, methods, motions, periodic, options, capped)


__all__ = ["CheckPlan", "validate_check", "plan_check"]
