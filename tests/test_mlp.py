"""fastnorm.MLPClassifier / MLPRegressor: scikit-learn API, inference statistics, folding,
PreciseBN, bad input, divergence, and accuracy on digits."""

import pickle
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastnorm import MLPClassifier, MLPRegressor
from fastnorm.neural_network import TrainingDivergedError
from fastnorm.nn import BatchNorm, Linear

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _expected_failures(est):
    """Sample weights equal repeated rows up to rounding (batch norm's statistics weighted too):
    in float64 the check passes; in float32 the two fits differ by ~2e-7 (summation order),
    above its rtol of 1e-7."""
    failures = {}
    if getattr(est, "loss", None) == "poisson":
        # this check draws negative targets whatever the positive_only tag says
        failures["check_regressor_multioutput"] = "negative targets for a Poisson loss"
    if est.normalization == "ghost_batch":
        failures["check_sample_weight_equivalence_on_dense_data"] = "ghost statistics unweighted"
    elif np.dtype(est.dtype) == np.float32:
        failures["check_sample_weight_equivalence_on_dense_data"] = "float32 rounding"
    return failures


# small, fast settings: check_estimator fits dozens of times
@parametrize_with_checks(
    [
        MLPClassifier(
            (8,), normalization="batch", learning_rate_init=0.02, max_iter=60, random_state=0
        ),
        MLPClassifier(
            (8,), normalization="layer", learning_rate_init=0.02, max_iter=60, random_state=0
        ),
        MLPRegressor(
            (8,), normalization="batch", learning_rate_init=0.02, max_iter=60, random_state=0
        ),
        MLPRegressor((8,), learning_rate_init=0.02, max_iter=60, random_state=0),
        MLPClassifier((8,), learning_rate_init=0.02, max_iter=60, random_state=0, dtype=np.float64),
        MLPClassifier(
            (8,),
            normalization="batch",
            learning_rate_init=0.02,
            max_iter=60,
            random_state=0,
            dtype=np.float64,
        ),
        MLPClassifier(
            (8,), normalization="batch_renorm", learning_rate_init=0.02, max_iter=60, random_state=0
        ),
        MLPRegressor(
            (8,),
            normalization="ghost_batch",
            virtual_batch_size=4,
            learning_rate_init=0.02,
            max_iter=60,
            random_state=0,
            dtype=np.float64,
        ),
        MLPRegressor(
            (8,),
            normalization="layer",
            loss="squared_error",
            learning_rate_init=0.02,
            max_iter=60,
            random_state=0,
            dtype=np.float64,
        ),
        MLPRegressor((8,), loss="poisson", learning_rate_init=0.02, max_iter=60, random_state=0),
        MLPRegressor(
            (8,),
            solver="sgd",
            learning_rate="adaptive",
            learning_rate_init=0.02,
            max_iter=60,
            random_state=0,
        ),
        MLPClassifier(
            (8,),
            learning_rate="invscaling",
            power_t=0.25,
            learning_rate_init=0.1,
            max_iter=60,
            random_state=0,
        ),
        MLPClassifier(
            (8,),
            class_weight={0: 2.0, 1: 0.5},
            alpha=1e-2,
            learning_rate="cosine",
            max_iter=60,
            random_state=0,
            dtype=np.float64,
        ),
    ],
    expected_failed_checks=lambda est: _expected_failures(est),
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_classification(
        n_samples=600, n_features=12, n_informative=8, n_classes=3, random_state=0
    )
    X = (X * 4 + 3).astype(np.float32)  # offset and scale: batch norm has work to do
    return X, y


@pytest.fixture(scope="module")
def fitted_bn(blobs):
    X, y = blobs
    return MLPClassifier(
        (32, 16), normalization="batch", max_iter=15, batch_size=32, random_state=0
    ).fit(X, y)


# ---------------------------------------------------------------------------- inference
def test_pickle_round_trip(fitted_bn, blobs):
    X, _ = blobs
    clone = pickle.loads(pickle.dumps(fitted_bn))
    np.testing.assert_array_equal(clone.predict_proba(X), fitted_bn.predict_proba(X))
    np.testing.assert_array_equal(clone.predict(X), fitted_bn.predict(X))


def test_one_row_at_a_time_equals_whole_set(fitted_bn, blobs):
    X, _ = blobs
    whole = fitted_bn.predict_proba(X[:120])
    rows = np.vstack([fitted_bn.predict_proba(X[i : i + 1]) for i in range(120)])
    # inference runs in float64, so batching changes nothing beyond ~1e-16
    np.testing.assert_allclose(rows, whole, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(np.argmax(rows, 1), np.argmax(whole, 1))
    # and predicting never touches the running statistics
    bn = fitted_bn.net_[1]
    mean = bn.running_mean.copy()
    fitted_bn.predict(X[:7] * 100)
    np.testing.assert_array_equal(bn.running_mean, mean)


def test_inference_uses_running_statistics_not_batch_statistics(fitted_bn, blobs):
    X, _ = blobs
    shifted = X[:40] + 5.0  # batch statistics would hide a shift of the whole batch
    p_shift = fitted_bn.predict_proba(shifted)
    p_rows = np.vstack([fitted_bn.predict_proba(shifted[i : i + 1]) for i in range(40)])
    np.testing.assert_allclose(p_shift, p_rows, rtol=1e-10, atol=1e-12)
    assert not np.allclose(p_shift, fitted_bn.predict_proba(X[:40]), atol=1e-3)


def test_fold_batchnorm_predictions_equal(blobs):
    X, y = blobs
    model = MLPClassifier((32, 16), normalization="batch", max_iter=8, random_state=1).fit(X, y)
    before = model.predict_proba(X)
    n_layers = len(model.net_)
    assert model.fold_batchnorm() is model
    assert model.batchnorm_folded_
    assert len(model.net_) == n_layers - 2
    assert not any(isinstance(layer, BatchNorm) for layer in model.net_)
    np.testing.assert_allclose(model.predict_proba(X), before, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="fold_batchnorm"):
        model.partial_fit(X, y)
    model.set_params(warm_start=True)
    with pytest.raises(ValueError, match="fold_batchnorm"):
        model.fit(X, y)
    # a fresh fit rebuilds the batch-norm layers
    model.set_params(warm_start=False).fit(X, y)
    assert any(isinstance(layer, BatchNorm) for layer in model.net_)
    # without batch norm there is nothing to fold and the model stays trainable
    plain = MLPClassifier((8,), normalization="layer", max_iter=2, random_state=0).fit(X, y)
    proba = plain.predict_proba(X)
    assert not plain.fold_batchnorm().batchnorm_folded_
    np.testing.assert_array_equal(plain.predict_proba(X), proba)
    plain.partial_fit(X, y)


def _bn_inputs(model, X):
    """The input of every batch-norm layer, computed step by step in float64."""
    out = {}
    h = X.astype(np.float64)
    for i, layer in enumerate(model.net_):
        if isinstance(layer, BatchNorm):
            out[i] = h.copy()
            rstd = 1 / np.sqrt(layer.running_var.astype(np.float64) + layer.eps)
            h = (h - layer.running_mean) * rstd * layer.params["weight"] + layer.params["bias"]
        elif isinstance(layer, Linear):
            h = h @ layer.weight.T.astype(np.float64)
            if layer.bias is not None:
                h = h + layer.bias
        else:
            h = np.maximum(h, 0)
    return out


@pytest.mark.parametrize("batch_size", [7, 64, 10_000])
def test_recompute_batchnorm_statistics_is_exact(blobs, batch_size):
    X, y = blobs
    model = MLPClassifier(
        (24, 16), normalization="batch", max_iter=3, bn_momentum=0.5, random_state=0
    ).fit(X, y)
    weights = {k: v.copy() for k, v in model.net_.params.items()}
    assert model.recompute_batchnorm_statistics(X, batch_size=batch_size) is model
    inputs = _bn_inputs(model, X)  # uses the recomputed statistics of earlier layers
    assert len(inputs) == 2
    for i, h in inputs.items():
        bn = model.net_[i]
        np.testing.assert_allclose(bn.running_mean, h.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(bn.running_var, h.var(0, ddof=1), rtol=1e-4, atol=1e-6)
    for k, v in model.net_.params.items():  # weights frozen
        np.testing.assert_array_equal(v, weights[k])


def test_recompute_batchnorm_statistics_changes_moving_averages(blobs):
    X, y = blobs
    model = MLPClassifier(
        (16,), normalization="batch", max_iter=2, bn_momentum=0.9, random_state=0
    ).fit(X, y)
    before = model.net_[1].running_var.copy()
    model.recompute_batchnorm_statistics(X)
    assert not np.allclose(before, model.net_[1].running_var, rtol=1e-3)


# ---------------------------------------------------------------------------- training API
def test_attributes_partial_fit_and_warm_start(blobs):
    X, y = blobs
    model = MLPClassifier((16,), normalization="layer", max_iter=4, random_state=0)
    with pytest.warns(ConvergenceWarning):
        model.fit(X, y)
    assert model.n_iter_ == 4 and len(model.loss_curve_) == 4
    assert model.best_loss_ == min(model.loss_curve_)
    assert model.validation_scores_ is None
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])
    # as scikit-learn: n_iter_ counts the epochs of the last call, t_ and loss_curve_ accumulate
    model.partial_fit(X, y)
    assert model.n_iter_ == 1 and len(model.loss_curve_) == 5 and model.t_ == 5 * len(X)
    model.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert model.n_iter_ == 2 and len(model.loss_curve_) == 7 and model.t_ == 7 * len(X)
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    fresh = MLPClassifier((16,), max_iter=1, random_state=0)
    with pytest.raises(ValueError, match="classes"):
        fresh.partial_fit(X, y)
    fresh.partial_fit(X[:50], y[:50], classes=[0, 1, 2, 3])
    np.testing.assert_array_equal(fresh.classes_, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="not in classes"):
        fresh.partial_fit(X[:5], np.full(5, 7))


def test_early_stopping_keeps_best_validation_model(blobs):
    X, y = blobs
    model = MLPClassifier(
        (16,),
        normalization="batch",
        early_stopping=True,
        n_iter_no_change=3,
        max_iter=60,
        learning_rate_init=0.05,
        random_state=0,
    ).fit(X, y)
    assert len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_)
    assert model.n_iter_ < 60


