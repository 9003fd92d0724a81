"""BatchNormalizer as a drop-in for scikit-learn's StandardScaler.

Every test compares fastnorm side by side with ``StandardScaler`` or with exact statistics
(``fractions.Fraction`` of the float64 values); no expected value comes from fastnorm itself.
Ideas follow scikit-learn's own StandardScaler tests (sklearn/preprocessing/tests/test_data.py).
"""

import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import fastnorm
from fastnorm import BatchNormalizer

F64_EPS = np.finfo(np.float64).eps
FITTED = ("mean_", "var_", "scale_", "n_samples_seen_", "n_features_in_", "feature_names_in_")
SPARSE = {
    "csr": sp.csr_matrix,
    "csc": sp.csc_matrix,
    "csr_array": sp.csr_array,
    "csc_array": sp.csc_array,
}

# -- helpers -------------------------------------------------------------------------------------


def exact_mean_var(values, weights=None):
    """Exact weighted mean and biased variance (Fractions) of the non-NaN float64 values."""
    values = np.asarray(values, dtype=np.float64).ravel()
    keep = ~np.isnan(values)
    if weights is None:
        uniq, counts = np.unique(values[keep], return_counts=True)
        pairs = [(Fraction(float(v)), int(c)) for v, c in zip(uniq, counts)]
    else:
        w = np.asarray(weights, dtype=np.float64).ravel()[keep]
        pairs = [(Fraction(float(v)), Fraction(float(c))) for v, c in zip(values[keep], w)]
    total = sum(c for _, c in pairs)
    mean = sum(v * c for v, c in pairs) / total
    var = sum((v - mean) ** 2 * c for v, c in pairs) / total
    return mean, var


def assert_close(actual, expected, rtol=1e-12, atol_factor=1e-12):
    """allclose to rtol, with an absolute tolerance of atol_factor times the size of expected."""
    expected = np.asarray(expected, dtype=np.float64)
    size = np.nanmax(np.abs(expected), initial=0.0) if expected.size else 0.0
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=atol_factor * size
    )


def dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def check_counts(fn, sk, weighted, rtol=1e-12):
    """n_samples_seen_ has StandardScaler's values; an int or an int64 array when unweighted."""
    assert np.ndim(fn.n_samples_seen_) == np.ndim(sk.n_samples_seen_)
    assert_close(fn.n_samples_seen_, sk.n_samples_seen_, rtol=rtol if weighted else 0)
    if weighted:
        return
    if np.ndim(sk.n_samples_seen_) == 0:
        assert isinstance(fn.n_samples_seen_, (int, np.integer))
        assert not isinstance(fn.n_samples_seen_, bool)
    else:
        assert fn.n_samples_seen_.dtype == np.int64


def check_same_stats(fn, sk, weighted=False, rtol=1e-12):
    """mean_, var_, scale_ (None where StandardScaler has None), counts and feature info."""
    for name in ("mean_", "var_", "scale_"):
        got, want = getattr(fn, name), getattr(sk, name)
        if want is None:
            assert got is None, name
        else:
            assert got is not None, name
            assert np.asarray(got).dtype == np.float64, name
            assert_close(got, want, rtol=rtol)
    check_counts(fn, sk, weighted, rtol)
    assert fn.n_features_in_ == sk.n_features_in_
    assert hasattr(fn, "feature_names_in_") == hasattr(sk, "feature_names_in_")
    if hasattr(sk, "feature_names_in_"):
        np.testing.assert_array_equal(fn.feature_names_in_, sk.feature_names_in_)


def assert_same_fitted(a, b):
    """Every fitted attribute of a equals b's exactly (NaN equal to NaN)."""
    for name in FITTED:
        assert hasattr(a, name) == hasattr(b, name), name
        if not hasattr(a, name):
            continue
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
            continue
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape, name
        if x.dtype.kind in "OUS":
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            assert np.array_equal(x, y, equal_nan=True), name


def make_data(rng, n=40, n_features=4, nan=False, constant=True):
    """Well-conditioned float64 data (a constant last column), optionally with NaNs."""
    X = rng.normal(size=(n, n_features)) * [1.0, 3.0, 0.5, 2.0][:n_features]
    X += [5.0, -2.0, 0.0, 10.0][:n_features]
    if constant:
        X[:, -1] = 3.0
    if nan:
        X[rng.random(X.shape) < 0.15] = np.nan
        X[0, 0] = np.nan
    return X


