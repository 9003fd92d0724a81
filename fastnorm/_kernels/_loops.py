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


@njit(**KERNEL)
def run_add(acc, v):
    for i in range(acc.shape[0]):
        acc[i] += v[i]


@njit(**KERNEL)
def run_add_grad_sums(acc_dy, acc_dyx, dy, x, centre):
    for i in range(acc_dy.shape[0]):
        g = dy[i] * 1.0
        acc_dy[i] += g
        acc_dyx[i] += g * (x[i] - centre[i])


# Four rows per pass over the accumulators: a quarter of their loads and stores. Each value is
# widened to float64 (``* 1.0``) before any addition.
@njit(**KERNEL)
def run_add_grad_sums4(acc_dy, acc_dyx, dy0, dy1, dy2, dy3, x0, x1, x2, x3, centre):
    for i in range(acc_dy.shape[0]):
        m = centre[i]
        g0 = dy0[i] * 1.0
        g1 = dy1[i] * 1.0
        g2 = dy2[i] * 1.0
        g3 = dy3[i] * 1.0
        acc_dy[i] += (g0 + g1) + (g2 + g3)
        acc_dyx[i] += (g0 * (x0[i] - m) + g1 * (x1[i] - m)) + (g2 * (x2[i] - m) + g3 * (x3[i] - m))
