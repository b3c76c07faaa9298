"""Where a cold start goes: the compile time of every Numba kernel one command compiles.

Runs one ``trajalign`` command in this process, with ``NUMBA_CACHE_DIR`` pointed at a new
empty folder (or ``--cache DIR``, to see what a filled cache still costs), and wraps
``numba``'s ``Dispatcher.compile`` to time each compile or cache load: per kernel and
signature, inclusive (with the kernels it calls, which Numba compiles while typing the
caller) and exclusive (itself only: its typing, its parallel gufuncs, LLVM), in CPU seconds
of the compiling thread. Then a table, largest exclusive time first::

    python benchmarks/compiletime.py rotate sample_data/butane.dcd -t sample_data/butane.pdb
    python benchmarks/compiletime.py --json out.json center sample_data/butane.dcd -t ...

Serial runs only: kernels compiled in ``--workers`` processes are not seen here.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time


def _install(records: list[dict]):
    """Wrap ``Dispatcher.compile``; every call appends one record (nesting kept)."""
    from numba.core import dispatcher, sigutils

    orig = dispatcher.Dispatcher.compile
    stack: list[dict] = []

    def compile(self, sig):
        existing = self.overloads.get(tuple(sigutils.normalize_signature(sig)[0]))
        hits = sum(self._cache_hits.values())
        rec = {
            "name": f"{self.py_func.__module__}.{self.py_func.__qualname__}",
            "sig": str(sig),
            "depth": len(stack),
            "children": 0.0,
        }
        stack.append(rec)
        # thread CPU time: compilation runs in this thread, and on a shared machine its
        # CPU time is steadier than wall time
        t0 = time.thread_time()
        try:
            return orig(self, sig)
        finally:
            dt = time.thread_time() - t0
            stack.pop()
            if stack:
                stack[-1]["children"] += dt
            rec["inclusive"] = dt
            rec["exclusive"] = dt - rec["children"]
            rec["loaded"] = sum(self._cache_hits.values()) > hits
            ov = self.overloads.get(tuple(sigutils.normalize_signature(sig)[0]))
            timers = getattr(ov, "metadata", None) or {}
            # LLVM's share (optimising and emitting machine code, of this kernel and of
            # the callees linked into it): the rest is Numba's typing and lowering
            rec["llvm"] = timers.get("timers", {}).get("llvm_lock", 0.0)
            if existing is None:  # an overload this process already has costs nothing
                records.append(rec)

    dispatcher.Dispatcher.compile = compile
    return orig


def table(records: list[dict], top: int = 40) -> str:
    """Markdown table: kernel, signature, exclusive / inclusive seconds, compiled or loaded."""
    rows = sorted(records, key=lambda r: -r["exclusive"])[:top]
    out = [
        "| kernel | signature | exclusive | inclusive | LLVM | |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        name = r["name"].removeprefix("trajalign.")
        sig = r["sig"] if len(r["sig"]) < 70 else r["sig"][:67] + "..."
        how = "loaded" if r["loaded"] else "compiled"
        out.append(
            f"| {name} | {sig} | {r['exclusive']:.2f} | {r['inclusive']:.2f} "
            f"| {r.get('llvm', 0.0):.2f} | {how} |"
        )
    return "\n".join(out)


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", help="NUMBA_CACHE_DIR to use (default: a new empty folder)")
    ap.add_argument("--json", help="also write the records to this file")
    ap.add_argument("--top", type=int, default=40, help="rows of the table")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="trajalign arguments")
    a = ap.parse_args(argv)
    cache = a.cache or tempfile.mkdtemp(prefix="numba-cold-")
    os.environ["NUMBA_CACHE_DIR"] = cache  # before numba is imported
    t0 = time.perf_counter()
    c0 = os.times()
    records: list[dict] = []
    _install(records)
    from trajalign.cli import main as cli_main

    try:
        cli_main(["-q", *a.command], hard_exit=False)
    except SystemExit as e:  # click's exit codes
        if e.code:
            raise
    wall = time.perf_counter() - t0
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    top = [r for r in records if r["depth"] == 0]
    compiled = sum(r["inclusive"] for r in top)
    load = os.getloadavg()
    print(f"trajalign {' '.join(a.command)}")
    print(
        f"wall {wall:.1f} s, CPU {cpu:.1f} s, in Dispatcher.compile {compiled:.1f} s CPU "
        f"({len(records)} kernel signatures; cache {cache}; load {load[0]:.1f} {load[1]:.1f})"
    )
    print(table(records, a.top))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"wall": wall, "cpu": cpu, "records": records}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