def weights_for(kind, n, rng):
    if kind is None:
        return None
    if kind == "int":
        return rng.integers(0, 4, size=n).astype(np.float64)
    return rng.uniform(0.1, 2.0, size=n)


# -- dense fit / transform parity ----------------------------------------------------------------


def test_default_parameters_are_standard_scaler_like():
    """Defaults are StandardScaler's plus momentum=None, eps=0, scale=1, shift=0."""
    params = BatchNormalizer().get_params()
    expected = dict(
        with_mean=True, with_std=True, copy=True, momentum=None, eps=0.0, scale=1.0, shift=0.0
    )
    assert params == expected


@pytest.mark.parametrize("with_mean", [True, False])
@pytest.mark.parametrize("with_std", [True, False])
@pytest.mark.parametrize("weight", [None, "float"])
@pytest.mark.parametrize("nan", [False, True])
def test_dense_fit_transform_matches_standard_scaler(rng, with_mean, with_std, weight, nan):
    """fit attributes, transform and inverse_transform equal StandardScaler's to 1e-12."""
    X = make_data(rng, nan=nan)
    w = weights_for(weight, X.shape[0], rng)
    params = dict(with_mean=with_mean, with_std=with_std)
    sk = StandardScaler(**params).fit(X, sample_weight=w)
    fn = BatchNormalizer(**params).fit(X, sample_weight=w)
    if w is not None and not (with_mean or with_std):
        # StandardScaler's dense path ignores the weights here (its sparse path and every other
        # case count them): fastnorm counts them always
        sk.n_samples_seen_ = (
            StandardScaler(with_mean=False, with_std=True).fit(X, sample_weight=w).n_samples_seen_
        )
    check_same_stats(fn, sk, weighted=w is not None)
    X_test = make_data(rng, n=15, nan=nan, constant=False)
    Y = fn.transform(X_test)
    Y_sk = sk.transform(X_test)
    assert Y.dtype == np.float64 and Y.shape == X_test.shape
    np.testing.assert_array_equal(np.isnan(Y), np.isnan(X_test))
    assert_close(Y, Y_sk)
    assert_close(fn.inverse_transform(Y_sk), sk.inverse_transform(Y_sk))
    assert_close(fn.fit_transform(X, sample_weight=w), sk.fit_transform(X, sample_weight=w))


def test_constant_feature_scale_is_one_and_output_zero(rng):
    """A constant feature gets var_ 0, scale_ 1.0 and transforms to exact zeros, as sklearn."""
    X = make_data(rng)
    X[:, 1] = -7.25
    sk = StandardScaler().fit(X)
    fn = BatchNormalizer().fit(X)
    assert fn.var_[1] == 0.0 and fn.scale_[1] == 1.0 and sk.scale_[1] == 1.0
    Y = fn.transform(X)
    np.testing.assert_array_equal(Y[:, 1], 0.0)
    np.testing.assert_array_equal(Y[:, 1], sk.transform(X)[:, 1])
    np.testing.assert_array_equal(fn.inverse_transform(Y)[:, 1], -7.25)


@pytest.mark.parametrize("eps, scale, shift", [(1e-3, 1.0, 0.0), (0.5, 2.0, -1.5), (0.0, 3.0, 4.0)])
def test_eps_scale_shift_formula(rng, eps, scale, shift):
    """transform = (X - mean_) / sqrt(var_ + eps) * scale + shift with StandardScaler's stats;
    scale_ = sqrt(var_ + eps), 1.0 for constant features."""
    X = make_data(rng)
    sk = StandardScaler().fit(X)
    fn = BatchNormalizer(eps=eps, scale=scale, shift=shift).fit(X)
    assert_close(fn.mean_, sk.mean_)
    assert_close(fn.var_, sk.var_)
    expected_scale = np.sqrt(sk.var_ + eps)
    expected_scale[-1] = 1.0  # the constant column
    assert_close(fn.scale_, expected_scale)
    X_test = make_data(rng, n=10, constant=False)
    expected = (X_test - sk.mean_) / expected_scale * scale + shift
    Y = fn.transform(X_test)
    assert_close(Y, expected)
    assert_close(fn.inverse_transform(Y), X_test)


