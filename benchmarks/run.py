"""Benchmarks: trajalign against MDTraj and MDAnalysis on the same data, in one run.

Prints Markdown tables of best-of-N wall times and ratios. The data are the adenylate
kinase trajectory of MDAnalysisTests (3341 atoms, 98 frames) tiled with noise to
2000 frames, float32, in memory, as in the performance issue. The "floor" is one
read+write pass over the array (``out[...] = X`` into a preallocated array; also shown
into a new array, ``X.copy()``, whose page faults every function that returns a new
array pays too), the least any per-frame method costs.

Fairness: every contender works on the same float32 coordinates and returns a new array
(MDTraj's in-place ``superpose``/``center_coordinates`` run on a copy made inside the
timed call; its data are divided by 10 to nm once, outside the timing, which changes no
work). MDAnalysis' ``self_distance_array`` returns float64 per frame, stacked.

Then the scaling of the kernels (frames, atoms, Numba threads 1 and 2) and the
whole-process tables of :mod:`wholeprocess` (``trajalign rotate`` on a 20000-frame XTC
against MDAnalysis and MDTraj scripts and the read+write floor; start-up times), the
periodic repair against GROMACS (:mod:`pbc`), ``--workers`` on a decode-bound XTC with
its per-block costs (:mod:`workers`), the native XTC decoder per frame against MDAnalysis'
(:mod:`xtc`) and whole ``rotate`` runs with it against the MDAnalysis read + h5py write
floor (:mod:`xtcwhole`).

Usage: ``python benchmarks/run.py [--quick] [--frames 2000] [--repeat 5] [--only NAME]``.
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

    rows = _floors(X, repeat)
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


def _floor(X, repeat):
    out = np.empty_like(X)

    def floor():
        out[...] = X

    return best_time(floor, repeat)


_PCOPY = None


def parallel_copy(x, out) -> None:
    """out[...] = x with a Numba prange over frames: the read+write pass at full width."""
    global _PCOPY
    if _PCOPY is None:
        import numba

        @numba.njit(parallel=True)
        def pcopy(x, out):
            xf = x.reshape(x.shape[0], -1)
            of = out.reshape(out.shape[0], -1)
            for f in numba.prange(xf.shape[0]):
                for j in range(xf.shape[1]):
                    of[f, j] = xf[f, j]

        _PCOPY = pcopy
    _PCOPY(x, out)


_PFILL = None


def parallel_fill(out) -> None:
    """out[...] = 1 with a Numba prange over rows: writing an output at full width."""
    global _PFILL
    if _PFILL is None:
        import numba

        @numba.njit(parallel=True)
        def pfill(out):
            for f in numba.prange(out.shape[0]):
                for j in range(out.shape[1]):
                    out[f, j] = 1.0

        _PFILL = pfill
    _PFILL(out)


def _floors(X, repeat) -> dict:
    out = np.empty_like(X)
    return {
        "floor: one read+write pass, numpy copy (1 thread)": _floor(X, repeat),
        "floor: one read+write pass, Numba prange (all threads)": best_time(
            lambda: parallel_copy(X, out), repeat
        ),
        "floor: Numba prange into a new array (page faults, as any function returning one)": (
            best_time(lambda: parallel_copy(X, np.empty_like(X)), repeat)
        ),
    }


def bench_align(X, masses, u, repeat):
    """Kabsch onto frame 0 (all atoms, unweighted), principal axes, point frames."""
    import MDAnalysis as mda
    from MDAnalysis.analysis import align

    import trajalign as ta

    rows = _floors(X, repeat)
    rows["trajalign ta.superpose (kabsch, first frame)"] = best_time(
        lambda: ta.superpose(X, "first"), repeat
    )
    mdt = _mdtraj_with_masses(X, u)
    rows["MDTraj superpose (frame 0)"] = best_time(lambda: mdt[:].superpose(mdt, 0), repeat)

    def mda_align():
        mu = mda.Universe(u.filename, X.copy(), format=mda.coordinates.memory.MemoryReader)
        align.AlignTraj(mu, mu, select="all", in_memory=True).run()

    rows["MDAnalysis AlignTraj(in_memory=True)"] = best_time(mda_align, max(1, repeat // 2))
    rows["trajalign ta.align_principal (continuity)"] = best_time(
        lambda: ta.align_principal(X, masses), repeat
    )
    rows["trajalign ta.align_points(0, 100, 200)"] = best_time(
        lambda: ta.align_points(X, 0, 100, 200), repeat
    )
    rows["trajalign ta.center (com)"] = best_time(lambda: ta.center(X, "com", masses), repeat)
    return rows


def bench_distances(X, masses, u, repeat):
    """All pairs of the 214 CA atoms."""
    from MDAnalysis.lib.distances import self_distance_array

    import trajalign as ta

    ca = u.select_atoms("name CA").indices
    Xca = np.ascontiguousarray(X[:, ca])
    n = len(ca)
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    rows = {}
    rows["trajalign ta.distances (all pairs)"] = best_time(lambda: ta.distances(Xca, pairs), repeat)
    # minimum image (issue 12): a 60 A box, where a fifth of the CA pairs are longer than
    # half of it; the ratio is against the run without a box
    for name, angles in (("orthorhombic", 90.0), ("triclinic 60/60/90", 60.0)):
        box = [60.0, 60.0, 60.0, angles, angles, 90.0]
        rows[f"  ta.distances (all pairs), {name} box"] = best_time(
            lambda box=box: ta.distances(Xca, pairs, box=box), repeat
        )

    def mda_loop():
        return np.stack([self_distance_array(x) for x in Xca])

    rows["MDAnalysis self_distance_array loop"] = best_time(mda_loop, repeat)
    import mdtraj as md

    mdt = _mdtraj_with_masses(Xca, _SubU(u, ca))
    rows["MDTraj compute_distances"] = best_time(lambda: md.compute_distances(mdt, pairs), repeat)
    shape = (len(Xca), len(pairs))
    rows["floor: write a new F x P float32 array, numpy (1 thread)"] = best_time(
        lambda: np.zeros(shape, np.float32).fill(1.0), repeat
    )
    rows["floor: write a new F x P float32 array, Numba prange (all threads)"] = best_time(
        lambda: parallel_fill(np.empty(shape, np.float32)), repeat
    )
    return rows


def bench_angles(X, masses, u, repeat):
    """Chain angles and dihedrals over consecutive atoms of the protein (3339 / 3338)."""
    import mdtraj as md

    import trajalign as ta

    n = X.shape[1]
    tri = np.stack([np.arange(n - 2), np.arange(1, n - 1), np.arange(2, n)], 1)
    quad = np.stack(
        [np.arange(n - 3), np.arange(1, n - 2), np.arange(2, n - 1), np.arange(3, n)], 1
    )
    mdt = _mdtraj_with_masses(X, u)
    rows = {}
    rows["trajalign ta.angles (chain)"] = best_time(lambda: ta.angles(X, tri), repeat)
    rows["MDTraj compute_angles"] = best_time(lambda: md.compute_angles(mdt, tri), repeat)
    rows["trajalign ta.dihedrals (chain)"] = best_time(lambda: ta.dihedrals(X, quad), repeat)
    rows["MDTraj compute_dihedrals"] = best_time(lambda: md.compute_dihedrals(mdt, quad), repeat)
    return rows


class _SubU:
    """The bits of a Universe that _mdtraj_with_masses reads, for a subset of atoms."""

    def __init__(self, u, idx):
        self.atoms = u.atoms[idx]


def bench_scaling(X, masses, u, repeat):
    """ta.superpose, ta.align_principal, ta.center against frames, atoms and threads."""
    import numba

    import trajalign as ta

    funcs = {
        "superpose": lambda Y: ta.superpose(Y),
        "align_principal": lambda Y: ta.align_principal(Y),
        "center": lambda Y: ta.center(Y),
    }

    def timings(Y):
        return {k: best_time(lambda f=f: f(Y), repeat) for k, f in funcs.items()}

    # sizes from 40 MB up: smaller arrays stay in the cache and in glibc's heap (no page
    # faults below its 32 MB mmap threshold), which would flatter the small end
    n_frames = X.shape[0]
    rows = []
    for Y in (X[: n_frames // 2], X, np.concatenate([X, X[::-1]])):
        rows.append(("frames", Y.shape, timings(Y)))
    # more atoms: copies of the protein side by side (shifted 100 A), half the frames
    for k in (1, 2, 4):
        Y = np.concatenate([X[: n_frames // 2] + 100.0 * i for i in range(k)], axis=1)
        rows.append(("atoms", Y.shape, timings(Y)))
    n_max = numba.config.NUMBA_NUM_THREADS
    for t in sorted({1, min(2, n_max)}):
        numba.set_num_threads(t)
        rows.append((f"threads={t}", X.shape, timings(X)))
    numba.set_num_threads(n_max)
    return rows


def print_scaling(rows) -> None:
    names = list(rows[0][2])
    print("\n## scaling (ms; ns per frame x atom in brackets)\n")
    print("| varied | frames x atoms | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for what, shape, times in rows:
        per = shape[0] * shape[1]
        cells = " | ".join(f"{times[k] * 1e3:.1f} ({times[k] / per * 1e9:.2f})" for k in names)
        print(f"| {what} | {shape[0]} x {shape[1]} | {cells} |")


BENCHES = {
    "align": bench_align,
    "angles": bench_angles,
    "center": bench_center,
    "distances": bench_distances,
}


def print_table(name: str, rows: dict, unit: str = "ms", scale: float = 1e3) -> None:
    """Markdown table; each row's ratio is against the trajalign row above it (or first)."""
    print(f"\n## {name}\n\n| implementation | time ({unit}) | time / trajalign |\n|---|---:|---:|")
    ours = next(v for k, v in rows.items() if k.startswith("trajalign"))
    for k, v in rows.items():
        if k.startswith("trajalign"):
            ours = v
        print(f"| {k} | {v * scale:.{1 if scale > 1 else 2}f} | {v / ours:.2f} |")


