"""Batch norm's per-step call in MLP training, served without the general path's steps: training
on C-contiguous (N, C) float features with plain arguments. At MLP sizes each step of Python
costs about as much as the kernel's arithmetic; the kernel call and the context are the general
path's, so the bits are too."""

import math

import numpy as np

from .._kernels import columns_fused, schedule
from . import _checks as checks
from ._contexts import ColumnsContext
from ._layouts import NO_RUNNING_STATS, ChannelRuns


def plain_columns_step(x, running_mean, running_var, weight, bias, training, momentum, eps, axis):
    """A training call on C-contiguous (N, C) float features (N > 1) with valid scalars, buffers
    and parameters as arrays: an MLP's per-step call, which ``columns_step`` serves. Anything
    else (including anything invalid) takes the general path and its checks."""
    if not (
        training is True
        and type(x) is np.ndarray
        and x.ndim == 2
        and x.dtype in checks.FLOAT_DTYPES
        and x.flags.c_contiguous
        and x.shape[0] > 1
        and type(axis) is int
        and (axis == 1 or axis == -1)
        and type(eps) is float
        and 0.0 <= eps < math.inf
        and type(momentum) is float
        and 0.0 <= momentum <= 1.0
    ):
        return False
    channels = (x.shape[1],)
    floats = checks.FLOAT_DTYPES
    if weight is not None and not (
        type(weight) is np.ndarray and weight.shape == channels and weight.dtype in floats
    ):
        return False
    if bias is not None and not (
        type(bias) is np.ndarray and bias.shape == channels and bias.dtype in floats
    ):
        return False
    if running_mean is None:
        return running_var is None
    return (
        type(running_mean) is np.ndarray
        and type(running_var) is np.ndarray
        and running_mean.shape == channels == running_var.shape
        and running_mean.dtype in floats
        and running_var.dtype in floats
        and running_mean.flags.writeable
        and running_var.flags.writeable
    )


def columns_step(x, running_mean, running_var, weight, bias, momentum, eps, relu):
    """The fused columns kernel on a ``plain_columns_step`` call: the general path's kernel call
    and context, so the same bits, without its layout steps (at MLP sizes each step of Python
    costs about as much as a kernel's arithmetic)."""
    n, channels = x.shape
    w = np.ones(channels) if weight is None else np.ascontiguousarray(weight, dtype=np.float64)
    b = np.zeros(channels) if bias is None else np.ascontiguousarray(bias, dtype=np.float64)
    if running_mean is None:
        running_mean = running_var = NO_RUNNING_STATS
    out = np.empty_like(x)
    x3 = x.reshape(1, n, channels)
    blocks = schedule.column_blocks(n, channels)
    mean, _, rstd = columns_fused.columns_normalize(
        x3,
        None,
        w,
        b,
        eps,
        running_mean,
        running_var,
        momentum,
        *blocks,
        out.reshape(1, n, channels),
        None,
        None,
        True if relu else None,
    )
    layout = ChannelRuns(x.reshape(n, channels, 1))
    return out, ColumnsContext(layout, x.shape, w, mean, rstd, True, None, out if relu else None)
