"""MLP model files: ``save`` / ``fastnorm.load`` (an .npz without pickle), and skops."""

import json
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import fastnorm
from fastnorm import MLPClassifier, MLPRegressor
from fastnorm.neural_network._network import initial_rng
from fastnorm.nn import BatchNorm

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

EXPLICIT = ("net_", "_optimizer", "_rng")

# the types skops must be told to trust (documented in docs/persistence.rst)
SKOPS_TRUSTED = {
    "fastnorm.neural_network.MLPClassifier",
    "fastnorm.neural_network.MLPRegressor",
    "fastnorm.nn.container.Sequential",
    "fastnorm.nn.layers.Linear",
    "fastnorm.nn.layers.Dropout",
    "fastnorm.nn.layers.ReLU",
    "fastnorm.nn.layers.GELU",
    "fastnorm.nn.layers.Tanh",
    "fastnorm.nn.layers.Sigmoid",
    "fastnorm.nn.layers.Identity",
    "fastnorm.nn.normalization.BatchNorm",
    "fastnorm.nn.normalization.LayerNorm",
    "fastnorm.nn.normalization.GroupNorm",
    "fastnorm.nn.normalization.RMSNorm",
    "fastnorm.nn.optim.Adam",
    "fastnorm.nn.optim.AdamW",
    "fastnorm.nn.optim.SGD",
    "numpy.dtype",
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    return X, y


def fitted(kind, X, y):
    """``(estimator, targets it was fitted on)``."""
    common = dict(max_iter=3, batch_size=16, random_state=0)
    if kind == "clf_batch":
        return MLPClassifier((8,), normalization="batch", **common).fit(X, y), y
    if kind == "clf_str_dropout_early":
        labels = np.array(["ant", "bee", "cat"])[y]
        est = MLPClassifier(
            (8, 4), normalization="batch", dropout=0.2, early_stopping=True, **common
        )
        return est.fit(X, labels), labels
    if kind == "clf_layer_sgd_f64":
        est = MLPClassifier(
            [8], activation="tanh", normalization="layer", solver="sgd", dtype=np.float64, **common
        )
        return est.fit(X, y), y
    if kind == "reg_group_2d":
        est = MLPRegressor((8,), normalization="group", norm_groups=4, **common)
        return est.fit(X, X[:, :2]), X[:, :2]
    if kind == "reg_rms_adamw_1d":
        est = MLPRegressor(
            (8,), activation="gelu", normalization="rms", solver="adamw", dropout=0.1, **common
        )
        return est.fit(X, X[:, 0]), X[:, 0]
    if kind == "clf_folded":
        est, y = fitted("clf_batch", X, y)
        return est.fold_batchnorm(), y
    if kind == "clf_weighted_cosine":
        est = MLPClassifier(
            (8,), class_weight={0: 2.0, 2: 0.5}, learning_rate="cosine", alpha=0.01, **common
        )
        return est.fit(X, y, sample_weight=np.linspace(0.5, 2.0, len(y))), y
    if kind == "reg_poisson":
        counts = np.round(np.exp(X[:, 0])).astype(int)
        return MLPRegressor((8,), loss="poisson", **common).fit(X, counts), counts
    raise AssertionError(kind)


KINDS = [
    "clf_batch",
    "clf_str_dropout_early",
    "clf_layer_sgd_f64",
    "reg_group_2d",
    "reg_rms_adamw_1d",
    "clf_folded",
    "clf_weighted_cosine",
    "reg_poisson",
]


def outputs(est, X):
    if hasattr(est, "predict_proba"):
        return est.predict_proba(X), est.predict(X)
    return (est.predict(X),)


def assert_same_attributes(a, b):
    names = [k for k in a._fitted_names() if k not in EXPLICIT]
    assert sorted(names) == sorted(k for k in b._fitted_names() if k not in EXPLICIT)
    for k in names:
        va, vb = vars(a)[k], vars(b)[k]
        assert type(va) is type(vb), k
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype and np.array_equal(va, vb), k
        else:
            assert va == vb or (va != va and vb != vb), k


def assert_same_network(a, b):
    sa, sb = a.net_.state_dict(), b.net_.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and sa[k].tobytes() == sb[k].tobytes(), k


@pytest.mark.parametrize("include_optimizer", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_is_bitwise(data, tmp_path, kind, include_optimizer):
    X, y = data
    est, _ = fitted(kind, X, y)
    path = tmp_path / "model.npz"
    assert est.save(path, include_optimizer=include_optimizer) is None
    loaded = fastnorm.load(path)
    assert type(loaded) is type(est)
    # JSON has no tuples: sequence parameters come back as tuples, even if given as lists
    assert loaded.get_params() == {
        k: tuple(v) if isinstance(v, list) else v for k, v in est.get_params().items()
    }
    assert isinstance(loaded.hidden_layer_sizes, tuple)
    assert isinstance(loaded.dtype, np.dtype) and loaded.dtype == np.dtype(est.dtype)
    assert_same_attributes(loaded, est)
    assert_same_network(loaded, est)
    for a, b in zip(outputs(loaded, X), outputs(est, X)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert repr(loaded.net_) == repr(est.net_)


def test_folded_model_has_no_batch_norm_and_stays_untrainable(data, tmp_path):
    X, y = data
    est, _ = fitted("clf_folded", X, y)
    est.save(tmp_path / "m.npz")
    loaded = fastnorm.load(tmp_path / "m.npz")
    assert loaded.batchnorm_folded_ is True and loaded._optimizer is None
    assert not any(isinstance(m, BatchNorm) for m in loaded.net_.modules())
    with pytest.raises(ValueError, match="fold_batchnorm"):
        loaded.partial_fit(X, y)


def test_feature_names_and_path_without_suffix(data, tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = data
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = MLPRegressor((4,), max_iter=2, random_state=1).fit(frame, X[:, 0])
    path = tmp_path / "regressor.model"  # written as named: no ".npz" appended
    est.save(path)
    assert os.listdir(tmp_path) == ["regressor.model"]
    loaded = fastnorm.load(str(path))
    assert loaded.feature_names_in_.dtype == object
    assert list(loaded.feature_names_in_) == list(frame.columns)
    assert np.array_equal(loaded.predict(frame), est.predict(frame))


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_after_load_continues_exactly(data, tmp_path, solver):
    """With include_optimizer=True, training continues as if the model had never been saved:
    optimizer moments, the shuffling generator and the dropout generators are restored."""
    X, y = data
    est = MLPClassifier(
        (8,),
        normalization="batch",
        dropout=0.25,
        solver=solver,
        max_iter=2,
        batch_size=10,
        random_state=3,
    ).fit(X, y)
    est.save(tmp_path / "m.npz", include_optimizer=True)
    loaded = fastnorm.load(tmp_path / "m.npz")
    for _ in range(2):
        est.partial_fit(X, y)
        loaded.partial_fit(X, y)
    assert_same_network(loaded, est)
    assert_same_attributes(loaded, est)
    sa, sb = est._optimizer.state_dict(), loaded._optimizer.state_dict()
    assert sa["step_count"] == sb["step_count"] and sa["state"].keys() == sb["state"].keys()
    for k in sa["state"]:
        for s, v in sa["state"][k].items():
            assert np.array_equal(v, sb["state"][k][s]), (k, s)
    assert np.array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_without_optimizer_state_training_restarts_the_optimizer(data, tmp_path):
    X, y = data
    est = MLPClassifier((8,), max_iter=2, random_state=5).fit(X, y)
    est.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        assert not [k for k in npz.files if k.startswith("optimizer/")]
        doc = json.loads(npz["model.json"].tobytes())
    assert doc["optimizer"] is None and doc["rng"] is None
    loaded = fastnorm.load(tmp_path / "m.npz")
    assert all(not s for s in loaded._optimizer.state.values())
    fresh = initial_rng(5)
    fresh.integers(0, 2**63 - 1, size=3)  # the draws of build_network for one hidden layer
    assert loaded._rng.bit_generator.state == fresh.bit_generator.state
    loaded.partial_fit(X, y)
    assert loaded.t_ > est.t_


SECRET = 7654.321  # a value no parameter, statistic or label can take


def training_rows(cls):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 5))
    X[:, 2] = SECRET
    y = (X[:, 0] > 0).astype(int) if cls is MLPClassifier else X[:, 0]
    return X, y


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_saved_files_and_pickles_hold_no_training_rows(tmp_path, cls):
    X, y = training_rows(cls)
    est = cls((6,), normalization="batch", dropout=0.2, max_iter=2, random_state=0).fit(X, y)
    path = tmp_path / "m.npz"
    est.save(path, include_optimizer=True)
    param_shapes = {v.shape for v in est.net_.state_dict().values()}
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert json.loads(arrays.pop("model.json").tobytes())  # the description: no arrays of rows
    for key, a in arrays.items():
        assert a.shape in param_shapes or (key == "attr/classes_" and a.shape == (2,)), key
        if a.dtype.kind == "f":
            assert not np.isclose(a, SECRET, rtol=1e-6).any(), key
    blob = pickle.dumps(est)
    for value in (SECRET, X[0, 0], X[-1, 1]):
        for dtype in (np.float32, np.float64):
            assert np.asarray(value, dtype).tobytes() not in blob, (value, dtype)
    assert all(not m._saved for m in pickle.loads(blob).net_.modules())


# ---------------------------------------------------------------------- bad files
@pytest.fixture
def saved(data, tmp_path):
    X, y = data
    path = tmp_path / "m.npz"
    MLPClassifier((4,), normalization="batch", max_iter=2, random_state=0).fit(X, y).save(
        path, include_optimizer=True
    )
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return path, arrays


def rewrite(path, arrays, doc=None, changes=()):
    """Write ``arrays`` with the description ``doc`` and ``changes`` (key -> array, or None to
    drop the key) applied."""
    arrays = dict(arrays)
    if doc is not None:
        arrays["model.json"] = np.frombuffer(json.dumps(doc).encode(), np.uint8)
    for key, value in dict(changes).items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def description(arrays):
    return json.loads(arrays["model.json"].tobytes())


def doc_with(arrays, **changes):
    return {**description(arrays), **changes}


def test_truncated_file(saved):
    path, _ = saved
    data = path.read_bytes()
    for size in (len(data) // 2, len(data) - 30, 10, 0):
        path.write_bytes(data[:size])
        with pytest.raises(ValueError, match=r"cannot load model file .*m\.npz.*(corrupt|trunc)"):
            fastnorm.load(path)


@pytest.mark.parametrize(
    "doc, match",
    [
        (lambda a: doc_with(a, format="sklearn.mlp"), "format 'sklearn.mlp' is not"),
        (lambda a: doc_with(a, format_version=99), "format version 99 .* newer"),
        (lambda a: doc_with(a, estimator="os.system"), "unknown estimator class 'os.system'"),
        (lambda a: doc_with(a, estimator=["MLPClassifier"]), "unknown estimator class"),
        (lambda a: [1, 2], "must be a JSON object, got list"),
        (lambda a: doc_with(a, params=[]), "'params' must be a JSON object"),
        (
            lambda a: doc_with(a, optimizer={"class": "SGD"}),
            "optimizer state of 'SGD', the solver's is Adam",
        ),
        (lambda a: doc_with(a, params={"solver": "lbfgs"}), "solver"),
        (lambda a: doc_with(a, attributes={"n_iter_": {"eval": "1"}}), "unexpected JSON value"),
        (lambda a: {k: v for k, v in description(a).items() if k != "attributes"}, "lacks"),
    ],
)
def test_altered_description(saved, doc, match):
    path, arrays = saved
    rewrite(path, arrays, doc=doc(arrays))
    with pytest.raises(ValueError, match=r"cannot load model file .*m\.npz.*" + match):
        fastnorm.load(path)


def test_description_that_is_not_json(saved):
    path, arrays = saved
    rewrite(path, arrays, changes={"model.json": np.frombuffer(b"{not json", np.uint8)})
    with pytest.raises(ValueError, match="not valid JSON"):
        fastnorm.load(path)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"model.json": None}, "'model.json' .* is missing"),
        ({"net/0.weight": None}, "the array 'net/0.weight' is missing"),
        ({"attr/classes_": None}, "the array 'attr/classes_' is missing"),
        ({"optimizer/0.weight/exp_avg": None}, "'optimizer/0.weight/exp_avg' is missing"),
        ({"net/0.weight": np.zeros((3, 6), np.float32)}, r"'net/0.weight' has shape \(3, 6\)"),
        ({"net/0.weight": np.zeros((4, 6))}, "dtype float64, expected .* float32"),
        ({"optimizer/3.bias/exp_avg": np.zeros(7, np.float32)}, "has shape"),
        ({"extra": np.arange(3)}, r"unexpected arrays \['extra'\]"),
        ({"attr/classes_": np.array([object(), 1], dtype=object)}, "pickled"),
    ],
)
def test_altered_arrays(saved, changes, match):
    path, arrays = saved
    rewrite(path, arrays, changes=changes)
    with pytest.raises(ValueError, match=r"cannot load model file .*m\.npz.*" + match):
        fastnorm.load(path)


