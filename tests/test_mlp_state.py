"""MLP estimators: parameters declared once, inference from the current weights, and pickles that
hold the model and its optimizer state but no training data."""

import io
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification

from fastnorm import MLPClassifier, MLPRegressor
from fastnorm.neural_network import TrainingDivergedError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=300, n_features=10, n_informative=6, n_classes=3, random_state=0
    )
    return X.astype(np.float32), y


@pytest.mark.parametrize(
    "params, error, name",
    [
        (dict(hidden_layer_sizes="64"), TypeError, "hidden_layer_sizes"),
        (dict(hidden_layer_sizes=(2.5,)), TypeError, "hidden_layer_sizes"),
        (dict(hidden_layer_sizes=(8, 0)), ValueError, "hidden_layer_sizes"),
        (dict(solver="sgd", momentum=2), ValueError, "momentum"),
        (dict(verbose="loud"), TypeError, "verbose"),
        (dict(verbose=-1), ValueError, "verbose"),
        (dict(shuffle="yes"), TypeError, "shuffle"),
        (dict(early_stopping=1), TypeError, "early_stopping"),
        (dict(activation="swish"), ValueError, "activation"),
        (dict(solver="lbfgs"), ValueError, "solver"),
        (dict(dropout=1.0), ValueError, "dropout"),
        (dict(batch_size="big"), ValueError, "batch_size"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(max_iter=2.5), TypeError, "max_iter"),
        (dict(n_threads=0), ValueError, "n_threads"),
        (dict(dtype=np.int32), TypeError, "dtype"),
    ],
)
def test_rejected_parameters_are_named(data, params, error, name):
    X, y = data
    with pytest.raises(error, match=rf"^{name} must be"):
        MLPClassifier(**{"max_iter": 1, **params}).fit(X, y)


def test_bn_momentum_error_names_bn_momentum(data):
    X, y = data
    with pytest.raises(ValueError, match=r"^bn_momentum must be") as info:
        MLPClassifier(normalization="batch", bn_momentum=1.5, max_iter=1).fit(X, y)
    assert "bn_momentum" in str(info.value)


@pytest.mark.parametrize(
    "params",
    [
        dict(verbose=0),
        dict(verbose=False),
        dict(hidden_layer_sizes=8),
        dict(batch_size=16),
        dict(bn_momentum=None, normalization="batch"),
        dict(hidden_layer_sizes=np.array([8, 4])),
    ],
)
def test_accepted_parameters(data, params):
    X, y = data
    MLPClassifier(max_iter=1, random_state=0, **params).fit(X, y)


def test_predictions_follow_edited_and_loaded_weights(data):
    X, y = data
    model = MLPClassifier((16,), normalization="batch", max_iter=5, random_state=0).fit(X, y)
    other = MLPClassifier((16,), normalization="batch", max_iter=5, random_state=1).fit(X, y)
    before = model.predict_proba(X)
    assert list(model.net_.state_dict()) == [
        "0.weight",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
        "3.weight",
        "3.bias",
    ]
    model.net_.load_state_dict(other.net_.state_dict())
    np.testing.assert_array_equal(model.predict_proba(X), other.predict_proba(X))
    model.net_.layers[0].params["weight"][...] = 0  # in place
    edited = model.predict_proba(X)
    assert not np.allclose(edited, other.predict_proba(X))
    # zero first-layer weights: every row has the same hidden input, so the same prediction
    np.testing.assert_allclose(edited, np.broadcast_to(edited[:1], edited.shape), rtol=1e-12)
    assert not np.allclose(before, edited)
    # row invariance still holds
    rows = np.vstack([model.predict_proba(X[i : i + 1]) for i in range(10)])
    np.testing.assert_allclose(rows, model.predict_proba(X[:10]), rtol=1e-10, atol=1e-12)


def _pickled_arrays(obj):
    """Shapes of every NumPy array a pickle of ``obj`` holds, and the pickle's size."""
    shapes = []

    class Recorder(pickle.Pickler):
        def reducer_override(self, o):
            if isinstance(o, np.ndarray):
                shapes.append(o.shape)
            return NotImplemented

    buf = io.BytesIO()
    Recorder(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return shapes, len(buf.getvalue())


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_pickle_holds_no_training_rows(cls):
    X, y = load_digits(return_X_y=True)
    X = X[:1000]
    y = y[:1000] if cls is MLPClassifier else y[:1000].astype(float)
    model = cls(
        (64,), normalization="batch", dropout=0.1, max_iter=3, batch_size=500, random_state=0
    ).fit(X, y)
    shapes, size = _pickled_arrays(model)
    assert shapes and not any(s[:1] in ((500,), (1000,)) for s in shapes), shapes
    param_bytes = sum(p.nbytes for p in model.net_.params.values())
    # the parameters and Adam's two moment estimates, plus a few kB of Python objects
    assert size < 3 * param_bytes + 20_000, (size, param_bytes)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict(X), model.predict(X))
    clone.partial_fit(X, y)  # the unpickled model trains on
    assert clone.n_iter_ == 1 and len(clone.loss_curve_) == len(model.loss_curve_) + 1


def test_failed_fit_restores_every_fitted_attribute(data):
    X, y = data
    model = MLPClassifier((8,), max_iter=2, random_state=0).fit(X, y)
    model.extra_ = "set by the user"
    before = {k: v for k, v in vars(model).items()}
    weights = model.net_.state_dict()
    model.set_params(warm_start=True, solver="sgd", learning_rate_init=1e30)
    with pytest.raises(TrainingDivergedError):
        model.fit(X * 1e10, y)
    assert set(vars(model)) == set(before)
    assert model.extra_ == "set by the user" and model.n_iter_ == before["n_iter_"]
    for key, value in model.net_.state_dict().items():
        np.testing.assert_array_equal(value, weights[key])
