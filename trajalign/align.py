"""Public alignment functions: centering and rotations (Kabsch, principal axes, points).

Each function validates and casts once, then calls a Numba kernel from
:mod:`trajalign.kernels`. Inputs are never modified.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._names import ROTATE_METHODS
from ._validate import (
    as_coords,
    as_index,
    as_weights,
    check_finite_frames,
    nonfinite_error,
)
from .errors import DataError, NumericalError, ParameterError, SelectionError

__all__ = [
    "AVERAGE_MAX_ITER",
    "AVERAGE_TOL",
    "CENTER_METHODS",
    "DEGENERATE_GAP",
    "PRINCIPAL_CENTERS",
    "ROTATE_METHODS",
    "SIGN_MODES",
    "align_points",
    "align_principal",
    "AlignResult",
    "api_message",
    "average_reference",
    "center",
    "center_with_translation",
    "check_fit_count",
    "check_points",
    "fit_weights",
    "frame_list",
    "kabsch_warnings",
    "min_fit_atoms",
    "overflow_error",
    "points_block",
    "prepare_reference",
    "principal_block",
    "principal_frame_lists",
    "principal_warnings",
    "raise_if_nonfinite",
    "superpose",
    "superpose_block",
]

CENTER_METHODS = ("com", "geometric", "point")


def center_with_translation(
    X: np.ndarray,
    method: Literal["com", "geometric", "point"] = "com",
    masses: np.ndarray | None = None,
    point: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Center every frame and also return the subtracted translation.

    Parameters and the centering rule are those of :func:`center`.

    Returns
    -------
    coords : ndarray, shape (F, N, D), dtype of ``X`` (float32 or float64)
        ``X[t] - translation[t]``.
    translation : ndarray, shape (F, D), float64
        The center of each frame.
    """
    # the finite check rides on the kernel's output instead of a pass of its own: a frame
    # with NaN/inf has a non-finite centroid (0 * inf is NaN too), and subtracting a point
    # spreads a non-finite value of that point to the whole frame
    x = as_coords(X, check_finite=False)
    n_frames, n_points, dim = x.shape
    out = np.empty_like(x)
    trans = np.empty((n_frames, dim), dtype=np.float64)
    if method == "point":
        from .kernels.center import center_on_point

        center_on_point(x, as_index(point, n_points), out, trans)
        raise_if_nonfinite(trans)
        check_finite_frames(out)
        return out, trans
    if method == "com":
        w = as_weights(masses, n_points) if masses is not None else None
    elif method == "geometric":
        w = None
    else:
        raise ParameterError(
            f"unknown centering method {method!r}", f"use one of {', '.join(CENTER_METHODS)}"
        )
    if w is None:
        w = np.full(n_points, 1.0 / n_points)
    from .kernels.center import center_weighted

    center_weighted(x, w, out, trans)
    raise_if_nonfinite(trans)
    return out, trans


def overflow_error(frame: int) -> NumericalError:
    """The error for a frame whose squared coordinates overflow float64."""
    return NumericalError(
        f"the coordinates of frame {frame} are too large: their squares overflow float64, "
        "so no rotation can be computed",
        "rescale them (another length unit); MD coordinates are far below 1e50",
    )


def raise_if_nonfinite(per_frame: np.ndarray) -> None:
    bad = ~np.isfinite(per_frame).all(axis=tuple(range(1, per_frame.ndim)))
    if bad.any():
        raise nonfinite_error("X", int(np.argmax(bad)))


def center(
    X: np.ndarray,
    method: Literal["com", "geometric", "point"] = "com",
    masses: np.ndarray | None = None,
    point: int = 0,
) -> np.ndarray:
    """Translate every frame so that its center is at the origin.

    Parameters
    ----------
    X : array_like, shape (F, N, D), D in {2, 3}, float32 or float64
        Coordinates; other real dtypes are converted to float64. Not modified.
    method : {"com", "geometric", "point"}
        ``com``: center of mass, mass-weighted when ``masses`` is given, else the
        geometric center. ``geometric``: unweighted mean of the points. ``point``:
        point ``point`` moves to the origin.
    masses : array_like, shape (N,), optional
        Non-negative masses with a positive sum; used by ``com`` only.
    point : int
        Index of the point for ``method="point"``.

    Returns
    -------
    ndarray, shape (F, N, D), same dtype as ``X`` (float32 or float64)
        Centered coordinates.

    Raises
    ------
    DataError
        ``X`` is not (F, N, 2|3) numbers, or holds NaN/inf (the first bad frame is named).
    ParameterError, SelectionError
        Bad method, masses or point index.
    """
    return center_with_translation(X, method=method, masses=masses, point=point)[0]


