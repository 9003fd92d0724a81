"""Inference kernels: linear layers (with bias or eval-mode batch norm, and ReLU) and per-row
norms on activations stored in row blocks, (blocks, features, width), so that rows are the vector
lanes and a block's inputs are contiguous.

Every row goes through the same IEEE operations in the same order, whatever the number of rows,
its place among them and the thread count: a product is accumulated input by input with fused
multiply-adds (``fma``, an explicit LLVM intrinsic: the same rounding in vector and scalar code),
statistics are summed feature by feature, and no fast-math flag lets the compiler reassociate
(``EXACT``). So a row's result never depends on the batch it came in.
"""

import types

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import types as nbtypes
from numba.core.extending import intrinsic

from . import policy
from ._flags import EXACT, _call_held

ROWS = 256  # most rows per block (vector lanes): a block's inputs, (n_in, ROWS), stay in L2
FEW_ROWS = 2  # blocks of at most this many rows take the row-by-row path (``_few8``)
PARALLEL_MIN_MACS = 1 << 21  # multiply-adds below which a parallel region costs more than it saves


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma: vectorizes, and never depends on a contraction flag)."""
    if not (isinstance(a, nbtypes.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)

    return a(a, b, c), codegen


@njit(**EXACT)
def _block4(W, A, C, j0, nr):
    """C[j0:j0+4, :nr] = W[j0:j0+4] @ A[:, :nr] for one block, four inputs per pass (one load of
    C per sixteen products); per element the same chain of fma, input by input, as ``_block1``."""
    K = W.shape[1]
    K4 = K - K % 4
    c0, c1, c2, c3 = C[j0], C[j0 + 1], C[j0 + 2], C[j0 + 3]
    for i in range(nr):
        c0[i] = 0
        c1[i] = 0
        c2[i] = 0
        c3[i] = 0
    for k in range(0, K4, 4):
        w00, w01, w02, w03 = W[j0, k], W[j0, k + 1], W[j0, k + 2], W[j0, k + 3]
        w10, w11, w12, w13 = W[j0 + 1, k], W[j0 + 1, k + 1], W[j0 + 1, k + 2], W[j0 + 1, k + 3]
        w20, w21, w22, w23 = W[j0 + 2, k], W[j0 + 2, k + 1], W[j0 + 2, k + 2], W[j0 + 2, k + 3]
        w30, w31, w32, w33 = W[j0 + 3, k], W[j0 + 3, k + 1], W[j0 + 3, k + 2], W[j0 + 3, k + 3]
        a0, a1, a2, a3 = A[k], A[k + 1], A[k + 2], A[k + 3]
        for i in range(nr):
            x0, x1, x2, x3 = a0[i], a1[i], a2[i], a3[i]
            c0[i] = fma(w03, x3, fma(w02, x2, fma(w01, x1, fma(w00, x0, c0[i]))))
            c1[i] = fma(w13, x3, fma(w12, x2, fma(w11, x1, fma(w10, x0, c1[i]))))
            c2[i] = fma(w23, x3, fma(w22, x2, fma(w21, x1, fma(w20, x0, c2[i]))))
            c3[i] = fma(w33, x3, fma(w32, x2, fma(w31, x1, fma(w30, x0, c3[i]))))
    for k in range(K4, K):
        w0, w1, w2, w3 = W[j0, k], W[j0 + 1, k], W[j0 + 2, k], W[j0 + 3, k]
        a = A[k]
        for i in range(nr):
            c0[i] = fma(w0, a[i], c0[i])
            c1[i] = fma(w1, a[i], c1[i])
            c2[i] = fma(w2, a[i], c2[i])
            c3[i] = fma(w3, a[i], c3[i])


@njit(**EXACT)
def _few8(W, A, C, j0, nr):
    """C[j0:j0+8, :nr] = W[j0:j0+8] @ A[:, :nr] row by row, for blocks of one or two rows:
    eight fma chains in registers (one or two lanes leave ``_block4`` waiting on the latency
    of four); per element the same chain, input by input."""
    K = W.shape[1]
    w0, w1, w2, w3 = W[j0], W[j0 + 1], W[j0 + 2], W[j0 + 3]
    w4, w5, w6, w7 = W[j0 + 4], W[j0 + 5], W[j0 + 6], W[j0 + 7]
    for i in range(nr):
        for j in range(j0, j0 + 8):
            C[j, i] = 0
        s0, s1, s2, s3 = C[j0, i], C[j0 + 1, i], C[j0 + 2, i], C[j0 + 3, i]
        s4, s5, s6, s7 = C[j0 + 4, i], C[j0 + 5, i], C[j0 + 6, i], C[j0 + 7, i]
        for k in range(K):
            x = A[k, i]
            s0 = fma(w0[k], x, s0)
            s1 = fma(w1[k], x, s1)
            s2 = fma(w2[k], x, s2)
            s3 = fma(w3[k], x, s3)
            s4 = fma(w4[k], x, s4)
            s5 = fma(w5[k], x, s5)
            s6 = fma(w6[k], x, s6)
            s7 = fma(w7[k], x, s7)
        C[j0, i], C[j0 + 1, i], C[j0 + 2, i], C[j0 + 3, i] = s0, s1, s2, s3
        C[j0 + 4, i], C[j0 + 5, i], C[j0 + 6, i], C[j0 + 7, i] = s4, s5, s6, s7


@njit(**EXACT)
def _block1(W, A, C, j, nr):
    """C[j, :nr] = W[j] @ A[:, :nr]."""
    c = C[j]
    for i in range(nr):
        c[i] = 0
    for k in range(W.shape[1]):
        w = W[j, k]
        a = A[k]
        for i in range(nr):
            c[i] = fma(w, a[i], c[i])


@njit(**EXACT)
def _epilogue(C, j0, j1, nr, bias, mean, scale, shift, relu):
    """Bias (in C's dtype, as ``Linear``), then batch norm ``(c - mean) * scale + shift`` in
    float64 rounded once, then ReLU (NaN stays NaN), on C[j0:j1, :nr] of one block."""
    for j in range(j0, j1):
        c = C[j]
        if bias.shape[0]:
            b = bias[j]
            for i in range(nr):
                c[i] = c[i] + b
        if mean.shape[0]:
            m, s, t = mean[j], scale[j], shift[j]
            for i in range(nr):
                c[i] = (np.float64(c[i]) - m) * s + t
        if relu:
            for i in range(nr):
                if c[i] < 0:
                    c[i] = 0


def linear_t(W, At, rows, bias, mean, scale, shift, relu, C):
    """C (blocks, n_out, R) = epilogue(W (n_out, n_in) @ At (blocks, n_in, R)) for the first
    ``rows`` rows; tasks of one block by eight output features, each done by one thread."""
    n_out = W.shape[0]
    R = At.shape[2]
    f_blocks = (n_out + 7) // 8
    r_blocks = (rows + R - 1) // R
    for t in prange(r_blocks * f_blocks):
        rb = t // f_blocks
        j0 = (t - rb * f_blocks) * 8
        j1 = min(n_out, j0 + 8)
        nr = min(R, rows - rb * R)
        A, Cb = At[rb], C[rb]
        if nr <= FEW_ROWS and j1 - j0 == 8:
            _few8(W, A, Cb, j0, nr)
        else:
            j = j0
            while j + 4 <= j1:
                _block4(W, A, Cb, j, nr)
                j += 4
            for jj in range(j, j1):
                _block1(W, A, Cb, jj, nr)
        _epilogue(Cb, j0, j1, nr, bias, mean, scale, shift, relu)


def transpose_into(X, a, rows, At):
    """At[rb, :, i] = X[a + rb * R + i] (cast to At's dtype) for ``rows`` rows from row ``a``;
    returns the number of those rows holding a NaN or an infinity. Tiles of 16 rows, so that
    each input writes one cache line of At (one element per line of a block's 1 KB-strided rows
    runs into the cache's set conflicts)."""
    n_in, R = At.shape[1], At.shape[2]
    big = np.finfo(X.dtype).max
    r_blocks = (rows + R - 1) // R
    bad = 0
    for rb in prange(r_blocks):
        A = At[rb]
        base = a + rb * R
        nr = min(R, rows - rb * R)
        for i0 in range(0, nr, 16):
            i1 = min(nr, i0 + 16)
            for i in range(i0, i1):
                x = X[base + i]
                finite = True
                for k in range(n_in):
                    finite &= abs(x[k]) <= big
                bad += not finite
            for k in range(n_in):
                Ak = A[k]
                for i in range(i0, i1):
                    Ak[i] = X[base + i, k]
    return bad


def transpose_from(C, rows, out):
    """out[rb * R + i] = C[rb, :, i] for the first ``rows`` rows."""
    n_out, R = C.shape[1], C.shape[2]
    r_blocks = (rows + R - 1) // R
    for rb in prange(r_blocks):
        nr = min(R, rows - rb * R)
        for i in range(nr):
            for j in range(n_out):
                out[rb * R + i, j] = C[rb, j, i]


def rows_norm_t(At, rows, groups, subtract_mean, weight, bias, eps):
    """Layer / RMS / group norm of each row, in place on At (blocks, features, width): each of
    ``groups`` consecutive feature groups normalized by its mean (when ``subtract_mean``) and
    mean square, both summed in float64 feature by feature, then ``* weight + bias`` (float64)."""
    n_feat, R = At.shape[1], At.shape[2]
    size = n_feat // groups
    r_blocks = (rows + R - 1) // R
    for rb in prange(r_blocks):
        nr = min(R, rows - rb * R)
        A = At[rb]
        mean = np.zeros(R)
        rstd = np.zeros(R)
        for g in range(groups):
            f0 = g * size
            mean[:] = 0
            rstd[:] = 0
            if subtract_mean:
                for f in range(f0, f0 + size):
                    for i in range(nr):
                        mean[i] += A[f, i]
                for i in range(nr):
                    mean[i] /= size
            for f in range(f0, f0 + size):
                for i in range(nr):
                    d = np.float64(A[f, i]) - mean[i]
                    rstd[i] += d * d
            for i in range(nr):
                rstd[i] = 1.0 / np.sqrt(rstd[i] / size + eps)
            for f in range(f0, f0 + size):
                w, b = weight[f], bias[f]
                for i in range(nr):
                    A[f, i] = (np.float64(A[f, i]) - mean[i]) * rstd[i] * w + b


class _Twin:
    """A kernel compiled parallel and serial with the EXACT flags (no fast-math): blocks are the
    same in both, so the choice never changes a result."""

    def __init__(self, py_func):
        self.parallel = njit(**EXACT, parallel=True)(py_func)
        serial = types.FunctionType(
            py_func.__code__, py_func.__globals__, py_func.__name__ + "_serial"
        )
        serial.__qualname__ = py_func.__qualname__ + "_serial"  # its own cache file
        serial.__module__ = py_func.__module__
        self.serial = njit(**EXACT)(serial)
        self.__doc__ = py_func.__doc__

    def __call__(self, work, *args):
        """Threaded when ``work`` (multiply-adds or element operations) is worth a parallel
        region and the policy allows it."""
        if work >= PARALLEL_MIN_MACS and policy.use_threads(work):
            with policy.parallel_guard():
                return _call_held(self.parallel, args)
        return _call_held(self.serial, args)


linear_t = _Twin(linear_t)
transpose_into = _Twin(transpose_into)
transpose_from = _Twin(transpose_from)
rows_norm_t = _Twin(rows_norm_t)


@njit(**EXACT)
def rows_softmax(z, log, out):
    """Softmax (``log``: log-softmax) of each row of ``z`` into the float64 ``out``: the max
    subtracted, the exponentials summed in column order, row by row."""
    rows, cols = z.shape
    for i in range(rows):
        m = -np.inf
        for j in range(cols):
            v = np.float64(z[i, j])
            if v > m:
                m = v
        s = 0.0
        for j in range(cols):
            e = np.exp(np.float64(z[i, j]) - m)
            out[i, j] = e
            s += e
        if log:
            ls = np.log(s)
            for j in range(cols):
                out[i, j] = (np.float64(z[i, j]) - m) - ls
        else:
            for j in range(cols):
                out[i, j] /= s
