"""``--workers`` on a decode-bound input: the whole-process table and where the time goes.

The input is the solvated adenylate kinase XTC of :mod:`pbc` (MDAnalysisTests TPR/XTC,
47681 atoms, tiled to ``--frames`` frames, ~1.7 GB for 10000), and the job is
``trajalign rotate -s protein`` (3341 atoms kept, molecules made whole, Kabsch onto
frame 0). Every XTC frame must be decompressed whole, solvent included, so the run is
bound by MDAnalysis' decoder. Rows, each its own process, back to back, best of
``--repeat``:

- the floor: one bare process decoding every frame (``u.trajectory`` and nothing else),
  and two bare processes decoding one half each, at the same time;
- ``trajalign rotate`` serial and with ``--workers 2``.

Wall time and CPU time are both reported. CPU is the machine's busy time over the run
(``/proc/stat``): the workers are grandchildren of the command (forked by the fork
server), which ``getrusage`` does not count. On a loaded machine it includes others'
work, so the load average is printed beside it.

Then the per-block costs that the scaling model in the README rests on, measured in this
process on one block of the default size: decode, repair + fit, the /dev/shm hand-over,
the HDF5 write, and the fixed costs (imports, opening the topology, the input's SHA-256).

Usage: ``python benchmarks/workers.py [--frames 10000] [--repeat 3]``.
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
sys.path.insert(0, HERE)
BIN = os.path.dirname(sys.executable)

DECODE_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
import MDAnalysis as mda
u = mda.Universe(sys.argv[1], sys.argv[2])
a, b = int(sys.argv[3]), int(sys.argv[4])
for ts in u.trajectory[a:b]:
    pass
"""


