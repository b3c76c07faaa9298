"""Figures of the diagnostics (matplotlib, Agg backend, imported lazily).

Every ``plot_*`` function draws on ``ax`` (a new figure when None) and returns the Axes,
as freud and deeptime do; ``*_figure`` functions build a whole figure and
:func:`save` writes it. ``trajalign --help`` never imports this module's matplotlib.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

FORMATS = ("png", "pdf", "svg")
#: the chapter's time colouring
CMAP = "cool"
LABELS = {
    "none": "No align",
    "center-com": "COM center",
    "center-geometric": "Geometric center",
    "center-point": "Point center",
    "kabsch": "Kabsch (frame 0)",
    "principal": "Principal axes",
    "point": "Point vector",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ax(ax, figsize=(6, 4)):
    if ax is not None:
        return ax
    plt = _plt()
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def label(method: str) -> str:
    """A readable panel title for a registry method name."""
    return LABELS.get(method, method)


def save(fig, path: str | os.PathLike, dpi: int = 110) -> str:
    """Write ``fig`` (format from the extension) and close it; returns the path."""
    plt = _plt()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return os.fspath(path)


def check_format(fmt: str) -> str:
    from .errors import ParameterError

    if fmt not in FORMATS:
        raise ParameterError(f"unknown figure format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    return fmt


# --------------------------------------------------------------------------- jumps


def plot_jumps(
    frames: np.ndarray,
    rmsd: np.ndarray,
    flags: np.ndarray,
    threshold: np.ndarray | None = None,
    ax=None,
    unit: str = "Angstrom",
    title: str | None = None,
):
    """Consecutive-frame RMSD over time with the running threshold and flagged frames.

    Parameters
    ----------
    frames : (F,) frame numbers; rmsd : (F,); flags : (F,) bool; threshold : (F,), optional
    """
    ax = _ax(ax, (8, 3))
    frames = np.asarray(frames)
    rmsd = np.asarray(rmsd, dtype=float)
    flags = np.asarray(flags, dtype=bool)
    ax.plot(frames, rmsd, lw=0.8, color="#31688e", label="RMSD to previous frame")
    if threshold is not None:
        ax.plot(frames, threshold, lw=0.8, ls="--", color="#777777", label="jump threshold")
    if flags.any():
        ax.plot(
            frames[flags],
            rmsd[flags],
            "x",
            color="#d62728",
            ms=7,
            mew=1.5,
            label=f"jump ({int(flags.sum())} frames)",
        )
    ax.set_xlabel("frame")
    ax.set_ylabel(f"consecutive RMSD ({unit})")
    ax.set_title(title or "Alignment jumps")
    finite = rmsd[np.isfinite(rmsd)]
    if finite.size and finite.max() > 20 * max(np.median(finite), 1e-12):
        ax.set_yscale("log")
    ax.legend(loc="best", fontsize="small", framealpha=0.8)
    return ax


def plot_principal(
    frames: np.ndarray,
    gap: np.ndarray,
    sign_flip: np.ndarray | None = None,
    axis_swap: np.ndarray | None = None,
    gap_warn: float = 0.05,
    ax=None,
    title: str | None = None,
):
    """Relative eigenvalue gaps of the principal axes over time, with sign flips and axis
    swaps marked.

    Parameters
    ----------
    frames : (F,); gap : (F, D-1) ``(l_k - l_k+1) / l_k``; sign_flip : (F, D) bool;
    axis_swap : (F,) bool
    """
    ax = _ax(ax, (8, 3))
    frames = np.asarray(frames)
    gap = np.asarray(gap, dtype=float).reshape(len(frames), -1)
    for k in range(gap.shape[1]):
        ax.plot(frames, gap[:, k], lw=0.8, label=f"gap axis {k + 1}/{k + 2}")
    ax.axhline(gap_warn, color="#777777", ls="--", lw=0.8, label=f"degenerate (< {gap_warn:g})")
    ax.set_yscale("log")
    lo = np.nanmin(np.where(gap > 0, gap, np.nan)) if np.any(gap > 0) else 1e-3
    ymark = lo / 3
    if sign_flip is not None:
        sf = np.asarray(sign_flip, dtype=bool).reshape(len(frames), -1).any(axis=1)
        if sf.any():
            ax.plot(
                frames[sf],
                np.full(sf.sum(), ymark),
                "|",
                color="#d62728",
                ms=10,
                label=f"sign flip ({int(sf.sum())})",
            )
    if axis_swap is not None:
        sw = np.asarray(axis_swap, dtype=bool)
        if sw.any():
            ax.plot(
                frames[sw],
                np.full(sw.sum(), ymark / 2.5),
                "v",
                color="#ff7f0e",
                ms=5,
                label=f"axis swap ({int(sw.sum())})",
            )
    ax.set_xlabel("frame")
    ax.set_ylabel("relative eigenvalue gap")
    ax.set_title(title or "Principal axes: eigenvalue gap, sign flips, axis swaps")
    # outside on the right: the markers run along the bottom and the gaps along the top
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0)
    return ax


def jump_figure(
    frames: np.ndarray,
    jumps: dict,
    principal: dict | None = None,
    unit: str = "Angstrom",
    title: str | None = None,
):
    """One figure: a jump panel per method (``jumps[name] = (rmsd, flags, threshold)``)
    and, when given, a principal-axes panel (``gap``, ``sign_flip``, ``axis_swap``)."""
    plt = _plt()
    n = len(jumps) + (1 if principal else 0)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.6 * n), layout="constrained", squeeze=False)
    axes = axes[:, 0]
    for ax, (name, (rmsd, flags, thr)) in zip(axes, jumps.items(), strict=False):
        plot_jumps(frames, rmsd, flags, thr, ax=ax, unit=unit, title=f"{label(name)}: jumps")
    if principal:
        plot_principal(
            frames,
            principal["gap"],
            principal.get("sign_flip"),
            principal.get("axis_swap"),
            ax=axes[-1],
        )
    if title:
        fig.suptitle(title)
    return fig


def plot_repair_effect(
    frames: np.ndarray,
    rmsd: dict,
    mode: str,
    ax=None,
    unit: str = "Angstrom",
):
    """RMSD to the first frame after a Kabsch fit, with the periodic repair and as read
    (``rmsd`` maps ``"repaired"`` and ``"as read"`` to (F,) arrays)."""
    ax = _ax(ax, figsize=(8, 3.6))
    ax.plot(frames, rmsd["as read"], color="tab:red", lw=1.0, label="as read (--pbc none)")
    ax.plot(frames, rmsd["repaired"], color="tab:blue", lw=1.2, label=f"repaired (--pbc {mode})")
    ax.set_xlabel("frame")
    ax.set_ylabel(f"RMSD to frame {int(frames[0])} ({unit})")
    ax.set_ylim(bottom=0)
    ax.set_title("Kabsch fit onto the first frame, with and without the periodic repair")
    ax.legend(loc="upper left", fontsize="small")
    return ax


# ------------------------------------------------------------------------- overlay


def _draw_frame(ax, xy, bonds, color, alpha, lw=0.8, ms=3):
    """One frame: points joined in index order (a chain), or by ``bonds`` (K, 2)."""
    if bonds is None:
        ax.plot(xy[:, 0], xy[:, 1], ".-", lw=lw, ms=ms, alpha=alpha, color=color)
        return
    from matplotlib.collections import LineCollection

    ax.add_collection(LineCollection(xy[bonds][:, :, :2], colors=[color], lw=lw, alpha=alpha))
    ax.plot(xy[:, 0], xy[:, 1], ".", ms=ms, alpha=alpha, color=color)


#: overlays and perturbation panels draw at most this many points (a sample beyond)
MAX_DRAWN_POINTS = 400
#: and, when points are sampled, at most this many frames
MAX_DRAWN_FRAMES = 48


def sample_points(n_points: int, max_points: int = MAX_DRAWN_POINTS, keep=()) -> np.ndarray:
    """Evenly spaced point indices, at most ``max_points`` (all when fewer), with ``keep``.

    Returns
    -------
    ndarray, shape (K,), int64, sorted
    """
    if n_points <= max_points:
        return np.arange(n_points, dtype=np.int64)
    idx = np.linspace(0, n_points - 1, max_points).round().astype(np.int64)
    return np.unique(np.concatenate([idx, np.asarray(list(keep), dtype=np.int64)]))


def plot_overlay(
    coords: np.ndarray,
    frames: np.ndarray | None = None,
    ax=None,
    title: str | None = None,
    unit: str = "Angstrom",
    cmap: str = CMAP,
    colorbar: bool = True,
    n_frames: int | None = None,
    bonds: np.ndarray | None = None,
    atoms: np.ndarray | None = None,
    trace: bool = False,
):
    """Frames drawn on top of each other, coloured by time (the chapter's overlay). 3D
    data are drawn on their first two axes (after principal alignment, the two largest
    principal axes).

    Frames are drawn translucent in random order, so late frames do not hide early ones.
    Up to :data:`MAX_DRAWN_POINTS` points each frame is a chain (or its ``bonds``). Beyond
    that, or when ``atoms`` is given, a sample of points (``atoms``, else evenly spaced)
    of at most :data:`MAX_DRAWN_FRAMES` frames is drawn as dots, with their mean position
    as a black line (``trace``: the sample follows a chain, e.g. one atom per residue) or
    black dots: the spread around the mean stays visible at any size.

    Parameters
    ----------
    coords : (S, N, D) frames to draw; frames : (S,) their frame numbers (colour);
    n_frames : total frames, for the colour scale (default: the largest frame number + 1)
    bonds : (K, 2) int, optional; draw these bonds instead of joining points in index order
    atoms : (K,) int, optional; draw only these points (a sample)
    trace : bool; join the sample's mean positions in index order
    """
    import matplotlib as mpl

    ax = _ax(ax, (4.5, 4))
    c = np.asarray(coords, dtype=float)
    fr = np.arange(len(c)) if frames is None else np.asarray(frames)
    total = (int(fr.max()) + 1 if len(fr) else 1) if n_frames is None else n_frames
    norm = mpl.colors.Normalize(0, max(total - 1, 1))
    cm = mpl.colormaps[cmap]
    if atoms is None and c.shape[1] > MAX_DRAWN_POINTS:
        atoms = sample_points(c.shape[1])
    # random frame order: drawn in time order the last frames would cover the rest
    order = np.random.default_rng(0).permutation(len(c))
    if atoms is None:
        alpha = float(np.clip(8.0 / max(len(c), 1), 0.12, 0.5))
        for f, xy in zip(fr[order], c[order], strict=True):
            _draw_frame(ax, xy, bonds, cm(norm(f)), alpha)
        shown = f"{len(c)} frames"
    else:
        atoms = np.asarray(atoms, dtype=np.int64)
        pick = sample_points(len(c), MAX_DRAWN_FRAMES)
        c, fr = c[pick][:, atoms], fr[pick]
        order = np.random.default_rng(0).permutation(len(c))
        alpha = float(np.clip(6.0 / max(len(c), 1), 0.08, 0.6))
        for f, xy in zip(fr[order], c[order], strict=True):
            ax.plot(xy[:, 0], xy[:, 1], ".", ms=3, alpha=alpha, color=cm(norm(f)), mew=0)
        mean = c.mean(axis=0)
        ax.plot(mean[:, 0], mean[:, 1], "-" if trace else ".", color="k", lw=0.6, ms=1.0)
        shown = f"{len(c)} frames, {len(atoms)} points"
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"x ({unit})")
    ax.set_ylabel(f"y ({unit})")
    ax.set_title(title or "Overlay")
    ax.text(0.02, 0.02, shown, transform=ax.transAxes, fontsize="x-small", color="#555555")
    if colorbar:
        sm = mpl.cm.ScalarMappable(norm=norm, cmap=cm)
        ax.figure.colorbar(sm, ax=ax, label="frame", shrink=0.8)
    return ax


def overlay_figure(
    overlays: dict,
    frames: np.ndarray,
    n_frames: int,
    unit: str = "Angstrom",
    bonds: np.ndarray | None = None,
    atoms: np.ndarray | None = None,
    trace: bool = False,
):
    """Side-by-side overlays, one panel per method (``overlays[name] = (S, N, D)``);
    ``atoms``, ``trace`` as in :func:`plot_overlay` (a sample for large systems)."""
    plt = _plt()
    n = len(overlays)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.8, 3.8), layout="constrained")
    axes = np.atleast_1d(axes)
    n_points = next(iter(overlays.values())).shape[1]
    sampled = atoms is not None or n_points > MAX_DRAWN_POINTS
    for i, (ax, (name, c)) in enumerate(zip(axes, overlays.items(), strict=True)):
        plot_overlay(
            c,
            frames,
            ax=ax,
            title=label(name),
            unit=unit,
            colorbar=i == n - 1,
            n_frames=n_frames,
            bonds=bonds,
            atoms=atoms,
            trace=trace,
        )
    what = "aligned frames, coloured by time"
    shown = len(frames)
    if sampled:
        # one panel is narrow: the second half of the title on a line of its own
        what += ";\n" if n < 3 else "; "
        what += "a sample of points, their mean in black"
        shown = min(shown, MAX_DRAWN_FRAMES)
    fig.suptitle(f"{shown} of {n_frames} {what}", fontsize="medium")
    return fig


# --------------------------------------------------------------------- sensitivity


def plot_perturbation(
    aligned: np.ndarray,
    point: int,
    ax=None,
    title: str | None = None,
    unit: str = "Angstrom",
    cmap: str = CMAP,
    bonds: np.ndarray | None = None,
    atoms: np.ndarray | None = None,
):
    """The perturbed copies of one frame after alignment, coloured by the size of the
    perturbation (one panel of the chapter's ``perturb_paths`` picture); the perturbed
    point is ringed in the unperturbed copy. Beyond :data:`MAX_DRAWN_POINTS` points (or
    with ``atoms``) a sample of points is drawn as dots, always with ``point``.

    Parameters
    ----------
    aligned : (steps, N, D); point : int; bonds : (K, 2) int, optional;
    atoms : (K,) int, optional, the points to draw
    """
    import matplotlib as mpl

    ax = _ax(ax, (4.5, 4))
    y = np.asarray(aligned, dtype=float)
    cm = mpl.colormaps[cmap]
    ring = y[0, point]
    if atoms is None and y.shape[1] > MAX_DRAWN_POINTS:
        atoms = sample_points(y.shape[1], keep=(point,))
    if atoms is None:
        for s, xy in enumerate(y):
            _draw_frame(ax, xy, bonds, cm(s / max(len(y) - 1, 1)), 0.5)
    else:
        y = y[:, np.asarray(atoms, dtype=np.int64)]
        for s, xy in enumerate(y):
            ax.plot(
                xy[:, 0], xy[:, 1], ".", ms=2.5, mew=0, alpha=0.5, color=cm(s / max(len(y) - 1, 1))
            )
        ax.text(
            0.02, 0.02, f"{y.shape[1]} points drawn", transform=ax.transAxes,
            fontsize="x-small", color="#555555",
        )  # fmt: skip
    ax.plot(ring[0], ring[1], "o", mfc="none", mec="k", ms=9, label=f"point {point}")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"x ({unit})")
    ax.set_ylabel(f"y ({unit})")
    ax.set_title(title or "Perturbation")
    ax.legend(loc="best", fontsize="small")
    return ax


def perturbation_figure(
    aligned: dict,
    point: int,
    amount: float,
    unit: str = "Angstrom",
    frame: int = 0,
    bonds: np.ndarray | None = None,
    axis: str = "x",
    atoms: np.ndarray | None = None,
):
    """The chapter's picture, one panel per method (``aligned[name] = (steps, N, D)``,
    three panels a row); the point moved towards ``-axis``. ``atoms`` as in
    :func:`plot_perturbation`."""
    import matplotlib as mpl

    plt = _plt()
    n = len(aligned)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.6 * ncols + 0.8, 3.8 * nrows), layout="constrained", squeeze=False
    )
    axes = axes.ravel()
    for ax, (name, y) in zip(axes, aligned.items(), strict=False):
        title = f"Perturb {point}: {label(name)}"
        plot_perturbation(y, point, ax=ax, title=title, unit=unit, bonds=bonds, atoms=atoms)
    for ax in axes[n:]:
        ax.set_axis_off()
    sm = mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(0, amount), cmap=mpl.colormaps[CMAP])
    fig.colorbar(sm, ax=axes[ncols - 1], label=f"perturbation ({unit})", shrink=0.8)
    fig.suptitle(f"Frame {frame}: point {point} moved by up to {amount:g} {unit} along -{axis}")
    return fig


#: the sensitivity figure's width is capped (inches at :func:`save`'s 110 dpi: 3740 px)
MAX_WIDTH_IN = 34.0


def plot_sensitivity(
    matrix: np.ndarray,
    methods: Sequence[str],
    point: int | None = None,
    ax=None,
    title: str | None = None,
    xlabel: str = "point",
    ylabels: Sequence[str] | None = None,
    xticklabels: Sequence[str] | None = None,
):
    """Heat map of sensitivities (rows: methods, columns: points or groups of points),
    annotated when small; at most about 40 column labels are written.

    Parameters
    ----------
    matrix : (M, C) displacement per unit perturbation (length / length); NaN cells blank
    xticklabels : C labels (default: the column numbers)
    """
    import matplotlib as mpl

    ax = _ax(ax, (7, 0.5 * len(methods) + 1.6))
    m = np.asarray(matrix, dtype=float)
    top = float(np.nanmax(m)) if np.isfinite(m).any() else 1.0
    positive = m[np.isfinite(m) & (m > 0)]
    cbar = "displacement / perturbation"
    if positive.size and top > 1e3 * positive.min():
        # values spanning many decades (a point alignment swinging a protein by 20, a
        # centring moving it by 4e-5): a linear scale would show only the largest row
        low = max(float(positive.min()), top * 1e-6)
        norm = mpl.colors.LogNorm(vmin=low, vmax=top)
        cmap = mpl.colormaps["magma_r"].with_extremes(under="white")
        cbar += " (log scale; white: 0)"
    else:
        norm = mpl.colors.Normalize(vmin=0.0, vmax=max(top, 1e-12))
        cmap = mpl.colormaps["magma_r"]
    im = ax.imshow(m, aspect="auto", cmap=cmap, norm=norm)
    n_cols = m.shape[1]
    every = max(1, -(-n_cols // 40))
    cols = np.arange(0, n_cols, every)
    ax.set_xticks(cols)
    labels = [str(c) for c in range(n_cols)] if xticklabels is None else list(xticklabels)
    ax.set_xticklabels(
        [labels[c] for c in cols], rotation=90 if every > 1 or n_cols > 24 else 0, fontsize=7
    )
    ax.set_yticks(range(m.shape[0]))
    ax.set_yticklabels(ylabels if ylabels is not None else [label(x) for x in methods])
    ax.set_xlabel(xlabel)
    if m.size <= 400:
        for (i, j), v in np.ndenumerate(m):
            if np.isfinite(v):
                ax.text(
                    j,
                    i,
                    f"{v:.2g}" if 0 < abs(v) < 0.01 else f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm(v) > 0.6 else "black",
                )
    ax.figure.colorbar(im, ax=ax, label=cbar)
    where = "" if point is None else f" when point {point} moves"
    ax.set_title(title or f"How far each point moves in the aligned frame{where}")
    return ax


def sensitivity_figure(
    matrix: np.ndarray,
    methods: Sequence[str],
    perturbed: Sequence[int],
    point: int,
    group: np.ndarray | None = None,
    group_labels: Sequence[str] | None = None,
    kind: str = "point",
):
    """Two panels: the heat map for ``point`` (methods x points, or x groups of points),
    and for every method the mean displacement of the other points per perturbed point
    (which points make an alignment noisy).

    Parameters
    ----------
    matrix : (M, P, N); perturbed : the P perturbed points; point : one of them
    group, group_labels, kind : from :func:`trajalign.groups.point_groups`; the
        columns of the first panel are the groups' means (default: one per point), and
        the second panel's perturbed points are grouped alike when there are too many.
        The figure's width is capped at :data:`MAX_WIDTH_IN` inches whatever N.
    """
    from .groups import MAX_GROUPS, group_mean

    plt = _plt()
    m = np.asarray(matrix, dtype=float)  # (M, P, N)
    n_methods, n_pert, n_points = m.shape
    if group is None:
        group = np.arange(n_points)
        group_labels = [str(i) for i in range(n_points)]
    group = np.asarray(group, dtype=np.int64)
    p = list(perturbed).index(point)
    top = group_mean(m[:, p, :], group)
    # mean over the *other* points: the moved point itself is not noise
    others = np.ones((n_pert, n_points), dtype=bool)
    for a, q in enumerate(perturbed):
        others[a, q] = False
    mean_other = np.array([[row[o].mean() for row, o in zip(mm, others, strict=True)] for mm in m])
    pert_labels = [str(q) for q in perturbed]
    pert_what = "perturbed point"
    if n_pert > MAX_GROUPS:
        pg = group[np.asarray(perturbed)]
        used, pg = np.unique(pg, return_inverse=True)
        mean_other = group_mean(mean_other, pg)
        pert_labels = [str(group_labels[u]) for u in used]
        pert_what = f"perturbed points, by {kind}"
    n_cols = max(top.shape[1], mean_other.shape[1])
    width = min(MAX_WIDTH_IN, max(7.0, 0.12 * n_cols + 3))
    fig, axes = plt.subplots(2, 1, figsize=(width, 1.1 * n_methods + 3.8), layout="constrained")
    per = {"point": "", "residue": " (mean per residue)", "bin": " (mean per bin of points)"}
    plot_sensitivity(
        top,
        methods,
        point,
        ax=axes[0],
        xlabel={"point": "point", "residue": "residue", "bin": "points"}.get(kind, kind),
        xticklabels=group_labels,
        title=f"How far each point moves in the aligned frame when point {point} moves"
        + per.get(kind, ""),
    )
    plot_sensitivity(
        mean_other,
        methods,
        ax=axes[1],
        xlabel=pert_what,
        xticklabels=pert_labels,
        title="Mean displacement of the other points per unit move of each point",
    )
    return fig


# ------------------------------------------------------------ the commands' figures


def _plot_dir(plot_dir, what: str, fix: str) -> None:
    """Create the figures' folder, or say why not."""
    from .errors import OutputError

    try:
        os.makedirs(plot_dir, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {what}{plot_dir}: {exc}", fix) from None


def write_rotate_plots(jumps, plot_dir, fmt: str = "png") -> list[str]:
    """Figures of a finished ``rotate`` (or ``center``) output.

    Writes into ``plot_dir`` (created if missing):

    - ``jumps.<fmt>``: consecutive-frame RMSD with the running threshold and flagged
      frames, and for principal axes a panel of the eigenvalue gap with sign flips and
      axis swaps;
    - ``overlay.<fmt>``: the sampled aligned frames on top of each other, coloured by
      time (3D: the first two axes).

    Parameters
    ----------
    jumps : RotateJumps
        What the output holds, from :func:`trajalign.diagnostics.read_rotate_jumps`.
    plot_dir : path
        Folder for the figures.
    fmt : {"png", "pdf", "svg"}

    Returns
    -------
    list of str
        Paths of the files written.
    """
    check_format(fmt)
    _plot_dir(plot_dir, "plot folder ", "choose --plot DIR")
    j = jumps
    written = []
    fig = jump_figure(
        j.frames,
        {j.method: (j.rmsd, j.flags, j.threshold)},
        j.principal,
        unit=j.unit,
        title=j.title,
    )
    written.append(save(fig, os.path.join(plot_dir, f"jumps.{fmt}")))
    fig = overlay_figure({j.method: j.overlay}, j.overlay_frames, j.n_frames, unit=j.unit)
    written.append(save(fig, os.path.join(plot_dir, f"overlay.{fmt}")))
    return written


def write_diagnose_plots(d, plot_dir, fmt: str = "png") -> list[str]:
    """The figures of ``trajalign diagnose``: jumps, perturbation, sensitivity, overlay,
    and with a periodic repair the RMSD it changed.

    Beyond :data:`MAX_DRAWN_POINTS` points of an input with residues, the perturbation
    and overlay figures draw one atom per residue (a chain trace) and the moved point.

    Parameters
    ----------
    d : Diagnosis
        From :func:`trajalign.diagnostics.diagnose`.
    plot_dir : path
        Folder for the figures (created if missing).
    fmt : {"png", "pdf", "svg"}

    Returns
    -------
    list of str
        Absolute paths of the files written.
    """
    from ._names import AXES, ROTATE_METHODS
    from .groups import trace_points

    _plot_dir(plot_dir, "", "choose another --plot DIR")
    scan, methods, frame_index, unit = d.scan, d.methods, d.frame_index, d.unit
    drawn = None
    if d.residues is not None and d.n_points > MAX_DRAWN_POINTS:
        # one atom per residue (sorted, so in chain order), and always the moved point
        picked = trace_points(d.residues, d.atom_names, MAX_DRAWN_POINTS)
        drawn = np.union1d(picked, [d.perturb_point])
    out = []
    jump_methods = [m for m in methods if m in ROTATE_METHODS] or methods
    fig = jump_figure(
        frame_index,
        {m: (scan.rmsd[m], scan.flags[m], scan.threshold[m]) for m in jump_methods},
        scan.principal or None,
        unit=unit,
    )
    out.append(save(fig, os.path.join(plot_dir, f"jumps.{fmt}")))
    fig = perturbation_figure(
        {m: d.aligned[m] for m in methods},
        d.perturb_point,
        d.amount,
        unit=unit,
        frame=int(frame_index[d.perturb_frame]),
        bonds=d.bonds,
        axis=AXES[d.axis],
        atoms=drawn,
    )
    out.append(save(fig, os.path.join(plot_dir, f"perturbation.{fmt}")))
    group, labels, kind = d.groups
    fig = sensitivity_figure(d.matrix, methods, d.perturbed, d.perturb_point, group, labels, kind)
    out.append(save(fig, os.path.join(plot_dir, f"sensitivity.{fmt}")))
    fig = overlay_figure(
        scan.overlay,
        frame_index[scan.overlay_frames],
        len(frame_index),
        unit=unit,
        bonds=d.bonds,
        atoms=drawn,
        trace=drawn is not None,
    )
    out.append(save(fig, os.path.join(plot_dir, f"overlay.{fmt}")))
    if d.effect is not None:
        ax = plot_repair_effect(frame_index, d.effect.rmsd, d.pbc["mode"], unit=unit)
        out.append(save(ax.figure, os.path.join(plot_dir, f"pbc_rmsd.{fmt}")))
    return [os.path.abspath(p) for p in out]


__all__ = [
    "CMAP",
    "FORMATS",
    "LABELS",
    "MAX_DRAWN_FRAMES",
    "MAX_DRAWN_POINTS",
    "MAX_WIDTH_IN",
    "check_format",
    "jump_figure",
    "label",
    "overlay_figure",
    "perturbation_figure",
    "plot_jumps",
    "plot_overlay",
    "plot_perturbation",
    "plot_principal",
    "plot_repair_effect",
    "plot_sensitivity",
    "sample_points",
    "save",
    "sensitivity_figure",
    "write_diagnose_plots",
    "write_rotate_plots",
]
