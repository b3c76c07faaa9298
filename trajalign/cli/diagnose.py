"""``trajalign diagnose``: alignment jumps, perturbation sensitivity, overlays."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from .._names import (
    AXES,
    COORD_METHODS,
    JUMP_K,
    JUMP_WINDOW,
    MAX_PERTURBED,
    PERTURB_AMOUNT,
    PERTURB_STEPS,
)
from . import cli, note
from .check import parse_list, parse_points_opt
from .options import (
    check_plot_dir,
    pass_kwargs,
    source_kwargs,
    with_input,
    with_method_options,
    with_plot,
)

DEFAULT_METHODS = "none,center-com,kabsch,principal,point"
#: options recorded in the output's provenance, as given
PROVENANCE_OPTIONS = (
    "methods", "jump_k", "jump_window", "perturb_frame", "perturb_point", "perturb_points",
    "perturb_steps", "perturb_amount", "perturb_axis",
)  # fmt: skip


@cli.command()
@with_input
@click.option("-o", "--output", type=click.Path(), default=None, help="HDF5 file for the numbers.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@with_plot("the jump, perturbation, sensitivity and overlay figures")
@click.option(
    "--methods",
    default=DEFAULT_METHODS,
    show_default=True,
    metavar="LIST",
    help="Comma list of alignments to compare: " + ", ".join(COORD_METHODS) + ".",
)
@with_method_options
@click.option(
    "--jump-k",
    type=float,
    default=JUMP_K,
    show_default=True,
    help="Jump rule: flag frames whose consecutive RMSD exceeds the running median by more "
    "than K robust standard deviations (1.4826 MAD, floored at 5 percent of the median).",
)
@click.option(
    "--jump-window",
    type=int,
    default=JUMP_WINDOW,
    show_default=True,
    help="Jump rule: window (frames).",
)
@click.option(
    "--perturb-frame",
    type=int,
    default=0,
    show_default=True,
    help="Perturbation: frame (0-based within the selection).",
)
@click.option(
    "--perturb-point", type=int, default=1, show_default=True, help="Perturbation: the point."
)
@click.option(
    "--perturb-points",
    default=None,
    metavar="LIST|all",
    help="Points perturbed one at a time for the sensitivity matrix "
    f"[default: all up to {MAX_PERTURBED} points, else an even subset].",
)
@click.option(
    "--perturb-steps",
    type=int,
    default=PERTURB_STEPS,
    show_default=True,
    help="Perturbation: steps.",
)
@click.option(
    "--perturb-amount",
    type=float,
    default=PERTURB_AMOUNT,
    show_default=True,
    help="Perturbation: largest move, in length units.",
)
@click.option(
    "--perturb-axis",
    type=click.Choice(AXES),
    default="x",
    show_default=True,
    help="Perturbation: direction (the point moves towards -axis, as in the chapter).",
)
@click.option(
    "--chunk-frames", type=int, default=4096, show_default=True, help="Frames read per block."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@pass_kwargs
def diagnose(kw: dict) -> None:
    """Diagnose alignments: jumps over time, perturbation sensitivity, overlays.

    \b
    For every method of --methods:
    - jumps: RMSD between consecutive aligned frames, with frames flagged where it
      jumps far above its running level (and principal-axis sign flips, axis swaps and
      eigenvalue gaps);
    - sensitivity: one point of one frame is moved by growing amounts, the copies are
      aligned, and every point's displacement per unit move is measured (the chapter's
      perturb_paths), for every perturbed point; "far points" are the half of the
      other points farthest (in space) from the moved one; the map has a column per
      point up to 256, else per residue or bin of points;
    - overlay: up to 128 aligned frames drawn over each other, coloured by time
      (beyond 400 points: one atom per residue or a sample, from 48 frames, with
      the mean in black).
    The results are printed on stdout (--json: as one JSON object); the numbers in
    full go to -o (HDF5, /trajalign/diagnostics/...), figures to --plot DIR.

    \b
    Example:
      trajalign diagnose sample_data/chain2d.npz -o diag.h5 --plot figs/
    """
    from .. import diagnostics as dg
    from ..io.output import AtomicOutput, prepare_output

    t0 = time.perf_counter()
    src = source_kwargs(kw)
    methods = parse_list(kw["methods"], COORD_METHODS, "--methods")
    points = parse_points_opt(kw["points"])
    dg.validate_diagnose(
        kw["chunk_frames"], kw["perturb_steps"], kw["perturb_amount"], kw["jump_k"],
        kw["jump_window"],
    )  # fmt: skip
    if kw["output"] is not None:
        prepare_output(kw["output"], force=kw["force"])  # refuse before any work
    check_plot_dir(kw["plot_dir"])
    d = dg.diagnose(
        src,
        methods,
        point=kw["point"],
        points=points,
        sign=kw["sign"],
        jump_k=kw["jump_k"],
        jump_window=kw["jump_window"],
        perturb_frame=kw["perturb_frame"],
        perturb_point=kw["perturb_point"],
        perturbed=_parse_perturbed(kw["perturb_points"]),
        steps=kw["perturb_steps"],
        amount=kw["perturb_amount"],
        axis=AXES.index(kw["perturb_axis"]),
        chunk_frames=kw["chunk_frames"],
    )
    summary = d.summary()
    summary["output"] = os.path.abspath(kw["output"]) if kw["output"] else None
    if kw["output"] is not None:
        options = {k: kw[k] for k in PROVENANCE_OPTIONS}
        with AtomicOutput(kw["output"], force=kw["force"]) as tmp:
            dg.write_diagnosis(os.fspath(tmp), d, sys.argv, options)
            if kw["plot_dir"] is not None:
                summary["plots"] = _plots(d, kw)
    elif kw["plot_dir"] is not None:
        summary["plots"] = _plots(d, kw)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    if kw["as_json"]:
        click.echo(json.dumps(summary))
        return
    _print(summary, d, kw["plot_dir"])


def _plots(d, kw: dict) -> list[str]:
    from ..plots import write_diagnose_plots

    return write_diagnose_plots(d, os.path.abspath(kw["plot_dir"]), kw["plot_format"])


def _print(summary: dict, d, plot_dir: str | None) -> None:
    """The results on stdout (also with -q); what was written, as every command, on
    stderr."""
    methods, pp, unit, pbc = d.methods, d.perturb_point, d.unit, summary["pbc"]
    jumps = ", ".join(f"{m} {summary['jumps'][m]}" for m in methods)
    click.echo(f"jumps (frames flagged): {jumps}")
    if "far_point_sensitivity" in summary:
        s = ", ".join(f"{m} {v:.3g}" for m, v in summary["far_point_sensitivity"].items())
        fp = summary["far_points"]
        click.echo(
            f"far points ({fp['count']} farthest from point {pp}, {fp['min_distance']:.3g} "
            f"{unit} and more) moved per unit move of point {pp} (frame {d.perturb_frame}): {s}"
        )
    if "median_rmsd_to_first" in pbc:
        med = pbc["median_rmsd_to_first"]
        click.echo(
            f"periodic repair ({pbc['mode']}): median RMSD to frame 0 after a Kabsch fit "
            f"{med['repaired']:.3g} {unit} repaired, {med['as read']:.3g} {unit} as read"
        )
    if summary["output"]:
        note(f"wrote {summary['output']}")
    if summary["plots"]:
        note(f"wrote {len(summary['plots'])} figures to {os.path.abspath(plot_dir)}")


def _parse_perturbed(text: str | None) -> list[int] | str | None:
    """--perturb-points: None (the default set), "all", or the listed points."""
    from ..errors import ParameterError

    if text is None or text == "all":
        return text
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise ParameterError(
            f"cannot read --perturb-points {text!r}", "give 'all' or indices like 0,5,11"
        ) from None
