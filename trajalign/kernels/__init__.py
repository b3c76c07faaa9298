"""Numba kernels: arrays in, arrays out, no I/O, no optional arguments.

Importing this package compiles nothing; every kernel is ``cache=True`` so a command-line
run pays JIT compilation once per machine (see ``NUMBA_CACHE_DIR`` in the README).
"""
