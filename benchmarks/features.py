"""Protein-feature kernels (issue 22, phase 1) against MDTraj, in one process.

Data: the CHARMM adenylate kinase of MDAnalysisTests (``PSF``/``DCD``: 3341 atoms, 214
residues, 98 frames), the 98 frames repeated ``--tile`` times (default 10: 980 frames),
loaded once into memory; MDTraj gets the same coordinates (nm) on a topology read from a
PDB that MDAnalysis wrote of the same atoms.

Rows (best of ``--repeat`` wall times, with the CPU time of the process beside them,
the contenders interleaved in each repeat):

- ``mindist closest-heavy``: every residue pair of MDTraj's ``all`` (22366 pairs, one
  chain): :func:`trajalign.features.mindist` kernel on the resolved plan (dense runs) vs
  ``mdtraj.compute_contacts(t, "all", scheme="closest-heavy", periodic=False)``; the row
  below it measures every pair one by one (``MindistPlan.compute(..., dense=False)``, the
  bounded path alone) against the same MDTraj call; plus the one-off resolution
  (topology, groups, pairs, labels, plan and dense runs) on its own row;
- ``phi``: :func:`trajalign.features.torsion_indices` + :func:`trajalign.dihedrals` vs
  ``mdtraj.compute_phi(t, periodic=False)`` (index search included on both sides).

Kernel level only: no file reading or writing. Numba kernels are compiled (and cached)
before timing. Results are checked against MDTraj before anything is timed.

Usage: ``python benchmarks/features.py [--tile 10] [--repeat 3]``.

Whole process (issue 22's goal: the ``trajalign internal`` process against a plain MDTraj
script on the same frames, each a child process, wall and CPU time, best of ``--repeat``):

- ``python benchmarks/features.py --prepare DIR`` writes ``DIR/adk980.dcd`` (the 98 frames
  repeated ``--tile`` times, written by MDAnalysis), then times both sides of each pair;
- ``python benchmarks/features.py --mdtraj FEATURE DCD PSF OUT`` is the MDTraj side:
  ``md.load`` + ``compute_contacts(t, "all", "closest-heavy", periodic=False)`` (FEATURE
  ``mindist``) or ``compute_phi(t, periodic=False)`` (``phi``) + ``np.save`` of the result.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np

# The processes timed here write and reuse Python's bytecode caches, as on a user's
# machine (a sandbox's PYTHONDONTWRITEBYTECODE made every run compile trajalign's 40-odd
# modules again: 0.16 s of each warm run).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def _best(fn, repeat: int) -> float:
    return _best_cpu(fn, repeat)[0]


def _best_cpu(fn, repeat: int) -> tuple[float, float]:
    """Best (wall, CPU of this process) seconds of ``repeat`` calls."""
    best = (np.inf, np.inf)
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


def mdtraj_script(feature: str, dcd: str, psf: str, out: str) -> None:
    """What a user writes with MDTraj: load, compute, save."""
    import mdtraj as md

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = md.load(dcd, top=psf)
        if feature == "mindist":
            d, pairs = md.compute_contacts(t, "all", scheme="closest-heavy", periodic=False)
            np.save(out, d)
        else:
            idx, d = md.compute_phi(t, periodic=False)
            np.save(out, d)


def prepare(folder: str, tile: int, repeat: int = 3) -> None:
    """Write the tiled DCD, then time ``trajalign internal`` against the MDTraj script
    on it (whole processes, best of ``repeat``; CPU time of the child included)."""
    import shlex
    import subprocess
    import sys

    import MDAnalysis as mda
    from MDAnalysisTests.datafiles import DCD, PSF

    os.makedirs(folder, exist_ok=True)
    dcd = os.path.join(folder, f"adk{98 * tile}.dcd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(PSF, DCD)
        with mda.Writer(dcd, u.atoms.n_atoms) as w:
            for _ in range(tile):
                for _ts in u.trajectory:
                    w.write(u.atoms)
    here = os.path.abspath(__file__)
    ta = os.path.join(os.path.dirname(sys.executable), "trajalign")

    def timed(cmd: str) -> tuple[float, float]:
        best = (float("inf"), float("inf"))
        for _ in range(repeat):
            c0, t0 = os.times(), time.perf_counter()
            subprocess.run(shlex.split(cmd), check=True, capture_output=True)
            wall, c1 = time.perf_counter() - t0, os.times()
            cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
            best = min(best, (wall, cpu))
        return best

    print(
        f"# whole processes on {98 * tile} frames, best of {repeat}; load {os.getloadavg()[0]:.2f}"
    )
    print("| feature | trajalign wall / CPU s | MDTraj wall / CPU s | MDTraj / trajalign (wall) |")
    print("| --- | ---: | ---: | ---: |")
    for feat, opts in (("mindist", "--features mindist --scheme closest-heavy"),
                       ("phi", "--features phi")):  # fmt: skip
        a = f"{ta} -q internal {dcd} -t {PSF} {opts} -o {folder}/{feat}.h5 --force"
        b = f"{sys.executable} {here} --mdtraj {feat} {dcd} {PSF} {folder}/{feat}_md.npy"
        timed(a)  # compile and cache the kernels first
        (wa, ca), (wb, cb) = timed(a), timed(b)
        print(f"| {feat} | {wa:.2f} / {ca:.2f} | {wb:.2f} / {cb:.2f} | {wb / wa:.2f}x |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tile", type=int, default=10, help="repeat the 98 frames this often")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--prepare", metavar="DIR", help="write the whole-process inputs")
    ap.add_argument("--mdtraj", nargs=4, metavar=("FEATURE", "DCD", "PSF", "OUT"))
    args = ap.parse_args(argv)
    if args.mdtraj:
        return mdtraj_script(*args.mdtraj)
    if args.prepare:
        return prepare(args.prepare, args.tile, args.repeat)

    import MDAnalysis as mda
    import mdtraj as md
    import numba
    from MDAnalysisTests.datafiles import DCD, PSF

    import trajalign
    from trajalign.features import ProteinTopology, mindist_plan, torsion_indices
    from trajalign.features.mindist import _table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(PSF, DCD)
        ag = u.select_atoms("protein")
        frames = np.stack([ag.positions.astype(np.float32) for _ in u.trajectory])
        pdb = os.path.join(tempfile.mkdtemp(), "adk.pdb")
        u.trajectory[0]
        ag.write(pdb)
        top = md.load(pdb).topology
    x = np.ascontiguousarray(np.tile(frames, (args.tile, 1, 1)))
    t = md.Trajectory(x / 10.0, top)
    n_frames = x.shape[0]

    table = _table(None, n_frames, 3)

    # resolve once (timed separately: a run pays it once, not per frame): topology,
    # groups, pairs, labels, the kernel plan and its dense runs
    def resolve():
        pt = ProteinTopology.from_atoms(ag, x[0])
        groups = pt.groups("closest-heavy")
        rows = pt.residue_pairs("all", groups)
        labels = pt.pair_labels(rows, "closest-heavy")
        plan = mindist_plan(groups, rows, x.shape[1])
        plan.schedule(False)
        return pt, rows, labels, plan

    t_resolve = _best(resolve, args.repeat)
    pt, rows, _, plan = resolve()

    # correctness on a few frames, and compilation, before timing
    d_ours, _ = plan.compute(x[:5], table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d_ref, ref_pairs = md.compute_contacts(t[:5], "all", scheme="closest-heavy", periodic=False)
    assert np.array_equal(pt.resindex[rows], ref_pairs)
    err = float(np.abs(d_ours - d_ref * 10).max())
    quads, _ = torsion_indices(ag, "phi", x[0])
    phi_err = np.abs(
        np.angle(np.exp(1j * (trajalign.dihedrals(x[:5], quads) - md.compute_phi(t[:5])[1])))
    ).max()

    def ours_mindist():
        plan.compute(x, table)

    def ours_mindist_one_by_one():
        plan.compute(x, table, dense=False)

    def md_mindist():
        md.compute_contacts(t, "all", scheme="closest-heavy", periodic=False)

    def ours_phi():
        q, _ = torsion_indices(ag, "phi", x[0])
        trajalign.dihedrals(x, q)

    def md_phi():
        md.compute_phi(t, periodic=False)

    rows_out = []
    for name, ours, theirs in (
        ("mindist closest-heavy", ours_mindist, md_mindist),
        ("  pairs one by one", ours_mindist_one_by_one, md_mindist),
        ("phi", ours_phi, md_phi),
    ):
        a = b = (np.inf, np.inf)
        for _ in range(args.repeat):
            a = min(a, _best_cpu(ours, 1))
            b = min(b, _best_cpu(theirs, 1))
        rows_out.append((name, a, b))

    print(
        f"adenylate kinase: {x.shape[1]} atoms, {pt.n_residues} residues, {n_frames} frames, "
        f"{rows.shape[0]} residue pairs; numba threads {numba.get_num_threads()}; "
        f"mdtraj {md.__version__}"
    )
    print(f"check: max |trajalign - MDTraj| mindist {err:.2e} A, phi {phi_err:.2e} rad")
    print(f"load average {os.getloadavg()[0]:.2f}; wall s (CPU s of the process)")
    print(f"{'feature':24s} {'trajalign s':>16s} {'MDTraj s':>16s} {'ms/frame':>9s} {'ratio':>7s}")
    for name, (a, ac), (b, bc) in rows_out:
        print(
            f"{name:24s} {a:8.4f} ({ac:6.3f}) {b:8.4f} ({bc:6.3f}) {1e3 * a / n_frames:9.3f} "
            f"{b / a:7.1f}x"
        )
    print(f"{'resolve mindist plan':24s} {t_resolve:8.4f}   (once per run)")


if __name__ == "__main__":
    main()
