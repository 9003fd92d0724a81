"""Layers with explicit forward and backward passes, losses and optimizers, for the CPU trainer."""

from ._module import Module, StateDict
from .container import Sequential, fold_batchnorm
from .layers import GELU, Dropout, Identity, Linear, ReLU, Sigmoid, Tanh
from .losses import CrossEntropyLoss, MSELoss
from .normalization import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from .optim import SGD, Adam, AdamW
from .precise_bn import precise_batchnorm_statistics

__all__ = [
    "Module",
    "StateDict",
    "BatchNorm",
    "GroupNorm",
    "InstanceNorm",
    "LayerNorm",
    "RMSNorm",
    "Linear",
    "ReLU",
    "GELU",
    "Tanh",
    "Sigmoid",
    "Identity",
    "Dropout",
    "Sequential",
    "fold_batchnorm",
    "precise_batchnorm_statistics",
    "CrossEntropyLoss",
    "MSELoss",
    "SGD",
    "Adam",
    "AdamW",
]