def test_fit_is_reproducible_with_random_state(blobs):
    X, y = blobs
    kw = dict(hidden_layer_sizes=(16,), normalization="batch", dropout=0.2, max_iter=3)
    a = MLPClassifier(random_state=3, **kw).fit(X, y).predict_proba(X)
    b = MLPClassifier(random_state=3, **kw).fit(X, y).predict_proba(X)
    c = MLPClassifier(random_state=4, **kw).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("norm", [None, "batch", "layer", "group", "rms"])
@pytest.mark.parametrize("solver", ["adam", "adamw", "sgd"])
def test_all_normalizations_and_solvers_learn(blobs, norm, solver):
    X, y = blobs
    model = MLPClassifier(
        (16, 16),
        normalization=norm,
        norm_groups=4,
        solver=solver,
        activation="gelu" if norm == "rms" else "relu",
        dropout=0.1,
        learning_rate_init=0.01,
        max_iter=10,
        random_state=0,
    ).fit(X, y)
    assert model.loss_curve_[-1] < 0.7 * model.loss_curve_[0]
    assert model.score(X, y) > 0.55  # chance is 1/3; 10 epochs only


def test_regressor_multioutput_and_float64():
    X, y = make_regression(n_samples=300, n_features=6, n_targets=2, noise=1.0, random_state=0)
    y = y / y.std(0)
    model = MLPRegressor(
        (32,),
        normalization="batch",
        dtype=np.float64,
        max_iter=100,
        learning_rate_init=0.01,
        random_state=0,
    ).fit(X, y)
    assert model.predict(X).shape == (300, 2)
    assert model.net_[0].weight.dtype == np.float64
    assert model.score(X, y) > 0.9
    one = MLPRegressor((8,), max_iter=2, random_state=0).fit(X, y[:, 0])
    assert one.predict(X).shape == (300,)


