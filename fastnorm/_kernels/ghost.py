"""Ghost batch norm (Hoffer et al. 2017) over (G, k, B) data: G virtual sub-batches of k rows,
each normalized with its own statistics, in one kernel call forward and one backward.

The moments reuse the column-moments blocks (``moments.task_moments`` with P = G, so a block
never spans two sub-batches) and their merge in block order; the running statistics are then
updated once per sub-batch, serially in sub-batch order, exactly as G calls of
``columns_fused.columns_normalize`` would. The element-wise passes see the rows flat, (G * k, B),
in tasks of ``schedule.rows_per_task`` rows, so small sub-batches do not each cost a task. Tasks
depend on the shape only: results are bitwise independent of the thread count.
"""

import numpy as np
from numba import njit, prange

from ._flags import KERNEL, parallel_kernel
from ._loops import run_add
from .moments import merge_blocks, task_moments
from .reduce import block_grad_sums
from .running import update_running_stats
from .schedule import BLOCK_ELEMENTS, column_task, rows_per_task


@njit(**KERNEL)
def _blocks_per_task(row_block, col_block):
    """Column blocks handled by one task: small blocks (few rows, narrow columns) are grouped to
    about BLOCK_ELEMENTS values, so that a task is worth its scheduling."""
    return max(1, BLOCK_ELEMENTS // max(1, row_block * col_block))


@njit(**KERNEL)
def _rows_affine(x2, k, a0, a1, mean, scale, bias, out2):
    """Rows a0:a1 of the flat (G * k, B) rows: (x - mean[p]) * scale[p] + bias, p = a // k."""
    for a in range(a0, a1):
        p = a // k
        for b in range(x2.shape[1]):
            out2[a, b] = (x2[a, b] - mean[p, b]) * scale[p, b] + bias[b]


@njit(**KERNEL)
def _rows_grad_input(dy2, x2, k, a0, a1, mean, alpha, beta, gamma, dx2):
    """Rows a0:a1 of the flat rows: alpha * dy + beta * (x - mean) + gamma, per sub-batch p."""
    for a in range(a0, a1):
        p = a // k
        for b in range(x2.shape[1]):
            dx2[a, b] = alpha[p, b] * dy2[a, b] + beta[p, b] * (x2[a, b] - mean[p, b]) + gamma[p, b]


@parallel_kernel
def ghost_normalize(
    x, weight, bias, eps, running_mean, running_var, momenta, row_block, col_block, out
):
    """Normalize each column of each sub-batch of ``x`` (G, k, B) with that sub-batch's mean and
    biased variance, then scale by ``weight`` and shift by ``bias`` (each (B,)); returns the
    (mean, M2, rstd) of each (sub-batch, column), each (G, B). Non-empty running statistics are
    updated in place once per sub-batch, in order: sub-batch p averages in its mean and unbiased
    variance with weight ``momenta[p]``. ``row_block``/``col_block``: ``schedule.column_blocks``
    of (k, B)."""
    G, A, B = x.shape
    n_rb = (A + row_block - 1) // row_block
    n_cb = (B + col_block - 1) // col_block
    n_blocks = G * n_rb * n_cb
    per = _blocks_per_task(row_block, col_block)
    parts = np.empty((4, G, n_rb, B))
    # NaN not skipped: a NaN gives NaN statistics, as plain batch norm (torch)
    for t in prange((n_blocks + per - 1) // per):
        for s in range(t * per, min(n_blocks, (t + 1) * per)):
            task_moments(x, None, False, s, n_rb, n_cb, row_block, col_block, parts)
    _, mean2, m22 = merge_blocks(parts)
    mean = np.ascontiguousarray(mean2)  # views into the partials: C-contiguous copies
    m2 = np.ascontiguousarray(m22)
    rstd = 1.0 / np.sqrt(m2 / float(A) + eps)
    if running_mean.size > 0:
        # sequential by definition: sub-batch p sees the running statistics left by p - 1
        unbiased = m2 / (float(A) - 1.0)
        for p in range(G):
            update_running_stats(running_mean, running_var, mean[p], unbiased[p], momenta[p])
    scale = rstd * weight.reshape((1, B))
    x2 = x.reshape((G * A, B))
    out2 = out.reshape((G * A, B))
    rows = rows_per_task(B)
    for t in prange((G * A + rows - 1) // rows):
        _rows_affine(x2, A, t * rows, min(G * A, (t + 1) * rows), mean, scale, bias, out2)
    return mean, m2, rstd


@parallel_kernel
def ghost_normalize_backward(dy, x, mean, rstd, weight, row_block, col_block, dx):
    """Input gradient of ``ghost_normalize`` into ``dx`` (G, k, B); returns the weight and bias
    gradients, summed over the sub-batches in order. Per sub-batch, the sums of dy and of
    dy * (x - mean) give the terms through its own mean and variance."""
    G, A, B = x.shape
    n_rb = (A + row_block - 1) // row_block
    n_cb = (B + col_block - 1) // col_block
    n_blocks = G * n_rb * n_cb
    per = _blocks_per_task(row_block, col_block)
    part_dy = np.empty((G, n_rb, B))
    part_dyx = np.empty((G, n_rb, B))
    for t in prange((n_blocks + per - 1) // per):
        for s in range(t * per, min(n_blocks, (t + 1) * per)):
            p, i, r0, r1, c0, c1 = column_task(s, n_rb, n_cb, row_block, col_block, A, B)
            block_grad_sums(
                dy, x, mean, p, r0, r1, c0, c1, part_dy[p, i, c0:c1], part_dyx[p, i, c0:c1]
            )
    s_dy = np.ascontiguousarray(part_dy[:, 0, :])
    s_dyx = np.ascontiguousarray(part_dyx[:, 0, :])
    for p in range(G):
        for i in range(1, n_rb):
            run_add(s_dy[p], part_dy[p, i])
            run_add(s_dyx[p], part_dyx[p, i])
    alpha = rstd * weight.reshape((1, B))
    # d/dx of each sub-batch's mean and variance: the formulas of columns_normalize_backward
    beta = -(rstd * rstd) * alpha * s_dyx / float(A)
    gamma = -alpha * s_dy / float(A)
    dy2 = dy.reshape((G * A, B))
    x2 = x.reshape((G * A, B))
    dx2 = dx.reshape((G * A, B))
    rows = rows_per_task(B)
    for t in prange((G * A + rows - 1) // rows):
        _rows_grad_input(
            dy2, x2, A, t * rows, min(G * A, (t + 1) * rows), mean, alpha, beta, gamma, dx2
        )
    grad_weight = np.zeros(B)
    grad_bias = np.zeros(B)
    for p in range(G):  # fixed order
        for b in range(B):
            grad_weight[b] += s_dyx[p, b] * rstd[p, b]
            grad_bias[b] += s_dy[p, b]
    return grad_weight, grad_bias
