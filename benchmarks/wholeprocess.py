"""Whole-process benchmarks: ``trajalign rotate`` on an XTC against scripts doing the same.

Each contender runs as its own child process, back to back, and the wall time of the
whole process (interpreter start, imports, reading, fitting, writing) is taken, best of
``--repeat``:

- ``trajalign rotate --method kabsch`` (serial, and ``--workers 2``), writing HDF5;
- an MDAnalysis script: ``AlignTraj(u, u, select="all", filename=out.xtc).run()``;
- an MDTraj script: ``md.load`` + ``superpose`` + ``save_xtc``;
- the floor of this path: a script that imports the same libraries, reads every frame
  with MDAnalysis into a float32 block and writes the blocks to HDF5 with h5py (the same
  chunk layout as trajalign's output), with no alignment at all.

The input is ``benchmarks/data/adk_20000.xtc``: the adenylate kinase trajectory of
MDAnalysisTests (PSF/DCD, 3341 atoms, 98 frames) tiled with 0.1 A noise to 20000 frames
and written once with MDAnalysis (gitignored). Also here: start-up times (``trajalign
--help``; a cold run with ``NUMBA_CACHE_DIR`` pointed at an empty folder against a warm
one on the sample data).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

# The processes timed here write and reuse Python's bytecode caches, as on a user's
# machine (a sandbox's PYTHONDONTWRITEBYTECODE made every run compile trajalign's 40-odd
# modules again: 0.16 s of each warm run).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
ROOT = os.path.dirname(HERE)
BIN = os.path.dirname(sys.executable)


def make_xtc(n_frames: int = 20000) -> tuple[str, str]:
    """(psf, xtc) of ``n_frames`` frames; written once, reused while it exists."""
    import MDAnalysis as mda
    from MDAnalysisTests.datafiles import DCD, PSF

    os.makedirs(DATA, exist_ok=True)
    path = os.path.join(DATA, f"adk_{n_frames}.xtc")
    if os.path.exists(path):
        return PSF, path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(PSF, DCD)
        base = np.stack([u.atoms.positions.copy() for _ in u.trajectory])
        rng = np.random.default_rng(0)
        tmp = path + ".tmp.xtc"
        with mda.Writer(tmp, n_atoms=u.atoms.n_atoms) as w:
            for i in range(n_frames):
                noise = rng.normal(scale=0.1, size=base[0].shape)
                u.atoms.positions = (base[i % len(base)] + noise).astype(np.float32)
                u.trajectory.ts.time = float(i)
                w.write(u.atoms)
        os.replace(tmp, path)
    return PSF, path


# child scripts: each is run as ``python -c SCRIPT psf xtc out``
MDA_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
import MDAnalysis as mda
from MDAnalysis.analysis import align
u = mda.Universe(sys.argv[1], sys.argv[2])
align.AlignTraj(u, u, select="all", filename=sys.argv[3]).run()
"""

MDTRAJ_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
import mdtraj as md
t = md.load(sys.argv[2], top=sys.argv[1])
t.superpose(t, 0)
t.save_xtc(sys.argv[3])
"""

FLOOR_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
import numpy as np, h5py, MDAnalysis as mda, numba, click
u = mda.Universe(sys.argv[1], sys.argv[2])
n, a = u.trajectory.n_frames, u.atoms.n_atoms
chunk = int(sys.argv[4])
buf = np.empty((chunk, a, 3), dtype=np.float32)
with h5py.File(sys.argv[3], "w") as f:
    ds = f.create_dataset("x", (n, a, 3), dtype=np.float32, chunks=(1, a, 3))
    for s in range(0, n, chunk):
        b = min(chunk, n - s)
        for i, ts in enumerate(u.trajectory[s:s + b]):
            buf[i] = ts.positions
        ds[s:s + b] = buf[:b]
"""


def _wall(cmd: list[str], env: dict | None = None, repeat: int = 1) -> float:
    """Best wall time of ``cmd``; every file in its folder of outputs is deleted first
    (untimed), so no contender pays for unlinking the previous run's output."""
    best = np.inf
    for _ in range(repeat):
        for arg in cmd:
            if os.path.basename(os.path.dirname(arg)).startswith("out-") and os.path.isfile(arg):
                os.unlink(arg)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
    return best


def trajalign_cmd(*args: str) -> list[str]:
    return [os.path.join(BIN, "trajalign"), *args]


