"""The check's rows as a text table or JSON, and the error of a broken promise."""

from __future__ import annotations

import json

import numpy as np

from ..errors import TrajalignError


class InvarianceError(TrajalignError):
    """A method broke an invariance it promises (``trajalign check`` exits 1)."""


def format_table(rows: list[dict]) -> str:
    """The check's rows as an aligned text table, with the rows' notes as footnotes
    (``*`` where there is one note, ``*1``, ``*2``, ... where there are several)."""
    head = ("method", "transformation", "promise", "max change", "tol", "result")
    notes: list[str] = []
    for r in rows:
        for n in filter(None, (r.get("note") or "").split("; ")):
            if n not in notes:
                notes.append(n)

    def mark(i: int) -> str:
        return "*" if len(notes) == 1 else f"*{i + 1}"

    lines = []
    for r in rows:
        res = "not promised" if r["ok"] is None else ("ok" if r["ok"] else "BROKEN")
        if r["ok"] is False:
            res += f" (frame {r['frame']})"
        mine = [notes.index(n) for n in filter(None, (r.get("note") or "").split("; "))]
        if mine:
            res += " " + " ".join(mark(i) for i in mine)
        lines.append(
            (
                r["method"],
                r["transformation"],
                r["promise"] or "-",
                f"{r['max_change']:.3g}",
                f"{r['tol']:.3g}",
                res,
            )
        )
    widths = [max(len(h), *(len(ln[i]) for ln in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(wd) for h, wd in zip(head, widths, strict=True)).rstrip()]
    out += [
        "  ".join(c.ljust(wd) for c, wd in zip(ln, widths, strict=True)).rstrip() for ln in lines
    ]
    out += [f"{mark(i)} {n}" for i, n in enumerate(notes)]
    return "\n".join(out)


def rows_json(rows: list[dict]) -> str:
    """The check's rows as a JSON array (inf as a string)."""

    def clean(v):
        return "inf" if isinstance(v, float) and not np.isfinite(v) else v

    return json.dumps([{k: clean(v) for k, v in r.items()} for r in rows])


def broken_promise(rows: list[dict], sign: str = "continuity") -> InvarianceError | None:
    """The error to raise for the first row whose promise broke, or None when none did.

    Parameters
    ----------
    rows : list of dict
        Rows of :func:`~trajalign.diagnostics.check_invariance` or
        :func:`~trajalign.diagnostics.check_periodic_images`.
    sign : str
        The principal-axes sign rule of the run (``none`` gets its own fix).

    Returns
    -------
    InvarianceError or None
    """
    broken = [r for r in rows if r["ok"] is False]
    if not broken:
        return None
    r = broken[0]
    more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
    fix = (
        "do not rely on that invariance for this method and input, or raise --tol "
        "if the change is rounding"
    )
    if r["method"] == "principal" and sign == "none":
        fix = "--sign none keeps the eigen solver's axis signs; use --sign skew or continuity"
    return InvarianceError(
        f"{r['method']} is not {r['promise']} under {r['transformation']}: its output "
        f"changed by {r['max_change']:.3g} (frame {r['frame']}), above the tolerance "
        f"{r['tol']:.3g}{more}",
        fix,
    )


__all__ = ["InvarianceError", "broken_promise", "format_table", "rows_json"]
