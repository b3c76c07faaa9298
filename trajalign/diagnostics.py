"""Diagnostics of an alignment: jumps over time, perturbation sensitivity, and the
equivariance check (sections 5.5 and 5.6 of the equivariance chapter).

Pure numpy on top of the public API; no click, no matplotlib (figures are in
:mod:`trajalign.plots`).

- **Jumps.** :func:`consecutive_rmsd` is the RMSD between consecutive aligned frames;
  :func:`flag_jumps` flags frames where it rises far above its running level with a robust
  rule (running median plus ``k`` scaled MADs over a centred window, see
  :func:`jump_threshold`). :func:`add_jump_diagnostics` does this for a finished
  ``rotate`` output, reading positions block by block.
- **Sensitivity.** :func:`perturb_aligned` and :func:`sensitivity` repeat the chapter's
  ``perturb_paths`` experiment for any alignment method: one point of one frame moves by
  growing amounts along an axis, the frames are aligned, and every point's displacement in
  the aligned frame is measured per unit of perturbation.
- **Check.** :func:`check_invariance` applies random rotations, translations,
  reflections and permutations to the input, re-runs a method, and compares the output
  with what the method promises (the same output, or the output moved alike). Methods come
  from a registry (:data:`METHOD_NAMES`, :func:`get_method`) or are any callable wrapped in
  :class:`Method`.
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._names import METHOD_NAMES, TRANSFORMATIONS
from .errors import DataError, ParameterError, TrajalignError

# ---------------------------------------------------------------------------- jumps

#: default jump rule: flag a frame whose consecutive RMSD exceeds the running median by
#: more than JUMP_K robust standard deviations (1.4826 MAD) over a centred window
JUMP_K = 10.0
JUMP_WINDOW = 51
#: the robust spread is floored at this fraction of the running median, so that an almost
#: constant series (a rigid body, a perfectly smooth alignment) does not flag rounding noise
JUMP_FLOOR = 0.05
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its sigma

DIAG = "trajalign/diagnostics"
POSITION = "particles/trajectory/position/value"


def consecutive_rmsd(coords: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """RMSD between each aligned frame and the one before it.

    Parameters
    ----------
    coords : array_like, shape (F, N, D), float32 or float64
        Aligned coordinates.
    previous : array_like, shape (N, D), optional
        The frame before ``coords[0]`` (when scanning a trajectory block by block).

    Returns
    -------
    ndarray, shape (F,), float64
        ``sqrt(mean_i |x[t, i] - x[t-1, i]|^2)`` (unweighted, in the length unit of
        ``coords``). Frame 0 has no predecessor: NaN unless ``previous`` is given.
    """
    from .kernels.diagnostics import consecutive_rmsd_kernel

    x = np.asarray(coords)
    if x.ndim != 3:
        raise DataError(f"coords has shape {x.shape}, not (frames, points, dim)", "pass (F, N, D)")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if previous is not None and x.shape[0]:
        # one kernel for every frame, so block boundaries round like the rest
        x = np.concatenate([np.asarray(previous, dtype=x.dtype)[None], x])
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] > 1 and x.shape[1] > 0:
        consecutive_rmsd_kernel(np.ascontiguousarray(x), out)
    return out[1:] if previous is not None and len(out) else out


def jump_threshold(
    scores: np.ndarray,
    k: float = JUMP_K,
    window: int = JUMP_WINDOW,
    floor: float = JUMP_FLOOR,
) -> np.ndarray:
    """Running threshold of the jump rule.

    ``threshold[t] = m[t] + k * max(1.4826 * MAD[t], floor * m[t])``, where ``m`` is the
    median of ``scores`` over the centred window of ``window`` frames around ``t`` and
    ``MAD`` the median absolute deviation from ``m`` over the same window (both
    ``scipy.ndimage.median_filter`` with ``mode="mirror"``, so the first and last frames
    are judged against real neighbours). A single-frame spike barely moves a median, so
    the rule is not fooled by the jumps it looks for (a mean and standard deviation would
    be). With the default ``k = 10`` a frame must step about ten robust standard
    deviations above its neighbours: the heavy-tailed frame-to-frame noise of a flexing
    chain (sample chain2d, Kabsch and point alignment) stays below it, while principal-axis
    swaps and sign flips (steps of the size of the molecule) are far above. NaN scores
    (frame 0) are left out by replacing them with
    the overall median.

    Parameters
    ----------
    scores : array_like, shape (F,)
        Per-frame scores such as :func:`consecutive_rmsd`.
    k : float
        Number of robust standard deviations above the running median.
    window : int
        Window length in frames (odd; an even value is rounded up).
    floor : float
        Smallest spread as a fraction of the running median.

    Returns
    -------
    ndarray, shape (F,), float64
    """
    from scipy.ndimage import median_filter

    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if k <= 0 or window < 1 or floor < 0:
        raise ParameterError(
            f"jump rule k={k}, window={window}, floor={floor} is not valid",
            "use k > 0, window >= 1 and floor >= 0",
        )
    if s.size == 0:
        return s.copy()
    finite = np.isfinite(s)
    fill = float(np.median(s[finite])) if finite.any() else 0.0
    s = np.where(finite, s, fill)
    w = int(window) | 1
    med = median_filter(s, size=w, mode="mirror")
    mad = median_filter(np.abs(s - med), size=w, mode="mirror")
    return med + k * np.maximum(_MAD_TO_SIGMA * mad, floor * med)


def flag_jumps(
    scores: np.ndarray,
    k: float = JUMP_K,
    window: int = JUMP_WINDOW,
    floor: float = JUMP_FLOOR,
) -> np.ndarray:
    """Frames whose score jumps well above its running level.

    Parameters are those of :func:`jump_threshold`; a frame is flagged when its score is
    above the threshold. NaN scores are never flagged.

    Returns
    -------
    ndarray, shape (F,), bool
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore"):
        return np.isfinite(s) & (s > jump_threshold(s, k, window, floor))


