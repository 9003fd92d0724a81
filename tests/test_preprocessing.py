"""scikit-learn transformers: estimator contract, exact/streamed/merged statistics, bad input."""

import copy
import pickle
import warnings

import joblib
import numba
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from reference_preprocessing import batch_normalize, row_group_normalize, weighted_moments
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastnorm import BatchNormalizer, GroupNormalizer, InstanceNormalizer, LayerNormalizer
from fastnorm._kernels.moments import column_moments
from fastnorm._kernels.schedule import column_blocks

RTOL = 1e-10


def all_estimators():
    return [
        BatchNormalizer(),
        BatchNormalizer(momentum=0.25, scale=2.0, shift=-1.0),
        LayerNormalizer(),
        GroupNormalizer(1),
        InstanceNormalizer(1),
    ]


@parametrize_with_checks(all_estimators())
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _data(rng, n=200, f=6, offset=1e3, nan_fraction=0.1, dtype=np.float64):
    X = rng.normal(offset, 1.0 + np.arange(f), (n, f))
    X[rng.random(X.shape) < nan_fraction] = np.nan
    return X.astype(dtype)


def _random_splits(rng, n, pieces):
    cuts = np.sort(rng.choice(np.arange(1, n), size=pieces - 1, replace=False))
    return np.split(np.arange(n), cuts)


def _state(est):
    return copy.deepcopy(est.__dict__)


def _assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key, value in before.items():
        other = after[key]
        if isinstance(value, np.ndarray):
            assert isinstance(other, np.ndarray) and value.dtype == other.dtype, key
            assert value.tobytes() == other.tobytes(), key  # bitwise, NaN included
        elif isinstance(value, dict):
            _assert_same_state(value, other)
        else:
            assert type(value) is type(other) and value == other, key


# ---------------------------------------------------------------------------------------------
# exact statistics: fit, partial_fit, merge


@pytest.mark.parametrize("weighted", [False, True])
def test_fit_matches_reference_and_standard_scaler(rng, weighted):
    X = _data(rng)
    w = rng.uniform(0.1, 3.0, X.shape[0]) if weighted else None
    bn = BatchNormalizer(eps=0.0).fit(X, sample_weight=w)
    sum_w, mean, var = weighted_moments(X, w)
    assert_allclose(bn.mean_, mean, rtol=RTOL)
    assert_allclose(bn.var_, var, rtol=RTOL)
    assert_allclose(bn.n_samples_seen_, sum_w, rtol=RTOL)
    assert bn.mean_.dtype == bn.var_.dtype == np.float64
    ss = StandardScaler().fit(X, sample_weight=w)
    assert_allclose(bn.mean_, ss.mean_, rtol=RTOL)
    assert_allclose(bn.var_, ss.var_, rtol=1e-8)
    assert_allclose(bn.transform(X), ss.transform(X), rtol=1e-7, atol=1e-9)
    if not weighted:
        assert_array_equal(bn.n_samples_seen_, ss.n_samples_seen_)


@pytest.mark.parametrize("weighted", [False, True])
def test_fit_equals_partial_fit_over_splits_and_merge(rng, weighted):
    X = _data(rng, n=500)
    w = rng.uniform(0.01, 2.0, X.shape[0]) if weighted else None
    full = BatchNormalizer().fit(X, sample_weight=w)
    for pieces in (2, 7, 40):
        streamed = BatchNormalizer()
        fitted_parts = []
        for idx in _random_splits(rng, X.shape[0], pieces):
            wi = None if w is None else w[idx]
            streamed.partial_fit(X[idx], sample_weight=wi)
            fitted_parts.append(BatchNormalizer().fit(X[idx], sample_weight=wi))
        merged = fitted_parts[0]
        other_before = [_state(p) for p in fitted_parts[1:]]
        for part in fitted_parts[1:]:
            merged.merge(part)
        for part, before in zip(fitted_parts[1:], other_before):
            _assert_same_state(before, _state(part))  # merge leaves `other` alone
        for est in (streamed, merged):
            assert_allclose(est.mean_, full.mean_, rtol=RTOL)
            assert_allclose(est.var_, full.var_, rtol=RTOL)
            assert_allclose(est.n_samples_seen_, full.n_samples_seen_, rtol=RTOL)
            assert_allclose(est.transform(X), full.transform(X), rtol=1e-9, atol=1e-12)


