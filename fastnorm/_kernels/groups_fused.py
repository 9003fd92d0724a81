"""Fused group and instance norm, channels first: each (sample, group) is one contiguous run of
``channels_per_group`` segments of ``length`` values, read once per pass while it sits in cache
(statistics + normalization forward; sums + input gradient backward)."""

import numpy as np
from numba import prange

from ._flags import parallel_kernel
from ._loops import (
    corrected_moments,
    run_affine,
    run_centred_sums,
    run_grad_input,
    run_grad_sums,
    run_sum,
)
from .schedule import SUM_BLOCKS


@parallel_kernel
def groups_normalize(x, weight, bias, groups, length, eps, out):
    """x (N * groups, channels_per_group * length); weight, bias per channel. Returns the
    per-row (mean, M2, rstd)."""
    rows, row_len = x.shape
    per_group = row_len // length
    mean = np.empty(rows)
    m2 = np.empty(rows)
    rstd = np.empty(rows)
    for r in prange(rows):
        if length == 1:  # one value per channel: index loops (rows are short, calls cost more)
            c0 = max((r % groups) * per_group, 0)  # max: no negative-index checks in the loops
            total = 0.0
            for j in range(row_len):
                total += x[r, j]
            mu = total / row_len
            sq = 0.0
            s_d = 0.0
            for j in range(row_len):
                d = x[r, j] - mu
                sq += d * d
                s_d += d
            mu, sq = corrected_moments(mu, sq, s_d, row_len)
            rs = 1.0 / np.sqrt(sq / row_len + eps)
            mean[r] = mu
            m2[r] = sq
            rstd[r] = rs
            for j in range(row_len):
                out[r, j] = (x[r, j] - mu) * (rs * weight[c0 + j]) + bias[c0 + j]
            continue
        row = x[r]
        mu = run_sum(row) / row_len
        sq, s_d = run_centred_sums(row, mu)
        mu, sq = corrected_moments(mu, sq, s_d, row_len)
        rs = 1.0 / np.sqrt(sq / row_len + eps)
        mean[r] = mu
        m2[r] = sq
        rstd[r] = rs
        c0 = (r % groups) * per_group
        for j in range(per_group):
            lo = j * length
            run_affine(
                row[lo : lo + length],
                mu,
                rs * weight[c0 + j],
                bias[c0 + j],
                out[r, lo : lo + length],
            )
    return mean, m2, rstd


@parallel_kernel
def groups_normalize_backward(dy, x, mean, rstd, weight, groups, length, dx):
    """Input gradient into ``dx``; returns partial sums of dy * xhat and of dy per channel, shape
    (N, C) (per sample; per block of samples for one-value runs), to be summed over axis 0 for
    the weight and bias gradients."""
    rows, row_len = x.shape
    per_group = row_len // length
    n = rows // groups
    if length == 1:  # each group's channels one run; partial sums per block of samples
        block = max(1, (n + SUM_BLOCKS - 1) // SUM_BLOCKS)  # by shape: the bits of any threads
        n_blocks = (n + block - 1) // block
        part_dyxhat = np.zeros((n_blocks, row_len * groups))
        part_dy = np.zeros((n_blocks, row_len * groups))
        for k in prange(n_blocks):
            for r in range(k * block * groups, min(n, (k + 1) * block) * groups):
                c0 = max((r % groups) * row_len, 0)  # max: no negative-index checks in loops
                mu = mean[r]
                rs = rstd[r]
                sum_g = 0.0
                sum_gx = 0.0
                for j in range(row_len):  # run_grad_sums of each one-value run
                    a = dy[r, j] * 1.0
                    b = a * (x[r, j] - mu)
                    part_dy[k, c0 + j] += a
                    part_dyxhat[k, c0 + j] += b * rs
                    sum_g += weight[c0 + j] * a
                    sum_gx += weight[c0 + j] * b
                beta = -(rs * rs * rs) * sum_gx / row_len
                gamma = -rs * sum_g / row_len
                for j in range(row_len):  # run_grad_input, alpha = rs * weight
                    dx[r, j] = (rs * weight[c0 + j]) * dy[r, j] + beta * (x[r, j] - mu) + gamma
        return part_dyxhat, part_dy
    s_dyxhat = np.empty((n, groups * per_group))
    s_dy = np.empty((n, groups * per_group))
    for r in prange(rows):
        i = r // groups
        c0 = (r % groups) * per_group
        mu = mean[r]
        rs = rstd[r]
        sum_g = 0.0
        sum_gx = 0.0
        for j in range(per_group):
            lo = j * length
            a, b = run_grad_sums(dy[r, lo : lo + length], x[r, lo : lo + length], mu)
            s_dy[i, c0 + j] = a
            s_dyxhat[i, c0 + j] = b * rs
            sum_g += weight[c0 + j] * a
            sum_gx += weight[c0 + j] * b
        # the same coefficients as channel_norm_backward, for one group
        beta = -(rs * rs * rs) * sum_gx / row_len
        gamma = -rs * sum_g / row_len
        for j in range(per_group):
            lo = j * length
            run_grad_input(
                dy[r, lo : lo + length],
                x[r, lo : lo + length],
                mu,
                rs * weight[c0 + j],
                beta,
                gamma,
                dx[r, lo : lo + length],
            )
    return s_dyxhat, s_dy
