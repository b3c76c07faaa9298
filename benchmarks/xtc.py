"""Native XTC decoder (issue 23) against MDAnalysis' XTC reader, in one run.

The input is the solvated adenylate kinase of MDAnalysisTests (``XTC``: 47681 atoms, the
protein its first 3341, 10 frames) repeated to ``--frames`` frames (default 200) by
concatenating the file's bytes (an XTC is frames back to back, so the copy is a valid
XTC whose frames decode exactly as the originals); written once to
``benchmarks/data/`` (gitignored). Everything is read from the page cache (warm-up
first), so this measures decoding, not the disk.

Rows (best of ``--repeat``, per frame, contenders interleaved):

- MDAnalysis: ``for ts in XTCReader(path)`` (positions in Angstrom, box, time: what
  trajalign's reads cost today), and its low-level ``XTCFile.read()`` (nm, no Timestep);
- native, ``XTCReader.read`` of a block of every frame on one Numba thread: every atom,
  and atoms ``[0, 3340]`` only (the protein);
- the same block decoded on 2 threads (ranges of frames side by side; all atoms, and the
  protein);
- the index: ``build_index`` (the header walk) against MDAnalysis' offsets scan.

Correctness is asserted on the way: the native coordinates equal MDAnalysis' bit for bit.

Usage: ``python benchmarks/xtc.py [--frames 200] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
PROTEIN = 3341  # atoms of adenylate kinase at the start of the solvated system


def tiled(frames: int) -> str:
    """The solvated adk XTC repeated to ``frames`` frames (a multiple of 10)."""
    from MDAnalysisTests.datafiles import XTC

    copies = max(1, -(-frames // 10))
    path = os.path.join(DATA, f"adk_oplsaa_tiled_{copies * 10}.xtc")
    if not os.path.exists(path):
        os.makedirs(DATA, exist_ok=True)
        raw = open(XTC, "rb").read()
        with open(path + ".part", "wb") as fh:
            for _ in range(copies):
                fh.write(raw)
        os.replace(path + ".part", path)
    return path


def best(fn, repeat: int) -> float:
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    import numba
    from MDAnalysis.coordinates.XTC import XTCReader as MDAReader
    from MDAnalysis.lib.formats.libmdaxdr import XTCFile

    from trajalign.io.xtc import XTCReader, build_index

    path = tiled(args.frames)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mda = MDAReader(path, refresh_offsets=True)
    ix = build_index(path)
    F, n = ix.n_frames, ix.natoms
    reader = XTCReader(ix)
    frames = np.arange(F)
    out = np.empty((F, n, 3), np.float32)
    part = np.empty((F, PROTEIN, 3), np.float32)

    # correctness first: every frame, bit for bit
    numba.set_num_threads(2)
    reader.read(frames, out=out)
    for k, ts in enumerate(mda):
        assert np.array_equal(ts.positions.view(np.uint32), out[k].view(np.uint32)), k

    def mda_iter():
        for ts in mda:
            ts.positions  # noqa: B018 - the read is the work

    def mda_lowlevel():
        f = XTCFile(path)
        for _ in range(F):
            f.read()
        f.close()

    def block(buf):
        return lambda: reader.read(frames, buf.shape[1] - 1, out=buf)

    def mda_offsets():
        f = XTCFile(path)
        f.calc_offsets()
        f.close()

    rows = {}
    for _ in range(args.repeat):
        for name, fn, threads in (
            ("MDAnalysis XTCReader, every atom", mda_iter, 1),
            ("MDAnalysis XTCFile.read (nm, no Timestep)", mda_lowlevel, 1),
            ("native, 1 thread, every atom", block(out), 1),
            (f"native, 1 thread, atoms 0..{PROTEIN - 1}", block(part), 1),
            ("native block, 2 threads, every atom", block(out), 2),
            (f"native block, 2 threads, atoms 0..{PROTEIN - 1}", block(part), 2),
        ):
            numba.set_num_threads(threads)
            t = best(fn, 1)
            rows[name] = min(rows.get(name, np.inf), t)
    t_ix = best(lambda: build_index(path), args.repeat)
    t_off = best(mda_offsets, args.repeat)

    base = rows["MDAnalysis XTCReader, every atom"]
    print(f"## Native XTC decode: {F} frames x {n} atoms ({os.path.getsize(path) / 1e6:.0f} MB)")
    cpu = platform.processor() or platform.machine()
    layer = numba.threading_layer()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{cpu}, {os.cpu_count()} CPUs, numba {numba.__version__} ({layer}), load {load:.1f}")
    print()
    print("| reader | ms/frame | vs MDAnalysis XTCReader |")
    print("| --- | --- | --- |")
    for name, t in rows.items():
        print(f"| {name} | {t / F * 1e3:.3f} | {t / base:.3f}x |")
    print()
    print("| index | ms | ratio |")
    print("| --- | --- | --- |")
    print(f"| MDAnalysis offsets scan (XTCFile.calc_offsets) | {t_off * 1e3:.2f} | 1x |")
    print(
        f"| native build_index (header walk, every header checked) | {t_ix * 1e3:.2f} | "
        f"{t_ix / t_off:.2f}x |"
    )
    mda.close()


if __name__ == "__main__":
    main()
