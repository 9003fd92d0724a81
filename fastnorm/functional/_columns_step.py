"""Batch norm's per-step call in MLP training, served without the general path's steps: training
on C-contiguous (N, C) float features with plain arguments. At MLP sizes each step of Python
costs about as much as the kernel's arithmetic; the kernel call (``batch_norm_columns``) and the
context are the general path's, so the bits are too."""

import math

import numpy as np

from ._checks import FLOAT_DTYPES
from ._contexts import ColumnsContext
from ._layouts import ChannelRuns


def columns_step(x, running_mean, running_var, weight, bias, training, momentum, eps, axis, relu):
    """Batch norm's training call on C-contiguous (N, C) float features (N > 1) with valid
    scalars, buffers and parameters as arrays, an MLP's per-step call: (out, context) from the
    general path's kernel call and context, so the same bits, without its checks and views. None for
    any other call (including any invalid one), which the general path serves and checks."""
    if not (
        training is True
        and type(x) is np.ndarray
        and x.ndim == 2
        and x.dtype in FLOAT_DTYPES
        and x.flags.c_contiguous
        and x.shape[0] > 1
        and type(axis) is int
        and (axis == 1 or axis == -1)
        and type(eps) is float
        and 0.0 <= eps < math.inf
        and type(momentum) is float
        and 0.0 <= momentum <= 1.0
        and _plain_vector(weight, x.shape[1])
        and _plain_vector(bias, x.shape[1])
    ):
        return None
    n, channels = x.shape
    if not (
        (running_mean is None and running_var is None)
        or (_plain_buffer(running_mean, channels) and _plain_buffer(running_var, channels))
    ):
        return None
    w = np.ones(channels) if weight is None else np.ascontiguousarray(weight, dtype=np.float64)
    b = np.zeros(channels) if bias is None else np.ascontiguousarray(bias, dtype=np.float64)
    out = np.empty_like(x)
    layout = ChannelRuns(x.reshape(n, channels, 1))
    mean, _, rstd, _ = layout.batch_norm_columns(
        w, b, eps, running_mean, running_var, momentum, out, None, None, True if relu else None
    )
    return out, ColumnsContext(layout, x.shape, w, mean, rstd, True, None, out if relu else None)


def _plain_vector(v, length):
    return v is None or (type(v) is np.ndarray and v.shape == (length,) and v.dtype in FLOAT_DTYPES)


def _plain_buffer(v, length):
    return (
        type(v) is np.ndarray
        and v.shape == (length,)
        and v.dtype in FLOAT_DTYPES
        and v.flags.writeable
    )
