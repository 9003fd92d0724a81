"""Per-column (sum of weights, mean, M2) over the rows of (P, A, B) data: the one column-moments
kernel. It serves batch norm's column statistics (also fused into ``columns_fused``, through the
same block functions), the per-sample columns of channels-last group and instance norm, and the
transformers' statistics (NaN skipped, optional weights).

The rows are cut into blocks whose size depends only on the shape (``schedule.column_blocks``);
each block computes its own partial moments with two passes over data that sits in cache (sum,
then centred squares). Consecutive blocks form at most ``schedule.ROW_GROUPS`` groups (again by
shape only); a task merges its group's blocks in order as it computes them, so one block's
partials exist at a time, and the groups are then merged in order. Merges use
``merge.merge_compensated`` (Chan's formula in double-double, each block's mean carrying its
low part), each column on its own (``merge_block_columns``). Results are therefore bitwise
identical for any number of threads, and for the serial twin used on small inputs.

With ``skip_nan`` True, NaN values are skipped (``v == v`` is false only for NaN). Infinite
values are not skipped: they make a block's weighted sum non-finite, which is reported in the
returned ``nonfinite`` flag so that the caller can raise a clear error (the kernel itself never
raises: exceptions in parallel regions can be lost). With ``skip_nan`` None (batch norm), a NaN or
an infinity propagates into its column's statistics, as in PyTorch.

Loop shape: each block function receives the whole (P, A, B) array and the block's bounds, and
indexes it in 3-D with the column loop innermost, so one compiled specialization serves every block
(a 2-D slice would be typed C-contiguous for whole rows and non-contiguous otherwise: two compiles,
and the strided one vectorizes 3-5x worse). Slicing one 1-D row per iteration (``x[a, c0:c1]``)
costs a reference-count update per slice, which made narrow rows (64 values) markedly slower
(figures: ``docs/developer.rst``). The loops also take four rows per pass over the float64
accumulators, so that they are loaded and stored once per four rows.

``skip_nan`` is None (NaN propagates) or True: Numba prunes the ``skip_nan is not None`` branches
when it is None, so batch norm never compiles the NaN-skipping loops.
"""

import numpy as np
from numba import njit, prange

from ._flags import EXACT, KERNEL, ORDERED_KERNEL, parallel_kernel
from .merge import add_compensated, corrected_split, merge_compensated, two_sum
from .schedule import row_groups


@njit(**KERNEL)
def _block_sum(x, w, p, r0, r1, c0, acc):
    """acc[j] = sum over rows a in r0:r1 of (w[a] *) x[p, a, c0 + j], j < acc.shape[0]; returns
    the sum of the weights."""
    cols = acc.shape[0]
    c0 = max(c0, 0)  # a provably non-negative index: no wraparound select, the loops vectorize
    acc[:] = 0.0
    total = 0.0
    a = r0
    while a + 4 <= r1:
        if w is None:
            for j in range(cols):
                acc[j] += (np.float64(x[p, a, c0 + j]) + np.float64(x[p, a + 1, c0 + j])) + (
                    np.float64(x[p, a + 2, c0 + j]) + np.float64(x[p, a + 3, c0 + j])
                )
        else:
            w0, w1, w2, w3 = w[a], w[a + 1], w[a + 2], w[a + 3]
            for j in range(cols):
                acc[j] += (w0 * x[p, a, c0 + j] + w1 * x[p, a + 1, c0 + j]) + (
                    w2 * x[p, a + 2, c0 + j] + w3 * x[p, a + 3, c0 + j]
                )
            total += (w0 + w1) + (w2 + w3)
        a += 4
    while a < r1:
        if w is None:
            for j in range(cols):
                acc[j] += np.float64(x[p, a, c0 + j])
        else:
            w0 = w[a]
            for j in range(cols):
                acc[j] += w0 * x[p, a, c0 + j]
            total += w0
        a += 1
    if w is None:
        total = float(r1 - r0)
    return total


