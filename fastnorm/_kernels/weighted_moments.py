"""Per-column (sum of weights, mean, M2) over the rows of a 2-D array, NaN ignored, optional weights.

This is the statistics kernel behind ``BatchNormalizer.partial_fit``. The rows are cut into blocks
whose size depends only on the shape (``schedule.column_blocks``); each block computes its own
partial moments with two passes over data that sits in cache (sum, then centred squares), and the
partials are merged serially in block order with ``merge_moments``. Results are therefore bitwise
identical for any number of threads.

NaN values are skipped (``v == v`` is false only for NaN). Infinite values are not skipped: they make
a block's weighted sum non-finite, which is reported in the returned ``nonfinite`` flag so that the
caller can raise a clear error (the kernel itself never raises: exceptions in parallel regions can
be lost).
"""

import numpy as np
from numba import njit, prange

from ._flags import KERNEL, parallel_kernel
from ._loops import run_add, run_add_sq_dev
from .merge import merge_moments


@njit(**KERNEL)
def _run_count_sum(cnt, s, row):
    for j in range(row.shape[0]):
        v = row[j]
        ok = v == v
        cnt[j] += 1.0 if ok else 0.0
        s[j] += v if ok else 0.0


@njit(**KERNEL)
def _run_count_sum_weighted(cnt, s, row, w):
    for j in range(row.shape[0]):
        v = row[j]
        ok = v == v
        cnt[j] += w if ok else 0.0
        s[j] += w * v if ok else 0.0


@njit(**KERNEL)
def _run_sq_dev(m2, row, mean):
    for j in range(row.shape[0]):
        d = row[j] - mean[j]
        m2[j] += d * d if d == d else 0.0


@njit(**KERNEL)
def _run_sq_dev_weighted(m2, row, mean, w):
    for j in range(row.shape[0]):
        d = row[j] - mean[j]
        m2[j] += w * (d * d) if d == d else 0.0


# Fast-path loops take four rows at once: one load/store of the float64 accumulators per four rows
# instead of per row (measured 1.3-1.6x faster than the one-row loops for 64 float32 columns).


@njit(**KERNEL)
def _run_add4(acc, r0, r1, r2, r3):
    for j in range(acc.shape[0]):
        acc[j] += (np.float64(r0[j]) + np.float64(r1[j])) + (np.float64(r2[j]) + np.float64(r3[j]))


@njit(**KERNEL)
def _run_add4_weighted(acc, r0, r1, r2, r3, w0, w1, w2, w3):
    for j in range(acc.shape[0]):
        acc[j] += (w0 * r0[j] + w1 * r1[j]) + (w2 * r2[j] + w3 * r3[j])


@njit(**KERNEL)
def _run_add_weighted(acc, row, w):
    for j in range(row.shape[0]):
        acc[j] += w * row[j]


@njit(**KERNEL)
def _run_add4_sq_dev(acc, r0, r1, r2, r3, mean):
    for j in range(acc.shape[0]):
        m = mean[j]
        d0 = r0[j] - m
        d1 = r1[j] - m
        d2 = r2[j] - m
        d3 = r3[j] - m
        acc[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)


@njit(**KERNEL)
def _run_add4_sq_dev_weighted(acc, r0, r1, r2, r3, mean, w0, w1, w2, w3):
    for j in range(acc.shape[0]):
        m = mean[j]
        d0 = r0[j] - m
        d1 = r1[j] - m
        d2 = r2[j] - m
        d3 = r3[j] - m
        acc[j] += (w0 * (d0 * d0) + w1 * (d1 * d1)) + (w2 * (d2 * d2) + w3 * (d3 * d3))


@njit(**KERNEL)
def _run_add_sq_dev_weighted(acc, row, mean, w):
    for j in range(row.shape[0]):
        d = row[j] - mean[j]
        acc[j] += w * (d * d)


@njit(**KERNEL)
def _all_finite(v):
    ok = True
    for j in range(v.shape[0]):
        ok &= v[j] - v[j] == 0.0
    return ok


@njit(**KERNEL)
def _block_moments_nan(x, w, r0, r1, c0, c1, cnt, mean, m2):
    """NaN-skipping moments of x[r0:r1, c0:c1]; returns True when a weighted sum is not finite."""
    cnt[:] = 0.0
    mean[:] = 0.0
    m2[:] = 0.0
    for a in range(r0, r1):
        if w is not None:
            _run_count_sum_weighted(cnt, mean, x[a, c0:c1], w[a])
        else:
            _run_count_sum(cnt, mean, x[a, c0:c1])
    bad = not _all_finite(mean)
    for j in range(c1 - c0):
        # NaN marks "no data": merge_moments never reads the mean of an empty set
        mean[j] = mean[j] / cnt[j] if cnt[j] > 0.0 else np.nan
    for a in range(r0, r1):
        if w is not None:
            _run_sq_dev_weighted(m2, x[a, c0:c1], mean, w[a])
        else:
            _run_sq_dev(m2, x[a, c0:c1], mean)
    return bad


