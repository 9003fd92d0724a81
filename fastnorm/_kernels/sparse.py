"""Per-column moments and per-column scaling of CSR and CSC matrices, without densifying.

A column's values are its stored entries plus implicit zeros on every other row. Stored NaN values
are skipped (their row's weight does not count for that column); an infinite stored value makes a
weighted sum non-finite, reported in the returned ``nonfinite`` flag (kernels never raise).

The weight of a column's implicit zeros is not summed row by row (that would densify): it is the
total weight minus the weight of the stored rows. Rows of zero weight are counted apart, so that a
column stored on every row of positive weight gets exactly 0 implicit weight (a constant column
then has exactly its value as mean and 0 as M2, weighted or not).

CSC: one task per column, a corrected two-pass over its stored values (contiguous) plus the
implicit zeros. CSR: one task per block of rows (``schedule.sparse_row_block``, from the shape
only), each computing per-column partial moments with two passes over the block's entries; the
partials are merged in block order with ``moments.merge_blocks`` (compensated). Both are bitwise
independent of the thread count, and equal to their serial twins.

Inputs must be canonical (no duplicate entries): a duplicate would count its row twice.
"""

import numpy as np
from numba import njit, prange

from ._flags import KERNEL, parallel_kernel
from ._loops import run_centred_sums, run_sum
from .merge import corrected_split
from .moments import merge_blocks


@njit(**KERNEL)
def _implicit_weight(w, n_stored, n_pos, total, w_stored):
    """Weight of the implicit zeros of a column with ``n_stored`` stored entries on rows of
    positive weight, out of ``n_pos`` such rows of total weight ``total`` (counts are exact
    integers in float64)."""
    if n_stored == n_pos:
        return 0.0
    if w is None:
        return n_pos - n_stored
    return max(total - w_stored, 0.0)


@njit(**KERNEL)
def _weight_totals(w, r0, r1):
    """(total weight, rows of positive weight) of rows r0:r1."""
    if w is None:
        return float(r1 - r0), float(r1 - r0)
    total = 0.0
    n_pos = 0.0
    for a in range(r0, r1):
        total += w[a]
        n_pos += 1.0 if w[a] > 0.0 else 0.0
    return total, n_pos


# -- CSC: one column per task -------------------------------------------------------------------


@njit(**KERNEL)
def _column_sums(v, rows, w):
    """First pass over a column's stored values: (entries on positive-weight rows, their weight,
    weight of the NaN values, weighted sum of the non-NaN values, NaN checks needed)."""
    if w is None:
        s = run_sum(v)
        if s - s == 0.0:  # fast path: vectorized, no NaN (nor infinity) in the column
            n = float(v.shape[0])
            return n, n, 0.0, s, False
    n_stored = 0.0
    w_stored = 0.0
    w_nan = 0.0
    s = 0.0
    for i in range(v.shape[0]):
        wa = 1.0 if w is None else w[rows[i]]
        x = v[i]
        n_stored += 1.0 if wa > 0.0 else 0.0
        w_stored += wa
        if x == x:
            s += wa * x
        else:
            w_nan += wa
    return n_stored, w_stored, w_nan, s, True


@njit(**KERNEL)
def _column_centred(v, rows, w, m):
    """Second pass: weighted sums of (x - m) ** 2 and of (x - m) over the non-NaN values."""
    sq = 0.0
    sd = 0.0
    for i in range(v.shape[0]):
        wa = 1.0 if w is None else w[rows[i]]
        d = v[i] - m
        if d == d:
            sq += wa * (d * d)
            sd += wa * d
    return sq, sd


