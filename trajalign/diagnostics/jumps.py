"""Alignment jumps over time: the consecutive-frame RMSD, the robust rule that flags
frames where it rises far above its running level (:func:`jump_threshold`), its HDF5
store, and the scans of ``diagnose`` (several alignments of one trajectory, and what the
periodic repair changed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._names import DIAGNOSTICS, FRAME_INDEX, JUMP_FLOOR, JUMP_K, JUMP_WINDOW, POSITION
from ..errors import DataError, ParameterError
from .registry import get_method, quiet

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its sigma


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
    from .. import _ahead
    from ..kernels._threads import in_threads
    from ..kernels.diagnostics import consecutive_rmsd_kernel

    _ahead.wait()  # a child compiling this kernel into the cache (trajalign._ahead)
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
        x = np.ascontiguousarray(x)
        in_threads(consecutive_rmsd_kernel, x.shape[0], x.shape[1] * x.shape[2], x, out)
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
    g = h5file.require_group(DIAGNOSTICS)
    for name in ("consecutive_rmsd", "jump_flag"):
        if name in g:
            del g[name]
    ds = g.create_dataset("consecutive_rmsd", data=scores)
    ds.attrs["unit"] = pos.attrs.get("unit", "Angstrom")
    ds.attrs["description"] = "RMSD between aligned frame t and t-1 (frame 0: NaN)"
    fl = g.create_dataset("jump_flag", data=flags)
    for key, value in jump_rule_attrs(k, window, floor).items():
        fl.attrs[key] = value
    frames = np.asarray(h5file[FRAME_INDEX]) if FRAME_INDEX in h5file else np.arange(n_frames)
    hit = frames[flags]
    return {
        "jumps": int(flags.sum()),
        "frames": [int(f) for f in hit[:20]],
        "max_rmsd": float(np.nanmax(scores)) if n_frames > 1 else 0.0,
    }


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

        from ..align import fit_weights, principal_block

        if name == "kabsch":
            if "ref" not in self._state:
                self._state["ref"] = x[0].astype(np.float64)
            return quiet(ta.superpose)(x, self._state["ref"]).coords
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
        from .._validate import as_coords

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
            self._parts[name].append(quiet(ta.superpose)(x, self._ref[name]).rmsd)

    def finish(self) -> RepairEffect:
        self.rmsd = {k: np.concatenate(v) for k, v in self._parts.items()}
        return self

    def medians(self) -> dict:
        """Median RMSD of each series over the frames after the first."""
        return {k: float(np.median(v[1:])) if v.size > 1 else 0.0 for k, v in self.rmsd.items()}


def read_jumps(f, k: float = JUMP_K, window: int = JUMP_WINDOW, floor: float = JUMP_FLOOR):
    """The jump scores and flags of a ``rotate`` output, as stored by
    :func:`add_jump_diagnostics`, else computed from its positions (not written).

    Parameters
    ----------
    f : h5py.File
        Open for reading, with ``/particles/trajectory/position/value`` (F, N, D).
    k, window, floor
        The jump rule, for scores that were not stored.

    Returns
    -------
    rmsd : ndarray, shape (F,), float64
    flags : ndarray, shape (F,), bool
    """
    g = f.get(DIAGNOSTICS)
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


@dataclass
class RotateJumps:
    """What the figures of a ``rotate`` (or ``center``) output show
    (:func:`trajalign.plots.write_rotate_plots`), read by :func:`read_rotate_jumps`.

    Attributes
    ----------
    frames : ndarray, shape (F,), int64
        Frame numbers in the input.
    method : str
        The output's alignment method (``"aligned"`` where its provenance does not say).
    unit : str
        Length unit of the positions.
    title : str
        The output's file name.
    rmsd, flags, threshold : ndarray, shape (F,)
        Consecutive-frame RMSD (float64, frame 0 NaN), jump flags (bool) and the running
        threshold of the jump rule (float64).
    principal : dict or None
        ``gap`` (F, D-1), ``sign_flip`` (F, D), ``axis_swap`` (F,) of a principal-axes
        output, as stored.
    overlay : ndarray, shape (S, N, D), float64
        Evenly spaced aligned frames.
    overlay_frames : ndarray, shape (S,), int64
        Their frame numbers.
    """

    frames: np.ndarray
    method: str
    unit: str
    title: str
    rmsd: np.ndarray
    flags: np.ndarray
    threshold: np.ndarray
    principal: dict | None
    overlay: np.ndarray
    overlay_frames: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def read_rotate_jumps(
    h5_path,
    k: float = JUMP_K,
    window: int = JUMP_WINDOW,
    floor: float = JUMP_FLOOR,
    overlay_max: int = 128,
) -> RotateJumps:
    """Read what the figures of a finished ``rotate`` (or ``center``) output show.

    The jump scores and flags come from ``/trajalign/diagnostics/consecutive_rmsd`` and
    ``jump_flag`` when :func:`add_jump_diagnostics` has run, else they are computed on the
    fly (nothing is written); principal-axes outputs add their stored ``gap``,
    ``sign_flip`` and ``axis_swap``.

    Parameters
    ----------
    h5_path : path
        The HDF5 output.
    k, window, floor
        The jump rule.
    overlay_max : int
        At most this many evenly spaced frames for the overlay.

    Returns
    -------
    RotateJumps
    """
    import json
    import os

    import h5py

    from ..errors import InputError

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
        frames = np.asarray(f[FRAME_INDEX]) if FRAME_INDEX in f else np.arange(n_frames)
        method = "aligned"
        prov = f.get("trajalign/provenance")
        if prov is not None and "parameters" in prov.attrs:
            try:
                method = json.loads(prov.attrs["parameters"]).get("method", method)
            except (ValueError, AttributeError):
                pass
        rmsd, flags = read_jumps(f, k, window, floor)
        principal = None
        g = f.get(DIAGNOSTICS)
        if g is not None and "gap" in g:
            principal = {
                key: np.asarray(g[key]) for key in ("gap", "sign_flip", "axis_swap") if key in g
            }
        stride = max(1, int(np.ceil(n_frames / overlay_max)))
        sample = np.asarray(pos[::stride], dtype=np.float64)
    return RotateJumps(
        frames=frames,
        method=method,
        unit=unit,
        title=os.path.basename(h5_path),
        rmsd=rmsd,
        flags=flags,
        threshold=jump_threshold(rmsd, k, window, floor),
        principal=principal,
        overlay=sample,
        overlay_frames=frames[::stride],
    )


__all__ = [
    "JumpScan",
    "RepairEffect",
    "RotateJumps",
    "add_jump_diagnostics",
    "consecutive_rmsd",
    "flag_jumps",
    "jump_rule_attrs",
    "jump_threshold",
    "read_jumps",
    "read_rotate_jumps",
    "store_jump_diagnostics",
]
