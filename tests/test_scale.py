"""Streaming, Dask execution and resume: every way of running gives the same file."""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager

import h5py
import numpy as np
import pytest

from trajalign import executors as ex
from trajalign import tasks
from trajalign.errors import ClusterError, ClusterLost, ResumeError
from trajalign.executors import DaskExecutor, make_executor
from trajalign.io import open_source
from trajalign.jobs.center import CenterJob
from trajalign.pipeline import chunk_size, partial_path, run

from .conftest import BUTANE_DCD, BUTANE_PDB, CHAIN2D, SAMPLE
from .test_h5md import datasets


def assert_same_file(a, b):
    da, db = datasets(a), datasets(b)
    assert da.keys() == db.keys()
    for k in da:
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)


def local_cluster():
    """Two single-threaded worker processes on loopback (a context manager)."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )


def _shm_files() -> set:
    import glob

    return set(glob.glob("/dev/shm/trajalign-*"))


@pytest.fixture(autouse=True)
def no_shared_memory_left():
    """Every run here, finished or failed, removes the files its workers handed over."""
    before = _shm_files()
    yield
    assert _shm_files() - before == set()


@pytest.fixture(scope="module")
def cluster():
    """A cluster shared by the tests of this module, started and stopped here."""
    with local_cluster() as c:
        yield c


@pytest.mark.parametrize(
    "paths, kw",
    [
        ((CHAIN2D,), {}),
        ((BUTANE_DCD,), {"top": BUTANE_PDB, "select": "name C*"}),
    ],
)
def test_dask_cluster_equals_serial(tmp_path, cluster, paths, kw):
    serial, dask = tmp_path / "serial.h5", tmp_path / "dask.h5"
    run(open_source(paths, **kw), CenterJob("com"), str(serial), chunk_frames=97)
    ex = make_executor(scheduler=cluster.scheduler_address)
    summary = run(
        open_source(paths, **kw), CenterJob("com"), str(dask), chunk_frames=97, executor=ex
    )
    assert summary["executor"] == "dask"
    assert_same_file(serial, dask)


def test_local_workers_option_equals_serial(tmp_path, cli):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert cli("center", CHAIN2D, "-o", a, "--chunk-frames", 300).code == 0
    res = cli("center", CHAIN2D, "-o", b, "--chunk-frames", 300, "--workers", 2, "--json")
    assert res.code == 0, res.stderr
    assert_same_file(a, b)


def test_unreachable_scheduler_is_a_clear_error_not_a_hang(tmp_path, cli):
    t0 = time.perf_counter()
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        with DaskExecutor(scheduler="tcp://127.0.0.1:9", timeout=2):
            pass
    assert time.perf_counter() - t0 < 30
    res = cli("center", CHAIN2D, "-o", tmp_path / "x.h5", "--scheduler-file", tmp_path / "no.json")
    assert res.code == 1 and "scheduler file" in res.stderr
    assert not (tmp_path / "x.h5").exists()


def test_memory_budget_sets_the_block_size():
    # 12 points x 2 dims x 20 bytes per coordinate (pipeline._BYTES_PER_COORD) = 480 bytes
    assert chunk_size(12, 2, None, 1) == 2**20 // 480
    assert chunk_size(3341, 3, None, 256) == 256 * 2**20 // (3341 * 3 * 20)
    assert chunk_size(10, 3, 5, 1) == 5


class Interrupting(CenterJob):
    """Raises KeyboardInterrupt on the block starting at ``at`` (a Ctrl-C mid-run)."""

    def __init__(self, at):
        super().__init__("com")
        self.at = at

    def process(self, block):
        if block.start == self.at:
            raise KeyboardInterrupt
        return super().process(block)


def test_resume_after_interrupt_equals_uninterrupted(tmp_path, monkeypatch):
    import trajalign.pipeline as pl

    monkeypatch.setattr(pl, "FLUSH_SECONDS", 0.0)  # checkpoint after every block
    ref_out, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    run(open_source(CHAIN2D), CenterJob("com"), str(ref_out), chunk_frames=200)
    with pytest.raises(KeyboardInterrupt):
        run(open_source(CHAIN2D), Interrupting(at=1000), str(out), chunk_frames=200)
    part = partial_path(out)
    assert part.exists() and not out.exists()
    with h5py.File(part) as f:
        assert f["trajalign/resume/done"][()].tolist() == [1] * 5 + [0] * 6
    # another parameter is refused, the partial file is kept
    with pytest.raises(ResumeError, match="other parameters or inputs"):
        run(open_source(CHAIN2D), CenterJob("geometric"), str(out), chunk_frames=200, resume=True)
    with pytest.raises(ResumeError):
        run(
            open_source(CHAIN2D, stop=2000),
            CenterJob("com"),
            str(out),
            chunk_frames=200,
            resume=True,
        )
    assert part.exists()
    summary = run(open_source(CHAIN2D), CenterJob("com"), str(out), chunk_frames=200, resume=True)
    assert "resumed: 5 of 11 blocks were done" in summary["warnings"]
    assert not part.exists()
    assert_same_file(ref_out, out)


def test_nojump_resume_after_interrupt_equals_uninterrupted(tmp_path, monkeypatch):
    """A resumed nojump run rebuilds each atom's image at its first unfinished block."""
    import trajalign.pipeline as pl

    monkeypatch.setattr(pl, "FLUSH_SECONDS", 0.0)
    src = dict(
        paths=SAMPLE / "dimer.dcd", top=SAMPLE / "dimer.pdb", select="resname CHA", pbc="nojump"
    )
    ref_out, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    run(open_source(**src), CenterJob("com"), str(ref_out), chunk_frames=60)
    with pytest.raises(KeyboardInterrupt):
        run(open_source(**src), Interrupting(at=240), str(out), chunk_frames=60)
    summary = run(open_source(**src), CenterJob("com"), str(out), chunk_frames=60, resume=True)
    assert "resumed: 4 of 9 blocks were done" in summary["warnings"]
    assert_same_file(ref_out, out)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    """A real process killed with SIGKILL mid-run; rerunning with --resume finishes it."""
    import os
    import signal
    import subprocess
    import sys

    data = tmp_path / "x.npy"
    X = np.random.default_rng(9).normal(size=(3000, 5, 3)).astype(np.float32)
    np.save(data, X)
    out, ref_out = tmp_path / "out.h5", tmp_path / "ref.h5"
    cmd = [sys.executable, "-m", "trajalign", "center", str(data), "--chunk-frames", "1"]
    env = dict(os.environ, TRAJALIGN_FLUSH_SECONDS="0.2")
    proc = subprocess.Popen([*cmd, "-o", str(out)], env=env, stderr=subprocess.PIPE)
    part = partial_path(out)
    deadline = time.time() + 60
    while time.time() < deadline and not part.exists():
        time.sleep(0.05)
    time.sleep(0.6)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert part.exists() and not out.exists()
    res = subprocess.run([*cmd, "-o", str(out), "--resume"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    # a kill in the middle of an HDF5 metadata write makes the partial file unreadable;
    # then the run starts over, which is slower but gives the same file
    assert "resumed:" in res.stderr or "starting over" in res.stderr
    subprocess.run([*cmd, "-o", str(ref_out)], check=True, capture_output=True)
    assert_same_file(ref_out, out)


def test_dask_run_reports_nan_counts_like_serial(tmp_path, cluster, cli):
    """Tallies made from block results reach the summary also when workers made them."""
    X = np.random.default_rng(2).normal(size=(40, 5, 3)).astype(np.float32)
    X[[3, 17, 30], 2] = X[[3, 17, 30], 1]  # coincident points: angles 0-1-2, 1-2-3 undefined
    data = tmp_path / "x.npy"
    np.save(data, X)
    args = [
        "internal",
        data,
        "--features",
        "angles",
        "--undefined",
        "nan",
        "--json",
        "--chunk-frames",
        7,
    ]
    serial = cli(*args, "-o", tmp_path / "s.h5")
    dask = cli(*args, "-o", tmp_path / "d.h5", "--scheduler", cluster.scheduler_address)
    assert serial.code == 0 and dask.code == 0, dask.stderr
    import json

    ws, wd = json.loads(serial.stdout)["warnings"], json.loads(dask.stdout)["warnings"]
    assert ws == wd and any("6 undefined values written as NaN in 3 frames" in w for w in ws)
    assert_same_file(tmp_path / "s.h5", tmp_path / "d.h5")


def test_write_error_leaves_nothing(tmp_path, monkeypatch, cli):
    """A full disk mid-run: one Error line, no output and no partial file left."""
    import errno

    from trajalign.io.h5md import H5MDWriter

    real = H5MDWriter.write_block
    calls = []

    def failing(self, offset, *args, **kw):
        calls.append(offset)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, offset, *args, **kw)

    monkeypatch.setattr(H5MDWriter, "write_block", failing)
    existing = tmp_path / "o.h5"
    existing.write_bytes(b"old")
    res = cli("center", CHAIN2D, "-o", existing, "--force", "--chunk-frames", 100)
    assert res.code == 1
    assert res.stderr.strip().splitlines() == [
        f"Error: writing the output failed: [Errno 28] No space left on device "
        f"(check free space and permissions in {tmp_path})"
    ]
    assert existing.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.h5"]


class DiesOnce(CenterJob):
    """Kills its worker process on the block at ``at`` the first time (a crashed node)."""

    def __init__(self, at, marker, always=False):
        super().__init__("com")
        self.at, self.marker, self.always = at, str(marker), always

    def process(self, block):
        import os

        if block.start == self.at and (self.always or not os.path.exists(self.marker)):
            open(self.marker, "w").close()
            os._exit(1)
        return super().process(block)


@pytest.fixture()
def picklable_by_value():
    import cloudpickle

    import tests.test_scale as me

    cloudpickle.register_pickle_by_value(me)
    yield
    cloudpickle.unregister_pickle_by_value(me)


@pytest.fixture(params=["dask", "local"])
def executor(request):
    """A Dask executor on the module's cluster, or two local worker processes."""
    if request.param == "dask":
        exe = make_executor(scheduler=request.getfixturevalue("cluster").scheduler_address)
    else:
        exe = make_executor(workers=2)
    try:
        yield exe
    finally:
        exe.close()


def test_worker_death_block_is_retried(tmp_path, executor, picklable_by_value):
    ref_out, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    run(open_source(CHAIN2D), CenterJob("com"), str(ref_out), chunk_frames=256)
    run(
        open_source(CHAIN2D),
        DiesOnce(512, tmp_path / "died"),
        str(out),
        chunk_frames=256,
        executor=executor,
    )
    assert (tmp_path / "died").exists()  # a worker really died
    if executor.name == "local":
        assert len(executor.pool.workers) == 2  # the dead one was replaced
    assert_same_file(ref_out, out)


def test_worker_death_every_time_keeps_what_is_done(tmp_path, picklable_by_value):
    """A block that kills every Dask worker it meets: the run stops (the cluster's
    doing, not the data's), the blocks written are kept, and the message says so."""
    out = tmp_path / "out.h5"
    with local_cluster() as c:  # its own: this test kills workers until Dask gives up
        ex = make_executor(scheduler=c.scheduler_address)
        with pytest.raises(ClusterLost) as err:
            run(
                open_source(CHAIN2D),
                DiesOnce(512, tmp_path / "died", always=True),
                str(out),
                chunk_frames=256,
                executor=ex,
            )
    text = str(err.value)
    # how Dask gives up varies from run to run (KilledWorker, cancelled futures, a lost
    # connection): each is a ClusterLost naming the cluster, which keeps the blocks
    assert "Dask" in text, text
    assert "blocks are kept in" in text and "--resume" in text
    assert not out.exists() and partial_path(out).exists()


@pytest.fixture(scope="module")
def cached_kernels():
    """Every kernel in Numba's cache: make test compiled them before the suite (then this
    loads them, seconds); a bare pytest run with an empty cache compiles them here."""
    subprocess.run([sys.executable, "-m", "trajalign", "compile", "-q"], check=True)


BUTANE = [BUTANE_DCD, "-t", BUTANE_PDB]

#: ``python -c RUNS '[[ARGS], ...]'``: trajalign runs one after the other in one process
#: (a process start and its imports, about 1 s, once instead of once per run)
RUNS = """
import json, sys
from trajalign.cli import main
for argv in json.loads(sys.argv[1]):
    try:
        main(argv, hard_exit=False)
    except SystemExit as exc:
        if exc.code:
            raise
"""
DIMER = [SAMPLE / "dimer.dcd", "-t", SAMPLE / "dimer.pdb", "-s", "resname CHA"]


@pytest.mark.parametrize(
    "args",
    [
        ["rotate", *BUTANE, "--fit-select", "name C*"],
        ["rotate", *BUTANE, "--reference", "average", "--weights", "mass"],
        ["rotate", CHAIN2D, "--method", "principal", "--sign", "continuity"],
        ["rotate", CHAIN2D, "--method", "point", "--points", "0,1"],
        ["internal", *BUTANE, "--transform", "inverse,rbf", "--dihedral-encoding", "sincos"],
        ["internal", CHAIN2D, "--pairs", "all", "--features", "distances,eigvals"],
        ["rotate", *DIMER, "--pbc", "nojump"],
        ["internal", *DIMER, "--pairs", "all", "--pbc", "cluster"],
    ],
    ids=[
        "kabsch-first",
        "kabsch-average",
        "principal-continuity",
        "point",
        "internal-3d",
        "internal-2d-all",
        "kabsch-nojump",
        "internal-cluster",
    ],
)
def test_every_command_on_a_cluster_equals_serial(tmp_path, cached_kernels, cluster, args):
    """Same file, dataset by dataset, from one block, and from blocks of 97 frames on
    Dask workers and on --workers processes (serial blocks against one block:
    tests/test_rotate_cli.py and test_h5md.py).

    Numba's freshly compiled code and the same kernel loaded from its cache can differ in
    the last bits of fast-math sums (seen: Kabsch RMSDs, 1e-13 relative). Every run
    compared here therefore runs cached kernels, as a user's runs do after the first:
    every kernel is in the cache (``trajalign compile``, which reaches every signature
    these commands use), and the three runs are made by a new process (this test process
    may hold freshly compiled kernels from other tests), one after the other through the
    command line's entry point: the serial run, the --workers run (forked from it),
    then the Dask run (whose client leaves threads behind).
    """
    one, dask, local = tmp_path / "one.h5", tmp_path / "dask.h5", tmp_path / "local.h5"
    base = ["-q", *map(str, args)]
    runs = [
        [*base, "-o", str(one), "--chunk-frames", "100000"],
        [*base, "-o", str(local), "--chunk-frames", "97", "--workers", "2"],
        # the driver too runs cached kernels: it computes the average reference itself
        [*base, "-o", str(dask), "--chunk-frames", "97", "--scheduler", cluster.scheduler_address],
    ]
    subprocess.run([sys.executable, "-c", RUNS, json.dumps(runs)], check=True, capture_output=True)
    assert_same_file(one, dask)
    assert_same_file(one, local)


def test_job_arrays_arriving_read_only_give_the_same_bits():
    """Dask hands a scattered job's arrays over read-only; Numba compiles read-only arrays
    separately and its fast-math sums may round differently (seen: 20 of 1000 RMSDs off
    in the last bits), so a job restores writable copies when unpickled."""
    from trajalign.jobs.rotate import RotateJob

    src = open_source(BUTANE_DCD, top=BUTANE_PDB)
    job = RotateJob(method="kabsch")
    job.prepare(src)
    block = src.read(0, src.n_frames)
    want = job.process(block)
    state = dict(job.__dict__)
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            state[key] = value.copy()
            state[key].flags.writeable = False
    again = RotateJob.__new__(RotateJob)
    again.__setstate__(state)
    got = again.process(src.read(0, src.n_frames))
    np.testing.assert_array_equal(got.coords, want.coords)
    for name in want.extra:
        np.testing.assert_array_equal(got.extra[name], want.extra[name], err_msg=name)


# ------------------------------------------------------------ /dev/shm hand-over


def _block(n_big=300_000):
    from trajalign.executors import BlockOutput
    from trajalign.pipeline import BlockResult

    rng = np.random.default_rng(4)
    result = BlockResult(
        rng.normal(size=(n_big // 3, 3)).astype(np.float32),
        {"big": rng.normal(size=n_big), "small": np.arange(5)},
    )
    return BlockOutput(3, 30, np.arange(10), np.zeros(10), None, result)


@pytest.mark.skipif(tasks.host_token() is None, reason="no /dev/shm here")
def test_shared_memory_handover_roundtrip():
    out = _block()
    coords, big, small = out.result.coords.copy(), out.result.extra["big"].copy(), 5
    prefix = f"trajalign-test-{secrets.token_hex(4)}"
    tasks.export_arrays(out, prefix, min_bytes=1 << 20)
    assert isinstance(out.result.coords, tasks.SharedArray)
    assert isinstance(out.result.extra["big"], tasks.SharedArray)
    assert isinstance(out.result.extra["small"], np.ndarray)  # below the threshold: inline
    assert len(_shm_files()) >= 2
    tasks.import_arrays(out)
    np.testing.assert_array_equal(out.result.coords, coords)
    np.testing.assert_array_equal(out.result.extra["big"], big)
    assert out.result.extra["small"].size == small
    out.result.coords += 1  # the mapping is private memory of the driver now: writable
    assert not any(prefix in f for f in _shm_files())  # names removed when mapped


@pytest.mark.skipif(tasks.host_token() is None, reason="no /dev/shm here")
def test_shared_memory_full_keeps_the_array_in_the_result(monkeypatch):
    import errno
    import os

    real_write, calls = os.write, []

    def short_then_full(fd, data):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data[:4096])  # a short write first, then the disk is full

    monkeypatch.setattr(tasks.os, "write", short_then_full)
    out = _block()
    coords = out.result.coords.copy()
    tasks.export_arrays(out, f"trajalign-test-{secrets.token_hex(4)}", min_bytes=1 << 20)
    assert isinstance(out.result.coords, np.ndarray)
    np.testing.assert_array_equal(out.result.coords, coords)


@pytest.fixture()
def every_array_through_shm(monkeypatch):
    """The driver tells workers to hand over every array, however small, as a file."""
    monkeypatch.setattr(ex, "SHM_MIN_BYTES", 0)


def test_cluster_through_shared_memory_equals_serial(tmp_path, cluster, every_array_through_shm):
    # centering: no fast-math sum whose last bits could differ between this process's
    # freshly compiled kernels and the workers' cached ones (see
    # test_every_command_on_a_cluster_equals_serial)
    serial, dask = tmp_path / "serial.h5", tmp_path / "dask.h5"
    kw = {"top": BUTANE_PDB}
    run(open_source(BUTANE_DCD, **kw), CenterJob("com"), str(serial), chunk_frames=97)
    exe = make_executor(scheduler=cluster.scheduler_address)
    run(open_source(BUTANE_DCD, **kw), CenterJob("com"), str(dask), chunk_frames=97, executor=exe)
    assert_same_file(serial, dask)


def test_failed_cluster_run_leaves_no_shared_memory(tmp_path, cluster, every_array_through_shm):
    """A block fails while others are finished or in flight: the error, no files left
    (the autouse fixture checks /dev/shm)."""
    from trajalign.errors import DataError

    X = np.random.default_rng(5).normal(size=(400, 6, 3)).astype(np.float32)
    X[390, 2, 0] = np.nan
    data = tmp_path / "x.npy"
    np.save(data, X)
    exe = make_executor(scheduler=cluster.scheduler_address)
    with pytest.raises(DataError, match="frame 390"):
        run(
            open_source(data),
            CenterJob("com"),
            str(tmp_path / "o.h5"),
            chunk_frames=10,
            executor=exe,
        )
    assert not (tmp_path / "o.h5").exists()


class WherePid(CenterJob):
    """Centers, slowly, and records which process made each frame."""

    def declare(self, writer, source) -> None:
        super().declare(writer, source)
        writer.create("trajalign/pid", (source.n_frames,), dtype=np.int64)

    def process(self, block):
        import os

        time.sleep(0.05)
        result = super().process(block)
        result.extra["trajalign/pid"] = np.full(len(block.frames), os.getpid())
        return result


def test_local_workers_do_the_blocks_and_equal_serial(tmp_path, picklable_by_value):
    """--workers N: the worker processes, not the driver, process the blocks (on 2 cores
    a driver decoding beside two workers slowed the run), and the file equals serial."""
    import os

    ref_out, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    run(open_source(CHAIN2D), CenterJob("com"), str(ref_out), chunk_frames=16)
    exe = make_executor(workers=2)
    exe.start()
    try:
        summary = run(
            open_source(CHAIN2D), WherePid("com"), str(out), chunk_frames=16, executor=exe
        )
    finally:
        exe.close()
    assert summary["executor"] == "local"
    with h5py.File(out, "r+") as f:
        pids = f["trajalign/pid"][()]
        del f["trajalign/pid"]
    assert os.getpid() not in pids and len(set(pids.tolist())) == 2, np.unique(pids)
    assert_same_file(ref_out, out)


def test_local_worker_death_every_time_keeps_what_is_done(tmp_path, picklable_by_value):
    """A block that kills every worker it meets: an error naming its frames, the blocks
    finished before kept for --resume, which then gives the serial file."""
    ref_out, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    run(open_source(CHAIN2D), CenterJob("com"), str(ref_out), chunk_frames=256)
    exe = make_executor(workers=2)
    try:
        with pytest.raises(ClusterLost, match=r"died 3 times .* frames 512-767") as err:
            run(
                open_source(CHAIN2D),
                DiesOnce(512, tmp_path / "died", always=True),
                str(out),
                chunk_frames=256,
                executor=exe,
            )
    finally:
        exe.close()
    assert "(exit status 1)" in str(err.value) and "--resume" in str(err.value)
    assert not out.exists() and partial_path(out).exists()
    assert exe.pool.workers == []
    run(open_source(CHAIN2D), CenterJob("com"), str(out), chunk_frames=256, resume=True)
    assert_same_file(ref_out, out)


def test_local_worker_dead_before_its_block_is_sent_is_replaced(tmp_path):
    """A worker that died after its last result (CI saw this): sending it the next block
    fails with a broken pipe, which is a dead worker to replace, not an output error."""
    ref_out, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    run(open_source(CHAIN2D), CenterJob("com"), str(ref_out), chunk_frames=256)
    exe = make_executor(workers=2)
    exe.start()
    try:
        exe.pool.fill()
        for w in exe.pool.workers:
            w.proc.kill()
            w.proc.join()
        run(open_source(CHAIN2D), CenterJob("com"), str(out), chunk_frames=256, executor=exe)
    finally:
        exe.close()
    assert_same_file(ref_out, out)


def test_local_worker_error_reaches_the_driver_whole(tmp_path):
    """A block's own error (NaN in the input) comes back with its message and hint."""
    from trajalign.errors import DataError

    X = np.random.default_rng(5).normal(size=(400, 6, 3)).astype(np.float32)
    X[390, 2, 0] = np.nan
    data = tmp_path / "x.npy"
    np.save(data, X)
    exe = make_executor(workers=2)
    try:
        with pytest.raises(DataError, match="frame 390") as err:
            run(
                open_source(data),
                CenterJob("com"),
                str(tmp_path / "o.h5"),
                chunk_frames=10,
                executor=exe,
            )
    finally:
        exe.close()
    assert err.value.hint
    assert not (tmp_path / "o.h5").exists() and not partial_path(tmp_path / "o.h5").exists()


@contextmanager
def held_elsewhere(code: str, path):
    """Another process runs ``code`` (``sys.argv[1]`` is ``path``) and stays, holding
    what it opened, until the block ends."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", f"{code}; print('ready', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.communicate("")


def test_a_second_run_on_the_same_output_is_refused_and_harms_nothing(tmp_path, cli):
    """HDF5 truncates a file before it checks its lock: a second run of the same command
    must neither wipe the first run's temporary output nor write into it."""

    out = tmp_path / "o.h5"
    part = partial_path(out)
    # stands for a first run: holds the partial file open
    code = "import sys, h5py; f = h5py.File(sys.argv[1], 'w'); f['x'] = [1, 2, 3]; f.flush()"
    with held_elsewhere(code, part):
        for more in ([], ["--resume"]):
            res = cli("center", CHAIN2D, "-o", out, *more)
            assert res.code == 1, res.stderr
            assert res.stderr.strip().splitlines() == [
                f"Error: another run is writing {out} now (its temporary file {part.name} is "
                "locked) (wait for that run to finish, or give another -o)"
            ]
    with h5py.File(part) as f:
        assert f["x"][()].tolist() == [1, 2, 3]
    assert not out.exists()
    # once that run is gone, its leftover is a killed run's partial file: started over
    assert cli("center", CHAIN2D, "-o", out).code == 0 and not part.exists()


# ------------------------------------------------------------- one run per output


def test_run_lock_refuses_a_second_writer_without_hdf5_locks(tmp_path, cli):
    """With --hdf5-locking false HDF5 cannot see another writer; the lock file can."""

    out = tmp_path / "o.h5"
    # stands for a first run that holds the lock
    code = "import sys; from trajalign.io.output import RunLock; RunLock(sys.argv[1]).__enter__()"
    with held_elsewhere(code, out) as holder:
        for more in ([], ["--resume"]):
            res = cli("center", CHAIN2D, "-o", out, "--hdf5-locking", "false", *more)
            assert res.code == 1, res.stderr
            (line,) = res.stderr.strip().splitlines()
            assert line.startswith(f"Error: process {holder.pid} on ") and "is writing" in line
            assert f"if that run is gone, delete {tmp_path / '.o.h5.lock'}" in line
    assert not out.exists() and not partial_path(out).exists()
    assert cli("center", CHAIN2D, "-o", out, "--hdf5-locking", "false").code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.h5"]  # lock gone too


def test_run_lock_of_a_killed_run_is_taken_over(tmp_path, cli):
    import json
    import socket
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    out = tmp_path / "o.h5"
    lock = tmp_path / ".o.h5.lock"
    lock.write_text(
        json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "started": 1})
    )
    res = cli("center", CHAIN2D, "-o", out, "--hdf5-locking", "false")
    assert res.code == 0, res.stderr
    assert not lock.exists() and out.exists()
    # a lock from another host cannot be checked: refused, and the message says what to do
    lock.write_text(json.dumps({"host": "node-elsewhere", "pid": 1, "started": 1}))
    res = cli("center", CHAIN2D, "-o", out, "--force")
    assert res.code == 1 and "process 1 on node-elsewhere" in res.stderr
    assert lock.exists()


def test_errors_in_the_input_come_before_any_worker(tmp_path, cli, monkeypatch):
    """A selection that matches nothing: reported with no worker started, and with an
    unreachable scheduler, without waiting for it."""
    from trajalign import pool

    started = []
    monkeypatch.setattr(pool.Pool, "fill", lambda self: started.append("fill"))
    monkeypatch.setattr(pool.Pool, "fork_from_here", lambda self, kw: started.append("fork"))
    args = ["rotate", *BUTANE, "-s", "name XX", "-o", tmp_path / "o.h5"]
    res = cli(*args, "--workers", 2)
    assert res.code == 1 and "name XX" in res.stderr and started == []
    t0 = time.perf_counter()
    res = cli(*args, "--scheduler", "tcp://127.0.0.1:9")
    assert res.code == 1 and "name XX" in res.stderr
    assert time.perf_counter() - t0 < 5  # the scheduler's timeout is 10 s
    assert list(tmp_path.iterdir()) == []
