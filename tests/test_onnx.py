"""ONNX export (``to_onnx``): onnxruntime's outputs equal predict / predict_proba, for every
normalization, activation, target kind and the batch-norm folding; errors; optional import."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from fastnorm import MLPClassifier, MLPRegressor
from fastnorm.nn import GELU, BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TOL = {"rtol": 1e-5, "atol": 1e-5}
NORMALIZATIONS = [None, "batch", "layer", "group", "rms"]
ACTIVATIONS = ["relu", "gelu", "tanh", "logistic", "identity"]
SMALL = {"hidden_layer_sizes": (8, 8), "norm_groups": 2, "max_iter": 3, "random_state": 0}


def run(model, X):
    """onnxruntime's outputs on ``X`` (fed as float32), by output name."""
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"X": np.asarray(X, np.float32)})))


def ops(model):
    return [node.op_type for node in model.graph.node]


def data(rng, n=40, d=5):
    return rng.normal(size=(n, d))


def assert_classifier_matches(clf, X):
    out = run(clf.to_onnx(), X)
    assert list(out) == ["label", "probabilities"]
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(X), **TOL)
    np.testing.assert_array_equal(out["label"], clf.predict(X))
    return out


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_classifier_matches_predict_proba(rng, normalization, activation):
    X, y = data(rng), rng.integers(0, 3, 40)
    clf = MLPClassifier(
        activation=activation, normalization=normalization, dropout=0.2, **SMALL
    ).fit(X, y)
    assert_classifier_matches(clf, X)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_multi_output_regressor_matches_predict(rng, normalization, activation):
    X, y = data(rng), rng.normal(size=(40, 3))
    reg = MLPRegressor(activation=activation, normalization=normalization, **SMALL).fit(X, y)
    out = run(reg.to_onnx(), X)
    assert list(out) == ["variable"]
    np.testing.assert_allclose(out["variable"], reg.predict(X), **TOL)


def test_single_output_regressor_gives_a_column(rng):
    X, y = data(rng), rng.normal(size=40)
    reg = MLPRegressor(**SMALL).fit(X, y)
    out = run(reg.to_onnx(), X)["variable"]
    assert reg.predict(X).shape == (40,) and out.shape == (40, 1)
    np.testing.assert_allclose(out[:, 0], reg.predict(X), **TOL)


def test_regressor_target_standardization_is_undone(rng):
    X, y = data(rng), rng.normal(size=(40, 2))
    reg = MLPRegressor(normalization="batch", **SMALL).fit(X, y)
    expected = reg._forward(X) * np.array([3.0, 0.5]) + np.array([10.0, -2.0])
    reg._y_scale = np.array([3.0, 0.5])
    reg._y_mean = np.array([10.0, -2.0])
    model = reg.to_onnx()
    assert ops(model)[-2:] == ["Mul", "Add"]
    np.testing.assert_allclose(run(model, X)["variable"], expected, **TOL)


def test_poisson_regressor_exports_the_log_link(rng):
    X = data(rng, n=60)
    y = rng.poisson(np.exp(0.5 * X[:, 0]) * 2.0)
    reg = MLPRegressor(loss="poisson", **SMALL).fit(X, y)
    model = reg.to_onnx()
    assert ops(model)[-1] == "Exp"
    out = run(model, X)["variable"]
    np.testing.assert_allclose(out[:, 0], reg.predict(X), **TOL)


@pytest.mark.parametrize(
    "classes",
    [
        [0, 1],
        [-3, 7, 12],
        ["no", "yes"],
        ["ant", "bee", "cat", "dog"],
        [False, True],
        [1.0, 2.0, 4.0],
    ],
    ids=["binary-int", "multiclass-int", "binary-str", "multiclass-str", "bool", "float"],
)
def test_labels_have_the_classes_dtype(rng, classes):
    X = data(rng, n=60)
    y = np.asarray(classes)[rng.integers(0, len(classes), 60)]
    clf = MLPClassifier(normalization="batch", **SMALL).fit(X, y)
    out = assert_classifier_matches(clf, X)
    assert out["probabilities"].shape == (60, len(classes))
    assert out["label"].tolist() == clf.predict(X).tolist()
    if isinstance(classes[0], str):
        assert out["label"].dtype == object
    else:
        assert out["label"].dtype == clf.classes_.dtype


def test_object_string_classes(rng):
    X = data(rng)
    y = np.array(["a", "b", "c"], dtype=object)[rng.integers(0, 3, 40)]
    clf = MLPClassifier(**SMALL).fit(X, y)
    assert_classifier_matches(clf, X)


