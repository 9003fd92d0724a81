"""Layers with explicit forward and backward passes, losses and optimizers, for the CPU trainer."""

from ._module import Module
from .container import Sequential, fold_batchnorm
from .layers import GELU, Dropout, Identity, Linear, ReLU, Sigmoid, Tanh
from .losses import CrossEntropyLoss, MSELoss
from .normalization import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from .optim import SGD, Adam, AdamW

__all__ = [
    "Module",
    "BatchNorm", "GroupNorm", "InstanceNorm", "LayerNorm", "RMSNorm",
    "Linear", "ReLU", "GELU", "Tanh", "Sigmoid", "Identity", "Dropout",
    "Sequential", "fold_batchnorm",
    "CrossEntropyLoss", "MSELoss",
    "SGD", "Adam", "AdamW",
]
