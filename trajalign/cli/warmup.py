"""``trajalign compile``: compile every kernel into Numba's cache, once per machine type.

Each command compiles the kernels of its code path on its first run with an empty cache
(``NUMBA_CACHE_DIR``), seconds to tens of seconds. This command runs every code path of
the command line once on tiny generated inputs, so that later runs load every kernel from
the cache: for cluster admins who fill a shared ``NUMBA_CACHE_DIR`` per node type, and
for container images. The runs go through the real commands, so the cached signatures
are exactly the ones a run asks for.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time

import click

from . import _STATE, cli, note, set_verbosity

__all__ = ["compile_command", "entry_kernels", "warmup_runs"]

# a tiny peptide: three alanines (N, CA, C, O, CB), enough atoms for phi/psi/omega/chi1
# (none for ALA: the table is resolved anyway) and for mindist/contacts between residues
_RESIDUES = 4
_ATOMS = ("N", "CA", "C", "O", "CB")


def _write_inputs(folder: str) -> dict[str, str]:
    """Tiny inputs for every code path; returns their paths by role."""
    import numpy as np
    from MDAnalysis.lib.mdamath import triclinic_vectors

    rng = np.random.default_rng(0)
    paths = {}
    # two 4-point chains across the origin, wrapped into a box: split molecules, so that
    # the repair's whole and cluster kernels run (a triclinic box for the lattice minimum
    # image and the box table kernel, an orthorhombic one for the per-axis images)
    x = rng.normal(size=(6, 8, 3)) * 0.3 + np.arange(8)[:, None] * 1.5 - 6.0
    paths["bonds"] = os.path.join(folder, "bonds.txt")
    with open(paths["bonds"], "w") as f:
        f.write("0 1\n1 2\n2 3\n4 5\n5 6\n6 7\n")
    for name, box in (
        ("a3", [20.0, 22.0, 24.0, 70.0, 80.0, 75.0]),
        ("o3", [20.0, 22.0, 24.0, 90.0, 90.0, 90.0]),
    ):
        h = triclinic_vectors(np.array(box, dtype=np.float32)).astype(np.float64)
        frac = x @ np.linalg.inv(h)
        paths[name] = os.path.join(folder, f"{name}.npz")
        np.savez(paths[name], arr=((frac - np.floor(frac)) @ h).astype(np.float32), box=box)
    paths["a2"] = os.path.join(folder, "a2.npz")
    np.savez(paths["a2"], arr=x[:, :, :2].astype(np.float32))
    # a peptide PDB and an XTC of it (MDAnalysis-read topology, the native XTC decoder)
    import warnings

    import MDAnalysis as mda

    n = _RESIDUES * len(_ATOMS)
    u = mda.Universe.empty(
        n, n_residues=_RESIDUES, atom_resindex=np.repeat(np.arange(_RESIDUES), len(_ATOMS)),
        trajectory=True,
    )  # fmt: skip
    u.add_TopologyAttr("name", list(_ATOMS) * _RESIDUES)
    u.add_TopologyAttr("type", [a[0] for a in _ATOMS] * _RESIDUES)
    u.add_TopologyAttr("resname", ["ALA"] * _RESIDUES)
    u.add_TopologyAttr("resid", np.arange(1, _RESIDUES + 1))
    u.add_TopologyAttr("segid", ["A"])
    u.add_TopologyAttr("chainID", ["A"] * n)
    base = np.cumsum(rng.normal(size=(n, 3)) * 0.8 + [1.2, 0.3, 0.1], axis=0)
    u.atoms.positions = base
    u.dimensions = [40.0, 40.0, 40.0, 90.0, 90.0, 90.0]
    paths["pdb"] = os.path.join(folder, "p.pdb")
    paths["xtc"] = os.path.join(folder, "p.xtc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MDAnalysis' notes on missing attributes
        u.atoms.write(paths["pdb"])
        with mda.Writer(paths["xtc"], n_atoms=n) as w:
            for _ in range(4):
                u.atoms.positions = base + rng.normal(size=(n, 3)) * 0.1
                w.write(u.atoms)
    return paths


def warmup_runs(paths: dict[str, str], out: str) -> list[list[list[str]]]:
    """The command lines (without ``trajalign``) that together take every code path, in
    groups: the runs of a group share kernels and run in order in one process, and the
    groups are dealt out in turn to ``--jobs`` processes. The order keeps two processes
    from compiling the same kernels at once: the first group compiles the periodic
    repair's kernels (which every run on a boxed input needs) while the second compiles
    those of 2D inputs, which have no box; later groups find the repair in the cache, and
    the XTC decoder, which the protein runs need, is the fits' first."""
    a3, a2, o3 = paths["a3"], paths["a2"], paths["o3"]
    top = ["-t", paths["pdb"]]
    xtc = paths["xtc"]
    o = ["-o", out, "--force"]
    chain = ["--bonds", paths["bonds"]]
    repair_and_distances = [
        ["info", a3, *chain],
        ["center", a3, *o],
        ["center", a3, *chain, "--method", "geometric", *o],
        ["center", a3, *chain, "--pbc", "cluster", *o],
        ["center", o3, *chain, "--pbc", "cluster", *o],
        ["center", a3, *chain, "--pbc", "nojump", *o],
        ["internal", a3, "--pairs", "all", "--features", "distances,eigvals", *o],
        ["internal", a2, "--pairs", "all", *o],
        ["internal", o3, *chain, "--pairs", "all", *o],
        ["internal", a3, *chain, "--pairs", "chain", "--features", "distances,angles,dihedrals",
         "--transform", "inverse,rbf,bins,repeat", "--dihedral-encoding", "sincos",
         "--undefined", "nan", *o],
        ["internal", a3, "--pairs", "chain", "--features", "distances,angles,dihedrals", *o],
    ]  # fmt: skip
    plane = [
        ["center", a2, "--method", "point", "--point", "1", *o],
        ["rotate", a2, "--reference", "average", *o],
        ["rotate", a2, "--method", "principal", *o],
        ["rotate", a2, "--method", "point", "--points", "0,1", *o],
        ["diagnose", a2, "--perturb-axis", "y", *o],
    ]
    protein = [
        ["internal", xtc, *top, "--features", "phi,psi,omega,chi1,mindist,contacts", *o],
        ["internal", xtc, *top, "--features", "contacts", "--contact-transform", "logistic", *o],
    ]  # fmt: skip
    for scheme in ("ca", "closest", "closest-heavy", "sidechain", "sidechain-heavy"):
        protein.append(["internal", xtc, *top, "--features", "mindist", "--scheme", scheme, *o])
    fits = [
        ["rotate", xtc, *top, *o],
        ["rotate", a3, *chain, *o],
        ["rotate", a3, "--reference", "average", "--pbc", "none", *o],
        ["rotate", a3, "--method", "principal", *o],
        ["rotate", a3, "--method", "principal", "--sign", "skew", "--center", "point", *o],
        ["rotate", a3, "--method", "point", "--points", "0,1,2", *o],
        ["diagnose", a3, *chain, "--pbc", "cluster", "--methods", "kabsch", *o],
        # every method, so last: the other groups' kernels are in the cache by then
        ["check", a3, "--frames", "2"],
        ["check", a2, "--frames", "2"],
    ]
    return [repair_and_distances, plane, protein, fits]