def test_layouts_and_dtypes_of_batches_give_the_same_statistics(rng):
    X = _data(rng, n=400)
    expected = BatchNormalizer().fit(X[:100]).partial_fit(X[100::2])
    views = [
        (X[:100], X[100::2]),  # strided rows
        (np.asfortranarray(X[:100]), np.asfortranarray(X[100::2])),
        (X[:100].tolist(), X[100::2].tolist()),
    ]
    for first, second in views:
        est = BatchNormalizer().fit(first).partial_fit(second)
        assert est.mean_.tobytes() == expected.mean_.tobytes()
        assert est.var_.tobytes() == expected.var_.tobytes()
        assert_array_equal(est.transform(second), expected.transform(X[100::2]))


def test_merge_tree_order_does_not_matter(rng):
    X = _data(rng, n=300)
    parts = [BatchNormalizer().fit(X[i::4]) for i in range(4)]
    left = clone(parts[0]).fit(X[0::4]).merge(parts[1])
    right = clone(parts[2]).fit(X[2::4]).merge(parts[3])
    tree = left.merge(right)
    _, mean, var = weighted_moments(np.concatenate([X[i::4] for i in range(4)]))
    assert_allclose(tree.mean_, mean, rtol=RTOL)
    assert_allclose(tree.var_, var, rtol=RTOL)


def test_merge_errors(rng):
    X = _data(rng, n=50)
    exact = BatchNormalizer().fit(X)
    with pytest.raises(ValueError, match="momentum=None"):
        exact.merge(BatchNormalizer(momentum=0.5).fit(X))
    with pytest.raises(ValueError, match="features"):
        exact.merge(BatchNormalizer().fit(X[:, :3]))
    with pytest.raises(TypeError, match="BatchNormalizer"):
        exact.merge(StandardScaler().fit(X))
    with pytest.raises(NotFittedError):
        exact.merge(BatchNormalizer())


# ---------------------------------------------------------------------------------------------
# running averages


def test_momentum_matches_hand_computed_ema(rng):
    m = 0.3
    batches = [_data(rng, n=n, nan_fraction=0.0) for n in (30, 17, 50, 8)]
    batches[1][:, 2] = np.nan  # feature 2 has no value in batch 1: left unchanged
    first = batches[0].copy()
    first[:, 4] = np.nan  # feature 4 first seen in batch 1: initialized there
    batches[0] = first
    est = BatchNormalizer(momentum=m)
    mean = var = None
    for X in batches:
        est.partial_fit(X)
        _, bm, bv = weighted_moments(X)
        if mean is None:
            mean, var = bm.copy(), bv.copy()
        else:
            for j in range(X.shape[1]):
                if np.isnan(bm[j]):
                    continue
                if np.isnan(mean[j]):
                    mean[j], var[j] = bm[j], bv[j]
                else:
                    mean[j] = (1 - m) * mean[j] + m * bm[j]
                    var[j] = (1 - m) * var[j] + m * bv[j]
        assert_allclose(est.mean_, mean, rtol=RTOL)
        assert_allclose(est.var_, var, rtol=RTOL)
    # fit resets: the statistics of X, as with momentum=None
    est.fit(batches[2])
    exact = BatchNormalizer().fit(batches[2])
    assert_allclose(est.mean_, exact.mean_, rtol=RTOL)
    assert_allclose(est.var_, exact.var_, rtol=RTOL)


def test_momentum_one_keeps_last_batch(rng):
    est = BatchNormalizer(momentum=1.0)
    for _ in range(3):
        X = _data(rng, n=40, nan_fraction=0.0)
        est.partial_fit(X)
    _, mean, var = weighted_moments(X)
    assert_allclose(est.mean_, mean, rtol=RTOL)
    assert_allclose(est.var_, var, rtol=RTOL)


