"""Whole-process runs on XTC inputs with the native reader (issue 23), against the floor.

Every row is its own process; the contenders of a table run in turn (A, B, C, A, B, C,
...) and each row is the best of ``--repeat``, with the load average read right after
its best run (the machine may be shared). The floor of a table is a script that imports
the same libraries, reads the same frames with MDAnalysis, copies the same atoms into a
float32 block and writes the blocks to HDF5 with h5py: what any MDAnalysis-based tool
pays before doing any work.

Tables:

- ``rotate -s protein`` of the solvated adenylate kinase (MDAnalysisTests TPR/XTC,
  47681 atoms, its protein the first 3341, tiled to ``--frames`` frames by
  :func:`pbc.make_xtc`): native, ``--xtc-reader mdanalysis``, the protein floor;
- ``rotate -s all`` of a ``--all-frames``-frame file made the same way (its own file,
  so the input's SHA-256 for the provenance covers only those frames), no
  ``--workers``: native, ``--xtc-reader mdanalysis``, the all-atom floor;
- ``rotate`` of the 20000-frame protein-only XTC of :func:`wholeprocess.make_xtc`
  (3341 atoms): native, ``--xtc-reader mdanalysis``, the floor.

Usage: ``python benchmarks/xtcwhole.py [--frames 10000] [--all-frames 2000]
[--protein-frames 20000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

# The processes timed here write and reuse Python's bytecode caches, as on a user's
# machine (a sandbox's PYTHONDONTWRITEBYTECODE made every run compile trajalign's 40-odd
# modules again: 0.16 s of each warm run).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
BIN = os.path.dirname(sys.executable)
DATA = os.path.join(HERE, "data")

#: ``python -c FLOOR top xtc out chunk select stop``: read with MDAnalysis, write h5py
FLOOR = """
import sys, warnings
warnings.simplefilter("ignore")
import numpy as np, h5py, MDAnalysis as mda, numba, click
top, xtc, out, chunk, sel, stop = sys.argv[1:7]
u = mda.Universe(top, xtc)
ag = u.select_atoms(sel)
n = min(u.trajectory.n_frames, int(stop))
a, chunk = ag.n_atoms, int(chunk)
buf = np.empty((chunk, a, 3), dtype=np.float32)
with h5py.File(out, "w") as f:
    ds = f.create_dataset("x", (n, a, 3), dtype=np.float32, chunks=(1, a, 3))
    for s in range(0, n, chunk):
        b = min(chunk, n - s)
        for i, ts in enumerate(u.trajectory[s:s + b]):
            buf[i] = ag.positions
        ds[s:s + b] = buf[:b]
"""


def _run(cmd: list[str], out: str) -> float:
    """Wall seconds of ``cmd``; ``out`` deleted first, untimed."""
    if os.path.exists(out):
        os.unlink(out)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def table(contenders: dict, repeat: int) -> dict:
    """{name: (best wall s, load average after it)}, the contenders run in turn."""
    best = {k: (np.inf, np.nan) for k in contenders}
    for _ in range(repeat):
        for name, (cmd, out) in contenders.items():
            wall = _run(cmd, out)
            if wall < best[name][0]:
                best[name] = (wall, os.getloadavg()[0])
    return best


def contenders(top, xtc, select, stop, chunk, tmp) -> dict:
    """trajalign native, trajalign --xtc-reader mdanalysis, and the floor."""
    ta = os.path.join(BIN, "trajalign")
    out = os.path.join(tmp, "o.h5")
    rot = [ta, "-q", "rotate", xtc, "-t", top, "-s", select, "-o", out, "--force"]
    if stop is not None:
        rot += ["--stop", str(stop)]
    floor_out = os.path.join(tmp, "floor.h5")
    floor = [sys.executable, "-c", FLOOR, top, xtc, floor_out, str(chunk), select]
    floor.append(str(stop if stop is not None else 1 << 40))
    return {
        "trajalign rotate (native XTC reader)": (rot, out),
        "trajalign rotate --xtc-reader mdanalysis": (rot + ["--xtc-reader", "mdanalysis"], out),
        "floor: MDAnalysis read + h5py write": (floor, floor_out),
    }


def print_table(title: str, rows: dict) -> None:
    ours = rows["trajalign rotate (native XTC reader)"][0]
    floor = rows["floor: MDAnalysis read + h5py write"][0]
    print(f"\n## {title}\n")
    print("| process | wall (s) | / floor | / native | load avg |\n|---|---:|---:|---:|---:|")
    for k, (wall, load) in rows.items():
        print(f"| {k} | {wall:.2f} | {wall / floor:.2f} | {wall / ours:.2f} | {load:.2f} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--all-frames", type=int, default=2000)
    ap.add_argument("--protein-frames", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    import pbc
    import wholeprocess

    tpr, solvated = pbc.make_xtc(args.frames)
    _, short = pbc.make_xtc(args.all_frames)
    psf, protein = wholeprocess.make_xtc(args.protein_frames)
    print(f"\nload average at start: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(dir=DATA, prefix="out-") as tmp:
        warm = os.path.join(tmp, "warm.h5")
        ta = os.path.join(BIN, "trajalign")
        for top, xtc in ((tpr, solvated), (psf, protein)):  # Numba and page caches
            subprocess.run([ta, "-q", "rotate", xtc, "-t", top, "-o", warm, "--force"], check=True)
        runs = [
            (
                f"rotate -s protein, solvated adk XTC, {args.frames} frames (47681 atoms)",
                contenders(tpr, solvated, "protein", None, 1000, tmp),
            ),
            (
                f"rotate -s all, solvated adk XTC, {args.all_frames} frames",
                contenders(tpr, short, "all", None, 100, tmp),
            ),
            (
                f"rotate, protein-only adk XTC, {args.protein_frames} frames (3341 atoms)",
                contenders(psf, protein, "all", None, 1000, tmp),
            ),
        ]
        for title, who in runs:
            print_table(title, table(who, args.repeat))
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
