"""Layers with explicit forward and backward passes, for the CPU trainer."""

from ._module import Module
from .normalization import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm

__all__ = ["Module", "BatchNorm", "GroupNorm", "InstanceNorm", "LayerNorm", "RMSNorm"]

# dense layers, containers, losses and optimizers (issue 4)
from .container import Sequential, fold_batchnorm
from .layers import GELU, Dropout, Identity, Linear, ReLU, Sigmoid, Tanh
from .losses import CrossEntropyLoss, MSELoss
from .optim import SGD, Adam, AdamW

__all__ += ["Sequential", "fold_batchnorm", "Linear", "ReLU", "GELU", "Tanh", "Sigmoid",
            "Identity", "Dropout", "CrossEntropyLoss", "MSELoss", "SGD", "Adam", "AdamW"]
