"""The equivariance check: random rotations, translations, reflections, permutations and
periodic images applied to the input, the method re-run, and its output compared with
what it promises (sections 5.5 and 5.6 of the equivariance chapter).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .._names import PERIODIC_IMAGES, TRANSFORMATIONS
from ..errors import DataError, ParameterError
from .conditioning import COLLINEAR_DEG, vector_norm
from .registry import PROMISES, Method, MethodOutput, resolve_method


def random_rotation(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A uniformly random proper rotation (D, D) for row vectors (``x @ Q``)."""
    if dim == 2:
        a = rng.uniform(0.0, 2.0 * np.pi)
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, s], [-s, c]])
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    ).T


@dataclass
class _Motion:
    """One sampled transformation: per-frame linear part Q (F, D, D), shift c (F, D) and
    atom order ``perm`` (x' = x[:, perm] @ Q + c)."""

    Q: np.ndarray
    c: np.ndarray
    perm: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        # batched matmul: einsum does not use BLAS here and took 5 s of a protein check
        return np.matmul(x[:, self.perm], self.Q) + self.c[:, None, :]


def _sample_motion(
    kind: str, rng: np.random.Generator, n_frames: int, n_points: int, dim: int, scale: float
) -> _Motion:
    eye = np.broadcast_to(np.eye(dim), (n_frames, dim, dim)).copy()
    zero = np.zeros((n_frames, dim))
    ident = np.arange(n_points)
    if kind == "translation":
        return _Motion(eye, np.broadcast_to(rng.normal(scale=scale, size=dim), zero.shape), ident)
    if kind == "translation per frame":
        return _Motion(eye, rng.normal(scale=scale, size=zero.shape), ident)
    if kind == "rotation":
        return _Motion(np.broadcast_to(random_rotation(rng, dim), eye.shape).copy(), zero, ident)
    if kind == "rotation per frame":
        return _Motion(np.stack([random_rotation(rng, dim) for _ in range(n_frames)]), zero, ident)
    if kind == "reflection":
        # a mirror through a random plane (line in 2D): x -> x (I - 2 n n^T)
        n = rng.normal(size=dim)
        n /= np.linalg.norm(n)
        m = np.eye(dim) - 2.0 * np.outer(n, n)
        return _Motion(np.broadcast_to(m, eye.shape).copy(), zero, ident)
    if kind == "permutation":
        perm = rng.permutation(n_points)
        if n_points > 1:
            while np.all(perm == ident):
                perm = rng.permutation(n_points)
        return _Motion(eye, zero, perm)
    raise ParameterError(
        f"unknown transformation {kind!r}", f"use one of {', '.join(TRANSFORMATIONS)}"
    )


def _expected(values: np.ndarray, promise: str, motion: _Motion, kind: str) -> np.ndarray:
    if promise == "invariant":
        return values
    if promise == "negated":
        return -values
    if kind != "coords":
        raise ParameterError(
            f"a feature method cannot promise {promise!r}", "use invariant or negated"
        )
    y = values[:, motion.perm].astype(np.float64)
    if promise == "equivariant":
        return np.matmul(y, motion.Q) + motion.c[:, None, :]
    if promise == "reference":
        return y @ motion.Q[0] + motion.c[0]
    raise ParameterError(f"unknown promise {promise!r}", f"use one of {', '.join(PROMISES)}")


def _proper_flips(dim: int) -> list[np.ndarray]:
    """Diagonal sign matrices with determinant +1 (the identity first)."""
    out = []
    for s in itertools.product((1.0, -1.0), repeat=dim):
        if np.prod(s) > 0:
            out.append(np.diag(s))
    out.sort(key=lambda m: -np.trace(m))
    return out


