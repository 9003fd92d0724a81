"""Numba kernels. They loop over arrays and nothing else: callers validate and pick the layout."""

import os

import numba

# Two Python threads entering a parallel kernel at once abort the process under the "workqueue"
# layer; ask Numba for a thread-safe one (OpenMP or TBB) unless the user chose a layer.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "threadsafe"