def test_feature_names_match_standard_scaler(rng):
    """feature_names_in_ and get_feature_names_out follow StandardScaler for a DataFrame."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(make_data(rng), columns=["a", "b", "c", "d"])
    sk = StandardScaler().fit(df)
    fn = BatchNormalizer().fit(df)
    check_same_stats(fn, sk)
    np.testing.assert_array_equal(fn.get_feature_names_out(), sk.get_feature_names_out())
    assert_close(fn.transform(df), sk.transform(df))


@pytest.mark.parametrize("with_mean", [True, False])
@pytest.mark.parametrize("with_std", [True, False])
def test_nan_counts_per_feature(with_mean, with_std):
    """NaNs are ignored in the statistics: per-feature n_samples_seen_ as StandardScaler's."""
    X = np.array([[0, 1, 3], [np.nan, 6, 10], [5, 4, np.nan], [8, 0, np.nan]], dtype=np.float64)
    params = dict(with_mean=with_mean, with_std=with_std)
    sk = StandardScaler(**params).fit(X)
    fn = BatchNormalizer(**params).fit(X)
    np.testing.assert_array_equal(fn.n_samples_seen_, [3, 4, 2])
    check_same_stats(fn, sk)
    if with_mean:
        assert_close(fn.mean_, [13 / 3, 11 / 4, 13 / 2])
    Y = fn.transform(X)
    np.testing.assert_array_equal(np.isnan(Y), np.isnan(X))
    assert_close(Y, sk.transform(X))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.int64])
def test_output_dtype_matches_standard_scaler(rng, dtype):
    """float16/32/64 keep their dtype, ints become float64; statistics are float64."""
    X = (rng.normal(size=(30, 3)) * 4 + 2).astype(dtype)
    sk = StandardScaler().fit(X)
    fn = BatchNormalizer().fit(X)
    assert fn.mean_.dtype == np.float64 and fn.var_.dtype == np.float64
    assert fn.scale_.dtype == np.float64
    check_same_stats(fn, sk)
    Y, Y_sk = fn.transform(X), sk.transform(X)
    assert Y.dtype == Y_sk.dtype
    assert fn.inverse_transform(Y).dtype == sk.inverse_transform(Y_sk).dtype
    # float16/float32 arithmetic may round differently: a few output ulps
    tol = 1e-12 if Y.dtype == np.float64 else 4 * float(np.finfo(Y.dtype).eps)
    assert_close(Y, Y_sk, rtol=tol, atol_factor=tol)


def test_float16_overflow():
    """float16 values near 60000 with a large spread: finite float64 statistics and finite
    float16 output, as StandardScaler."""
    rng = np.random.default_rng(0)
    X = rng.uniform(1000, 65000, size=(20000, 1)).astype(np.float16)
    with np.errstate(over="raise"):
        sk = StandardScaler().fit(X)
        fn = BatchNormalizer().fit(X)
        Y = fn.transform(X)
    assert np.all(np.isfinite(fn.mean_)) and np.all(np.isfinite(fn.var_))
    check_same_stats(fn, sk)
    m, v = exact_mean_var(X)
    assert_close(fn.mean_, [float(m)])
    assert_close(fn.var_, [float(v)])
    assert Y.dtype == np.float16 and np.all(np.isfinite(Y))
    np.testing.assert_allclose(Y.astype(np.float64), sk.transform(X).astype(np.float64), atol=4e-3)
    back = fn.inverse_transform(Y)
    assert back.dtype == np.float16 and np.all(np.isfinite(back))


