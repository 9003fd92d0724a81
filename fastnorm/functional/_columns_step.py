"""Batch norm's per-step call in MLP training, and its eval-mode call, served without the general
path's steps: C-contiguous (N, C) float features with plain arguments. At MLP sizes each step of
Python costs about as much as the kernel's arithmetic. In training the kernel call
(``batch_norm_columns``) and the context are the general path's, so the bits are too; in eval
mode one kernel call (``ChannelRuns.batch_norm_constant``) rounds as the general path's NumPy
steps and element-wise kernel."""

import math

import numpy as np

from ._checks import FLOAT_DTYPES
from ._contexts import ColumnsContext
from ._layouts import ChannelRuns


def columns_step(x, running_mean, running_var, weight, bias, training, momentum, eps, axis, relu):
    """Batch norm on C-contiguous (N, C) float features with valid scalars, buffers and
    parameters as arrays, an MLP's per-step call: in training (N > 1), or in eval mode (running
    statistics given, no fused ReLU). (out, context) from the general path's kernel call and
    context, or from a kernel with the bits of its NumPy steps, without its checks and views.
    None for any other call (including any invalid one), which the general path serves and
    checks."""
    if not (
        (training is True or training is False)
        and type(x) is np.ndarray
        and x.ndim == 2
        and x.dtype in FLOAT_DTYPES
        and x.flags.c_contiguous
        and type(axis) is int
        and (axis == 1 or axis == -1)
        and type(eps) is float
        and 0.0 <= eps < math.inf
        and _plain_vector(weight, x.shape[1])
        and _plain_vector(bias, x.shape[1])
    ):
        return None
    if training is False:
        return _eval_step(x, running_mean, running_var, weight, bias, eps, relu)
    if not (x.shape[0] > 1 and type(momentum) is float and 0.0 <= momentum <= 1.0):
        return None
    n, channels = x.shape
    if not (
        (running_mean is None and running_var is None)
        or (_plain_buffer(running_mean, channels) and _plain_buffer(running_var, channels))
    ):
        return None
    w, b = _parameters(weight, bias, channels)
    out = np.empty_like(x)
    layout = ChannelRuns(x.reshape(n, channels, 1))
    mean, _, rstd, _ = layout.batch_norm_columns(
        w, b, eps, running_mean, running_var, momentum, out, None, None, True if relu else None
    )
    return out, ColumnsContext(layout, x.shape, w, mean, rstd, True, None, out if relu else None)


def _eval_step(x, running_mean, running_var, weight, bias, eps, relu):
    """Eval mode: the running statistics are constants (``columns_fused.columns_eval``)."""
    n, channels = x.shape
    if relu or not (
        _plain_buffer(running_mean, channels, "c_contiguous")
        and _plain_buffer(running_var, channels, "c_contiguous")
    ):
        return None
    w, b = _parameters(weight, bias, channels)
    out = np.empty_like(x)
    layout = ChannelRuns(x.reshape(n, channels, 1))
    mean, rstd = layout.batch_norm_constant(running_mean, running_var, w, b, eps, out)
    return out, ColumnsContext(layout, x.shape, w, mean, rstd, False)


def _parameters(weight, bias, channels):
    w = np.ones(channels) if weight is None else np.ascontiguousarray(weight, dtype=np.float64)
    b = np.zeros(channels) if bias is None else np.ascontiguousarray(bias, dtype=np.float64)
    return w, b


def _plain_vector(v, length):
    return v is None or (type(v) is np.ndarray and v.shape == (length,) and v.dtype in FLOAT_DTYPES)


def _plain_buffer(v, length, flag="writeable"):
    """A float buffer of ``length`` values with ``flag`` set: "writeable" for running statistics
    that are updated, "c_contiguous" for ones the eval kernel only reads."""
    return (
        type(v) is np.ndarray
        and v.shape == (length,)
        and v.dtype in FLOAT_DTYPES
        and getattr(v.flags, flag)
    )
