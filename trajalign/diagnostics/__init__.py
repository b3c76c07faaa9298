"""Diagnostics of an alignment: jumps over time, perturbation sensitivity, and the
equivariance check (sections 5.5 and 5.6 of the equivariance chapter).

Pure numpy on top of the public API; no click, no matplotlib (the figures, including
rotate's, are in :mod:`trajalign.plots`). One module per concern:

- :mod:`.jumps`: :func:`consecutive_rmsd` is the RMSD between consecutive aligned frames;
  :func:`flag_jumps` flags frames where it rises far above its running level with a robust
  rule (running median plus ``k`` scaled MADs over a centred window, see
  :func:`jump_threshold`). :func:`add_jump_diagnostics` does this for a finished
  ``rotate`` output, reading positions block by block; :class:`JumpScan` for several
  alignments at once (``diagnose``).
- :mod:`.registry`: the methods by name (:data:`METHOD_NAMES`, :func:`get_method`), each a
  small factory registered with :func:`register_method`; any callable can be wrapped in
  :class:`Method`.
- :mod:`.conditioning`: how much each method's output moves per unit move of its input.
- :mod:`.invariance`: :func:`check_invariance` applies random rotations, translations,
  reflections and permutations to the input, re-runs a method, and compares the output
  with what the method promises; :func:`check_periodic_images` does it for the images
  of a periodic input. :mod:`.report` formats the rows; :mod:`.check` is the library side
  of ``trajalign check``.
- :mod:`.sensitivity`: :func:`perturb_aligned` and :func:`sensitivity` repeat the
  chapter's ``perturb_paths`` experiment for any alignment method.
- :mod:`.diagnosis` and :mod:`.store`: the library side of ``trajalign diagnose`` and its
  HDF5 file.

The point grouping of the figures (:func:`point_groups`, :func:`group_mean`,
:func:`trace_points`) lives in :mod:`trajalign.groups`, below both this package and the
figures, and is re-exported here.
"""

from __future__ import annotations

from .._names import (
    COORD_METHODS,
    DIAGNOSTICS,
    FEATURE_METHODS,
    JUMP_FLOOR,
    JUMP_K,
    JUMP_WINDOW,
    MAX_PERTURBED,
    METHOD_NAMES,
    PERTURB_AMOUNT,
    PERTURB_STEPS,
    POSITION,
    ROTATE_METHODS,
    TRANSFORMATIONS,
)
from ..groups import MAX_GROUPS, group_mean, point_groups, trace_points
from .check import CheckPlan, plan_check, validate_check
from .conditioning import (
    COLLINEAR_DEG,
    angle_conditioning,
    conditioning_kabsch,
    conditioning_point,
    conditioning_principal,
    dihedral_conditioning,
    eigvals_conditioning,
)
from .diagnosis import Diagnosis, diagnose, perturbed_points, validate_diagnose
from .invariance import (
    TOL_FACTOR,
    check_invariance,
    check_periodic_images,
    even_points,
    random_rotation,
    rounding_tol,
)
from .jumps import (
    JumpScan,
    RepairEffect,
    RotateJumps,
    add_jump_diagnostics,
    consecutive_rmsd,
    flag_jumps,
    jump_rule_attrs,
    jump_threshold,
    read_jumps,
    read_rotate_jumps,
    store_jump_diagnostics,
)
from .registry import (
    PROMISES,
    Method,
    MethodOutput,
    MethodParams,
    default_points,
    get_method,
    methods_for,
    register_method,
    registered_methods,
    resolve_method,
)
from .report import InvarianceError, broken_promise, format_table, rows_json
from .sensitivity import (
    far_points,
    perturb_aligned,
    perturb_frames,
    sensitivity,
    sensitivity_matrix,
)
from .store import write_diagnosis

__all__ = [
    "COLLINEAR_DEG",
    "COORD_METHODS",
    "DIAGNOSTICS",
    "FEATURE_METHODS",
    "JUMP_FLOOR",
    "JUMP_K",
    "JUMP_WINDOW",
    "MAX_GROUPS",
    "MAX_PERTURBED",
    "METHOD_NAMES",
    "PERTURB_AMOUNT",
    "PERTURB_STEPS",
    "POSITION",
    "PROMISES",
    "ROTATE_METHODS",
    "TOL_FACTOR",
    "TRANSFORMATIONS",
    "CheckPlan",
    "Diagnosis",
    "InvarianceError",
    "JumpScan",
    "Method",
    "MethodOutput",
    "MethodParams",
    "RepairEffect",
    "RotateJumps",
    "add_jump_diagnostics",
    "angle_conditioning",
    "broken_promise",
    "check_invariance",
    "check_periodic_images",
    "conditioning_kabsch",
    "conditioning_point",
    "conditioning_principal",
    "consecutive_rmsd",
    "default_points",
    "diagnose",
    "dihedral_conditioning",
    "eigvals_conditioning",
    "even_points",
    "far_points",
    "flag_jumps",
    "format_table",
    "get_method",
    "group_mean",
    "jump_rule_attrs",
    "jump_threshold",
    "methods_for",
    "perturb_aligned",
    "perturb_frames",
    "perturbed_points",
    "plan_check",
    "point_groups",
    "random_rotation",
    "read_jumps",
    "read_rotate_jumps",
    "register_method",
    "registered_methods",
    "resolve_method",
    "rounding_tol",
    "rows_json",
    "sensitivity",
    "sensitivity_matrix",
    "store_jump_diagnostics",
    "trace_points",
    "validate_check",
    "validate_diagnose",
    "write_diagnosis",
]
