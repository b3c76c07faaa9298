"""Diagnostics: consecutive RMSD and the jump rule, perturbation sensitivity, figures,
``trajalign diagnose`` and the rotate-output helpers."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from tests.conftest import BUTANE_DCD, BUTANE_PDB, CHAIN2D
from trajalign import diagnostics as dg
from trajalign import plots
from trajalign.errors import ParameterError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rot2d(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, s], [-s, c]])


def smooth_trajectory(n_frames=600, seed=1):
    """A 10-point rigid-ish body turning slowly, with small thermal noise."""
    rng = np.random.default_rng(seed)
    body = rng.normal(scale=2.0, size=(10, 2))
    angles = np.linspace(0, 3 * np.pi, n_frames)
    x = np.stack([body @ rot2d(a) for a in angles])
    return x + rng.normal(scale=0.02, size=x.shape)


PLANTED = [100, 101, 250, 430]  # frames where the aligned output flips by 180 degrees


def with_flips(x):
    """Sign flips as a principal-axis alignment makes them: frames 100 and 250 start
    flipped stretches (entering at 100, leaving at 101; entering at 250 and staying), 430
    a one-frame excursion that comes back at 431."""
    y = x.copy()
    y[100:101] *= -1
    y[250:] *= -1
    y[430] *= -1
    return y


# ------------------------------------------------------------------------- jumps


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_consecutive_rmsd_in_threads_gives_the_bits_of_one_call(monkeypatch, threads):
    import numba

    from trajalign.kernels import _threads
    from trajalign.kernels.diagnostics import consecutive_rmsd_kernel

    x = np.random.default_rng(4).normal(size=(11, 50, 3)).astype(np.float32)
    one = np.full(11, np.nan)
    consecutive_rmsd_kernel(0, 11, x, one)
    monkeypatch.setattr(_threads, "MIN_WORK", 1)  # split even this small input
    monkeypatch.setattr(numba, "get_num_threads", lambda: threads)
    got = dg.consecutive_rmsd(x)
    np.testing.assert_array_equal(got, one)  # NaN at frame 0 on both sides


def test_consecutive_rmsd_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4, 3))
    got = dg.consecutive_rmsd(x)
    assert np.isnan(got[0])
    for t in range(1, 5):
        ref = np.sqrt(np.mean(np.sum((x[t] - x[t - 1]) ** 2, axis=1)))
        assert got[t] == pytest.approx(ref, rel=1e-12)
    with_prev = dg.consecutive_rmsd(x[2:], previous=x[1])
    np.testing.assert_allclose(with_prev, got[2:], rtol=1e-12)


def test_jumps_flag_planted_flips_and_nothing_on_smooth():
    x = smooth_trajectory()
    assert not dg.flag_jumps(dg.consecutive_rmsd(x)).any()
    flags = dg.flag_jumps(dg.consecutive_rmsd(with_flips(x)))
    planted = sorted(PLANTED + [431])
    assert np.flatnonzero(flags).tolist() == planted


def test_jump_rule_at_the_ends_and_constant_series():
    # a perfectly rigid motion has a constant score: MAD 0, the floor keeps rounding out
    s = np.full(200, 0.1) + 1e-12 * np.random.default_rng(0).normal(size=200)
    s[0] = np.nan
    assert not dg.flag_jumps(s).any()
    s[1] = s[-1] = 5.0  # spikes next to both ends are still judged against real frames
    assert np.flatnonzero(dg.flag_jumps(s)).tolist() == [1, 199]


def test_jump_rule_rejects_bad_parameters():
    with pytest.raises(ParameterError):
        dg.flag_jumps(np.ones(10), k=0)


def test_add_jump_diagnostics_blocks_equal_whole(tmp_path):
    x = with_flips(smooth_trajectory()).astype(np.float32)
    path = tmp_path / "out.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(dg.POSITION, data=x).attrs["unit"] = "nm"
        f.create_dataset("trajalign/frames/index", data=np.arange(len(x)) * 10)
        summary = dg.add_jump_diagnostics(f, block_frames=37)  # blocks cut across flips
    with h5py.File(path) as f:
        rmsd = f["trajalign/diagnostics/consecutive_rmsd"][:]
        flag = f["trajalign/diagnostics/jump_flag"]
        assert flag.dtype == bool
        assert flag.attrs["k"] == dg.JUMP_K and "median" in flag.attrs["rule"]
        assert f["trajalign/diagnostics/consecutive_rmsd"].attrs["unit"] == "nm"
        np.testing.assert_allclose(rmsd, dg.consecutive_rmsd(x), rtol=1e-12, equal_nan=True)
        assert np.flatnonzero(flag[:]).tolist() == sorted(PLANTED + [431])
    assert summary["jumps"] == 5
    assert summary["frames"] == [10 * f for f in sorted(PLANTED + [431])]


def test_jump_scan_blocks_equal_one_pass(chain2d):
    x = chain2d[:300]
    one = dg.JumpScan
    a = one(["kabsch", "principal", "point"], 300, 2)
    a.add(x)
    a.finish()
    b = one(["kabsch", "principal", "point"], 300, 2)
    for s in range(0, 300, 70):
        b.add(x[s : s + 70])
    b.finish()
    for m in a.methods:
        np.testing.assert_allclose(a.rmsd[m], b.rmsd[m], rtol=1e-5, atol=1e-6, equal_nan=True)
        np.testing.assert_array_equal(a.overlay[m], b.overlay[m])
    np.testing.assert_array_equal(a.principal["sign_flip"], b.principal["sign_flip"])


def test_principal_sign_none_jumps_more_than_continuity(chain2d):
    """Eigen-solver signs flip (69 frames on chain2d), continuity leaves only the axis
    swaps."""
    counts = {}
    for sign in ("none", "continuity"):
        scan = dg.JumpScan(["principal"], len(chain2d), 2, sign=sign)
        scan.add(chain2d)
        scan.finish()
        counts[sign] = int(scan.flags["principal"].sum())
        swaps = int(scan.principal["axis_swap"].sum())
    assert counts["none"] > 3 * counts["continuity"]
    assert counts["continuity"] <= swaps


# ------------------------------------------------------------------- sensitivity


def test_perturb_frames_follow_the_chapter():
    f = np.zeros((3, 2))
    frames, delta = dg.perturb_frames(f, 1, steps=16, amount=0.2)
    np.testing.assert_allclose(delta, np.linspace(0, 0.2, 16))
    np.testing.assert_allclose(frames[:, 1, 0], -delta)  # the chapter subtracts
    assert np.all(frames[:, [0, 2]] == 0) and np.all(frames[:, 1, 1] == 0)


def test_sensitivity_without_alignment_is_the_identity(chain2d):
    s = dg.sensitivity(chain2d[0], ["none"], 4)
    expected = np.zeros(12)
    expected[4] = 1.0
    np.testing.assert_allclose(s[0], expected, atol=1e-12)


def test_point_alignment_makes_far_points_noisy(chain2d):
    """The chapter's finding: moving point 1 turns the 0->1 vector, and the point
    alignment swings the far end of the chain with it; principal axes spread the effect.
    Frame 0's bond 0->1 lies along x (0.6 degrees), so the move is made across the bond
    (y) there, and along x in frame 128, whose bond points at -53 degrees."""
    far = slice(6, 12)
    for frame, axis in ((0, 1), (128, 0)):
        s = dg.sensitivity(chain2d[frame], ["principal", "point"], 1, axis=axis)
        principal, point = s[:, far].mean(axis=1)
        assert point > 5 * principal, (frame, principal, point)
        # the lever: under point alignment displacement grows along the chain
        assert s[1, 11] > s[1, 3]


def test_move_along_the_bond_barely_turns_it(chain2d):
    """The exception to the finding: in frame 0 a move along x is a move along the bond
    0->1, which only stretches it, so the point alignment hardly turns."""
    s = dg.sensitivity(chain2d[0], ["point"], 1, axis=0)
    assert s[0, 6:].max() < 0.1


def test_sensitivity_matrix_shape_and_rows(chain2d):
    meths = ["none", "center-com", "point"]
    m = dg.sensitivity_matrix(chain2d[0], meths, [0, 5])
    assert m.shape == (3, 2, 12)
    np.testing.assert_allclose(m[:, 1], dg.sensitivity(chain2d[0], meths, 5))
    # centering on the mean moves every other point by 1/N of the perturbation
    np.testing.assert_allclose(np.delete(m[1, 1], 5), 1 / 12, rtol=1e-6)


# ------------------------------------------------------------------------ figures


def _is_png(path):
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_MAGIC
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_plot_functions_take_and_return_axes(chain2d):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5)
    x = smooth_trajectory(100)
    r = dg.consecutive_rmsd(x)
    assert plots.plot_jumps(np.arange(100), r, dg.flag_jumps(r), ax=axes[0]) is axes[0]
    gap = np.full((100, 1), 0.5)
    assert plots.plot_principal(np.arange(100), gap, ax=axes[1]) is axes[1]
    assert plots.plot_overlay(chain2d[:10], ax=axes[2]) is axes[2]
    y = dg.perturb_aligned(chain2d[0], "point", 1)
    assert plots.plot_perturbation(y, 1, ax=axes[3]) is axes[3]
    assert plots.plot_sensitivity(np.eye(2, 12), ["none", "point"], 1, ax=axes[4]) is axes[4]
    assert axes[0].get_ylabel() == "consecutive RMSD (Angstrom)"
    plt.close(fig)
    ax = plots.plot_overlay(chain2d[:5])  # ax=None makes a figure
    assert ax.get_title() and ax.get_xlabel() == "x (Angstrom)"
    plt.close(ax.figure)


def test_write_rotate_plots(cli, tmp_path):
    out = tmp_path / "p.h5"
    r = cli("-q", "rotate", CHAIN2D, "--method", "principal", "--stop", "300", "-o", out)
    assert r.code == 0, r.stderr
    paths = plots.write_rotate_plots(dg.read_rotate_jumps(out), tmp_path / "figs")
    assert [p.rsplit("/", 1)[1] for p in paths] == ["jumps.png", "overlay.png"]
    for p in paths:
        _is_png(p)
    with h5py.File(out, "r+") as f:
        dg.add_jump_diagnostics(f)
    svg = plots.write_rotate_plots(dg.read_rotate_jumps(out), tmp_path / "svg", fmt="svg")
    assert all(open(p).read(200).lstrip().startswith("<?xml") for p in svg)
    with pytest.raises(ParameterError):
        plots.write_rotate_plots(dg.read_rotate_jumps(out), tmp_path / "x", fmt="gif")


# ---------------------------------------------------------------- diagnose command


def test_diagnose_writes_numbers_and_figures(cli, tmp_path):
    out, figs = tmp_path / "d.h5", tmp_path / "figs"
    r = cli("diagnose", CHAIN2D, "--stop", "400", "-o", out, "--plot", figs, "--json")
    assert r.code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["methods"] == ["none", "center-com", "kabsch", "principal", "point"]
    names = sorted(p.rsplit("/", 1)[1] for p in summary["plots"])
    assert names == ["jumps.png", "overlay.png", "perturbation.png", "sensitivity.png"]
    for p in summary["plots"]:
        _is_png(p)
    with h5py.File(out) as f:
        g = f["trajalign/diagnostics"]
        assert g["sensitivity/value"].shape == (5, 12, 12)
        assert json.loads(g["sensitivity/value"].attrs["methods"]) == summary["methods"]
        assert g["jumps/principal/consecutive_rmsd"].shape == (400,)
        assert int(g["jumps/principal/jump_flag"][:].sum()) == summary["jumps"]["principal"]
        assert g["principal/gap"].shape == (400, 1)
        assert g["sensitivity/aligned/point"].shape == (16, 12, 2)
        assert g["overlay/kabsch"].shape[1:] == (12, 2)
        assert f["trajalign/frames/index"][-1] == 399
        assert "particles/trajectory/position" not in f
        assert json.loads(f["trajalign/provenance"].attrs["parameters"])["command"] == "diagnose"


def test_diagnose_3d_with_bonds_and_svg(cli, tmp_path):
    figs = tmp_path / "f"
    r = cli(
        "-q", "diagnose", BUTANE_DCD, "-t", BUTANE_PDB, "--stop", "100", "--methods",
        "kabsch,principal,point", "--perturb-point", "0", "--perturb-axis", "z",
        "--plot", figs, "--plot-format", "svg",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    # butane has a box and bonds, so the repair ran and its effect is drawn too
    assert sorted(p.name for p in figs.iterdir()) == [
        "jumps.svg",
        "overlay.svg",
        "pbc_rmsd.svg",
        "perturbation.svg",
        "sensitivity.svg",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (("-o", "{tmp}/o.h5", "--perturb-point", "12"), "--perturb-point 12 is outside"),
        (("-o", "{tmp}/o.h5", "--perturb-axis", "z"), "needs 3D"),
        (("-o", "{tmp}/o.h5", "--methods", "kabsch,spin"), "--methods"),
        (("-o", "{tmp}/o.h5", "--points", "0,0"), "repeat a point"),
        (("-o", "{tmp}/o.h5", "--perturb-frame", "5000"), "--perturb-frame 5000"),
    ],
)
def test_diagnose_bad_input_writes_nothing(cli, tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    r = cli("diagnose", CHAIN2D, *args)
    assert r.code == 1
    assert r.stderr.startswith("Error: ") and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_diagnose_results_on_stdout_without_output(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("-q", "diagnose", CHAIN2D, "--stop", "200", "--methods", "kabsch,principal")
    assert r.code == 0 and r.stderr == ""
    assert r.stdout.startswith("jumps (frames flagged): kabsch 0, principal ")
    assert "far points (" in r.stdout and "moved per unit move of point 1" in r.stdout
    r = cli("diagnose", CHAIN2D, "--stop", "200", "--methods", "kabsch", "--json")
    assert r.code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["output"] is None and summary["jumps"] == {"kabsch": 0}
    assert list(tmp_path.iterdir()) == []


def test_diagnose_refuses_existing_output(cli, tmp_path):
    out = tmp_path / "d.h5"
    out.write_bytes(b"keep")
    r = cli("diagnose", CHAIN2D, "--stop", "50", "-o", out)
    assert r.code == 1 and "already exists" in r.stderr
    assert out.read_bytes() == b"keep"
    r = cli("-q", "diagnose", CHAIN2D, "--stop", "50", "-o", out, "--force")
    assert r.code == 0 and h5py.is_hdf5(out)


def test_help_does_not_import_matplotlib():
    code = (
        "import sys\nfrom trajalign.cli import main\n"
        "try:\n    main(['diagnose', '--help'], hard_exit=False)\nexcept SystemExit:\n    pass\n"
        "print('matplotlib' in sys.modules, 'numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"