# --------------------------------------------------------------------------- rotations

SIGN_MODES = ("none", "skew", "continuity")  # order = the kernel's mode codes 0, 1, 2
PRINCIPAL_CENTERS = ("com", "geometric", "point")
# relative eigenvalue gap of the gyration tensor below which axes are called ill-defined
DEGENERATE_GAP = 0.05
# average reference: stop when it moves less than this fraction of its radius of gyration
AVERAGE_TOL = 1e-5
AVERAGE_MAX_ITER = 50
# the reference's second singular value below this fraction of the first: collinear
_REF_COLLINEAR_TOL = 1e-6


@dataclass
class AlignResult:
    """Aligned coordinates and the rigid motion of every frame.

    ``coords[t] == (X[t] - translation[t]) @ rotation[t]``.

    Attributes
    ----------
    coords : ndarray, shape (F, N, D), dtype of the input (float32 or float64)
        Aligned coordinates.
    rotation : ndarray, shape (F, D, D), float64
        Proper rotations (det +1), applied to row vectors.
    translation : ndarray, shape (F, D), float64
        The centre subtracted from each frame before rotating.
    rmsd : ndarray, shape (F,), float64, or None
        Weighted RMSD of the fit atoms from the reference after the fit (Kabsch only).
    reference : ndarray, shape (M, D), float64, or None
        The reference fit atoms, centred on their weighted centroid (Kabsch only); the
        aligned fit atoms are superposed on it.
    diagnostics : dict of str to ndarray
        Per-frame extras (principal axes: ``eigenvalues`` (F, D), ``gap`` (F, D-1),
        ``skewness`` (F, D), ``sign_flip`` (F, D), ``axis_swap`` (F,); Kabsch:
        ``fit_status`` (F,)).
    warnings : list of str
        The same messages issued as :class:`RuntimeWarning`.
    """

    coords: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    rmsd: np.ndarray | None = None
    reference: np.ndarray | None = None
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def frame_list(frames, limit: int = 8) -> str:
    """``"3, 17, 25 and 12 more"`` for warnings that name frames."""
    frames = [int(f) for f in frames]
    head = ", ".join(str(f) for f in frames[:limit])
    return head + (f" and {len(frames) - limit} more" if len(frames) > limit else "")


#: command-line words in the shared warning texts -> the Python API's words
_API_WORDS = (
    ("consider --method kabsch", "consider ta.superpose"),
    ("(see /trajalign/diagnostics/", "(see result.diagnostics['"),
)


def api_message(message: str) -> str:
    """A warning written for the command line, in the Python API's words: functions
    instead of options, ``result.diagnostics[...]`` instead of HDF5 datasets.

    Parameters
    ----------
    message : str
        The command-line text (as :func:`principal_warnings` returns it).

    Returns
    -------
    str
        The same message naming API functions and result fields.
    """
    for cli_words, api_words in _API_WORDS:
        if cli_words in message:
            message = message.replace(cli_words, api_words)
            if api_words.endswith("['"):  # close the key: (see result.diagnostics['gap'])
                head, _, tail = message.partition(api_words)
                key, _, rest = tail.partition(")")
                message = f"{head}{api_words}{key}']){rest}"
    return message


def _issue(result: AlignResult, messages: list[str]) -> AlignResult:
    messages = [api_message(m) for m in messages]
    for m in messages:
        warnings.warn(m, RuntimeWarning, stacklevel=3)
    result.warnings.extend(messages)
    return result


# ------------------------------------------------------------------------------ Kabsch


def min_fit_atoms(method: str, dim: int) -> int:
    """Fewest fit atoms a method needs: Kabsch 3 in 3D, 2 in 2D; principal the same;
    point: I, J (and K in 3D)."""
    return 3 if dim == 3 else 2


