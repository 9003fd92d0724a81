"""Inference building blocks of the MLP estimators (the door to their kernels): linear layers
and per-row norms on activations stored in row blocks, (blocks, features, width), and a row-wise
softmax.

A row's result never depends on the other rows, their number or the thread count (see
``fastnorm._kernels.inference``). Arrays must be C-contiguous and of one float dtype; nothing is
checked here beyond what the callers guarantee.
"""

import numpy as np

from .._kernels import inference as _k
from .._kernels.inference import ROWS
from .._kernels.policy import parallel_guard

__all__ = [
    "ROWS",
    "block_buffer",
    "block_width",
    "from_blocks",
    "linear_blocks",
    "num_threads",
    "rows_norm_blocks",
    "rows_softmax",
    "to_blocks",
]

_NONE = np.zeros(0)


def num_threads():
    """Numba's thread count in this Python thread (its pool started by the threading policy)."""
    import numba

    with parallel_guard():
        return numba.get_num_threads()


def block_width(rows):
    """Lanes per block for ``rows`` rows: ROWS, or fewer rows rounded up to 16."""
    return min(ROWS, -(-rows // 16) * 16)


def block_buffer(rows, features, dtype, width=None):
    """A zeroed (blocks, features, width) array for ``rows`` rows (padding lanes stay finite);
    ``width`` defaults to :func:`block_width`. A row's result does not depend on the width."""
    width = block_width(rows) if width is None else width
    return np.zeros((-(-rows // width), features, width), dtype)


def to_blocks(X, start, rows, out):
    """Rows ``start:start + rows`` of the C-contiguous 2-D ``X`` into the block array ``out``
    (cast to its dtype); returns the number of those rows that hold a NaN or an infinity."""
    return int(_k.transpose_into(rows * X.shape[1], X, int(start), int(rows), out))


def from_blocks(C, rows, out):
    """The first ``rows`` rows of the block array ``C`` into the 2-D ``out``; returns ``out``."""
    _k.transpose_from(rows * C.shape[1], C, int(rows), out)
    return out


def linear_blocks(W, At, rows, out, bias=None, batch_norm=None, relu=False):
    """``out = W @ At`` per row (W: (n_out, n_in), At and out block arrays), then ``+ bias`` (in
    out's dtype), then eval-mode batch norm ``batch_norm = (running_mean, running_var, weight,
    bias, eps)`` computed in float64 and rounded once, then ReLU; returns ``out``."""
    n_out, n_in = W.shape
    bias = np.zeros(0, out.dtype) if bias is None else bias
    mean = scale = shift = _NONE
    if batch_norm is not None:
        mean, var, weight, beta, eps = batch_norm
        mean = np.asarray(mean, np.float64)
        scale = 1.0 / np.sqrt(np.asarray(var, np.float64) + float(eps))
        if weight is not None:
            scale = scale * weight
        shift = np.zeros(n_out) if beta is None else np.asarray(beta, np.float64)
    work = n_out * n_in * rows
    _k.linear_t(work, W, At, int(rows), bias, mean, scale, shift, bool(relu), out)
    return out


def rows_norm_blocks(At, rows, groups=1, subtract_mean=True, weight=None, bias=None, eps=1e-5):
    """Layer norm (``groups=1``), group norm or, without ``subtract_mean``, RMS norm of each row
    of the block array At, in place, in float64 per element; returns ``At``."""
    n = At.shape[1]
    weight = np.ones(n) if weight is None else np.asarray(weight, np.float64)
    bias = np.zeros(n) if bias is None else np.asarray(bias, np.float64)
    work = 3 * n * rows
    _k.rows_norm_t(work, At, int(rows), int(groups), bool(subtract_mean), weight, bias, float(eps))
    return At


def rows_softmax(z, log=False):
    """Softmax (``log=True``: log-softmax) of each row of the 2-D float array ``z``, as a new
    float64 array, each row computed on its own in column order."""
    out = np.empty(z.shape, np.float64)
    _k.rows_softmax(np.ascontiguousarray(z), bool(log), out)
    return out
