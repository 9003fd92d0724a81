"""MLP inference: results against a float64 NumPy reference and PyTorch, row invariance (a row
predicted alone equals, bitwise, the same row predicted in any batch, at any thread count), and
predictions that follow edited, loaded and unpickled weights without rebuilding anything."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import reference as ref

from fastnorm import MLPClassifier, MLPRegressor, load
from fastnorm._kernels import inference as kernels
from fastnorm.functional.inference import (
    ROWS,
    block_buffer,
    from_blocks,
    linear_blocks,
    rows_norm_blocks,
    rows_softmax,
    to_blocks,
)
from fastnorm.neural_network import _base, _inference
from fastnorm.nn import GELU, BatchNorm, GroupNorm, LayerNorm, Linear, ReLU, RMSNorm, Sigmoid, Tanh

NORMS = [None, "batch", "batch_renorm", "ghost_batch", "layer", "group", "rms"]
ACTIVATIONS = ["relu", "tanh", "logistic", "gelu", "identity"]
SIZES = (1, 2, 63, 64, 65, 1000)


def _fit(cls=MLPClassifier, n=600, f=12, seed=0, **params):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, f)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int) + (X[:, 2] > 0.5)
    if cls is MLPRegressor:
        y = np.c_[X[:, 0] - 2 * X[:, 1], X[:, 2] * X[:, 3]]
    params = {"hidden_layer_sizes": (24, 20), "max_iter": 5, "random_state": 0} | params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence
        return cls(**params).fit(X, y), X


def _output(model, X):
    return model.predict_proba(X) if isinstance(model, MLPClassifier) else model.predict(X)


def _assert_row_invariant(model, X, rng, sizes=SIZES):
    full = _output(model, X)
    for size in sizes:
        for start in {0, len(X) - size, *rng.integers(0, len(X) - size + 1, 3).tolist()}:
            part = _output(model, X[start : start + size])
            np.testing.assert_array_equal(part, full[start : start + size], err_msg=f"{size}")


# ------------------------------------------------------------------ row invariance
@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_row_alone_equals_the_row_in_any_batch(normalization, dtype, rng):
    model, _ = _fit(normalization=normalization, dtype=dtype, virtual_batch_size=8)
    X = rng.standard_normal((3000, 12)).astype(np.float32)  # three tasks, a partial block
    _assert_row_invariant(model, X, rng)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_row_invariance_holds_for_every_activation(activation, rng):
    for cls in (MLPClassifier, MLPRegressor):
        model, _ = _fit(cls, activation=activation, normalization="batch")
        _assert_row_invariant(model, rng.standard_normal((1500, 12)).astype(np.float32), rng)


def test_row_invariance_at_50k_rows_and_one_or_two_threads(monkeypatch, rng):
    model, _ = _fit(normalization="batch", hidden_layer_sizes=(256, 96), n_threads=1)
    X = rng.standard_normal((50_000, 12)).astype(np.float32)
    one = model.predict_proba(X)
    _assert_row_invariant(model, X, rng)
    threaded, pooled = [], []
    kernel, pool = kernels.linear_t.parallel, _inference._pool
    monkeypatch.setattr(kernels.linear_t, "parallel", lambda *a: threaded.append(1) or kernel(*a))
    monkeypatch.setattr(_inference, "_pool", lambda: pooled.append(1) or pool())
    model.set_params(n_threads=2)
    np.testing.assert_array_equal(model.predict_proba(X), one)  # tasks shared by two threads
    assert pooled and not threaded
    np.testing.assert_array_equal(model.predict_proba(X[:500]), one[:500])  # one task
    assert threaded  # threads inside each layer
    _assert_row_invariant(model, X, rng, sizes=(1, 65, 4097))


def test_a_row_gives_the_same_result_at_every_place_in_a_block(rng):
    """The mechanism: rows are vector lanes, each computed by the same fma chain."""
    W = rng.standard_normal((13, 300)).astype(np.float32)
    b = rng.standard_normal(13).astype(np.float32)
    row = rng.standard_normal(300).astype(np.float32)
    n = 2 * ROWS + 37
    results = []
    for place in [0, 1, 15, 16, 17, ROWS - 1, ROWS, n - 1]:
        X = rng.standard_normal((n, 300)).astype(np.float32)
        X[place] = row
        At = block_buffer(n, 300, np.float32)
        assert to_blocks(X, 0, n, At) == 0  # no row with a NaN or an infinity
        C = linear_blocks(W, At, n, block_buffer(n, 13, np.float32), bias=b, relu=True)
        results.append(from_blocks(C, n, np.empty((n, 13), np.float32))[place])
    for width in (16, 48, ROWS):  # the block width does not matter either
        At = block_buffer(1, 300, np.float32, width)
        to_blocks(row[None], 0, 1, At)
        C = linear_blocks(W, At, 1, block_buffer(1, 13, np.float32, width), bias=b, relu=True)
        results.append(C[0, :, 0].copy())
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_float64_or_strided_input_gives_the_result_of_its_float32_cast(rng):
    model, _ = _fit(normalization="batch")
    X64 = rng.standard_normal((200, 24))[:, ::2]  # float64, not contiguous
    expected = model.predict_proba(np.ascontiguousarray(X64, np.float32))
    np.testing.assert_array_equal(model.predict_proba(X64), expected)
    np.testing.assert_array_equal(model.predict_proba(np.asfortranarray(X64)), expected)


# ------------------------------------------------------------------ against references
def _reference_forward(net, X):
    """float64 forward pass of an eval-mode net, layer by layer, with tests/reference.py."""
    h = np.asarray(X, np.float64)
    for layer in net:
        p = {k: np.asarray(v, np.float64) for k, v in layer.params.items()}
        if isinstance(layer, Linear):
            h = h @ p["weight"].T + p.get("bias", 0.0)
        elif isinstance(layer, BatchNorm):
            h = ref.batch_norm(h, layer.running_mean, layer.running_var, p.get("weight"),
                               p.get("bias"), eps=layer.eps)  # fmt: skip
        elif isinstance(layer, LayerNorm):
            h = ref.layer_norm(h, layer.normalized_shape, p.get("weight"), p.get("bias"), layer.eps)
        elif isinstance(layer, RMSNorm):
            h = ref.rms_norm(h, layer.normalized_shape, p.get("weight"), layer.eps)
        elif isinstance(layer, GroupNorm):
            h = ref.group_norm(h, layer.num_groups, p.get("weight"), p.get("bias"), layer.eps)
        elif isinstance(layer, ReLU):
            h = np.maximum(h, 0)
        elif isinstance(layer, Tanh):
            h = np.tanh(h)
        elif isinstance(layer, Sigmoid):
            h = 1 / (1 + np.exp(-h))
        elif isinstance(layer, GELU):
            from scipy.special import erf

            h = h * 0.5 * (1 + erf(h / np.sqrt(2)))
    return h


def _softmax64(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predictions_match_a_float64_reference(normalization, activation, dtype, rng):
    model, _ = _fit(normalization=normalization, activation=activation, dtype=dtype)
    X = rng.standard_normal((700, 12))
    logits = _reference_forward(model.net_, X.astype(dtype))
    tol = {np.float32: 2e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(model.predict_proba(X), _softmax64(logits), rtol=tol, atol=tol)
    np.testing.assert_allclose(
        model.predict_log_proba(X), np.log(_softmax64(logits)), rtol=tol, atol=10 * tol
    )
    reg, _ = _fit(MLPRegressor, normalization=normalization, activation=activation, dtype=dtype)
    out = _reference_forward(reg.net_, X.astype(dtype)) * reg._y_scale + reg._y_mean
    np.testing.assert_allclose(reg.predict(X), out, rtol=tol, atol=tol * np.abs(out).max())


def test_predict_proba_matches_pytorch_eval_mode(torch, rng):
    model, _ = _fit(normalization="batch", hidden_layer_sizes=(64, 32), max_iter=20)
    layers, fan_in = [], 12
    for h in (64, 32):
        layers += [torch.nn.Linear(fan_in, h, bias=False), torch.nn.BatchNorm1d(h), torch.nn.ReLU()]
        fan_in = h
    layers.append(torch.nn.Linear(fan_in, model.n_outputs_))
    net = torch.nn.Sequential(*layers)
    net.load_state_dict(
        {k: torch.from_numpy(np.array(v)) for k, v in model.net_.state_dict().items()}
    )
    X = rng.standard_normal((1000, 12)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(net.eval()(torch.from_numpy(X)), dim=1).numpy()
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-5, atol=1e-6)


def test_rows_softmax_and_rows_norm_match_the_reference(rng):
    z = rng.standard_normal((77, 9)).astype(np.float32) * 30
    np.testing.assert_allclose(rows_softmax(z), _softmax64(z.astype(np.float64)), rtol=1e-14)
    shifted = z - z.max(axis=1, keepdims=True).astype(np.float64)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(rows_softmax(z, log=True), log_p, rtol=1e-14, atol=1e-15)
    X = rng.standard_normal((300, 24)) * 3 + 5
    w, b = rng.standard_normal(24), rng.standard_normal(24)
    cases = [
        ((1, True, w, b, 1e-5), ref.layer_norm(X, 24, w, b, 1e-5)),
        ((4, True, w, b, 1e-3), ref.group_norm(X, 4, w, b, 1e-3)),
        ((1, False, w, None, 1e-6), ref.rms_norm(X, 24, w, 1e-6)),
    ]
    for args, expected in cases:
        At = block_buffer(300, 24, np.float64)
        to_blocks(X, 0, 300, At)
        got = from_blocks(rows_norm_blocks(At, 300, *args), 300, np.empty((300, 24)))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_nan_in_the_network_stays_nan():
    model, X = _fit(normalization="batch")
    model.net_.layers[1].running_var[0] = np.nan  # a broken batch norm: NaN, not a silent 0
    assert np.isnan(model.predict_proba(X[:5])).all()


# ------------------------------------------------------------------ weights changed by the user
def test_predictions_follow_in_place_edits_of_coefs_and_statistics(rng):
    model, X = _fit(normalization="batch")
    before = model.predict_proba(X)
    model.coefs_[0][...] *= 0.5  # a view of the first layer's weight
    halved = model.predict_proba(X)
    assert not np.allclose(halved, before)
    model.coefs_[0][...] *= 2.0
    np.testing.assert_array_equal(model.predict_proba(X), before)
    model.intercepts_[-1][...] += np.arange(model.n_outputs_, dtype=np.float32)
    shifted = model.predict_proba(X)
    logits = _reference_forward(model.net_, X)
    np.testing.assert_allclose(shifted, _softmax64(logits), rtol=2e-5, atol=2e-5)
    bn = model.net_.layers[1]
    bn.running_mean += 1.0
    np.testing.assert_allclose(
        model.predict_proba(X), _softmax64(_reference_forward(model.net_, X)), atol=2e-5
    )
    bn.params["weight"][...] = 0  # every row: the same hidden layer
    flat = model.predict_proba(X)
    np.testing.assert_array_equal(flat, np.broadcast_to(flat[:1], flat.shape))


def test_predictions_follow_refits_partial_fits_folds_and_loads(tmp_path, rng):
    model, X = _fit(normalization="batch")
    y = model.predict(X)
    before = model.predict_proba(X)
    model.partial_fit(X, y)
    after = model.predict_proba(X)
    assert not np.array_equal(after, before)
    np.testing.assert_allclose(after, _softmax64(_reference_forward(model.net_, X)), atol=2e-5)
    model.set_params(hidden_layer_sizes=(7,), max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    np.testing.assert_allclose(
        model.predict_proba(X), _softmax64(_reference_forward(model.net_, X)), atol=2e-5
    )
    model.save(tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    folded = copy.deepcopy(model).fold_batchnorm()
    np.testing.assert_allclose(folded.predict_proba(X), model.predict_proba(X), atol=1e-5)
    other, _ = _fit(normalization="batch", hidden_layer_sizes=(7,), max_iter=2, seed=1)
    model.net_.load_state_dict(other.net_.state_dict())
    np.testing.assert_array_equal(model.predict_proba(X), other.predict_proba(X))


def test_pickles_and_copies_predict_the_same_without_rebuilding(monkeypatch, rng):
    model, X = _fit(normalization="batch")
    expected = model.predict_proba(X)
    size = len(pickle.dumps(model))
    copies = []
    monkeypatch.setattr(copy, "deepcopy", lambda *a, **k: copies.append(1))
    monkeypatch.setattr(_base, "inference_copy", lambda *a, **k: copies.append(1))
    for _ in range(3):
        model.predict_proba(X[:64])
    monkeypatch.undo()
    assert copies == []  # nothing copied per call: the steps read the layers' arrays
    assert len(pickle.dumps(model)) == size  # and nothing is kept for a pickle to carry
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        monkeypatch.setattr(copy, "deepcopy", lambda *a, **k: copies.append(1))
        np.testing.assert_array_equal(other.predict_proba(X), expected)
        monkeypatch.undo()
    assert copies == []


def test_a_layer_the_steps_do_not_know_runs_as_a_float64_copy(rng):
    model, X = _fit(normalization="batch")
    expected = model.predict_proba(X)
    bn = model.net_.layers[1]
    bn.track_running_stats = False  # eval mode would use batch statistics: no per-row answer
    running = bn.running_mean, bn.running_var
    bn.running_mean = bn.running_var = None
    assert _inference.build_steps(model.net_) is None
    assert not np.allclose(model.predict_proba(X), expected, atol=1e-3)
    bn.track_running_stats = True
    bn.running_mean, bn.running_var = running
    np.testing.assert_array_equal(model.predict_proba(X), expected)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_bad_input_still_names_X(value):
    model, X = _fit()
    bad = np.repeat(X, 3, axis=0).astype(np.float64)  # several tasks: found by a worker thread
    bad[1234, 3] = value
    with pytest.raises(ValueError, match=r"Input X contains"):
        model.predict_proba(bad)
    with pytest.raises(ValueError, match=r"Input X contains"):
        model.set_params(n_threads=1).predict(bad[1234:1235])
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :5])
    with pytest.raises(ValueError, match="0 sample"):
        model.predict(X[:0])
