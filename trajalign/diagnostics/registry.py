"""The methods the diagnostics run: what each computes and which invariances it promises.

Every method is a small factory registered under its name (:func:`register_method`), as
a reader is registered under its format: :func:`get_method` looks the name up and calls
the factory with the run's :class:`MethodParams`. Adding a method is one registered
factory plus its name in :mod:`trajalign._names` (the command line lists the names
without importing numpy).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .._names import METHOD_NAMES, PROTEIN_METHODS, TRANSFORMATIONS
from ..errors import ParameterError
from .conditioning import (
    COLLINEAR_DEG,
    angle_conditioning,
    conditioning_kabsch,
    conditioning_point,
    conditioning_principal,
    dihedral_conditioning,
    eigvals_conditioning,
)

#: what a method may promise for a transformation T applied to its input:
#: "invariant" f(T x) = f(x); "equivariant" f(T x) = T f(x) (coordinates move alike, atoms
#: renumbered alike); "reference" f(T x) = T_0 f(x), every frame moves with frame 0's
#: motion (Kabsch onto the first frame); "negated" f(T x) = -f(x) (dihedrals under a
#: reflection)
PROMISES = ("invariant", "equivariant", "reference", "negated")


@dataclass
class MethodOutput:
    """What a registry method returns.

    values : (F, N, D) aligned coordinates or (F, K) features.
    sign_ambiguous : (F,) bool or None; frames whose axis signs the method itself declares
        arbitrary (principal axes with zero skewness, or ``sign="none"``); the check
        compares those frames up to a proper flip of axis signs.
    global_sign : the ambiguity is one choice for the whole trajectory (``continuity``
        inherits frame 0's sign), so one flip must fit every frame.
    """

    values: np.ndarray
    sign_ambiguous: np.ndarray | None = None
    global_sign: bool = False


@dataclass
class Method:
    """An alignment or feature method and the invariances it promises.

    Parameters
    ----------
    name : str
    func : callable
        ``func(X, masses) -> ndarray`` or :class:`MethodOutput`; ``X`` (F, N, D) float32 or
        float64, ``masses`` (N,) float64 or None (permuted along with the atoms).
    kind : {"coords", "features"}
        Coordinates are compared point by point (Euclidean displacement); features entry by
        entry.
    promises : dict
        Transformation name (see :data:`TRANSFORMATIONS`) -> one of :data:`PROMISES`.
        Transformations left out are not promised: the check reports how much the output
        changes, for information, without judging it.
    periodic : bool
        Features are angles compared modulo 2 pi (dihedrals jump from pi to -pi).
    description : str
    conditioning : callable, optional
        ``conditioning(X, masses) -> float``: the largest change of the output per unit
        move of every point, over the frames of ``X`` (dimensionless for coordinates,
        radians per length unit for angles). Scales the default tolerance
        (:func:`rounding_tol`); None counts as 1.
    restrict : callable, optional
        ``restrict(X) -> (Method, left_out, total)``: the method on the tuples that are
        well conditioned in every frame of ``X`` (dihedrals next to a nearly straight bond
        angle are left out), and how many of how many tuples were left out.
    scaling : int
        The cost per frame grows as ``N ** scaling``; methods above 1 (all pairs, the
        inverse-distance spectrum) run on at most ``max_points`` points in the check.
    precision : float
        Relative precision of the method's own algorithm where it stops short of machine
        precision (an iteration's tolerance); the check's tolerance uses the larger of it
        and the data's machine epsilon.
    note : str
        Said with every row of the check (what the method, so configured, gives up).
    """

    name: str
    func: Callable
    kind: str = "coords"
    promises: dict = field(default_factory=dict)
    periodic: bool = False
    description: str = ""
    conditioning: Callable | None = None
    restrict: Callable | None = None
    scaling: int = 1
    precision: float = 0.0
    note: str = ""

    def __call__(self, X: np.ndarray, masses: np.ndarray | None = None) -> MethodOutput:
        out = self.func(X, masses)
        if not isinstance(out, MethodOutput):
            out = MethodOutput(np.asarray(out))
        return out


_RIGID = {"translation": "invariant", "translation per frame": "invariant"}
#: what a function of the distances alone promises
_DISTANCE_PROMISES = {
    **_RIGID,
    "rotation": "invariant",
    "rotation per frame": "invariant",
    "reflection": "invariant",
}


def quiet(fn):
    """Run an API call without its RuntimeWarnings (the check calls methods many times;
    the methods' own warnings are for the user's run, not for every trial)."""

    def wrapped(*a, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*a, **kw)

    return wrapped


def default_points(dim: int) -> tuple[int, ...]:
    """The chapter's point alignment: 0 -> 1 onto +x (3D: 0 -> 2 into the xy-plane)."""
    return (0, 1) if dim == 2 else (0, 1, 2)


@dataclass(frozen=True)
class MethodParams:
    """What a method factory may use to build its method.

    Attributes
    ----------
    dim : int
        Dimension of the data (2 or 3).
    point : int
        ``center-point``: the point moved to the origin.
    points : tuple of int or None
        ``point``: I, J[, K] (None: :func:`default_points`).
    sign : str
        ``principal``: the sign rule.
    tuples : dict
        The input's own ``distances`` (K, 2), ``angles`` (A, 3) and ``dihedrals`` (Q, 4),
        int64, only those that are not empty.
    """

    dim: int = 3
    point: int = 0
    points: tuple[int, ...] | None = None
    sign: str = "continuity"
    tuples: dict = field(default_factory=dict)


#: name -> factory(MethodParams) -> Method; filled by :func:`register_method`
_REGISTRY: dict[str, Callable[[MethodParams], Method]] = {}
#: name -> applies(dim, n_points) -> bool, for methods that need more than one point in
#: any dimension (:func:`methods_for`)
_APPLIES: dict[str, Callable[[int, int], bool]] = {}


def register_method(*names: str, applies: Callable[[int, int], bool] | None = None):
    """Register a method factory under one or more names (a decorator).

    A factory takes the run's :class:`MethodParams` and returns the :class:`Method`;
    :func:`get_method` calls it. ``applies(dim, n_points)`` says whether the method fits
    data of that dimension and size (default: always), for :func:`methods_for`. A name the
    command line offers must also be listed in :mod:`trajalign._names`
    (``COORD_METHODS`` or ``FEATURE_METHODS``).

    Examples
    --------
    >>> @register_method("radius")  # doctest: +SKIP
    ... def _radius(p):
    ...     return Method("radius", lambda X, m: ..., "features", {"rotation": "invariant"})
    """

    def add(factory: Callable[[MethodParams], Method]) -> Callable[[MethodParams], Method]:
        for name in names:
            _REGISTRY[name] = factory
            if applies is not None:
                _APPLIES[name] = applies
        return factory

    return add


def registered_methods() -> tuple[str, ...]:
    """Every registered method name, in registration order."""
    return tuple(_REGISTRY)


@register_method("none")
def _none(p: MethodParams) -> Method:
    return Method("none", lambda X, m: np.asarray(X), "coords", {}, description="raw input")


def _center_factory(how: str) -> Callable[[MethodParams], Method]:
    def factory(p: MethodParams) -> Method:
        import trajalign as ta

        point = p.point

        def center(X, m):
            return ta.center(X, how, masses=m if how == "com" else None, point=point)

        promises = {
            **_RIGID,
            "rotation": "equivariant",
            "rotation per frame": "equivariant",
            "reflection": "equivariant",
        }
        if how != "point":
            promises["permutation"] = "equivariant"
        return Method(
            f"center-{how}",
            center,
            "coords",
            promises,
            description=f"center ({how})",
            conditioning=lambda X, m: 2.0,
        )

    return factory


for _how in ("com", "geometric", "point"):
    register_method(f"center-{_how}")(_center_factory(_how))


@register_method("kabsch")
def _kabsch(p: MethodParams) -> Method:
    import trajalign as ta

    from ..kernels.kabsch import NEWTON_TOL

    def kabsch(X, m):
        return quiet(ta.superpose)(X, "first").coords

    promises = {
        **_RIGID,
        "rotation": "equivariant",
        "rotation per frame": "reference",
        "reflection": "equivariant",
        "permutation": "equivariant",
    }
    return Method(
        "kabsch",
        kabsch,
        "coords",
        promises,
        description="superpose on frame 0",
        conditioning=conditioning_kabsch,
        # QCP's Newton iteration stops at this relative step: in float64 it, not the
        # rounding, sets the size of the change (1e-12 A on adenylate kinase)
        precision=NEWTON_TOL,
    )


@register_method("principal")
def _principal(p: MethodParams) -> Method:
    import trajalign as ta

    sign = p.sign
    if sign not in ("continuity", "skew", "none"):
        raise ParameterError(f"unknown sign rule {sign!r}", "use continuity, skew or none")

    def principal(X, m):
        r = quiet(ta.align_principal)(X, masses=m, sign=sign)
        amb = np.asarray(r.diagnostics["skew_undefined"], dtype=bool)
        if sign == "none":
            # the solver's signs are not a property of the frame: no allowance, so a
            # rotation that flips them shows as the change it is
            return MethodOutput(r.coords)
        if sign == "continuity":
            # frame 0 takes the skew rule and every later frame follows it
            return MethodOutput(r.coords, np.full(len(amb), bool(amb[0])), True)
        return MethodOutput(r.coords, amb)

    promises = {
        **_RIGID,
        "rotation": "invariant",
        "rotation per frame": "invariant",
        "permutation": "equivariant",
    }
    if sign == "continuity":
        # each frame's signs follow the previous frame's axes in the lab frame, so
        # rotating frames independently changes the choice (measured on chain2d: jumps
        # of the size of the chain); only a global rotation leaves it alone
        del promises["rotation per frame"]
    return Method(
        "principal",
        principal,
        "coords",
        promises,
        description=f"principal axes ({sign})",
        conditioning=conditioning_principal,
        note="--sign none keeps the eigen solver's axis signs, which a rotation flips"
        if sign == "none"
        else "",
    )


@register_method("point")
def _point(p: MethodParams) -> Method:
    import trajalign as ta

    pts = tuple(p.points) if p.points is not None else default_points(p.dim)

    def point_align(X, m):
        return ta.align_points(X, *pts).coords

    promises = {**_RIGID, "rotation": "invariant", "rotation per frame": "invariant"}
    label = ",".join(str(q) for q in pts)
    return Method(
        "point",
        point_align,
        "coords",
        promises,
        description=f"points {label}",
        conditioning=lambda X, m: conditioning_point(X, pts),
    )


@register_method("distances")
def _distances(p: MethodParams) -> Method:
    import trajalign as ta

    if "distances" in p.tuples:
        pairs = p.tuples["distances"]
        return Method(
            "distances",
            lambda X, m: ta.distances(X, pairs),
            "features",
            dict(_DISTANCE_PROMISES),
            description="the input's bonds",
            conditioning=lambda X, m: 2.0,
        )
    return Method(
        "distances",
        lambda X, m: ta.distances(X, "all"),
        "features",
        dict(_DISTANCE_PROMISES),
        description="all pairs",
        conditioning=lambda X, m: 2.0,
        scaling=2,
    )


@register_method("angles", applies=lambda dim, n: n >= 3)
def _angles(p: MethodParams) -> Method:
    t = p.tuples.get("angles")
    what = "the input's angles" if t is not None else "consecutive triplets"
    return _tuple_method("angles", 3, t, dict(_DISTANCE_PROMISES), what)


@register_method("dihedrals", applies=lambda dim, n: dim == 3 and n >= 4)
def _dihedrals(p: MethodParams) -> Method:
    if p.dim != 3:
        raise ParameterError(
            "dihedrals need 3D coordinates; the input is 2D", "drop dihedrals from --method"
        )
    t = p.tuples.get("dihedrals")
    what = "the input's dihedrals" if t is not None else "consecutive quadruplets"
    return _tuple_method("dihedrals", 4, t, {**_DISTANCE_PROMISES, "reflection": "negated"}, what)


@register_method("eigvals")
def _eigvals(p: MethodParams) -> Method:
    import trajalign as ta

    return Method(
        "eigvals",
        lambda X, m: ta.eigvals(X),
        "features",
        {**_DISTANCE_PROMISES, "permutation": "invariant"},
        description="inverse-distance spectrum",
        conditioning=lambda X, m: eigvals_conditioning(X),
        scaling=3,
    )


def _torsion_factory(name: str) -> Callable[[MethodParams], Method]:
    def factory(p: MethodParams) -> Method:
        t = p.tuples.get(name)
        if t is None:
            raise ParameterError(
                f"{name} needs a protein: the input gives no {name} quadruplets",
                "check it on an MDAnalysis protein input (a topology with atom names)",
            )
        # a torsion is a dihedral of named atoms: the same promises (negated by a mirror)
        promises = {**_DISTANCE_PROMISES, "reflection": "negated"}
        return _tuple_method(name, 4, t, promises, f"{name} of the selection's residues")

    return factory


for _name in PROTEIN_METHODS[:-1]:
    register_method(_name, applies=lambda dim, n: dim == 3 and n >= 4)(_torsion_factory(_name))


@register_method("mindist", applies=lambda dim, n: n >= 2)
def _mindist(p: MethodParams) -> Method:
    from ..kernels.box import TABLE_WIDTH

    plan = p.tuples.get("mindist")
    if plan is None:
        raise ParameterError(
            "mindist needs a protein: the input gives no residue pairs",
            "check it on an MDAnalysis protein input (a topology with residues)",
        )
    no_box = np.zeros((1, TABLE_WIDTH))

    def func(X, m):
        x = np.ascontiguousarray(X)
        if x.shape[2] == 2:
            x = np.ascontiguousarray(np.concatenate([x, np.zeros_like(x[..., :1])], axis=2))
        return plan.compute(x, no_box)[0]

    return Method(
        "mindist",
        func,
        "features",
        dict(_DISTANCE_PROMISES),
        description=f"{plan.n_pairs} residue pairs (closest-heavy)",
        # a minimum of distances moves at most as fast as the distance it picks
        conditioning=lambda X, m: 2.0,
    )


def _tuple_method(
    name: str, width: int, tuples: np.ndarray | None, promises: dict, description: str
) -> Method:
    """Angles or dihedrals over ``tuples`` (None: consecutive points), with their
    conditioning and the restriction to well-conditioned tuples."""
    import trajalign as ta

    measure = ta.angles if width == 3 else ta.dihedrals

    def of(X):
        return tuples if tuples is not None else ta.chain_tuples(np.shape(X)[1], width)

    def func(X, m):
        return measure(X, of(X), undefined="nan")

    def conditioning(X, m):
        t = of(X)
        if not len(t):
            return 1.0
        k = angle_conditioning(X, t) if width == 3 else dihedral_conditioning(X, t)[0]
        return float(np.max(k))

    def restrict(X):
        t = of(X)
        if width == 3 or not len(t):
            return _tuple_method(name, width, t, promises, description), 0, len(t)
        _, sines = dihedral_conditioning(X, t)
        keep = sines >= np.sin(np.radians(COLLINEAR_DEG))
        kept = _tuple_method(name, width, t[keep], promises, description)
        return kept, int(np.count_nonzero(~keep)), len(t)

    return Method(name, func, "features", promises, True, description, conditioning, restrict)


def get_method(
    name: str,
    dim: int = 3,
    *,
    point: int = 0,
    points: Sequence[int] | None = None,
    sign: str = "continuity",
    tuples: dict | None = None,
) -> Method:
    """A registry method by name (see :data:`METHOD_NAMES`).

    Parameters
    ----------
    name : str
        ``none`` (raw coordinates; promises nothing), ``center-com`` (mass-weighted where
        masses are given), ``center-point`` (point ``point`` to the origin), ``kabsch``
        (superpose onto the first frame, unweighted), ``principal`` (principal axes,
        mass-weighted, sign rule ``sign``), ``point`` (``points`` I,J[,K]), ``distances``
        (the ``tuples`` pairs, else all pairs), ``angles`` and ``dihedrals`` (the
        ``tuples`` triplets and quadruplets, else consecutive points), ``eigvals``
        (inverse-distance spectrum); ``phi`` ... ``chi5`` and ``mindist`` (the ``tuples``
        quadruplets and :class:`~trajalign.features.MindistPlan` of a protein).
    dim : int
        Dimension of the data (2 or 3): the default ``points`` and whether dihedrals exist.
    point, points, sign
        Parameters of ``center-point``, ``point`` and ``principal``. Principal axes
        promise invariance under rotations of the whole trajectory with every sign rule;
        ``none`` (the eigen solver's signs) breaks it, and the check says so.
    tuples : dict, optional
        ``{"distances": (K, 2), "angles": (A, 3), "dihedrals": (Q, 4)}`` int arrays of
        point indices, the input's own (a topology's bonds, angles and dihedrals); a
        feature missing or empty here uses the default above. Protein methods take
        ``"phi"`` ... (Q, 4) and ``"mindist"`` (a ``MindistPlan``) from here.

    Returns
    -------
    Method
    """
    own = {}
    for k, v in (tuples or {}).items():
        if k == "mindist":  # a MindistPlan (trajalign.features.mindist_plan)
            if v is not None and v.n_pairs:
                own[k] = v
        elif len(v):
            own[k] = np.asarray(v, dtype=np.int64)
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ParameterError(f"unknown method {name!r}", f"use one of {', '.join(METHOD_NAMES)}")
    pts = None if points is None else tuple(points)
    return factory(MethodParams(dim=dim, point=point, points=pts, sign=sign, tuples=own))


def resolve_method(method: str | Method | Callable, dim: int = 3, **params) -> Method:
    """A :class:`Method` from a registry name, a Method, or a bare callable.

    A bare callable ``f(X, masses)`` is taken as a coordinate method that promises
    invariance under every rigid motion and permutation (so the check tests all of them).
    """
    if isinstance(method, Method):
        return method
    if isinstance(method, str):
        return get_method(method, dim, **params)
    if callable(method):
        name = getattr(method, "__name__", "custom")
        return Method(name, method, "coords", dict.fromkeys(TRANSFORMATIONS, "invariant"))
    raise ParameterError(f"method {method!r} is not a name or a callable", "pass a method name")


def methods_for(dim: int, n_points: int) -> tuple[str, ...]:
    """Registry methods that apply to data of this dimension and size."""
    # protein methods need a protein topology: only where --method names them
    names = [n for n in METHOD_NAMES if n not in PROTEIN_METHODS]
    return tuple(n for n in names if _APPLIES.get(n, lambda d, k: True)(dim, n_points))


__all__ = [
    "PROMISES",
    "Method",
    "MethodOutput",
    "MethodParams",
    "default_points",
    "get_method",
    "methods_for",
    "quiet",
    "register_method",
    "registered_methods",
    "resolve_method",
]