@njit(**KERNEL)
def _csc_column(v, rows, w, total, n_pos):
    """(sum_w, mean, m2, nonfinite) of one column: values ``v`` stored at ``rows``."""
    n_stored, w_stored, w_nan, s, slow = _column_sums(v, rows, w)
    bad = not (s - s == 0.0)
    iw = _implicit_weight(w, n_stored, n_pos, total, w_stored)
    # the total less the NaN rows: every column without NaN gets exactly the same count
    c = total - w_nan
    if not c > 0.0:
        return c, np.nan, 0.0, bad
    m = s / c
    if slow:
        sq, sd = _column_centred(v, rows, w, m)
    else:
        sq, sd = run_centred_sums(v, m)
    mean, _, m2 = corrected_split(m, sq + iw * (m * m), sd - iw * m, c)
    return c, mean, m2, bad


@parallel_kernel
def csc_column_moments(data, indices, indptr, n_rows, w):
    """Moments of each column of a canonical CSC matrix; ``w`` None or float64 row weights.
    Returns ``(sum_w, mean, m2, nonfinite)`` (float64 arrays of n_cols, a flag)."""
    n_cols = indptr.shape[0] - 1
    total, n_pos = _weight_totals(w, 0, n_rows)
    cnt = np.empty(n_cols)
    mean = np.empty(n_cols)
    m2 = np.empty(n_cols)
    bad = np.zeros(n_cols, dtype=np.bool_)
    for j in prange(n_cols):
        a, b = indptr[j], indptr[j + 1]
        cnt[j], mean[j], m2[j], bad[j] = _csc_column(data[a:b], indices[a:b], w, total, n_pos)
    return cnt, mean, m2, bad.any()


# -- CSR: one block of rows per task ------------------------------------------------------------


# An unweighted block needs no row boundaries: its loops run flat over the block's entries. A loop
# nested in the rows mispredicts its exit on every row, which tripled the time of a pass over short
# rows (10 entries); weighted blocks still need the row of each entry.


@njit(**KERNEL)
def _csr_sums_fast(data, indices, k0, k1, n_stored, s):
    """Unweighted first pass over entries k0:k1 without NaN checks: per-column entry counts and
    sums; returns True when every sum is finite (no NaN, no infinity)."""
    n_stored[:] = 0.0
    s[:] = 0.0
    for k in range(k0, k1):
        j = np.uintp(indices[k])  # unsigned: no negative-index wraparound check
        n_stored[j] += 1.0
        s[j] += data[k]
    ok = True
    for j in range(s.shape[0]):
        ok &= s[j] - s[j] == 0.0
    return ok


@njit(**KERNEL)
def _csr_block_sums(data, indices, indptr, w, r0, r1, n_stored, w_stored, cnt, s):
    """First pass over rows r0:r1, per column: entries on positive-weight rows, their weight (when
    weighted), weight of the NaN values and weighted sum of the non-NaN values."""
    n_stored[:] = 0.0
    w_stored[:] = 0.0
    cnt[:] = 0.0
    s[:] = 0.0
    if w is None:
        for k in range(indptr[r0], indptr[r1]):
            j = np.uintp(indices[k])
            x = data[k]
            n_stored[j] += 1.0
            if x == x:
                s[j] += x
            else:
                cnt[j] += 1.0
        return
    for a in range(r0, r1):
        wa = w[a]
        pos = 1.0 if wa > 0.0 else 0.0
        for k in range(indptr[a], indptr[a + 1]):
            j = np.uintp(indices[k])
            x = data[k]
            n_stored[j] += pos
            w_stored[j] += wa
            if x == x:
                s[j] += wa * x
            else:
                cnt[j] += wa


@njit(**KERNEL)
def _csr_block_centred(data, indices, indptr, w, r0, r1, mean, sq, sd):
    """Second pass over rows r0:r1: per-column weighted sums of (x - mean) ** 2 and (x - mean)
    over the non-NaN stored values (a column without data has a NaN mean: skipped too)."""
    sq[:] = 0.0
    sd[:] = 0.0
    if w is None:
        for k in range(indptr[r0], indptr[r1]):
            j = np.uintp(indices[k])
            d = data[k] - mean[j]
            if d == d:
                sq[j] += d * d
                sd[j] += d
        return
    for a in range(r0, r1):
        wa = w[a]
        for k in range(indptr[a], indptr[a + 1]):
            j = np.uintp(indices[k])
            d = data[k] - mean[j]
            if d == d:
                sq[j] += wa * (d * d)
                sd[j] += wa * d


