"""Cluster runs when things go wrong, on a real cluster: a ``dask scheduler`` and
``dask worker`` processes on loopback, started and stopped by each test (the SLURM
recipe of the README, without SLURM).

Workers load ``slow_blocks.py`` (``dask worker --preload``), which makes every block
take 0.3 s, so that a run is reliably mid-way when a test stops it; a block still gives
the same result.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from trajalign.pipeline import partial_path

from .test_scale import assert_same_file

BIN = Path(sys.executable).parent
EXE = [sys.executable, "-m", "trajalign"]

PRELOAD = """
import os, time
import trajalign.executors as ex
import trajalign.tasks as tasks
from trajalign.errors import InputError

_real = tasks.process_block


def slow(*args, **kw):
    time.sleep(float(os.environ.get("SLOW_BLOCK_SECONDS", "0.3")))
    out = _real(*args, **kw)
    # one file per finished block, so that a test can wait for work done, not for time
    done = os.environ.get("SLOW_BLOCK_DONE")
    if done:
        open(os.path.join(done, f"{os.getpid()}-{time.monotonic_ns()}"), "w").close()
    return out


tasks.process_block = slow

def _hide(spec):
    # stands for a folder the workers' machines do not mount
    for p in spec.paths:
        if "driver-only" in p:
            raise InputError(f"{p}: no such file", "check the path")


_real_run = ex.run_task


def run_task(spec, *args, **kw):
    _hide(spec)
    return _real_run(spec, *args, **kw)


_real_probe = ex._probe_task


def probe(spec, *args):
    try:
        _hide(spec)
    except InputError as err:
        return "error", ex._worker_name(), str(err)
    return _real_probe(spec, *args)


