"""``trajalign info``."""

from __future__ import annotations

import json

import click

from . import cli
from .options import pass_kwargs, source_kwargs, with_input

__all__ = [
    "output_facts",
    "output_lines",
    "check_files",
    "check_line",
    "describe",
    "info",
    "name_facts",
    "pbc_facts",
]


@cli.command()
@with_input
@click.option("--json", "as_json", is_flag=True, help="Print the facts as one JSON object.")
@click.option(
    "--check",
    is_flag=True,
    help="Also read every frame of every input file and report the first damaged frame "
    "of each (as gmx check does); writes nothing. Exit status 1 if any file is damaged.",
)
@click.option(
    "--each",
    is_flag=True,
    help="The inputs are separate trajectories (as center/rotate/internal --each take "
    "them): the facts are those of the first, and --check counts each file's good frames "
    "(the --stop of its message) on its own.",
)
@pass_kwargs
def info(kw: dict) -> None:
    """Frames, points, dimension, box, masses, bonds and time step of an input.

    \b
    Given an output of trajalign internal (an .h5 with /trajalign/features), lists its
    features with their shapes and first labels instead.

    \b
    Examples:
      trajalign info sample_data/butane.dcd -t sample_data/butane.pdb
      trajalign info features.h5
      trajalign info run1.xtc run2.xtc -t top.gro --check
    """
    from ..io import open_source
    from ..io.integrity import DamagedFileError

    as_json = kw.pop("as_json")
    check = kw.pop("check")
    each = kw.pop("each")
    out = output_facts(kw["traj"][0]) if len(kw["traj"]) == 1 and not check else None
    if out is not None:
        # an output of trajalign internal: its features, not trajectory facts
        if as_json:
            click.echo(json.dumps(out))
            return
        for line in output_lines(out):
            click.echo(line)
        return
    facts: dict = {}
    skw = source_kwargs(kw)  # pops the options from kw: once
    try:
        with open_source(**(dict(skw, paths=skw["paths"][:1]) if each else skw)) as src:
            facts = describe(src)
    except DamagedFileError:
        if not check:
            raise
        # the whole input cannot be opened: --check still names each file's damage
    if check:
        facts["check"] = check_files(skw, each=each)
    if as_json:
        plain = dict(facts)
        if check:
            plain["check"] = [
                {k: v for k, v in r.items() if k != "exception"} for r in facts["check"]
            ]
        click.echo(json.dumps(plain))
    else:
        width = max(len(k) for k in facts)
        for k, v in facts.items():
            if k == "check":
                for row in v:
                    click.echo(f"{k:<{width}}  {check_line(row)}")
            else:
                click.echo(f"{k:<{width}}  {v}")
    bad = [row for row in facts.get("check", []) if not row["ok"]]
    if bad:
        err = bad[0]["exception"]
        if len(bad) > 1:
            err.hint = f"{err.hint}; {len(bad) - 1} more damaged file(s) listed above"
        raise err


def check_files(kw: dict, each: bool = False) -> list:
    """Read every frame of each input file on its own; one row per file.

    Parameters
    ----------
    kw : dict
        Keyword arguments of :func:`trajalign.io.open_source` for the whole input.
    each : bool
        The files are separate trajectories (``--each``): a message's ``--stop`` counts
        that file's frames only, not those of the files before it.

    Returns
    -------
    list of dict
        ``path``, ``ok``, ``frames`` (read, or None) and ``error`` (the message, or
        None) per file; damaged files also carry the ``exception`` (not in --json).
    """
    from ..errors import TrajalignError
    from ..io import open_source
    from ..io.integrity import DamagedFileError, scan_source

    rows = []
    # frames of the files before this one (--stop counts the whole input); None once
    # a file is damaged
    before: int | None = 0
    for path in kw["paths"]:
        # frame slices and periodic repair are about using frames, not reading them
        one = dict(kw, paths=[path], start=None, stop=None, step=None, pbc="none")
        row = {"path": str(path), "ok": True, "frames": None, "error": None}
        try:
            with open_source(**one) as src:
                row["frames"] = scan_source(src)
            if before is not None and not each:  # with --each, every file starts at 0
                before += row["frames"]
        except TrajalignError as exc:
            if isinstance(exc, DamagedFileError) and before is None:
                # a file before it is damaged: no --stop reaches this one's good frames
                exc = DamagedFileError(exc.path, exc.what, None, exc.tool)
            elif isinstance(exc, DamagedFileError) and before:
                exc = exc.shifted(before)
            before = 0 if each else None
            row.update(ok=False, error=str(exc))
            row["exception"] = exc
        rows.append(row)
    return rows


def check_line(row: dict) -> str:
    """One line of ``info --check`` for a file."""
    if row["ok"]:
        return f"{row['path']}: {row['frames']} frames, all readable"
    return f"damaged: {row['error']}"


def describe(src) -> dict:
    """Plain-value facts about an open source."""
    import numpy as np

    box = None
    first = None
    if src.has_box:
        first = src.read(0, 1)
        box = [round(float(v), 4) for v in first.box[0]]
    masses = None
    if src.masses is not None:
        m = np.asarray(src.masses)
        masses = {"total": float(m.sum()), "min": float(m.min()), "max": float(m.max())}
    return {
        "inputs": list(src.spec.paths),
        "topology": src.spec.top,
        "kind": src.kind,
        "frames": src.n_frames,
        "frames_in_files": src.total_frames,
        "points": src.n_points,
        "points_in_files": src.n_atoms_total,
        "dimension": src.dim,
        "length_unit": src.length_unit,
        "time_step_ps": float(f"{src.dt:.6g}"),  # DCD stores dt in float32 AKMA units
        "box_first_frame": box,
        "masses": masses,
        "bonds": 0 if src.bonds is None else int(len(src.bonds)),
        "pbc": pbc_facts(src, first),
        **name_facts(getattr(src, "universe", None)),
    }


