"""Reductions: per-row moments, and the two sums of every backward pass.

"Row" kernels reduce contiguous runs of a 2-D array (rows, length): one result per row. Long rows
are cut into chunks (``schedule.row_chunk``) merged in order. "Column" kernels reduce a 3-D array
(P, A, B) over A: one result per (p, b); blocks of rows write their own partials, merged in block
order. Column moments have their own module, ``moments``.
"""

import numpy as np
from numba import njit, prange

from ._flags import EXACT, KERNEL, parallel_kernel
from ._loops import (
    corrected_moments,
    run_add,
    run_centred_sums,
    run_grad_sums,
    run_sum,
)
from .merge import merge_moments
from .schedule import column_task, row_task, sum_row_block


@parallel_kernel
def row_moments(x, chunk):
    """Mean and centred sum of squares (M2) of each row of ``x`` (rows, length), length >= 1."""
    rows, length = x.shape
    per_row = (length + chunk - 1) // chunk
    n_tasks = rows * per_row
    count = np.empty(n_tasks)
    mean = np.empty(n_tasks)
    m2 = np.empty(n_tasks)
    for t in prange(n_tasks):
        r, lo, hi = row_task(t, per_row, chunk, length)
        seg = x[r, lo:hi]
        mu = run_sum(seg) / (hi - lo)
        sq, s_d = run_centred_sums(seg, mu)
        count[t] = hi - lo
        mean[t], m2[t] = corrected_moments(mu, sq, s_d, hi - lo)
    if per_row == 1:
        return mean, m2
    row_mean = np.empty(rows)
    row_m2 = np.empty(rows)
    for r in range(rows):
        t0 = r * per_row
        n, mu, s = count[t0], mean[t0], m2[t0]
        for t in range(t0 + 1, t0 + per_row):
            n, mu, s = merge_moments(n, mu, s, count[t], mean[t], m2[t])
        row_mean[r] = mu
        row_m2[r] = s
    return row_mean, row_m2


@parallel_kernel
def row_grad_sums(dy, x, centre, chunk):
    """Per row r: sum(dy) and sum(dy * (x - centre[r])) over the row."""
    rows, length = x.shape
    per_row = (length + chunk - 1) // chunk
    n_tasks = rows * per_row
    part_dy = np.empty(n_tasks)
    part_dyx = np.empty(n_tasks)
    for t in prange(n_tasks):
        r, lo, hi = row_task(t, per_row, chunk, length)
        part_dy[t], part_dyx[t] = run_grad_sums(dy[r, lo:hi], x[r, lo:hi], centre[r])
    if per_row == 1:
        return part_dy, part_dyx
    sum_dy = np.zeros(rows)
    sum_dyx = np.zeros(rows)
    for t in range(n_tasks):
        sum_dy[t // per_row] += part_dy[t]
        sum_dyx[t // per_row] += part_dyx[t]
    return sum_dy, sum_dyx


@njit(**KERNEL)
def block_grad_sums(dy, x, centre, p, r0, r1, c0, c1, dy_out, dyx_out):
    """Over rows r0:r1 of x[p] (P, A, B), columns c0:c1: sum(dy) into ``dy_out`` and
    sum(dy * (x - centre[p])) into ``dyx_out``. Four rows per pass over the float64 accumulators
    (a quarter of their loads and stores); each value widened to float64 (``* 1.0``) before any
    addition. Indexed in 3-D like ``moments.block_moments``: one compile for every block."""
    cols = c1 - c0
    c0 = max(c0, 0)  # a provably non-negative index: no wraparound select, the loops vectorize
    dy_out[:] = 0.0
    dyx_out[:] = 0.0
    a = r0
    while a + 4 <= r1:
        for j in range(cols):
            c = c0 + j
            m = centre[p, c]
            g0 = dy[p, a, c] * 1.0
            g1 = dy[p, a + 1, c] * 1.0
            g2 = dy[p, a + 2, c] * 1.0
            g3 = dy[p, a + 3, c] * 1.0
            dy_out[j] += (g0 + g1) + (g2 + g3)
            dyx_out[j] += (g0 * (x[p, a, c] - m) + g1 * (x[p, a + 1, c] - m)) + (
                g2 * (x[p, a + 2, c] - m) + g3 * (x[p, a + 3, c] - m)
            )
        a += 4
    while a < r1:
        for j in range(cols):
            c = c0 + j
            g = dy[p, a, c] * 1.0
            dy_out[j] += g
            dyx_out[j] += g * (x[p, a, c] - centre[p, c])
        a += 1


@parallel_kernel
def column_grad_sums(dy, x, centre, row_block, col_block):
    """Over axis 1 of (P, A, B) arrays: sum(dy) and sum(dy * (x - centre[p, b])), each (P, B)."""
    P, A, B = x.shape
    row_block = sum_row_block(A, row_block)
    n_rb = (A + row_block - 1) // row_block
    n_cb = (B + col_block - 1) // col_block
    part_dy = np.empty((P, n_rb, B))
    part_dyx = np.empty((P, n_rb, B))
    for t in prange(P * n_rb * n_cb):
        p, i, r0, r1, c0, c1 = column_task(t, n_rb, n_cb, row_block, col_block, A, B)
        block_grad_sums(
            dy, x, centre, p, r0, r1, c0, c1, part_dy[p, i, c0:c1], part_dyx[p, i, c0:c1]
        )
    sum_dy = part_dy[:, 0, :].copy()
    sum_dyx = part_dyx[:, 0, :].copy()
    for p in range(P):
        for i in range(1, n_rb):
            run_add(sum_dy[p], part_dy[p, i])
            run_add(sum_dyx[p], part_dyx[p, i])
    return sum_dy, sum_dyx


@njit(**EXACT)
def _numpy_sum(v, n):
    """The sum of v[:n] (n <= 128) in NumPy's order for a contiguous run (``np.sum`` over the last
    axis: eight partial sums, then the rest), so that ``runs_grad_sums`` keeps the bits of the
    NumPy reduction it replaced. No fast-math: the order is the result."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += v[i]
        return res
    r0, r1, r2, r3, r4, r5, r6, r7 = v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
    i = 8
    while i < n - n % 8:
        r0 += v[i]
        r1 += v[i + 1]
        r2 += v[i + 2]
        r3 += v[i + 3]
        r4 += v[i + 4]
        r5 += v[i + 5]
        r6 += v[i + 6]
        r7 += v[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += v[i]
        i += 1
    return res


@parallel_kernel
def runs_grad_sums(dy, x, centre):
    """Over each run x[n, c, :] of (N, C, D) arrays, D <= 128: sum(dy) and
    sum(dy * (x - centre[n, c])), each (N, C), without per-position temporaries."""
    N, C, D = x.shape
    s_dy = np.empty((N, C))
    s_dyx = np.empty((N, C))
    for n in prange(N):
        g = np.empty(D)
        gx = np.empty(D)
        for c in range(C):
            m = centre[n, c]
            for k in range(D):
                g[k] = dy[n, c, k] * 1.0
                gx[k] = g[k] * (x[n, c, k] - m)
            s_dy[n, c] = _numpy_sum(g, D)
            s_dyx[n, c] = _numpy_sum(gx, D)
    return s_dy, s_dyx
