"""The saved state of a batch, group or instance norm forward pass, and its backward pass."""

from dataclasses import dataclass

import numpy as np


@dataclass
class NormContext:
    """What a forward pass saves for its backward pass (no statistic is recomputed)."""

    layout: object  # ChannelsFirst or ChannelsLast over the forward input
    shape: tuple
    centre: np.ndarray  # (Np, C): the mean subtracted from each channel slot
    rstd: np.ndarray  # (Np, C): 1 / sqrt(var + eps)
    weight: np.ndarray  # (C,) float64, ones when absent
    batch_stats: bool  # True when centre/rstd came from the input itself
    count: int  # values behind each statistic
    group_size: int = 1  # channels that share one statistic (group norm)
    per_sample: bool = False  # statistics per sample (group, instance norm), not per channel


def _per_group(per_channel, group_size):
    """(N, C) statistics repeated over each group's channels -> one value per (sample, group)."""
    return np.ascontiguousarray(per_channel[:, ::group_size]).reshape(-1)


def channel_norm_backward(ctx, grad_out):
    """Gradients (input, weight, bias) of batch, group or instance norm from a saved context."""
    layout = ctx.layout
    dy = np.ascontiguousarray(grad_out, dtype=layout.x.dtype)
    if dy.shape != ctx.shape:
        raise ValueError(f"grad_out must have the forward input's shape {ctx.shape}, got {dy.shape}")
    dy3 = dy.reshape(layout.x.shape)
    dx = np.empty_like(dy)
    channels = ctx.weight.shape[0]
    if ctx.count == 0 or dy.size == 0:
        return dx, np.zeros(channels), np.zeros(channels)
    if ctx.per_sample and ctx.batch_stats and layout.fuses_groups:
        groups = ctx.weight.shape[0] // ctx.group_size
        s_dyxhat, s_dy = layout.group_norm_rows_backward(
            dy3, _per_group(ctx.centre, ctx.group_size), _per_group(ctx.rstd, ctx.group_size),
            ctx.weight, groups, dx.reshape(layout.x.shape))
        return dx, s_dyxhat.sum(axis=0), s_dy.sum(axis=0)
    if not ctx.per_sample and layout.fuses_batch_norm:
        grad_weight, grad_bias = layout.batch_norm_columns_backward(
            dy3, ctx.centre[0], ctx.rstd[0], ctx.weight, ctx.batch_stats, dx.reshape(layout.x.shape))
        return dx, grad_weight, grad_bias
    s_dy, s_dyx = layout.grad_sums(dy3, ctx.centre)  # (Np, C)
    grad_weight = (s_dyx * ctx.rstd).sum(axis=0)
    grad_bias = s_dy.sum(axis=0)

    alpha = ctx.rstd * ctx.weight  # (Np, C)
    if ctx.batch_stats:
        g = ctx.group_size
        n_p = s_dy.shape[0]
        # sums of (weight * dy) and (weight * dy * (x - mean)) over each statistic's values
        sum_g = (s_dy * ctx.weight).reshape(n_p, -1, g).sum(axis=2)
        sum_gx = (s_dyx * ctx.weight).reshape(n_p, -1, g).sum(axis=2)
        rstd = ctx.rstd[:, ::g]
        beta = np.repeat(-(rstd ** 3) * sum_gx / ctx.count, g, axis=1)
        gamma = np.repeat(-rstd * sum_g / ctx.count, g, axis=1)
    else:
        beta = np.zeros_like(alpha)
        gamma = np.zeros_like(alpha)
    layout.grad_input(dy3, ctx.centre, alpha, beta, gamma, dx.reshape(layout.x.shape))
    return dx, grad_weight, grad_bias