def check_fit_count(
    method: str, n_fit: int, dim: int, what: str = "fit atoms", hint: str | None = None
) -> None:
    """Raise SelectionError when ``n_fit`` is below :func:`min_fit_atoms`."""
    need = min_fit_atoms(method, dim)
    if n_fit < need:
        extra = " non-collinear" if method == "principal" and dim == 3 else ""
        raise SelectionError(
            f"{method} in {dim}D needs at least {need}{extra} {what}, got {n_fit}",
            hint or f"fit on at least {need} points",
        )


def fit_weights(masses, n_fit: int, name: str = "weights") -> np.ndarray:
    """(M,) float64 weights summing to 1; uniform when ``masses`` is None."""
    if masses is None:
        return np.full(n_fit, 1.0 / n_fit)
    return as_weights(masses, n_fit, name)


def prepare_reference(ref, w: np.ndarray, dim: int, name: str = "the reference") -> np.ndarray:
    """Check a reference (M, D) and centre it on its ``w``-weighted centroid (float64).

    Raises DataError for a wrong shape or NaN/inf, NumericalError when the fit atoms of
    the reference are all at one point or (3D) on one line, so no rotation is defined.
    """
    r = np.asarray(ref)
    if r.ndim == 3 and r.shape[0] == 1:
        r = r[0]
    n_fit = w.shape[0]
    if r.ndim != 2 or r.shape != (n_fit, dim):
        raise DataError(
            f"{name} has shape {r.shape}, but the fit uses {n_fit} atoms in {dim}D",
            f"give a reference of shape ({n_fit}, {dim}): one position per fit atom",
        )
    if not (np.issubdtype(r.dtype, np.floating) or np.issubdtype(r.dtype, np.integer)):
        raise DataError(f"{name} has dtype {r.dtype}, not numbers", "give float coordinates")
    r = r.astype(np.float64)
    if not np.all(np.isfinite(r)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(r), axis=1))[0])
        raise DataError(
            f"{name} has NaN or inf coordinates (fit atom {bad})",
            "repair the reference or choose another one",
        )
    with np.errstate(over="ignore", invalid="ignore"):
        rc = r - w @ r
        spread = float(np.sum(w * np.sum(rc * rc, axis=1)))
    if not spread < np.inf:
        raise NumericalError(
            f"the coordinates of {name} are too large: their squares overflow float64",
            "rescale them (another length unit); MD coordinates are far below 1e50",
        )
    sv = np.linalg.svd(np.sqrt(w)[:, None] * rc, compute_uv=False)
    if not sv[0] > 0.0:
        raise NumericalError(
            f"the fit atoms of {name} are all at one point, so no rotation is defined",
            "fit on atoms that are spread out (--fit-select)",
        )
    if dim == 3 and not sv[1] > _REF_COLLINEAR_TOL * sv[0]:
        raise NumericalError(
            f"the fit atoms of {name} lie on one line, so the rotation about it is undefined",
            "fit on at least 3 atoms that are not collinear (--fit-select)",
        )
    return rc


def superpose_block(x: np.ndarray, xfit: np.ndarray, w: np.ndarray, refc: np.ndarray, frames=None):
    """Kabsch-fit every frame of ``xfit`` onto ``refc`` and move ``x`` with it.

    x : (F, N, D) and xfit : (F, M, D) float32/float64 (xfit may be x), w : (M,) summing
    to 1, refc : (M, D) float64 centred on its weighted centroid. Returns coords (like
    x), rotation (F, D, D), translation (F, D), rmsd (F,) and status (F,) int8 (2 where
    the optimal rotation is not unique). Raises NumericalError for a frame whose sums
    overflow float64 (``frames`` (F,) numbers it; default 0..F-1); frames with NaN/inf
    are left to the caller's finite check.
    """
    from . import _ahead
    from .kernels.kabsch import superpose_frames

    _ahead.wait()  # a child compiling these kernels into the cache (trajalign._ahead)
    n_frames, _, dim = x.shape
    out = np.empty_like(x)
    rot = np.empty((n_frames, dim, dim))
    trans = np.empty((n_frames, dim))
    rmsd = np.empty(n_frames)
    status = np.empty(n_frames, dtype=np.int8)
    superpose_frames(x, xfit, w, refc, out, rot, trans, rmsd, status)
    _raise_if_overflow(status, trans, frames)
    return out, rot, trans, rmsd, status


