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
    negated output (dihedrals and protein torsions under a mirror). Transformations a
    method does not promise are reported without judgement. Exit status 1 when a promise is broken.

    Distances, angles and dihedrals use the input's own bonds, angles and dihedrals where
    its topology has bonds (else all pairs and consecutive points); the protein features
    phi ... chi5 and mindist (closest-heavy, all residue pairs) are checked where --method
    names them; dihedrals next to a
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
    from ..diagnostics import broken_promise, format_table, plan_check, rows_json, validate_check
    from ..io import open_source
    from ..jobs.internal import check_tuples

    src = source_kwargs(kw)
    methods = parse_list(kw["methods"], METHOD_NAMES, "--method")
    transforms = parse_list(
        kw["transforms"].replace("-", " ") if kw["transforms"] else None,
        (*TRANSFORMATIONS, PERIODIC_IMAGES),
        "--transform",
    )
    points = parse_points_opt(kw["points"])
    validate_check(kw["n_frames"], kw["trials"], kw["max_points"], kw["tol"])
    with open_source(**src) as source:
        plan = plan_check(
            source,
            methods,
            transforms,
            n_frames=kw["n_frames"],
            trials=kw["trials"],
            tol=kw["tol"],
            seed=kw["seed"],
            max_points=kw["max_points"],
            point=kw["point"],
            points=points,
            sign=kw["sign"],
            tuples=check_tuples(methods),
        )
        bar = progress_bar(plan.runs * plan.n_frames, "checking")
        try:
            if bar is not None:
                bar.__enter__()
            rows = plan.run(source, progress=bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
    click.echo(rows_json(rows) if kw["as_json"] else format_table(rows))
    note(plan.describe(rows))
    error = broken_promise(rows, kw["sign"])
    if error is not None:
        raise error
