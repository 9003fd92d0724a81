"""Layers with explicit forward and backward passes, for the CPU trainer."""

from ._module import Module
from .normalization import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm

__all__ = ["Module", "BatchNorm", "GroupNorm", "InstanceNorm", "LayerNorm", "RMSNorm"]
