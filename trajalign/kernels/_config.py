"""Compilation flags shared by every kernel.

The fastmath set leaves out ``nnan`` and ``ninf`` so that NaN checks keep working and
``contract``/``reassoc`` let the compiler vectorise float64 accumulations.
"""

import warnings

from numba.core.errors import NumbaWarning

FASTMATH = {"contract", "reassoc", "arcp", "nsz", "afn"}
JIT = {"cache": True, "fastmath": FASTMATH, "nogil": True, "error_model": "numpy"}
PARALLEL_JIT = dict(JIT, parallel=True)

# Kernels that only other kernels call are compiled without the CPython and C wrappers
# that a call from Python needs (as Numba compiles @overload implementations): a tenth
# of what an empty cache compiles (make demo's commands 21.7 -> 19.6 s of CPU; principal
# axes alone 3.0 -> 2.45 s). Calling one from Python crashes the interpreter, so
# tests/test_warmup.py checks that no Python code in trajalign names one; tests call
# them through a jitted trampoline (tests/_jit.py).
HELPER_JIT = dict(JIT, no_cpython_wrapper=True, no_cfunc_wrapper=True)

# For sums whose bits must not depend on how a kernel was compiled: with ``contract`` and
# ``reassoc``, code Numba compiles fresh and the same kernel loaded from its cache were
# seen to round differently (Kabsch RMSDs, 1e-13 relative). Without them the arithmetic
# keeps its written order.
EXACT_FASTMATH = {"arcp", "nsz", "afn"}
EXACT_PARALLEL_JIT = dict(PARALLEL_JIT, fastmath=EXACT_FASTMATH)

# The Kabsch and principal-axes kernels leave their rare eigen fallback (near-degenerate
# frames) to NumPy in an object-mode block, whose compilation would otherwise take longer
# than the rest of the kernel. Numba then warns, once per kernel, that object mode holds
# the GIL despite nogil=True: that is intended, and the notice would reach users' stderr.
warnings.filterwarnings(
    "ignore",
    message="Code running in object mode won't allow parallel execution",
    category=NumbaWarning,
)
