"""The ``trajalign`` command line: a Click group of thin commands.

Only this package imports click. Library errors (:class:`~trajalign.errors.TrajalignError`)
become one ``Error:`` line and exit status 1 here; ``-v`` adds the traceback.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback

import click

from .. import _signals
from .._version import __version__
from ..errors import KeepsPartial, TrajalignError

_STATE = {"verbose": 0, "quiet": False, "silenced": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="trajalign")
@click.option("-v", "--verbose", count=True, help="More output; tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or notes on stderr.")
def cli(verbose: int, quiet: bool) -> None:
    """Alignment-invariant data from molecular-dynamics trajectories.

    Inputs are .npy/.npz arrays shaped (frames, points, 2 or 3) or any trajectory
    MDAnalysis reads (with -t/--top). Outputs are HDF5 files in the H5MD layout.
    """
    _STATE["verbose"] = verbose
    _STATE["quiet"] = quiet
    _STATE["silenced"] = False
    set_verbosity()


def set_verbosity(verbose: int = 0, quiet: bool = False) -> None:
    """Add the -v/-q of a command (given after it) to those given before it, and silence
    third-party warnings unless verbose.

    Parameters
    ----------
    verbose : int
        Number of ``-v`` flags given after the command.
    quiet : bool
        ``-q`` was given after the command.
    """
    _STATE["verbose"] += verbose
    _STATE["quiet"] = _STATE["quiet"] or quiet
    from .._warnings import restore, silence

    # third-party notices (MDAnalysis' "no dt information", its DCD reader's
    # DeprecationWarning, ...) would add lines around our one-line messages; -v shows them
    if not _STATE["verbose"] and not _STATE.get("silenced"):
        _STATE["silenced"] = True
        silence()
    elif _STATE["verbose"] and _STATE.get("silenced"):  # -v after the command
        _STATE["silenced"] = False
        restore()


def is_quiet() -> bool:
    """``-q`` was given (before or after the command)."""
    return bool(_STATE["quiet"])


def note(message: str) -> None:
    """A line on stderr, unless --quiet."""
    if not _STATE["quiet"]:
        click.echo(message, err=True)


class _DelayedBar:
    """A click progress bar that appears only once a run has taken ``delay`` seconds, so
    quick runs print nothing but their summary line."""

    def __init__(self, total: int, label: str, delay: float = 1.0) -> None:
        self.total, self.label, self.delay = total, label, delay
        self.t0 = time.perf_counter()
        self.done = 0
        self.bar = None

    def __enter__(self):
        return self

    def update(self, n: int) -> None:
        self.done += n
        elapsed = time.perf_counter() - self.t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.bar is None and elapsed > self.delay:
            # frames done/total, percentage, frames per second and the time left (from
            # the rate since the start, not since the bar appeared)
            self.bar = click.progressbar(
                length=self.total,
                label=self.label,
                file=sys.stderr,
                show_pos=True,
                show_eta=False,
                item_show_func=self._rate_and_eta,
            )
            self.bar.__enter__()
            self.bar.update(self.done, current_item=rate)
        elif self.bar is not None:
            self.bar.update(n, current_item=rate)

    def _rate_and_eta(self, rate: float | None) -> str | None:
        if not rate:
            return None
        left = int(round(max(self.total - self.done, 0) / rate))
        return f"{rate:,.0f} frames/s, {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d} left"

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def progress_bar(total: int, label: str):
    """A progress bar on stderr when it is a terminal and not --quiet; else None."""
    if _STATE["quiet"] or not sys.stderr.isatty():
        return None
    return _DelayedBar(total, label)


def set_threads(n: int) -> None:
    """Use ``n`` Numba threads (at most NUMBA_NUM_THREADS, the pool's size)."""
    import numba

    from ..errors import ParameterError

    if n < 1:
        raise ParameterError(f"--threads {n} is not positive", "use 1 or more threads")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def keep_freed_memory() -> None:
    """Make glibc reuse the freed buffers of one block for the next (Linux only).

    Every block allocates its input and output arrays (tens of MB). Above glibc's mmap
    threshold (at most 32 MB by default) each is a fresh mmap, returned to the kernel when
    freed, so every block pays first-touch page faults again; on a VM whose freed pages go
    back to the host that cost 1.1 s of a 6 s rotate of a 20000-frame XTC. Serving them
    from the heap and not trimming it keeps the memory of the previous block (the --memory
    budget still bounds it). A command-line process only: the library leaves malloc alone.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: blocks up to 1 GiB from the heap
        mallopt(-1, (1 << 31) - 1)  # M_TRIM_THRESHOLD: keep up to 2 GiB of freed heap
    except (OSError, AttributeError):
        pass  # not glibc (musl): nothing to tune


def make_run_executor(out_kw: dict):
    """The executor of a run (serial, --workers, --scheduler), started."""
    from ..executors import make_executor

    executor = make_executor(
        workers=out_kw["workers"],
        scheduler=out_kw["scheduler"],
        scheduler_file=out_kw["scheduler_file"],
        wait_workers=out_kw["wait_workers"],
        quiet=not _STATE["verbose"],
    )
    executor.start()
    return executor


def pipeline_kwargs(out_kw: dict) -> dict:
    """The :func:`trajalign.pipeline.run` keywords that the output options set."""
    return {
        "chunk_frames": out_kw["chunk_frames"],
        "memory_mb": out_kw["memory_mb"],
        "argv": sys.argv,
        "hdf5_locking": {"true": True, "false": False}.get(
            out_kw["hdf5_locking"], out_kw["hdf5_locking"]
        ),
    }


def _warm_ahead(method: str) -> None:
    """Tiny float32 3D frames through what ``method`` compiles ahead: a fit (``kabsch``
    or ``principal``) and the jump diagnostics, the kernels with their signatures of a
    ``rotate`` run on a trajectory; or ``mindist`` (and contacts), those of an
    ``internal`` run's residue distances."""
    import numpy as np

    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    if method == "mindist":
        from ..box import kernel_box_table
        from ..features.mindist import MindistPlan, contacts

        # two groups of two atoms, one pair: the kernel's dense and one-by-one paths
        # are one compilation; the table has the no-box row's shape and dtype
        plan = MindistPlan(
            offsets=np.array([0, 2, 4], dtype=np.int64),
            members=np.arange(4, dtype=np.int64),
            pairs=np.array([[0, 1]], dtype=np.int64),
            periodic=np.zeros(1, dtype=np.uint8),
            n_points=5,
        )
        dist, _ = plan.compute(x, kernel_box_table(np.zeros((3, 3)), 0))
        contacts(dist)
        return
    from ..align import principal_block, superpose_block
    from ..diagnostics import consecutive_rmsd

    w = np.full(4, 0.25)
    if method == "kabsch":
        ref = x[0, :4].astype(np.float64)
        out = superpose_block(x, x[:, :4].copy(), w, ref - ref.mean(0))[0]
    else:
        out = principal_block(
            x, x, np.full(5, 0.2), -1, np.full(5, 0.2), "skew", None, np.arange(2)
        )[0]
    consecutive_rmsd(out)


def _ahead_probe(method: str):
    """The kernel whose cache entry says whether what ``method`` compiles ahead (see
    :func:`_warm_ahead`) is compiled."""
    if method == "kabsch":
        from ..kernels import kabsch

        return kabsch._superpose3
    if method == "mindist":
        from ..kernels import mindist

        return mindist._mindist_run
    from ..kernels import principal

    return principal._PRINCIPAL_RUN[3]


def compile_ahead(method: str | None, source_kw: dict, out_kw: dict) -> None:
    """Compile the fit kernels of a serial run on a trajectory in a forked child while
    the run opens its input and compiles the rest (:mod:`trajalign._ahead`); only where
    the kernels are not in Numba's cache. ``method``: the run's fit; only "kabsch" and
    "principal" (``rotate``) and "mindist" (``internal``'s residue distances and
    contacts) have kernels compiled ahead, any other (or None) starts nothing."""
    if method not in ("kabsch", "principal", "mindist"):
        return
    if out_kw["workers"] or out_kw["scheduler"] or out_kw["scheduler_file"]:
        return
    paths = source_kw["paths"]
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    paths = [str(p).lower() for p in paths]
    # Only where the run compiles kernels of its own meanwhile: trajalign's XTC decoder,
    # or a periodic treatment that runs on every frame of a boxed trajectory (--pbc none
    # checks each frame for split molecules; cluster and nojump repair each). Where the
    # run has nothing of its own to compile, the child only moves the fit's compilation
    # and costs its start: the butane DCD's default rotate, 4.1-4.4 s cold without it,
    # 5.1 s with it. Not for arrays: they may be 2D or float64, other signatures than a
    # trajectory's float32 frames.
    from ..errors import ParameterError
    from ..io.sources import xtc_reader_choice

    try:
        native = xtc_reader_choice(source_kw.get("xtc_reader")) == "native"
    except ParameterError:  # (the source's opening reports it)
        return
    decoder = native and all(p.endswith(".xtc") for p in paths)
    arrays = any(p.endswith((".npz", ".npy")) for p in paths)
    pbc = source_kw.get("pbc")
    if not (decoder or (pbc in ("none", "cluster", "nojump") and not arrays)):
        return
    from .. import _ahead

    if not _ahead.allowed():  # (before importing Numba for the probe)
        return
    # ... and only while those kernels of its own are not in the cache either (in make
    # demo, `info --pbc cluster` has compiled the repair before `rotate --pbc cluster`)
    if not _ahead.cold(_own_probe("xtc" if decoder else pbc)):
        return
    _ahead.start(lambda: _warm_ahead(method), _ahead_probe(method))


def _own_probe(kind: str):
    """The kernel whose cache entry says whether a run's own kernels (the XTC decoder,
    or the periodic treatment ``kind`` of every frame) are compiled."""
    if kind == "xtc":
        from ..kernels import xtc

        return xtc._decode_run
    from ..kernels import pbc

    kernels = {"none": pbc._split_suspect_run, "cluster": pbc._cluster_run}
    return kernels[kind] if kind in kernels else pbc.nojump_kernel


def run_job(
    source_kw: dict, job_factory, out_kw: dict, label: str, before_commit=None, ahead=None
) -> None:
    """Open the source, run the job through the pipeline and report the summary.

    ``before_commit(path, source)`` runs on the finished temporary output before it is
    renamed into place (see :func:`trajalign.pipeline.run`). With ``--each`` every input
    is its own run (:mod:`trajalign.cli.each`). ``ahead``: the kernels to compile in a
    child meanwhile, see :func:`compile_ahead`."""
    from ..errors import ParameterError
    from ..io import open_source
    from ..pipeline import run
    from .options import check_plot_dir

    each, naming, keep_going = (out_kw.pop(k, None) for k in ("each", "each_name", "keep_going"))
    if not each and (keep_going or naming not in (None, "stem")):
        flag = "--keep-going" if keep_going else "--each-name"
        raise ParameterError(f"{flag} goes with --each", f"add --each, or drop {flag}")
    check_plot_dir(out_kw.get("plot_dir"))
    keep_freed_memory()
    if out_kw["threads"] is not None:
        set_threads(out_kw["threads"])
    if each:
        from .each import run_each_command

        return run_each_command(source_kw, job_factory, out_kw, label, naming, keep_going)
    if not out_kw["workers"]:
        compile_ahead(ahead, source_kw, out_kw)  # (forks: before the hashes' thread)
        start_input_hashes(source_kw)
    executor = make_run_executor(out_kw)
    # The imports and the topology parse under open_source build a few hundred thousand
    # objects, none of them garbage; the collector's passes over them were 0.18 s of the
    # 1 s start-up of a TPR run. It runs again once the source is open.
    gc_on = gc.isenabled()
    gc.disable()
    try:
        with open_source(**source_kw) as source:
            if gc_on:
                gc.enable()
            executor.attach(source, source_kw)  # --workers: forked from here, now
            job = job_factory(source)
            bar = progress_bar(source.n_frames, label)
            try:
                if bar is not None:
                    bar.__enter__()
                summary = run(
                    source,
                    job,
                    output=out_kw["output"],
                    force=out_kw["force"],
                    progress=bar.update if bar is not None else None,
                    executor=executor,
                    resume=out_kw["resume"],
                    before_commit=None
                    if before_commit is None
                    else (lambda path: before_commit(path, source)),
                    **pipeline_kwargs(out_kw),
                )
            finally:
                if bar is not None:
                    bar.__exit__(None, None, None)
    finally:
        if gc_on:
            gc.enable()
        executor.close()  # also when the input could not be opened
    if out_kw.get("plot_dir"):
        summary["figures"] = rotate_figures(summary["output"], out_kw["plot_dir"], out_kw)
    report(summary, out_kw["as_json"])


def start_input_hashes(source_kw: dict) -> None:
    """Start the provenance's SHA-256 of the inputs before the imports and the topology
    parse (single-threaded seconds, during which the hash has a core to itself).

    Not with ``--workers``: they are forked from a driver without threads (see
    :mod:`trajalign.pool`), so there the hash starts with the run, as it always did."""
    from .._hashes import start_hashes

    paths = source_kw["paths"]
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    start_hashes([*paths, *([source_kw["top"]] if source_kw["top"] else [])])


def rotate_figures(output: str, plot_dir: str, out_kw: dict) -> list[str]:
    """Write rotate's figures of ``output`` into ``plot_dir``; their absolute paths."""
    from ..diagnostics import read_rotate_jumps
    from ..plots import write_rotate_plots

    jumps = read_rotate_jumps(output)
    figures = write_rotate_plots(jumps, plot_dir, fmt=out_kw["plot_format"])
    return [os.path.abspath(p) for p in figures]


def report(summary: dict, as_json: bool) -> None:
    for w in summary.get("warnings", []):
        note(f"Warning: {w}")
    if as_json:
        click.echo(json.dumps(summary))
    else:
        note(
            f"wrote {summary['output']}: {summary['frames']} frames x {summary['atoms']} "
            f"points ({summary['dim']}D), {summary['method']}, {summary['seconds']:.2f} s"
        )
        line = repair_line(summary.get("pbc"), summary["frames"])
        if line:
            note(line)
        for path in summary.get("figures", []):
            note(f"wrote {path}")


def repair_line(pbc: dict | None, frames: int) -> str | None:
    """One line on what the periodic repair did, or None where it did nothing."""
    if not pbc or pbc.get("mode", "none") == "none":
        return None
    parts = []
    if pbc.get("split_frames"):
        parts.append(
            f"molecules split across the boundary made whole in {pbc['split_frames']} of "
            f"{frames} frames ({pbc['split_molecules']} in all)"
        )
    elif "split_frames" in pbc:
        parts.append("no molecule was split across the boundary")
    if "regrouped_frames" in pbc:
        parts.append(f"molecules regrouped into one image in {pbc['regrouped_frames']} frames")
    if "crossings" in pbc:
        parts.append(f"{pbc['crossings']} atom jumps across the boundary undone")
    return f"periodic repair ({pbc['mode']}): " + ("; ".join(parts) or "nothing to repair")


def _exit_after_signal(code: int, hard: bool) -> None:
    # A KeyboardInterrupt that passed through C code (h5py, numba) can leave CPython's
    # "unhandled Ctrl-C" flag set, and the interpreter then kills itself with SIGINT at
    # exit instead of returning our status. Cleanup has run by now (the temporary output
    # is gone), so the console script leaves with os._exit after flushing.
    if hard:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: list[str] | None = None, hard_exit: bool = True) -> None:
    """Entry point of the ``trajalign`` console script.

    ``hard_exit=False`` (for in-process callers such as tests) exits through SystemExit
    (returns on success) also after Ctrl-C/SIGTERM.
    """
    # trajalign's numerics are Numba kernels; NumPy's BLAS is used for small matrices
    # only, and its idle threads spun beside the kernels (0.2 s of CPU of a 2 s run on
    # 2 cores). One thread unless the user asks for more; no effect once numpy is loaded.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        _main(argv, hard_exit)
        code = 0
    except SystemExit as exc:
        if not hard_exit:
            raise
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    if hard_exit:
        # Every output is closed and in place by now. Tearing the interpreter down
        # (Numba's compiled code, MDAnalysis' objects, the modules) took 0.4-0.5 s of
        # every run and does nothing a finished command needs: flush and leave.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _main(argv: list[str] | None, hard_exit: bool) -> None:
    _signals.install()
    try:
        cli.main(args=argv, prog_name="trajalign", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort, _signals.Terminated) as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, _signals.Terminated) else "interrupted"
        stop = exc if isinstance(exc, KeepsPartial) else exc.__context__
        if isinstance(stop, KeepsPartial) and stop.partial is not None:
            click.echo(
                f"Error: {what}; {stop.blocks_done} of {stop.blocks_total} blocks are kept in "
                f"{stop.partial} (rerun the same command with --resume to finish)",
                err=True,
            )
        else:
            click.echo(f"Error: {what}; no output was written", err=True)
        _exit_after_signal(143 if isinstance(exc, _signals.Terminated) else 130, hard_exit)
    except TrajalignError as exc:
        if _STATE["verbose"]:
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        if _STATE["verbose"]:
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(
            f"Error: unexpected {type(exc).__name__}: {first} "
            "(rerun with -v for the traceback, and please report it)",
            err=True,
        )
        sys.exit(1)


from . import center as _center  # noqa: E402,F401  (registers the command)
from . import check as _check  # noqa: E402,F401
from . import diagnose as _diagnose  # noqa: E402,F401
from . import info as _info  # noqa: E402,F401
from . import internal as _internal  # noqa: E402,F401
from . import rotate as _rotate  # noqa: E402,F401
from . import warmup as _warmup  # noqa: E402,F401

__all__ = [
    "cli",
    "is_quiet",
    "keep_freed_memory",
    "main",
    "note",
    "progress_bar",
    "repair_line",
    "report",
    "make_run_executor",
    "pipeline_kwargs",
    "rotate_figures",
    "run_job",
    "set_threads",
    "set_verbosity",
]