@pytest.mark.parametrize("n_samples", [10, 100, 10_000])
@pytest.mark.parametrize("average", [1e-10, 1.0, 1e10])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_near_constant_features(n_samples, average, dtype):
    """Features of variance scales**2 around a large mean: var_ within the float64 rounding bound
    of the exact variance, constants decided by StandardScaler's rule, exact constants give
    var_ 0, scale_ 1 and zeros from transform; centred output close to the exact one."""
    scales = np.array([10.0**i for i in range(-30, 20)], dtype=dtype)
    X = np.empty((n_samples, scales.size), dtype=dtype)
    X[: n_samples // 2] = average + scales
    X[n_samples // 2 :] = average - scales
    fn = BatchNormalizer().fit(X)
    sk = StandardScaler(with_mean=False).fit(X)
    exact = [exact_mean_var(X[:, j]) for j in range(scales.size)]
    mean = np.array([float(m) for m, _ in exact])
    var = np.array([float(v) for _, v in exact])
    bound = n_samples * F64_EPS * var + (n_samples * F64_EPS * mean) ** 2
    assert np.all(np.abs(fn.var_ - var) <= bound)
    # the mean at least as accurate as StandardScaler's (or within a few ulps of the data)
    mean_tol = np.maximum(np.abs(sk.mean_ - mean), 4 * F64_EPS * np.abs(X).max(axis=0))
    assert np.all(np.abs(fn.mean_ - mean) <= mean_tol)
    # StandardScaler's rule applied to the fitted statistics
    rule = fn.var_ <= n_samples * F64_EPS * fn.var_ + (n_samples * F64_EPS * fn.mean_) ** 2
    np.testing.assert_array_equal(fn.scale_[rule], 1.0)
    assert_close(fn.scale_[~rule], np.sqrt(fn.var_[~rule]))
    clearly_constant = var <= bound / 10
    clearly_scaled = var >= bound * 10
    assert np.any(clearly_constant) and np.any(clearly_scaled)
    np.testing.assert_array_equal(fn.scale_[clearly_constant], 1.0)
    np.testing.assert_array_equal(sk.scale_[clearly_constant], 1.0)  # the rule is sklearn's
    assert_close(fn.scale_[clearly_scaled], np.sqrt(fn.var_[clearly_scaled]))
    assert_close(sk.scale_[clearly_scaled], np.sqrt(var[clearly_scaled]), rtol=0.2)
    constant = X[0] == X[-1]
    np.testing.assert_array_equal(fn.var_[constant], 0.0)
    np.testing.assert_array_equal(fn.scale_[constant], 1.0)
    Y = fn.transform(X)
    assert Y.dtype == dtype
    np.testing.assert_array_equal(Y[:, constant], 0.0)
    # (x - mean_) / scale_ with the fitted statistics: rounding of mean_ to the output dtype
    # bounds the centring error
    out_eps = float(np.finfo(dtype).eps)
    for j in np.flatnonzero(clearly_scaled):
        m = Fraction(fn.mean_[j])
        ref = np.array(
            [float((Fraction(float(x)) - m) / Fraction(fn.scale_[j])) for x in X[[0, -1], j]]
        )
        atol = 2 * out_eps * abs(float(m)) / fn.scale_[j]
        np.testing.assert_allclose(Y[[0, -1], j], ref, rtol=4 * out_eps, atol=atol)


# -- partial_fit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 50])
@pytest.mark.parametrize("weight", [None, "float"])
@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("with_std", [True, False])
def test_partial_fit_matches_standard_scaler_and_fit(rng, chunk, weight, nan, with_std):
    """partial_fit in chunks equals StandardScaler.partial_fit and fit on the whole to 1e-12.

    StandardScaler's dense partial_fit turns a feature's mean_ into NaN for good once a chunk has
    no value for it (all NaN), so it is compared chunk by chunk only until that happens."""
    X = make_data(rng, n=50, nan=nan)
    w = weights_for(weight, X.shape[0], rng)
    sk = StandardScaler(with_std=with_std)
    fn = BatchNormalizer(with_std=with_std)
    sk_valid = True
    for start in range(0, X.shape[0], chunk):
        part = slice(start, start + chunk)
        sw = None if w is None else w[part]
        sk_valid &= not np.any(np.all(np.isnan(X[part]), axis=0))
        sk.partial_fit(X[part], sample_weight=sw)
        fn.partial_fit(X[part], sample_weight=sw)
        if sk_valid:
            check_same_stats(fn, sk, weighted=w is not None)
    whole = BatchNormalizer(with_std=with_std).fit(X, sample_weight=w)
    check_same_stats(fn, StandardScaler(with_std=with_std).fit(X, sample_weight=w), w is not None)
    for name in ("mean_", "var_", "scale_"):
        if getattr(whole, name) is not None:
            assert_close(getattr(fn, name), getattr(whole, name))
    if sk_valid:
        assert_close(fn.transform(X), sk.transform(X))
    assert_close(fn.transform(X), whole.transform(X))


@pytest.mark.parametrize(
    "value, n_rows",
    [(0.1, 10), (1e-10, 10_000), (math.log(1e-5), 1000), (-2.5e7, 100), (1e100, 30)],
)
@pytest.mark.parametrize("streamed", [False, True])
def test_constant_column_exact(value, n_rows, streamed):
    """A constant column has mean_ exactly its value and var_ exactly 0.0, in fit and after
    streaming its rows one partial_fit at a time; transform gives zeros."""
    X = np.full((n_rows, 1), value)
    fn = BatchNormalizer()
    if streamed:
        for row in X:
            fn.partial_fit(row.reshape(1, 1))
    else:
        fn.fit(X)
    assert fn.mean_[0] == value
    assert fn.var_[0] == 0.0
    assert fn.scale_[0] == 1.0
    assert fn.n_samples_seen_ == n_rows
    np.testing.assert_array_equal(fn.transform(X[:5]), 0.0)


def test_streaming_accuracy_at_least_standard_scaler():
    """fit 5,000 rows of 1e8, then partial_fit 5,000 single rows of log(1e-5): the errors of
    mean_ and var_ against the exact values are at most StandardScaler's."""
    big = np.full((5000, 1), 1e8)
    small = np.full((1, 1), np.log(1e-5))
    sk = StandardScaler().fit(big)
    fn = BatchNormalizer().fit(big)
    for _ in range(5000):
        sk.partial_fit(small)
        fn.partial_fit(small)
    mean, var = exact_mean_var(np.concatenate([big.ravel(), np.full(5000, small[0, 0])]))
    assert fn.n_samples_seen_ == 10_000
    assert abs(Fraction(fn.mean_[0]) - mean) <= abs(Fraction(sk.mean_[0]) - mean)
    assert abs(Fraction(fn.var_[0]) - var) <= abs(Fraction(sk.var_[0]) - var)


def test_partial_fit_numerical_stability_large_offsets():
    """Row-by-row partial_fit at offsets up to 1e15 and scales 1e3..1e6 agrees with fit on the
    whole (and with StandardScaler.fit) to 1e-6, as sklearn's own test demands."""
    rng = np.random.RandomState(0)
    offsets = rng.uniform(-1e15, 1e15, size=2)
    scales = rng.uniform(1e3, 1e6, size=2)
    X = rng.randn(100, 2) * scales + offsets
    whole = BatchNormalizer().fit(X)
    incr = BatchNormalizer()
    for row in X:
        incr.partial_fit(row.reshape(1, 2))
    sk = StandardScaler().fit(X)
    for name in ("mean_", "var_", "scale_"):
        assert_close(getattr(incr, name), getattr(whole, name), rtol=1e-6)
        assert_close(getattr(whole, name), getattr(sk, name), rtol=1e-6)
    for j in range(2):
        m, v = exact_mean_var(X[:, j])
        assert abs(incr.mean_[j] - float(m)) <= 1e-6 * abs(float(m))
        assert abs(incr.var_[j] - float(v)) <= 1e-6 * float(v)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_partial_fit_numerical_stability(fmt):
    """Sparse 0/1e20 data streamed row by row agrees with fit to 1e-6 (sklearn's test)."""
    rng = np.random.RandomState(0)
    X = SPARSE[fmt](rng.randint(0, 2, (100, 3)).astype(np.float64) * 1e20)
    whole = BatchNormalizer(with_mean=False).fit(X)
    incr = BatchNormalizer(with_mean=False)
    for i in range(X.shape[0]):
        incr.partial_fit(X[i : i + 1])
    sk = StandardScaler(with_mean=False).fit(X)
    check_same_stats(whole, sk)
    assert_close(incr.var_, whole.var_, rtol=1e-6)
    assert_close(incr.scale_, whole.scale_, rtol=1e-6)


# -- sample_weight -------------------------------------------------------------------------------


@pytest.mark.parametrize("container", ["dense", "csr", "csc"])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_integer_weights_equal_repeated_rows(rng, container, method):
    """Integer sample weights equal repeating rows; a zero weight equals dropping the row."""
    X = make_data(rng, n=12, nan=True)
    w = np.array([2, 1, 0, 3, 1, 1, 0, 2, 1, 4, 1, 1], dtype=np.float64)
    X_rep = np.repeat(X, w.astype(int), axis=0)
    sparse = container != "dense"
    wrap = (lambda A: A) if not sparse else SPARSE[container]
    params = dict(with_mean=not sparse)
    weighted = BatchNormalizer(**params)
    repeated = BatchNormalizer(**params)
    if method == "fit":
        weighted.fit(wrap(X), sample_weight=w)
        repeated.fit(wrap(X_rep))
    else:
        weighted.partial_fit(wrap(X[:5]), sample_weight=w[:5]).partial_fit(
            wrap(X[5:]), sample_weight=w[5:]
        )
        cut = int(w[:5].sum())
        repeated.partial_fit(wrap(X_rep[:cut])).partial_fit(wrap(X_rep[cut:]))
    for name in ("mean_", "var_", "scale_"):
        assert_close(getattr(weighted, name), getattr(repeated, name))
    assert_close(weighted.n_samples_seen_, repeated.n_samples_seen_, rtol=0)
    X_test = make_data(rng, n=5, constant=False)
    assert_close(weighted.transform(X_test), repeated.transform(X_test))
    sk = StandardScaler(**params).fit(wrap(X), sample_weight=w)
    check_same_stats(weighted, sk, weighted=True)


# -- sparse --------------------------------------------------------------------------------------


def sparse_data(rng, dtype, nan):
    X = make_data(rng, n=30, nan=nan)
    X[rng.random(X.shape) < 0.4] = 0.0
    return X.astype(dtype)


@pytest.mark.parametrize("fmt", ["csr", "csc", "csr_array", "csc_array"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight", [None, "float"])
@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("with_std", [True, False])
def test_sparse_matches_standard_scaler(rng, fmt, dtype, weight, nan, with_std):
    """Sparse fit, partial_fit, transform and inverse_transform (with_mean=False) equal
    StandardScaler's; outputs stay sparse, of the input's format and dtype; X is not modified."""
    X_dense = sparse_data(rng, dtype, nan)
    X = SPARSE[fmt](X_dense)
    X_before = X.copy()
    w = weights_for(weight, X.shape[0], rng)
    params = dict(with_mean=False, with_std=with_std)
    sk = StandardScaler(**params).fit(X, sample_weight=w)
    fn = BatchNormalizer(**params).fit(X, sample_weight=w)
    # StandardScaler accumulates sparse float32 data (and the weights) in float32
    stats_tol = 1e-12 if dtype == np.float64 else 1e-5
    check_same_stats(fn, sk, weighted=w is not None, rtol=stats_tol)
    tol = 1e-12 if dtype == np.float64 else 4 * float(np.finfo(dtype).eps)
    Y, Y_sk = fn.transform(X), sk.transform(X)
    assert sp.issparse(Y) and Y.format == X.format and Y.dtype == Y_sk.dtype == dtype
    assert isinstance(Y, sp.sparray) == isinstance(X, sp.sparray)
    assert_close(dense(Y), dense(Y_sk), rtol=max(tol, stats_tol), atol_factor=tol)
    back, back_sk = fn.inverse_transform(Y), sk.inverse_transform(Y_sk)
    assert sp.issparse(back) and back.format == X.format and back.dtype == dtype
    assert_close(dense(back), dense(back_sk), rtol=tol, atol_factor=tol)
    assert_close(dense(back), X_dense, rtol=tol, atol_factor=tol)
    np.testing.assert_array_equal(dense(X), dense(X_before))
    # partial_fit in three chunks
    sk_incr = StandardScaler(**params)
    fn_incr = BatchNormalizer(**params)
    for part in (slice(0, 7), slice(7, 8), slice(8, None)):
        sw = None if w is None else w[part]
        sk_incr.partial_fit(X[part], sample_weight=sw)
        fn_incr.partial_fit(X[part], sample_weight=sw)
    check_same_stats(fn_incr, sk_incr, weighted=w is not None, rtol=stats_tol)
    check_same_stats(fn_incr, fn, weighted=w is not None)
    # the dense path agrees
    fn_dense = BatchNormalizer(**params).fit(X_dense, sample_weight=w)
    for name in ("mean_", "var_", "scale_"):
        if getattr(fn, name) is not None:
            assert_close(getattr(fn, name), getattr(fn_dense, name))


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_with_mean_raises(rng, fmt):
    """with_mean=True on sparse input raises ValueError like StandardScaler's."""
    X_dense = rng.normal(size=(6, 3))
    X = SPARSE[fmt](X_dense)
    for method in ("fit", "partial_fit"):
        with pytest.raises(ValueError, match="Cannot center sparse matrices"):
            getattr(StandardScaler(), method)(X)
        with pytest.raises(ValueError, match="Cannot center sparse matrices"):
            getattr(BatchNormalizer(), method)(X)
    fitted = BatchNormalizer().fit(X_dense)
    with pytest.raises(ValueError, match="Cannot center sparse matrices"):
        fitted.transform(X)
    with pytest.raises(ValueError):
        fitted.inverse_transform(X)


@pytest.mark.parametrize("fmt", ["csr", "csr_array"])
def test_sparse_transform_copy_false_in_place(rng, fmt):
    """transform(copy=False) on CSR scales the stored values in place and returns X, as sklearn."""
    X = SPARSE[fmt](sparse_data(rng, np.float64, nan=False))
    expected = StandardScaler(with_mean=False).fit(X).transform(X)
    fn = BatchNormalizer(with_mean=False).fit(X)
    X_sk = X.copy()
    assert StandardScaler(with_mean=False).fit(X_sk).transform(X_sk, copy=False) is X_sk
    out = fn.transform(X, copy=False)
    assert out is X
    assert_close(X.toarray(), expected.toarray())


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_identity_when_neither_mean_nor_std(rng, fmt):
    """with_mean=False, with_std=False: identity transform, None statistics, counts as sklearn."""
    X_dense = np.array([[0, 1, 3], [5, 6, 0], [8, 0, 10]], dtype=np.float64)
    for X in (X_dense, SPARSE[fmt](X_dense)):
        sk = StandardScaler(with_mean=False, with_std=False).fit(X)
        fn = BatchNormalizer(with_mean=False, with_std=False).fit(X)
        assert fn.mean_ is None and fn.var_ is None and fn.scale_ is None
        check_same_stats(fn, sk)
        Y = fn.transform(X)
        assert sp.issparse(Y) == sp.issparse(X)
        np.testing.assert_array_equal(dense(Y), X_dense)
        fn.partial_fit(X)
        sk.partial_fit(X)
        check_same_stats(fn, sk)


# -- copy ----------------------------------------------------------------------------------------


def test_dense_copy_false_in_place(rng):
    """transform(copy=False) and copy=False write into a C-contiguous float64 X and return it;
    fit never modifies X; copy=True leaves X alone."""
    X = make_data(rng)
    expected = StandardScaler().fit(X).transform(X)
    X_fit = X.copy()
    fn = BatchNormalizer(copy=False).fit(X_fit)
    np.testing.assert_array_equal(X_fit, X)
    kept = X.copy()
    Y = BatchNormalizer().fit(X).transform(kept)
    assert Y is not kept
    np.testing.assert_array_equal(kept, X)
    out = fn.transform(X_fit)
    assert out is X_fit
    assert_close(X_fit, expected)
    X2 = X.copy()
    out = BatchNormalizer().fit(X).transform(X2, copy=False)
    assert out is X2
    assert_close(X2, expected)


# -- persistence ---------------------------------------------------------------------------------


def fitted_examples(rng):
    X = make_data(rng, nan=True)
    w = rng.uniform(0.5, 2.0, size=X.shape[0])
    return {
        "dense": (dict(), X, None),
        "weighted_eps": (dict(eps=1e-3, scale=2.0, shift=0.5), X, w),
        "no_std": (dict(with_std=False), X, None),
        "no_mean_no_std": (dict(with_mean=False, with_std=False), X, None),
        "sparse": (dict(with_mean=False), sp.csr_matrix(np.nan_to_num(X)), None),
    }


def transform_equal(a, b, X):
    Ya, Yb = a.transform(X), b.transform(X)
    assert sp.issparse(Ya) == sp.issparse(Yb)
    assert np.array_equal(dense(Ya), dense(Yb), equal_nan=True)


@pytest.mark.parametrize("case", ["dense", "weighted_eps", "no_std", "sparse"])
def test_skops_round_trip(rng, case):
    """skops.io dumps/loads gives identical attributes, parameters and transform."""
    sio = pytest.importorskip("skops.io")
    params, X, w = fitted_examples(rng)[case]
    fitted = BatchNormalizer(**params).fit(X, sample_weight=w)
    data = sio.dumps(fitted)
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert type(loaded) is BatchNormalizer
    assert loaded.get_params() == fitted.get_params()
    assert_same_fitted(loaded, fitted)
    transform_equal(loaded, fitted, X)


def is_plain(value):
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biufcUS"
    return isinstance(value, (bool, int, float, str, np.bool_, np.integer, np.floating))


@pytest.mark.parametrize("case", ["dense", "weighted_eps", "no_std", "no_mean_no_std", "sparse"])
def test_state_through_npz(rng, tmp_path, case):
    """get_state is plain arrays/scalars/strings; it survives np.savez and np.load without
    pickle, and set_state on it rebuilds an equal normalizer."""
    params, X, w = fitted_examples(rng)[case]
    fitted = BatchNormalizer(**params).fit(X, sample_weight=w)
    state = fitted.get_state()
    assert isinstance(state, dict) and state
    assert all(isinstance(k, str) for k in state)
    bad = {k: type(v).__name__ for k, v in state.items() if not is_plain(v)}
    assert not bad
    direct = BatchNormalizer(**params).set_state(state)
    assert isinstance(direct, BatchNormalizer)
    assert_same_fitted(direct, fitted)
    transform_equal(direct, fitted, X)
    path = tmp_path / "state.npz"
    np.savez(path, **state)
    with np.load(path, allow_pickle=False) as loaded:
        state_back = {k: loaded[k] for k in loaded.files}
    restored = BatchNormalizer(**params).set_state(state_back)
    assert_same_fitted(restored, fitted)
    transform_equal(restored, fitted, X)


def test_state_with_feature_names(rng, tmp_path):
    """A DataFrame-fitted normalizer's state (feature names included) survives np.savez."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(make_data(rng), columns=["a", "b", "c", "d"])
    fitted = BatchNormalizer().fit(df)
    path = tmp_path / "state.npz"
    np.savez(path, **fitted.get_state())
    with np.load(path, allow_pickle=False) as loaded:
        restored = BatchNormalizer().set_state({k: loaded[k] for k in loaded.files})
    np.testing.assert_array_equal(restored.feature_names_in_, ["a", "b", "c", "d"])
    assert_same_fitted(restored, fitted)
    transform_equal(restored, fitted, df)


@pytest.mark.parametrize("rebuilt", ["first", "second"])
@pytest.mark.parametrize("nan", [False, True])
def test_merge_with_rebuilt_state(rng, tmp_path, rebuilt, nan):
    """a.merge(b), one of them rebuilt from a saved state, equals fit on the concatenation."""
    X1, X2 = make_data(rng, n=30, nan=nan), make_data(rng, n=17, nan=nan) * 1.5 + 1.0
    a, b = BatchNormalizer().fit(X1), BatchNormalizer().fit(X2)
    path = tmp_path / "state.npz"
    np.savez(path, **(a if rebuilt == "first" else b).get_state())
    with np.load(path, allow_pickle=False) as loaded:
        state = {k: loaded[k] for k in loaded.files}
    if rebuilt == "first":
        a = BatchNormalizer().set_state(state)
    else:
        b = BatchNormalizer().set_state(state)
    merged = a.merge(b)
    X = np.vstack([X1, X2])
    whole = BatchNormalizer().fit(X)
    sk = StandardScaler().fit(X)
    check_same_stats(merged, sk)
    for name in ("mean_", "var_", "scale_"):
        assert_close(getattr(merged, name), getattr(whole, name))
    np.testing.assert_array_equal(merged.n_samples_seen_, whole.n_samples_seen_)
    assert_close(merged.transform(X), sk.transform(X))


# -- row normalizers and estimator checks --------------------------------------------------------


@pytest.mark.parametrize("name", ["InstanceNormalizer", "GroupNormalizer", "LayerNormalizer"])
def test_row_normalizers_default_construction(rng, name):
    """The row normalizers work with no arguments: finite output of the input's shape."""
    X = rng.normal(size=(20, 12)) * 3 + 1
    Y = getattr(fastnorm, name)().fit_transform(X)
    assert Y.shape == X.shape
    assert np.all(np.isfinite(Y))


def test_layer_normalizer_rows(rng):
    """LayerNormalizer(): each row has mean ~0 and variance var / (var + eps)."""
    X = rng.normal(size=(20, 12)) * rng.uniform(0.01, 5, size=(20, 1)) + 2
    ln = fastnorm.LayerNormalizer()
    eps = ln.get_params().get("eps", 0.0)
    Y = ln.fit_transform(X)
    row_var = X.var(axis=1)
    np.testing.assert_allclose(Y.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(Y.var(axis=1), row_var / (row_var + eps), rtol=1e-10)


@pytest.mark.parametrize(
    "make",
    [
        lambda: BatchNormalizer(with_mean=False),
        lambda: BatchNormalizer(with_std=False),
        lambda: BatchNormalizer(eps=1e-3),
        lambda: fastnorm.LayerNormalizer(),
        lambda: fastnorm.GroupNormalizer(),
        lambda: fastnorm.InstanceNormalizer(),
    ],
    ids=["bn_no_mean", "bn_no_std", "bn_eps", "layer", "group", "instance"],
)
def test_check_estimator(make):
    """scikit-learn's check_estimator passes."""
    check_estimator(make())
