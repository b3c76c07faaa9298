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
):
    """Frames drawn on top of each other as chains, coloured by time (the chapter's
    overlay). 3D data are drawn on their first two axes (after principal alignment,
    the two largest principal axes).

    Parameters
    ----------
    coords : (S, N, D) frames to draw; frames : (S,) their frame numbers (colour);
    n_frames : total frames, for the colour scale (default: the largest frame number + 1)
    bonds : (K, 2) int, optional; draw these bonds instead of joining points in index order
    """
    import matplotlib as mpl

    ax = _ax(ax, (4.5, 4))
    c = np.asarray(coords, dtype=float)
    fr = np.arange(len(c)) if frames is None else np.asarray(frames)
    total = (int(fr.max()) + 1 if len(fr) else 1) if n_frames is None else n_frames
    norm = mpl.colors.Normalize(0, max(total - 1, 1))
    cm = mpl.colormaps[cmap]
    alpha = float(np.clip(8.0 / max(len(c), 1), 0.12, 0.8))
    for f, xy in zip(fr, c, strict=True):
        _draw_frame(ax, xy, bonds, cm(norm(f)), alpha)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"x ({unit})")
    ax.set_ylabel(f"y ({unit})")
    ax.set_title(title or "Overlay")
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
):
    """Side-by-side overlays, one panel per method (``overlays[name] = (S, N, D)``)."""
    plt = _plt()
    n = len(overlays)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.8, 3.8), layout="constrained")
    axes = np.atleast_1d(axes)
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
        )
    fig.suptitle(f"{len(frames)} of {n_frames} aligned frames, coloured by time")
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
):
    """The perturbed copies of one frame after alignment, coloured by the size of the
    perturbation (one panel of the chapter's ``perturb_paths`` picture); the perturbed
    point is ringed in the unperturbed copy."""
    import matplotlib as mpl

    ax = _ax(ax, (4.5, 4))
    y = np.asarray(aligned, dtype=float)
    cm = mpl.colormaps[cmap]
    for s, xy in enumerate(y):
        _draw_frame(ax, xy, bonds, cm(s / max(len(y) - 1, 1)), 0.5)
    ax.plot(y[0, point, 0], y[0, point, 1], "o", mfc="none", mec="k", ms=9, label=f"point {point}")
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
):
    """The chapter's three-panel picture: ``aligned[name] = (steps, N, D)``; the point
    moved towards ``-axis``."""
    import matplotlib as mpl

    plt = _plt()
    n = len(aligned)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.8, 3.8), layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, (name, y) in zip(axes, aligned.items(), strict=True):
        title = f"Perturb {point}: {label(name)}"
        plot_perturbation(y, point, ax=ax, title=title, unit=unit, bonds=bonds)
    sm = mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(0, amount), cmap=mpl.colormaps[CMAP])
    fig.colorbar(sm, ax=axes[-1], label=f"perturbation ({unit})", shrink=0.8)
    fig.suptitle(f"Frame {frame}: point {point} moved by up to {amount:g} {unit} along -{axis}")
    return fig


def plot_sensitivity(
    matrix: np.ndarray,
    methods: Sequence[str],
    point: int | None = None,
    ax=None,
    title: str | None = None,
    xlabel: str = "point",
    ylabels: Sequence[str] | None = None,
):
    """Heat map of sensitivities (rows: methods, columns: points), annotated.

    Parameters
    ----------
    matrix : (M, N) displacement per unit perturbation (length / length)
    """
    ax = _ax(ax, (7, 0.5 * len(methods) + 1.6))
    m = np.asarray(matrix, dtype=float)
    im = ax.imshow(m, aspect="auto", cmap="magma_r", vmin=0.0, vmax=max(float(m.max()), 1e-12))
    ax.set_xticks(range(m.shape[1]))
    ax.set_yticks(range(m.shape[0]))
    ax.set_yticklabels(ylabels if ylabels is not None else [label(x) for x in methods])
    ax.set_xlabel(xlabel)
    if m.size <= 400:
        top = m.max() if m.size else 1.0
        for (i, j), v in np.ndenumerate(m):
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v > 0.6 * top else "black",
            )
    ax.figure.colorbar(im, ax=ax, label="displacement / perturbation")
    where = "" if point is None else f" when point {point} moves"
    ax.set_title(title or f"How far each point moves in the aligned frame{where}")
    return ax


def sensitivity_figure(
    matrix: np.ndarray, methods: Sequence[str], perturbed: Sequence[int], point: int
):
    """Two panels: the heat map for ``point`` (methods x points), and for every method
    the mean displacement of the other points per perturbed point (which points make an
    alignment noisy)."""
    plt = _plt()
    m = np.asarray(matrix, dtype=float)  # (M, P, N)
    n_methods, n_pert, n_points = m.shape
    fig, axes = plt.subplots(
        2, 1, figsize=(max(7.0, 0.5 * n_points + 3), 1.1 * n_methods + 3.5), layout="constrained"
    )
    p = list(perturbed).index(point)
    plot_sensitivity(m[:, p, :], methods, point, ax=axes[0])
    # mean over the *other* points: the moved point itself is not noise
    others = np.ones((n_pert, n_points), dtype=bool)
    for a, q in enumerate(perturbed):
        others[a, q] = False
    mean_other = np.array([[row[o].mean() for row, o in zip(mm, others, strict=True)] for mm in m])
    plot_sensitivity(
        mean_other,
        methods,
        ax=axes[1],
        xlabel="perturbed point",
        title="Mean displacement of the other points per unit move of each point",
    )
    axes[1].set_xticklabels([str(q) for q in perturbed])
    return fig
