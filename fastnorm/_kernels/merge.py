"""Chan et al.'s pairwise merge of (count, mean, M2) moments, the one formula every merge uses."""

import numpy as np
from numba import njit

from ._flags import KERNEL


@njit(**KERNEL)
def merge_moments(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Moments of the union of two sets, from the moments of each; returns (n, mean, M2)."""
    n = n_a + n_b
    if n_b == 0:
        return n_a, mean_a, m2_a
    if n_a == 0:
        return n_b, mean_b, m2_b
    delta = mean_b - mean_a
    frac_b = n_b / n
    return n, mean_a + delta * frac_b, m2_a + m2_b + delta * delta * n_a * frac_b


@njit(**KERNEL)
def merge_moment_arrays(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Element-wise ``merge_moments`` over float64 arrays of equal shape; returns new arrays."""
    n = np.empty_like(n_a)
    mean = np.empty_like(mean_a)
    m2 = np.empty_like(m2_a)
    for i in range(n_a.size):
        n.flat[i], mean.flat[i], m2.flat[i] = merge_moments(
            n_a.flat[i], mean_a.flat[i], m2_a.flat[i], n_b.flat[i], mean_b.flat[i], m2_b.flat[i]
        )
    return n, mean, m2