def print_rotate(rows: dict) -> None:
    ours = rows["trajalign rotate --method kabsch"]
    floor = rows["floor: MDAnalysis read + h5py write"]
    print("\n## trajalign rotate, whole process\n")
    print("| process | time (s) | time / trajalign serial | time / floor |\n|---|---:|---:|---:|")
    for k, v in rows.items():
        print(f"| {k} | {v:.2f} | {v / ours:.2f} | {v / floor:.2f} |")


def versions() -> str:
    names = ["trajalign", "numpy", "numba", "MDAnalysis", "mdtraj"]
    return ", ".join(f"{n} {metadata.version(n)}" for n in names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=None, help="best of N [5; --quick 2]")
    ap.add_argument("--xtc-frames", type=int, default=None, help="[20000; --quick 4000]")
    ap.add_argument("--quick", action="store_true", help="fewer repeats, a smaller XTC")
    names = [*sorted(BENCHES), "scaling", "rotate", "startup", "pbc", "workers", "xtc"]
    names.append("xtc-whole")
    ap.add_argument("--only", choices=names, action="append")
    args = ap.parse_args()
    repeat = args.repeat or (2 if args.quick else 5)
    xtc_frames = args.xtc_frames or (4000 if args.quick else 20000)
    X, masses, u = adk_frames(args.frames)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {args.frames} frames x {X.shape[1]} atoms float32, best of {repeat}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {versions()}")
    print(f"# load average at start {load:.2f}; NUMBA_NUM_THREADS {_numba_threads()}")
    for name in args.only or names:
        if name in BENCHES:
            print_table(name, BENCHES[name](X, masses, u, repeat))
        elif name == "scaling":
            print_scaling(bench_scaling(X, masses, u, repeat))
        elif name == "rotate":
            import wholeprocess

            print(f"\n# {xtc_frames}-frame XTC of adenylate kinase (3341 atoms)", end="")
            print_rotate(wholeprocess.bench_rotate(xtc_frames, max(1, min(repeat, 3))))
        elif name == "pbc":  # periodic repair, issue 12 (benchmarks/pbc.py)
            __import__("pbc").main(["--frames", "2000" if args.quick else "10000"])
        elif name == "workers":  # --workers on a decode-bound XTC (benchmarks/workers.py)
            frames = "2000" if args.quick else "10000"
            __import__("workers").main(["--frames", frames, "--repeat", str(min(repeat, 3))])
        elif name == "xtc":  # the native XTC decoder per frame (benchmarks/xtc.py)
            __import__("xtc").main(["--frames", "200", "--repeat", str(repeat)])
        elif name == "xtc-whole":  # whole runs with the native reader (benchmarks/xtcwhole.py)
            frames = ["--frames", "2000" if args.quick else "10000"]
            frames += ["--protein-frames", str(xtc_frames)]
            __import__("xtcwhole").main([*frames, "--repeat", str(min(repeat, 3))])
        else:
            import wholeprocess

            print_table("start-up", wholeprocess.bench_startup(repeat), "s", 1.0)


def _numba_threads() -> int:
    import numba

    return numba.config.NUMBA_NUM_THREADS


if __name__ == "__main__":
    main()