def _raise_if_overflow(status: np.ndarray, trans: np.ndarray, frames=None) -> None:
    from .kernels.kabsch import OVERFLOW

    # NaN/inf input also ends in OVERFLOW; its translation is not finite
    bad = np.flatnonzero((status == OVERFLOW) & np.isfinite(trans).all(axis=1))
    if bad.size:
        raise overflow_error(int(frames[bad[0]]) if frames is not None else int(bad[0]))


def kabsch_warnings(status: np.ndarray, frames) -> list[str]:
    bad = np.flatnonzero(status == 2)
    if bad.size == 0:
        return []
    return [
        f"the best rotation is not unique in {bad.size} frame(s) ({frame_list(frames[bad])}): "
        "their fit atoms are collinear, at one point, or symmetric against the reference; "
        "one of the equally good rotations was used (see /trajalign/diagnostics/fit_status)"
    ]


def average_reference(
    blocks,
    ref0: np.ndarray,
    w: np.ndarray,
    tol: float = AVERAGE_TOL,
    max_iter: int = AVERAGE_MAX_ITER,
) -> tuple[np.ndarray, int, bool]:
    """Iterated average structure of the fit atoms.

    Align every frame to ``ref0`` (normally the first frame), average the aligned fit
    atoms, and re-align to the average until it moves less than ``tol`` times its
    radius of gyration (ProDy's ``iterpose``). ``blocks()`` yields (b, M, D) arrays of
    fit atoms, so a trajectory larger than memory is read block by block on each pass.

    Returns the centred average (M, D) float64, the number of passes, and whether it
    converged within ``max_iter``.
    """
    from . import _ahead
    from .kernels.kabsch import accumulate_aligned, fit_frames

    _ahead.wait()  # (see superpose_block)
    dim = ref0.shape[1]
    ref = prepare_reference(ref0, w, dim, "the first frame")
    rg = float(np.sqrt(np.sum(w * np.sum(ref * ref, axis=1))))
    for it in range(1, max_iter + 1):
        total = np.zeros_like(ref)
        count = 0
        for xb in blocks():
            b = xb.shape[0]
            rot = np.empty((b, dim, dim))
            trans = np.empty((b, dim))
            rmsd = np.empty(b)
            status = np.empty(b, dtype=np.int8)
            fit_frames(xb, w, ref, rot, trans, rmsd, status)
            _raise_if_overflow(status, trans, np.arange(count, count + b))
            # summed frame after frame, continuing the running total, so the average does
            # not depend on the block size: chunked, resumed and Dask runs give one
            # block's bits
            accumulate_aligned(xb, rot, trans, total)
            count += b
        new = total / count
        new -= w @ new
        change = float(np.sqrt(np.sum(w * np.sum((new - ref) ** 2, axis=1))))
        ref = new
        if change <= tol * rg:
            return prepare_reference(ref, w, dim, "the average structure"), it, True
    return prepare_reference(ref, w, dim, "the average structure"), max_iter, False


