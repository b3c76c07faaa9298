"""``trajalign rotate``: remove rotation (and translation) from every frame."""

from __future__ import annotations

import os

import click

from . import cli, note, run_job
from .options import pass_kwargs, source_kwargs, with_each, with_input, with_output, with_plot

__all__ = [
    "CENTERS",
    "METHODS",
    "SIGNS",
    "rotate",
]

# kept here as literals so that ``--help`` does not import numpy-heavy modules
METHODS = ("kabsch", "principal", "point")
SIGNS = ("continuity", "skew", "none")
CENTERS = ("com", "geometric", "point")

# options that only one method reads: given with another method they are an error
_ONLY = {
    "reference": ("kabsch", "--reference"),
    "sign": ("principal", "--sign"),
    "center": ("principal", "--center"),
    "point": ("principal", "--point"),
    "points": ("point", "--points"),
}


@cli.command()
@with_input
@with_output
@with_each
@with_plot()
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="kabsch",
    show_default=True,
    help="kabsch: least-RMSD superposition onto --reference; principal: principal axes "
    "of the gyration tensor onto x, y(, z); point: I->J onto +x (3D: I->K into the "
    "xy-plane), centred on I.",
)
@click.option(
    "--reference",
    default=None,
    metavar="first|frame:K|average|FILE",
    help="kabsch: the first frame (default), frame K of the trajectory (0-based, before "
    "--start), the iterated average structure, or a structure file holding the fit atoms "
    "(any MDAnalysis-readable file, or a .npy of shape (fit atoms, dim)). A structure "
    "file is paired with the fit atoms by residue, atom name and element or mass: the "
    "same atoms in another order are reordered (with a warning), others are an error. "
    "A .npy is paired by position.",
)
@click.option(
    "--fit-select",
    default=None,
    metavar="SEL",
    help="Atoms that define the fit (default: the --select atoms); every selected atom "
    "moves with it. MDAnalysis selection, or an index list for arrays.",
)
@click.option(
    "--weights",
    type=click.Choice(["mass", "none"]),
    default=None,
    help="Weights of the fit atoms [kabsch: none, as MDAnalysis and MDTraj; principal: "
    "mass]. principal with none: unweighted throughout (the tensor about the geometric "
    "centroid, unless --center says otherwise).",
)
@click.option(
    "--center",
    type=click.Choice(CENTERS),
    default=None,
    help="principal: centre on the center of mass, the geometric center, or fit atom "
    "--point [default: com with mass weights, geometric with --weights none].",
)
@click.option("--point", type=int, default=None, help="principal: fit atom for --center point.")
@click.option(
    "--sign",
    type=click.Choice(SIGNS),
    default=None,
    help="principal: axis signs. continuity [default]: closest to the previous frame "
    "(no jumps); skew: third moment positive along x (and y in 3D), per frame, the last "
    "axis completing a right-handed frame (its skewness may be negative); none: as the "
    "eigen solver returns them.",
)
@click.option(
    "--points",
    default=None,
    metavar="I,J[,K]",
    help="point: indices within the fit atoms (I,J in 2D; I,J,K in 3D).",
)
@click.option(
    "--write-traj",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Also write the aligned atoms as a trajectory for viewers (3D; format from the "
    "extension: .xtc, .dcd, .pdb, ...). Refused if it exists, unless --force.",
)
@pass_kwargs
def rotate(kw: dict) -> None:
    """Rotate every frame: superpose on a reference, or onto principal or point axes.

    Writes the aligned coordinates and, for every frame, the rotation R and
    translation c with aligned = (x - c) @ R (/trajalign/alignment/), the Kabsch
    reference and RMSD (/observables/rmsd), and principal-axes diagnostics
    (/trajalign/diagnostics/).

    \b
    Examples:
      trajalign rotate sample_data/butane.dcd -t sample_data/butane.pdb \\
          --fit-select "name C*" --reference average -o fit.h5 --write-traj fit.xtc
      trajalign rotate sample_data/chain2d.npz --method principal -o pa.h5
      trajalign rotate sample_data/chain2d.npz --method point --points 0,1 -o pt.h5
    """
    from ..errors import ParameterError

    src = source_kwargs(kw)
    method = kw.pop("method")
    opts = {k: kw.pop(k) for k in ("reference", "sign", "center", "point", "points")}
    fit_select, weights, traj = kw.pop("fit_select"), kw.pop("weights"), kw.pop("write_traj")
    for key, (owner, flag) in _ONLY.items():
        if opts[key] is not None and method != owner:
            raise ParameterError(
                f"{flag} is for --method {owner}, not {method}",
                f"drop {flag} or use --method {owner}",
            )
    if opts["point"] is not None and opts["center"] != "point":
        raise ParameterError("--point needs --center point", "add --center point or drop --point")
    src["aux_select"] = fit_select
    if traj is not None and kw["each"]:
        raise ParameterError(
            "--write-traj writes one trajectory, and --each makes one output per input",
            "drop --write-traj, or run rotate on one input at a time",
        )
    if traj is not None:
        from ..io.output import prepare_output
        from ..jobs.rotate import trajectory_format

        prepare_output(traj, force=kw["force"], option="--write-traj")  # before any work
        trajectory_format(traj)
        if os.path.abspath(traj) == os.path.abspath(kw["output"]):
            raise ParameterError("--write-traj names the -o file", "give two different files")

    def make_job(source):
        from ..jobs.rotate import RotateJob

        if traj is not None and source.dim != 3:
            raise ParameterError(
                "--write-traj needs 3D coordinates, and the input is 2D", "drop --write-traj"
            )
        return RotateJob(
            method=method,
            reference=opts["reference"] or "first",
            weights=weights,
            center=opts["center"],
            point=opts["point"] or 0,
            sign=opts["sign"],
            points=opts["points"],
            chunk_frames=kw["chunk_frames"],
            memory_mb=kw["memory_mb"],
        )

    def write_traj(h5_path, source):
        # from the finished temporary output: if this fails, an existing -o stays as it was
        from ..jobs.rotate import write_trajectory

        write_trajectory(h5_path, source, traj, force=kw["force"])

    run_job(
        src,
        make_job,
        kw,
        label="rotate",
        before_commit=None if traj is None else write_traj,
        ahead=method,  # (compile_ahead knows which methods it can compile ahead)
    )
    if traj is not None:
        note(f"wrote {os.path.abspath(traj)}")
