"""Peak memory of a streamed run: a ~1 GB DCD processed in 250-frame blocks.

Writes ``benchmarks/data/adk_big.dcd`` (adenylate kinase from MDAnalysisTests, 3341 atoms,
tiled with noise to about 1 GB) once, then runs ``trajalign center`` on it as a child
process and reports its peak resident memory (``ru_maxrss``) beside the file size.

Usage: ``python benchmarks/memory.py [--gb 1.0] [--chunk 250] [--workers N]``.
"""

from __future__ import annotations

import argparse
import os
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


def make_big_dcd(path: str, gb: float) -> str:
    import MDAnalysis as mda
    from MDAnalysisTests.datafiles import DCD, PSF

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(PSF, DCD)
        base = np.stack([u.atoms.positions.copy() for _ in u.trajectory])
        n_frames = int(gb * 2**30 / (u.atoms.n_atoms * 12 + 60))
        if os.path.exists(path) and os.path.getsize(path) > 0.95 * gb * 2**30:
            return PSF
        rng = np.random.default_rng(0)
        tmp = path + ".tmp.dcd"
        with mda.Writer(tmp, n_atoms=u.atoms.n_atoms) as w:
            for i in range(n_frames):
                u.atoms.positions = base[i % len(base)] + rng.normal(scale=0.1, size=base[0].shape)
                w.write(u.atoms)
        os.replace(tmp, path)
    return PSF


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--chunk", type=int, default=250)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    os.makedirs(os.path.join(HERE, "data"), exist_ok=True)
    dcd = os.path.join(HERE, "data", "adk_big.dcd")
    psf = make_big_dcd(dcd, args.gb)
    with tempfile.TemporaryDirectory(dir=os.path.join(HERE, "data")) as tmp:
        out = os.path.join(tmp, "out.h5")
        cmd = [
            sys.executable,
            "-m",
            "trajalign",
            "-q",
            "center",
            dcd,
            "-t",
            psf,
            "-o",
            out,
            "--chunk-frames",
            str(args.chunk),
        ]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        t0 = time.perf_counter()
        driver_mb, workers_mb = run_sampled(cmd)
        seconds = time.perf_counter() - t0
        size_mb = os.path.getsize(dcd) / 2**20
        line = (
            f"input {size_mb:.0f} MB DCD, --chunk-frames {args.chunk}"
            f"{', --workers ' + str(args.workers) if args.workers else ''}: "
            f"peak RSS of the driver {driver_mb:.0f} MB"
        )
        if workers_mb:
            line += f", of each worker at most {max(workers_mb):.0f} MB ({len(workers_mb)} workers)"
        print(line + f", {seconds:.1f} s")


def run_sampled(cmd: list[str], every: float = 0.05) -> tuple[float, list[float]]:
    """Run ``cmd``, sampling the resident memory of it and of its worker processes.

    Returns the driver's peak RSS in MB and the peaks of its descendants in MB: the
    ``--workers`` processes (and, for an XTC, each one's reader process). RSS counts the
    pages a worker shares with the driver it was forked from, so the sum overstates.
    psutil comes with distributed.
    """
    import psutil

    proc = subprocess.Popen(cmd)
    ps = psutil.Process(proc.pid)
    driver, others = 0, {}
    while proc.poll() is None:
        try:
            driver = max(driver, ps.memory_info().rss)
            for child in ps.children(recursive=True):
                try:
                    others[child.pid] = max(others.get(child.pid, 0), child.memory_info().rss)
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        time.sleep(every)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with status {proc.returncode}")
    return driver / 2**20, sorted(v / 2**20 for v in others.values())


if __name__ == "__main__":
    main()