def _change(
    new: MethodOutput, ref: MethodOutput, expected: np.ndarray, method: Method
) -> tuple[np.ndarray, bool]:
    """Per-frame largest change of ``new.values`` from ``expected``; and whether sign
    ambiguity was used."""
    y = np.asarray(new.values, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if y.shape != e.shape:
        raise DataError(
            f"method {method.name} returned shape {y.shape} for the transformed input and "
            f"{e.shape} for the original",
            "a method must return the same shape for the same number of frames and points",
        )

    def err(a, b):
        # an entry undefined (NaN) in both outputs has not changed
        d = np.where(np.isnan(a) & np.isnan(b), 0.0, a - b)
        if method.periodic:
            d = (d + np.pi) % (2.0 * np.pi) - np.pi
        if method.kind == "coords":
            return np.sqrt(np.sum(d * d, axis=-1)).max(axis=-1)
        return np.abs(d).reshape(d.shape[0], -1).max(axis=-1, initial=0.0)

    base = err(y, e)
    amb = None
    for o in (new, ref):
        if o.sign_ambiguous is not None:
            a = np.asarray(o.sign_ambiguous, dtype=bool)
            amb = a if amb is None else (amb | a)
    if method.kind != "coords" or amb is None or not amb.any():
        return base, False
    flips = _proper_flips(y.shape[-1])
    if new.global_sign or ref.global_sign:
        best = min((err(y, e @ s) for s in flips), key=lambda v: float(np.max(v)))
        return np.where(amb, np.minimum(base, best), base), True
    per = np.min(np.stack([err(y, e @ s) for s in flips]), axis=0)
    return np.where(amb, per, base), True


#: safety factor of the default tolerance (:func:`rounding_tol`)
TOL_FACTOR = 8.0


def _eps(dtype) -> float:
    dt = np.dtype(dtype)
    return float(np.finfo(dt if dt.kind == "f" else np.float64).eps)


def rounding_tol(
    dtype,
    x_scale: float,
    kappa: float = 1.0,
    out_scale: float = 0.0,
    factor: float = TOL_FACTOR,
    precision: float = 0.0,
) -> float:
    """Default tolerance of the check: ``factor * eps * (kappa * x_scale + out_scale)``.

    The moved input is cast back to the data's dtype, which moves every point by up to
    ``eps * x_scale`` (``x_scale`` the largest distance of a point from the origin, moved
    input included); the method turns that into at most ``kappa`` times as much change of
    its output (its conditioning, see the ``conditioning_*`` functions: 2 for centring and
    distances, the lever arm over the fitted extent for alignments, one over the bond
    length and the sine of the bond angles for angles and dihedrals), and rounds its output
    (``eps * out_scale``). ``factor`` leaves room for the rest (several roundings adding
    up, the methods' own float64 arithmetic). Measured with the default 8 (3 trials;
    adenylate kinase PSF/DCD and TPR/XTC, Amber alanine dipeptide, an NMR ensemble,
    butane, the 2D chain): every change of float32 data below 1/17 of this tolerance, of
    float64 data below 1/4; on adenylate kinase a centring 1e-4 A off is 1.5 to 2.3 times
    above it, an extra turn of 0.01 degrees 30 to 40 times (Kabsch) and 6 times
    (principal axes).

    Parameters
    ----------
    dtype : numpy dtype
        Of the data (float32 or float64).
    x_scale : float
        Largest point norm of the input and its moved copies, in length units.
    kappa : float
        The method's conditioning: output change per unit move of every point.
    out_scale : float
        Largest magnitude of the output.
    factor : float
    precision : float
        The method's own relative precision (:attr:`Method.precision`); ``eps`` is the
        larger of it and the dtype's machine epsilon.

    Returns
    -------
    float
    """
    eps = max(_eps(dtype), float(precision))
    return factor * eps * (float(kappa) * float(x_scale) + float(out_scale))


def _largest(per_frame: np.ndarray) -> tuple[float, int]:
    """(largest per-frame change, its frame); NaN counts as infinite, no frames as 0."""
    if not per_frame.size:
        return 0.0, 0
    f = int(np.argmax(per_frame))
    val = float(per_frame[f])
    return (val if np.isfinite(val) else float("inf")), f


def _magnitude(values: np.ndarray, kind: str) -> float:
    """Largest point norm (coordinates) or absolute value (features), NaN ignored."""
    v = np.asarray(values, dtype=np.float64)
    if not v.size:
        return 0.0
    m = vector_norm(v) if kind == "coords" else np.abs(v)
    return float(np.nanmax(m)) if np.isfinite(m).any() else 0.0


def even_points(n_points: int, max_points: int | None) -> np.ndarray | None:
    """At most ``max_points`` indices evenly spaced over ``0..n_points-1`` (first and last
    included), or None when every point fits.

    Returns
    -------
    ndarray, shape (K,), int64, or None
    """
    if max_points is None or n_points <= max_points:
        return None
    k = max(int(max_points), 1)
    return np.unique(np.linspace(0, n_points - 1, k).round().astype(np.int64))


@dataclass
class _Prepared:
    """A method ready to check on some data: restricted to well-conditioned tuples and
    the points it can afford, with its conditioning and notes."""

    method: Method
    idx: np.ndarray | None
    kappa: float
    notes: list

    def take(self, x: np.ndarray) -> np.ndarray:
        return x if self.idx is None else np.ascontiguousarray(x[:, self.idx])

    def masses(self, w: np.ndarray | None) -> np.ndarray | None:
        return w if w is None or self.idx is None else w[self.idx]


def _prepare(m: Method, x: np.ndarray, w: np.ndarray | None, max_points: int | None) -> _Prepared:
    notes = []
    idx = even_points(x.shape[1], max_points) if m.scaling > 1 else None
    if idx is not None:
        notes.append(f"{m.name} on {idx.size} of {x.shape[1]} points, evenly spaced")
        x = np.ascontiguousarray(x[:, idx])
        w = None if w is None else w[idx]
    if m.restrict is not None:
        m, left, total = m.restrict(x)
        if left:
            notes.append(
                f"{left} of {total} {m.name} left out: a bond angle within "
                f"{COLLINEAR_DEG:g} degrees of straight"
            )
    if m.note:
        notes.append(m.note)
    kappa = 1.0 if m.conditioning is None else float(m.conditioning(x, w))
    return _Prepared(m, idx, kappa, notes)


def _row(m, kind, promise, worst, frame, tol, notes, kappa) -> dict:
    return {
        "method": m.name,
        "transformation": kind,
        "promise": promise,
        "max_change": worst,
        "frame": frame,
        "tol": tol,
        "ok": None if promise is None else bool(worst <= tol),
        "note": "; ".join(notes),
        "conditioning": kappa,
    }


def _row_tol(tol: float | None, dtype, row_x: float, prep: _Prepared, row_out: float) -> float:
    """The row's tolerance: ``tol`` where given, else :func:`rounding_tol` of the row."""
    if tol is not None:
        return float(tol)
    return rounding_tol(dtype, row_x, prep.kappa, row_out, precision=prep.method.precision)


def _check_inputs(X, method, masses, trials: int, params: dict):
    """(coordinates (F, N, D), the Method, masses (N,) float64 or None), validated."""
    from .._validate import as_coords

    x = as_coords(X)
    m = resolve_method(method, x.shape[2], **params)
    if trials < 1:
        raise ParameterError(f"trials={trials} is not positive", "use at least 1 trial")
    w = None if masses is None else np.asarray(masses, dtype=np.float64).reshape(-1)
    if w is not None and w.size != x.shape[1]:
        raise ParameterError(f"masses has {w.size} values for {x.shape[1]} points", "one per point")
    return x, m, w


def check_invariance(
    X: np.ndarray,
    method: str | Method | Callable,
    masses: np.ndarray | None = None,
    transformations: Iterable[str] = TRANSFORMATIONS,
    trials: int = 3,
    tol: float | None = None,
    seed: int | None = 0,
    max_points: int | None = None,
    progress: Callable[[int], None] | None = None,
    **params,
) -> list[dict]:
    """Check a method's promised invariances on randomly transformed copies of ``X``.

    For every transformation and trial a random motion is drawn (one rotation, translation
    or mirror for the whole trajectory, or one per frame, or a renumbering of the atoms;
    masses are renumbered alike), applied to ``X`` in float64 and cast back to ``X``'s
    dtype, and the method re-run. The output is compared with what the method promises
    (see :data:`PROMISES`); transformations it does not promise are reported for
    information (``ok`` None). Where the method declares its axis signs arbitrary
    (principal axes of a mirror-symmetric frame), the comparison allows a proper flip of
    axis signs and says so in ``note``. Dihedrals next to a nearly straight bond angle
    (within :data:`COLLINEAR_DEG`) are left out and counted in ``note``.

    Parameters
    ----------
    X : array_like, shape (F, N, D), float32 or float64
        Coordinates; not modified.
    method : str, Method or callable
        Registry name (:func:`get_method`, with ``params``), a :class:`Method`, or a
        callable ``f(X, masses)`` taken to promise every invariance.
    masses : array_like, shape (N,), optional
    transformations : iterable of str
        Subset of :data:`TRANSFORMATIONS`.
    trials : int
        Random draws per transformation; the largest change is reported.
    tol : float, optional
        Largest change accepted; default :func:`rounding_tol` of X's dtype, the largest
        point norm of the row's inputs, the method's conditioning on X and its output's
        magnitude (so each row has its own).
    seed : int, optional
        Seed of the random motions.
    max_points : int, optional
        Methods whose cost grows faster than the point count (:attr:`Method.scaling`)
        run on at most this many points, evenly spaced (:func:`even_points`).
    progress : callable, optional
        Called with the number of frames after every run of the method.

    Returns
    -------
    list of dict
        One row per transformation: ``method``, ``transformation``, ``promise`` (or None),
        ``max_change`` (float, in the output's unit), ``frame`` (where it is largest),
        ``tol``, ``ok`` (True, False, or None when not promised), ``note`` (what the row
        leaves out or allows, "; " between notes) and ``conditioning`` (the method's).
    """
    x, m, w = _check_inputs(X, method, masses, trials, params)
    n_frames, n_points, dim = x.shape
    prep = _prepare(m, x, w, max_points)
    m, x, w = prep.method, prep.take(x), prep.masses(w)
    n_points = x.shape[1]
    tick = progress or (lambda n: None)
    rng = np.random.default_rng(seed)
    ref = m(x, w)
    tick(n_frames)
    vals = np.asarray(ref.values, dtype=np.float64)
    xc = x.astype(np.float64)
    x_scale = _magnitude(xc, "coords")
    out_scale = _magnitude(vals, m.kind)
    # motions of the size of the data: larger translations only add float32 rounding
    spread = float(np.sqrt(np.mean(np.sum((xc - xc.mean(axis=1, keepdims=True)) ** 2, -1))))
    move = 3.0 * max(spread, 1.0)
    rows = []
    for kind in transformations:
        promise = m.promises.get(kind)
        worst, worst_frame, used_sign = -1.0, 0, False
        row_x, row_out = x_scale, out_scale
        for _ in range(trials):
            motion = _sample_motion(kind, rng, n_frames, n_points, dim, move)
            xt = motion.apply(xc).astype(x.dtype)
            row_x = max(row_x, _magnitude(xt, "coords"))
            wt = None if w is None else w[motion.perm]
            new = m(xt, wt)
            tick(n_frames)
            row_out = max(row_out, _magnitude(new.values, m.kind))
            expected = _expected(vals, promise or "invariant", motion, m.kind)
            per_frame, flipped = _change(new, ref, expected, m)
            used_sign |= flipped
            val, f = _largest(per_frame)
            if val > worst:
                worst, worst_frame = val, f
        notes = list(prep.notes)
        if used_sign:
            notes.append("up to the axis signs the method declares arbitrary (zero skewness)")
        tol_row = _row_tol(tol, x.dtype, row_x, prep, row_out)
        rows.append(_row(m, kind, promise, worst, worst_frame, tol_row, notes, prep.kappa))
    return rows


def check_periodic_images(
    source,
    n_frames: int,
    methods: Sequence[str],
    masses: np.ndarray | None = None,
    trials: int = 3,
    tol: float | None = None,
    seed: int | None = 0,
    max_points: int | None = None,
    progress: Callable[[int], None] | None = None,
    **params,
) -> list[dict]:
    """Check that the periodic repair makes a method's output independent of the images
    the atoms were written in.

    Each trial moves every atom of every frame by its own random lattice vector (up to
    two box vectors each way) before the repair, repairs as ``source`` does, and re-runs
    the method on the selection. A method that is invariant under translation promises
    the same output where the repair leaves the selection as one body (one molecule, or
    ``cluster``/``nojump``); with ``whole`` and several molecules the molecules may land
    in other images, and the change is reported without judgement.

    Parameters
    ----------
    source : Source
        An open source with a periodic repair (``source.pbc_mode`` not ``none``).
    n_frames : int
        The first frames of the selection to check.
    methods : sequence of str
        Registry names (:func:`get_method`).
    masses, trials, tol, seed, max_points, progress, params
        As :func:`check_invariance`.

    Returns
    -------
    list of dict
        One row per method, as :func:`check_invariance`'s, transformation
        ``"periodic images"``.
    """
    from ..pbc import Repair

    rep = source._repair
    if rep is None:
        raise ParameterError(
            f"the {PERIODIC_IMAGES} check needs a periodic repair, and the input has none",
            "give an input with a box (and bonds), or drop periodic-images from --transform",
        )
    tick = progress or (lambda n: None)
    raw, h = source._scan(0, n_frames)
    raw = raw.astype(np.float64)
    hs = np.ascontiguousarray(np.broadcast_to(h, (raw.shape[0], 3, 3)))
    base = source.read(0, n_frames).coords
    dim = source.dim
    one_body = rep.mode in ("cluster", "nojump") or (
        source.molecules is None or np.unique(source.molecules).size == 1
    )
    rng = np.random.default_rng(seed)
    moved_sets = []
    for _ in range(trials):
        k = rng.integers(-2, 3, size=raw.shape).astype(np.float64)
        y = raw + np.einsum("fnd,fde->fne", k, hs)
        Repair(rep.mode, rep.plan).apply(y, hs, 0)
        moved_sets.append(np.ascontiguousarray(y[:, source._sel_pos, :dim], dtype=base.dtype))
    rows = []
    for name in methods:
        w = None if masses is None else np.asarray(masses, dtype=np.float64).reshape(-1)
        prep = _prepare(resolve_method(name, dim, **params), base, w, max_points)
        m, x, w = prep.method, prep.take(base), prep.masses(w)
        ref = m(x, w)
        tick(x.shape[0])
        vals = np.asarray(ref.values, dtype=np.float64)
        row_x, row_out = _magnitude(x, "coords"), _magnitude(vals, m.kind)
        promise = "invariant" if m.promises.get("translation") == "invariant" else None
        if not one_body:
            promise = None
        worst, worst_frame = -1.0, 0
        for coords in moved_sets:
            xt = prep.take(coords)
            row_x = max(row_x, _magnitude(xt, "coords"))
            new = m(xt, w)
            tick(x.shape[0])
            row_out = max(row_out, _magnitude(new.values, m.kind))
            per_frame, _ = _change(new, ref, vals, m)
            val, f = _largest(per_frame)
            if val > worst:
                worst, worst_frame = val, f
        tol_row = _row_tol(tol, x.dtype, row_x, prep, row_out)
        notes = [*prep.notes, f"atoms moved by lattice vectors, then --pbc {rep.mode}"]
        rows.append(
            _row(m, PERIODIC_IMAGES, promise, worst, worst_frame, tol_row, notes, prep.kappa)
        )
    return rows


__all__ = [
    "TOL_FACTOR",
    "check_invariance",
    "check_periodic_images",
    "even_points",
    "random_rotation",
    "rounding_tol",
]
