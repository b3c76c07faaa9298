"""Supervised reading: XTC frames decoded in a forked child process.

MDAnalysis' XTC decoder reads and writes out of bounds on a frame whose header is intact
but whose compressed bits are not, and the process dies by a signal. :class:`GuardedReader`
runs the decoding in a child forked when the source opens, so a crash becomes a
:class:`DecoderCrash` here, which :func:`trajalign.io.integrity.crash_error` turns into
an error naming the file and the frame.
"""

from __future__ import annotations

import mmap
import os
import pickle
import signal
import struct
import weakref

import numpy as np

__all__ = ["ChildError", "DecoderCrash", "GuardedReader", "guard_available"]


class DecoderCrash(Exception):
    """The child process decoding frames died by a signal; ``frame`` is the global frame
    it was decoding (or None) and ``signal`` its name."""

    def __init__(self, frame: int | None, signame: str) -> None:
        super().__init__(f"the decoder crashed ({signame})")
        self.frame = frame
        self.signal = signame


class ChildError(Exception):
    """A Python exception in the child; ``frame`` is the global frame it happened on."""

    def __init__(self, frame: int | None, kind: str, text: str) -> None:
        super().__init__(text)
        self.frame, self.kind, self.text = frame, kind, text


def _send(fd: int, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(struct.pack("<q", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _recv(fd: int):
    """One message, or None at the end of the pipe (the other side is gone)."""
    head = _read_exact(fd, 8)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<q", head)[0])
    return None if body is None else pickle.loads(body)


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        try:
            part = os.read(fd, min(left, 1 << 20))
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        if not part:
            return None
        chunks.append(part)
        left -= len(part)
    return b"".join(chunks)


def guard_available() -> bool:
    """Supervised reading needs fork and memfd (Linux)."""
    return hasattr(os, "fork") and hasattr(os, "memfd_create")


class GuardedReader:
    """Decode frames of an MDAnalysis trajectory in a forked child process.

    XTC frames are compressed; a frame whose header is intact but whose compressed bits
    are not makes MDAnalysis' decoder read and write out of bounds (SIGSEGV, SIGFPE,
    SIGABRT). Headers are checked before any frame is read (:func:`check_trajectory`);
    the bits can only be checked by decoding them. So the decoding runs in a child
    forked when the source is opened (it shares the open reader, no re-import, no
    re-parse): it writes the selected atoms of a block into shared memory, and a crash
    is seen by the parent as the end of a pipe, with the frame the child was on.

    While the caller works on one block the child already decodes the next one (the
    caller reads blocks in order). The child writes each block into a slot of a shared
    file that the caller's arrays then view (no copy); a slot is reused once no array
    views it. So the guard costs a pipe message per block and gains, on two cores, the
    overlap of decoding with the caller's work.

    Parameters
    ----------
    trajectory : MDAnalysis reader
        ``universe.trajectory``, opened in this process before the fork.
    """

    def __init__(self, trajectory) -> None:
        self.trajectory = trajectory
        self.pid = 0
        self._owner = os.getpid()  # a forked copy of this object must not end the child
        self._req = self._rep = -1
        self._fd = os.memfd_create("trajalign-frames", os.MFD_CLOEXEC)
        self._map: mmap.mmap | None = None  # the whole shared file, in this process
        self._size = 0
        # slots of the shared file, [offset, bytes]; a slot is busy while the child
        # writes it or an array of the caller views it (released by a finalizer)
        self._slots: list[list[int]] = []
        self._busy: list[bool] = []
        self._progress = mmap.mmap(-1, 16)  # anonymous, shared with the child
        self._pending: tuple | None = None
        self._finalizer = None
        self._start()

    # -- process management
    def _start(self) -> None:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child (its coverage is not collected)
            code = 0
            try:
                os.close(req_w)
                os.close(rep_r)
                # the pipes of the other readers' children: held here, they would keep
                # those children waiting after this process is gone
                for other in [r for r in _LIVE if r is not self]:
                    for fd in (other._req, other._rep):
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                # Ctrl-C reaches the whole process group: the parent handles it and
                # ends the child; SIGTERM and the rest keep their default action
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                # a crash is reported by the parent in one line, not by a dump here
                # (pytest and PYTHONFAULTHANDLER=1 enable the fault handler)
                import faulthandler

                faulthandler.disable()
                _serve(self.trajectory, req_r, rep_w, self._fd, self._progress)
            except BaseException:
                code = 1
            os._exit(code)
        os.close(req_r)
        os.close(rep_w)
        self.pid, self._req, self._rep = pid, req_w, rep_r
        self._pending = None
        self._finalizer = weakref.finalize(self, _stop_child, self._owner, pid, req_w, rep_r)
        _LIVE.add(self)

    def close(self) -> None:
        """End the child (it holds no state worth waiting for) and free the buffers."""
        _LIVE.discard(self)
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self.pid = 0
        self._map = None  # unmapped once no array views it
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _alloc(self, nbytes: int) -> int:
        """A free slot of at least ``nbytes`` (the smallest), else a new one at the end
        of the shared file; marked busy."""
        free = [k for k, (_, cap) in enumerate(self._slots) if not self._busy[k] and cap >= nbytes]
        if free:
            k = min(free, key=lambda j: self._slots[j][1])
        else:
            cap = -(-max(nbytes, 1) // mmap.PAGESIZE) * mmap.PAGESIZE
            self._slots.append([self._size, cap])
            self._busy.append(False)
            k = len(self._slots) - 1
            self._size += cap
            os.ftruncate(self._fd, self._size)
            # a new map of the grown file; the old one stays while arrays view it
            self._map = mmap.mmap(self._fd, self._size, flags=_MAP_FLAGS)
        self._busy[k] = True
        return k

    # -- reading
    def read(self, frames: np.ndarray, selections: list, has_box: bool, predict=None):
        """Decode ``frames`` (int64, increasing) in the child.

        Parameters
        ----------
        frames : (b,) int64
            Global frame indices, increasing.
        selections : list of (M_k,) int64 arrays or None
            Atom indices to keep, one output per entry (None: every atom).
        has_box : bool
            Return the box of every frame.
        predict : (b,) int64 array, optional
            The frames the caller will most likely ask for next: decoded meanwhile.

        Returns
        -------
        arrays : list of (b, M_k, 3) float32
        times : (b,) float64
        box : (b, 6) float64 or None
        count : int
            Frames the reader delivered (fewer than ``b`` if it ended early).

        Raises
        ------
        DecoderCrash, ChildError
        """
        if self.pid == 0:
            self._start()
        key = _key(frames, selections, has_box)
        if self._pending is not None and self._pending[0] != key:
            guess = self._pending[1]
            try:
                self._wait(guess)  # the child is busy with the guess: let it end
                self._busy[guess["slot"]] = False  # and drop it
            except (DecoderCrash, ChildError):
                self._restart()  # a guess the caller does not need failed
        if self._pending is None or self._pending[0] != key:
            self._request(frames, selections, has_box)
        request = self._pending[1]
        self._pending = None
        reply = self._wait(request)
        arrays = self._hand_over(request)
        if predict is not None and len(predict):
            self._request(np.asarray(predict, np.int64), selections, has_box)
        return arrays, reply["times"], reply["box"], reply["count"]

    def _restart(self) -> None:
        _LIVE.discard(self)
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self.pid = 0
        self._req = self._rep = -1
        self._start()

    def _request(self, frames, selections, has_box) -> None:
        n_atoms = int(self.trajectory.n_atoms)
        shapes = [(frames.size, n_atoms if s is None else int(s.size), 3) for s in selections]
        nbytes = sum(int(np.prod(s)) * 4 for s in shapes)
        slot = self._alloc(nbytes)
        request = {
            "frames": np.asarray(frames, np.int64),
            "selections": selections,
            "shapes": shapes,
            "has_box": has_box,
            "slot": slot,
            "offset": self._slots[slot][0],
            "size": self._size,
        }
        self._progress[:8] = struct.pack("<q", -1)
        try:
            _send(self._req, request)
        except BrokenPipeError:
            pass  # the child is gone: _wait finds the end of its pipe and says why
        self._pending = (_key(frames, selections, has_box), request)

    def _wait(self, request: dict) -> dict:
        reply = _recv(self._rep)
        if reply is None or reply.get("error"):
            self._busy[request["slot"]] = False  # nothing of it reaches the caller
        if reply is None:
            _, status = os.waitpid(self.pid, 0)
            self.pid = 0
            self._pending = None
            _LIVE.discard(self)
            if self._finalizer is not None:
                self._finalizer.detach()
                os.close(self._req)
                os.close(self._rep)
                self._finalizer = None
            self._req = self._rep = -1
            done = struct.unpack("<q", self._progress[:8])[0]
            frames = request["frames"]
            frame = int(frames[done + 1]) if done + 1 < frames.size else None
            if os.WIFSIGNALED(status):
                name = signal.Signals(os.WTERMSIG(status)).name
            else:
                name = f"exit status {os.WEXITSTATUS(status)}"
            raise DecoderCrash(frame, name)
        if reply.get("error"):
            raise ChildError(reply["frame"], reply["kind"], reply["error"])
        return reply

    def _hand_over(self, request: dict) -> list:
        """The decoded arrays, as views of their slot (no copy): the slot is free
        again only when no array views it any more."""
        slot = request["slot"]
        offset, cap = self._slots[slot]
        base = np.frombuffer(self._map, dtype=np.uint8, count=cap, offset=offset)
        # views of ``base`` keep it alive (numpy's base chain), so this runs when the
        # caller has dropped the block and everything sliced from it
        weakref.finalize(base, _free_slot, self._busy, slot)
        out, at = [], 0
        for shape in request["shapes"]:
            n = int(np.prod(shape)) * 4
            out.append(base[at : at + n].view(np.float32).reshape(shape))
            at += n
        return out


#: shared maps of the slots, their pages mapped at once: one call instead of a page
#: fault per 4 KiB in each process (tens of thousands per run)
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)

#: readers with a live child (closed in each new child: see GuardedReader._start)
_LIVE: weakref.WeakSet = weakref.WeakSet()


def _free_slot(busy: list, slot: int) -> None:
    busy[slot] = False


def _key(frames, selections, has_box) -> tuple:
    sel = tuple(None if s is None else (s.size, hash(s.tobytes())) for s in selections)
    return (frames.size, hash(frames.tobytes()), sel, has_box)


def _stop_child(owner: int, pid: int, req: int, rep: int) -> None:
    if os.getpid() != owner:
        return  # a process forked from the owner (multiprocessing): not its child
    for fd in (req, rep):
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (OSError, ChildProcessError):
        pass


def _serve(trajectory, req: int, rep: int, fd: int, progress) -> None:  # pragma: no cover
    """The child's loop: decode each requested block into the shared buffer."""
    buf, size = None, 0
    while True:
        request = _recv(req)
        if request is None:
            return
        if request["size"] != size:
            # the old map closes once no array views it (those of the last block)
            size = request["size"]
            buf = mmap.mmap(fd, size, flags=_MAP_FLAGS)
        frames = request["frames"]
        outs, at = [], request["offset"]
        for shape in request["shapes"]:
            n = int(np.prod(shape))
            outs.append(np.frombuffer(buf, dtype=np.float32, count=n, offset=at).reshape(shape))
            at += 4 * n
        sels = request["selections"]
        times = np.empty(frames.size, dtype=np.float64)
        box = np.zeros((frames.size, 6), dtype=np.float64) if request["has_box"] else None
        i = -1
        reply: dict
        try:
            n = frames.size
            contiguous = n > 0 and frames[-1] - frames[0] == n - 1
            it = (
                trajectory[int(frames[0]) : int(frames[-1]) + 1]
                if contiguous
                else trajectory[frames]
            )
            for i, ts in enumerate(it):
                pos = ts.positions
                for out, sel in zip(outs, sels, strict=True):
                    out[i] = pos if sel is None else pos[sel]
                times[i] = ts.time
                if box is not None and ts.dimensions is not None:
                    box[i] = ts.dimensions
                progress[:8] = struct.pack("<q", i)
            reply = {"times": times, "box": box, "count": i + 1}
        except Exception as exc:
            frame = int(frames[i + 1]) if i + 1 < frames.size else None
            text = str(exc).strip() or type(exc).__name__
            reply = {"error": text, "kind": type(exc).__name__, "frame": frame}
        del outs
        _send(rep, reply)