def _kernel_modules():
    """The modules of trajalign.kernels, imported (which compiles nothing)."""
    import importlib
    import pkgutil

    from .. import kernels

    return [
        importlib.import_module(f"{kernels.__name__}.{m.name}")
        for m in pkgutil.iter_modules(kernels.__path__)
    ]


def _dispatchers() -> dict[str, object]:
    """Every Numba dispatcher of trajalign.kernels, by qualified name: the module's own,
    and those its kernel factories made and keep in module-level dicts (by dimension)."""
    from numba.core.dispatcher import Dispatcher

    found = {}
    for mod in _kernel_modules():
        short = mod.__name__.rsplit(".", 1)[1]
        for name, obj in vars(mod).items():
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == mod.__name__:
                found[f"{short}.{name}"] = obj
            elif isinstance(obj, dict):
                for key, val in obj.items():
                    if isinstance(val, Dispatcher) and val.py_func.__module__ == mod.__name__:
                        found[f"{short}.{name}[{key}]"] = val
    return found


def entry_kernels(dispatchers: dict[str, object]) -> list[str]:
    """The kernels no other kernel calls: Python calls them, and compiling them compiles
    the kernels they call (whose code they carry in the cache)."""
    called = set()
    for disp in dispatchers.values():
        names = disp.py_func.__code__.co_names
        glb = disp.py_func.__globals__
        called.update(id(glb[n]) for n in names if n in glb)
    return sorted(k for k, d in dispatchers.items() if id(d) not in called)


def _api_runs() -> None:
    """Kernels only the Python API reaches (float64 input, as a library user passes),
    and kernels that only some data reach."""
    import numpy as np

    from .. import minimum_image
    from ..kernels.principal import negate_columns

    minimum_image(np.ones((2, 3)), [20.0, 22.0, 24.0, 70.0, 80.0, 75.0])
    # principal axes flip columns only where a thread's run of frames started with other
    # signs than continuity gives; the tiny inputs above run in one thread
    for dtype in (np.float32, np.float64):
        negate_columns(np.ones((2, 3, 3), dtype), -np.ones((2, 3)))


def _counts() -> dict[str, tuple[int, int]]:
    """(compiled, loaded) signatures of every dispatcher so far in this process."""
    return {
        k: (sum(d.stats.cache_misses.values()), sum(d.stats.cache_hits.values()))
        for k, d in _dispatchers().items()
    }


