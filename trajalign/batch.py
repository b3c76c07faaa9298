"""Datasets of many trajectories (``--each``): one output per input, in one process.

ML and Markov-model users hold hundreds of trajectories of one system (replicas,
Folding@home-style projects) and want each featurised or aligned on its own, as PyEMMA's
``source([...])`` and deeptime take them. :func:`run_each` runs one job per input through
:func:`trajalign.pipeline.run`, each output equal, dataset by dataset, to a run on that
input alone; the topology is parsed once (MDAnalysis sources keep the parsed topology of
the last input, :mod:`trajalign.io.sources`) and the executor's workers serve every
input. Outputs are named before anything is read, so a name collision or an existing
output is reported at once, and every finished output is in place on its own: a killed
run loses only the input it was working on, which ``--resume`` continues.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import OutputError, ParameterError, TrajalignError

__all__ = ["NAMINGS", "EachInput", "EachFailed", "each_outputs", "run_each"]

#: how an input's output is named: ``stem`` (``rep1/traj.xtc`` -> ``traj.h5``) or
#: ``parent`` (-> ``rep1_traj.h5``, for inputs that share a file name)
NAMINGS = ("stem", "parent")


@dataclass
class EachInput:
    """One input of a dataset and what became of it.

    ``status`` is ``pending``, ``done`` (written now), ``kept`` (finished by an earlier
    run, left as it is by ``--resume``) or ``failed`` (``error`` says why)."""

    path: str
    output: str
    status: str = "pending"
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    summary: dict = field(default_factory=dict)

    def row(self) -> dict:
        """The input's row of the ``--json`` summary."""
        row = {
            "path": self.path,
            "output": self.output,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "status": self.status,
        }
        if self.error:
            row["error"] = self.error
        return row


class EachFailed(TrajalignError):
    """``--keep-going``: some inputs failed (the others were written); ``failed`` lists
    them, ``items`` every input."""

    def __init__(self, failed: list[EachInput], items: list[EachInput]) -> None:
        names = ", ".join(os.path.basename(f.path) for f in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        super().__init__(
            f"{len(failed)} input(s) failed: {names}{more}",
            "each one's error is listed above; the other outputs are written",
        )
        self.failed = failed
        self.items = items


def _name(path: str, naming: str) -> str:
    p = Path(path)
    if naming == "parent":
        parent = p.resolve().parent.name or "root"
        return f"{parent}_{p.stem}.h5"
    return f"{p.stem}.h5"


def each_outputs(paths: Sequence[str], out_dir: str | os.PathLike, naming: str = "stem") -> list:
    """The output of every input: ``out_dir/<stem>.h5`` (or ``<parent>_<stem>.h5``).

    Parameters
    ----------
    paths : sequence of str
        The inputs, one trajectory each.
    out_dir : path
        The folder of the outputs (it need not exist yet).
    naming : {"stem", "parent"}

    Returns
    -------
    list of EachInput
        One per input, in order.

    Raises
    ------
    ParameterError
        Two inputs would write one output, or ``out_dir`` is a file.
    """
    if naming not in NAMINGS:
        raise ParameterError(f"unknown --each-name {naming!r}", "use stem or parent")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ParameterError(
            f"-o {out} is a file; with --each it names a folder for one output per input",
            "give a folder (it is created if missing)",
        )
    seen: dict[str, str] = {}
    items = []
    for path in map(os.fspath, paths):
        name = _name(path, naming)
        if name in seen:
            other = (
                "--each-name parent names them <folder>_<stem>.h5"
                if naming == "stem"
                else ("rename one of the files")
            )
            raise ParameterError(
                f"inputs {seen[name]} and {path} would both write {out / name}",
                other,
            )
        seen[name] = path
        items.append(EachInput(path, str(out / name)))
    return items


def _check_targets(items: list[EachInput], force: bool, resume: bool) -> None:
    """Refuse existing outputs before anything is read (``--force`` replaces them,
    ``--resume`` keeps them as finished)."""
    from .pipeline import partial_path

    for item in items:
        target = Path(item.output)
        if target.exists() and not (force or resume):
            raise OutputError(
                f"{target} exists",
                "use --force to replace the outputs, or --resume to keep the finished ones",
            )
        if resume and target.exists() and not partial_path(target).exists():
            item.status = "kept"


def run_each(
    source_kw: dict,
    make_job: Callable,
    out_dir: str | os.PathLike,
    *,
    naming: str = "stem",
    force: bool = False,
    resume: bool = False,
    keep_going: bool = False,
    executor=None,
    run_kw: dict | None = None,
    on_input: Callable[[EachInput], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[EachInput]:
    """Run one job per input of ``source_kw["paths"]``, each into its own output.

    Parameters
    ----------
    source_kw : dict
        :func:`trajalign.io.open_source` keywords; ``paths`` lists the inputs.
    make_job : callable
        ``make_job(source)`` gives the job for an open input.
    out_dir : path
        Folder of the outputs (created).
    naming : {"stem", "parent"}
        See :func:`each_outputs`.
    force, resume : bool
        Replace existing outputs; or keep finished ones and continue a partial one.
    keep_going : bool
        An input that fails is reported (``on_input``) and the others are written; the
        run then raises :class:`EachFailed`. Otherwise the first failure is raised.
    executor : optional
        Where blocks are processed (one executor for every input).
    run_kw : dict, optional
        More :func:`trajalign.pipeline.run` keywords (chunk_frames, memory_mb, argv, ...).
    on_input : callable, optional
        Called with each input once it is done, kept or failed.
    progress : callable, optional
        Called with the number of frames of each written block.

    Returns
    -------
    list of EachInput
    """
    from .executors import SerialExecutor
    from .io import open_source
    from .pipeline import partial_path, run

    items = each_outputs(source_kw["paths"], out_dir, naming)
    _check_targets(items, force, resume)
    executor = executor or SerialExecutor()
    state = _dataset_state(source_kw, make_job, items, executor)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for item in items:
        if item.status == "kept":
            if on_input is not None:
                on_input(item)
            continue
        t0 = time.perf_counter()
        try:
            with open_source(**{**source_kw, "paths": [item.path]}) as source:
                executor.attach(source, {**source_kw, "paths": [item.path]})
                job = make_job(source)
                job.use_dataset_state(state)
                item.summary = run(
                    source,
                    job,
                    output=item.output,
                    force=force,
                    executor=executor,
                    resume=resume and partial_path(Path(item.output)).exists(),
                    progress=progress,
                    **(run_kw or {}),
                )
        except TrajalignError as err:
            if not keep_going:
                raise
            item.status, item.error = "failed", str(err)
        else:
            item.status, item.frames = "done", item.summary["frames"]
        item.seconds = time.perf_counter() - t0
        if on_input is not None:
            on_input(item)
    failed = [i for i in items if i.status == "failed"]
    if failed:
        raise EachFailed(failed, items)
    return items


def _dataset_state(source_kw: dict, make_job: Callable, items: list, executor) -> object:
    """What every input's job shares (a rotation's reference), found on the first input
    before any output is written: every input is fitted onto the same reference."""
    from .io import open_source

    if not items:
        return None

    def sources() -> Iterator:
        for item in items:
            with open_source(**{**source_kw, "paths": [item.path]}) as src:
                yield src

    with open_source(**{**source_kw, "paths": [items[0].path]}) as first:
        executor.attach(first, {**source_kw, "paths": [items[0].path]})
        job = make_job(first)
        if not job.shares_dataset:
            return None
        job.prepare(first)
        return job.dataset_state(sources)
