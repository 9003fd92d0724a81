"""Sparse column moments and column scaling against a slow, obvious float64 NumPy reference on the
densified matrix (NaN-skipping weighted mean and M2, the mean refined once as in reference.py)."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from fastnorm._kernels import sparse as sparse_kernels
from fastnorm._kernels.policy import ONE_THREAD_MIN_ELEMENTS
from fastnorm._kernels.schedule import SPARSE_PARTIALS, sparse_row_block
from fastnorm.functional import sparse_column_moments, sparse_scale_columns


def reference_moments(X, sample_weight=None):
    """(sum_w, mean, m2) per column of the densified X over all rows, NaN skipped."""
    D = X.toarray().astype(np.float64)
    w = np.ones(D.shape[0]) if sample_weight is None else np.asarray(sample_weight, np.float64)
    valid = ~np.isnan(D)
    W = np.where(valid, w[:, None], 0.0)
    Z = np.where(valid, D, 0.0)
    sum_w = W.sum(axis=0)
    has = sum_w > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (W * Z).sum(axis=0) / sum_w
        mean = np.where(has, mean + (W * (Z - mean)).sum(axis=0) / sum_w, np.nan)
    m2 = np.where(has, (W * (Z - np.where(has, mean, 0.0)) ** 2).sum(axis=0), 0.0)
    return sum_w, mean, m2


def make_matrix(rng, n, m, fmt, dtype=np.float64, index_dtype=np.int32, density=0.2, nan=0.05):
    """A random sparse matrix with NaN entries, an empty column, an all-NaN column, an empty row
    and a column stored on every row."""
    D = rng.standard_normal((n, m)) * 3.0 + 1.0
    D[rng.random((n, m)) > density] = 0.0
    D[rng.random((n, m)) < nan] = np.nan
    if m >= 4:
        D[:, 0] = 0.0  # empty column
        D[:, 1] = np.where(rng.random(n) < 0.5, np.nan, 0.0)  # NaN or implicit zero
        D[:, 2] = rng.uniform(1.0, 2.0, n)  # stored on every row
    if n >= 3:
        D[n // 2] = 0.0  # empty row
    X = (sp.csr_array if fmt == "csr" else sp.csc_array)(D.astype(dtype))
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    return X


def weights(rng, n, kind):
    if kind is None:
        return None
    w = rng.uniform(0.0, 3.0, n)
    if kind == "zeros":
        w[rng.random(n) < 0.3] = 0.0
    return w


def assert_moments_close(got, expected, rtol=1e-12):
    sum_w, mean, m2 = got
    assert all(a.dtype == np.float64 and a.shape == expected[0].shape for a in got)
    np.testing.assert_allclose(sum_w, expected[0], rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(mean, expected[1], rtol=rtol, atol=1e-13)  # NaN where NaN
    np.testing.assert_allclose(m2, expected[2], rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("kind", [None, "uniform", "zeros"])
def test_moments_match_reference(rng, fmt, dtype, index_dtype, kind):
    X = make_matrix(rng, 300, 40, fmt, dtype, index_dtype)
    w = weights(rng, 300, kind)
    got = sparse_column_moments(X, w)
    assert_moments_close(got, reference_moments(X, w))
    assert got[0][0] == (300.0 if w is None else got[0][0])  # the empty column counts every row
    assert got[1][0] == 0.0 and got[2][0] == 0.0


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("kind", [None, "zeros"])
def test_several_row_blocks(rng, fmt, kind):
    n = 2 * sparse_row_block(20_000, 30) + 123  # three CSR blocks, merged in order
    X = make_matrix(rng, n, 30, fmt, np.float32, density=0.05)
    w = weights(rng, n, kind)
    assert_moments_close(sparse_column_moments(X, w), reference_moments(X, w))


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("shape", [(1, 7), (0, 5), (6, 0), (3, 50_000)])
def test_degenerate_shapes(rng, fmt, shape):
    X = make_matrix(rng, *shape, fmt, density=0.5, nan=0.1)
    assert_moments_close(sparse_column_moments(X), reference_moments(X))
    w = rng.uniform(0.5, 1.0, shape[0])
    assert_moments_close(sparse_column_moments(X, w), reference_moments(X, w))


def test_row_blocks_depend_on_shape_and_bound_memory():
    assert sparse_row_block(1_000_000, 1000) == 8192
    for n_rows, n_cols in [(10**7, 10**5), (100, 10**7), (10**6, 3000), (5, 1)]:
        rows = sparse_row_block(n_rows, n_cols)
        n_blocks = -(-n_rows // rows)
        assert n_blocks * n_cols <= max(n_cols, SPARSE_PARTIALS)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_noncanonical_input_is_summed_on_a_copy(fmt):
    # duplicates (1.0 + 2.0 at (0, 1)), unsorted indices, a NaN duplicate at (2, 0)
    data = np.array([1.0, 5.0, 2.0, 4.0, np.nan, 3.0])
    indices = np.array([1, 0, 1, 2, 0, 0], dtype=np.int32)
    indptr = np.array([0, 3, 4, 6], dtype=np.int32)
    X = (sp.csr_matrix if fmt == "csr" else sp.csc_matrix)((data, indices, indptr), shape=(3, 3))
    before = [a.copy() for a in (X.data, X.indices, X.indptr)]
    expected = reference_moments(X)  # toarray sums duplicates
    assert_moments_close(sparse_column_moments(X), expected)
    for a, b in zip(before, (X.data, X.indices, X.indptr)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinity_raises(rng, fmt, dtype, value):
    X = make_matrix(rng, 50, 6, fmt, dtype)
    X.data[len(X.data) // 3] = value
    with pytest.raises(ValueError, match="infinity"):
        sparse_column_moments(X)
    with pytest.raises(ValueError, match="infinity"):
        sparse_column_moments(X, rng.uniform(0.0, 1.0, 50))


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", [None, "zeros"])
def test_constant_columns_are_exact(rng, fmt, dtype, kind):
    n = 20_000  # several CSR blocks
    w = weights(rng, n, kind)
    value = dtype(0.1)
    D = np.zeros((n, 3), dtype=dtype)
    D[:, 0] = value  # stored on every row
    D[:, 2] = -7.25
    if w is not None:
        D[w == 0.0, 2] = 0.0  # absent only where the weight is 0: still constant
    X = (sp.csr_array if fmt == "csr" else sp.csc_array)(D)
    sum_w, mean, m2 = sparse_column_moments(X, w)
    assert mean[0] == np.float64(value) and mean[2] == -7.25
    assert mean[1] == 0.0 and m2[1] == 0.0  # all implicit zeros
    if w is None:
        assert m2[0] == 0.0 and m2[2] == 0.0
    else:
        # weighted sums of equal deviations round apart (the dense column_moments too): M2 is
        # a rounding residue, far below any variance float64 can tell from 0
        assert m2[0] <= 1e-30 * sum_w[0] and m2[2] <= 1e-30 * sum_w[2]


def test_float32_is_accumulated_in_float64(rng):
    D = np.zeros((40_000, 2), dtype=np.float32)
    D[:, 0] = 1.0 + rng.integers(0, 2, 40_000).astype(np.float32) * np.float32(2**-20)
    for fmt in (sp.csr_array, sp.csc_array):
        assert_moments_close(sparse_column_moments(fmt(D)), reference_moments(fmt(D)))


@pytest.mark.parametrize("kind", [None, "zeros"])
def test_csr_and_csc_agree(rng, kind):
    X = make_matrix(rng, 20_000, 25, "csr", np.float32, density=0.1)
    w = weights(rng, 20_000, kind)
    a = sparse_column_moments(X, w)
    b = sparse_column_moments(X.tocsc(), w)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-9)


def _kernel_args(X, w):
    if X.format == "csr":
        kernel = sparse_kernels.csr_column_moments
        extra = (X.shape[1], w, sparse_row_block(*X.shape))
    else:
        kernel = sparse_kernels.csc_column_moments
        extra = (X.shape[0], w)
    return kernel, (X.data, X.indices, X.indptr) + extra


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("kind", [None, "zeros"])
def test_bitwise_identical_for_1_and_2_threads(rng, fmt, kind):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has fewer than 2 threads")
    X = make_matrix(rng, 30_000, 40, fmt, np.float32, density=0.25, nan=0.01)
    assert X.nnz >= ONE_THREAD_MIN_ELEMENTS  # the door takes the parallel twin at any count
    w = weights(rng, X.shape[0], kind)
    kernel, args = _kernel_args(X, w)
    saved = numba.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            results.append(kernel.parallel(*args)[:3])
            results.append(sparse_column_moments(X, w))
    finally:
        numba.set_num_threads(saved)
    results.append(kernel.serial(*args)[:3])  # the twin used below the threshold
    first = [a.tobytes() for a in results[0]]
    for other in results[1:]:
        assert [a.tobytes() for a in other] == first


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_scale_columns(rng, fmt, dtype, index_dtype):
    X = make_matrix(rng, 200, 30, fmt, dtype, index_dtype)
    factor = rng.uniform(-2.0, 2.0, 30)
    D = X.toarray().astype(np.float64)
    expected = (D * factor).astype(dtype)
    data = X.data.copy()
    out = np.empty_like(X.data)
    assert sparse_scale_columns(X, factor, out) is out
    np.testing.assert_array_equal(X.data, data)  # out of place: X untouched
    scaled = X.copy()
    scaled.data = out
    np.testing.assert_array_equal(scaled.toarray(), expected)  # NaN stays NaN
    sparse_scale_columns(X, factor, X.data)  # in place
    np.testing.assert_array_equal(X.data, out)


def test_bad_arguments(rng):
    X = make_matrix(rng, 10, 4, "csr")
    with pytest.raises(TypeError, match="CSR or CSC"):
        sparse_column_moments(X.tocoo())
    with pytest.raises(TypeError, match="float32 or float64"):
        sparse_column_moments(sp.csr_array(np.eye(4, dtype=np.int64)))
    with pytest.raises(ValueError, match="sample_weight"):
        sparse_column_moments(X, np.ones(9))
    with pytest.raises(ValueError, match="factor"):
        sparse_scale_columns(X, np.ones(3), np.empty_like(X.data))
    with pytest.raises(ValueError, match="out_data"):
        sparse_scale_columns(X, np.ones(4), np.empty(X.nnz, np.float32))
