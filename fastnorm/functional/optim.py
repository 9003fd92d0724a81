"""Optimizer steps (PyTorch's formulas) in place on contiguous 1-D float arrays: the door through
which ``fastnorm.nn`` optimizers reach their kernels."""

from .._kernels.optim import adam_update as adam_step
from .._kernels.optim import sgd_update as sgd_step

__all__ = ["adam_step", "sgd_step"]
