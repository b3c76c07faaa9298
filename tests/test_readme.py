"""The README's console examples, run as a new user would, print what the README shows.

Every ```console block of README.md is run in a temporary folder holding a copy of
``sample_data/`` (and, for the periodic examples, the ``adk_oplsaa.*`` files of
MDAnalysisTests). Lines starting with ``$ trajalign`` run in-process through the real
entry point; other ``$`` lines (``printf ...``) run in a shell. The printed lines (stdout
and stderr in the order they were written) are compared with the README's after
normalising what depends on the machine: absolute paths become ``/abs/path``, durations
``X.XX s`` and ``"seconds": N``. A README line ``...`` stands for any number of lines.

Run ``python tests/test_readme.py`` to print the differences of every block.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    heading: str
    commands: list[Command]

    @property
    def name(self) -> str:
        return f"{self.heading}: {self.commands[0].line[:50]}"


def console_blocks(text: str) -> list[Block]:
    """The ```console blocks of ``text``, each as commands with their expected lines."""
    blocks, heading, current, inside = [], "", None, False
    for line in text.splitlines():
        if line.startswith("#") and not inside:
            heading = line.lstrip("#").strip()
        elif line.strip() == "```console":
            inside, current = True, Block(heading, [])
        elif line.strip() == "```" and inside:
            inside = False
            blocks.append(current)
        elif inside:
            if line.startswith("$ "):
                current.commands.append(Command(line[2:]))
            else:
                current.commands[-1].expected.append(line.rstrip())
    return blocks


_SECONDS = re.compile(r"\b\d+\.\d+ s\b")
_JSON_SECONDS = re.compile(r'"seconds": [0-9.e+-]+')


def normalise(lines: list[str], folder: Path) -> list[str]:
    """Replace what depends on the machine: paths in ``folder``, durations."""
    out = []
    for line in lines:
        line = line.replace(str(folder), "/abs/path")
        line = _SECONDS.sub("X.XX s", line)
        line = _JSON_SECONDS.sub('"seconds": N', line)
        out.append(line.rstrip())
    return out


def matches(expected: list[str], printed: list[str]) -> bool:
    """``printed`` equals ``expected``, where an ``...`` line matches any lines."""
    expected = normalise(expected, Path("/abs/path"))
    pattern = "\n".join(".*?" if line.strip() == "..." else re.escape(line) for line in expected)
    return re.fullmatch(pattern, "\n".join(printed), flags=re.DOTALL) is not None


ADK = ("adk_oplsaa.tpr", "adk_oplsaa.xtc")


def make_folder(folder: Path) -> None:
    """A fresh copy of sample_data/ and the MDAnalysisTests files some examples use."""
    shutil.copytree(ROOT / "sample_data", folder / "sample_data")
    try:
        from MDAnalysisTests.datafiles import TPR, XTC
    except ImportError:  # the adk examples are skipped
        return
    for src, name in zip((TPR, XTC), ADK, strict=True):
        shutil.copy(src, folder / name)


def needs(block: Block, folder: Path) -> list[str]:
    """Files a block reads that the folder cannot provide."""
    missing = []
    for cmd in block.commands:
        for word in cmd.line.split():
            if word.startswith("adk_oplsaa.") and not (folder / word).exists():
                missing.append(word)
    return missing


def run_command(line: str) -> list[str]:
    """Run one ``$`` line in the current folder; the printed lines, interleaved."""
    import shlex

    from click.testing import CliRunner

    from trajalign.cli import main

    if not line.startswith("trajalign "):
        done = subprocess.run(line, shell=True, capture_output=True, text=True)
        return (done.stdout + done.stderr).splitlines()
    runner = CliRunner()
    with runner.isolation() as (_, _, output):
        try:
            main(shlex.split(line)[1:], hard_exit=False)
        except SystemExit:
            pass
        text = output.getvalue().decode()
    return text.splitlines()


