"""Torch-compatible normalization functions on NumPy arrays.

The ``*_forward`` variants also return a context from which ``channel_norm_backward`` (batch,
group, instance norm) or ``rows_norm_backward`` (layer, RMS norm) compute the gradients.
"""

from ._channel_context import channel_norm_backward
from .batch_norm import batch_norm, batch_norm_forward, feature_moments
from .group_norm import group_norm, group_norm_forward, instance_norm, instance_norm_forward
from .layer_norm import (
    layer_norm,
    layer_norm_forward,
    rms_norm,
    rms_norm_forward,
    rows_norm_backward,
)

__all__ = [
    "batch_norm",
    "batch_norm_forward",
    "channel_norm_backward",
    "feature_moments",
    "group_norm",
    "group_norm_forward",
    "instance_norm",
    "instance_norm_forward",
    "layer_norm",
    "layer_norm_forward",
    "rms_norm",
    "rms_norm_forward",
    "rows_norm_backward",
]