def superpose(
    X: np.ndarray,
    reference="first",
    weights: np.ndarray | None = None,
    fit=None,
    *,
    tol: float = AVERAGE_TOL,
    max_iter: int = AVERAGE_MAX_ITER,
) -> AlignResult:
    """Superpose every frame on a reference by the weighted Kabsch fit (least RMSD).

    Parameters
    ----------
    X : array_like, shape (F, N, D), D in {2, 3}, float32 or float64
        Coordinates; not modified.
    reference : {"first", "average"}, int, or array_like of shape (M, D)
        ``"first"``: frame 0 of ``X``; an int: that frame of ``X``; ``"average"``: the
        iterated average structure (align to frame 0, average, re-align to the average
        until it stops moving); an array: reference positions of the fit atoms.
    weights : array_like, shape (M,) or (N,), optional
        Non-negative weights (masses) of the fit atoms, for the centroid, the fit and the
        RMSD. Default: equal weights (as MDAnalysis and MDTraj).
    fit : array_like of int, shape (M,), optional
        Indices of the points that define the fit (default: all points). Every point
        moves with the fit's rotation.
    tol, max_iter
        Convergence of ``reference="average"`` (relative to its radius of gyration).

    Returns
    -------
    AlignResult
        ``coords`` (F, N, D) like ``X``; ``rotation`` (F, D, D) and ``translation``
        (F, D) float64 with ``coords[t] = (X[t] - translation[t]) @ rotation[t]``, where
        the translation is the weighted centroid of the fit atoms; ``rmsd`` (F,) the
        weighted RMSD of the fit atoms after the fit; ``reference`` (M, D) centred.

    Raises
    ------
    DataError
        Bad shapes, NaN/inf in ``X`` or the reference.
    SelectionError
        Fewer than 3 fit atoms in 3D (2 in 2D), bad indices.
    NumericalError
        The reference fit atoms are at one point or (3D) collinear.

    Notes
    -----
    The rotation is always proper (det +1) and optimal, including fits whose best
    orthogonal match would be a reflection. Where the optimum is not unique (collinear or
    symmetric fit atoms in a frame) one optimal rotation is used and a
    :class:`RuntimeWarning` names the frames; ``diagnostics["fit_status"]`` is 2 there.
    """
    # NaN/inf in the fit atoms reaches every output of its frame, so when all points are
    # fit atoms the check rides on the kernel's translations instead of a pass of its own
    is_average = isinstance(reference, str) and reference == "average"
    x = as_coords(X, check_finite=fit is not None or is_average)
    n_frames, n_points, dim = x.shape
    idx = None if fit is None else _fit_indices(fit, n_points)
    xfit = x if idx is None else np.ascontiguousarray(x[:, idx])
    n_fit = xfit.shape[1]
    check_fit_count("kabsch", n_fit, dim)
    if weights is not None:
        wa = np.asarray(weights, dtype=np.float64).reshape(-1)
        if idx is not None and wa.size == n_points and n_points != n_fit:
            wa = wa[idx]
        w = fit_weights(wa, n_fit)
    else:
        w = fit_weights(None, n_fit)
    msgs: list[str] = []
    if is_average:
        refc, n_iter, ok = average_reference(lambda: [xfit], xfit[0], w, tol, max_iter)
        if not ok:
            msgs.append(f"the average structure did not converge in {n_iter} passes")
    elif isinstance(reference, str) and reference == "first":
        refc = prepare_reference(xfit[0], w, dim, "frame 0")
    elif isinstance(reference, str):
        raise ParameterError(
            f"unknown reference {reference!r}",
            "give 'first', 'average', a frame number or an (M, D) array",
        )
    elif isinstance(reference, int | np.integer):
        k = as_index(reference, n_frames, "reference frame")
        refc = prepare_reference(xfit[k], w, dim, f"frame {k}")
    else:
        refc = prepare_reference(reference, w, dim)
    coords, rot, trans, rmsd, status = superpose_block(x, xfit, w, refc)
    if idx is None:
        raise_if_nonfinite(trans)
    msgs += kabsch_warnings(status, np.arange(n_frames))
    res = AlignResult(coords, rot, trans, rmsd, refc, {"fit_status": status})
    return _issue(res, msgs)


# --------------------------------------------------------------------- principal axes