def bench_rotate(n_frames: int, repeat: int, chunk: int = 1000) -> dict:
    """Whole-process wall times (s) of the rotate contenders on one XTC."""
    psf, xtc = make_xtc(n_frames)
    py = sys.executable
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=DATA, prefix="out-") as tmp:
        out = os.path.join(tmp, "out.h5")
        ta = trajalign_cmd("-q", "rotate", xtc, "-t", psf, "--method", "kabsch", "-o", out)
        ta += ["--force", "--chunk-frames", str(chunk)]
        _wall(ta)  # warm the Numba cache and the page cache
        rows["floor: MDAnalysis read + h5py write"] = _wall(
            [py, "-c", FLOOR_SCRIPT, psf, xtc, os.path.join(tmp, "floor.h5"), str(chunk)],
            repeat=repeat,
        )
        rows["trajalign rotate --method kabsch"] = _wall(ta, repeat=repeat)
        rows["trajalign rotate --method kabsch --workers 2"] = _wall(
            ta + ["--workers", "2"], repeat=repeat
        )
        rows["MDAnalysis AlignTraj script (writes XTC)"] = _wall(
            [py, "-c", MDA_SCRIPT, psf, xtc, os.path.join(tmp, "mda.xtc")], repeat=1
        )
        rows["MDTraj load + superpose + save_xtc"] = _wall(
            [py, "-c", MDTRAJ_SCRIPT, psf, xtc, os.path.join(tmp, "mdt.xtc")], repeat=1
        )
    return rows


#: the commands of the cold-start table (issue 25), on the sample butane unless the row
#: names its input ({xtc} with {gro} or {tpr}: MDAnalysisTests' solvated adenylate kinase,
#: 47681 atoms, 10 frames, read by trajalign's own XTC decoder)
COLD_JOBS = {
    "center": ["center"],
    "rotate (kabsch)": ["rotate"],
    "rotate --method principal": ["rotate", "--method", "principal"],
    "internal --transform inverse,rbf": ["internal", "--transform", "inverse,rbf"],
    "rotate --pbc none": ["rotate", "--pbc", "none"],
    "rotate -s protein, XTC": ["rotate", "{xtc}", "-t", "{gro}", "-s", "protein"],
    "rotate -s protein --method principal, XTC": [
        "rotate",
        "{xtc}",
        "-t",
        "{gro}",
        "-s",
        "protein",
        "--method",
        "principal",
    ],
    "internal -s protein --features phi,psi,mindist,contacts, XTC": [
        "internal",
        "{xtc}",
        "-t",
        "{tpr}",
        "-s",
        "protein",
        "--features",
        "phi,psi,mindist,contacts",
    ],
}


def _cold_job(args: list[str], sample: str) -> list[str]:
    """A row's arguments with its input: the sample butane, or the XTC it names."""
    if "{xtc}" not in args:
        return [*args, f"{sample}/butane.dcd", "-t", f"{sample}/butane.pdb"]
    from MDAnalysisTests.datafiles import GRO, TPR, XTC

    return [a.replace("{xtc}", XTC).replace("{gro}", GRO).replace("{tpr}", TPR) for a in args]


def _timed(cmd: list[str], env: dict, cwd: str | None = None) -> tuple[float, float]:
    """(wall, CPU of the child: user + sys) seconds of one run of ``cmd``. CPU time is
    the steadier number on a shared machine: compilation is single-threaded."""
    before = os.times()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu


