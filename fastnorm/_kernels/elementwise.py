"""Element-wise passes: the affine normalization and the input gradient, in float64 per element.

Row kernels take one (centre, scale, shift) per row of a (rows, length) array; column kernels
take one per (p, b) of a (P, A, B) array. Work is cut into fixed tasks; no reduction, so any order
is exact.
"""

from numba import njit, prange

from ._flags import EXACT, KERNEL, parallel_kernel
from ._loops import run_affine, run_grad_input
from .schedule import row_task, rows_per_task


@parallel_kernel
def rows_affine(x, centre, scale, shift, chunk, out):
    """out[r] = (x[r] - centre[r]) * scale[r] + shift[r]."""
    rows, length = x.shape
    per_row = (length + chunk - 1) // chunk
    for t in prange(rows * per_row):
        r, lo, hi = row_task(t, per_row, chunk, length)
        run_affine(x[r, lo:hi], centre[r], scale[r], shift[r], out[r, lo:hi])


@parallel_kernel
def rows_grad_input(dy, x, centre, alpha, beta, gamma, chunk, out):
    """out[r] = alpha[r] * dy[r] + beta[r] * (x[r] - centre[r]) + gamma[r]."""
    rows, length = x.shape
    per_row = (length + chunk - 1) // chunk
    for t in prange(rows * per_row):
        r, lo, hi = row_task(t, per_row, chunk, length)
        run_grad_input(
            dy[r, lo:hi], x[r, lo:hi], centre[r], alpha[r], beta[r], gamma[r], out[r, lo:hi]
        )


@njit(**KERNEL)
def block_column_affine(x, p, r0, r1, centre, scale, shift, out):
    """Rows r0:r1 of ``columns_affine``. Plain indexing, no per-row slices: a sliced 1-D loop
    per row is much slower on narrow rows (figures: ``docs/developer.rst``)."""
    for a in range(r0, r1):
        for b in range(x.shape[2]):
            out[p, a, b] = (x[p, a, b] - centre[p, b]) * scale[p, b] + shift[p, b]


# without fast-math: NumPy's maximum keeps a NaN (its sign too) and turns -0.0 into +0.0, which
# "nnan"/"nsz" would not guarantee
@njit(**EXACT)
def block_relu(out, r0, r1):
    """Rows r0:r1 of (1, A, B) ``out`` through ReLU in place, as ``np.maximum(out, 0)``."""
    for a in range(r0, r1):
        for b in range(out.shape[2]):
            v = out[0, a, b]
            out[0, a, b] = v if (v > 0.0 or v != v) else 0.0


@njit(**EXACT)
def block_relu_mask(dy, y, r0, r1, out):
    """Rows r0:r1 of (1, A, B): ``dy * (y > 0)``, the gradient through a ReLU whose output is
    ``y``, with NumPy's products (a NaN or infinite dy times 0 is NaN; a negative one, -0)."""
    for a in range(r0, r1):
        for b in range(dy.shape[2]):
            out[0, a, b] = dy[0, a, b] * (1.0 if y[0, a, b] > 0.0 else 0.0)


@njit(**KERNEL)
def block_column_grad_input(dy, x, p, r0, r1, centre, alpha, beta, gamma, out):
    """Rows r0:r1 of ``columns_grad_input``."""
    for a in range(r0, r1):
        for b in range(x.shape[2]):
            out[p, a, b] = (
                alpha[p, b] * dy[p, a, b] + beta[p, b] * (x[p, a, b] - centre[p, b]) + gamma[p, b]
            )


@njit(**KERNEL)
def block_column_grad_input_weighted(dy, x, w, r0, r1, centre, alpha, beta, gamma, out):
    """Rows r0:r1 of (1, A, B) data: alpha * dy + w[a] * (beta * (x - centre) + gamma), the
    weighted batch-norm input gradient (centre, alpha, beta, gamma of shape (B,))."""
    for a in range(r0, r1):
        wa = w[a]
        for b in range(x.shape[2]):
            out[0, a, b] = alpha[b] * dy[0, a, b] + wa * (
                beta[b] * (x[0, a, b] - centre[0, b]) + gamma[b]
            )


@parallel_kernel
def columns_affine(x, centre, scale, shift, out):
    """out[p, a, b] = (x[p, a, b] - centre[p, b]) * scale[p, b] + shift[p, b]."""
    P, A, B = x.shape
    rows = rows_per_task(B)
    n_tasks = (A + rows - 1) // rows
    for t in prange(P * n_tasks):
        p = t // n_tasks
        r0 = (t % n_tasks) * rows
        block_column_affine(x, p, r0, min(A, r0 + rows), centre, scale, shift, out)


@parallel_kernel
def columns_grad_input(dy, x, centre, alpha, beta, gamma, out):
    """out[p, a, b] = alpha[p, b] * dy + beta[p, b] * (x - centre[p, b]) + gamma[p, b]."""
    P, A, B = x.shape
    rows = rows_per_task(B)
    n_tasks = (A + rows - 1) // rows
    for t in prange(P * n_tasks):
        p = t // n_tasks
        r0 = (t % n_tasks) * rows
        block_column_grad_input(dy, x, p, r0, min(A, r0 + rows), centre, alpha, beta, gamma, out)


@parallel_kernel
def runs_affine(x, centre, scale, shift, out):
    """out[n, c, k] = (x[n, c, k] - centre[n, c]) * scale[n, c] + shift[n, c] over (N, C, D)
    runs: per-(sample, channel) parameters without a copy of them per position."""
    N, C, D = x.shape
    for n in prange(N):
        for c in range(C):
            m, s, sh = centre[n, c], scale[n, c], shift[n, c]
            for k in range(D):
                out[n, c, k] = (x[n, c, k] - m) * s + sh


@parallel_kernel
def runs_grad_input(dy, x, centre, alpha, beta, gamma, out):
    """out[n, c, k] = alpha[n, c] * dy + beta[n, c] * (x - centre[n, c]) + gamma[n, c] over
    (N, C, D) runs."""
    N, C, D = x.shape
    for n in prange(N):
        for c in range(C):
            m, a, b, g = centre[n, c], alpha[n, c], beta[n, c], gamma[n, c]
            for k in range(D):
                out[n, c, k] = a * dy[n, c, k] + b * (x[n, c, k] - m) + g
