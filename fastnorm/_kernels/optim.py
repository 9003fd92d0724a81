"""Optimizer updates (PyTorch's formulas), in place, over contiguous 1-D parameter arrays.

The real coefficients arrive as one small array of the parameters' dtype (``coefs``: a dozen
scalar arguments cost the call more than a microsecond to type) and no literal is a float64, so
float32 parameters are updated in float32 arithmetic, as PyTorch does (a float64 square root and
division per element took most of the step). ``l2_count`` leading elements get ``l2 * p`` added
to their gradient: the estimators' penalty on the weights, which lie first in their flat buffer.

Serial on purpose: the update runs between BLAS calls, and a parallel region there waits on
BLAS's spinning threads (figures: ``docs/developer.rst``)."""

import math

from numba import njit

from ._flags import KERNEL


@njit(**KERNEL)
def adam_update(p, g, m, v, coefs, decoupled, l2_count):
    """Adam (``decoupled=False``, L2 penalty in the gradient) or AdamW step on flat arrays;
    ``coefs``: (1 - beta1, beta2, 1 - beta2, eps, step size, 1 / sqrt(bias correction 2),
    shrink, weight decay, l2)."""
    one_m_b1, beta2, one_m_b2, eps = coefs[0], coefs[1], coefs[2], coefs[3]
    step_size, inv_bc2, shrink, wd, l2 = coefs[4], coefs[5], coefs[6], coefs[7], coefs[8]
    for i in range(p.shape[0]):
        gi = g[i]
        pi = p[i]
        if i < l2_count:
            gi = gi + l2 * pi
        if decoupled:
            pi = pi * shrink
        elif wd != 0:
            gi = gi + wd * pi
        mi = m[i] + one_m_b1 * (gi - m[i])
        vi = beta2 * v[i] + one_m_b2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = pi - step_size * mi / (math.sqrt(vi) * inv_bc2 + eps)


@njit(**KERNEL)
def sgd_update(p, g, buf, coefs, nesterov, first, l2_count):
    """SGD step with optional momentum, dampening, Nesterov and L2 weight decay; ``coefs``:
    (lr, momentum, 1 - dampening, weight decay, l2)."""
    lr, momentum, one_m_dampening, wd, l2 = coefs[0], coefs[1], coefs[2], coefs[3], coefs[4]
    for i in range(p.shape[0]):
        gi = g[i]
        if i < l2_count:
            gi = gi + l2 * p[i]
        if wd != 0:
            gi = gi + wd * p[i]
        if momentum != 0:
            if first:
                b = gi
            else:
                b = momentum * buf[i] + one_m_dampening * gi
            buf[i] = b
            if nesterov:
                gi = gi + momentum * b
            else:
                gi = b
        p[i] = p[i] - lr * gi
