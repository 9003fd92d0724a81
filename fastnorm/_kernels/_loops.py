"""Inner loops over one contiguous 1-D run.

Each is its own small function because Numba vectorizes a plain ``for i in range(n)`` over a 1-D
slice; the same loop written inline in a ``prange`` body ran 6x slower here (DESIGN.md).
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
def run_centred_sumsq(v, centre):
    s = 0.0
    for i in range(v.shape[0]):
        d = v[i] - centre
        s += d * d
    return s


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
def run_add_sq_dev(acc, v, centre):
    for i in range(acc.shape[0]):
        d = v[i] - centre[i]
        acc[i] += d * d


@njit(**KERNEL)
def run_add_grad_sums(acc_dy, acc_dyx, dy, x, centre):
    for i in range(acc_dy.shape[0]):
        g = dy[i] * 1.0
        acc_dy[i] += g
        acc_dyx[i] += g * (x[i] - centre[i])


@njit(**KERNEL)
def run_column_affine(x, centre, scale, shift, out):
    for i in range(x.shape[0]):
        out[i] = (x[i] - centre[i]) * scale[i] + shift[i]


@njit(**KERNEL)
def run_column_grad_input(dy, x, centre, alpha, beta, gamma, out):
    for i in range(dy.shape[0]):
        out[i] = alpha[i] * dy[i] + beta[i] * (x[i] - centre[i]) + gamma[i]



@njit(**KERNEL)
def run_add_scaled(acc, v, scale):
    for i in range(acc.shape[0]):
        acc[i] += v[i] * scale


@njit(**KERNEL)
def run_add_block_m2(acc, m2_block, mean_block, mean, n_block):
    """Law of total variance: a block adds its own M2 plus n * (its mean - grand mean)^2."""
    for i in range(acc.shape[0]):
        d = mean_block[i] - mean[i]
        acc[i] += m2_block[i] + n_block * d * d
