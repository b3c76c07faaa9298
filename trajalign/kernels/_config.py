"""Compilation flags shared by every kernel.

The fastmath set leaves out ``nnan`` and ``ninf`` so that NaN checks keep working and
``contract``/``reassoc`` let the compiler vectorise float64 accumulations.
"""

FASTMATH = {"contract", "reassoc", "arcp", "nsz", "afn"}
JIT = {"cache": True, "fastmath": FASTMATH, "nogil": True, "error_model": "numpy"}
PARALLEL_JIT = dict(JIT, parallel=True)
