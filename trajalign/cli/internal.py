"""``trajalign internal``: distances, angles, dihedrals and their featurisations."""

from __future__ import annotations

import click

from . import cli, run_job
from .options import pass_kwargs, source_kwargs, with_each, with_input, with_output

__all__ = [
    "internal",
]


@cli.command()
@with_input
@with_output
@with_each
@click.option(
    "--pairs",
    "pairs",
    multiple=True,
    metavar="bonds|chain|all|FILE",
    help="Which tuples. bonds: the topology's bonds, angles and dihedrals (derived from "
    "the bonds where it has none); chain: consecutive points i,i+1[,i+2[,i+3]]; all: every "
    "pair; FILE: text file of 2, 3 or 4 point indices per line (counted from 0 in the "
    "selection; the width picks the feature; repeat --pairs for several files). "
    "[default: bonds for MDAnalysis inputs, chain for arrays]",
)
@click.option(
    "--features",
    default=None,
    metavar="LIST",
    help="Comma list of distances, angles, dihedrals, eigvals (sorted eigenvalues of the "
    "inverse-distance matrix of the selection, invariant under renumbering), and protein "
    "features (MDAnalysis inputs, by atom names): phi, psi, omega, chi1..chi5 (never across "
    "a chain break), mindist (residue minimum distances, see --scheme), contacts "
    "(mindist <= --contact-cutoff). [default: what --pairs defines]",
)
@click.option(
    "--scheme",
    default="closest-heavy",
    show_default=True,
    metavar="ca|closest|closest-heavy|sidechain|sidechain-heavy",
    help="mindist/contacts: which atoms of a residue count (MDTraj compute_contacts).",
)
@click.option(
    "--residue-pairs",
    default="all",
    show_default=True,
    metavar="all|FILE",
    help="mindist/contacts: all (residues >= 3 apart in a chain, plus every inter-chain "
    "pair) or a text file of two 0-based topology residue indices per line.",
)
@click.option(
    "--contact-cutoff",
    type=float,
    default=4.5,
    show_default=True,
    help="contacts: cutoff (step) or centre (logistic), in the length unit.",
)
@click.option(
    "--contact-transform",
    type=click.Choice(["step", "logistic"]),
    default="step",
    show_default=True,
    help="contacts: step (uint8, mindist <= cutoff) or logistic "
    "(1 / (1 + exp(k (mindist - cutoff))), float32).",
)
@click.option(
    "--contact-steepness",
    type=float,
    default=2.0,
    show_default=True,
    help="contacts: k of the logistic, in 1/length unit.",
)
@click.option(
    "--transform",
    "transforms",
    default="none",
    show_default=True,
    metavar="LIST",
    help="Comma list of featurisations of the distances, each its own dataset: inverse "
    "(1/r), rbf (exp(-gamma (r - mu_k)^2)), bins (one-hot over the same centres), repeat "
    "(r repeated --rbf-n times), or none.",
)
@click.option("--rbf-min", type=float, default=0.0, show_default=True, help="First centre.")
@click.option("--rbf-max", type=float, default=10.0, show_default=True, help="Last centre.")
@click.option(
    "--rbf-n",
    type=int,
    default=20,
    show_default=True,
    help="Number of centres (bins, repeats), at least 2.",
)
@click.option(
    "--rbf-gamma",
    type=float,
    default=None,
    help="Gaussian width parameter in 1/length^2 [default: 1/spacing^2].",
)
@click.option(
    "--dihedral-encoding",
    type=click.Choice(["angle", "sincos"]),
    default="angle",
    show_default=True,
    help="sincos also writes dihedrals_sincos (and phi_sincos, ... for torsions): (sin, "
    "cos) pairs, continuous across +-pi.",
)
@click.option(
    "--no-pbc",
    "no_pbc",
    is_flag=True,
    hidden=True,
    help="Same as --pbc none (kept for scripts written before --pbc took a mode).",
)
@click.option(
    "--undefined",
    type=click.Choice(["error", "nan"]),
    default="error",
    show_default=True,
    help="Angles/dihedrals with coincident or collinear points (and 1/r of a zero "
    "distance): stop with an error naming frame and tuple, or write NaN and count them.",
)
@pass_kwargs
def internal(kw: dict) -> None:
    """Internal coordinates: distances, angles and dihedrals of every frame.

    Writes /trajalign/features/<name>/value (frames, tuples[, k]) and
    /trajalign/features/<name>/indices (tuples, 2|3|4) in selection numbering; no
    coordinates. Lengths are in the input's unit, angles in radians: angles in [0, pi],
    dihedrals in (-pi, pi] with the IUPAC sign (as MDAnalysis and MDTraj).

    Every feature also gets /trajalign/features/<name>/labels, one per column
    (labels_last for the last axis of rbf, bins, repeat and sincos).

    \b
    Examples:
      trajalign internal sample_data/butane.dcd -t sample_data/butane.pdb -o bonded.h5
      trajalign internal adk.xtc -t adk.tpr -s protein --features phi,psi,mindist -o f.h5
      trajalign internal sample_data/chain2d.npz --pairs all --transform rbf -o d.h5
    """
    src = source_kwargs(kw)
    if kw.pop("no_pbc"):
        src["pbc"] = "none"
    params = {
        "pairs": list(kw.pop("pairs")) or None,
        "features": kw.pop("features"),
        "transforms": kw.pop("transforms"),
        "rbf_min": kw.pop("rbf_min"),
        "rbf_max": kw.pop("rbf_max"),
        "rbf_n": kw.pop("rbf_n"),
        "rbf_gamma": kw.pop("rbf_gamma"),
        "dihedral_encoding": kw.pop("dihedral_encoding"),
        "undefined": "raise" if kw.pop("undefined") == "error" else "nan",
        "scheme": kw.pop("scheme"),
        "residue_pairs": kw.pop("residue_pairs"),
        "contact_cutoff": kw.pop("contact_cutoff"),
        "contact_transform": kw.pop("contact_transform"),
        "contact_steepness": kw.pop("contact_steepness"),
    }
    from ..jobs.internal import InternalJob

    # parameter errors surface before the (slow) input is opened
    asked = InternalJob(**params).features_asked

    def make_job(source):
        return InternalJob(**params)

    # contacts are measured by the mindist kernel too (compile_ahead decides whether)
    ahead = "mindist" if {"mindist", "contacts"} & set(asked) else None
    run_job(src, make_job, kw, label="internal", ahead=ahead)
