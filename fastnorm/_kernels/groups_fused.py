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
    """Input gradient into ``dx``; returns per-(sample, channel) sum(dy * xhat) and sum(dy),
    shape (N, C), to be summed over samples for the weight and bias gradients."""
    rows, row_len = x.shape
    per_group = row_len // length
    n = rows // groups
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
