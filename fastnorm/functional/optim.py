"""Optimizer steps (PyTorch's formulas) in place on contiguous 1-D float arrays: the door through
which ``fastnorm.nn`` optimizers reach their kernels. The coefficients are cast to the arrays'
dtype, so float32 parameters are updated in float32 arithmetic, as in PyTorch."""

import numpy as np

from .._kernels import optim as kernels

__all__ = ["adam_step", "sgd_step"]


def adam_step(
    p, g, m, v, lr, beta1, beta2, eps, step_size, bc2_sqrt, wd, decoupled, l2_count=0, l2=0.0
):
    """One Adam (or, with ``decoupled``, AdamW) step on flat arrays of one dtype: ``p``
    parameters, ``g`` gradients, ``m`` and ``v`` the moment estimates (all updated in place but
    ``g``). ``step_size = lr / (1 - beta1**t)``, ``bc2_sqrt = sqrt(1 - beta2**t)``; the first
    ``l2_count`` gradients get ``l2 * p`` added."""
    coefs = np.array(
        [1.0 - beta1, beta2, 1.0 - beta2, eps, step_size, 1.0 / bc2_sqrt, 1.0 - lr * wd, wd, l2],
        dtype=p.dtype,
    )
    kernels.adam_update(p, g, m, v, coefs, bool(decoupled), int(l2_count))


def sgd_step(p, g, buf, lr, momentum, dampening, wd, nesterov, first, l2_count=0, l2=0.0):
    """One SGD step on flat arrays of one dtype (``buf``: the momentum buffer, updated in place;
    ``first``: the buffer's first step); the first ``l2_count`` gradients get ``l2 * p`` added."""
    coefs = np.array([lr, momentum, 1.0 - dampening, wd, l2], dtype=p.dtype)
    kernels.sgd_update(p, g, buf, coefs, bool(nesterov), bool(first), int(l2_count))