ex.run_task = run_task
ex._probe_task = probe
"""


class Cluster:
    """A scheduler and ``n`` workers (no nanny: a killed worker stays dead)."""

    def __init__(self, tmp: Path, n: int = 2, block_seconds: float = 0.3) -> None:
        self.tmp = tmp
        self.block_seconds = block_seconds
        self.file = tmp / "sched.json"
        self.preload = tmp / "slow_blocks.py"
        self.preload.write_text(PRELOAD)
        self.workdir = tmp / "elsewhere"  # workers run in another folder than the driver
        self.workdir.mkdir(exist_ok=True)
        self.done = tmp / "done-blocks"  # a file per block a worker finished
        self.done.mkdir(exist_ok=True)
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.scheduler = self._start(
            [
                str(BIN / "dask"),
                "scheduler",
                "--scheduler-file",
                str(self.file),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
            ]
        )
        deadline = time.time() + 60
        while not self.file.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert self.file.exists(), "the scheduler did not start"
        for _ in range(n):
            self.add_worker()
        self.wait_workers(n)

    def _start(self, cmd) -> subprocess.Popen:
        p = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(
                os.environ,
                PYTHONPATH=str(self.tmp),
                SLOW_BLOCK_DONE=str(self.done),
                SLOW_BLOCK_SECONDS=str(self.block_seconds),
            ),
        )
        self.procs.append(p)
        return p

    def add_worker(self) -> None:
        self.workers.append(
            self._start(
                [
                    str(BIN / "dask"),
                    "worker",
                    "--scheduler-file",
                    str(self.file),
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--host",
                    "127.0.0.1",
                    "--preload",
                    "slow_blocks",
                ]
            )
        )

    def n_workers(self) -> int:
        from distributed import Client

        with Client(scheduler_file=str(self.file), timeout="10s") as c:
            return len(c.scheduler_info(n_workers=-1)["workers"])

    def wait_workers(self, n: int) -> None:
        deadline = time.time() + 60
        while self.n_workers() < n:
            assert time.time() < deadline, "workers did not join"
            time.sleep(0.2)

    def kill_workers(self) -> None:
        for p in self.workers:
            p.kill()
            p.wait()
        self.workers = []

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


@pytest.fixture()
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def healthy_cluster(tmp_path_factory):
    """One cluster for the runs that stop no process of it, with blocks at full speed
    (nothing waits for a run to be mid-way)."""
    c = Cluster(tmp_path_factory.mktemp("healthy"), block_seconds=0.0)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture()
def scheduler_only(tmp_path):
    c = Cluster(tmp_path, n=0)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture()
def data(tmp_path):
    X = np.random.default_rng(3).normal(size=(400, 30, 3)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, X)
    return path


# the driver processes a test started: a test that fails while one runs (an assertion,
# a communicate() that timed out) leaves it to the fixture below, not running on
_DRIVERS: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_driver_left():
    yield
    while _DRIVERS:
        p = _DRIVERS.pop()
        if p.poll() is None:
            p.kill()
        p.communicate()


def center(data, out, *more, cwd=None):
    """``trajalign center`` as its own process, 20 blocks of 20 frames."""
    p = subprocess.Popen(
        [*EXE, "center", str(data), "-o", str(out), "--chunk-frames", "20", *map(str, more)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=dict(os.environ, TRAJALIGN_FLUSH_SECONDS="0"),
    )
    _DRIVERS.append(p)
    return p


def serial_reference(data, tmp_path) -> Path:
    ref = tmp_path / "serial.h5"
    p = center(data, ref)
    assert p.wait() == 0, p.stderr.read()
    return ref


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def stop_midway(data, out, cluster, act, *more, after: int = 4) -> tuple[int, str]:
    """Start a cluster run, call ``act(process)`` once the workers finished ``after`` of
    its 20 blocks (and the driver had a moment to write them) while others are still out
    on the workers, and return its exit status and stderr."""
    p = center(data, out, "--scheduler-file", cluster.file, *more)
    wait_for(partial_path(out))
    deadline = time.time() + 60
    # waiting for work done rather than for a fixed time: on a loaded machine the run
    # may not have finished any block after seconds
    while len(os.listdir(cluster.done)) < after:
        assert time.time() < deadline and p.poll() is None, "no blocks were finished"
        time.sleep(0.02)
    time.sleep(0.3)
    act(p)
    _, err = p.communicate(timeout=120)
    return p.returncode, err


def test_sigterm_mid_run_keeps_the_blocks_and_resume_finishes(tmp_path, cluster, data):
    out = tmp_path / "o.h5"
    code, err = stop_midway(data, out, cluster, lambda p: p.send_signal(signal.SIGTERM), after=6)
    assert code == 143, err
    (line,) = err.strip().splitlines()  # one line, no Dask traceback or log line
    assert line.startswith("Error: terminated (SIGTERM);") and "blocks are kept" in line
    kept = int(line.split("; ")[1].split(" of ")[0])
    assert 0 < kept < 20
    assert partial_path(out).exists() and not out.exists()
    p = center(data, out, "--scheduler-file", cluster.file, "--resume")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert f"resumed: {kept} of 20 blocks were done" in err
    assert_same_file(serial_reference(data, tmp_path), out)


def test_every_worker_lost_keeps_the_blocks_and_resume_finishes(tmp_path, cluster, data):
    out = tmp_path / "o.h5"
    code, err = stop_midway(
        data, out, cluster, lambda p: cluster.kill_workers(), "--wait-workers", 3
    )
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1, err
    (line,) = err.strip().splitlines()
    # the scheduler drops the tasks it cannot place, none comes back within 3 s, or the
    # fetch of a finished block from a killed worker fails first
    assert "every worker left the Dask cluster" in line or "connection to the Dask" in line
    assert "blocks are kept in" in line and "--resume" in line
    assert partial_path(out).exists() and not out.exists()
    for _ in range(2):
        cluster.add_worker()
    cluster.wait_workers(2)
    p = center(data, out, "--scheduler-file", cluster.file, "--resume")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "resumed:" in err
    assert_same_file(serial_reference(data, tmp_path), out)


def test_no_worker_joined_is_named(tmp_path, scheduler_only, data):
    out = tmp_path / "o.h5"
    t0 = time.perf_counter()
    p = center(data, out, "--scheduler-file", scheduler_only.file, "--wait-workers", 2)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1
    assert err.strip().splitlines() == [
        f"Error: no worker joined the scheduler at {scheduler_only.file} within 2 s (start "
        "workers (dask worker --scheduler-file FILE), or wait longer with --wait-workers "
        "SECONDS)"
    ]
    assert time.perf_counter() - t0 < 30
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith("o.h5")) == []
    assert not partial_path(out).exists()


def test_a_listener_that_is_no_scheduler_does_not_hang(tmp_path, data, monkeypatch):
    """A port that accepts and never answers (the dashboard's, another service)."""
    from trajalign.errors import ClusterError
    from trajalign.executors import DaskExecutor

    monkeypatch.setattr(DaskExecutor, "ANSWER_GRACE", 1.0)  # 5 s by default
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    t0 = time.perf_counter()
    try:
        with pytest.raises(ClusterError, match="no Dask scheduler answered at .* within 2 s"):
            with DaskExecutor(scheduler=address, timeout=1):
                pass
    finally:
        server.close()
    assert time.perf_counter() - t0 < 20


def test_relative_paths_reach_workers_in_another_folder(tmp_path, healthy_cluster, data):
    out = tmp_path / "o.h5"
    p = center(data.name, out.name, "--scheduler-file", healthy_cluster.file, cwd=tmp_path)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert_same_file(serial_reference(data, tmp_path), out)


def test_an_input_only_the_driver_sees_is_named_before_any_block(tmp_path, healthy_cluster, data):
    hidden = tmp_path / "driver-only"
    hidden.mkdir()
    (hidden / "x.npy").write_bytes(data.read_bytes())
    out = tmp_path / "o.h5"
    p = center(hidden / "x.npy", out, "--scheduler-file", healthy_cluster.file)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1
    (line,) = err.strip().splitlines()
    host = socket.gethostname()
    assert line.startswith(f"Error: a worker on {host} (tcp://127.0.0.1:")
    assert f"cannot open the input: {hidden / 'x.npy'}: no such file" in line
    assert "must be on a filesystem they see" in line
    assert not out.exists() and not partial_path(out).exists()


def test_cluster_run_summary_is_quiet_and_equal(tmp_path, healthy_cluster, data):
    """A healthy run: no Dask line on stderr, the same file as serial."""
    out = tmp_path / "o.h5"
    p = center(data, out, "--scheduler-file", healthy_cluster.file, "--json")
    stdout, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert json.loads(stdout)["executor"] == "dask"
    assert "distributed" not in err
    assert_same_file(serial_reference(data, tmp_path), out)


SLOW_JOB = """
import sys, time
from trajalign import _signals
from trajalign.executors import make_executor
from trajalign.io import open_source
from trajalign.jobs.center import CenterJob
from trajalign.pipeline import run


class SlowCenter(CenterJob):
    def process(self, block):
        import os
        here = os.path.dirname(sys.argv[2])
        open(os.path.join(here, f"pid-{os.getpid()}"), "w").close()
        # one file per block begun: a worker begins its next block once it has sent the
        # last one's result to the driver
        open(os.path.join(here, f"began-{os.getpid()}-{time.monotonic_ns()}"), "w").close()
        if len(sys.argv) == 3:  # slow until stopped; the resume runs at full speed
            time.sleep(0.3)
        return super().process(block)


if __name__ == "__main__":
    _signals.install()
    exe = make_executor(workers=2)
    exe.start()
    try:
        run(open_source(sys.argv[1]), SlowCenter("com"), sys.argv[2], chunk_frames=20,
            executor=exe, resume=len(sys.argv) > 3)
    except _signals.Terminated as stop:
        print(stop.blocks_done, stop.blocks_total, flush=True)
        sys.exit(143)
    finally:
        exe.close()
"""


def test_local_workers_sigterm_keeps_the_blocks_and_stops_every_worker(tmp_path, data):
    """--workers: SIGTERM reaches the driver (workers ignore it, the driver stops them),
    the finished blocks are kept, nothing is printed by the workers, no process is left."""
    (tmp_path / "slowjob.py").write_text(SLOW_JOB)
    out = tmp_path / "o.h5"
    env = dict(os.environ, PYTHONPATH=str(tmp_path), TRAJALIGN_FLUSH_SECONDS="0")
    cmd = [sys.executable, str(tmp_path / "slowjob.py"), str(data), str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _DRIVERS.append(p)
    deadline = time.time() + 60
    # both workers at work, each on its second block: two results are with the driver,
    # which writes them in well under the second. (A fixed second after the workers'
    # first blocks began saw no block done in a CI run on a loaded machine.)
    while len(list(tmp_path.glob("pid-*"))) < 2 or len(list(tmp_path.glob("began-*"))) < 4:
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(1.0)
    p.send_signal(signal.SIGTERM)
    stdout, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert err.strip() == ""
    done, total = map(int, stdout.split())
    assert 0 < done < total == 20
    workers = [int(f.name[4:]) for f in tmp_path.glob("pid-*")]
    assert len(workers) == 2 and p.pid not in workers
    time.sleep(0.5)
    for pid in workers:  # stopped by the driver, not orphaned
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), pid
    r = subprocess.run([*cmd, "resume"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert_same_file(serial_reference(data, tmp_path), out)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


FORKED_JOB = """
import os, sys
import numpy as np
from trajalign.executors import make_executor
from trajalign.io import open_source
from trajalign.jobs.center import CenterJob
from trajalign.pipeline import run


class ParentPid(CenterJob):
    def declare(self, writer, source):
        super().declare(writer, source)
        writer.create("trajalign/ppid", (source.n_frames,), dtype=np.int64)

    def process(self, block):
        result = super().process(block)
        result.extra["trajalign/ppid"] = np.full(len(block.frames), os.getppid())
        return result


if __name__ == "__main__":
    kw = {"paths": [sys.argv[1]]}
    exe = make_executor(workers=2)
    exe.start()
    try:
        with open_source(**kw) as src:
            exe.attach(src, kw)
            run(src, ParentPid("com"), sys.argv[2], chunk_frames=20, executor=exe)
    finally:
        exe.close()
    print(os.getpid())
"""


def test_command_line_workers_are_forked_from_the_driver(tmp_path, data):
    """As the command line does it: attach() after the input is open forks the workers
    from the driver (they inherit its imports and topology); the file equals serial."""
    import h5py

    script = tmp_path / "forked.py"
    script.write_text(FORKED_JOB)
    out = tmp_path / "o.h5"
    r = subprocess.run(
        [sys.executable, str(script), str(data), str(out)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    with h5py.File(out, "r+") as f:
        parents = set(f["trajalign/ppid"][()].tolist())
        del f["trajalign/ppid"]
    assert parents == {int(r.stdout)}
    assert_same_file(serial_reference(data, tmp_path), out)


def test_scheduler_gone_mid_run_keeps_the_blocks(tmp_path, cluster, data):
    out = tmp_path / "o.h5"
    code, err = stop_midway(
        data, out, cluster, lambda p: cluster.scheduler.kill(), "--wait-workers", 3
    )
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1, err
    # which side notices first varies: the client (the scheduler went away) or a
    # connection that fails (a block fetched from a worker, a call to the scheduler)
    assert "the Dask scheduler at" in err or "the connection to the Dask cluster" in err
    assert "blocks are kept in" in err and "--resume" in err
    assert partial_path(out).exists() and not out.exists()