def test_not_an_archive(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.arange(3))
    with pytest.raises(ValueError, match="not an .npz archive"):
        fastnorm.load(path)
    with pytest.raises(FileNotFoundError):
        fastnorm.load(tmp_path / "missing.npz")


def test_save_rejects_what_a_file_cannot_hold(data, tmp_path):
    X, y = data
    with pytest.raises(NotFittedError):
        MLPClassifier().save(tmp_path / "m.npz")
    est = MLPClassifier((4,), max_iter=1, random_state=np.random.RandomState(0)).fit(X, y)
    with pytest.raises(ValueError, match="parameter random_state=RandomState.* not JSON"):
        est.save(tmp_path / "m.npz")
    est.set_params(random_state=0)
    est._fitted_extra_ = object()
    with pytest.raises(ValueError, match="fitted attribute _fitted_extra_ holds object"):
        est.save(tmp_path / "m.npz")
    del est._fitted_extra_
    est.set_params(hidden_layer_sizes=(5,))
    with pytest.raises(ValueError, match="no longer matches its parameters"):
        est.save(tmp_path / "m.npz")
    assert not os.listdir(tmp_path)  # nothing written, no temporary file left behind


def test_new_plain_attributes_are_saved_without_code_changes(data, tmp_path):
    X, y = data
    est = MLPRegressor((4,), max_iter=1, random_state=0).fit(X, X[:, 0])
    est._y_mean = np.array([0.5])
    est.n_layers_ = 2
    est.out_activation_ = "identity"
    est._flags_ = (True, None, np.float32(1.5), float("-inf"))
    est.save(tmp_path / "m.npz")
    loaded = fastnorm.load(tmp_path / "m.npz")
    assert_same_attributes(loaded, est)
    assert type(loaded._flags_[2]) is np.float32


def test_load_is_reachable_and_import_stays_light():
    code = (
        "import sys, fastnorm; assert 'sklearn' not in sys.modules; "
        "assert callable(fastnorm.load) and 'load' in dir(fastnorm)"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root)


# ---------------------------------------------------------------------- skops
@pytest.mark.parametrize("kind", KINDS)
def test_skops_round_trip(data, kind):
    sio = pytest.importorskip("skops.io")
    X, y = data
    est, targets = fitted(kind, X, y)
    blob = sio.dumps(est)
    untrusted = sio.get_untrusted_types(data=blob)
    assert set(untrusted) <= SKOPS_TRUSTED
    loaded = sio.loads(blob, trusted=untrusted)
    assert type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    for a, b in zip(outputs(loaded, X), outputs(est, X)):
        assert np.array_equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if not est.batchnorm_folded_:
            loaded.partial_fit(X, targets)
