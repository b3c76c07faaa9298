"""rotate/center --plot and the jump diagnostics a rotate run stores."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from trajalign.diagnostics import consecutive_rmsd

from .conftest import BUTANE_DCD, BUTANE_PDB, CHAIN2D

PNG = b"\x89PNG\r\n\x1a\n"


def test_rotate_stores_jumps_and_draws_figures(cli, tmp_path):
    out, figs = tmp_path / "pa.h5", tmp_path / "figs"
    res = cli(
        "rotate",
        CHAIN2D,
        "--method",
        "principal",
        "--sign",
        "none",
        "--stop",
        600,
        "-o",
        out,
        "--plot",
        figs,
        "--json",
    )
    assert res.code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert sorted(p.rsplit("/", 1)[-1] for p in summary["figures"]) == ["jumps.png", "overlay.png"]
    for p in summary["figures"]:
        assert open(p, "rb").read(8) == PNG
    with h5py.File(out) as f:
        pos = f["particles/trajectory/position/value"][()]
        rmsd = f["trajalign/diagnostics/consecutive_rmsd"][()]
        flags = f["trajalign/diagnostics/jump_flag"][()]
        flips = f["trajalign/diagnostics/sign_flip"][()].any(axis=1)
    # the stored scores are the consecutive-frame RMSD of the stored positions
    np.testing.assert_allclose(rmsd[1:], consecutive_rmsd(pos)[1:], rtol=1e-6)
    # --sign none flips axes; every flagged jump is at a sign flip or an axis swap
    assert flags.sum() > 5
    assert any("jump in" in w for w in summary["warnings"])
    assert flips[flags].mean() > 0.8


def test_kabsch_has_no_jumps_and_center_draws_too(cli, tmp_path):
    out = tmp_path / "k.h5"
    res = cli("rotate", BUTANE_DCD, "-t", BUTANE_PDB, "-o", out, "--json")
    assert res.code == 0 and not any("jump" in w for w in json.loads(res.stdout)["warnings"])
    with h5py.File(out) as f:
        assert not f["trajalign/diagnostics/jump_flag"][()].any()
    res = cli(
        "center",
        CHAIN2D,
        "-o",
        tmp_path / "c.h5",
        "--plot",
        tmp_path / "cf",
        "--plot-format",
        "svg",
    )
    assert res.code == 0, res.stderr
    assert (tmp_path / "cf" / "overlay.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("command", ["center", "rotate", "diagnose"])
def test_plot_naming_a_file_is_one_error_line_before_any_work(cli, tmp_path, command):
    """Every command with --plot refuses an existing file the same way: exit 1, one line."""
    afile = tmp_path / "figs"
    afile.write_text("not a folder")
    out = tmp_path / "o.h5"
    res = cli(command, CHAIN2D, "-o", out, "--plot", afile)
    assert res.code == 1, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"Error: --plot {afile} is a file (give a folder for the figures)"
    ]
    assert not out.exists() and afile.read_text() == "not a folder"
