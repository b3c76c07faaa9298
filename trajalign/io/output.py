"""Output files that appear whole or not at all.

:func:`prepare_output` checks the target before any work starts; :class:`AtomicOutput`
hands out a temporary path beside the target and renames it over the target only when the
writer has finished and closed it. On any failure the temporary file is removed and an
existing target is untouched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import OutputError


def prepare_output(path: str | os.PathLike, force: bool = False, option: str = "-o") -> Path:
    """Check that ``path`` can be written; return it as an absolute :class:`Path`.

    ``option`` is the command-line option that named ``path``, for the messages."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise OutputError(f"output {target} is a folder", "give a file name such as out.h5")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        raise OutputError(
            f"output folder {parent} does not exist", f"create it first (mkdir -p {parent})"
        )
    if not os.access(parent, os.W_OK):
        raise OutputError(
            f"output folder {parent} is not writable", f"choose another {option} path"
        )
    if target.exists() and not force:
        raise OutputError(
            f"output {target} already exists",
            f"pass --force to replace it, or choose another {option}",
        )
    return target.absolute()


class AtomicOutput:
    """Context manager: write to ``.tmp`` beside ``target``, rename on success.

    ``with AtomicOutput(target) as tmp:`` yields the temporary path. Leaving the block
    normally renames it to ``target`` (replacing an existing file only then); leaving it
    with an exception, Ctrl-C included, deletes it.
    """

    def __init__(self, target: str | os.PathLike, force: bool = False, option: str = "-o") -> None:
        self.target = prepare_output(target, force=force, option=option)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(
            prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent
        )
        os.close(fd)
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.tmp is not None
        if exc_type is None:
            try:
                os.replace(self.tmp, self.target)
            except OSError as err:
                self._discard()
                raise OutputError(
                    f"cannot move the finished output to {self.target}: {err}",
                    "check the folder's permissions and free space",
                ) from None
            return False
        self._discard()
        return False

    def _discard(self) -> None:
        try:
            if self.tmp is not None:
                self.tmp.unlink()
        except FileNotFoundError:
            pass
