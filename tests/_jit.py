"""Calling the kernels' helpers from a test.

Kernels that only other kernels call are compiled without the wrappers a call from
Python needs (``HELPER_JIT`` in ``trajalign/kernels/_config.py``): calling one directly
crashes the interpreter. A test calls them through :func:`jit_caller` instead.
"""

from __future__ import annotations

import numba as nb


def jit_caller(helper):
    """A jitted function that calls ``helper`` with its arguments (compiled, not cached,
    so that it is compiled against the helper the test imported)."""

    @nb.njit
    def call(*args):
        return helper(*args)

    return call
