"""``trajalign center``."""

from __future__ import annotations

import click

from . import cli, run_job
from .options import pass_kwargs, source_kwargs, with_each, with_input, with_output, with_plot

__all__ = [
    "center",
]


@cli.command()
@with_input
@with_output
@with_each
@with_plot()
@click.option(
    "--method",
    type=click.Choice(["com", "geometric", "point"]),
    default="com",
    show_default=True,
    help="com: center of mass (mass-weighted where masses exist); geometric: mean of the "
    "points; point: move point --point to the origin.",
)
@click.option("--point", type=int, default=0, show_default=True, help="Point for --method point.")
@pass_kwargs
def center(kw: dict) -> None:
    """Translate every frame so its center sits at the origin.

    \b
    Example:
      trajalign center sample_data/chain2d.npz --method com -o centered.h5
    """
    src = source_kwargs(kw)
    method, point = kw.pop("method"), kw.pop("point")

    def make_job(source):
        from ..jobs.center import CenterJob

        return CenterJob(method=method, point=point)

    run_job(src, make_job, kw, label="center")
