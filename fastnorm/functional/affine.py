"""Per-column affine map of 2-D data, the transform step of the scikit-learn transformers."""

import numpy as np

from .._kernels import elementwise


def columns_affine(x, centre, scale, shift, out):
    """``out = (x - centre) * scale + shift`` per column of the C-contiguous (n, f) array ``x``;
    ``out`` (same shape and dtype, C-contiguous) may be ``x`` itself.

    Parameters
    ----------
    x : ndarray of shape (n, f), float32 or float64, C-contiguous
    centre, scale, shift : array-like of shape (f,)
        Computed in float64.
    out : ndarray of shape (n, f)
        Receives the result (``x`` itself for an in-place transform).

    Returns
    -------
    ndarray
        ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import columns_affine
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> columns_affine(x, [2.0, 20.0], [1.0, 0.1], [0.0, 5.0], np.empty_like(x))
    array([[-1.,  4.],
           [ 1.,  6.]])
    """
    n, f = x.shape
    params = [
        np.ascontiguousarray(p, dtype=np.float64).reshape(1, f) for p in (centre, scale, shift)
    ]
    elementwise.columns_affine(x.reshape(1, n, f), *params, out.reshape(1, n, f))
    return out