@njit(**KERNEL)
def _block_sum(x, w, r0, r1, c0, c1, acc):
    """acc = sum over rows r0:r1 of (w[a] *) x[a, c0:c1]; returns the sum of the weights."""
    acc[:] = 0.0
    total = 0.0
    a = r0
    while a + 4 <= r1:
        if w is not None:
            _run_add4_weighted(
                acc, x[a, c0:c1], x[a + 1, c0:c1], x[a + 2, c0:c1], x[a + 3, c0:c1],
                w[a], w[a + 1], w[a + 2], w[a + 3],
            )
            total += (w[a] + w[a + 1]) + (w[a + 2] + w[a + 3])
        else:
            _run_add4(acc, x[a, c0:c1], x[a + 1, c0:c1], x[a + 2, c0:c1], x[a + 3, c0:c1])
        a += 4
    while a < r1:
        if w is not None:
            _run_add_weighted(acc, x[a, c0:c1], w[a])
            total += w[a]
        else:
            run_add(acc, x[a, c0:c1])
        a += 1
    if w is None:
        total = float(r1 - r0)
    return total


@njit(**KERNEL)
def _block_sq_dev(x, w, r0, r1, c0, c1, mean, acc):
    """acc = sum over rows r0:r1 of (w[a] *) (x[a, c0:c1] - mean) ** 2."""
    acc[:] = 0.0
    a = r0
    while a + 4 <= r1:
        if w is not None:
            _run_add4_sq_dev_weighted(
                acc, x[a, c0:c1], x[a + 1, c0:c1], x[a + 2, c0:c1], x[a + 3, c0:c1], mean,
                w[a], w[a + 1], w[a + 2], w[a + 3],
            )
        else:
            _run_add4_sq_dev(
                acc, x[a, c0:c1], x[a + 1, c0:c1], x[a + 2, c0:c1], x[a + 3, c0:c1], mean
            )
        a += 4
    while a < r1:
        if w is not None:
            _run_add_sq_dev_weighted(acc, x[a, c0:c1], mean, w[a])
        else:
            run_add_sq_dev(acc, x[a, c0:c1], mean)
        a += 1


@njit(**KERNEL)
def _block_moments(x, w, r0, r1, c0, c1, cnt, mean, m2):
    """Moments of x[r0:r1, c0:c1] into cnt, mean, m2 (views of length c1 - c0).

    Fast path first: plain sums, which vectorize best. A NaN or infinity makes some sum non-finite;
    the block (still in cache) is then redone with the NaN-skipping loops. Returns True when a
    weighted sum is not finite even with NaN skipped (an infinite value, or overflow)."""
    total = _block_sum(x, w, r0, r1, c0, c1, mean)
    if not _all_finite(mean):
        return _block_moments_nan(x, w, r0, r1, c0, c1, cnt, mean, m2)
    cnt[:] = total
    if total == 0.0:  # only zero weights: no data
        mean[:] = np.nan
        m2[:] = 0.0
        return False
    for j in range(mean.shape[0]):
        mean[j] = mean[j] / total  # a division, so a constant column gets its value back exactly
    _block_sq_dev(x, w, r0, r1, c0, c1, mean, m2)
    return False


@njit(**KERNEL)
def _run_merge(cnt, mean, m2, cnt_b, mean_b, m2_b):
    for j in range(cnt.shape[0]):
        cnt[j], mean[j], m2[j] = merge_moments(cnt[j], mean[j], m2[j], cnt_b[j], mean_b[j], m2_b[j])


@parallel_kernel
def weighted_column_moments(x, w, row_block, col_block):
    """Moments of each column of ``x`` (A, B), C-contiguous float32/float64, over its rows.

    ``w`` is None or a float64 array of A non-negative weights (Numba compiles the two cases apart,
    so the unweighted loops carry no weight code). ``row_block``/``col_block`` must depend on the
    shape only.

    Returns ``(sum_w, mean, m2, nonfinite)``: float64 arrays of length B with the sum of the weights
    of the non-NaN values, their weighted mean (NaN where ``sum_w == 0``) and weighted centred sum
    of squares, and a flag set when an infinite value (or an overflowing sum) was met.
    """
    A, B = x.shape
    n_rb = (A + row_block - 1) // row_block
    n_cb = (B + col_block - 1) // col_block
    part_cnt = np.empty((n_rb, B))
    part_mean = np.empty((n_rb, B))
    part_m2 = np.empty((n_rb, B))
    bad = np.zeros(n_rb * n_cb, dtype=np.bool_)
    for t in prange(n_rb * n_cb):
        i = t // n_cb
        c0 = (t % n_cb) * col_block
        c1 = min(B, c0 + col_block)
        r0 = i * row_block
        bad[t] = _block_moments(
            x, w, r0, min(A, r0 + row_block), c0, c1,
            part_cnt[i, c0:c1], part_mean[i, c0:c1], part_m2[i, c0:c1],
        )
    # merge the block partials in block order, along the columns so that the loop vectorizes
    cnt = part_cnt[0].copy()
    mean = part_mean[0].copy()
    m2 = part_m2[0].copy()
    for i in range(1, n_rb):
        _run_merge(cnt, mean, m2, part_cnt[i], part_mean[i], part_m2[i])
    return cnt, mean, m2, bad.any()