def run_block(block: Block, folder: Path) -> list[tuple[Command, list[str]]]:
    return [(cmd, normalise(run_command(cmd.line), folder)) for cmd in block.commands]


BLOCKS = console_blocks(README.read_text())


def test_readme_has_console_examples():
    assert len(BLOCKS) >= 8
    assert sum(len(b.commands) for b in BLOCKS) >= 20


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme").resolve()
    make_folder(folder)
    return folder


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_readme_console_block(block, readme_folder, monkeypatch):
    missing = needs(block, readme_folder)
    if missing:
        pytest.skip(f"needs {', '.join(sorted(set(missing)))} (MDAnalysisTests not installed)")
    monkeypatch.chdir(readme_folder)
    for cmd, printed in run_block(block, readme_folder):
        assert matches(cmd.expected, printed), (
            f"$ {cmd.line}\nREADME:\n"
            + "\n".join(cmd.expected)
            + "\nprinted:\n"
            + "\n".join(printed)
        )


ALL_PYTHON = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
#: the machine-learning examples need the ``ml`` extra and the adk example's output
ML_BLOCKS = [b for b in ALL_PYTHON if "sklearn" in b]
PYTHON_BLOCKS = [
    b
    for b in ALL_PYTHON
    if "dask_jobqueue" not in b  # needs a SLURM cluster: not run here
    and b not in ML_BLOCKS
]


def _run_python(block: str, capsys) -> None:
    """Exec a README snippet; what it prints equals its full-line ``# `` comments."""
    import warnings

    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    shown = [ln[2:] for ln in block.splitlines() if ln.startswith("# ")]
    assert printed == shown, block


def test_readme_ml_snippets(readme_folder, monkeypatch, capsys):
    """The ML examples run where scikit-learn (the ``ml`` extra) and the adk files are."""
    pytest.importorskip("sklearn")
    if not (readme_folder / ADK[0]).exists():
        pytest.skip("needs adk_oplsaa.* (MDAnalysisTests not installed)")
    assert ML_BLOCKS
    monkeypatch.chdir(readme_folder)
    line = next(c.line for b in BLOCKS for c in b.commands if "-o adk_features.h5" in c.line)
    run_command(line.replace("adk_features.h5", "adk_features.h5 --force"))
    for block in ML_BLOCKS:
        _run_python(block, capsys)


def test_readme_python_snippets(readme_folder, monkeypatch, capsys):
    """Every Python snippet runs (after the commands that write the files it opens), and
    prints what its full-line ``# `` comments after a ``print`` show."""
    import warnings

    monkeypatch.chdir(readme_folder)
    for line in (
        'trajalign -q center sample_data/butane.dcd -t sample_data/butane.pdb -s "name C*" '
        "-o butane_c_py.h5",
        "trajalign -q rotate sample_data/butane.dcd -t sample_data/butane.pdb -o butane_fit_py.h5",
    ):
        assert run_command(line) == []
    assert len(PYTHON_BLOCKS) >= 3
    for block in PYTHON_BLOCKS:
        code = block.replace("butane_c.h5", "butane_c_py.h5").replace(
            "butane_fit.h5", "butane_fit_py.h5"
        )
        capsys.readouterr()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(code, "README.md", "exec"), {})
        printed = capsys.readouterr().out.splitlines()
        shown = [ln[2:] for ln in block.splitlines() if ln.startswith("# ")]
        assert printed == shown, block


if __name__ == "__main__":  # print every block's differences
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp).resolve()
        make_folder(folder)
        os.chdir(folder)
        for block in BLOCKS:
            for cmd, printed in run_block(block, folder):
                ok = matches(cmd.expected, printed)
                print(("ok   " if ok else "DIFF ") + "$ " + cmd.line)
                if not ok:
                    print("  README:\n    " + "\n    ".join(cmd.expected))
                    print("  printed:\n    " + "\n    ".join(printed))
        sys.exit(0)
