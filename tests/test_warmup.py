"""``trajalign compile``: every kernel into Numba's cache, exit status 0/1."""

from __future__ import annotations

import json
import subprocess
import sys

EXE = [sys.executable, "-m", "trajalign"]


def test_compile_reaches_every_kernel():
    # a new process: no kernel is in memory yet, so every entry kernel has to be compiled
    # or loaded from the cache by one of the command's code paths to count as reached.
    # (make test runs trajalign compile before the suite, so every kernel is in the
    # cache by then: the test takes a few seconds; from an empty cache, about 25 s.)
    # two processes side by side (as make test runs it): each reaches only its groups'
    # kernels, so the union of what they report is checked
    p = subprocess.run([*EXE, "compile", "--json", "--jobs", "2"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["missing"] == [] and summary["failed"] == []
    assert summary["compiled"] + summary["loaded"] > 0
    assert "kernel signatures" not in p.stderr  # --json: the summary line is the JSON
    # a second process loads every kernel from the cache: none may have a cache key that
    # changes from process to process (a closed-over dispatcher did: recompiled each run)
    p = subprocess.run([*EXE, "compile", "--json", "--jobs", "1"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    again = json.loads(p.stdout)
    assert again["compiled"] == 0 and again["loaded"] > 0


def test_entry_kernels_are_the_ones_no_kernel_calls():
    from trajalign.cli.warmup import _dispatchers, entry_kernels

    disp = _dispatchers()
    entries = entry_kernels(disp)
    # called from Python; the helpers they call are compiled with them
    assert {"kabsch._superpose3", "center._center_weighted_run", "box.box_table_kernel"} <= set(
        entries
    )
    assert not {"kabsch._qcp3", "kabsch._quat_to_rot", "box._mic_lattice"} & set(entries)


def test_a_failed_code_path_exits_1(cli, monkeypatch, tmp_path):
    from trajalign.cli import warmup

    def one_failing_run(paths, out):
        return [[["center", str(tmp_path / "no.npz"), "-o", out]]]

    monkeypatch.setattr(warmup, "warmup_runs", one_failing_run)
    res = cli("compile")
    assert res.code == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("Error: a code path failed: trajalign center") and "no.npz" in line


def _python_code(mod, jitted):
    """Every code object of module ``mod``'s functions and methods, nested ones
    included, except the Python source of Numba kernels (``jitted``: compiled code)."""
    import inspect

    todo = []
    for obj in vars(mod).values():
        if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
            todo.append(obj.__code__)
        elif inspect.isclass(obj) and obj.__module__ == mod.__name__:
            for member in vars(obj).values():
                fn = getattr(member, "__func__", member)
                if inspect.isfunction(fn):
                    todo.append(fn.__code__)
    while todo:
        code = todo.pop()
        if code in jitted:
            continue
        yield code
        todo.extend(c for c in code.co_consts if inspect.iscode(c))


def test_no_python_code_calls_a_kernel_compiled_without_wrappers():
    """Kernels compiled with HELPER_JIT have no CPython wrapper: a call from Python
    crashes the interpreter (a segmentation fault, no traceback). No function of
    trajalign outside a kernel may name one (as a global or an attribute)."""
    import importlib
    import pkgutil

    from numba.core.dispatcher import Dispatcher

    import trajalign

    mods = [
        importlib.import_module(m.name)
        for m in pkgutil.walk_packages(trajalign.__path__, "trajalign.")
        if not m.name.endswith("__main__")
    ]
    found = []
    for mod in mods:
        for name, obj in vars(mod).items():
            vals = obj.values() if isinstance(obj, dict) else [obj]
            found += [(name, v) for v in vals if isinstance(v, Dispatcher)]
    jitted = {d.py_func.__code__ for _, d in found}
    bare = set()
    for name, d in found:
        if d.targetoptions.get("no_cpython_wrapper"):
            bare |= {name, d.py_func.__name__}
    assert {"_sym3_eigen", "_moments3", "_mic_lattice", "frame_axes"} <= bare
    for mod in mods:
        for code in _python_code(mod, jitted):
            named = bare & set(code.co_names)
            assert not named, f"{mod.__name__}.{code.co_qualname} calls {named} from Python"
