"""Fused batch norm over the columns of an (A, B) array, the layout of features (MLPs) and of
channels-last data: statistics, merge and the element-wise pass in one call (in eval mode, the
scale and the element-wise pass), because at MLP sizes the cost of several kernel calls and small
NumPy steps exceeds the arithmetic."""

import numpy as np
from numba import njit, prange

from ._flags import EXACT, KERNEL, parallel_kernel
from ._loops import run_add
from .elementwise import (
    block_column_affine,
    block_column_grad_input,
    block_column_grad_input_weighted,
    block_relu,
    block_relu_mask,
)
from .moments import grouped_moments
from .reduce import block_grad_sums
from .running import update_running_stats
from .schedule import column_task, rows_per_task, sum_row_block

# Three parallel regions per call (moments, their merge, the element-wise pass): at 2^16 elements
# two threads paid in some runs and lost in others; from 2^17 they paid in every run
# (developer.rst).
THREADS_FROM = 1 << 17


@parallel_kernel(min_elements=THREADS_FROM)
def columns_normalize(
    x,
    w,
    weight,
    bias,
    eps,
    running_mean,
    running_var,
    momentum,
    row_block,
    col_block,
    out,
    renorm=None,
    rd=None,
    relu=None,
    merges=True,
):
    """Normalize each column of ``x`` (1, A, B) with its own statistics, then scale by ``weight``
    and shift by ``bias``; returns the (mean, M2, rstd) of each column. Non-empty running
    statistics are updated in place: (1 - momentum) * old + momentum * batch (unbiased var).

    ``w`` is None or A non-negative row weights (frequency weights: integer weights equal
    repeated rows): weighted mean and variance, the unbiased variance ``M2 / (W - 1)`` with
    ``W`` the sum of the weights (``M2 / W`` when ``W <= 1``).

    ``renorm`` (r_max, d_max) turns on batch renormalization (Ioffe 2017), with the running
    statistics as they were before this batch: ``r = clip(sigma_B / sigma, 1 / r_max, r_max)``,
    ``d = clip((mean_B - running_mean) / sigma, -d_max, d_max)``, the output
    ``(xhat * r + d) * weight + bias``; r and d are written into ``rd`` (2, B).

    ``relu`` True: the output goes through ReLU in the same pass (None: not compiled).
    ``merges`` None where the rows are one block (``row_block >= A``): the block-merge code is
    not compiled (``moments.grouped_moments``)."""
    _, A, B = x.shape
    # the moments of moments.column_moments, NaN not skipped: a NaN gives NaN statistics (torch)
    cnt, mean2, m22, _ = grouped_moments(x, w, None, row_block, col_block, merges)
    mean = mean2[0].copy()
    m2 = m22[0].copy()
    total = float(A) if w is None else (cnt[0, 0] if B > 0 else 0.0)
    # loops, not array expressions: a parallel twin would compile each array expression as a
    # subroutine of its own (and warn that it found nothing to parallelize in it)
    rstd = np.empty(B)
    scale = np.empty(B)
    for j in range(B):
        rstd[j] = 1.0 / np.sqrt(m2[j] / total + eps)
        scale[j] = rstd[j] * weight[j]
    shifts = bias
    if renorm is not None:
        r_max, d_max = renorm[0], renorm[1]
        for j in range(B):
            sigma = np.sqrt(running_var[j] + eps)
            r = min(max(1.0 / (rstd[j] * sigma), 1.0 / r_max), r_max)
            d = min(max((mean[j] - running_mean[j]) / sigma, -d_max), d_max)
            rd[0, j] = r
            rd[1, j] = d
            scale[j] = scale[j] * r
        shifts = np.empty(B)
        for j in range(B):
            shifts[j] = bias[j] + weight[j] * rd[1, j]
    if running_mean.size > 0:
        unbiased = np.empty(B)
        count = total - 1.0 if total > 1.0 else total
        for j in range(B):
            unbiased[j] = m2[j] / count
        update_running_stats(running_mean, running_var, mean, unbiased, momentum)
    _affine_tasks(x, mean, scale, shifts, out, relu)
    return mean, m2, rstd