@njit(**KERNEL)
def csr_block_moments(data, indices, indptr, w, r0, r1, cnt, mean, mean_lo, m2):
    """Moments of rows r0:r1 per column into cnt, mean + mean_lo (double-double), m2 (length
    n_cols); returns True when a weighted sum is not finite."""
    n_cols = cnt.shape[0]
    total, n_pos = _weight_totals(w, r0, r1)
    n_stored = np.empty(n_cols)
    iw = np.empty(n_cols)  # weight of the stored rows, then of the implicit zeros
    sd = np.empty(n_cols)
    if w is None and _csr_sums_fast(data, indices, indptr[r0], indptr[r1], n_stored, mean):
        cnt[:] = 0.0  # no NaN
    else:
        _csr_block_sums(data, indices, indptr, w, r0, r1, n_stored, iw, cnt, mean)
    bad = False
    for j in range(n_cols):
        s = mean[j]
        bad |= not (s - s == 0.0)
        iw[j] = _implicit_weight(w, n_stored[j], n_pos, total, iw[j])
        # the total less the NaN rows: every column without NaN gets exactly the same count
        c = total - cnt[j]
        cnt[j] = c
        # NaN marks "no data": merge_moments never reads the mean of an empty set
        mean[j] = s / c if c > 0.0 else np.nan
    _csr_block_centred(data, indices, indptr, w, r0, r1, mean, m2, sd)
    mean_lo[:] = 0.0
    for j in range(n_cols):
        if cnt[j] > 0.0:
            m = mean[j]
            mean[j], mean_lo[j], m2[j] = corrected_split(
                m, m2[j] + iw[j] * (m * m), sd[j] - iw[j] * m, cnt[j]
            )
    return bad


@parallel_kernel
def csr_column_moments(data, indices, indptr, n_cols, w, row_block):
    """Moments of each column of a canonical CSR matrix over blocks of ``row_block`` rows (from
    the shape only), merged in block order. Returns ``(sum_w, mean, m2, nonfinite)``."""
    n_rows = indptr.shape[0] - 1
    n_blocks = max(1, (n_rows + row_block - 1) // row_block)
    parts = np.empty((4, 1, n_blocks, n_cols))
    bad = np.zeros(n_blocks, dtype=np.bool_)
    for b in prange(n_blocks):
        r0 = b * row_block
        r1 = min(n_rows, r0 + row_block)
        bad[b] = csr_block_moments(
            data,
            indices,
            indptr,
            w,
            r0,
            r1,
            parts[0, 0, b],
            parts[1, 0, b],
            parts[2, 0, b],
            parts[3, 0, b],
        )
    cnt, mean, m2 = merge_blocks(parts, True)
    return cnt[0], mean[0], m2[0], bad.any()


# -- scaling ------------------------------------------------------------------------------------


@parallel_kernel
def csr_scale_columns(data, indices, factor, out):
    """out[k] = data[k] * factor[indices[k]], cast to out's dtype."""
    for k in prange(data.shape[0]):
        out[k] = data[k] * factor[indices[k]]


@njit(**KERNEL)
def _scale_run(v, f, out):
    for i in range(v.shape[0]):
        out[i] = v[i] * f


@parallel_kernel
def csc_scale_columns(data, indptr, factor, out):
    """out[k] = data[k] * factor[j] for the entries indptr[j]:indptr[j + 1] of column j."""
    for j in prange(indptr.shape[0] - 1):
        a, b = indptr[j], indptr[j + 1]
        _scale_run(data[a:b], factor[j], out[a:b])