def jump_rule_attrs(k: float, window: int, floor: float) -> dict:
    """HDF5 attributes that describe the jump rule."""
    return {
        "rule": "score > m + k * max(1.4826 * MAD, floor * m); m, MAD: running median and "
        "median absolute deviation of the score over a centred window",
        "k": float(k),
        "window": int(window) | 1,
        "floor": float(floor),
    }


def add_jump_diagnostics(
    h5file,
    k: float = JUMP_K,
    window: int = JUMP_WINDOW,
    floor: float = JUMP_FLOOR,
    block_frames: int | None = None,
) -> dict:
    """Add consecutive-frame RMSD and jump flags to a finished ``rotate`` output.

    Reads ``/particles/trajectory/position/value`` (F, N, D) in blocks (bounded memory),
    and writes ``/trajalign/diagnostics/consecutive_rmsd`` (F,) float64 (attr ``unit``;
    frame 0 is NaN) and ``/trajalign/diagnostics/jump_flag`` (F,) bool with attributes
    that describe the rule (see :func:`jump_threshold`). Existing datasets of those names
    are replaced.

    Parameters
    ----------
    h5file : h5py.File
        Open for writing.
    k, window, floor
        The jump rule.
    block_frames : int, optional
        Frames read per block (default: about 16 MB of positions).

    Returns
    -------
    dict
        ``{"jumps": number of flagged frames, "frames": [flagged frame numbers, at most
        20], "max_rmsd": float}``.
    """
    if POSITION not in h5file:
        raise DataError(
            f"{h5file.filename} has no {POSITION}", "give an output of trajalign rotate/center"
        )
    pos = h5file[POSITION]
    n_frames, n_points, dim = pos.shape
    if block_frames is None:
        block_frames = max(1, (16 << 20) // max(1, n_points * dim * 8))
    scores = np.full(n_frames, np.nan)
    prev = None
    for start in range(0, n_frames, block_frames):
        stop = min(start + block_frames, n_frames)
        block = np.asarray(pos[start:stop])
        scores[start:stop] = consecutive_rmsd(block, prev)
        prev = block[-1]
    return store_jump_diagnostics(h5file, scores, k, window, floor)


def store_jump_diagnostics(
    h5file,
    scores: np.ndarray,
    k: float = JUMP_K,
    window: int = JUMP_WINDOW,
    floor: float = JUMP_FLOOR,
) -> dict:
    """Flag the jumps of a consecutive-RMSD series and write both into ``h5file``.

    ``scores`` (F,) float64, frame 0 NaN, is written as
    ``/trajalign/diagnostics/consecutive_rmsd`` and its flags as ``jump_flag`` (existing
    datasets of those names are replaced). Returns the summary of
    :func:`add_jump_diagnostics`.
    """
    pos = h5file[POSITION]
    n_frames = scores.shape[0]
    flags = flag_jumps(scores, k, window, floor)
    g = h5file.require_group(DIAG)
    for name in ("consecutive_rmsd", "jump_flag"):
        if name in g:
            del g[name]
    ds = g.create_dataset("consecutive_rmsd", data=scores)
    ds.attrs["unit"] = pos.attrs.get("unit", "Angstrom")
    ds.attrs["description"] = "RMSD between aligned frame t and t-1 (frame 0: NaN)"
    fl = g.create_dataset("jump_flag", data=flags)
    for key, value in jump_rule_attrs(k, window, floor).items():
        fl.attrs[key] = value
    frames = (
        np.asarray(h5file["trajalign/frames/index"])
        if "trajalign/frames/index" in h5file
        else np.arange(n_frames)
    )
    hit = frames[flags]
    return {
        "jumps": int(flags.sum()),
        "frames": [int(f) for f in hit[:20]],
        "max_rmsd": float(np.nanmax(scores)) if n_frames > 1 else 0.0,
    }


# -------------------------------------------------------------------- method registry

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


#: methods of ``trajalign rotate`` (jump diagnostics)
ROTATE_METHODS = ("kabsch", "principal", "point")

_RIGID = {"translation": "invariant", "translation per frame": "invariant"}


def _quiet(fn):
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


#: dihedrals whose bond angle i-j-k or j-k-l comes within this many degrees of 0 or 180
#: in a checked frame are left out of the check: their plane is nearly undefined, so the
#: rounding of the moved input swings them (0.11 degrees made a lysine's HZ1-HZ2-HZ3-C
#: change by 1e-3 rad under a translation); the count is reported
COLLINEAR_DEG = 10.0

# frames x tuples per block of the conditioning loops (bounded temporaries)
_COND_BLOCK = 1 << 21


def _norm(v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("...d,...d->...", v, v))


def _frame_blocks(n_frames: int, width: int):
    step = max(1, _COND_BLOCK // max(1, width))
    for a in range(0, n_frames, step):
        yield slice(a, min(a + step, n_frames))


def _centred(X: np.ndarray, masses: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates about the (mass-weighted) centre, (F, N, D) float64; weights (N,))."""
    x = np.asarray(X, dtype=np.float64)
    w = np.ones(x.shape[1]) if masses is None else np.asarray(masses, dtype=np.float64)
    w = w / w.sum()
    return x - np.einsum("n,fnd->fd", w, x)[:, None, :], w


def _soft(v: np.ndarray) -> np.ndarray:
    # a zero gap or length makes the conditioning infinite; keep it finite and huge so
    # the tolerance says "anything goes" instead of becoming NaN
    return np.maximum(v, 1e-300)


def conditioning_kabsch(X: np.ndarray, masses: np.ndarray | None = None) -> float:
    """Largest output move per unit move of every point, Kabsch onto frame 0.

    The rotation moves by at most ``|dH| / (s_j + s_k)`` (``H`` the correlation matrix
    of the centred frame and reference per point, ``s`` its singular values, the two
    smallest summed; ``|dH| <= d (mean |x_t| + mean |x_0|)``), which moves the farthest
    point by that times its radius; the centring adds 2.

    Parameters
    ----------
    X : array_like, shape (F, N, D), float32 or float64
    masses : ignored (the check's Kabsch is unweighted)

    Returns
    -------
    float
    """
    r, _ = _centred(X, None)
    n = r.shape[1]
    h = np.einsum("fnd,ne->fde", r, r[0]) / n
    s = np.linalg.svd(h, compute_uv=False)
    soft = _soft(s[:, -1] + s[:, -2])
    rad = _norm(r)
    lever = rad.max(axis=1) * (rad.mean(axis=1) + rad[0].mean())
    return float(np.max(2.0 + lever / soft))


def conditioning_principal(X: np.ndarray, masses: np.ndarray | None = None) -> float:
    """Largest output move per unit move of every point, principal axes.

    A move ``d`` of every point changes the (weighted) gyration tensor by at most
    ``2 d mean|r|``, which turns its eigenvectors by at most that over the smallest gap
    between its eigenvalues; the farthest point moves by that times its radius. Nearly
    equal principal moments (a gap near 0) make the axes, and so the tolerance, loose.

    Parameters
    ----------
    X : array_like, shape (F, N, D), float32 or float64
    masses : array_like, shape (N,), optional
        Weights of the centre and the tensor, as the check's principal method.

    Returns
    -------
    float
    """
    r, w = _centred(X, masses)
    g = np.einsum("n,fnd,fne->fde", w, r, r)
    lam = np.linalg.eigvalsh(g)
    gap = _soft(np.min(np.diff(lam, axis=1), axis=1))
    rad = _norm(r)
    lever = 2.0 * np.einsum("n,fn->f", w, rad) * rad.max(axis=1)
    return float(np.max(2.0 + lever / gap))


def conditioning_point(X: np.ndarray, pts: Sequence[int]) -> float:
    """Largest output move per unit move of every point, point alignment ``pts``.

    The direction I->J turns by at most ``2 d / |r_IJ|`` and the farthest point from I
    moves by that times its distance (a lever arm); in 3D the in-plane direction adds the
    same over the part of I->K orthogonal to I->J.

    Parameters
    ----------
    X : array_like, shape (F, N, D), float32 or float64
    pts : sequence of int
        I, J[, K].

    Returns
    -------
    float
    """
    x = np.asarray(X, dtype=np.float64)
    i, j = pts[0], pts[1]
    u = x[:, j] - x[:, i]
    lu = _soft(_norm(u))
    far = _norm(x - x[:, i : i + 1]).max(axis=1)
    kappa = 2.0 + 2.0 * far / lu
    if len(pts) > 2:
        v = x[:, pts[2]] - x[:, i]
        perp = v - (np.einsum("fd,fd->f", v, u) / lu**2)[:, None] * u
        kappa += 2.0 * far * (1.0 + _norm(v) / lu) / _soft(_norm(perp))
    return float(np.max(kappa))


def angle_conditioning(X: np.ndarray, triplets: np.ndarray) -> np.ndarray:
    """Per-triplet sensitivity of the angle i-j-k: ``2 (1/|r_ij| + 1/|r_kj|)``, the sum
    over the three points of the gradient norm bound, in radians per length unit.

    Parameters
    ----------
    X : array_like, shape (F, N, D), float32 or float64
    triplets : array_like, shape (A, 3), int

    Returns
    -------
    ndarray, shape (A,), float64
        The largest over the frames.
    """
    x = np.asarray(X)
    t = np.asarray(triplets, dtype=np.int64)
    out = np.zeros(len(t))
    for fs in _frame_blocks(x.shape[0], len(t)):
        xb = x[fs].astype(np.float64)
        b1 = _norm(xb[:, t[:, 0]] - xb[:, t[:, 1]])
        b2 = _norm(xb[:, t[:, 2]] - xb[:, t[:, 1]])
        with np.errstate(divide="ignore"):
            k = 2.0 * (1.0 / b1 + 1.0 / b2)
        out = np.maximum(out, k.max(axis=0, initial=0.0))
    return out


def dihedral_conditioning(X: np.ndarray, quadruplets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-quadruplet sensitivity of the dihedral i-j-k-l and its flanking bond angles.

    The sensitivity is the sum over the four points of the norms of the dihedral's
    gradient (Blondel and Karplus 1996): ``|d phi / d r_i| = 1 / (|r_ij| sin(ijk))``, the
    same for l with ``jkl``, and the two middle points' combinations, in radians per
    length unit. It grows without bound as a flanking angle straightens.

    Parameters
    ----------
    X : array_like, shape (F, N, 3), float32 or float64
    quadruplets : array_like, shape (Q, 4), int

    Returns
    -------
    kappa : ndarray, shape (Q,), float64
        The largest sensitivity over the frames.
    sin_min : ndarray, shape (Q,), float64
        The smallest sine of the two flanking angles over the frames (0: straight or
        coincident points).
    """
    x = np.asarray(X)
    t = np.asarray(quadruplets, dtype=np.int64)
    kappa = np.zeros(len(t))
    sin_min = np.ones(len(t))
    for fs in _frame_blocks(x.shape[0], len(t)):
        xb = x[fs].astype(np.float64)
        f = xb[:, t[:, 0]] - xb[:, t[:, 1]]
        g = xb[:, t[:, 1]] - xb[:, t[:, 2]]
        h = xb[:, t[:, 3]] - xb[:, t[:, 2]]
        a, b = np.cross(f, g), np.cross(h, g)
        la, lb, lg = _norm(a), _norm(b), _norm(g)
        with np.errstate(divide="ignore", invalid="ignore"):
            sines = np.minimum(la / (_norm(f) * lg), lb / (_norm(h) * lg))
            a2, b2 = (la**2)[..., None], (lb**2)[..., None]
            fg = np.einsum("...d,...d->...", f, g)[..., None]
            hg = np.einsum("...d,...d->...", h, g)[..., None]
            gg = lg[..., None]
            di = -gg / a2 * a
            dl = gg / b2 * b
            dj = (gg / a2 + fg / (a2 * gg)) * a - hg / (b2 * gg) * b
            dk = -(di + dj + dl)
            k = _norm(di) + _norm(dj) + _norm(dk) + _norm(dl)
        sines = np.where(np.isfinite(sines), sines, 0.0)
        k = np.where(np.isfinite(k), k, np.inf)
        kappa = np.maximum(kappa, k.max(axis=0, initial=0.0))
        sin_min = np.minimum(sin_min, sines.min(axis=0, initial=1.0))
    return kappa, sin_min


def eigvals_conditioning(X: np.ndarray) -> float:
    """Largest move of the inverse-distance spectrum per unit move of every point.

    Moving two points by ``d`` changes ``1/r`` by at most ``2 d / r^2``; an eigenvalue of a
    symmetric matrix moves by at most the Frobenius norm of the change, so the bound is
    ``2 sqrt(2 sum_{i<j} r_ij^-4)`` (1 / length^2), the largest over the frames.

    Parameters
    ----------
    X : array_like, shape (F, N, D), float32 or float64

    Returns
    -------
    float
    """
    from scipy.spatial.distance import pdist

    x = np.asarray(X, dtype=np.float64)
    worst = 0.0
    for frame in x:
        d = pdist(frame)
        with np.errstate(divide="ignore"):
            worst = max(worst, float(np.sum(d**-4.0)))
    return 2.0 * float(np.sqrt(2.0 * worst))


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
        (inverse-distance spectrum).
    dim : int
        Dimension of the data (2 or 3): the default ``points`` and whether dihedrals exist.
    point, points, sign
        Parameters of ``center-point``, ``point`` and ``principal``. Principal axes
        promise invariance under rotations of the whole trajectory with every sign rule;
        ``none`` (the eigen solver's signs) breaks it, and the check says so.
    tuples : dict, optional
        ``{"distances": (K, 2), "angles": (A, 3), "dihedrals": (Q, 4)}`` int arrays of
        point indices, the input's own (a topology's bonds, angles and dihedrals); a
        feature missing or empty here uses the default above.

    Returns
    -------
    Method
    """
    import trajalign as ta

    own = {k: np.asarray(v, dtype=np.int64) for k, v in (tuples or {}).items() if len(v)}
    if name == "none":
        return Method("none", lambda X, m: np.asarray(X), "coords", {}, description="raw input")
    if name in ("center-com", "center-geometric", "center-point"):
        how = name.split("-", 1)[1]

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
            name,
            center,
            "coords",
            promises,
            description=f"center ({how})",
            conditioning=lambda X, m: 2.0,
        )
    if name == "kabsch":

        def kabsch(X, m):
            return _quiet(ta.superpose)(X, "first").coords

        promises = {
            **_RIGID,
            "rotation": "equivariant",
            "rotation per frame": "reference",
            "reflection": "equivariant",
            "permutation": "equivariant",
        }
        from .kernels.kabsch import _NEWTON_TOL

        return Method(
            "kabsch",
            kabsch,
            "coords",
            promises,
            description="superpose on frame 0",
            conditioning=conditioning_kabsch,
            # QCP's Newton iteration stops at this relative step: in float64 it, not the
            # rounding, sets the size of the change (1e-12 A on adenylate kinase)
            precision=_NEWTON_TOL,
        )
    if name == "principal":
        if sign not in ("continuity", "skew", "none"):
            raise ParameterError(f"unknown sign rule {sign!r}", "use continuity, skew or none")

        def principal(X, m):
            r = _quiet(ta.align_principal)(X, masses=m, sign=sign)
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
    if name == "point":
        pts = tuple(points) if points is not None else default_points(dim)

        def point_align(X, m):
            return ta.align_points(X, *pts).coords

        promises = {**_RIGID, "rotation": "invariant", "rotation per frame": "invariant"}
        label = ",".join(str(p) for p in pts)
        return Method(
            "point",
            point_align,
            "coords",
            promises,
            description=f"points {label}",
            conditioning=lambda X, m: conditioning_point(X, pts),
        )
    rigid = {
        **_RIGID,
        "rotation": "invariant",
        "rotation per frame": "invariant",
        "reflection": "invariant",
    }
    if name == "distances":
        if "distances" in own:
            pairs = own["distances"]
            return Method(
                name,
                lambda X, m: ta.distances(X, pairs),
                "features",
                rigid,
                description="the input's bonds",
                conditioning=lambda X, m: 2.0,
            )
        return Method(
            name,
            lambda X, m: ta.distances(X, "all"),
            "features",
            rigid,
            description="all pairs",
            conditioning=lambda X, m: 2.0,
            scaling=2,
        )
    if name == "angles":
        t = own.get("angles")
        what = "the input's angles" if t is not None else "consecutive triplets"
        return _tuple_method(name, 3, t, rigid, what)
    if name == "dihedrals":
        if dim != 3:
            raise ParameterError(
                "dihedrals need 3D coordinates; the input is 2D", "drop dihedrals from --method"
            )
        t = own.get("dihedrals")
        what = "the input's dihedrals" if t is not None else "consecutive quadruplets"
        return _tuple_method(name, 4, t, {**rigid, "reflection": "negated"}, what)
    if name == "eigvals":
        return Method(
            name,
            lambda X, m: ta.eigvals(X),
            "features",
            {**rigid, "permutation": "invariant"},
            description="inverse-distance spectrum",
            conditioning=lambda X, m: eigvals_conditioning(X),
            scaling=3,
        )
    raise ParameterError(f"unknown method {name!r}", f"use one of {', '.join(METHOD_NAMES)}")


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
    out = []
    for name in METHOD_NAMES:
        if name == "dihedrals" and (dim != 3 or n_points < 4):
            continue
        if name == "angles" and n_points < 3:
            continue
        out.append(name)
    return tuple(out)


# ------------------------------------------------------------------------ the check


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
    m = _norm(v) if kind == "coords" else np.abs(v)
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
    from ._validate import as_coords

    x = as_coords(X)
    n_frames, n_points, dim = x.shape
    m = resolve_method(method, dim, **params)
    if trials < 1:
        raise ParameterError(f"trials={trials} is not positive", "use at least 1 trial")
    w = None if masses is None else np.asarray(masses, dtype=np.float64).reshape(-1)
    if w is not None and w.size != n_points:
        raise ParameterError(f"masses has {w.size} values for {n_points} points", "one per point")
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
        tol_row = (
            float(tol)
            if tol is not None
            else rounding_tol(x.dtype, row_x, prep.kappa, row_out, precision=m.precision)
        )
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
    from ._names import PERIODIC_IMAGES
    from .pbc import Repair

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
        tol_row = (
            float(tol)
            if tol is not None
            else rounding_tol(x.dtype, row_x, prep.kappa, row_out, precision=m.precision)
        )
        notes = [*prep.notes, f"atoms moved by lattice vectors, then --pbc {rep.mode}"]
        rows.append(
            _row(m, PERIODIC_IMAGES, promise, worst, worst_frame, tol_row, notes, prep.kappa)
        )
    return rows


class InvarianceError(TrajalignError):
    """A method broke an invariance it promises (``trajalign check`` exits 1)."""


def format_table(rows: list[dict]) -> str:
    """The check's rows as an aligned text table, with the rows' notes as footnotes
    (``*`` where there is one note, ``*1``, ``*2``, ... where there are several)."""
    head = ("method", "transformation", "promise", "max change", "tol", "result")
    notes: list[str] = []
    for r in rows:
        for n in filter(None, (r.get("note") or "").split("; ")):
            if n not in notes:
                notes.append(n)

    def mark(i: int) -> str:
        return "*" if len(notes) == 1 else f"*{i + 1}"

    lines = []
    for r in rows:
        res = "not promised" if r["ok"] is None else ("ok" if r["ok"] else "BROKEN")
        if r["ok"] is False:
            res += f" (frame {r['frame']})"
        mine = [notes.index(n) for n in filter(None, (r.get("note") or "").split("; "))]
        if mine:
            res += " " + " ".join(mark(i) for i in mine)
        lines.append(
            (
                r["method"],
                r["transformation"],
                r["promise"] or "-",
                f"{r['max_change']:.3g}",
                f"{r['tol']:.3g}",
                res,
            )
        )
    widths = [max(len(h), *(len(ln[i]) for ln in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(wd) for h, wd in zip(head, widths, strict=True)).rstrip()]
    out += [
        "  ".join(c.ljust(wd) for c, wd in zip(ln, widths, strict=True)).rstrip() for ln in lines
    ]
    out += [f"{mark(i)} {n}" for i, n in enumerate(notes)]
    return "\n".join(out)


def rows_json(rows: list[dict]) -> str:
    """The check's rows as a JSON array (inf as a string)."""

    def clean(v):
        return "inf" if isinstance(v, float) and not np.isfinite(v) else v

    return json.dumps([{k: clean(v) for k, v in r.items()} for r in rows])


# ---------------------------------------------------------------------- sensitivity

#: the chapter's perturb_paths: 16 steps up to 0.2 length units along x
PERTURB_STEPS = 16
PERTURB_AMOUNT = 0.2


def perturb_frames(
    frame: np.ndarray,
    point: int,
    steps: int = PERTURB_STEPS,
    amount: float = PERTURB_AMOUNT,
    axis: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Copies of one frame with one point moved by growing amounts.

    As the chapter's ``perturb_paths``: copy ``s`` has ``point`` moved by
    ``-delta[s]`` along ``axis``, ``delta = linspace(0, amount, steps)``.

    Returns
    -------
    frames : ndarray, shape (steps, N, D), float64
    delta : ndarray, shape (steps,), float64
    """
    f = np.asarray(frame, dtype=np.float64)
    if f.ndim == 3 and f.shape[0] == 1:
        f = f[0]
    if f.ndim != 2 or f.shape[-1] not in (2, 3):
        raise DataError(f"frame has shape {f.shape}, not (points, 2 or 3)", "pass one frame")
    n, dim = f.shape
    if not -n <= point < n:
        raise ParameterError(f"point {point} is out of range for {n} points", f"use 0..{n - 1}")
    if not 0 <= axis < dim:
        raise ParameterError(f"axis {axis} is out of range in {dim}D", "use 0 (x), 1 (y) or 2 (z)")
    if steps < 2 or not amount > 0:
        raise ParameterError(
            f"steps={steps}, amount={amount}", "use at least 2 steps and a positive amount"
        )
    delta = np.linspace(0.0, float(amount), int(steps))
    out = np.repeat(f[None], len(delta), axis=0)
    out[:, point, axis] -= delta
    return out, delta


def perturb_aligned(
    frame: np.ndarray,
    method: str | Method,
    point: int,
    steps: int = PERTURB_STEPS,
    amount: float = PERTURB_AMOUNT,
    axis: int = 0,
    masses: np.ndarray | None = None,
    method_params: dict | None = None,
) -> np.ndarray:
    """The perturbed copies of :func:`perturb_frames`, aligned by ``method``.

    ``method_params`` go to :func:`get_method` (``point``, ``points``, ``sign``). The
    copies are aligned as one short trajectory (step 0, the unperturbed frame, is
    the Kabsch reference and starts the principal-axes sign continuity).

    Returns
    -------
    ndarray, shape (steps, N, D), float64
    """
    frames, _ = perturb_frames(frame, point, steps, amount, axis)
    m = resolve_method(method, frames.shape[-1], **(method_params or {}))
    if m.kind != "coords":
        raise ParameterError(f"{m.name} does not align coordinates", "pick an alignment method")
    return np.asarray(m(frames, masses).values, dtype=np.float64)


def sensitivity(
    frame: np.ndarray,
    methods: Sequence[str | Method],
    point: int,
    steps: int = PERTURB_STEPS,
    amount: float = PERTURB_AMOUNT,
    axis: int = 0,
    masses: np.ndarray | None = None,
    method_params: dict | None = None,
) -> np.ndarray:
    """How far every point moves in the aligned frame per unit perturbation of one point.

    For each method, the displacement ``d[s, i] = |y[s, i] - y[0, i]|`` of point ``i``
    after aligning copy ``s`` (see :func:`perturb_aligned`) is fitted by a line through
    the origin against the perturbation ``delta[s]``; the slope
    ``sum_s delta[s] d[s, i] / sum_s delta[s]^2`` is the sensitivity (dimensionless:
    length per length). Without alignment it is 1 for the moved point and 0 elsewhere.

    Parameters
    ----------
    frame : array_like, shape (N, D)
    methods : sequence of str or Method
        Coordinate methods (:data:`COORD_METHODS`).
    point : int
        The perturbed point.

    Returns
    -------
    ndarray, shape (len(methods), N), float64
    """
    _, delta = perturb_frames(frame, point, steps, amount, axis)
    out = []
    for meth in methods:
        y = perturb_aligned(frame, meth, point, steps, amount, axis, masses, method_params)
        d = np.sqrt(np.sum((y - y[0]) ** 2, axis=-1))
        out.append(delta @ d / (delta @ delta))
    return np.array(out)


def sensitivity_matrix(
    frame: np.ndarray,
    methods: Sequence[str | Method],
    perturbed: Sequence[int] | None = None,
    steps: int = PERTURB_STEPS,
    amount: float = PERTURB_AMOUNT,
    axis: int = 0,
    masses: np.ndarray | None = None,
    method_params: dict | None = None,
) -> np.ndarray:
    """:func:`sensitivity` for several perturbed points.

    Returns
    -------
    ndarray, shape (len(methods), len(perturbed), N), float64
        ``[m, p, i]``: displacement of point ``i`` per unit move of point ``perturbed[p]``
        under method ``m``. ``perturbed`` defaults to every point.
    """
    n = np.asarray(frame).shape[-2]
    pts = range(n) if perturbed is None else perturbed
    per = [sensitivity(frame, methods, p, steps, amount, axis, masses, method_params) for p in pts]
    return np.stack(per, axis=1)


#: figures show at most this many columns of points (residues or bins of points)
MAX_GROUPS = 256


def point_groups(
    n_points: int,
    residues: np.ndarray | None = None,
    residue_labels: Sequence[str] | None = None,
    max_groups: int = MAX_GROUPS,
) -> tuple[np.ndarray, list[str], str]:
    """Columns for a per-point figure at any size: points, residues, or bins.

    Up to ``max_groups`` points are their own columns. More points are grouped by residue
    where ``residues`` is given (and there are at most ``max_groups`` residues), else
    into bins of consecutive points (consecutive residues when there are too many).

    Parameters
    ----------
    n_points : int
    residues : array_like, shape (N,), int, optional
        Residue number of each point, in any numbering; points of a residue need not be
        consecutive.
    residue_labels : sequence of str, optional
        A label per point's residue (e.g. ``"MET1"``), shape (N,).
    max_groups : int

    Returns
    -------
    group : ndarray, shape (N,), int64
        The column of each point, 0..G-1, in order of first appearance.
    labels : list of str, length G
        Column labels: the point index, the residue, or the first-last range.
    kind : {"point", "residue", "bin"}
        What a column is (``bin``: consecutive points, or residues, at most
        ``ceil(N / max_groups)`` of them).
    """
    n = int(n_points)
    if n <= max_groups:
        return np.arange(n, dtype=np.int64), [str(i) for i in range(n)], "point"
    if residues is not None:
        res = np.asarray(residues).reshape(-1)
        # numbers in order of first appearance: a residue's column keeps the chain order
        _, first, inv = np.unique(res, return_index=True, return_inverse=True)
        rank = np.empty(first.size, dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(first.size)
        rgroup = rank[inv]
        rlab = (
            [str(residue_labels[i]) for i in np.sort(first)]
            if residue_labels is not None
            else [str(res[i]) for i in np.sort(first)]
        )
        if first.size <= max_groups:
            return rgroup, rlab, "residue"
        width = -(-first.size // max_groups)
        group = rgroup // width
        labels = [
            f"{rlab[g * width]}-{rlab[min((g + 1) * width, len(rlab)) - 1]}"
            for g in range(int(group.max()) + 1)
        ]
        return group, labels, "bin"
    width = -(-n // max_groups)
    group = np.arange(n, dtype=np.int64) // width
    labels = [f"{g * width}-{min((g + 1) * width, n) - 1}" for g in range(int(group.max()) + 1)]
    return group, labels, "bin"


def group_mean(values: np.ndarray, group: np.ndarray, exclude: np.ndarray | None = None):
    """Mean of ``values`` over the points of each group (the last axis).

    Parameters
    ----------
    values : array_like, shape (..., N)
    group : array_like, shape (N,), int, 0..G-1
    exclude : array_like, shape (..., N), bool, optional
        Points left out of their group's mean (e.g. the perturbed point itself).

    Returns
    -------
    ndarray, shape (..., G), float64
        NaN for a group with no point left.
    """
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(group, dtype=np.int64)
    n_groups = int(g.max()) + 1 if g.size else 0
    onehot = np.zeros((g.size, n_groups))
    onehot[np.arange(g.size), g] = 1.0
    keep = np.ones(v.shape) if exclude is None else (~np.asarray(exclude, bool)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((v * keep) @ onehot) / (np.broadcast_to(keep, v.shape) @ onehot)


def trace_points(
    residues: np.ndarray, names: Sequence[str] | None = None, max_points: int = 400
) -> np.ndarray:
    """One point per residue to draw a large system by: the ``CA`` where the residue has
    one, else its first point; evenly thinned to ``max_points`` residues.

    Parameters
    ----------
    residues : array_like, shape (N,), int
        Residue number of each point.
    names : sequence of str, shape (N,), optional
        Atom names.

    Returns
    -------
    ndarray, shape (K,), int64
        Point indices in order of first appearance of their residue (a chain trace).
    """
    res = np.asarray(residues).reshape(-1)
    _, first = np.unique(res, return_index=True)
    first = np.sort(first)
    pick = first.copy()
    if names is not None:
        nm = np.asarray(names).astype(str)
        ca = np.flatnonzero(nm == "CA")
        if ca.size:
            # the first CA of each residue replaces its first point
            r_of = {r: k for k, r in enumerate(res[first])}
            for i in ca[::-1]:
                pick[r_of[res[i]]] = i
    if pick.size > max_points:
        pick = pick[np.linspace(0, pick.size - 1, max_points).round().astype(np.int64)]
    return pick.astype(np.int64)


def far_points(frame: np.ndarray, point: int) -> tuple[np.ndarray, float]:
    """The points far from ``point`` in space: the farther half of the others.

    Parameters
    ----------
    frame : array_like, shape (N, D)
    point : int

    Returns
    -------
    far : ndarray, shape (K,), int64
        Indices of the points at least the median distance from ``point`` (itself
        excluded); empty for a single point.
    distance : float
        That median distance, in length units.
    """
    f = np.asarray(frame, dtype=np.float64)
    d = np.sqrt(np.sum((f - f[point]) ** 2, axis=-1))
    others = np.delete(np.arange(f.shape[0]), point)
    if others.size == 0:
        return others.astype(np.int64), 0.0
    cut = float(np.median(d[others]))
    return others[d[others] >= cut].astype(np.int64), cut


# -------------------------------------------------------------------- jump scanning


@dataclass
class JumpScan:
    """Per-frame jump diagnostics of several alignments of one trajectory, accumulated
    block by block (:meth:`add`), plus an evenly spaced sample of aligned frames for
    overlay plots.

    Attributes after :meth:`finish`: ``rmsd[name]`` (F,), ``flags[name]`` (F,) bool,
    ``threshold[name]`` (F,), ``overlay[name]`` (S, N, D), ``overlay_frames`` (S,), and for
    principal axes ``principal`` with ``eigenvalues`` (F, D), ``gap`` (F, D-1),
    ``sign_flip`` (F, D), ``axis_swap`` (F,).
    """

    methods: Sequence[str]
    n_frames: int
    dim: int
    masses: np.ndarray | None = None
    point: int = 0
    points: Sequence[int] | None = None
    sign: str = "continuity"
    overlay_max: int = 128
    rmsd: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)
    threshold: dict = field(default_factory=dict)
    overlay: dict = field(default_factory=dict)
    overlay_frames: np.ndarray | None = None
    principal: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._done = 0
        self._prev: dict = {}
        self._state: dict = {}
        self._scores = {m: np.full(self.n_frames, np.nan) for m in self.methods}
        stride = max(1, int(np.ceil(self.n_frames / self.overlay_max)))
        self._keep = np.arange(0, self.n_frames, stride)
        self._over = {m: [] for m in self.methods}
        self._pdiag: dict = {}

    def _align(self, name: str, x: np.ndarray, frames: np.ndarray) -> np.ndarray:
        import trajalign as ta

        from .align import fit_weights, principal_block

        if name == "kabsch":
            if "ref" not in self._state:
                self._state["ref"] = x[0].astype(np.float64)
            return _quiet(ta.superpose)(x, self._state["ref"]).coords
        if name == "principal":
            n = x.shape[1]
            wc = fit_weights(self.masses, n)
            out, _, _, diag, last = principal_block(
                x, x, wc, -1, wc, self.sign, self._state.get("axes"), frames
            )
            self._state["axes"] = last
            for key in ("eigenvalues", "gap", "sign_flip", "axis_swap"):
                self._pdiag.setdefault(key, []).append(diag[key])
            return out
        m = get_method(name, self.dim, point=self.point, points=self.points, sign=self.sign)
        return np.asarray(m(x, self.masses).values)

    def add(self, coords: np.ndarray) -> None:
        """Align the next block of frames (b, N, D) with every method."""
        from ._validate import as_coords

        x = as_coords(coords)
        b = x.shape[0]
        lo, hi = self._done, self._done + b
        frames = np.arange(lo, hi)
        keep = self._keep[(self._keep >= lo) & (self._keep < hi)] - lo
        for name in self.methods:
            y = self._align(name, x, frames)
            self._scores[name][lo:hi] = consecutive_rmsd(y, self._prev.get(name))
            self._prev[name] = y[-1].astype(np.float64)
            self._over[name].append(np.asarray(y[keep], dtype=np.float64))
        self._done = hi

    def finish(self, k: float = JUMP_K, window: int = JUMP_WINDOW, floor: float = JUMP_FLOOR):
        """Flag jumps once every frame is in; returns self."""
        for name in self.methods:
            s = self._scores[name]
            self.rmsd[name] = s
            self.threshold[name] = jump_threshold(s, k, window, floor)
            self.flags[name] = flag_jumps(s, k, window, floor)
            self.overlay[name] = np.concatenate(self._over[name], axis=0)
        self.overlay_frames = self._keep
        if self._pdiag:
            self.principal = {k2: np.concatenate(v, axis=0) for k2, v in self._pdiag.items()}
        return self


class RepairEffect:
    """RMSD to the first frame after a Kabsch fit, of the repaired frames and of the same
    frames as read: what the periodic repair changed (``diagnose``).

    :meth:`add` takes a block of each, in frame order; ``rmsd["repaired"]`` and
    ``rmsd["as read"]`` are (F,) arrays after :meth:`finish`.
    """

    def __init__(self) -> None:
        self._ref: dict = {}
        self._parts: dict = {"repaired": [], "as read": []}
        self.rmsd: dict = {}

    def add(self, repaired: np.ndarray, as_read: np.ndarray) -> None:
        import trajalign as ta

        for name, x in (("repaired", repaired), ("as read", as_read)):
            if name not in self._ref:
                self._ref[name] = np.asarray(x[0], dtype=np.float64)
            self._parts[name].append(_quiet(ta.superpose)(x, self._ref[name]).rmsd)

    def finish(self) -> RepairEffect:
        self.rmsd = {k: np.concatenate(v) for k, v in self._parts.items()}
        return self

    def medians(self) -> dict:
        """Median RMSD of each series over the frames after the first."""
        return {k: float(np.median(v[1:])) if v.size > 1 else 0.0 for k, v in self.rmsd.items()}


# ------------------------------------------------------------- figures of an output


def _read_jumps(f, k: float, window: int, floor: float):
    """(rmsd, flags) stored by :func:`add_jump_diagnostics`, else computed (not written)."""
    g = f.get(DIAG)
    if g is not None and "consecutive_rmsd" in g and "jump_flag" in g:
        return np.asarray(g["consecutive_rmsd"]), np.asarray(g["jump_flag"], dtype=bool)
    pos = f[POSITION]
    n_frames, n_points, dim = pos.shape
    block = max(1, (16 << 20) // max(1, n_points * dim * 8))
    scores = np.full(n_frames, np.nan)
    prev = None
    for start in range(0, n_frames, block):
        x = np.asarray(pos[start : start + block], dtype=np.float64)
        scores[start : start + len(x)] = consecutive_rmsd(x, prev)
        prev = x[-1]
    return scores, flag_jumps(scores, k, window, floor)


def write_rotate_plots(
    h5_path,
    plot_dir,
    fmt: str = "png",
    k: float = JUMP_K,
    window: int = JUMP_WINDOW,
    floor: float = JUMP_FLOOR,
    overlay_max: int = 128,
) -> list[str]:
    """Figures of a finished ``rotate`` (or ``center``) output.

    Writes into ``plot_dir`` (created if missing):

    - ``jumps.<fmt>``: consecutive-frame RMSD with the running threshold and flagged
      frames (from ``/trajalign/diagnostics/consecutive_rmsd`` and ``jump_flag`` when
      :func:`add_jump_diagnostics` has run, else computed on the fly), and for principal
      axes a panel of the eigenvalue gap with sign flips and axis swaps
      (``/trajalign/diagnostics/gap``, ``sign_flip``, ``axis_swap``);
    - ``overlay.<fmt>``: at most ``overlay_max`` evenly spaced aligned frames on top of
      each other, coloured by time (3D: the first two axes).

    Parameters
    ----------
    h5_path : path
        The HDF5 output.
    plot_dir : path
        Folder for the figures.
    fmt : {"png", "pdf", "svg"}

    Returns
    -------
    list of str
        Paths of the files written.
    """
    import os

    import h5py

    from . import plots
    from .errors import InputError, OutputError

    plots.check_format(fmt)
    try:
        os.makedirs(plot_dir, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create plot folder {plot_dir}: {exc}", "choose --plot DIR"
        ) from None
    try:
        f = h5py.File(h5_path, "r")
    except OSError as exc:
        raise InputError(f"cannot open {h5_path}: {exc}", "give a trajalign HDF5 output") from None
    with f:
        if POSITION not in f:
            raise DataError(
                f"{h5_path} has no aligned positions", "plot an output of trajalign rotate/center"
            )
        pos = f[POSITION]
        unit = str(pos.attrs.get("unit", "Angstrom"))
        n_frames = pos.shape[0]
        frames = (
            np.asarray(f["trajalign/frames/index"])
            if "trajalign/frames/index" in f
            else np.arange(n_frames)
        )
        method = "aligned"
        prov = f.get("trajalign/provenance")
        if prov is not None and "parameters" in prov.attrs:
            try:
                method = json.loads(prov.attrs["parameters"]).get("method", method)
            except (ValueError, AttributeError):
                pass
        rmsd, flags = _read_jumps(f, k, window, floor)
        thr = jump_threshold(rmsd, k, window, floor)
        principal = None
        g = f.get(DIAG)
        if g is not None and "gap" in g:
            principal = {
                key: np.asarray(g[key]) for key in ("gap", "sign_flip", "axis_swap") if key in g
            }
        stride = max(1, int(np.ceil(n_frames / overlay_max)))
        sample = np.asarray(pos[::stride], dtype=np.float64)
    written = []
    fig = plots.jump_figure(
        frames, {method: (rmsd, flags, thr)}, principal, unit=unit, title=os.path.basename(h5_path)
    )
    written.append(plots.save(fig, os.path.join(plot_dir, f"jumps.{fmt}")))
    fig = plots.overlay_figure({method: sample}, frames[::stride], n_frames, unit=unit)
    written.append(plots.save(fig, os.path.join(plot_dir, f"overlay.{fmt}")))
    return written
