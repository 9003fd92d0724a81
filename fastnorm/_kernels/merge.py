"""Chan et al.'s pairwise merge of (count, mean, M2) moments, the one formula every merge uses:
block partials of the column and row kernels, per-position or per-channel moments pooled by the
layouts, and the transformers' ``partial_fit`` and ``merge`` (there in double-double, with
``merge_compensated``: a stream of many small merges). Merges always run in a fixed order, so their
results do not depend on the thread count."""

import numpy as np
from numba import njit

from ._flags import EXACT, KERNEL, serial_kernel


@njit(**KERNEL)
def merge_moments(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Moments of the union of two sets, from the moments of each; returns (n, mean, M2)."""
    n = n_a + n_b
    if n_b == 0:
        return n_a, mean_a, m2_a
    if n_a == 0:
        return n_b, mean_b, m2_b
    # equal means (two infinities of one sign included, whose difference would be NaN) add no
    # between-set spread
    delta = mean_b - mean_a if mean_b != mean_a else 0.0
    frac_b = n_b / n
    if not abs(delta) < np.inf:  # an infinite (or NaN) mean: the mean of the sums, as torch
        return n, (mean_a * n_a + mean_b * n_b) / n, np.nan
    return n, mean_a + delta * frac_b, m2_a + m2_b + delta * delta * n_a * frac_b


@njit(**KERNEL)
def merge_into(n, mean, m2, n_b, mean_b, m2_b):
    """``merge_moments`` element-wise over 1-D float64 arrays, in place into (n, mean, m2)."""
    for j in range(n.shape[0]):
        n[j], mean[j], m2[j] = merge_moments(n[j], mean[j], m2[j], n_b[j], mean_b[j], m2_b[j])


@serial_kernel
def merge_sets(mean, m2, count):
    """Pool K sets of ``count`` values each, per column of (K, M) float64 moments, merged in
    order k = 0, 1, ...; returns (mean, M2) of shape (M,)."""
    n = np.full(mean.shape[1], float(count))
    out_mean = mean[0].copy()
    out_m2 = m2[0].copy()
    n_b = np.full(mean.shape[1], float(count))
    for k in range(1, mean.shape[0]):
        merge_into(n, out_mean, out_m2, n_b, mean[k], m2[k])
    return out_mean, out_m2


@serial_kernel
def merge_moment_arrays(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Element-wise ``merge_moments`` over C-contiguous float64 arrays of equal shape; returns
    new arrays."""
    n, mean, m2 = n_a.copy(), mean_a.copy(), m2_a.copy()
    merge_into(
        n.reshape(-1),
        mean.reshape(-1),
        m2.reshape(-1),
        n_b.reshape(-1),
        mean_b.reshape(-1),
        m2_b.reshape(-1),
    )
    return n, mean, m2


# No fast-math: the error-free transformations below rely on the exact order of each operation.


@njit(inline="always", **EXACT)
def two_sum(a, b):
    """s = fl(a + b) and the rounding error e, exactly a + b = s + e (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(**EXACT)
def corrected_split(mean, sq, s_d, n):
    """``_loops.corrected_moments`` with the corrected mean kept as hi + lo (double-double):
    (hi, lo, M2). A block merged later needs the low part: its rounding would otherwise enter
    ``mean_b - mean`` of the merge."""
    c = s_d / n
    hi, lo = two_sum(mean, c)
    if not abs(hi) < np.inf:  # non-finite data keeps the first-pass values, as corrected_moments
        return mean, 0.0, sq
    m2 = sq - s_d * c
    return hi, lo, m2 if m2 > 0.0 else 0.0


@njit(inline="always", **EXACT)
def add_compensated(hi, lo, value):
    """(hi, lo) + value as a normalized double-double (|lo| at most half an ulp of hi)."""
    s, e = two_sum(hi, value)
    e += lo
    hi = s + e
    return hi, e - (hi - s)


@njit(**EXACT)
def merge_compensated(n_a, mean_a, mean_lo_a, m2_a, m2_lo_a, n_b, mean_b, mean_lo_b, m2_b, m2_lo_b):
    """``merge_moments`` on double-double means and M2s (value = hi + lo): Chan's formula with
    the rounding error of each step carried along, so that a long stream of small merges (one row
    at a time) accumulates no error in the mean and M2 beyond the final rounding."""
    if n_b == 0:
        return n_a, mean_a, mean_lo_a, m2_a, m2_lo_a
    if n_a == 0:
        return n_b, mean_b, mean_lo_b, m2_b, m2_lo_b
    if not (abs(mean_a) < np.inf and abs(mean_b) < np.inf):
        n, mean, m2 = merge_moments(n_a, mean_a, m2_a, n_b, mean_b, m2_b)
        return n, mean, 0.0, m2, 0.0
    n = n_a + n_b
    s, e = two_sum(mean_b, -mean_a)
    delta = s + ((e + mean_lo_b) - mean_lo_a)  # mean_b - mean_a, to a rounding of the final sum
    frac_b = n_b / n
    mean, mean_lo = add_compensated(mean_a, mean_lo_a, delta * frac_b)
    m2, m2_lo = add_compensated(m2_a, m2_lo_a, m2_b)
    m2, m2_lo = add_compensated(m2, m2_lo + m2_lo_b, delta * delta * n_a * frac_b)
    return n, mean, mean_lo, m2, m2_lo


@serial_kernel
def merge_compensated_arrays(
    n_a, mean_a, mean_lo_a, m2_a, m2_lo_a, n_b, mean_b, mean_lo_b, m2_b, m2_lo_b
):
    """Element-wise ``merge_compensated`` over 1-D float64 arrays; returns new arrays."""
    k = n_a.shape[0]
    n, mean, mean_lo = np.empty(k), np.empty(k), np.empty(k)
    m2, m2_lo = np.empty(k), np.empty(k)
    for j in range(k):
        n[j], mean[j], mean_lo[j], m2[j], m2_lo[j] = merge_compensated(
            n_a[j],
            mean_a[j],
            mean_lo_a[j],
            m2_a[j],
            m2_lo_a[j],
            n_b[j],
            mean_b[j],
            mean_lo_b[j],
            m2_b[j],
            m2_lo_b[j],
        )
    return n, mean, mean_lo, m2, m2_lo
