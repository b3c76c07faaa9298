"""``--each`` on a dataset of small trajectories, against a shell loop and an MDTraj script.

The dataset is ``--copies`` copies of MDAnalysisTests' cobrotoxin XTC (3 frames) with its
TPR, in ``benchmarks/data/each/`` (gitignored). Three contenders featurise every copy
with distances and angles over the topology's bonds, each as whole processes, best of
``--repeat``:

- ``trajalign internal --features distances,angles --each -o DIR`` (one process);
- the shell loop a user writes today: one ``trajalign internal`` process per file;
- an MDTraj script (PyEMMA-style in-process featurisation): ``md.load`` of every file
  with the topology, ``compute_distances`` + ``compute_angles`` over the same bonds and
  angles, one ``.npy`` per file.

Usage: ``python benchmarks/each.py [--copies 30] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

# The processes timed here write and reuse Python's bytecode caches, as on a user's
# machine (a sandbox's PYTHONDONTWRITEBYTECODE made every run compile trajalign's 40-odd
# modules again: 0.16 s of each warm run).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "each")
BIN = os.path.dirname(sys.executable)

MDTRAJ = r"""
import sys, numpy as np, mdtraj as md, MDAnalysis as mda
top_path, out, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
# the same tuples as trajalign's --pairs bonds on a TPR (MDAnalysis reads the TPR's bonds
# and angles; MDTraj cannot read a TPR, so its topology comes from a PDB of frame 0)
u = mda.Universe(top_path, paths[0])
bonds = np.asarray(u.bonds.indices, dtype=np.int64)
angles = np.asarray(u.angles.indices, dtype=np.int64)
pdb = out + "/top.pdb"
u.atoms.write(pdb)
top = md.load_topology(pdb)
for p in paths:
    t = md.load(p, top=top)
    d = md.compute_distances(t, bonds, periodic=False)
    a = md.compute_angles(t, angles, periodic=False)
    np.save(out + "/" + p.rsplit("/", 1)[-1] + ".npy", np.hstack([d, a]))
"""


def make_dataset(copies: int) -> tuple[str, list[str]]:
    from MDAnalysisTests.datafiles import TPR_xvf, XTC_sub_sol

    os.makedirs(DATA, exist_ok=True)
    paths = []
    for i in range(copies):
        p = os.path.join(DATA, f"rep{i:03d}.xtc")
        if not os.path.exists(p):
            shutil.copy(XTC_sub_sol, p)
        paths.append(p)
    return TPR_xvf, paths


def best(cmds: list[list[str]], repeat: int) -> float:
    """Best wall time of running ``cmds`` one after the other, over ``repeat`` tries."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for cmd in cmds:
            subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    top, paths = make_dataset(args.copies)
    ta = [os.path.join(BIN, "trajalign"), "-q", "internal"]
    feats = ["-t", top, "--features", "distances,angles", "--force"]
    with tempfile.TemporaryDirectory() as tmp:
        each = [[*ta, *paths, *feats, "--each", "-o", os.path.join(tmp, "each")]]
        loop = [
            [*ta, p, *feats, "-o", os.path.join(tmp, f"loop{i}.h5")] for i, p in enumerate(paths)
        ]
        script = os.path.join(tmp, "mdtraj_each.py")
        with open(script, "w") as f:
            f.write(MDTRAJ)
        os.makedirs(os.path.join(tmp, "md"))
        mdt = [[sys.executable, script, top, os.path.join(tmp, "md"), *paths]]
        best(each, 1)  # compile and cache the kernels before anything is timed
        rows = {
            "trajalign internal --each (one process)": best(each, args.repeat),
            f"shell loop: {len(paths)} trajalign internal processes": best(loop, args.repeat),
            "MDTraj script (load + compute_distances/angles + save)": best(mdt, args.repeat),
        }
    load = os.getloadavg()[0]
    print(f"\n# --each: {len(paths)} copies of cobrotoxin.xtc (3 frames) with cobrotoxin.tpr,")
    print(f"# distances and angles over the TPR's bonds; best of {args.repeat}; load {load:.2f}")
    base = rows["trajalign internal --each (one process)"]
    print("| run | s | --each / this |")
    print("| --- | ---: | ---: |")
    for name, t in rows.items():
        print(f"| {name} | {t:.2f} | {base / t:.3f}x |")


if __name__ == "__main__":
    main()
