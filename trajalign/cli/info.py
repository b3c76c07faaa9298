"""``trajalign info``."""

from __future__ import annotations

import json

import click

from . import cli
from .options import pass_kwargs, source_kwargs, with_input


@cli.command()
@with_input
@click.option("--json", "as_json", is_flag=True, help="Print the facts as one JSON object.")
@pass_kwargs
def info(kw: dict) -> None:
    """Frames, points, dimension, box, masses, bonds and time step of an input.

    \b
    Example:
      trajalign info sample_data/butane.dcd -t sample_data/butane.pdb
    """
    from ..io import open_source

    as_json = kw.pop("as_json")
    with open_source(**source_kwargs(kw)) as src:
        facts = describe(src)
    if as_json:
        click.echo(json.dumps(facts))
        return
    width = max(len(k) for k in facts)
    for k, v in facts.items():
        click.echo(f"{k:<{width}}  {v}")


def describe(src) -> dict:
    """Plain-value facts about an open source."""
    import numpy as np

    box = None
    first = None
    if src.has_box:
        first = src.read(0, 1)
        box = [round(float(v), 4) for v in first.box[0]]
    masses = None
    if src.masses is not None:
        m = np.asarray(src.masses)
        masses = {"total": float(m.sum()), "min": float(m.min()), "max": float(m.max())}
    return {
        "inputs": list(src.spec.paths),
        "topology": src.spec.top,
        "kind": src.kind,
        "frames": src.n_frames,
        "frames_in_files": src.total_frames,
        "points": src.n_points,
        "points_in_files": src.n_atoms_total,
        "dimension": src.dim,
        "length_unit": src.length_unit,
        "time_step_ps": float(f"{src.dt:.6g}"),  # DCD stores dt in float32 AKMA units
        "box_first_frame": box,
        "masses": masses,
        "bonds": 0 if src.bonds is None else int(len(src.bonds)),
        "pbc": pbc_facts(src, first),
    }


def pbc_facts(src, first) -> str:
    """The periodic repair ``--pbc`` chose, and what it found in the first frame."""
    if not src.has_box:
        return "none (no periodic box)"
    counts = first.repair or {}
    if src.pbc_mode == "none":
        if counts.get("spread_frames"):
            return "none: the selection may be split across the boundary in frame 0"
        return "none"
    n_mol = src._repair.plan.n_molecules
    text = f"{src.pbc_mode} ({n_mol} molecule(s) hold the selection"
    if "split_molecules" in counts:
        text += f"; {counts['split_molecules']} split in frame 0"
    return text + ")"
