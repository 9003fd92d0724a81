"""Ghost batch norm (Hoffer et al. 2017) over (G, k, B) data: G virtual sub-batches of k rows,
each normalized with its own statistics, in one kernel call forward and one backward.

The moments reuse the column-moments schedule (``moments.grouped_moments`` with P = G, so a
block never spans two sub-batches) and its merges in block order; the running statistics are then
updated once per sub-batch, serially in sub-batch order, exactly as G calls of
``columns_fused.columns_normalize`` would. The element-wise passes see the rows flat, (G * k, B),
in tasks of ``schedule.rows_per_task`` rows, so small sub-batches do not each cost a task. Tasks
depend on the shape only: results are bitwise independent of the thread count.
"""

import numpy as np
from numba import njit, prange

from ._flags import KERNEL, parallel_kernel
from ._loops import run_add
from .moments import block_moments, grouped_moments
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


@njit(**KERNEL)
def _row_scale(m2, weight, count, eps, rstd, scale):
    """rstd = 1 / sqrt(m2 / count + eps) and scale = rstd * weight over one sub-batch's columns."""
    for b in range(m2.shape[0]):
        r = 1.0 / np.sqrt(m2[b] / count + eps)
        rstd[b] = r
        scale[b] = r * weight[b]


@njit(**KERNEL)
def _sub_batch_affine(xp, mean, scale, bias, outp):
    """(xp - mean) * scale + bias over one sub-batch (k, B); parameters (B,)."""
    for a in range(xp.shape[0]):
        for b in range(xp.shape[1]):
            outp[a, b] = (xp[a, b] - mean[b]) * scale[b] + bias[b]


@njit(**KERNEL)
def _fused_sub_batches(x, weight, bias, eps, p0, p1, mean, m2, rstd, scale, out):
    """Sub-batches p0:p1 of x (G, k, B) when each is a single block of the column schedule:
    moments, scale and the affine pass while the sub-batch is in cache. A single block needs no
    merge: the statistics are those ``merge_blocks`` would return."""
    _, A, B = x.shape
    scratch = np.empty((2, B))  # counts, and the low parts of the means (no merge follows)
    for p in range(p0, p1):
        block_moments(x, None, None, p, 0, A, 0, scratch[0], mean[p], scratch[1], m2[p])
        _row_scale(m2[p], weight, float(A), eps, rstd[p], scale[p])
        _sub_batch_affine(x[p], mean[p], scale[p], bias, out[p])


@njit(**KERNEL)
def _update_running(running_mean, running_var, mean, m2, count, momenta):
    """Sub-batch p after p - 1, as successive batch-norm calls would: its mean and unbiased
    variance averaged in with weight momenta[p]. Empty running statistics: nothing to do."""
    if running_mean.size == 0:
        return
    unbiased = np.empty(mean.shape[1])
    for p in range(mean.shape[0]):
        for b in range(mean.shape[1]):
            unbiased[b] = m2[p, b] / (count - 1.0)
        update_running_stats(running_mean, running_var, mean[p], unbiased, momenta[p])


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
    per = _blocks_per_task(row_block, col_block)
    if n_rb == 1 and n_cb == 1:  # each sub-batch is one block: one task reads it once from RAM
        mean = np.empty((G, B))
        m2 = np.empty((G, B))
        rstd = np.empty((G, B))
        scale = np.empty((G, B))
        for t in prange((G + per - 1) // per):
            p0, p1 = t * per, min(G, (t + 1) * per)
            _fused_sub_batches(x, weight, bias, eps, p0, p1, mean, m2, rstd, scale, out)
        _update_running(running_mean, running_var, mean, m2, float(A), momenta)
        return mean, m2, rstd
    # sub-batches of several blocks: the blocks' moments, merged in block order, then the affine
    # pass over the flat rows
    # NaN not skipped: a NaN gives NaN statistics, as plain batch norm (torch)
    _, mean2, m22, _ = grouped_moments(x, None, None, row_block, col_block, True)
    mean = np.ascontiguousarray(mean2)  # views into the partials: C-contiguous copies
    m2 = np.ascontiguousarray(m22)
    rstd = np.empty((G, B))
    scale = np.empty((G, B))
    for p in range(G):  # not array expressions: see columns_fused.columns_normalize
        _row_scale(m2[p], weight, float(A), eps, rstd[p], scale[p])
    _update_running(running_mean, running_var, mean, m2, float(A), momenta)
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
    alpha = np.empty((G, B))
    beta = np.empty((G, B))
    gamma = np.empty((G, B))
    grad_weight = np.zeros(B)
    grad_bias = np.zeros(B)
    for p in range(G):  # in order: the partials of each sub-batch, then the parameter sums
        for i in range(1, n_rb):
            run_add(s_dy[p], part_dy[p, i])
            run_add(s_dyx[p], part_dyx[p, i])
        for b in range(B):
            # d/dx of each sub-batch's mean and variance: as in columns_normalize_backward
            r = rstd[p, b]
            alpha[p, b] = r * weight[b]
            beta[p, b] = -(r * r) * alpha[p, b] * s_dyx[p, b] / float(A)
            gamma[p, b] = -alpha[p, b] * s_dy[p, b] / float(A)
            grad_weight[b] += s_dyx[p, b] * r
            grad_bias[b] += s_dy[p, b]
    dy2 = dy.reshape((G * A, B))
    x2 = x.reshape((G * A, B))
    dx2 = dx.reshape((G * A, B))
    rows = rows_per_task(B)
    for t in prange((G * A + rows - 1) // rows):
        _rows_grad_input(
            dy2, x2, A, t * rows, min(G * A, (t + 1) * rows), mean, alpha, beta, gamma, dx2
        )
    return grad_weight, grad_bias
