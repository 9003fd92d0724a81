"""Numba kernels. They loop over arrays and nothing else: callers validate and pick the layout.

Only ``fastnorm.functional`` imports this package."""
