"""Inner loops over one contiguous 1-D run.

Each is its own small function because Numba vectorizes a plain ``for i in range(n)`` over a 1-D
slice; the same loop written inline in a ``prange`` body was much slower (``docs/developer.rst``).
Accumulators start at ``0.0``, so float32 data is summed in float64.
"""

from numba import njit

from ._flags import KERNEL


@njit(**KERNEL)
def run_sum(v):
    s = 0.0
    for i in range(v.shape[0]):
        s += v[i]
    return s


@njit(**KERNEL)
def run_centred_sums(v, centre):
    """Sum of (v - centre) ** 2 and of (v - centre): the second pass of the moments, whose second
    sum corrects the mean (``corrected_moments``)."""
    s = 0.0
    s_d = 0.0
    for i in range(v.shape[0]):
        d = v[i] - centre
        s += d * d
        s_d += d
    return s, s_d


@njit(inline="always", **KERNEL)
def corrected_moments(mean, sq, s_d, n):
    """(mean, M2) of n values from a first-pass ``mean`` and the sums of the second pass: the
    corrected two-pass formula, mean + sum(d) / n and sum(d * d) - sum(d) ** 2 / n.

    A rounded sum (float64 data, or a reciprocal in place of the division) leaves the first-pass
    mean a few ulps off; for a constant run every d is then that same small offset, which the
    correction removes exactly, so x - mean is exactly 0 at any magnitude. Non-finite data keeps
    the first-pass values (an infinite mean stays infinite, as in PyTorch)."""
    c = s_d / n
    corrected = mean + c
    if corrected != corrected:
        return mean, sq
    m2 = sq - s_d * c
    if m2 < 0.0:
        m2 = 0.0
    return corrected, m2


@njit(**KERNEL)
def run_grad_sums(dy, x, centre):
    """Sum of dy and of dy * (x - centre): what every normalization backward reduces."""
    s_dy = 0.0
    s_dyx = 0.0
    for i in range(dy.shape[0]):
        g = dy[i] * 1.0
        s_dy += g
        s_dyx += g * (x[i] - centre)
    return s_dy, s_dyx


@njit(**KERNEL)
def run_affine(x, centre, scale, shift, out):
    for i in range(x.shape[0]):
        out[i] = (x[i] - centre) * scale + shift


@njit(**KERNEL)
def run_grad_input(dy, x, centre, alpha, beta, gamma, out):
    for i in range(dy.shape[0]):
        out[i] = alpha * dy[i] + beta * (x[i] - centre) + gamma


# inlined: a serial merge of block partials, one addition per element
@njit(inline="always", **KERNEL)
def run_add(acc, v):
    for i in range(acc.shape[0]):
        acc[i] += v[i]
