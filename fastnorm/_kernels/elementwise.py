"""Element-wise passes: the affine normalization and the input gradient, in float64 per element.

Row kernels take one (centre, scale, shift) per row of a (rows, length) array; column kernels take
one per (p, b) of a (P, A, B) array. Work is cut into fixed tasks; no reduction, so any order is exact.
"""

from numba import prange

from ._flags import parallel_kernel
from ._loops import run_affine, run_column_affine, run_column_grad_input, run_grad_input
from .schedule import row_task


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


@parallel_kernel
def columns_affine(x, centre, scale, shift, out):
    """out[p, a, b] = (x[p, a, b] - centre[p, b]) * scale[p, b] + shift[p, b]."""
    P, A, B = x.shape
    for t in prange(P * A):
        p = t // A
        a = t % A
        run_column_affine(x[p, a], centre[p], scale[p], shift[p], out[p, a])


@parallel_kernel
def columns_grad_input(dy, x, centre, alpha, beta, gamma, out):
    """out[p, a, b] = alpha[p, b] * dy + beta[p, b] * (x - centre[p, b]) + gamma[p, b]."""
    P, A, B = x.shape
    for t in prange(P * A):
        p = t // A
        a = t % A
        run_column_grad_input(dy[p, a], x[p, a], centre[p], alpha[p], beta[p], gamma[p], out[p, a])
