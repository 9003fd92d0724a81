"""Moments as building blocks: per-column statistics of 2-D data and the one merge formula.

These are the doors through which the transformers (``partial_fit``, ``merge``) and the model
utilities (precise batch-norm statistics) reach the kernels.
"""

import numpy as np

from .._kernels import merge, schedule, weighted_moments


def column_moments(x, sample_weight=None):
    """Per-column ``(sum of weights, mean, M2)`` of a C-contiguous float32/float64 (A, B) array.

    NaN values are skipped; ``sample_weight`` is None or a float64 array of A non-negative weights.
    Accumulated in float64, bitwise independent of the thread count. The mean is NaN where a
    column has no weight. Raises ``ValueError`` when an infinite value (or an overflowing sum) is
    met.
    """
    row_block, col_block = schedule.column_blocks(*x.shape)
    weight_sum, mean, m2, nonfinite = weighted_moments.weighted_column_moments(
        x, sample_weight, row_block, col_block)
    if nonfinite:
        raise ValueError(
            f"Input X contains infinity or a value too large for {x.dtype!r} "
            "(NaN marks a missing value; infinities are rejected).")
    return weight_sum, mean, m2


def merge_moments(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Moments ``(n, mean, M2)`` of the union of two sets, element-wise over float64 arrays
    (Chan et al.'s pairwise formula, the one every merge in fastnorm uses)."""
    args = [np.ascontiguousarray(a, dtype=np.float64) for a in (n_a, mean_a, m2_a, n_b, mean_b, m2_b)]
    return merge.merge_moment_arrays(*args)
