"""``trajalign diagnose``: alignment jumps, perturbation sensitivity, overlays."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from .._names import COORD_METHODS
from . import cli, note
from .check import parse_list, parse_points_opt
from .options import (
    check_plot_dir,
    pass_kwargs,
    source_kwargs,
    with_input,
    with_method_options,
    with_plot,
)

DEFAULT_METHODS = "none,center-com,kabsch,principal,point"
AXES = ("x", "y", "z")
# all points are perturbed for the sensitivity matrix up to this many; else an even subset
MAX_PERTURBED = 48


@cli.command()
@with_input
@click.option("-o", "--output", type=click.Path(), default=None, help="HDF5 file for the numbers.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@with_plot("the jump, perturbation, sensitivity and overlay figures")
@click.option(
    "--methods",
    default=DEFAULT_METHODS,
    show_default=True,
    metavar="LIST",
    help="Comma list of alignments to compare: " + ", ".join(COORD_METHODS) + ".",
)
@with_method_options
@click.option(
    "--jump-k",
    type=float,
    default=10.0,
    show_default=True,
    help="Jump rule: flag frames whose consecutive RMSD exceeds the running median by more "
    "than K robust standard deviations (1.4826 MAD, floored at 5 percent of the median).",
)
@click.option(
    "--jump-window", type=int, default=51, show_default=True, help="Jump rule: window (frames)."
)
@click.option(
    "--perturb-frame",
    type=int,
    default=0,
    show_default=True,
    help="Perturbation: frame (0-based within the selection).",
)
@click.option(
    "--perturb-point", type=int, default=1, show_default=True, help="Perturbation: the point."
)
@click.option(
    "--perturb-points",
    default=None,
    metavar="LIST|all",
    help="Points perturbed one at a time for the sensitivity matrix "
    f"[default: all up to {MAX_PERTURBED} points, else an even subset].",
)
@click.option(
    "--perturb-steps", type=int, default=16, show_default=True, help="Perturbation: steps."
)
@click.option(
    "--perturb-amount",
    type=float,
    default=0.2,
    show_default=True,
    help="Perturbation: largest move, in length units.",
)
@click.option(
    "--perturb-axis",
    type=click.Choice(AXES),
    default="x",
    show_default=True,
    help="Perturbation: direction (the point moves towards -axis, as in the chapter).",
)
@click.option(
    "--chunk-frames", type=int, default=4096, show_default=True, help="Frames read per block."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@pass_kwargs
def diagnose(kw: dict) -> None:
    """Diagnose alignments: jumps over time, perturbation sensitivity, overlays.

    \b
    For every method of --methods:
    - jumps: RMSD between consecutive aligned frames, with frames flagged where it
      jumps far above its running level (and principal-axis sign flips, axis swaps and
      eigenvalue gaps);
    - sensitivity: one point of one frame is moved by growing amounts, the copies are
      aligned, and every point's displacement per unit move is measured (the chapter's
      perturb_paths), for every perturbed point; "far points" are the half of the
      other points farthest (in space) from the moved one; the map has a column per
      point up to 256, else per residue or bin of points;
    - overlay: up to 128 aligned frames drawn over each other, coloured by time
      (beyond 400 points: one atom per residue or a sample, from 48 frames, with
      the mean in black).
    The results are printed on stdout (--json: as one JSON object); the numbers in
    full go to -o (HDF5, /trajalign/diagnostics/...), figures to --plot DIR.

    \b
    Example:
      trajalign diagnose sample_data/chain2d.npz -o diag.h5 --plot figs/
    """
    import numpy as np

    from .. import diagnostics as dg
    from ..errors import ParameterError
    from ..io import open_source
    from ..io.output import AtomicOutput, prepare_output

    t0 = time.perf_counter()
    src = source_kwargs(kw)
    methods = parse_list(kw["methods"], COORD_METHODS, "--methods")
    points = parse_points_opt(kw["points"])
    if kw["chunk_frames"] < 1:
        raise ParameterError(f"--chunk-frames {kw['chunk_frames']} is not positive", "give 1+")
    if kw["perturb_steps"] < 2 or not kw["perturb_amount"] > 0:
        raise ParameterError(
            "--perturb-steps needs 2 or more and --perturb-amount a positive length",
            "e.g. --perturb-steps 16 --perturb-amount 0.2",
        )
    if kw["jump_k"] <= 0 or kw["jump_window"] < 1:
        raise ParameterError("--jump-k must be positive and --jump-window 1 or more", "e.g. 10, 51")
    if kw["output"] is not None:
        prepare_output(kw["output"], force=kw["force"])  # refuse before any work
    check_plot_dir(kw["plot_dir"])

    with open_source(**src) as source:
        n_frames, n_points, dim = source.n_frames, source.n_points, source.dim
        if n_frames == 0:
            raise ParameterError("the frame selection is empty", "check --start/--stop/--step")
        if "point" in methods and points is not None and len(points) != dim:
            raise ParameterError(
                f"--points {kw['points']} does not fit {dim}D data",
                "give I,J in 2D and I,J,K in 3D",
            )
        axis = AXES.index(kw["perturb_axis"])
        if axis >= dim:
            raise ParameterError(
                f"--perturb-axis z needs 3D data; the input is {dim}D", "use x or y"
            )
        pf, pp = kw["perturb_frame"], kw["perturb_point"]
        if not 0 <= pf < n_frames:
            raise ParameterError(
                f"--perturb-frame {pf} is outside the {n_frames} selected frames",
                f"give 0..{n_frames - 1}",
            )
        if not 0 <= pp < n_points:
            raise ParameterError(
                f"--perturb-point {pp} is outside the {n_points} points", f"give 0..{n_points - 1}"
            )
        perturbed = _perturbed_points(kw["perturb_points"], n_points, pp)
        masses = source.masses
        params = {"point": kw["point"], "points": points, "sign": kw["sign"]}
        # every method is tried on the perturbation frame first: a bad option (point out
        # of range, collinear points) stops the run before the long scan
        frame = source.read(pf, pf + 1).coords[0]
        for m in methods:
            dg.get_method(m, dim, **params)(frame[None], masses)

        scan = dg.JumpScan(methods, n_frames, dim, masses, **params)
        frame_index = np.empty(n_frames, dtype=np.int64)
        times = np.empty(n_frames)
        # where a periodic repair runs, the same frames as read show what it changed
        effect = raw = None
        if source.pbc_mode != "none":
            effect = dg.RepairEffect()
            raw = open_source(**dict(src, pbc="none"))
        repaired: dict[str, int] = {}
        try:
            for start in range(0, n_frames, kw["chunk_frames"]):
                stop = min(start + kw["chunk_frames"], n_frames)
                block = source.read(start, stop)
                for key, value in (block.repair or {}).items():
                    repaired[key] = repaired.get(key, 0) + value
                scan.add(block.coords)
                if effect is not None:
                    effect.add(block.coords, raw.read(start, stop).coords)
                frame_index[start : start + len(block.frames)] = block.frames
                times[start : start + len(block.frames)] = block.times
        finally:
            if raw is not None:
                raw.close()
        scan.finish(kw["jump_k"], kw["jump_window"])
        pbc = {"mode": source.pbc_mode, **repaired}
        if effect is not None:
            effect.finish()
            pbc["median_rmsd_to_first"] = {k: round(v, 4) for k, v in effect.medians().items()}
        unit, spec, inputs = source.length_unit, source.spec, list(source.spec.paths)
        if source.spec.top:
            inputs.append(source.spec.top)
        atom_indices = source.atom_indices
        bonds = source.bonds
        residues, res_labels, atom_names = _residues(source)

    # at protein scale figures show residues (or bins of points), and a sample of points
    group, group_labels, group_kind = dg.point_groups(n_points, residues, res_labels)
    drawn = trace = None
    if residues is not None and n_points > _max_drawn_points():
        # one atom per residue (sorted, so in chain order), and always the moved point
        drawn = np.union1d(dg.trace_points(residues, atom_names, _max_drawn_points()), [pp])
        trace = True

    pert = dict(steps=kw["perturb_steps"], amount=kw["perturb_amount"], axis=axis, masses=masses)
    matrix = dg.sensitivity_matrix(frame, methods, perturbed, **pert, method_params=params)
    aligned = {m: dg.perturb_aligned(frame, m, pp, **pert, method_params=params) for m in methods}
    summary = {
        "output": os.path.abspath(kw["output"]) if kw["output"] else None,
        "plots": [],
        "frames": n_frames,
        "atoms": n_points,
        "dim": dim,
        "methods": methods,
        "jumps": {m: int(scan.flags[m].sum()) for m in methods},
        "jump_frames": {m: [int(f) for f in frame_index[scan.flags[m]][:20]] for m in methods},
        "pbc": pbc,
    }
    if "principal" in scan.methods and scan.principal:
        summary["principal_axis_swaps"] = int(scan.principal["axis_swap"].sum())
        summary["principal_sign_flips"] = int(scan.principal["sign_flip"].any(axis=1).sum())
    p_idx = perturbed.index(pp)
    # far in space: the half of the other points farthest from the moved one
    far, far_cut = dg.far_points(frame, pp)
    if far.size:
        summary["far_points"] = {"count": int(far.size), "min_distance": float(f"{far_cut:.3g}")}
        summary["far_point_sensitivity"] = {
            m: float(f"{float(matrix[k, p_idx, far].mean()):.3g}") for k, m in enumerate(methods)
        }

    def write_all(h5_path):
        if h5_path is not None:
            _write_h5(
                h5_path, scan, matrix, aligned, methods, perturbed, frame_index, times,
                atom_indices, unit, kw, spec, inputs, params, effect,
                (group, group_labels, group_kind), far,
            )  # fmt: skip
        if kw["plot_dir"] is not None:
            summary["plots"] = _write_plots(
                os.path.abspath(kw["plot_dir"]),
                kw["plot_format"], scan, matrix, aligned, methods, perturbed,
                frame_index, unit, pp, kw["perturb_amount"], pf, bonds, axis,
                effect, pbc["mode"], (group, group_labels, group_kind), drawn, trace,
            )  # fmt: skip

    if kw["output"] is not None:
        with AtomicOutput(kw["output"], force=kw["force"]) as tmp:
            write_all(os.fspath(tmp))
    else:
        write_all(None)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    if kw["as_json"]:
        click.echo(json.dumps(summary))
        return
    # the results go to stdout (also with -q); what was written, as every command, to stderr
    jumps = ", ".join(f"{m} {summary['jumps'][m]}" for m in methods)
    click.echo(f"jumps (frames flagged): {jumps}")
    if "far_point_sensitivity" in summary:
        s = ", ".join(f"{m} {v:.3g}" for m, v in summary["far_point_sensitivity"].items())
        fp = summary["far_points"]
        click.echo(
            f"far points ({fp['count']} farthest from point {pp}, {fp['min_distance']:.3g} "
            f"{unit} and more) moved per unit move of point {pp} (frame {pf}): {s}"
        )
    if "median_rmsd_to_first" in pbc:
        med = pbc["median_rmsd_to_first"]
        click.echo(
            f"periodic repair ({pbc['mode']}): median RMSD to frame 0 after a Kabsch fit "
            f"{med['repaired']:.3g} {unit} repaired, {med['as read']:.3g} {unit} as read"
        )
    if summary["output"]:
        note(f"wrote {summary['output']}")
    if summary["plots"]:
        note(f"wrote {len(summary['plots'])} figures to {os.path.abspath(kw['plot_dir'])}")


def _max_drawn_points() -> int:
    # plots is imported here, not at the top: --help stays free of numpy-heavy imports
    from ..plots import MAX_DRAWN_POINTS

    return MAX_DRAWN_POINTS


def _residues(source):
    """(residue index per point, residue label per point, atom names) of an MDAnalysis
    input, or three Nones (arrays, or a topology without residues)."""
    universe = getattr(source, "universe", None)
    if universe is None:
        return None, None, None
    ag = universe.atoms[source.atom_indices]
    try:
        residues = ag.resindices
        labels = [f"{n}{i}" for n, i in zip(ag.resnames, ag.resids, strict=True)]
    except (AttributeError, TypeError):  # a topology with no residue names
        return None, None, None
    names = getattr(ag, "names", None)
    return residues, labels, names


def _perturbed_points(text: str | None, n_points: int, point: int) -> list[int]:
    import numpy as np

    from ..errors import ParameterError

    if text is None:
        if n_points <= MAX_PERTURBED:
            return list(range(n_points))
        pts = set(np.linspace(0, n_points - 1, MAX_PERTURBED).round().astype(int).tolist())
        return sorted(pts | {point})
    if text == "all":
        return list(range(n_points))
    try:
        pts = sorted({int(t) for t in text.split(",")} | {point})
    except ValueError:
        raise ParameterError(
            f"cannot read --perturb-points {text!r}", "give 'all' or indices like 0,5,11"
        ) from None
    bad = [p for p in pts if not 0 <= p < n_points]
    if bad:
        raise ParameterError(
            f"--perturb-points {bad[0]} is outside the {n_points} points", f"use 0..{n_points - 1}"
        )
    return pts


def _write_h5(
    path, scan, matrix, aligned, methods, perturbed, frame_index, times, atom_indices,
    unit, kw, spec, inputs, params, effect=None, groups=None, far=None,
) -> None:  # fmt: skip
    import numpy as np

    from ..diagnostics import group_mean, jump_rule_attrs
    from ..io.h5md import H5MDWriter

    n_frames = len(frame_index)
    n_points, dim = matrix.shape[-1], aligned[methods[0]].shape[-1]
    w = H5MDWriter(
        path, n_frames, n_points, dim, length_unit=unit, atom_indices=atom_indices, positions=False
    )
    with w:
        w.index[:] = frame_index
        w.time[:] = times
        g = w.f.require_group("trajalign/diagnostics")
        rule = jump_rule_attrs(kw["jump_k"], kw["jump_window"], 0.05)
        for m in methods:
            j = g.create_group(f"jumps/{m}")
            ds = j.create_dataset("consecutive_rmsd", data=scan.rmsd[m])
            ds.attrs["unit"] = unit
            ds.attrs["description"] = "RMSD between aligned frame t and t-1 (frame 0: NaN)"
            fl = j.create_dataset("jump_flag", data=scan.flags[m])
            for key, value in rule.items():
                fl.attrs[key] = value
            j.create_dataset("threshold", data=scan.threshold[m]).attrs["unit"] = unit
        if scan.principal:
            p = g.create_group("principal")
            for key, value in scan.principal.items():
                p.create_dataset(key, data=value)
            p["eigenvalues"].attrs["unit"] = f"{unit}^2"
            p.attrs["sign"] = params["sign"]
        s = g.create_group("sensitivity")
        v = s.create_dataset("value", data=matrix)
        v.attrs["axes"] = "method, perturbed point, point"
        v.attrs["unit"] = "displacement / perturbation (length / length)"
        v.attrs["methods"] = json.dumps(methods)
        s.create_dataset("perturbed_points", data=np.asarray(perturbed, dtype=np.int64))
        s.create_dataset("methods", data=np.array([m.encode() for m in methods]))
        for key in ("perturb_frame", "perturb_point", "perturb_steps", "perturb_amount"):
            s.attrs[key] = kw[key]
        s.attrs["perturb_axis"] = kw["perturb_axis"]
        s.attrs["perturb_frame_index"] = int(frame_index[kw["perturb_frame"]])
        for m in methods:
            a = s.create_dataset(f"aligned/{m}", data=aligned[m])
            a.attrs["unit"] = unit
        if groups is not None:
            # the figure's columns: which residue (or bin of points) each point is in
            group, labels, kind = groups
            gd = s.create_dataset("group", data=np.asarray(group, dtype=np.int64))
            gd.attrs["kind"] = kind
            gd.attrs["description"] = "column of each point in sensitivity/grouped"
            s.create_dataset("group_labels", data=np.array([g.encode() for g in labels]))
            mean = s.create_dataset("grouped", data=group_mean(matrix, group))
            mean.attrs["axes"] = "method, perturbed point, group"
            mean.attrs["description"] = "mean of value over the points of each group"
        if far is not None:
            fd = s.create_dataset("far_points", data=np.asarray(far, dtype=np.int64))
            fd.attrs["description"] = (
                "points at least the median distance from the perturbed point (frame "
                "perturb_frame): far_point_sensitivity averages over them"
            )
        if effect is not None:
            r = g.create_group("pbc")
            r.attrs["description"] = (
                "RMSD to the first frame after a Kabsch fit of the selection, with the "
                "periodic repair and as read"
            )
            for key, name in (("repaired", "rmsd_repaired"), ("as read", "rmsd_as_read")):
                r.create_dataset(name, data=effect.rmsd[key]).attrs["unit"] = unit
        o = g.create_group("overlay")
        o.create_dataset("frames", data=frame_index[scan.overlay_frames])
        for m in methods:
            o.create_dataset(m, data=scan.overlay[m]).attrs["unit"] = unit
        parameters = {
            k: kw[k]
            for k in (
                "methods", "jump_k", "jump_window", "perturb_frame", "perturb_point",
                "perturb_points", "perturb_steps", "perturb_amount", "perturb_axis",
            )
        }  # fmt: skip
        parameters.update(params, command="diagnose", source=spec.as_dict())
        w.write_provenance(sys.argv, inputs, parameters)


def _write_plots(
    plot_dir, fmt, scan, matrix, aligned, methods, perturbed, frame_index, unit, point,
    amount, pframe, bonds, axis, effect=None, mode="none", groups=None, drawn=None,
    trace=None,
) -> list[str]:  # fmt: skip
    from .. import plots
    from ..errors import OutputError

    try:
        os.makedirs(plot_dir, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {plot_dir}: {exc}", "choose another --plot DIR") from None
    out = []
    jump_methods = [m for m in methods if m in ("kabsch", "principal", "point")] or methods
    fig = plots.jump_figure(
        frame_index,
        {m: (scan.rmsd[m], scan.flags[m], scan.threshold[m]) for m in jump_methods},
        scan.principal or None,
        unit=unit,
    )
    out.append(plots.save(fig, os.path.join(plot_dir, f"jumps.{fmt}")))
    fig = plots.perturbation_figure(
        {m: aligned[m] for m in methods},
        point,
        amount,
        unit=unit,
        frame=int(frame_index[pframe]),
        bonds=bonds,
        axis=AXES[axis],
        atoms=drawn,
    )
    out.append(plots.save(fig, os.path.join(plot_dir, f"perturbation.{fmt}")))
    group, labels, kind = groups if groups is not None else (None, None, "point")
    fig = plots.sensitivity_figure(matrix, methods, perturbed, point, group, labels, kind)
    out.append(plots.save(fig, os.path.join(plot_dir, f"sensitivity.{fmt}")))
    fig = plots.overlay_figure(
        scan.overlay,
        frame_index[scan.overlay_frames],
        len(frame_index),
        unit=unit,
        bonds=bonds,
        atoms=drawn,
        trace=bool(trace),
    )
    out.append(plots.save(fig, os.path.join(plot_dir, f"overlay.{fmt}")))
    if effect is not None:
        ax = plots.plot_repair_effect(frame_index, effect.rmsd, mode, unit=unit)
        out.append(plots.save(ax.figure, os.path.join(plot_dir, f"pbc_rmsd.{fmt}")))
    return [os.path.abspath(p) for p in out]