def test_switching_from_running_averages_to_exact_raises(rng):
    X = _data(rng, n=40)
    est = BatchNormalizer(momentum=0.1).partial_fit(X)
    est.set_params(momentum=None)
    before = _state(est)
    with pytest.raises(ValueError, match="call fit"):
        est.partial_fit(X)
    _assert_same_state(before, _state(est))
    est.fit(X)  # fit starts over and is fine
    assert_allclose(est.mean_, weighted_moments(X)[1], rtol=RTOL)


# ---------------------------------------------------------------------------------------------
# sample weights, NaN, constant features, dtypes


@pytest.mark.parametrize("momentum", [None, 0.4])
def test_integer_weights_equal_repeated_rows(rng, momentum):
    X = _data(rng, n=120)
    w = rng.integers(0, 4, X.shape[0])
    a = BatchNormalizer(momentum=momentum).fit(X, sample_weight=w)
    b = BatchNormalizer(momentum=momentum).fit(np.repeat(X, w, axis=0))
    assert_allclose(a.mean_, b.mean_, rtol=RTOL)
    assert_allclose(a.var_, b.var_, rtol=RTOL)
    assert_allclose(a.n_samples_seen_, b.n_samples_seen_)
    assert_allclose(a.transform(X), b.transform(X), rtol=1e-9)


def test_nan_ignored_in_fit_and_kept_in_transform(rng):
    X = _data(rng, n=300, nan_fraction=0.3)
    X[:, 1] = np.nan  # a feature without any value
    bn = BatchNormalizer().fit(X)
    sum_w, mean, var = weighted_moments(X)
    assert_allclose(bn.mean_, mean, rtol=RTOL)  # NaN for feature 1 on both sides
    assert_allclose(bn.var_, var, rtol=RTOL)
    assert_array_equal(bn.n_samples_seen_, sum_w.astype(np.int64))
    Y = bn.transform(X)
    assert_array_equal(np.isnan(Y), np.isnan(X))
    ok = ~np.isnan(X)
    assert_allclose(Y[ok], batch_normalize(X, mean, var)[ok], rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [1e-5, 0.0])
def test_constant_features_map_to_shift_without_warnings(rng, dtype, weighted, eps):
    X = rng.normal(size=(64, 4)).astype(dtype)
    X[:, 1] = 3.7
    X[:, 3] = -1e4
    w = rng.uniform(0.1, 5.0, X.shape[0]) if weighted else None
    shift = np.array([0.5, -2.0, 3.0, 7.25])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bn = BatchNormalizer(eps=eps, scale=3.0, shift=shift).fit(X, sample_weight=w)
        Y = bn.transform(X)
        back = bn.inverse_transform(Y)
    assert np.all(np.isfinite(Y))
    assert_array_equal(Y[:, 1], np.full(64, shift[1], dtype))
    assert_array_equal(Y[:, 3], np.full(64, shift[3], dtype))
    assert_allclose(back[:, [1, 3]], X[:, [1, 3]], rtol=1e-6)
    assert np.std(Y[:, 0]) > 1.0  # the other features are really normalized (scale 3)