def _one_run(args: list[str] | None) -> tuple[str | None, int, int, list[str]]:
    """Run one code path (``None``: the Python API's) in this process; returns its
    failure (or None), the signatures it compiled and loaded, and the kernels this
    process has reached so far (with the runs before it in the same process).

    A module-level function of picklable arguments, so that ``--jobs`` can run it in a
    pool of fresh processes; each process keeps what it compiled for its next runs."""
    before = _counts()
    failure = None
    state = dict(_STATE)
    try:
        if args is None:
            _api_runs()
        else:
            # the commands' own parsing and code paths; -q keeps their notes off, and
            # stdout takes info's and check's tables
            with contextlib.redirect_stdout(io.StringIO()):
                cli.main(args=["-q", *args], prog_name="trajalign", standalone_mode=False)
    except Exception as exc:  # a failed path is reported, the others still run
        failure = f"trajalign {' '.join(args)}: {exc}" if args else f"minimum_image: {exc}"
    finally:
        _STATE.update(state)  # each run's -q is its own
    after = _counts()
    compiled = loaded = 0
    reached = []
    for k, (c, h) in after.items():
        c0, h0 = before.get(k, (0, 0))
        compiled, loaded = compiled + c - c0, loaded + h - h0
        if c + h:
            reached.append(k)
    return failure, compiled, loaded, reached


def _run_lane(runs: list[list[str] | None]) -> list[tuple[str | None, int, int, list[str]]]:
    """The runs of one process, in order (``_one_run`` of each)."""
    return [_one_run(args) for args in runs]


def _run_all(groups: list[list[list[str] | None]], jobs: int):
    """Every run of every group: in this process (``jobs`` 1), or group i in process
    i % jobs of a pool of new processes (Numba writes each cache file whole and renames
    it into place, so two processes compiling the same kernel leave a valid cache)."""
    jobs = min(jobs, len(groups))
    lanes = [[args for g in groups[i::jobs] for args in g] for i in range(jobs)]
    if jobs <= 1:
        return [r for lane in lanes for r in _run_lane(lane)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: fresh interpreters (a fork would copy this one's Numba and thread state)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        return [r for done in pool.map(_run_lane, lanes) for r in done]


def _default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@cli.command("compile")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Processes that compile side by side [default: the cores this process may use].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@click.option("-v", "--verbose", count=True, help="More output; every failed code path.")
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr.")
def compile_command(jobs: int | None, as_json: bool, verbose: int, quiet: bool) -> None:
    """Compile every kernel into Numba's cache, so that no later run compiles.

    A run with an empty cache compiles the kernels its code path needs first (seconds to
    tens of seconds); later runs load them. This runs every command's code paths once on
    tiny generated inputs, in --jobs processes side by side, and writes nothing else. The
    cache is NUMBA_CACHE_DIR when set (for example a folder shared by the nodes of one
    type: compiled code is specific to the CPU and the Numba version), else __pycache__
    beside trajalign's sources. Exit status 1 if a code path failed or a kernel was left
    out.

    \b
    Example:
        NUMBA_CACHE_DIR=/shared/numba/$(hostname -s | tr -d 0-9) trajalign compile
    """
    set_verbosity(verbose, quiet)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trajalign-compile-") as tmp:
        paths = _write_inputs(tmp)
        groups: list[list[list[str] | None]] = warmup_runs(paths, os.path.join(tmp, "out"))
        groups[-1].append(None)  # the Python API's kernels
        # each run its own output: runs side by side must not share one file
        for i, args in enumerate(a for g in groups for a in g if a and "-o" in a):
            args[args.index("-o") + 1] = os.path.join(tmp, f"out{i}.h5")
        # no compile-ahead child per run (trajalign._ahead): the runs already compile
        # side by side in --jobs processes, in an order that keeps them apart
        # and the box table compiled, never run by Python in its place (trajalign.box)
        switches = {"TRAJALIGN_COMPILE_AHEAD": "0", "TRAJALIGN_PYTHON_BOXES": "0"}
        before = {k: os.environ.get(k) for k in switches}
        os.environ.update(switches)
        try:
            results = _run_all(groups, jobs or _default_jobs())
        finally:
            for k, v in before.items():
                if v is None:
                    del os.environ[k]
                else:
                    os.environ[k] = v
    failed = [f for f, *_ in results if f]
    compiled = sum(r[1] for r in results)
    loaded = sum(r[2] for r in results)
    reached = {k for r in results for k in r[3]}
    disp = _dispatchers()
    missing = [k for k in entry_kernels(disp) if k not in reached]
    import numba

    cache = numba.config.CACHE_DIR or "__pycache__ beside trajalign's sources"
    summary = {
        "cache_dir": cache,
        "kernels": len(disp),
        "compiled": compiled,
        "loaded": loaded,
        "missing": missing,
        "failed": failed,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if as_json:
        click.echo(json.dumps(summary))
    elif not (failed or missing):
        note(
            f"compiled {compiled} kernel signatures, {loaded} were in the cache already "
            f"({cache}), {summary['seconds']:.1f} s"
        )
    if _STATE["verbose"]:
        for line in failed:
            note(f"failed: {line}")
    # one Error line (the contract of every command); -v lists every failed path
    if failed:
        more = (
            f" ({len(failed) - 1} more with -v)"
            if len(failed) > 1 and not _STATE["verbose"]
            else ""
        )
        click.echo(f"Error: a code path failed: {failed[0]}{more}", err=True)
        raise SystemExit(1)
    if missing:
        click.echo(
            f"Error: no code path reached the kernels {', '.join(missing)} (please report it)",
            err=True,
        )
        raise SystemExit(1)
