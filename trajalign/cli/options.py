"""Options shared by every command that reads trajectories (defined once, as rasterio's
``rio/options.py``)."""

from __future__ import annotations

import functools

import click

from .._names import PBC_MODES
from ..errors import ParameterError

__all__ = [
    "with_each",
    "check_plot_dir",
    "pass_kwargs",
    "plot_options",
    "source_kwargs",
    "with_input",
    "with_method_options",
    "with_output",
    "with_plot",
]

#: -v/-q also after the command (``trajalign rotate ... -q``), as before it
verbosity_options = [
    click.option("-v", "--verbose", count=True, help="More output; tracebacks on errors."),
    click.option("-q", "--quiet", is_flag=True, help="No progress bar or notes on stderr."),
]

input_options = [
    *verbosity_options,
    click.argument("traj", nargs=-1, required=True, type=click.Path(dir_okay=True)),
    click.option("-t", "--top", type=click.Path(), help="Topology file for MDAnalysis inputs."),
    click.option("--key", help="Array name inside an .npz (default: its only array, else 'arr')."),
    click.option(
        "-s",
        "--select",
        default="all",
        show_default=True,
        help="MDAnalysis selection; for arrays an index list such as 0-11,14.",
    ),
    click.option("--masses", type=click.Path(), help="Array inputs: file with one mass per point."),
    click.option(
        "--length-unit",
        default=None,
        help="Array inputs: length unit written to the output [default: Angstrom].",
    ),
    click.option("--dt", type=float, default=None, help="Array inputs: ps between frames [1]."),
    click.option("--start", type=int, default=None, help="First frame (0-based)."),
    click.option("--stop", type=int, default=None, help="Stop before this frame."),
    click.option("--step", type=int, default=None, help="Take every STEP-th frame."),
    click.option(
        "--pbc",
        type=click.Choice(PBC_MODES),
        default="auto",
        show_default=True,
        help="Periodic repair before anything else: whole (molecules made whole), cluster "
        "(whole, and the selection's molecules kept together), nojump (frame 0 as cluster, "
        "then no atom jumps across the boundary), none (as read). auto: whole where the "
        "input has a box and bonds, else none with a warning if the selection looks split.",
    ),
    click.option(
        "--box",
        default=None,
        metavar="A,B,C[,AL,BE,GA]",
        help="Array inputs: periodic box of every frame (2D: A,B) [default: a 'box' "
        "array in the .npz, (6,) or (frames, 6)].",
    ),
    click.option(
        "--bonds",
        default=None,
        metavar="FILE|chain",
        help="Array inputs: bonded point pairs (text file, one 0-based pair per line), or "
        "chain (each point bonded to the next); molecules for --pbc.",
    ),
    click.option(
        "--guess-bonds",
        is_flag=True,
        help="MDAnalysis inputs: guess bonds from distances (a topology without bonds).",
    ),
    click.option(
        "--xtc-reader",
        type=click.Choice(["native", "mdanalysis"]),
        default=None,
        help="XTC inputs: trajalign's own decoder (native: only the atoms needed, on every "
        "core, never a crash) or MDAnalysis' (for comparison) "
        "[default: TRAJALIGN_XTC_READER or native].",
    ),
]

output_options = [
    click.option("-o", "--output", required=True, type=click.Path(), help="HDF5 output file."),
    click.option("--force", is_flag=True, help="Replace an existing output file."),
    click.option(
        "--chunk-frames",
        type=int,
        default=None,
        help="Frames read, processed and written per block [from --memory].",
    ),
    click.option(
        "--memory",
        "memory_mb",
        type=float,
        default=None,
        help="Memory budget per block in MB, used when --chunk-frames is not given [256].",
    ),
    click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout."),
    click.option(
        "--workers",
        type=int,
        default=None,
        help="Process blocks in N worker processes on this machine.",
    ),
    click.option("--scheduler", default=None, help="Address of a running Dask scheduler."),
    click.option(
        "--scheduler-file",
        type=click.Path(),
        default=None,
        help="Dask scheduler file (dask-jobqueue, dask-mpi, dask scheduler --scheduler-file).",
    ),
    click.option(
        "--wait-workers",
        type=float,
        default=120.0,
        show_default=True,
        metavar="SECONDS",
        help="With --scheduler/--scheduler-file: how long to wait for a first worker to join, "
        "and for one to come back if all leave mid-run.",
    ),
    click.option(
        "--threads",
        type=int,
        default=None,
        help="Numba threads for the kernels [default: NUMBA_NUM_THREADS or all cores].",
    ),
    click.option(
        "--hdf5-locking",
        type=click.Choice(["true", "false", "best-effort"]),
        default=None,
        help="HDF5 file locking of the output; 'false' on shared filesystems without locks "
        "[default: HDF5_USE_FILE_LOCKING or true].",
    ),
    click.option(
        "--resume",
        is_flag=True,
        help="Continue an interrupted run of the same command from its finished blocks.",
    ),
]