@pytest.mark.parametrize(
    "est",
    [BatchNormalizer(), LayerNormalizer(), GroupNormalizer(2), InstanceNormalizer(2)],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_output_dtype(rng, est, dtype):
    X = (rng.normal(size=(50, 8)) * 10).astype(dtype)
    Y = est.fit(X).transform(X)
    assert Y.dtype == (np.float32 if dtype == np.float32 else np.float64)
    expected = np.float32 if dtype == np.float32 else np.float64
    assert est.fit_transform(X).dtype == expected
    if isinstance(est, BatchNormalizer):
        assert est.mean_.dtype == est.var_.dtype == np.float64
        assert est.inverse_transform(Y).dtype == expected


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_streamed_ill_conditioned_features_stay_exact(rng, weighted):
    """Spreads far below the mean (timestamps in seconds), streamed in batches of many rows: a
    batch's rounded mean would enter the merge and cost the variance eps * |mean| / std."""
    n = 4000
    X = np.column_stack(
        [
            1.7e9 + rng.normal(0.0, 10.0, n),
            -1000.0 + 1e-3 * rng.random(n),
            3e6 + rng.normal(0.0, 1.0, n),
            rng.normal(5.0, 2.0, n),
        ]
    )
    X[rng.random(X.shape) < 0.05] = np.nan
    w = rng.uniform(0.0, 2.0, n) if weighted else np.ones(n)
    streamed = BatchNormalizer()
    for start in range(0, n, 250):
        rows = slice(start, start + 250)
        streamed.partial_fit(X[rows], sample_weight=w[rows] if weighted else None)
    ld, wl = X.astype(np.longdouble), w.astype(np.longdouble)[:, None] * ~np.isnan(X)
    mean = np.nansum(wl * ld, axis=0) / wl.sum(axis=0)
    var = np.nansum(wl * (ld - mean) ** 2, axis=0) / wl.sum(axis=0)
    assert_allclose(streamed.var_, var.astype(np.float64), rtol=1e-14)
    assert_allclose(streamed.mean_, mean.astype(np.float64), rtol=1e-15)


def test_float32_accuracy_at_large_offset(rng):
    X = rng.normal(1e4, 1.0, (4000, 5)).astype(np.float32)
    bn = BatchNormalizer().fit(X)
    _, mean, var = weighted_moments(X)
    assert_allclose(bn.mean_, mean, rtol=RTOL)
    assert_allclose(bn.var_, var, rtol=1e-9)
    assert_allclose(bn.transform(X), batch_normalize(X, mean, var), rtol=0, atol=1e-3)


@pytest.mark.parametrize("scale, shift", [(1.0, 0.0), (2.5, [1.0, -1.0, 0.0, 4.0, 5.0, 6.0])])
def test_transform_and_inverse_round_trip(rng, scale, shift):
    X = _data(rng, n=100)
    bn = BatchNormalizer(scale=scale, shift=shift).fit(X)
    Y = bn.transform(X)
    assert_allclose(
        Y,
        batch_normalize(X, bn.mean_, bn.var_, 0.0, scale, np.asarray(shift)),
        rtol=1e-10,
        atol=1e-12,
    )
    back = bn.inverse_transform(Y)
    assert_array_equal(np.isnan(back), np.isnan(X))
    assert_allclose(back, X, rtol=1e-12)


def test_copy_false_transforms_in_place(rng):
    X = _data(rng, n=30, nan_fraction=0.0)
    bn = BatchNormalizer().fit(X)
    expected = bn.transform(X)
    X_work = X.copy()
    Y = bn.transform(X_work, copy=False)
    assert Y is X_work
    assert_array_equal(Y, expected)
    kept = X.copy()
    bn.transform(kept)  # copy=True by default: input untouched
    assert_array_equal(kept, X)


# ---------------------------------------------------------------------------------------------
# bad input


BAD_BATCHES = {
    "wrong n_features": (lambda X: X[:, :3], ValueError, "features"),
    # as StandardScaler: sparse data cannot be centred (with_mean=True, the default)
    "sparse": (lambda X: sp.csr_matrix(np.nan_to_num(X)), ValueError, "Cannot center sparse"),
    "non-numeric": (lambda X: np.full(X.shape, "a", dtype=object), ValueError, "convert|string"),
    "3-D": (lambda X: X[:, :, None], ValueError, "dim 3|2D"),
    "empty": (lambda X: X[:0], ValueError, "0 sample"),
    "infinity": (lambda X: np.where(np.arange(X.shape[1]) == 2, np.inf, X), ValueError, "infinity"),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
@pytest.mark.parametrize("momentum", [None, 0.2])
def test_bad_batch_raises_and_leaves_state_unchanged(rng, case, momentum):
    make_bad, error, match = BAD_BATCHES[case]
    X = _data(rng, n=40)
    bad = make_bad(X)
    est = BatchNormalizer(momentum=momentum).fit(X).partial_fit(X[:10], sample_weight=np.ones(10))
    before = _state(est)
    with pytest.raises(error, match=match):
        est.partial_fit(bad)
    _assert_same_state(before, _state(est))
    if case != "wrong n_features":  # fit may change the feature count
        with pytest.raises(error, match=match):
            est.fit(bad)
        _assert_same_state(before, _state(est))  # even a failed fit keeps the old state
    if case != "infinity":  # infinities pass through transform, like NaN
        with pytest.raises(error, match=match):
            est.transform(bad)
    if case != "wrong n_features":  # an unfitted normalizer stays unfitted
        fresh = BatchNormalizer(momentum=momentum)
        with pytest.raises(error, match=match):
            fresh.partial_fit(bad)
        assert _state(fresh) == _state(BatchNormalizer(momentum=momentum))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sample_weight": -np.ones(40)}, "non-negative"),
        ({"sample_weight": np.ones(39)}, "sample_weight"),
        ({"sample_weight": np.full(40, np.nan)}, "finite|NaN"),
    ],
)
def test_bad_sample_weight_leaves_state_unchanged(rng, kwargs, match):
    X = _data(rng, n=40)
    est = BatchNormalizer().fit(X)
    before = _state(est)
    with pytest.raises(ValueError, match=match):
        est.partial_fit(X, **kwargs)
    _assert_same_state(before, _state(est))


