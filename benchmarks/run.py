"""Benchmarks: trajalign against MDTraj and MDAnalysis on the same data, in one run.

Prints a Markdown table of best-of-N wall times and ratios. The data are the adenylate
kinase trajectory of MDAnalysisTests (3341 atoms, 98 frames) tiled with noise to
2000 frames, float32, in memory, as in the performance issue. The "floor" is one
read+write pass over the array (``out[...] = X``), the least any per-frame method costs.

Usage: ``python benchmarks/run.py [--frames 2000] [--repeat 5] [--only center]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from importlib import metadata

import numpy as np


def best_time(fn, repeat: int) -> float:
    fn()  # warm-up: numba compilation, caches, page faults
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def adk_frames(n_frames: int) -> tuple[np.ndarray, np.ndarray, object]:
    """(F, 3341, 3) float32 coordinates, masses, and the MDAnalysis Universe."""
    import MDAnalysis as mda
    from MDAnalysisTests.datafiles import DCD, PSF

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(PSF, DCD)
        base = np.stack([u.atoms.positions.copy() for _ in u.trajectory])
    reps = -(-n_frames // len(base))
    rng = np.random.default_rng(0)
    X = np.concatenate([base] * reps)[:n_frames]
    X = (X + rng.normal(scale=0.1, size=X.shape)).astype(np.float32)
    return X, u.atoms.masses.astype(np.float64), u


def bench_center(X, masses, u, repeat):
    import MDAnalysis as mda

    import trajalign as ta

    rows = {}
    out = np.empty_like(X)

    def floor():
        out[...] = X

    rows["one read+write pass (floor)"] = best_time(floor, repeat)
    rows["trajalign ta.center(com)"] = best_time(lambda: ta.center(X, "com", masses=masses), repeat)
    rows["numpy X - weighted mean"] = best_time(
        lambda: X - np.einsum("n,fnd->fd", masses / masses.sum(), X)[:, None, :], repeat
    )
    # MDTraj: a Trajectory over the same array (nm), center_coordinates(mass_weighted=True);
    # it centres in place, so each repeat works on a fresh copy (the copy is timed too)
    mdt = _mdtraj_with_masses(X, u)
    rows["MDTraj center_coordinates(mass_weighted)"] = best_time(
        lambda: mdt[:].center_coordinates(mass_weighted=True), repeat
    )
    mu = mda.Universe(u.filename, X, format=mda.coordinates.memory.MemoryReader)
    ag = mu.atoms

    def mda_center():
        res = np.empty_like(X)
        for i, _ in enumerate(mu.trajectory):
            res[i] = ag.positions - ag.center_of_mass()
        return res

    rows["MDAnalysis loop positions - center_of_mass()"] = best_time(mda_center, repeat)
    return rows


def _mdtraj_with_masses(X, u):
    """An MDTraj trajectory of X (converted to nm) whose atoms carry the PSF elements."""
    import mdtraj as md

    top = md.Topology()
    chain = top.add_chain()
    res = top.add_residue("ADK", chain)
    for name in u.atoms.names:
        el = md.element.Element.getBySymbol(name[0] if name[0] in "CHNOS" else "C")
        top.add_atom(name, el, res)
    return md.Trajectory(X / 10.0, top)


BENCHES = {"center": bench_center}


def versions() -> str:
    names = ["trajalign", "numpy", "numba", "MDAnalysis", "mdtraj"]
    return ", ".join(f"{n} {metadata.version(n)}" for n in names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", choices=sorted(BENCHES), action="append")
    args = ap.parse_args()
    X, masses, u = adk_frames(args.frames)
    print(f"# {args.frames} frames x {X.shape[1]} atoms float32, best of {args.repeat}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {versions()}")
    for name in args.only or sorted(BENCHES):
        rows = BENCHES[name](X, masses, u, args.repeat)
        ours = next(v for k, v in rows.items() if k.startswith("trajalign"))
        print(f"\n## {name}\n\n| implementation | time (ms) | time / trajalign |\n|---|---:|---:|")
        for k, v in rows.items():
            print(f"| {k} | {v * 1e3:.1f} | {v / ours:.2f} |")


if __name__ == "__main__":
    main()
