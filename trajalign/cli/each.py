"""``--each``: every input of ``center``, ``rotate`` or ``internal`` is its own trajectory.

The work is :func:`trajalign.batch.run_each`; this module reports it as the other
commands report a run: one progress bar over every input, a line per input (or one
``--json`` object with a row per input), and, with ``--keep-going``, the failed inputs.
"""

from __future__ import annotations

import json
import os
import sys
import time

import click

from . import is_quiet, make_run_executor, note, pipeline_kwargs, repair_line, rotate_figures

__all__ = ["run_each_command"]


class _EachBar:
    """A progress bar over the inputs of a dataset: files done, frames per second and
    the time left (from the files' rate), once the run has taken a second."""

    def __init__(self, n_inputs: int, label: str) -> None:
        self.n, self.label = n_inputs, label
        self.t0 = time.perf_counter()
        self.frames = 0
        self._done = 0
        self.bar = None

    def frames_done(self, n: int) -> None:
        self.frames += n

    def input_done(self) -> None:
        if self.bar is None and time.perf_counter() - self.t0 > 1.0:
            self.bar = click.progressbar(
                length=self.n,
                label=f"{self.label} (files)",
                file=sys.stderr,
                show_pos=True,
                show_eta=False,
                item_show_func=self._rate,
            )
            self.bar.__enter__()
            self.bar.update(self._done, current_item=True)
        elif self.bar is not None:
            self.bar.update(1, current_item=True)
        self._done += 1

    def _rate(self, item) -> str | None:
        elapsed = time.perf_counter() - self.t0
        if not item or not self._done or elapsed <= 0:
            return None
        left = int(round((self.n - self._done) * elapsed / self._done))
        rate = self.frames / elapsed
        return f"{rate:,.0f} frames/s, {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d} left"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def run_each_command(
    source_kw: dict, job_factory, out_kw: dict, label: str, naming: str, keep_going: bool
) -> None:
    """Run ``job_factory``'s job on every input into ``-o DIR/<stem>.h5`` and report."""
    from ..batch import EachFailed, run_each

    bar = None
    if not is_quiet() and sys.stderr.isatty() and not out_kw["as_json"]:
        bar = _EachBar(len(source_kw["paths"]), label)

    def on_input(item) -> None:
        if bar is not None:
            bar.input_done()
        if item.status == "done" and out_kw.get("plot_dir"):
            stem = os.path.splitext(os.path.basename(item.output))[0]
            item.summary["figures"] = rotate_figures(
                item.output, os.path.join(out_kw["plot_dir"], stem), out_kw
            )
        if not out_kw["as_json"]:
            _report_input(item)

    executor = make_run_executor(out_kw)
    items, failed = [], None
    t0 = time.perf_counter()
    try:
        items = run_each(
            source_kw,
            job_factory,
            out_kw["output"],
            naming=naming,
            force=out_kw["force"],
            resume=out_kw["resume"],
            keep_going=keep_going,
            executor=executor,
            run_kw=pipeline_kwargs(out_kw),
            on_input=on_input,
            progress=bar.frames_done if bar is not None else None,
        )
    except EachFailed as err:
        failed, items = err, err.items
    finally:
        executor.close()
        if bar is not None:
            bar.close()
    if out_kw["as_json"]:
        click.echo(json.dumps(_summary(items, label, time.perf_counter() - t0)))
    elif items:
        done = sum(i.status == "done" for i in items)
        kept = sum(i.status == "kept" for i in items)
        note(
            f"{label} --each: {done} written, {kept} kept, "
            f"{len(items) - done - kept} failed, in {out_kw['output']} "
            f"({time.perf_counter() - t0:.2f} s)"
        )
    if failed is not None:
        raise failed


def _report_input(item) -> None:
    if item.status == "failed":
        note(f"failed {item.path}: {item.error}")
        return
    if item.status == "kept":
        note(f"kept {item.output} (finished earlier)")
        return
    s = item.summary
    for w in s.get("warnings", []):
        note(f"Warning: {item.path}: {w}")
    note(
        f"wrote {s['output']}: {s['frames']} frames x {s['atoms']} points ({s['dim']}D), "
        f"{s['method']}, {s['seconds']:.2f} s"
    )
    line = repair_line(s.get("pbc"), s["frames"])
    if line:
        note(line)
    for path in s.get("figures", []):
        note(f"wrote {path}")


def _summary(items, label: str, seconds: float) -> dict:
    """The ``--json`` object of a dataset: totals and one row per input."""
    return {
        "command": label,
        "inputs": len(items),
        "frames": sum(i.frames for i in items),
        "seconds": round(seconds, 3),
        "failed": [i.path for i in items if i.status == "failed"],
        "outputs": [i.row() for i in items],
    }