def test_fit_rejects_all_zero_sample_weight(rng):
    """fit keeps scikit-learn's rule: a fit without any weight is an error (state unchanged)."""
    X = _data(rng, n=40)
    est = BatchNormalizer().fit(X)
    before = _state(est)
    with pytest.raises(ValueError, match="non-zero"):
        est.fit(X, sample_weight=np.zeros(40))
    _assert_same_state(before, _state(est))


@pytest.mark.parametrize("momentum", [None, 0.3])
def test_partial_fit_zero_weight_chunk_changes_nothing(rng, momentum):
    """A stream chunk whose weights are all zero is valid and leaves the state as if it were
    absent (fit accepts the same rows inside a larger weighted fit)."""
    X = _data(rng, n=40)
    w = rng.uniform(0.5, 2.0, 40)
    w[10:25] = 0.0
    whole = BatchNormalizer(momentum=None).fit(X, sample_weight=w)
    streamed = BatchNormalizer(momentum=momentum)
    for s in (slice(0, 10), slice(10, 25), slice(25, 40)):
        streamed.partial_fit(X[s], sample_weight=w[s])
    without = BatchNormalizer(momentum=momentum)
    for s in (slice(0, 10), slice(25, 40)):
        without.partial_fit(X[s], sample_weight=w[s])
    _assert_same_state(_state(without), _state(streamed))
    if momentum is None:
        assert_allclose(streamed.mean_, whole.mean_, rtol=1e-12, equal_nan=True)
        assert_allclose(streamed.var_, whole.var_, rtol=1e-10, equal_nan=True)


@pytest.mark.parametrize("momentum", [None, 0.3])
def test_first_partial_fit_with_zero_weight(rng, momentum):
    """A first chunk without weight fixes the features; their statistics are NaN (as fit gives
    a feature with no value) until a chunk with weight arrives, and then equal that chunk's."""
    X = _data(rng, n=40)
    est = BatchNormalizer(momentum=momentum).partial_fit(X[:5], sample_weight=np.zeros(5))
    assert est.n_features_in_ == X.shape[1]
    assert np.isnan(est.mean_).all() and np.isnan(est.var_).all()
    assert np.all(est.n_samples_seen_ == 0)
    all_nan = BatchNormalizer().fit(np.full((3, X.shape[1]), np.nan))
    assert np.isnan(all_nan.mean_).all() and np.isnan(all_nan.var_).all()
    assert np.isnan(est.transform(X[:3])).all()
    est.partial_fit(X[5:], sample_weight=np.ones(35))
    ref_fit = BatchNormalizer().fit(X[5:], sample_weight=np.ones(35))
    assert_allclose(est.mean_, ref_fit.mean_, rtol=1e-12, equal_nan=True)
    assert_allclose(est.var_, ref_fit.var_, rtol=1e-10, equal_nan=True)
    assert_allclose(est.n_samples_seen_, ref_fit.n_samples_seen_)
    with pytest.raises(ValueError, match="wrong|features|expecting"):
        est.partial_fit(X[:, :-1])