def _source_env(src: str | None, cache: str) -> tuple[list[str], dict]:
    """The trajalign command and environment: this checkout's, or the tree ``src``
    (an unpacked older commit, run with this interpreter) for a before/after table."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    if src is None:
        return trajalign_cmd(), env
    env["PYTHONPATH"] = os.path.abspath(src)
    return [sys.executable, "-m", "trajalign"], env


def demo_commands(root: str) -> list[list[str]]:
    """The trajalign commands of ``make demo`` (its recipe, read with ``make -n``)."""
    text = subprocess.run(
        ["make", "-s", "-n", "demo"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cmds = []
    for line in text.splitlines():
        parts = shlex.split(line)
        if parts and parts[0].endswith("/trajalign"):
            cmds.append(parts[1:])
    return cmds


def bench_cold(
    repeat: int = 1, src: str | None = None, demo: bool = True, only: str | None = None
) -> dict:
    """Cold (empty ``NUMBA_CACHE_DIR``) against warm (the same cache, filled) runs.

    Returns ``{name: (cold wall, warm wall, cold CPU, warm CPU)}``, best of ``repeat``
    (cold runs get a new empty cache each time). ``src``: run that source tree instead;
    ``only``: the rows whose name contains it.
    """
    root = os.path.abspath(src) if src else ROOT
    sample = os.path.join(root, "sample_data")
    rows: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "o.h5")
        for name, args in COLD_JOBS.items():
            if only is not None and only not in name:
                continue
            job = [*_cold_job(args, sample), "-o", out, "--force"]
            cold, warm = [], []
            for _ in range(max(1, repeat)):
                cache = tempfile.mkdtemp(dir=tmp)
                exe, env = _source_env(src, cache)
                # cwd: ``python -m trajalign`` imports the trajalign of the working folder
                cold.append(_timed([*exe, "-q", *job], env, cwd=root))
                warm.append(_timed([*exe, "-q", *job], env, cwd=root))
                shutil.rmtree(cache, ignore_errors=True)
            rows[name] = (min(c[0] for c in cold), min(w[0] for w in warm),
                          min(c[1] for c in cold), min(w[1] for w in warm))  # fmt: skip
        if demo:
            outdir = os.path.join(tmp, "demo")
            os.makedirs(outdir)  # the recipe's mkdir -p
            cmds = [
                [a if a != "demo_output" and not a.startswith("demo_output/")
                 else a.replace("demo_output", outdir, 1) for a in c]
                for c in demo_commands(root)
            ]  # fmt: skip
            cache = tempfile.mkdtemp(dir=tmp)
            exe, env = _source_env(src, cache)
            runs = []
            for _ in range(2):  # cold, then warm
                wall = cpu = 0.0
                for c in cmds:
                    w, u = _timed([*exe, "-q", *c], env, cwd=root)
                    wall += w
                    cpu += u
                runs.append((wall, cpu))
            rows[f"make demo ({len(cmds)} commands)"] = (
                runs[0][0], runs[1][0], runs[0][1], runs[1][1]
            )  # fmt: skip
    return rows


def print_cold(rows: dict, title: str = "cold start") -> None:
    """The cold/warm table, with the machine's load (other work slows the cold runs)."""
    load = os.getloadavg()
    print(f"\n{title} (load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} cores)")
    print("| command | cold | warm | cold / warm | cold CPU | warm CPU | CPU ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, (cw, ww, cc, wc) in rows.items():
        print(
            f"| `{name}` | {cw:.1f} s | {ww:.2f} s | {cw / ww:.1f}x "
            f"| {cc:.1f} s | {wc:.2f} s | {cc / wc:.1f}x |"
        )


def bench_startup(repeat: int) -> dict:
    """``trajalign --help``; a cold run (empty NUMBA_CACHE_DIR) and a warm one."""
    rows: dict[str, float] = {}
    rows["trajalign --help"] = _wall(trajalign_cmd("--help"), repeat=max(3, repeat))
    sample = os.path.join(ROOT, "sample_data")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "o.h5")
        jobs = {
            "center": ["center", f"{sample}/butane.dcd", "-t", f"{sample}/butane.pdb"],
            "rotate kabsch": ["rotate", f"{sample}/butane.dcd", "-t", f"{sample}/butane.pdb"],
        }
        for name, args in jobs.items():
            cmd = trajalign_cmd("-q", *args, "-o", out, "--force")
            cold = []
            for _ in range(max(1, min(repeat, 2))):
                cache = tempfile.mkdtemp(dir=tmp)
                env = dict(os.environ, NUMBA_CACHE_DIR=cache)
                cold.append(_wall(cmd, env=env))
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            rows[f"trajalign {name}, sample data, cold (empty Numba cache)"] = min(cold)
            rows[f"trajalign {name}, sample data, warm"] = _wall(cmd, env=env, repeat=repeat)
            shutil.rmtree(cache, ignore_errors=True)
    return rows


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="cold (empty Numba cache) against warm runs")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--src", help="another source tree (e.g. an unpacked older commit)")
    ap.add_argument("--no-demo", action="store_true", help="skip the make demo row")
    ap.add_argument("--only", help="the rows whose name contains this (and no demo row)")
    a = ap.parse_args()
    rows = bench_cold(a.repeat, a.src, not (a.no_demo or a.only), a.only)
    print_cold(rows, f"cold start: {a.src or 'this tree'}")
