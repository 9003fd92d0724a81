"""Torch-compatible normalization functions on NumPy arrays.

The ``*_forward`` variants also return a context; ``ctx.backward(grad_out)`` (or
``channel_norm_backward`` for batch, group, instance norm, ``rows_norm_backward`` for layer and
RMS norm) computes the gradients. The building blocks below them (column moments, the moments
merge, the running-statistics update, the per-column affine map, sparse column statistics and
scaling, optimizer steps, the kernel threading policy) are the only way the rest of fastnorm
reaches ``fastnorm._kernels``.
"""

from .._kernels.policy import (
    deferred_interrupts,
    deliver_interrupts,
    serial_kernels,
    set_num_threads,
    streaming_kernels,
)
from ._contexts import channel_norm_backward
from .affine import columns_affine
from .batch_norm import batch_norm, batch_norm_forward, feature_moments
from .group_norm import group_norm, group_norm_forward, instance_norm, instance_norm_forward
from .layer_norm import (
    layer_norm,
    layer_norm_forward,
    rms_norm,
    rms_norm_forward,
    rows_norm_backward,
)
from .losses import softmax_cross_entropy
from .moments import (
    column_moments,
    merge_compensated_moments,
    merge_moments,
    update_running_stats,
)
from .optim import adam_step, sgd_step
from .sparse import sparse_column_moments, sparse_scale_columns

__all__ = [
    "adam_step",
    "batch_norm",
    "batch_norm_forward",
    "channel_norm_backward",
    "column_moments",
    "deferred_interrupts",
    "deliver_interrupts",
    "columns_affine",
    "feature_moments",
    "group_norm",
    "group_norm_forward",
    "instance_norm",
    "instance_norm_forward",
    "layer_norm",
    "layer_norm_forward",
    "merge_compensated_moments",
    "merge_moments",
    "rms_norm",
    "rms_norm_forward",
    "rows_norm_backward",
    "serial_kernels",
    "set_num_threads",
    "sgd_step",
    "softmax_cross_entropy",
    "sparse_column_moments",
    "sparse_scale_columns",
    "streaming_kernels",
    "update_running_stats",
]
