"""Shared fixtures: sample data, real trajectories from MDAnalysisTests, a CLI runner."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
CHAIN2D = SAMPLE / "chain2d.npz"
BUTANE_PDB = SAMPLE / "butane.pdb"
BUTANE_DCD = SAMPLE / "butane.dcd"

# numba's first call compiles; deadline=None keeps hypothesis from timing that
settings.register_profile(
    "trajalign", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "trajalign"))


@pytest.fixture(scope="session")
def chain2d() -> np.ndarray:
    with np.load(CHAIN2D) as f:
        return f["arr"]


@pytest.fixture()
def unchanged():
    """Arrays that must leave the test as they came, to prove a function does not modify
    its input (checked when the test ends).

    They are not flagged read-only: Numba compiles every kernel again for read-only
    arrays, the same machine code, which had the suite compile about 80 signatures for
    nothing; that read-only arrays are accepted, with the same results, is the test of
    ``tests/test_read_only_input.py``."""
    made = []

    def make(a):
        a = np.array(a)
        made.append((a, a.copy()))
        return a

    yield make
    for a, before in made:
        np.testing.assert_array_equal(a, before, err_msg="a function modified its input")


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def invoke(*args: str) -> CliResult:
    """Run ``trajalign ARGS`` in-process through the real entry point (error handling
    included) with click's CliRunner isolation; returns exit code, stdout and stderr."""
    from click.testing import CliRunner

    from trajalign.cli import main

    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            main([str(a) for a in args], hard_exit=False)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return CliResult(code, stdout, stderr)


@pytest.fixture()
def cli():
    """``cli("center", path, "-o", out)`` -> CliResult(code, stdout, stderr)."""
    return invoke


# the files that take longest (Dask clusters, worker processes) first: make test deals
# the files out in this order (pytest-xdist's --dist loadfile --no-loadscope-reorder) to
# two processes, and the short ones then fill the time left, so that both end together
# (by default the files with the most tests go first, and these two few-test files ran
# last, often in one process while the other idled)
_FIRST = ("test_scale.py", "test_cluster.py")


def pytest_collection_modifyitems(config, items):
    order = {name: k for k, name in enumerate(_FIRST)}
    items.sort(key=lambda item: order.get(item.path.name, len(_FIRST)))  # stable
