"""Calls that compile the functional kernels into Numba's cache: one small call per distinct
compiled specialization (layout path, dtype, optional arguments present or None), driven through
the public functions so that the arguments have exactly the types real calls give them. Used by
``fastnorm._compile`` (``python -m fastnorm compile``)."""

import numpy as np

from .._kernels import schedule
from .._kernels.policy import forced_threads
from .affine import columns_affine
from .batch_norm import batch_norm_forward, feature_moments
from .group_norm import group_norm_forward, instance_norm_forward
from .layer_norm import layer_norm_forward, rms_norm_forward
from .moments import column_moments, merge_compensated_moments, merge_moments, update_running_stats

__all__ = ["FAMILIES", "forced_threads"]


def _data(shape, dtype):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _fwd_bwd(forward, x, *args, **kwargs):
    out, ctx = forward(x, *args, **kwargs)
    ctx.backward(np.ones_like(out))


def _batch(dtype):
    c = 6
    for shape, axis in (
        ((16, c), 1),  # rows of one block: the fused kernel without its block-merge code
        ((schedule.column_blocks(10**6, c)[0] + 1, c), 1),  # rows of two blocks: with it
        ((2, c, 8, 8), 1),  # runs read row by row
        ((4, c, 8, 8), 1),  # the same, element-wise passes by sample (_layouts.short_rows)
        ((4, c, 2, 2), 1),
        ((2, 3, 3, c), -1),
    ):
        x = _data(shape, dtype)
        for stats in (dtype, None):  # running statistics of x's dtype, or none
            rm = None if stats is None else np.zeros(c, stats)
            rv = None if stats is None else np.ones(c, stats)
            for activation in (None, "relu"):  # the fused ReLU is a specialization of its own
                _fwd_bwd(
                    batch_norm_forward, x, rm, rv, training=True, axis=axis, activation=activation
                )
        rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
        _fwd_bwd(batch_norm_forward, x, rm, rv, np.ones(c), np.zeros(c), axis=axis)  # eval
        if len(shape) == 2:
            for activation in (None, "relu"):
                weights = np.ones(shape[0])
                relu = {"activation": activation}
                _fwd_bwd(
                    batch_norm_forward, x, rm, rv, training=True, sample_weight=weights, **relu
                )
                _fwd_bwd(batch_norm_forward, x, rm, rv, training=True, renorm=(3.0, 5.0), **relu)
            _fwd_bwd(batch_norm_forward, x, rm, rv, training=True, virtual_batch_size=4)
            feature_moments(x)


def _groups(dtype):
    for shape, axis in (((2, 4, 8, 8), 1), ((2, 4, 3, 3), 1), ((2, 3, 3, 4), -1)):
        x = _data(shape, dtype)
        _fwd_bwd(group_norm_forward, x, 2, axis=axis)
        rm, rv = np.zeros(4, dtype), np.ones(4, dtype)
        _fwd_bwd(instance_norm_forward, x, rm, rv, axis=axis)
        _fwd_bwd(instance_norm_forward, x, rm, rv, use_input_stats=False, axis=axis)


def _rows(dtype):
    x = _data((4, 8), dtype)
    _fwd_bwd(layer_norm_forward, x, 8)
    _fwd_bwd(rms_norm_forward, x, 8)


def _moments(dtype):
    x = _data((16, 5), dtype)
    column_moments(x)
    column_moments(x, np.ones(16))
    columns_affine(x, np.zeros(5), np.ones(5), np.zeros(5), np.empty_like(x))
    update_running_stats(np.zeros(5, dtype), np.ones(5, dtype), np.ones(5), np.ones(5), 0.1)
    if dtype == np.float64:  # float64 only
        ones = np.ones(5)
        merge_moments(ones, ones, ones, ones, ones, ones)
        merge_compensated_moments((ones,) * 5, (ones,) * 5)


# family name -> function(dtype) making the calls
FAMILIES = {"batch": _batch, "groups": _groups, "rows": _rows, "moments": _moments}