@njit(**ORDERED_KERNEL)
def _block_sq_dev(x, w, p, r0, r1, c0, mean, acc, acc_d):
    """acc[j] = sum over rows a of (w[a] *) (x[p, a, c0 + j] - mean[j]) ** 2, and acc_d[j] the
    sum of (w[a] *) (x[p, a, c0 + j] - mean[j]), which corrects the mean (``corrected_moments``)."""
    cols = acc.shape[0]
    c0 = max(c0, 0)
    acc[:] = 0.0
    acc_d[:] = 0.0
    a = r0
    while a + 4 <= r1:
        if w is None:
            for j in range(cols):
                m = mean[j]
                d0 = x[p, a, c0 + j] - m
                d1 = x[p, a + 1, c0 + j] - m
                d2 = x[p, a + 2, c0 + j] - m
                d3 = x[p, a + 3, c0 + j] - m
                acc[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
                acc_d[j] += (d0 + d1) + (d2 + d3)
        else:
            w0, w1, w2, w3 = w[a], w[a + 1], w[a + 2], w[a + 3]
            for j in range(cols):
                m = mean[j]
                d0 = x[p, a, c0 + j] - m
                d1 = x[p, a + 1, c0 + j] - m
                d2 = x[p, a + 2, c0 + j] - m
                d3 = x[p, a + 3, c0 + j] - m
                acc[j] += (w0 * (d0 * d0) + w1 * (d1 * d1)) + (w2 * (d2 * d2) + w3 * (d3 * d3))
                acc_d[j] += (w0 * d0 + w1 * d1) + (w2 * d2 + w3 * d3)
        a += 4
    while a < r1:
        w0 = 1.0 if w is None else w[a]
        for j in range(cols):
            d = x[p, a, c0 + j] - mean[j]
            acc[j] += w0 * (d * d)
            acc_d[j] += w0 * d
        a += 1


@njit(**KERNEL)
def _all_finite(v):
    ok = True
    for j in range(v.shape[0]):
        ok &= v[j] - v[j] == 0.0
    return ok


@njit(**ORDERED_KERNEL)
def _block_moments_nan(x, w, p, r0, r1, c0, cnt, mean, mean_lo, m2):
    """NaN-skipping moments of a block; returns True when a weighted sum is not finite."""
    cols = cnt.shape[0]
    c0 = max(c0, 0)
    cnt[:] = 0.0
    mean[:] = 0.0
    m2[:] = 0.0
    for a in range(r0, r1):
        w0 = 1.0 if w is None else w[a]
        for j in range(cols):
            v = x[p, a, c0 + j]
            ok = v == v
            cnt[j] += w0 if ok else 0.0
            mean[j] += w0 * v if ok else 0.0
    bad = not _all_finite(mean)
    for j in range(cols):
        # NaN marks "no data": merge_moments never reads the mean of an empty set
        mean[j] = mean[j] / cnt[j] if cnt[j] > 0.0 else np.nan
    s_d = np.zeros(cols)
    for a in range(r0, r1):
        w0 = 1.0 if w is None else w[a]
        for j in range(cols):
            d = x[p, a, c0 + j] - mean[j]
            m2[j] += w0 * (d * d) if d == d else 0.0
            s_d[j] += w0 * d if d == d else 0.0
    mean_lo[:] = 0.0
    for j in range(cols):
        if cnt[j] > 0.0:
            mean[j], mean_lo[j], m2[j] = corrected_split(mean[j], m2[j], s_d[j], cnt[j])
    return bad


@njit(**KERNEL)
def block_moments(x, w, skip_nan, p, r0, r1, c0, cnt, mean, mean_lo, m2):
    """Moments of the block x[p, r0:r1, c0:c0 + len(cnt)] of ``x`` (P, A, B), row weights
    ``w[r0:r1]`` (or None), into cnt, mean + mean_lo (double-double), m2.

    Fast path first: plain sums, which vectorize best. With ``skip_nan`` True, a NaN or infinity
    makes some sum non-finite and the block (still in cache) is redone with the NaN-skipping
    loops; returns True when a weighted sum is not finite even with NaN skipped (an infinite
    value, or overflow). With ``skip_nan`` None non-finite values propagate and the result is
    False."""
    total = _block_sum(x, w, p, r0, r1, c0, mean)
    if skip_nan is not None and not _all_finite(mean):
        return _block_moments_nan(x, w, p, r0, r1, c0, cnt, mean, mean_lo, m2)
    if total == 0.0:  # only zero weights: no data
        cnt[:] = total
        mean[:] = np.nan
        mean_lo[:] = 0.0
        m2[:] = 0.0
        return False
    for j in range(mean.shape[0]):
        mean[j] = mean[j] / total
    _block_sq_dev(x, w, p, r0, r1, c0, mean, m2, cnt)  # cnt holds the sums of deviations for now
    for j in range(mean.shape[0]):
        mean[j], mean_lo[j], m2[j] = corrected_split(mean[j], m2[j], cnt[j], total)
    cnt[:] = total
    return False


@njit(**EXACT)
def _merge_block_into(cnt, mean, mean_lo, m2, m2_lo, cnt_b, mean_b, mean_lo_b, m2_b, slow):
    """One block merged into the running state of each column: ``merge_compensated``'s formula
    for non-empty sets with finite means, the same operations in the same order (same bits), as
    a branch-free loop that vectorizes across columns. Columns where that case does not hold are
    flagged in ``slow`` and redone by the caller with ``merge_compensated``."""
    for j in range(cnt.shape[0]):
        n_a, n_b, mean_a, mb = cnt[j], cnt_b[j], mean[j], mean_b[j]
        slow[j] |= not (n_a != 0 and n_b != 0 and abs(mean_a) < np.inf and abs(mb) < np.inf)
        n = n_a + n_b
        s, e = two_sum(mb, -mean_a)
        delta = s + ((e + mean_lo_b[j]) - mean_lo[j])
        frac_b = n_b / n
        mean[j], mean_lo[j] = add_compensated(mean_a, mean_lo[j], delta * frac_b)
        hi, lo = add_compensated(m2[j], m2_lo[j], m2_b[j])
        m2[j], m2_lo[j] = add_compensated(hi, lo + 0.0, delta * delta * n_a * frac_b)
        cnt[j] = n


@njit(**KERNEL)
def merge_block_columns(parts, p, c0, c1):
    """Merge the block partials ``parts[:, p, :, c0:c1]`` in block order, in place into block
    0's slots (compensated: double-double, from the blocks' own low parts on; with a plain merge
    the rounding of each mean enters every later ``mean_b - mean`` and, for a spread far below
    the mean (1 +- 1e-7), costs the variance about 1e-9 of its value). Columns are independent:
    a parallel caller splits them between threads without changing a bit."""
    n_rb = parts.shape[2]
    if n_rb == 1 or c1 <= c0:
        return
    m2_lo = np.zeros(c1 - c0)
    slow = np.zeros(c1 - c0, dtype=np.bool_)
    for i in range(1, n_rb):
        merge_block_step(
            parts[0, p, 0, c0:c1],
            parts[1, p, 0, c0:c1],
            parts[2, p, 0, c0:c1],
            parts[3, p, 0, c0:c1],
            m2_lo,
            parts[0, p, i, c0:c1],
            parts[1, p, i, c0:c1],
            parts[2, p, i, c0:c1],
            parts[3, p, i, c0:c1],
            slow,
        )


# one compile shared by the group tasks and merge_block_columns
@njit(**KERNEL)
def merge_block_step(cnt, mean, mean_lo, m2, m2_lo, cnt_b, mean_b, mean_lo_b, m2_b, slow):
    """One block merged into each column's running state, in place, with the bits of
    ``merge_compensated``: branch-free (``_merge_block_into``) where both sets are non-empty with
    finite means, ``merge_compensated`` from the state before the step elsewhere."""
    n_slow = 0
    for j in range(cnt.shape[0]):
        slow[j] = not (
            (cnt[j] != 0) & (cnt_b[j] != 0) & (abs(mean[j]) < np.inf) & (abs(mean_b[j]) < np.inf)
        )
        n_slow += slow[j]
    if n_slow:
        merged = np.empty((5, n_slow))
        k = 0
        for j in range(cnt.shape[0]):
            if slow[j]:
                n, mu, mu_lo, sq, sq_lo = merge_compensated(
                    cnt[j],
                    mean[j],
                    mean_lo[j],
                    m2[j],
                    m2_lo[j],
                    cnt_b[j],
                    mean_b[j],
                    mean_lo_b[j],
                    m2_b[j],
                    0.0,
                )
                merged[0, k], merged[1, k], merged[2, k] = n, mu, mu_lo
                merged[3, k], merged[4, k] = sq, sq_lo
                k += 1
    _merge_block_into(cnt, mean, mean_lo, m2, m2_lo, cnt_b, mean_b, mean_lo_b, m2_b, slow)
    if n_slow:
        k = 0
        for j in range(cnt.shape[0]):
            if slow[j]:
                cnt[j], mean[j], mean_lo[j] = merged[0, k], merged[1, k], merged[2, k]
                m2[j], m2_lo[j] = merged[3, k], merged[4, k]
                k += 1


# inlined into the kernels: as a call it cost a first batch-norm call ~0.2 s more compiling
@njit(inline="always", **KERNEL)
def group_moments(x, w, skip_nan, p, g, i0, i1, row_block, c0, c1, parts, merges):
    """Row blocks i0:i1 (``row_block`` rows each) of the columns c0:c1 of ``x[p]``: each block's
    moments (``block_moments``), merged in block order into ``parts[:, p, g, c0:c1]`` while the
    block is still in cache; returns the ``nonfinite`` flag. Only one block's partials exist at a
    time, so the scratch does not grow with the rows. ``merges`` None: the rows are one block,
    and the merge code is not compiled (True: it is)."""
    A = x.shape[1]
    bad = block_moments(
        x,
        w,
        skip_nan,
        p,
        i0 * row_block,
        min(A, (i0 + 1) * row_block),
        c0,
        parts[0, p, g, c0:c1],
        parts[1, p, g, c0:c1],
        parts[2, p, g, c0:c1],
        parts[3, p, g, c0:c1],
    )
    if merges is not None:  # a None argument prunes the merge code
        if i1 - i0 > 1:
            block = np.empty((4, c1 - c0))
            m2_lo = np.zeros(c1 - c0)
            slow = np.zeros(c1 - c0, dtype=np.bool_)
            for i in range(i0 + 1, i1):
                r0 = i * row_block
                bad |= block_moments(
                    x,
                    w,
                    skip_nan,
                    p,
                    r0,
                    min(A, r0 + row_block),
                    c0,
                    block[0],
                    block[1],
                    block[2],
                    block[3],
                )
                merge_block_step(
                    parts[0, p, g, c0:c1],
                    parts[1, p, g, c0:c1],
                    parts[2, p, g, c0:c1],
                    parts[3, p, g, c0:c1],
                    m2_lo,
                    block[0],
                    block[1],
                    block[2],
                    block[3],
                    slow,
                )
    return bad


MERGE_COLUMNS = 128  # columns per task of a threaded merge


@njit(inline="always", **KERNEL)
def merge_blocks(parts, merges):
    """Merge the block partials ``parts`` (4, P, n_rb, B) in block order, in tasks of
    MERGE_COLUMNS columns (``merge_block_columns``), threaded when inlined in a parallel twin
    (inlined: a call would compile its task index twice, as for ``grouped_moments``); returns views
    (cnt, mean, m2) of block 0's slots, each (P, B). Nothing to merge, and no merge code
    compiled, where ``merges`` is None."""
    _, P, n_rb, B = parts.shape
    n_chunks = (B + MERGE_COLUMNS - 1) // MERGE_COLUMNS
    if merges is not None:
        if n_rb > 1:
            for t in prange(P * n_chunks):
                c0 = (t % n_chunks) * MERGE_COLUMNS
                merge_block_columns(parts, t // n_chunks, c0, min(B, c0 + MERGE_COLUMNS))
    return parts[0, :, 0, :], parts[1, :, 0, :], parts[3, :, 0, :]


# inlined: the prange index of a parallel twin is typed int64, then uint64 in its gufunc; a call
# taking it would compile its callees twice
@njit(inline="always", **KERNEL)
def grouped_moments(x, w, skip_nan, row_block, col_block, merges):
    """Moments of each column of ``x`` (P, A, B) over axis 1: the rows cut into blocks of
    ``row_block`` rows, the blocks into ``schedule.row_groups`` consecutive groups, one task per
    (p, group, column block) merging its blocks in order (``group_moments``), then the groups
    merged in order (``merge_blocks``), threaded when inlined in a parallel twin. Returns
    ``(sum_w, mean, m2, nonfinite)``: views (P, B) into the partials, and a flag per task (its
    ``any()`` is a compile of its own, which batch norm does not need).

    ``merges`` True, or None only where ``row_block >= A`` (one block of rows, nothing to merge):
    a specialization without the merge code, which a first call on a small input then does not
    compile; the same bits, since the merges it leaves out would do nothing. (Numba prunes a
    branch on ``is None`` for a None argument, not for a bool one.)"""
    P, A, B = x.shape
    n_rb = (A + row_block - 1) // row_block
    n_cb = (B + col_block - 1) // col_block
    n_g = row_groups(n_rb, n_cb)
    parts = np.empty((4, P, n_g, B))
    bad = np.zeros(P * n_g * n_cb, dtype=np.bool_)
    for t in prange(P * n_g * n_cb):
        p = t // (n_g * n_cb)
        g = (t // n_cb) % n_g
        c0 = (t % n_cb) * col_block
        i0 = g * n_rb // n_g
        i1 = (g + 1) * n_rb // n_g
        bad[t] = group_moments(
            x, w, skip_nan, p, g, i0, i1, row_block, c0, min(B, c0 + col_block), parts, merges
        )
    cnt, mean, m2 = merge_blocks(parts, merges)
    return cnt, mean, m2, bad


@parallel_kernel
def column_moments(x, w, skip_nan, row_block, col_block):
    """Moments of each column of ``x`` (P, A, B), C-contiguous float32/float64, over axis 1.

    ``w`` is None or a float64 array of A non-negative weights (Numba compiles the two cases apart,
    so the unweighted loops carry no weight code); ``skip_nan`` None or True.
    ``row_block``/``col_block`` must depend on the shape only.

    Returns ``(sum_w, mean, m2, nonfinite)``: float64 arrays of shape (P, B) with the sum of the
    weights of the (non-NaN) values, their weighted mean (NaN where ``sum_w == 0``) and weighted
    centred sum of squares, and a flag set when ``skip_nan`` met an infinite value (or an
    overflowing sum).
    """
    cnt, mean, m2, bad = grouped_moments(x, w, skip_nan, row_block, col_block, True)
    return cnt, mean, m2, bad.any()
