"""Output files that appear whole or not at all.

:func:`prepare_output` checks the target before any work starts; :class:`AtomicOutput`
hands out a temporary path beside the target and renames it over the target only when the
writer has finished and closed it. On any failure the temporary file is removed and an
existing target is untouched.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from ..errors import OutputError

__all__ = [
    "AtomicOutput",
    "move_into_place",
    "prepare_output",
    "RunLock",
]


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


def move_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished temporary output ``tmp`` to ``target`` (replacing it); if
    that fails, ``tmp`` is removed and the error says what to check."""
    try:
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(
            f"cannot move the finished output to {target}: {err}",
            "check the folder's permissions and free space",
        ) from None


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
            move_into_place(self.tmp, self.target)
            return False
        self._discard()
        return False

    def _discard(self) -> None:
        try:
            if self.tmp is not None:
                self.tmp.unlink()
        except FileNotFoundError:
            pass


#: an unreadable lock file older than this is a dead run's (a live run writes its lock's
#: text microseconds after creating it)
_UNREADABLE_STALE_SECONDS = 60.0


class RunLock:
    """Context manager: hold ``.<name>.lock`` beside ``target`` while a run builds it.

    HDF5's own file locks are off with ``--hdf5-locking false`` and do not work on every
    cluster filesystem, so two runs (or two ``--resume`` runs) could write one partial
    output. The lock file is created with ``O_EXCL``, which is atomic on local disks,
    NFS and Lustre alike. It holds the host and process id of its run: a lock left by a
    run killed on this host is recognised (no such process) and taken over; one from
    another host cannot be checked, and the message says how to remove it.
    """

    def __init__(self, target: str | os.PathLike) -> None:
        target = Path(target)
        self.target = target
        self.path = target.parent / f".{target.name}.lock"
        self._mine: str | None = None

    def __enter__(self) -> RunLock:
        import json
        import socket

        me = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}
        )
        for _ in range(3):
            try:
                self._create(me)
            except FileExistsError:
                if not self._take_stale():
                    raise self._busy() from None
                continue
            except OSError as err:
                raise OutputError(
                    f"cannot create the lock file {self.path}: {err.strerror}",
                    "check the output folder's permissions",
                ) from None
            self._mine = me
            self._sweep()
            return self
        raise self._busy()

    def _sweep(self) -> None:
        """Remove the files :meth:`_create` writes before its link that runs killed in
        that instant left behind (``.<name>.lock.<pid>`` of no live process)."""
        for own in self.path.parent.glob(f"{self.path.name}.*"):
            pid = own.name.rsplit(".", 1)[1]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid), None):
                own.unlink(missing_ok=True)

    def _create(self, me: str) -> None:
        """Create the lock holding ``me``; FileExistsError if it exists.

        The text is written to a file of this process first and hard-linked to the lock's
        name (atomic, and the classic NFS lock): the lock never exists without its
        holder, so a run killed at any instant leaves either no lock or one that names
        it. (Created empty and then written, a run killed in between left an empty lock
        that no later run could tell from one being written: seen in CI.) Where hard
        links are not supported, ``O_EXCL`` and then the write.
        """
        own = self.path.with_name(f"{self.path.name}.{os.getpid()}")
        try:
            own.write_text(me)
            try:
                os.link(own, self.path)
                return
            except FileExistsError:
                raise
            except OSError:
                pass  # no hard links here
        finally:
            own.unlink(missing_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(me)

    def __exit__(self, *exc) -> bool:
        try:
            if self._mine is not None and self.path.read_text() == self._mine:
                self.path.unlink()
        except OSError:
            pass
        self._mine = None
        return False

    def _holder(self) -> dict | None:
        import json

        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None  # being written this instant, or gone: treated as held

    def _take_stale(self) -> bool:
        """Remove the lock if its run is dead on this host; True if it is gone now."""
        import socket

        held = self._holder()
        if held is None:
            # unreadable: being written this instant, or (from a run before hard-linked
            # locks, or where there are none) left empty by a run killed while writing it
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return True
            if age < _UNREADABLE_STALE_SECONDS:
                return False
        elif held.get("host") != socket.gethostname() or _alive(
            held.get("pid"), held.get("started")
        ):
            return False
        # another run may be taking it over at the same moment: only the one whose
        # rename moves the stale lock itself (not a new one) goes on
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True
        try:
            moved = aside.read_text()
        except OSError:
            moved = None
        if moved is not None and not _encodes(moved, held):
            os.rename(aside, self.path)  # it was a live run's new lock: put it back
            return False
        aside.unlink(missing_ok=True)
        return True

    def _busy(self) -> OutputError:
        held = self._holder() or {}
        who = (
            f"process {held['pid']} on {held['host']}"
            if "pid" in held and "host" in held
            else "another run"
        )
        return OutputError(
            f"{who} is writing {self.target} now (it holds {self.path.name})",
            f"wait for it to finish or give another -o; if that run is gone, delete {self.path}",
        )


def _encodes(text: str, held: dict | None) -> bool:
    """Does ``text`` hold the stale lock ``held`` read before (None: an unreadable one)?"""
    import json

    try:
        return json.loads(text) == held
    except ValueError:
        return held is None


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid, started) -> bool:
    """Is process ``pid`` (started at ``started``) running on this host?"""
    if not isinstance(pid, int) or pid <= 0:
        return True  # unreadable lock: do not take it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    now = _start_time(pid)
    return started is None or now is None or now == started
