"""The HDF5 file of ``trajalign diagnose``: the numbers of a :class:`Diagnosis` in full,
under ``/trajalign/diagnostics`` of an H5MD file without positions."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from .._names import DIAGNOSTICS, JUMP_FLOOR
from ..groups import group_mean
from .diagnosis import Diagnosis
from .jumps import jump_rule_attrs


def _write_jumps(g, d: Diagnosis) -> None:
    unit, scan = d.unit, d.scan
    rule = jump_rule_attrs(d.jump_k, d.jump_window, JUMP_FLOOR)
    for m in d.methods:
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
        p.attrs["sign"] = d.params["sign"]


def _write_sensitivity(g, d: Diagnosis) -> None:
    methods = d.methods
    s = g.create_group("sensitivity")
    v = s.create_dataset("value", data=d.matrix)
    v.attrs["axes"] = "method, perturbed point, point"
    v.attrs["unit"] = "displacement / perturbation (length / length)"
    v.attrs["methods"] = json.dumps(methods)
    s.create_dataset("perturbed_points", data=np.asarray(d.perturbed, dtype=np.int64))
    s.create_dataset("methods", data=np.array([m.encode() for m in methods]))
    s.attrs["perturb_frame"] = d.perturb_frame
    s.attrs["perturb_point"] = d.perturb_point
    s.attrs["perturb_steps"] = d.steps
    s.attrs["perturb_amount"] = d.amount
    s.attrs["perturb_axis"] = d.axis_name
    s.attrs["perturb_frame_index"] = int(d.frame_index[d.perturb_frame])
    for m in methods:
        a = s.create_dataset(f"aligned/{m}", data=d.aligned[m])
        a.attrs["unit"] = d.unit
    if d.groups:
        # the figure's columns: which residue (or bin of points) each point is in
        group, labels, kind = d.groups
        gd = s.create_dataset("group", data=np.asarray(group, dtype=np.int64))
        gd.attrs["kind"] = kind
        gd.attrs["description"] = "column of each point in sensitivity/grouped"
        s.create_dataset("group_labels", data=np.array([x.encode() for x in labels]))
        mean = s.create_dataset("grouped", data=group_mean(d.matrix, group))
        mean.attrs["axes"] = "method, perturbed point, group"
        mean.attrs["description"] = "mean of value over the points of each group"
    if d.far is not None:
        fd = s.create_dataset("far_points", data=np.asarray(d.far, dtype=np.int64))
        fd.attrs["description"] = (
            "points at least the median distance from the perturbed point (frame "
            "perturb_frame): far_point_sensitivity averages over them"
        )


def _write_repair_and_overlay(g, d: Diagnosis) -> None:
    unit = d.unit
    if d.effect is not None:
        r = g.create_group("pbc")
        r.attrs["description"] = (
            "RMSD to the first frame after a Kabsch fit of the selection, with the "
            "periodic repair and as read"
        )
        for key, name in (("repaired", "rmsd_repaired"), ("as read", "rmsd_as_read")):
            r.create_dataset(name, data=d.effect.rmsd[key]).attrs["unit"] = unit
    o = g.create_group("overlay")
    o.create_dataset("frames", data=d.frame_index[d.scan.overlay_frames])
    for m in d.methods:
        o.create_dataset(m, data=d.scan.overlay[m]).attrs["unit"] = unit


def write_diagnosis(path, d: Diagnosis, argv: Sequence[str], options: dict) -> None:
    """Write a :class:`Diagnosis` as an H5MD file without positions.

    ``/trajalign/frames/index`` and ``time`` (F,); under ``/trajalign/diagnostics``:
    ``jumps/<method>/consecutive_rmsd``, ``jump_flag`` and ``threshold`` (F,),
    ``principal/...`` (eigenvalues, gap, sign flips, axis swaps), ``sensitivity/value``
    (M, P, N) with the aligned perturbed copies, the figure's groups and the far points,
    ``pbc/rmsd_repaired`` and ``rmsd_as_read`` (F,) with a periodic repair, and
    ``overlay/<method>`` (S, N, D); provenance with ``argv``, the inputs and ``options``
    plus the methods' parameters and the source spec.

    Parameters
    ----------
    path : path
        The file to write (created; an existing one is replaced by the writer's rules).
    d : Diagnosis
    argv : sequence of str
        The command line, for the provenance.
    options : dict
        The command's options as given, for the provenance's ``parameters``.
    """
    from ..io.h5md import H5MDWriter

    n_frames = len(d.frame_index)
    n_points, dim = d.matrix.shape[-1], d.aligned[d.methods[0]].shape[-1]
    w = H5MDWriter(
        path,
        n_frames,
        n_points,
        dim,
        length_unit=d.unit,
        atom_indices=d.atom_indices,
        positions=False,
    )
    with w:
        w.index[:] = d.frame_index
        w.time[:] = d.times
        g = w.f.require_group(DIAGNOSTICS)
        _write_jumps(g, d)
        _write_sensitivity(g, d)
        _write_repair_and_overlay(g, d)
        parameters = dict(options)
        parameters.update(d.params, command="diagnose", source=d.spec.as_dict())
        w.write_provenance(list(argv), d.inputs, parameters)


__all__ = ["write_diagnosis"]