def test_verbose_progress_bar_and_fallback(blobs, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    X, y = blobs
    MLPClassifier((8,), max_iter=2, verbose=True, random_state=0).fit(X, y)
    err = capsys.readouterr().err
    # one bar for the whole fit, one step per epoch
    assert err.count("0/2") == 1 and "2/2" in err and "loss=" in err and "MLPClassifier" in err
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    MLPClassifier((8,), max_iter=2, verbose=True, random_state=0).fit(X, y)
    out = capsys.readouterr()
    assert "Iteration 1, loss = " in out.out and "Iteration 2, loss = " in out.out
    assert "0/2" not in out.err
    MLPClassifier((8,), max_iter=2, verbose=False, random_state=0).fit(X, y)
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""  # verbose=False prints nothing


def test_n_threads_limits_and_restores(blobs):
    numba = pytest.importorskip("numba")
    from threadpoolctl import threadpool_info

    X, y = blobs
    before_numba = numba.get_num_threads()
    before_blas = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    model = MLPClassifier((8,), max_iter=2, n_threads=1, random_state=0).fit(X, y)
    model.predict(X)
    assert numba.get_num_threads() == before_numba
    assert [
        info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"
    ] == before_blas
    with pytest.raises(ValueError, match="n_threads"):
        MLPClassifier(n_threads=0).fit(X, y)


# ---------------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors(blobs):
    X, y = blobs
    clf = MLPClassifier((8,), normalization="batch", max_iter=2, random_state=0)
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(Xn, y)
    Xi = X.copy()
    Xi[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        clf.fit(Xi, y)
    yn = y.astype(float)
    yn[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(X, yn)
    with pytest.raises(ValueError, match="infinity|NaN"):
        MLPRegressor(max_iter=1).fit(X, np.where(np.arange(len(y)) == 1, np.inf, 1.0))
    with pytest.raises(ValueError, match="1 class"):
        clf.fit(X, np.zeros(len(X), int))
    with pytest.raises(NotFittedError):
        clf.predict(X)
    clf.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :5])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :5], y)
    with pytest.raises(ValueError, match="batch_size >= 2"):
        MLPClassifier(normalization="batch", batch_size=1).fit(X, y)
    with pytest.raises(ValueError, match="1 sample"):
        MLPRegressor(normalization="batch").fit(X[:1], [1.0])
    with pytest.raises(ValueError, match="norm_groups"):
        MLPClassifier((10,), normalization="group", norm_groups=4).fit(X, y)
    with pytest.raises(ValueError, match="normalization"):
        MLPClassifier(normalization="instance").fit(X, y)


