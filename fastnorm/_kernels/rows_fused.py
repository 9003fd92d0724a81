"""Fused kernels for layer and RMS norm: statistics, normalization and the per-element affine of
each row in one task, so a row is read from memory once. ``subtract_mean=False`` gives RMS norm."""

import numpy as np
from numba import njit, prange

from ._flags import KERNEL, ORDERED_KERNEL, parallel_kernel
from ._loops import corrected_moments, run_add, run_centred_sums, run_sum


@njit(**KERNEL)
def _run_normalize(x, mean, rstd, weight, bias, out):
    for i in range(x.shape[0]):
        out[i] = (x[i] - mean) * rstd * weight[i] + bias[i]


@njit(**KERNEL)
def _run_grad_sums_and_affine(dy, x, mean, rstd, weight, acc_w, acc_b):
    """The row's sums of dy * weight and of that times (x - mean), and its terms of the affine
    gradients added to their partial sums: one pass for every reduction of the backward."""
    s_g = 0.0
    s_gx = 0.0
    for i in range(dy.shape[0]):
        d = dy[i] * 1.0
        g = dy[i] * weight[i]
        s_g += g
        s_gx += g * (x[i] - mean)
        acc_w[i] += d * ((x[i] - mean) * rstd)
        acc_b[i] += d
    return s_g, s_gx


# No reassociation: LLVM does not always inline this loop, and re-optimizing it in the caller's
# module with reassociation allowed regrouped its terms, so a process that had compiled it ran
# other bits than one that loaded the caller from the cache.
@njit(**ORDERED_KERNEL)
def _run_grad_input(dy, x, mean, rstd, weight, c_mean, c_x, out):
    for i in range(dy.shape[0]):
        out[i] = rstd * (dy[i] * weight[i] - c_mean - (x[i] - mean) * c_x)


@parallel_kernel
def rows_normalize(x, weight, bias, eps, subtract_mean, out):
    """Normalize each row of ``x`` (rows, length); returns per-row (mean, rstd)."""
    rows, length = x.shape
    mean = np.zeros(rows)
    rstd = np.empty(rows)
    for r in prange(rows):
        row = x[r]
        mu = run_sum(row) / length if subtract_mean else 0.0
        sq, s_d = run_centred_sums(row, mu)
        if subtract_mean:
            mu, sq = corrected_moments(mu, sq, s_d, length)
        rs = 1.0 / np.sqrt(sq / length + eps)
        mean[r] = mu
        rstd[r] = rs
        _run_normalize(row, mu, rs, weight, bias, out[r])
    return mean, rstd


@parallel_kernel
def rows_normalize_backward(dy, x, mean, rstd, weight, subtract_mean, rows_per_block, dx):
    """Input gradient into ``dx``; returns the gradients of the per-element weight and bias."""
    rows, length = x.shape
    n_blocks = (rows + rows_per_block - 1) // rows_per_block
    part_w = np.zeros((n_blocks, length))
    part_b = np.zeros((n_blocks, length))
    for k in prange(n_blocks):
        for r in range(k * rows_per_block, min(rows, (k + 1) * rows_per_block)):
            s_g, s_gx = _run_grad_sums_and_affine(
                dy[r], x[r], mean[r], rstd[r], weight, part_w[k], part_b[k]
            )
            c_mean = s_g / length if subtract_mean else 0.0
            c_x = s_gx * rstd[r] * rstd[r] / length
            _run_grad_input(dy[r], x[r], mean[r], rstd[r], weight, c_mean, c_x, dx[r])
    grad_w = part_w[0].copy()
    grad_b = part_b[0].copy()
    for k in range(1, n_blocks):
        run_add(grad_w, part_w[k])
        run_add(grad_b, part_b[k])
    return grad_w, grad_b