# inlined: threaded in a parallel twin (a call would run its prange serially)
@njit(inline="always", **KERNEL)
def _affine_tasks(x, mean, scale, shift, out, relu):
    """The element-wise pass of (1, A, B) ``x`` in tasks of rows: (x - mean) * scale + shift,
    per column, then ReLU where ``relu`` is not None."""
    A, B = x.shape[1], x.shape[2]
    rows = rows_per_task(B)
    for t in prange((A + rows - 1) // rows):
        block_column_affine(
            x,
            0,
            t * rows,
            min(A, (t + 1) * rows),
            mean.reshape((1, B)),
            scale.reshape((1, B)),
            shift.reshape((1, B)),
            out,
        )
        if relu is not None:
            block_relu(out, t * rows, min(A, (t + 1) * rows))


@parallel_kernel(min_elements=THREADS_FROM)
def columns_normalize_backward(
    dy, x, w, mean, rstd, weight, constant_stats, row_block, col_block, dx, relu_out=None
):
    """Input gradient of ``columns_normalize`` into ``dx``; returns the weight and bias gradients.
    With ``constant_stats`` True the statistics were constants (running averages); None when
    they were the batch's (training), which Numba compiles without the constant-statistics pass.
    With row weights ``w`` (those of the forward pass), the terms through the batch mean and
    variance of row a are scaled by ``w[a] / W``: the gradient of the repeated rows, summed over
    copies. With ``relu_out``, the output of a ReLU that followed (``columns_normalize`` with
    ``relu``), ``dy`` is the gradient with respect to that output: ``dy * (relu_out > 0)`` is
    written into a scratch array of dy's size first and read from there (None: not compiled)."""
    _, A, B = x.shape
    if relu_out is not None:
        masked = np.empty_like(dy)  # not dx: loops reading and writing one array run scalar
        rows = rows_per_task(B)
        for t in prange((A + rows - 1) // rows):
            block_relu_mask(dy, relu_out, t * rows, min(A, (t + 1) * rows), masked)
        dy = masked
    row_block = sum_row_block(A, row_block)
    n_rb = (A + row_block - 1) // row_block
    n_cb = (B + col_block - 1) // col_block
    part_dy = np.empty((n_rb, B))
    part_dyx = np.empty((n_rb, B))
    centre = mean.reshape((1, B))
    for t in prange(n_rb * n_cb):
        _, i, r0, r1, c0, c1 = column_task(t, n_rb, n_cb, row_block, col_block, A, B)
        block_grad_sums(dy, x, centre, 0, r0, r1, c0, c1, part_dy[i, c0:c1], part_dyx[i, c0:c1])
    s_dy = part_dy[0].copy()
    s_dyx = part_dyx[0].copy()
    for i in range(1, n_rb):
        run_add(s_dy, part_dy[i])
        run_add(s_dyx, part_dyx[i])
    alpha = np.empty(B)
    grad_weight = np.empty(B)
    for j in range(B):
        alpha[j] = rstd[j] * weight[j]
        grad_weight[j] = s_dyx[j] * rstd[j]
    rows = rows_per_task(B)
    if constant_stats is not None:
        # constant statistics: dx = alpha * dy, which never reads x (a NaN or infinite x must
        # not turn its gradient into NaN through 0 * (x - mean))
        zeros = np.zeros((1, B))
        for t in prange((A + rows - 1) // rows):
            block_column_affine(
                dy, 0, t * rows, min(A, (t + 1) * rows), zeros, alpha.reshape((1, B)), zeros, dx
            )
        return grad_weight, s_dy
    # d/dx of the batch mean and variance: the same formulas as channel_norm_backward
    total = float(A) if w is None else np.sum(w)
    beta = np.empty(B)
    gamma = np.empty(B)
    for j in range(B):
        beta[j] = -(rstd[j] * rstd[j]) * alpha[j] * s_dyx[j] / total
        gamma[j] = -alpha[j] * s_dy[j] / total
    for t in prange((A + rows - 1) // rows):
        r0, r1 = t * rows, min(A, (t + 1) * rows)
        if w is None:
            block_column_grad_input(
                dy,
                x,
                0,
                r0,
                r1,
                centre,
                alpha.reshape((1, B)),
                beta.reshape((1, B)),
                gamma.reshape((1, B)),
                dx,
            )
        else:
            block_column_grad_input_weighted(dy, x, w, r0, r1, centre, alpha, beta, gamma, dx)
    return grad_weight, s_dy


# one parallel region (the element-wise pass): the default threshold, like columns_affine
@parallel_kernel
def columns_eval(x, running_mean, running_var, weight, bias, eps, out):
    """Batch norm of the columns of ``x`` (1, A, B) with constant statistics (eval mode):
    ``(x - running_mean) * (weight / sqrt(running_var + eps)) + bias``; returns the float64
    (mean, rstd) of each column, with the bits of the general path's NumPy steps."""
    _, A, B = x.shape
    mean = np.empty(B)
    rstd = np.empty(B)
    scale = np.empty(B)
    constant_scale(running_mean, running_var, weight, eps, mean, rstd, scale)
    _affine_tasks(x, mean, scale, bias, out, None)
    return mean, rstd


@njit(**EXACT)  # rounded as NumPy rounds 1.0 / np.sqrt(var + eps) and rstd * weight
def constant_scale(running_mean, running_var, weight, eps, mean, rstd, scale):
    for j in range(mean.shape[0]):
        mean[j] = running_mean[j]
        rstd[j] = 1.0 / np.sqrt(np.float64(running_var[j]) + eps)
        scale[j] = rstd[j] * weight[j]