def _counted(values, limit: int) -> str:
    """``NAME xCOUNT`` for the most frequent of ``values`` (first seen first on ties),
    at most ``limit`` of them, then how many more there are."""
    import numpy as np

    names, first, counts = np.unique(
        np.asarray(values).astype(str), return_index=True, return_counts=True
    )
    order = np.lexsort((first, -counts))  # most frequent first, file order on ties
    ranked = [(str(names[i]), int(counts[i])) for i in order]
    text = ", ".join(f"{k} x{n}" for k, n in ranked[:limit])
    if len(ranked) > limit:
        text += f" and {len(ranked) - limit} more"
    return text


def name_facts(universe, limit: int = 12) -> dict:
    """Residue names (counted per residue), atom names (counted per atom) and segments
    (counted per atom) of the whole topology, for writing selections; empty for arrays.

    Parameters
    ----------
    universe : MDAnalysis.Universe or None
        The source's universe (None for array inputs).
    limit : int
        Most frequent names shown per row; the rest are counted.

    Returns
    -------
    dict
        ``residues``, ``atom_names`` and ``segments`` as one-line strings.
    """
    if universe is None:
        return {}
    atoms = universe.atoms
    facts = {}
    if hasattr(atoms, "resnames"):
        facts["residues"] = _counted(universe.residues.resnames, limit)
    if hasattr(atoms, "names"):
        facts["atom_names"] = _counted(atoms.names, limit)
    if hasattr(atoms, "segids"):
        facts["segments"] = _counted(atoms.segids, limit) + " (atoms per segid)"
    return facts


def pbc_facts(src, first) -> str:
    """The periodic repair ``--pbc`` chose, and what it found in the first frame."""
    if not src.has_box:
        return "none (no periodic box)"
    counts = first.repair or {}
    if src.pbc_mode == "none":
        if counts.get("spread_frames"):
            return "none: the selection may be split across the boundary in frame 0"
        return "none"
    n_mol = src._repair.plan.n_molecules
    text = f"{src.pbc_mode} ({n_mol} molecule(s) hold the selection"
    if "split_molecules" in counts:
        text += f"; {counts['split_molecules']} split in frame 0"
    return text + ")"


def output_facts(path: str, n_labels: int = 3) -> dict | None:
    """Facts about a trajalign output with features; None for any other file.

    Parameters
    ----------
    path : str
    n_labels : int
        First labels shown per feature.

    Returns
    -------
    dict or None
        ``output``, ``method``, ``frames`` and ``features``: one dict per feature with
        ``name``, ``shape``, ``dtype``, ``unit``, ``columns`` (labels count),
        ``first_labels``, ``more`` and ``labels_last`` (expanded features).
    """
    import os

    if not os.path.isfile(path) or not path.lower().endswith((".h5", ".hdf5", ".h5md")):
        return None
    import h5py

    from ..features.read import FEATURES_ROOT, feature_names

    try:
        f = h5py.File(path, "r")
    except OSError:
        return None
    with f:
        names = feature_names(f)
        if not names:
            return None
        method = None
        prov = f.get("trajalign/provenance")
        if prov is not None and "parameters" in prov.attrs:
            try:
                method = json.loads(prov.attrs["parameters"]).get("method")
            except (ValueError, AttributeError):
                method = None
        feats = []
        for name in names:
            g = f[FEATURES_ROOT][name]
            v = g["value"]
            labels = g["labels"][: n_labels + 1] if "labels" in g else []
            labels = [s.decode() if isinstance(s, bytes) else str(s) for s in labels]
            last = g["labels_last"][()] if "labels_last" in g else []
            last = [s.decode() if isinstance(s, bytes) else str(s) for s in last]
            feats.append(
                {
                    "name": name,
                    "shape": list(v.shape),
                    "dtype": str(v.dtype),
                    "unit": str(v.attrs.get("unit", "")),
                    "columns": int(g["labels"].shape[0]) if "labels" in g else None,
                    "first_labels": labels[:n_labels],
                    "more": len(labels) > n_labels,
                    "labels_last": last,
                }
            )
        frames = int(feats[0]["shape"][0])
    return {"output": path, "method": method, "frames": frames, "features": feats}


def output_lines(facts: dict) -> list[str]:
    """``info``'s text for :func:`output_facts`: one line per feature."""
    lines = [
        f"output    {facts['output']}",
        f"method    {facts['method']}",
        f"frames    {facts['frames']}",
        f"features  {len(facts['features'])}",
    ]
    width = max(len(ft["name"]) for ft in facts["features"])
    for ft in facts["features"]:
        shape = "x".join(str(n) for n in ft["shape"])
        unit = f" {ft['unit']}" if ft["unit"] else ""
        first = ", ".join(ft["first_labels"]) + (", ..." if ft["more"] else "")
        if ft["labels_last"]:
            first += " x " + ", ".join(ft["labels_last"][:4])
            first += ", ..." if len(ft["labels_last"]) > 4 else ""
        lines.append(f"  {ft['name']:<{width}}  {shape} {ft['dtype']}{unit}: {first}")
    return lines