def _busy_ticks() -> int:
    """Busy CPU ticks of the whole machine since boot (user+nice+system+irq+softirq)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6]


def _measure(cmds: list[list[str]], repeat: int, out: str | None = None) -> tuple[float, float]:
    """Best (wall, CPU) seconds of running ``cmds`` at the same time; ``out`` (the
    output file) is deleted before each run, untimed: replacing a 400 MB file costs
    0.2 s that belongs to no contender."""
    hz = os.sysconf("SC_CLK_TCK")
    best = (np.inf, np.inf)
    for _ in range(repeat):
        if out is not None and os.path.exists(out):
            os.unlink(out)
        c0, t0 = _busy_ticks(), time.perf_counter()
        procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL) for c in cmds]
        for p in procs:
            if p.wait() != 0:
                raise RuntimeError(f"{p.args} failed")
        wall, cpu = time.perf_counter() - t0, (_busy_ticks() - c0) / hz
        if wall < best[0]:
            best = (wall, cpu)
    return best


def whole_process(n_frames: int, repeat: int) -> dict:
    from pbc import make_xtc

    tpr, xtc = make_xtc(n_frames)
    py, ta = sys.executable, os.path.join(BIN, "trajalign")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "o.h5")
        rot = [ta, "-q", "rotate", xtc, "-t", tpr, "-s", "protein", "-o", out, "--force"]
        subprocess.run(rot + ["--stop", "10"], check=True)  # Numba cache, page cache
        half = n_frames // 2
        rows["floor: one process decoding every frame"] = _measure(
            [[py, "-c", DECODE_SCRIPT, tpr, xtc, "0", str(n_frames)]], repeat
        )
        rows["floor: two processes decoding one half each"] = _measure(
            [
                [py, "-c", DECODE_SCRIPT, tpr, xtc, "0", str(half)],
                [py, "-c", DECODE_SCRIPT, tpr, xtc, str(half), str(n_frames)],
            ],
            repeat,
        )
        rows["trajalign rotate -s protein (serial)"] = _measure([rot], repeat, out)
        rows["trajalign rotate -s protein --workers 2"] = _measure(
            [rot + ["--workers", "2"]], repeat, out
        )
    return rows


def per_block(n_frames: int) -> dict:
    """CPU seconds per block (of the default size) of each stage, and the fixed costs.

    CPU time (``time.process_time``, all threads of this process) rather than wall time:
    it is what a worker or the driver spends, and a loaded machine changes it little."""
    from pbc import make_xtc

    tpr, xtc = make_xtc(n_frames)
    costs: dict[str, float] = {}
    t0 = time.process_time()
    import MDAnalysis as mda  # noqa: F401
    import numba  # noqa: F401

    from trajalign import tasks as ex
    from trajalign.io import open_source
    from trajalign.io.h5md import H5MDWriter, sha256
    from trajalign.jobs.rotate import RotateJob
    from trajalign.pipeline import chunk_size

    costs["fixed: imports (numpy, MDAnalysis, Numba, trajalign)"] = time.process_time() - t0
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = open_source([xtc], top=tpr, select="protein")
    costs["fixed: open the topology and the XTC offsets"] = time.process_time() - t0
    chunk = chunk_size(src.n_points, src.dim, None, None)
    b = min(chunk, n_frames // 2)  # the timed block is the second one: [b, 2b)
    job = RotateJob(method="kabsch")
    job.prepare(src)
    src.read(0, 2)
    job.process(src.read(0, 2))  # kernels loaded
    u = src.universe if hasattr(src, "universe") else None
    if u is not None:
        t0 = time.process_time()
        for _ in u.trajectory[b : 2 * b]:
            pass
        costs["block: decode (MDAnalysis, all atoms)"] = time.process_time() - t0
    t0 = time.process_time()
    block = src.read(b, 2 * b)
    costs["block: read = decode + copy protein + repair"] = time.process_time() - t0
    t0 = time.process_time()
    result = job.process(block)
    costs["block: fit (Kabsch + move + RMSD)"] = time.process_time() - t0
    out = ex.BlockOutput(1, b, block.frames, block.times, block.box, result, block.repair)
    prefix = f"trajalign-bench-{os.getpid()}"
    t0 = time.process_time()
    ex.export_arrays(out, prefix)
    costs["block: hand-over, worker side (/dev/shm write)"] = time.process_time() - t0
    t0 = time.process_time()
    ex.import_arrays(out)
    costs["block: hand-over, driver side (map)"] = time.process_time() - t0
    with tempfile.TemporaryDirectory() as tmp:
        w = H5MDWriter(
            os.path.join(tmp, "o.h5"),
            n_frames=2 * b,
            n_points=src.n_points,
            dim=3,
            length_unit="angstrom",
            has_box=True,
        )
        job.declare(w, src)
        t0 = time.process_time()
        w.write_block(b, block.frames, block.times, result.coords, block.box, **result.extra)
        w.flush()
        costs["block: HDF5 write (driver)"] = time.process_time() - t0
        w.close()
    t0 = time.process_time()
    sha256(xtc)
    costs["fixed: SHA-256 of the input (provenance, a thread)"] = time.process_time() - t0
    costs["_frames_per_block"] = b
    costs["_bytes_per_frame"] = os.path.getsize(xtc) / n_frames
    return costs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    print(f"\n## --workers on a decode-bound XTC ({args.frames} frames, 47681 atoms, 2 cores)")
    print(f"load average at start: {load:.2f}\n")
    rows = whole_process(args.frames, args.repeat)
    serial = rows["trajalign rotate -s protein (serial)"][0]
    print("| run | wall (s) | CPU (s) | wall / serial |")
    print("| --- | ---: | ---: | ---: |")
    for name, (wall, cpu) in rows.items():
        print(f"| {name} | {wall:.2f} | {cpu:.1f} | {wall / serial:.2f} |")
    costs = per_block(args.frames)
    b = int(costs.pop("_frames_per_block"))
    per_frame_bytes = costs.pop("_bytes_per_frame")
    print(f"\nper block of {b} frames ({per_frame_bytes / 1e3:.0f} kB of XTC per frame):\n")
    print("| stage | CPU s | CPU ms per frame |")
    print("| --- | ---: | ---: |")
    for name, s in costs.items():
        per = f"{1e3 * s / b:.3f}" if name.startswith("block") else ""
        print(f"| {name} | {s:.3f} | {per} |")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
