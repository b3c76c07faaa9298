"""``trajalign check``: the chapter's invariance tests as a command."""

from __future__ import annotations

import click

from .._names import CHECK_FRAMES, MAX_POINTS, METHOD_NAMES, PERIODIC_IMAGES, TRANSFORMATIONS
from . import cli, note, progress_bar
from .options import pass_kwargs, source_kwargs, with_input, with_method_options


def parse_list(text: str | None, allowed: tuple[str, ...], option: str) -> list[str] | None:
    """``"a,b"`` -> ["a", "b"], each checked against ``allowed``; None stays None."""
    from ..errors import ParameterError

    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise ParameterError(
            f"{option} {text!r} names {', '.join(bad) or 'nothing'}",
            f"give a comma list of {', '.join(allowed)}",
        )
    return items


def parse_points_opt(text: str | None) -> tuple[int, ...] | None:
    from ..errors import ParameterError

    if text is None:
        return None
    try:
        pts = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise ParameterError(f"cannot read --points {text!r}", "give I,J or I,J,K") from None
    if len(pts) not in (2, 3):
        raise ParameterError(f"--points {text!r} has {len(pts)} indices", "give I,J or I,J,K")
    return pts


@cli.command()
@with_input
@click.option(
    "--method",
    "methods",
    default=None,
    metavar="LIST",
    help="Comma list of methods to check: "
    + ", ".join(METHOD_NAMES)
    + " [default: every method that applies to the input's dimension].",
)
@click.option(
    "--transform",
    "transforms",
    default=None,
    metavar="LIST",
    help="Comma list of transformations: "
    + ", ".join(t.replace(" ", "-") for t in (*TRANSFORMATIONS, PERIODIC_IMAGES))
    + " [default: all; periodic-images where the input is repaired (--pbc)].",
)
@click.option(
    "--frames",
    "n_frames",
    type=int,
    default=CHECK_FRAMES,
    show_default=True,
    help="Check on the first N frames of the selection (use --start/--step to pick others).",
)
@click.option(
    "--atoms",
    "max_points",
    type=int,
    default=MAX_POINTS,
    show_default=True,
    help="Methods whose cost grows faster than the atom count (distances over all pairs, "
    "eigvals) run on at most N points, evenly spaced through the selection.",
)
@click.option("--trials", type=int, default=3, show_default=True, help="Random draws per row.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random motions.")
@click.option(
    "--tol",
    type=float,
    default=None,
    help="Largest change accepted, in the output's unit [default, per row: 8 x machine "
    "epsilon of the data's dtype x (the method's conditioning x the largest point norm of "
    "the moved input + the largest output magnitude)].",
)
@with_method_options
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON on stdout.")
@pass_kwargs
def check(kw: dict) -> None:
    """Check that a method's output is invariant (or moves alike) under random motions.

    Applies random rotations, translations (one for the whole trajectory, or one per
    frame), mirror reflections and renumberings of the atoms to the input, re-runs each
    method, and reports per transformation the largest change of its output from what
    the method promises: the same output (invariant), the output moved alike
    (equivariant), the output moved with frame 0 (Kabsch onto the first frame), or the
    negated output (dihedrals under a mirror). Transformations a method does not promise
    are reported without judgement. Exit status 1 when a promise is broken.

    Distances, angles and dihedrals use the input's own bonds, angles and dihedrals where
    its topology has bonds (else all pairs and consecutive points); dihedrals next to a
    bond angle within 10 degrees of straight are left out and counted. Principal axes
    promise rotation invariance with every --sign; --sign none (the eigen solver's
    signs) breaks it and is reported BROKEN. Each row's tolerance follows the rounding of
    the data's dtype and the method's conditioning (see --tol).

    \b
    Examples:
      trajalign check sample_data/chain2d.npz
      trajalign check sample_data/butane.dcd -t sample_data/butane.pdb --method kabsch,dihedrals
      trajalign check sample_data/chain2d.npz --method principal --sign skew --json
    """
    from ..diagnostics import (
        InvarianceError,
        check_invariance,
        check_periodic_images,
        format_table,
        get_method,
        methods_for,
        rows_json,
    )
    from ..errors import ParameterError
    from ..io import open_source
    from ..jobs.internal import bonded_tuples

    src = source_kwargs(kw)
    methods = parse_list(kw["methods"], METHOD_NAMES, "--method")
    transforms = parse_list(
        kw["transforms"].replace("-", " ") if kw["transforms"] else None,
        (*TRANSFORMATIONS, PERIODIC_IMAGES),
        "--transform",
    )
    points = parse_points_opt(kw["points"])
    for name, value in (
        ("--frames", kw["n_frames"]),
        ("--trials", kw["trials"]),
        ("--atoms", kw["max_points"]),
    ):
        if value < 1:
            raise ParameterError(f"{name} {value} is not positive", f"give {name} 1 or more")
    if kw["tol"] is not None and not kw["tol"] >= 0:
        raise ParameterError(f"--tol {kw['tol']} is negative", "give a tolerance >= 0")
    with open_source(**src) as source:
        n = min(kw["n_frames"], source.n_frames)
        if n == 0:
            raise ParameterError("the frame selection is empty", "check --start/--stop/--step")
        x = source.read(0, n).coords
        dim, n_points = source.dim, source.n_points
        methods = methods or list(methods_for(dim, n_points))
        motions = [t for t in (transforms or TRANSFORMATIONS) if t != PERIODIC_IMAGES]
        asked = transforms is not None and PERIODIC_IMAGES in transforms
        periodic = asked or (transforms is None and source.pbc_mode != "none")
        common = dict(
            masses=source.masses,
            trials=kw["trials"],
            tol=kw["tol"],
            seed=kw["seed"],
            point=kw["point"],
            points=points,
            sign=kw["sign"],
            # the topology's own tuples: a dihedral across unbonded atoms (consecutive
            # indices) measures nothing real and can be nearly undefined (derived from the
            # bonds only when a feature asks: a bond-only topology takes a Python loop)
            tuples=bonded_tuples(source)
            if {"distances", "angles", "dihedrals"} & set(methods)
            else None,
            max_points=kw["max_points"],
        )
        capped = [
            m
            for m in methods
            if n_points > kw["max_points"]
            and get_method(m, dim, tuples=common["tuples"]).scaling > 1
        ]
        runs = len(methods) * ((1 + kw["trials"] * len(motions)) if motions else 0)
        runs += len(methods) * (1 + kw["trials"]) if periodic else 0
        bar = progress_bar(runs * n, "checking")
        rows = []
        try:
            if bar is not None:
                bar.__enter__()
            common["progress"] = bar.update if bar is not None else None
            for m in methods:
                if motions:
                    rows += check_invariance(x, m, transformations=motions, **common)
            if periodic:
                rows += check_periodic_images(source, n, methods, **common)
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
        total = source.n_frames
    if kw["as_json"]:
        click.echo(rows_json(rows))
    else:
        click.echo(format_table(rows))
    broken = [r for r in rows if r["ok"] is False]
    frames = f"{n} frames" if n == total else f"the first {n} of {total} frames"
    sub = ""
    if capped:
        sub = f"; {' and '.join(capped)} on {kw['max_points']} evenly spaced points"
    note(
        f"checked {len(methods)} method(s) on {frames} x {n_points} points ({dim}D{sub}), "
        f"{kw['trials']} trial(s) each: {len(broken)} broken promise(s)"
    )
    if broken:
        r = broken[0]
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        fix = (
            "do not rely on that invariance for this method and input, or raise --tol "
            "if the change is rounding"
        )
        if r["method"] == "principal" and kw["sign"] == "none":
            fix = "--sign none keeps the eigen solver's axis signs; use --sign skew or continuity"
        raise InvarianceError(
            f"{r['method']} is not {r['promise']} under {r['transformation']}: its output "
            f"changed by {r['max_change']:.3g} (frame {r['frame']}), above the tolerance "
            f"{r['tol']:.3g}{more}",
            fix,
        )
