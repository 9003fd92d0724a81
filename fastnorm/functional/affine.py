"""Per-column affine map of 2-D data, the transform step of the scikit-learn transformers."""

import numpy as np

from .._kernels import elementwise


def columns_affine(x, centre, scale, shift, out):
    """``out = (x - centre) * scale + shift`` per column of the C-contiguous (n, f) array ``x``;
    ``out`` (same shape and dtype, C-contiguous) may be ``x`` itself."""
    n, f = x.shape
    params = [
        np.ascontiguousarray(p, dtype=np.float64).reshape(1, f) for p in (centre, scale, shift)
    ]
    elementwise.columns_affine(x.reshape(1, n, f), *params, out.reshape(1, n, f))
    return out