@pytest.mark.parametrize(
    "params, error",
    [
        ({"momentum": -0.5}, ValueError),
        ({"momentum": 1.5}, ValueError),
        ({"momentum": "fast"}, TypeError),
        ({"eps": -1.0}, ValueError),
        ({"scale": [1.0, 2.0]}, ValueError),
        ({"shift": "x"}, TypeError),
    ],
)
def test_bad_parameters_raise_and_leave_state_unchanged(rng, params, error):
    X = _data(rng, n=40)
    est = BatchNormalizer().fit(X)
    before = _state(est)
    est.set_params(**params)
    with pytest.raises(error):
        est.partial_fit(X)
    after = _state(est)
    for key in params:  # only the parameter we set differs
        after[key] = before[key]
    _assert_same_state(before, after)


def test_copy_must_be_a_bool(rng):
    X = _data(rng, n=40)
    with pytest.raises(TypeError, match="copy"):
        BatchNormalizer(copy="yes").fit(X)
    bn = BatchNormalizer().fit(X)
    with pytest.raises(TypeError, match="copy"):
        bn.transform(X, copy="yes")


def test_momentum_zero_keeps_the_first_statistics(rng):
    """momentum=0 is in [0, 1]: the first batch initializes, later batches do not move them."""
    X = _data(rng, n=40)
    bn = BatchNormalizer(momentum=0.0).fit(X)
    mean, var = bn.mean_.copy(), bn.var_.copy()
    bn.partial_fit(X * 3.0 + 1.0)
    assert_allclose(bn.mean_, mean, rtol=0, atol=0)
    assert_allclose(bn.var_, var, rtol=0, atol=0)


def test_row_normalizer_layout_errors(rng):
    X = rng.normal(size=(10, 6))
    with pytest.raises(ValueError, match="n_groups=4 must divide"):
        GroupNormalizer(4).fit(X)
    with pytest.raises(ValueError, match="n_channels=4 must divide"):
        InstanceNormalizer(4).fit(X)
    with pytest.raises(ValueError, match="at least 2 values"):
        InstanceNormalizer(6).fit(X)
    with pytest.raises(TypeError, match="n_groups"):
        GroupNormalizer(2.0).fit(X)
    with pytest.raises(ValueError, match="features"):
        GroupNormalizer(2).fit(X).transform(X[:, :4])
    for est in (
        LayerNormalizer(eps=-1.0),
        GroupNormalizer(2, eps=-1.0),
        InstanceNormalizer(2, eps=-1),
    ):
        with pytest.raises(ValueError, match="eps must be"):
            est.fit(X)