def test_batch_size_larger_than_data_is_clipped(blobs):
    X, y = blobs
    with pytest.warns(UserWarning, match="clipped"):
        model = MLPClassifier(
            (8,), normalization="batch", batch_size=10_000, max_iter=3, random_state=0
        ).fit(X, y)
    assert model._optimizer.step_count == 3  # one full batch per epoch
    assert model.t_ == 3 * X.shape[0]  # samples seen, as scikit-learn counts


def test_single_row_last_batch_is_merged_for_batch_norm(blobs):
    X, y = blobs
    model = MLPClassifier(
        (8,), normalization="batch", batch_size=33, max_iter=1, random_state=0
    ).fit(X[:67], y[:67])  # 33 + 33 + 1 rows
    assert model._optimizer.step_count == 2 and model.t_ == 67
    assert np.isfinite(model.predict_proba(X)).all()


def test_divergence_stops_with_clear_message():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5)).astype(np.float32) * 1e3
    y = X @ rng.standard_normal(5) * 1e15
    reg = MLPRegressor((16,), solver="sgd", learning_rate_init=10.0, max_iter=20, random_state=0)
    with pytest.raises(TrainingDivergedError, match="diverged"):
        reg.fit(X, y)
    with pytest.raises(NotFittedError):  # no garbage model left behind
        reg.predict(X)
    # a warm start that diverges leaves the previous model in place
    ok = MLPRegressor((16,), max_iter=3, random_state=0).fit(X, y / 1e15 / 1e3)
    before = ok.predict(X)
    n_iter = ok.n_iter_
    ok.set_params(warm_start=True, solver="sgd", learning_rate_init=10.0)
    with pytest.raises(TrainingDivergedError):
        ok.fit(X, y)
    np.testing.assert_array_equal(ok.predict(X), before)
    assert ok.n_iter_ == n_iter


# ---------------------------------------------------------------------------- quality
def test_digits_accuracy_at_least_sklearn():
    from sklearn.neural_network import MLPClassifier as SkMLP

    X, y = load_digits(return_X_y=True)
    ours, theirs = [], []
    for seed in range(2):
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
        ours.append(
            MLPClassifier((64,), normalization="batch", random_state=seed)
            .fit(Xtr, ytr)
            .score(Xte, yte)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            theirs.append(SkMLP((64,), random_state=seed).fit(Xtr, ytr).score(Xte, yte))
    assert np.mean(ours) >= np.mean(theirs), (ours, theirs)
