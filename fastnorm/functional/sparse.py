"""Per-column statistics and scaling of scipy CSR and CSC matrices, without densifying: the door
through which the transformers reach ``fastnorm._kernels.sparse`` (sparse input is centred by no
one, as in scikit-learn: with_mean=False)."""

import numpy as np

from .._kernels import schedule, sparse

_FORMATS = ("csr", "csc")


def _check_sparse(X):
    fmt = getattr(X, "format", None)
    if fmt not in _FORMATS:
        raise TypeError(f"expected a scipy.sparse CSR or CSC matrix, got {type(X).__name__}")
    if X.dtype not in (np.float32, np.float64):
        raise TypeError(f"sparse data must be float32 or float64, got {X.dtype}")
    return fmt


def sparse_column_moments(X, sample_weight=None):
    """Per-column ``(sum of weights, mean, M2)`` of a scipy CSR or CSC matrix (or array) of
    float32/float64 values, over all its rows: implicit zeros count as values 0.

    The same contract as :func:`column_moments`: stored NaN values are skipped (their row's weight
    does not count for that column); ``sample_weight`` is None or n_rows non-negative weights.
    Accumulated in float64, bitwise independent of the thread count; the mean is NaN where a
    column has no weight. Raises ``ValueError`` when an infinite value (or an overflowing sum) is
    stored. A matrix with duplicate entries or unsorted indices is summed on a copy first.

    Parameters
    ----------
    X : scipy.sparse CSR or CSC matrix (or array) of shape (n_rows, n_cols), float32 or float64
    sample_weight : array-like of shape (n_rows,), optional

    Returns
    -------
    sum_weights, mean, m2 : ndarray of shape (n_cols,), float64

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from fastnorm.functional import sparse_column_moments
    >>> X = sp.csr_matrix(np.array([[0.0, 2.0], [4.0, 0.0]]))
    >>> sparse_column_moments(X)  # implicit zeros count
    (array([2., 2.]), array([2., 1.]), array([8., 2.]))
    """
    fmt = _check_sparse(X)
    n_rows, n_cols = X.shape
    if sample_weight is not None:
        sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != (n_rows,):
            raise ValueError(f"sample_weight has shape {sample_weight.shape}, expected ({n_rows},)")
    if not X.has_canonical_format:
        X = X.copy()  # never modify the caller's matrix
        X.sum_duplicates()
    data, indices, indptr = X.data, X.indices, X.indptr
    if fmt == "csr":
        row_block = schedule.sparse_row_block(n_rows, n_cols)
        result = sparse.csr_column_moments(data, indices, indptr, n_cols, sample_weight, row_block)
    else:
        result = sparse.csc_column_moments(data, indices, indptr, n_rows, sample_weight)
    weight_sum, mean, m2, nonfinite = result
    if nonfinite:
        raise ValueError(
            f"Input X contains infinity or a value too large for {X.dtype!r} "
            "(NaN marks a missing value; infinities are rejected)."
        )
    # CSR results are views into the block partials: copies, so that those can be freed
    return np.array(weight_sum), np.array(mean), np.array(m2)


def sparse_scale_columns(X, factor, out_data):
    """Write ``X.data * factor[column of each entry]`` into ``out_data``, cast to its dtype.

    ``factor`` holds one float64 value per column; ``out_data`` is a writeable 1-D array of the
    dtype and length of ``X.data`` (``X.data`` itself scales in place). NaN stays NaN. Duplicate
    entries are scaled each on its own, so the result is the scaled matrix either way.

    Parameters
    ----------
    X : scipy.sparse CSR or CSC matrix (or array), float32 or float64
    factor : array-like of shape (n_cols,)
    out_data : ndarray like ``X.data``

    Returns
    -------
    ndarray
        ``out_data``.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from fastnorm.functional import sparse_scale_columns
    >>> X = sp.csr_matrix(np.array([[0.0, 2.0], [4.0, 0.0]]))
    >>> sparse_scale_columns(X, np.array([0.5, 10.0]), X.data)  # in place
    array([20.,  2.])
    >>> X.toarray()
    array([[ 0., 20.],
           [ 2.,  0.]])
    """
    fmt = _check_sparse(X)
    factor = np.ascontiguousarray(factor, dtype=np.float64)
    if factor.shape != (X.shape[1],):
        raise ValueError(f"factor has shape {factor.shape}, expected ({X.shape[1]},)")
    if out_data.dtype != X.data.dtype or out_data.shape != X.data.shape:
        raise ValueError(
            f"out_data must have the dtype and shape of X.data ({X.data.dtype}, "
            f"{X.data.shape}), got {out_data.dtype}, {out_data.shape}"
        )
    if fmt == "csr":
        sparse.csr_scale_columns(X.data, X.indices, factor, out_data)
    else:
        sparse.csc_scale_columns(X.data, X.indptr, factor, out_data)
    return out_data