# ---------------------------------------------------------------------------------------------
# per-row normalizers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_normalizers_match_reference(rng, dtype):
    X = rng.normal(5.0, 3.0, (40, 12)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    cases = [
        (LayerNormalizer(eps=1e-3), 1),
        (GroupNormalizer(3, eps=1e-3), 3),
        (InstanceNormalizer(4, eps=1e-3), 4),
    ]
    for est, groups in cases:
        Y = est.fit_transform(X)
        assert_allclose(Y, row_group_normalize(X, groups, eps=1e-3), rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------------
# scikit-learn integration


def test_pipeline_column_transformer_and_grid_search(rng):
    X = rng.normal(3.0, 2.0, (120, 8))
    y = (X[:, 0] + X[:, 5] > 6).astype(int)

    pipe = make_pipeline(BatchNormalizer(), LogisticRegression())
    pipe.fit(X, y)
    manual = LogisticRegression().fit(BatchNormalizer().fit_transform(X), y)
    assert_allclose(
        pipe.predict_proba(X), manual.predict_proba(BatchNormalizer().fit(X).transform(X))
    )

    ct = ColumnTransformer(
        [
            ("bn", BatchNormalizer(), [0, 1, 2]),
            ("ln", LayerNormalizer(), [3, 4, 5, 6]),
            ("gn", GroupNormalizer(2), [4, 5, 6, 7]),
        ]
    )
    Y = ct.fit_transform(X)
    assert_allclose(Y[:, :3], BatchNormalizer().fit_transform(X[:, :3]))
    assert_allclose(Y[:, 3:7], LayerNormalizer().fit_transform(X[:, 3:7]))
    assert_allclose(Y[:, 7:], GroupNormalizer(2).fit_transform(X[:, 4:8]))

    grid = GridSearchCV(
        Pipeline([("bn", BatchNormalizer()), ("lr", LogisticRegression())]),
        {"bn__momentum": [None, 0.5], "bn__shift": [0.0, 2.0]},
        cv=3,
    ).fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    best = grid.best_estimator_.named_steps["bn"]
    assert_allclose(best.transform(X), clone(best).fit(X).transform(X))


@pytest.mark.parametrize("est", all_estimators(), ids=lambda e: type(e).__name__)
def test_clone_pickle_joblib(rng, est, tmp_path):
    X = rng.normal(2.0, 3.0, (60, 6))
    est = clone(est).fit(X)
    Y = est.transform(X)
    cloned = clone(est)
    assert cloned.get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        cloned.transform(X)
    restored = pickle.loads(pickle.dumps(est))
    assert_array_equal(restored.transform(X), Y)
    path = tmp_path / "est.joblib"
    joblib.dump(est, path)
    assert_array_equal(joblib.load(path).transform(X), Y)
    if isinstance(est, BatchNormalizer) and est.momentum is None:
        # the restored state keeps streaming exactly
        more = rng.normal(size=(20, 6))
        assert_allclose(restored.partial_fit(more).var_, est.partial_fit(more).var_, rtol=0)


@pytest.mark.parametrize("est", all_estimators()[1:], ids=lambda e: type(e).__name__)
def test_feature_names_and_set_output(rng, est):
    pd = pytest.importorskip("pandas")
    names = [f"f{i}" for i in range(6)]
    df = pd.DataFrame(rng.normal(size=(30, 6)), columns=names, index=np.arange(100, 130))
    est = clone(est).fit(df)
    assert_array_equal(est.feature_names_in_, names)
    assert_array_equal(est.get_feature_names_out(), names)
    expected = clone(est).fit(df.to_numpy()).transform(df.to_numpy())
    out = est.set_output(transform="pandas").transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == names
    assert_array_equal(out.index, df.index)
    assert_allclose(out.to_numpy(), expected)
    unnamed = clone(est).fit(df.to_numpy())
    assert_array_equal(unnamed.get_feature_names_out(), [f"x{i}" for i in range(6)])
    if isinstance(est, BatchNormalizer):  # the streaming fast path keeps the name checks
        with pytest.warns(UserWarning, match="feature names"):
            est.partial_fit(df.to_numpy())
        with pytest.raises(ValueError, match="feature names"):
            est.partial_fit(df.rename(columns={"f0": "g0"}))


def test_set_output_polars(rng):
    pl = pytest.importorskip("polars")
    X = rng.normal(size=(20, 4))
    df = pl.DataFrame(X, schema=["a", "b", "c", "d"])
    est = BatchNormalizer().set_output(transform="polars").fit(df)
    out = est.transform(df)
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["a", "b", "c", "d"]
    assert_allclose(out.to_numpy(), BatchNormalizer().fit(X).transform(X))


# ---------------------------------------------------------------------------------------------
# determinism


def test_statistics_bitwise_identical_for_1_and_2_threads(rng):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has fewer than 2 threads")
    from fastnorm._kernels.policy import STREAMING_MIN_ELEMENTS

    n = STREAMING_MIN_ELEMENTS // 64 + 100  # large enough for the parallel kernel
    X = _data(rng, n=n, f=64, nan_fraction=0.05, dtype=np.float32)
    w = rng.uniform(0.0, 2.0, X.shape[0])
    saved = numba.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            for weights in (None, w):
                bn = BatchNormalizer().fit(X, sample_weight=weights)
                results.append((threads, bn.mean_.tobytes(), bn.var_.tobytes()))
    finally:
        numba.set_num_threads(saved)
    assert results[0][1:] == results[2][1:]
    assert results[1][1:] == results[3][1:]
    # the serial twin used for small inputs computes the same blocks in the same order
    blocks = column_blocks(*X.shape)
    par = column_moments.parallel(X[None], w, True, *blocks)
    ser = column_moments.serial(X[None], w, True, *blocks)
    for a, b in zip(par[:3], ser[:3]):
        assert a.tobytes() == b.tobytes()


CONCURRENT = """
import sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from fastnorm import BatchNormalizer

rng = np.random.default_rng(0)
# fit and transform on 70,000 x 64 take the parallel kernels, partial_fit chunks the serial ones
data = [rng.normal(i, 1.0 + i, (70_000, 64)).astype(np.float32) for i in range(4)]

def work(X):
    est = BatchNormalizer()
    for i in range(0, X.shape[0], 7000):
        est.partial_fit(X[i:i + 7000])
    full = BatchNormalizer().fit(X)
    return est.mean_.tobytes() + est.var_.tobytes(), full.transform(X).tobytes()

alone = [work(X) for X in data]
with ThreadPoolExecutor(4) as pool:
    for _ in range(3):
        together = list(pool.map(work, data))
        assert together == alone, "concurrent results differ"
print("ok")
"""


def test_concurrent_python_threads_give_the_same_results():
    # in a subprocess: a threading layer that is not thread-safe aborts the whole process
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", CONCURRENT], cwd=repo, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")


@pytest.mark.parametrize("factor", [1e-14, 1e14])
def test_scale_of_sample_weights_does_not_change_the_result(rng, factor):
    """Constant features are decided by a rounding-error bound that counts samples: multiplying
    every weight by a constant must not change the transform (it used to zero every feature)."""
    X = rng.normal(size=(200, 5)) * [1.0, 1e-3, 1e3, 1.0, 1.0]
    X[:, 3] = 2.5  # truly constant
    w = rng.uniform(0.5, 2.0, X.shape[0])
    ref = BatchNormalizer(eps=0.0).fit(X, sample_weight=w)
    scaled = BatchNormalizer(eps=0.0).fit(X, sample_weight=w * factor)
    assert_allclose(scaled.transform(X), ref.transform(X), rtol=1e-9, atol=1e-12)
    assert np.all(scaled.transform(X)[:, 3] == 0.0)
    assert np.all(np.std(scaled.transform(X)[:, [0, 1, 2, 4]], axis=0) > 0.5)
    streamed = BatchNormalizer(eps=0.0)
    for part, wp in zip(np.array_split(X, 4), np.array_split(w * factor, 4)):
        streamed.partial_fit(part, sample_weight=wp)
    assert_allclose(streamed.transform(X), ref.transform(X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_recompute_statistics_replaces_moving_averages_by_exact_ones(rng, momentum):
    """Running averages of a drifting stream become the exact statistics of a reference set,
    and later partial_fit calls keep averaging from them (PreciseBN for transformers)."""
    stream = [rng.normal(loc, 1.0, (50, 4)) for loc in (0.0, 5.0, 10.0)]
    bn = BatchNormalizer(momentum=momentum)
    for chunk in stream:
        bn.partial_fit(chunk)
    X = _data(rng, n=300, f=4)
    w = rng.uniform(0.5, 2.0, 300)
    bn.recompute_statistics(X, sample_weight=w)
    _, mean, var = weighted_moments(X, w)
    assert_allclose(bn.mean_, mean, rtol=RTOL)
    assert_allclose(bn.var_, var, rtol=RTOL)
    assert bn.momentum == momentum
    before = bn.mean_.copy()
    bn.partial_fit(stream[0])
    if momentum is not None:  # one EMA step from the exact statistics
        _, mean0, _ = weighted_moments(stream[0])
        assert_allclose(bn.mean_, 0.9 * before + 0.1 * mean0, rtol=1e-12)
    with pytest.raises(ValueError, match="features"):
        bn.recompute_statistics(X[:, :3])


def test_float_momentum_after_exact_statistics_starts_from_them():
    """fit with momentum=None, then partial_fit with a float momentum: the exact statistics are
    the running averages' starting point (this raised KeyError: 'var')."""
    rng = np.random.default_rng(0)
    X1, X2 = rng.normal(3.0, 2.0, (200, 3)), rng.normal(-1.0, 0.5, (50, 3))
    scaler = BatchNormalizer().fit(X1)
    scaler.set_params(momentum=0.1).partial_fit(X2)
    np.testing.assert_allclose(scaler.mean_, 0.9 * X1.mean(0) + 0.1 * X2.mean(0), rtol=1e-12)
    np.testing.assert_allclose(scaler.var_, 0.9 * X1.var(0) + 0.1 * X2.var(0), rtol=1e-12)
    assert scaler.n_samples_seen_ == 250
