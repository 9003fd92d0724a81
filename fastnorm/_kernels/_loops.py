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
def run_add_scaled(acc, v, scale):
    for i in range(acc.shape[0]):
        acc[i] += v[i] * scale


@njit(**KERNEL)
def run_add_block_m2(acc, m2_block, mean_block, mean, n_block):
    """Law of total variance: a block adds its own M2 plus n * (its mean - grand mean)^2."""
    for i in range(acc.shape[0]):
        d = mean_block[i] - mean[i]
        acc[i] += m2_block[i] + n_block * d * d


# Four rows per pass over the accumulator: a quarter of its loads and stores. Each value is widened
# to float64 (``* 1.0``) before any addition.
@njit(**KERNEL)
def run_add4(acc, a, b, c, d):
    for i in range(acc.shape[0]):
        acc[i] += (a[i] * 1.0 + b[i]) + (c[i] * 1.0 + d[i])


@njit(**KERNEL)
def run_add_sq_dev4(acc, a, b, c, d, centre):
    for i in range(acc.shape[0]):
        m = centre[i]
        da = a[i] - m
        db = b[i] - m
        dc = c[i] - m
        dd = d[i] - m
        acc[i] += (da * da + db * db) + (dc * dc + dd * dd)


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