def test_folded_batchnorm_is_plain_gemm(rng):
    X, y = data(rng), rng.integers(0, 3, 40)
    clf = MLPClassifier(normalization="batch", **SMALL).fit(X, y)
    unfolded = clf.to_onnx()
    assert ops(unfolded).count("BatchNormalization") == 2
    assert_classifier_matches(clf, X)
    clf.fold_batchnorm()
    folded = clf.to_onnx()
    assert "BatchNormalization" not in ops(folded)
    assert ops(folded).count("Gemm") == 3
    assert_classifier_matches(clf, X)


def test_dropout_is_not_exported(rng):
    X, y = data(rng), rng.integers(0, 2, 40)
    clf = MLPClassifier(dropout=0.5, **SMALL).fit(X, y)
    assert ops(clf.to_onnx()) == ["Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax", "ArgMax"] + [
        "Gather"
    ]


@pytest.mark.parametrize(
    "normalization, op, opset",
    [
        (None, "Gemm", 17),
        ("batch", "BatchNormalization", 17),
        ("layer", "LayerNormalization", 17),
        ("group", "GroupNormalization", 21),
        ("rms", "RMSNormalization", 23),
    ],
)
def test_operators_and_opset(rng, normalization, op, opset):
    X, y = data(rng), rng.integers(0, 2, 40)
    model = MLPClassifier(normalization=normalization, **SMALL).fit(X, y).to_onnx()
    assert op in ops(model)
    assert model.opset_import[0].version == opset
    assert model.producer_name == "fastnorm"


def test_layer_attributes_are_mirrored(rng):
    """Non-default eps, group count and GELU's tanh form reach the graph (default eps values
    are too small for a wrong one to show)."""
    X, y = data(rng), rng.integers(0, 3, 40)
    for normalization, cls in [
        ("batch", BatchNorm),
        ("layer", LayerNorm),
        ("group", GroupNorm),
        ("rms", RMSNorm),
    ]:
        clf = MLPClassifier(activation="gelu", normalization=normalization, **SMALL).fit(X, y)
        for layer in clf.net_:
            if isinstance(layer, cls):
                layer.eps = 0.7
            if isinstance(layer, GroupNorm):
                layer.num_groups = 4
        assert_classifier_matches(clf, X * 0.01)  # small inputs: eps matters


def test_gelu_tanh_approximation(rng):
    X, y = data(rng) * 3, rng.normal(size=(40, 2))
    reg = MLPRegressor(activation="gelu", **SMALL).fit(X, y)
    exact = reg.predict(X)
    for layer in reg.net_:
        if isinstance(layer, GELU):
            layer.approximate = "tanh"
    tanh = reg.predict(X)
    assert np.abs(tanh - exact).max() > 1e-4  # far enough apart for the test to tell them apart
    assert 'approximate: string = "tanh"' in onnx.printer.to_text(reg.to_onnx())
    np.testing.assert_allclose(run(reg.to_onnx(), X)["variable"], tanh, **TOL)


def test_written_file_loads_back(rng, tmp_path):
    X, y = data(rng), rng.integers(0, 3, 40)
    clf = MLPClassifier(normalization="layer", **SMALL).fit(X, y)
    for path in (tmp_path / "model.onnx", str(tmp_path / "model2.onnx")):
        model = clf.to_onnx(path)
        loaded = onnx.load(path)
        assert loaded == model
        assert_classifier_matches(clf, X)
        np.testing.assert_allclose(run(loaded, X)["probabilities"], clf.predict_proba(X), **TOL)


def test_unfitted_estimators_raise():
    for est in (MLPClassifier(), MLPRegressor()):
        with pytest.raises(NotFittedError):
            est.to_onnx()


def test_unsupported_layers_are_named(rng):
    X, y = data(rng), rng.integers(0, 2, 40)
    clf = MLPClassifier(**SMALL).fit(X, y)
    clf.net_.layers[1] = InstanceNorm(8)
    with pytest.raises(ValueError, match="InstanceNorm"):
        clf.to_onnx()
    clf = MLPClassifier(normalization="batch", **SMALL).fit(X, y)
    clf.net_.layers[1] = BatchNorm(8, track_running_stats=False)
    with pytest.raises(ValueError, match="running statistics"):
        clf.to_onnx()


def test_missing_onnx_gives_the_install_hint(rng, monkeypatch):
    X, y = data(rng), rng.integers(0, 2, 40)
    clf = MLPClassifier(**SMALL).fit(X, y)
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.raises(ImportError, match=r'pip install "fastnorm\[onnx\]"'):
        clf.to_onnx()


def test_fastnorm_does_not_import_onnx():
    code = (
        "import sys, numpy as np, fastnorm\n"
        "from fastnorm import MLPClassifier, MLPRegressor\n"
        "MLPClassifier((4,), max_iter=1).fit(np.eye(4), [0, 1, 0, 1]).predict(np.eye(4))\n"
        "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONWARNINGS": "ignore"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env)
