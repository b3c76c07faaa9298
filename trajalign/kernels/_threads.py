"""Run a serial kernel over ranges of frames in Python threads, instead of a ``prange``.

A ``prange`` loop makes Numba build the kernel again as a parallel gufunc, through its
parfor passes: measured on an empty cache, 20-40 % of a kernel's compilation (the Kabsch
fit 3.65 -> 2.95 s of CPU, principal axes 5.15 -> 3.45 s, dihedrals 2.13 -> 1.34 s), paid
by every first run on a new machine. The kernels release the GIL (``nogil``), so a
serial kernel that takes a range of frames ``[start, stop)`` runs on every core from plain
threads, and each frame's arithmetic is the same whatever the split: the results do not
depend on the thread count.

Threads are started per call and joined before it returns (no pool is left running, so
the ``--workers`` driver can still fork); calls with less work than ``MIN_WORK`` values
run in the calling thread, which is quicker than starting a thread for them.
"""

from __future__ import annotations

import threading

__all__ = ["MIN_WORK", "in_threads"]

#: values (about one float each) below which a call runs in the calling thread: a thread
#: start costs tens of microseconds, a million values about a millisecond
MIN_WORK = 1 << 20


def in_threads(kernel, n_items: int, work: int, *args) -> None:
    """``kernel(start, stop, *args)`` over ``[0, n_items)`` in contiguous ranges, one per thread.

    Parameters
    ----------
    kernel : Numba dispatcher compiled with ``nogil=True``
        Processes items ``start <= i < stop``; ranges never overlap, and the kernel writes
        only its own items' outputs.
    n_items : int
        Items (frames, usually) to split.
    work : int
        Values each item reads (atoms times dimensions, say): sets the thread count,
        at most Numba's (``numba.get_num_threads()``, what ``--threads`` sets) and one
        per ``MIN_WORK`` values.
    *args
        The kernel's other arguments, shared by every range.
    """
    n = min(n_items, max(1, n_items * max(work, 1) // MIN_WORK))
    if n > 1:
        import numba

        n = min(n, numba.get_num_threads())
    if n <= 1:
        kernel(0, n_items, *args)
        return
    cuts = [n_items * t // n for t in range(n + 1)]
    errors: list[BaseException] = []

    def part(lo: int, hi: int) -> None:
        try:
            kernel(lo, hi, *args)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=part, args=(cuts[t], cuts[t + 1]), daemon=True) for t in range(1, n)
    ]
    for t in threads:
        t.start()
    part(cuts[0], cuts[1])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