def principal_block(
    x: np.ndarray,
    xfit: np.ndarray,
    wc: np.ndarray,
    point: int,
    wg: np.ndarray,
    sign: str,
    prev: np.ndarray | None,
    frames: np.ndarray,
    nonfinite_name: str | None = None,
):
    """Principal-axes alignment of one block; continuity carries over through ``prev``.

    x : (F, N, D) atoms to move, xfit : (F, M, D) fit atoms; wc : (M,) centre weights
    (used when ``point < 0``), wg : (M,) gyration weights, both summing to 1; ``prev``
    (D, D) the previous frame's axes or None; ``frames`` (F,) frame numbers for errors.
    ``nonfinite_name``: NaN or inf among the fit atoms raises the :class:`DataError` of
    :func:`nonfinite_error` under this name (the caller skipped that check); None when
    the caller has checked. Returns coords, rotation, translation, diagnostics dict, and
    the last axes.
    """
    from . import _ahead
    from .kernels.principal import (
        ALL_AT_CENTRE,
        COLLINEAR,
        NONFINITE,
        OVERFLOW,
        choose_signs,
        negate_columns,
        principal_frames,
    )

    _ahead.wait()  # (see superpose_block)
    n_frames, _, dim = x.shape
    trans = np.empty((n_frames, dim))
    evals = np.empty((n_frames, dim))
    axes = np.empty((n_frames, dim, dim))
    skew = np.empty((n_frames, dim))
    status = np.empty(n_frames, dtype=np.int8)
    out = np.empty_like(x)
    mode = SIGN_MODES.index(sign)
    # one run of frames per thread: continuity is provisional only at a run's start
    principal_frames(
        x,
        xfit,
        xfit is x,
        wc,
        int(point),
        wg,
        mode,
        trans,
        evals,
        axes,
        skew,
        status,
        out,
    )
    bad = np.flatnonzero(status != 0)
    if bad.size:
        nonfinite = np.flatnonzero(status == NONFINITE)
        if nonfinite.size and nonfinite_name is not None:
            raise nonfinite_error(nonfinite_name, int(frames[nonfinite[0]]))
        f = int(frames[bad[0]])
        if status[bad[0]] in (OVERFLOW, NONFINITE):
            raise overflow_error(f)
        if status[bad[0]] == ALL_AT_CENTRE:
            raise NumericalError(
                f"the fit atoms of frame {f} are all at the centre: no principal axis exists",
                "fit on atoms that are spread out (--fit-select), or drop the frame",
            )
        assert status[bad[0]] == COLLINEAR
        raise NumericalError(
            f"the fit atoms of frame {f} lie on one line: the second principal axis is undefined",
            "fit on at least 3 atoms that are not collinear (--fit-select), or use --method kabsch",
        )
    rot = np.empty((n_frames, dim, dim))
    flip = np.empty((n_frames, dim), dtype=np.bool_)
    swap = np.empty(n_frames, dtype=np.bool_)
    ambiguous = np.empty(n_frames, dtype=np.bool_)
    signs = np.empty((n_frames, dim))
    has_prev = prev is not None
    p = np.eye(dim) if prev is None else np.ascontiguousarray(prev, dtype=np.float64)
    choose_signs(axes, skew, mode, p, has_prev, rot, flip, swap, ambiguous, signs)
    if np.any(signs < 0.0):
        negate_columns(out, signs)
    lead = evals[:, :-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where(lead > 0, (lead - evals[:, 1:]) / lead, 0.0)
    diag = {
        "eigenvalues": evals,
        "gap": gap,
        "skewness": skew,
        "sign_flip": flip,
        "axis_swap": swap,
        "skew_undefined": ambiguous,
    }
    return out, rot, trans, diag, rot[-1].copy()


def principal_warnings(diag_frames: dict, sign: str, gap_warn: float = DEGENERATE_GAP) -> list[str]:
    """Warnings from frame lists: ``degenerate``, ``swap``, ``skew_undefined`` arrays of
    frame numbers (already selected)."""
    msgs = []
    deg = diag_frames["degenerate"]
    if len(deg):
        msgs.append(
            f"nearly degenerate principal moments (relative gap < {gap_warn:g}) in "
            f"{len(deg)} frame(s) ({frame_list(deg)}): the axes there are ill-defined and "
            "may swap; consider --method kabsch (see /trajalign/diagnostics/gap)"
        )
    swaps = diag_frames["swap"]
    if len(swaps):
        msgs.append(
            f"principal axes swapped order in {len(swaps)} frame(s) ({frame_list(swaps)}): "
            "the output jumps there whatever the sign choice"
        )
    und = diag_frames["skew_undefined"]
    if len(und) and sign != "none":
        what = "the first frame" if sign == "continuity" else f"{len(und)} frame(s)"
        msgs.append(
            f"skewness along an axis is zero in {what} ({frame_list(und)}), so the skew sign "
            "there is arbitrary (a symmetric shape)"
        )
    return msgs


def align_principal(
    X: np.ndarray,
    masses: np.ndarray | None = None,
    sign: Literal["continuity", "skew", "none"] = "continuity",
    *,
    center: Literal["com", "geometric", "point"] | None = None,
    point: int = 0,
    weighted: bool = True,
    fit=None,
    gap_warn: float = DEGENERATE_GAP,
) -> AlignResult:
    """Rotate every frame onto the principal axes of its gyration tensor.

    After centering, the eigenvector of largest eigenvalue goes onto +x, the next onto
    +y, and the frame is right-handed (the chapter's ``align_principle``, with signs
    fixed).

    Parameters
    ----------
    X : array_like, shape (F, N, D), D in {2, 3}, float32 or float64
        Coordinates; not modified.
    masses : array_like, shape (N,), optional
        Masses: the ``com`` centre and (``weighted=True``) the gyration tensor use them.
    sign : {"continuity", "skew", "none"}
        Eigenvector signs. ``skew``: the first D-1 axes (x, and y in 3D) each point
        where the third moment of the coordinates along it is positive (per frame,
        invariant to rigid motion of the input); the last axis completes a right-handed
        frame, so its skewness may have either sign. An axis whose skewness is below
        1e-6 keeps the solver's sign (``skew_undefined``). ``continuity``: the sign
        closest to the previous frame's axes (``skew`` for frame 0), so a finely sampled
        trajectory has no jumps. ``none``: as the eigen solver returns them.
    center : {"com", "geometric", "point"}, optional
        The centre: mass-weighted centroid (geometric without masses), plain centroid,
        or fit point ``point``. Default: ``com`` when the tensor is mass-weighted
        (``weighted`` and ``masses`` given), else ``geometric``, so an unweighted
        alignment is unweighted throughout (centroid and tensor).
    point : int
        Fit point for ``center="point"``.
    weighted : bool
        Weight the gyration tensor by ``masses`` (when given).
    fit : array_like of int, optional
        Points that define the axes (default: all); every point moves.
    gap_warn : float
        Warn about frames whose relative eigenvalue gap is below this.

    Returns
    -------
    AlignResult
        ``coords``, ``rotation`` (whose columns are the principal axes), ``translation``
        (the centre); ``rmsd`` None; ``diagnostics``: ``eigenvalues`` (F, D) decreasing,
        ``gap`` (F, D-1) = (l_k - l_k+1) / l_k, ``skewness`` (F, D) along the final axes,
        ``sign_flip`` (F, D) bool (axis k points against the previous frame's),
        ``axis_swap`` (F,) bool (eigenvalues crossed), ``skew_undefined`` (F,) bool.

    Raises
    ------
    NumericalError
        A frame whose fit atoms are all at the centre, or (3D) collinear; it is named.
    """
    # without a fit selection every point is a fit atom, and the kernel's moment pass
    # finds NaN and inf (one read of X fewer); with one, the non-fit points need the check
    x = as_coords(X, check_finite=fit is not None)
    try:
        return _align_principal(x, masses, sign, center, point, weighted, fit, gap_warn)
    except Exception:
        if fit is None:
            check_finite_frames(x)  # NaN or inf is reported before any other error
        raise


def _align_principal(x, masses, sign, center, point, weighted, fit, gap_warn) -> AlignResult:
    n_frames, n_points, dim = x.shape
    if sign not in SIGN_MODES:
        raise ParameterError(f"unknown sign rule {sign!r}", f"use one of {', '.join(SIGN_MODES)}")
    if center is None:
        # unweighted means unweighted everywhere: the tensor about its own centroid
        center = "com" if weighted and masses is not None else "geometric"
    if center not in PRINCIPAL_CENTERS:
        raise ParameterError(
            f"unknown centre {center!r}", f"use one of {', '.join(PRINCIPAL_CENTERS)}"
        )
    idx = None if fit is None else _fit_indices(fit, n_points)
    xfit = x if idx is None else np.ascontiguousarray(x[:, idx])
    n_fit = xfit.shape[1]
    check_fit_count("principal", n_fit, dim)
    m = None
    if masses is not None:
        m = np.asarray(masses, dtype=np.float64).reshape(-1)
        if m.size != n_points:
            raise ParameterError(
                f"masses has {m.size} values for {n_points} points", "give one mass per point"
            )
        if idx is not None:
            m = m[idx]
    wc = fit_weights(m if center == "com" else None, n_fit, "masses")
    wg = fit_weights(m if weighted else None, n_fit, "masses")
    pt = as_index(point, n_fit, "point") if center == "point" else -1
    frames = np.arange(n_frames)
    out, rot, trans, diag, _ = principal_block(x, xfit, wc, pt, wg, sign, None, frames, "X")
    res = AlignResult(out, rot, trans, None, None, diag)
    return _issue(res, principal_warnings(principal_frame_lists(diag, frames, gap_warn), sign))


def principal_frame_lists(diag: dict, frames: np.ndarray, gap_warn: float = DEGENERATE_GAP) -> dict:
    """Frame numbers worth a warning, from a block's diagnostics."""
    return {
        "degenerate": frames[np.any(diag["gap"] < gap_warn, axis=1)],
        "swap": frames[diag["axis_swap"]],
        "skew_undefined": frames[diag["skew_undefined"]],
    }


def _fit_indices(fit, n_points: int) -> np.ndarray:
    idx = np.asarray(fit).reshape(-1)
    if idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise SelectionError("fit must be a non-empty list of point indices", "pass ints")
    idx = np.array([as_index(k, n_points, "fit point") for k in idx], dtype=np.int64)
    if np.unique(idx).size != idx.size:
        raise SelectionError("fit lists a point twice", "list every fit point once")
    return idx


# --------------------------------------------------------------------------- points


def check_points(i, j, k, n_points: int, dim: int, what: str = "point") -> tuple[int, int, int]:
    """Validate I, J[, K]: in range, distinct, K given exactly in 3D. Returns k=-1 in 2D."""
    if dim == 3 and k is None:
        raise ParameterError(
            "point alignment in 3D needs a third point K (I->K fixes the rotation about I->J)",
            "give three points, e.g. --points 0,1,2",
        )
    if dim == 2 and k is not None:
        raise ParameterError(
            "point alignment in 2D takes two points; I->J alone fixes the rotation",
            "give two points, e.g. --points 0,1",
        )
    ii = as_index(i, n_points, what)
    jj = as_index(j, n_points, what)
    kk = as_index(k, n_points, what) if k is not None else -1
    pts = [ii, jj] + ([kk] if k is not None else [])
    if len(set(pts)) != len(pts):
        raise SelectionError(
            f"points {','.join(str(p) for p in pts)} repeat a point",
            "give distinct points I,J" + (",K" if dim == 3 else ""),
        )
    return ii, jj, kk


def points_block(x: np.ndarray, xfit: np.ndarray, i: int, j: int, k: int, frames: np.ndarray):
    """Point-vector alignment of a block; errors name the first bad frame."""
    from .kernels.kabsch import apply_motion
    from .kernels.points import COINCIDENT, OVERFLOW, point_frames

    n_frames, _, dim = x.shape
    rot = np.empty((n_frames, dim, dim))
    trans = np.empty((n_frames, dim))
    status = np.empty(n_frames, dtype=np.int8)
    point_frames(xfit, i, j, k, rot, trans, status)
    bad = np.flatnonzero(status != 0)
    if bad.size:
        f = int(frames[bad[0]])
        if status[bad[0]] == OVERFLOW:
            raise overflow_error(f)
        if status[bad[0]] == COINCIDENT:
            raise NumericalError(
                f"points {i} and {j} coincide in frame {f}, so I->J has no direction",
                "choose points that are apart in every frame, or drop the frame",
            )
        raise NumericalError(
            f"points {i}, {j} and {k} are collinear in frame {f}, so the y axis is undefined",
            "choose a third point K off the line I-J",
        )
    out = np.empty_like(x)
    apply_motion(x, rot, trans, out)
    return out, rot, trans


def align_points(X: np.ndarray, i: int, j: int, k: int | None = None) -> AlignResult:
    """Align every frame on three (2D: two) of its points.

    Point ``i`` moves to the origin, the vector i->j onto +x and, in 3D, the part of
    i->k orthogonal to it onto +y (the chapter's ``align_point``, generalised).

    Parameters
    ----------
    X : array_like, shape (F, N, D), D in {2, 3}, float32 or float64
        Coordinates; not modified.
    i, j : int
        Point indices (negative count from the end).
    k : int, optional
        Third point, required in 3D and not allowed in 2D.

    Returns
    -------
    AlignResult
        ``coords``, ``rotation`` (F, D, D) with columns the new axes, ``translation``
        (F, D) = ``X[:, i]``; ``rmsd`` None.

    Raises
    ------
    SelectionError
        Indices out of range or repeated.
    NumericalError
        Points i and j coincide, or (3D) i, j, k are collinear, in a frame (named).
    """
    x = as_coords(X)
    n_frames, n_points, dim = x.shape
    ii, jj, kk = check_points(i, j, k, n_points, dim)
    out, rot, trans = points_block(x, x, ii, jj, kk, np.arange(n_frames))
    return AlignResult(out, rot, trans)
