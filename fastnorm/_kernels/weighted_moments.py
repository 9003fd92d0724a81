"""Per-column (sum of weights, mean, M2) over the rows of a 2-D array, NaN ignored, optional weights.

This is the statistics kernel behind ``BatchNormalizer.partial_fit``. The rows are cut into blocks
whose size depends only on the shape (``schedule.column_blocks``); each block computes its own
partial moments with two passes over data that sits in cache (sum, then centred squares), and the
partials are merged serially in block order with ``merge_moments``. Results are therefore bitwise
identical for any number of threads, and for the serial twin used on small inputs.

NaN values are skipped (``v == v`` is false only for NaN). Infinite values are not skipped: they make
a block's weighted sum non-finite, which is reported in the returned ``nonfinite`` flag so that the
caller can raise a clear error (the kernel itself never raises: exceptions in parallel regions can
be lost).

Loop shape, measured on 1M x 64 float32 (2 threads): each block function receives the whole
(rows, columns) block and indexes it in 2-D, with the column loop innermost. Slicing one 1-D row
per iteration (``x[a, c0:c1]``) costs a reference-count update per slice, and for rows of 64
values that overhead made the kernel 1.7x slower. The fast loops also take four rows per pass over
the float64 accumulators, so that they are loaded and stored once per four rows.
"""

import numpy as np
from numba import njit, prange

from ._flags import KERNEL, parallel_kernel
from .merge import merge_moments


@njit(**KERNEL)
def _block_sum(xb, wb, acc):
    """acc[j] = sum over rows a of (wb[a] *) xb[a, j]; returns the sum of the weights."""
    rows, cols = xb.shape
    acc[:] = 0.0
    total = 0.0
    a = 0
    while a + 4 <= rows:
        if wb is None:
            for j in range(cols):
                acc[j] += (np.float64(xb[a, j]) + np.float64(xb[a + 1, j])) + (
                    np.float64(xb[a + 2, j]) + np.float64(xb[a + 3, j]))
        else:
            w0, w1, w2, w3 = wb[a], wb[a + 1], wb[a + 2], wb[a + 3]
            for j in range(cols):
                acc[j] += (w0 * xb[a, j] + w1 * xb[a + 1, j]) + (
                    w2 * xb[a + 2, j] + w3 * xb[a + 3, j])
            total += (w0 + w1) + (w2 + w3)
        a += 4
    while a < rows:
        if wb is None:
            for j in range(cols):
                acc[j] += np.float64(xb[a, j])
        else:
            w0 = wb[a]
            for j in range(cols):
                acc[j] += w0 * xb[a, j]
            total += w0
        a += 1
    if wb is None:
        total = float(rows)
    return total


@njit(**KERNEL)
def _block_sq_dev(xb, wb, mean, acc):
    """acc[j] = sum over rows a of (wb[a] *) (xb[a, j] - mean[j]) ** 2."""
    rows, cols = xb.shape
    acc[:] = 0.0
    a = 0
    while a + 4 <= rows:
        if wb is None:
            for j in range(cols):
                m = mean[j]
                d0 = xb[a, j] - m
                d1 = xb[a + 1, j] - m
                d2 = xb[a + 2, j] - m
                d3 = xb[a + 3, j] - m
                acc[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        else:
            w0, w1, w2, w3 = wb[a], wb[a + 1], wb[a + 2], wb[a + 3]
            for j in range(cols):
                m = mean[j]
                d0 = xb[a, j] - m
                d1 = xb[a + 1, j] - m
                d2 = xb[a + 2, j] - m
                d3 = xb[a + 3, j] - m
                acc[j] += (w0 * (d0 * d0) + w1 * (d1 * d1)) + (w2 * (d2 * d2) + w3 * (d3 * d3))
        a += 4
    while a < rows:
        w0 = 1.0 if wb is None else wb[a]
        for j in range(cols):
            d = xb[a, j] - mean[j]
            acc[j] += w0 * (d * d)
        a += 1


@njit(**KERNEL)
def _all_finite(v):
    ok = True
    for j in range(v.shape[0]):
        ok &= v[j] - v[j] == 0.0
    return ok


@njit(**KERNEL)
def _block_moments_nan(xb, wb, cnt, mean, m2):
    """NaN-skipping moments of a block; returns True when a weighted sum is not finite."""
    rows, cols = xb.shape
    cnt[:] = 0.0
    mean[:] = 0.0
    m2[:] = 0.0
    for a in range(rows):
        w0 = 1.0 if wb is None else wb[a]
        for j in range(cols):
            v = xb[a, j]
            ok = v == v
            cnt[j] += w0 if ok else 0.0
            mean[j] += w0 * v if ok else 0.0
    bad = not _all_finite(mean)
    for j in range(cols):
        # NaN marks "no data": merge_moments never reads the mean of an empty set
        mean[j] = mean[j] / cnt[j] if cnt[j] > 0.0 else np.nan
    for a in range(rows):
        w0 = 1.0 if wb is None else wb[a]
        for j in range(cols):
            d = xb[a, j] - mean[j]
            m2[j] += w0 * (d * d) if d == d else 0.0
    return bad


@njit(**KERNEL)
def _block_moments(xb, wb, cnt, mean, m2):
    """Moments of the block ``xb`` (rows, cols) into cnt, mean, m2 (length cols).

    Fast path first: plain sums, which vectorize best. A NaN or infinity makes some sum non-finite;
    the block (still in cache) is then redone with the NaN-skipping loops. Returns True when a
    weighted sum is not finite even with NaN skipped (an infinite value, or overflow)."""
    total = _block_sum(xb, wb, mean)
    if not _all_finite(mean):
        return _block_moments_nan(xb, wb, cnt, mean, m2)
    cnt[:] = total
    if total == 0.0:  # only zero weights: no data
        mean[:] = np.nan
        m2[:] = 0.0
        return False
    for j in range(mean.shape[0]):
        mean[j] = mean[j] / total  # a division, so a constant column gets its value back exactly
    _block_sq_dev(xb, wb, mean, m2)
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
        r0 = i * row_block
        r1 = min(A, r0 + row_block)
        wb = None if w is None else w[r0:r1]
        if n_cb == 1:  # whole rows: a C-contiguous block, which the inner loops vectorize best
            bad[t] = _block_moments(x[r0:r1], wb, part_cnt[i], part_mean[i], part_m2[i])
        else:
            c0 = (t % n_cb) * col_block
            c1 = min(B, c0 + col_block)
            bad[t] = _block_moments(
                x[r0:r1, c0:c1], wb, part_cnt[i, c0:c1], part_mean[i, c0:c1], part_m2[i, c0:c1]
            )
    # merge the block partials in block order, along the columns so that the loop vectorizes
    cnt = part_cnt[0].copy()
    mean = part_mean[0].copy()
    m2 = part_m2[0].copy()
    for i in range(1, n_rb):
        _run_merge(cnt, mean, m2, part_cnt[i], part_mean[i], part_m2[i])
    return cnt, mean, m2, bad.any()