each_options = [
    click.option(
        "--each",
        is_flag=True,
        help="Every input is its own trajectory: -o names a folder that gets <input stem>.h5 "
        "per input, each equal to a run on that input alone (the topology is parsed once).",
    ),
    click.option(
        "--each-name",
        type=click.Choice(["stem", "parent"]),
        default="stem",
        show_default=True,
        help="With --each: name outputs <stem>.h5, or <parent folder>_<stem>.h5 for inputs "
        "that share a file name (rep1/traj.xtc -> rep1_traj.h5).",
    ),
    click.option(
        "--keep-going",
        is_flag=True,
        help="With --each: an input that fails is reported and the others are written "
        "(exit status 1 at the end, with the failed inputs listed).",
    ),
]


def plot_options(what: str) -> list:
    """--plot DIR and --plot-format; ``what`` names the figures in the help."""
    return [
        click.option(
            "--plot",
            "plot_dir",
            type=click.Path(),
            metavar="DIR",
            default=None,
            help=f"Also draw {what} into this folder (created if missing).",
        ),
        click.option(
            "--plot-format",
            type=click.Choice(["png", "pdf", "svg"]),
            default="png",
            show_default=True,
            help="Format of the --plot figures.",
        ),
    ]


def check_plot_dir(path: str | None) -> None:
    """Refuse a --plot that names an existing file, before any work."""
    import os

    if path is not None and os.path.exists(path) and not os.path.isdir(path):
        raise ParameterError(f"--plot {path} is a file", "give a folder for the figures")


#: parameters of the registry methods (trajalign.diagnostics), for check and diagnose
method_options = [
    click.option(
        "--point", type=int, default=0, show_default=True, help="center-point: the point."
    ),
    click.option("--points", default=None, metavar="I,J[,K]", help="point: [default 0,1 / 0,1,2]."),
    click.option(
        "--sign",
        type=click.Choice(["continuity", "skew", "none"]),
        default="continuity",
        show_default=True,
        help="principal: sign rule (none: as the eigen solver returns them, with its raw "
        "sign flips; not rotation invariant, so check reports it BROKEN).",
    ),
]


def _apply(options, f):
    for opt in reversed(options):
        f = opt(f)
    return f


def with_input(f):
    """Add the input options (TRAJ..., -t, --key, -s, --start/--stop/--step, ...)."""
    return _apply(input_options, f)


def with_output(f):
    """Add the output options (-o, --force, --chunk-frames, --memory, --json)."""
    return _apply(output_options, f)


def with_each(f):
    """Add --each, --each-name and --keep-going (center, rotate, internal)."""
    return _apply(each_options, f)


def with_plot(what: str = "the alignment-jump and overlay figures"):
    """Add --plot DIR and --plot-format (a decorator factory: ``@with_plot()``)."""
    return lambda f: _apply(plot_options(what), f)


def with_method_options(f):
    """Add --point, --points and --sign (check, diagnose)."""
    return _apply(method_options, f)


def source_kwargs(kw: dict) -> dict:
    """Pop the input options from a command's keyword arguments, for ``open_source``."""
    return {
        "paths": kw.pop("traj"),
        "top": kw.pop("top"),
        "key": kw.pop("key"),
        "select": kw.pop("select"),
        "masses": kw.pop("masses"),
        "length_unit": kw.pop("length_unit"),
        "dt": kw.pop("dt"),
        "start": kw.pop("start"),
        "stop": kw.pop("stop"),
        "step": kw.pop("step"),
        "pbc": kw.pop("pbc"),
        "box": kw.pop("box"),
        "bonds": kw.pop("bonds"),
        "guess_bonds": kw.pop("guess_bonds"),
        "xtc_reader": kw.pop("xtc_reader"),
    }


def pass_kwargs(f):
    """Call ``f(kw)`` with the command's options as one dict, after applying the -v/-q
    given after the command (added to those given before it)."""

    @functools.wraps(f)
    def wrapper(**kw):
        from . import set_verbosity

        set_verbosity(kw.pop("verbose", 0), kw.pop("quiet", False))
        return f(kw)

    return wrapper
