"""Optimizer updates (PyTorch's formulas), in place, over contiguous 1-D parameter arrays.

Serial on purpose: the update runs between BLAS calls, and a parallel region there waits on
BLAS's spinning threads (figures: ``docs/developer.rst``)."""

import math

from numba import njit

from ._flags import KERNEL


@njit(**KERNEL)
def adam_update(p, g, m, v, lr, beta1, beta2, eps, step_size, bc2_sqrt, wd, decoupled):
    """Adam (``decoupled=False``, L2 penalty in the gradient) or AdamW step on flat arrays."""
    one_m_b1 = 1.0 - beta1
    one_m_b2 = 1.0 - beta2
    inv_bc2 = 1.0 / bc2_sqrt
    shrink = 1.0 - lr * wd
    for i in range(p.shape[0]):
        gi = g[i]
        if decoupled:
            p[i] = p[i] * shrink
        elif wd != 0.0:
            gi = gi + wd * p[i]
        mi = m[i] + one_m_b1 * (gi - m[i])
        vi = beta2 * v[i] + one_m_b2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - step_size * mi / (math.sqrt(vi) * inv_bc2 + eps)


@njit(**KERNEL)
def sgd_update(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    """SGD step with optional momentum, dampening, Nesterov and L2 weight decay."""
    for i in range(p.shape[0]):
        gi = g[i]
        if wd != 0.0:
            gi = gi + wd * p[i]
        if momentum != 0.0:
            if first:
                b = gi
            else:
                b = momentum * buf[i] + (1.0 - dampening) * gi
            buf[i] = b
            if nesterov:
                gi = gi + momentum * b
            else:
                gi = b
        p[i] = p[i] - lr * gi
