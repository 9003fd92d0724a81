"""The per-step fast paths of MLP training give the bits of the general paths they skip.

- ``batch_norm_forward`` on plain (N, C) training and eval calls (``columns_step``) against the
  same call made to take the general path (through ``out=``);
- ``ColumnsContext.backward`` with a C-contiguous gradient of the input's dtype against the same
  gradient in Fortran order (checked and copied by the general path);
- ``Optimizer.l2_squares`` (one dot product over the flat buffer) against the sum over the
  layers, and the training loss that uses it against the one computed layer by layer.
"""

import importlib

import numpy as np
import pytest

import fastnorm.functional as F
from fastnorm import nn
from fastnorm.neural_network import MLPClassifier
from fastnorm.neural_network._objective import Objective

# the module (fastnorm.functional.batch_norm is also the name of its function)
bn_module = importlib.import_module("fastnorm.functional.batch_norm")


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def _stats(rng, c, dtype):
    return rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2.0, c).astype(dtype)


@pytest.fixture
def count_fast_calls(monkeypatch):
    calls = []
    fast = bn_module.columns_step

    def counted(*args):
        result = fast(*args)
        if result is not None:  # served by the short path
            calls.append(1)
        return result

    monkeypatch.setattr(bn_module, "columns_step", counted)
    return calls


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("param_dtype", [None, np.float32, np.float64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("running", [True, False])
@pytest.mark.parametrize("axis", [1, -1])
def test_plain_training_call_has_the_bits_of_the_general_path(
    axis, running, dtype, param_dtype, relu, rng, count_fast_calls
):
    x = (rng.standard_normal((32, 24)) * 3 + 100).astype(dtype)
    x[3, 2] = np.nan
    x[5, 4] = -0.0
    c = x.shape[1]
    w = b = None
    if param_dtype is not None:
        w, b = (
            rng.standard_normal(c).astype(param_dtype),
            rng.standard_normal(c).astype(param_dtype),
        )
    stats = _stats(rng, c, dtype) if running else (None, None)
    stats_general = tuple(None if s is None else s.copy() for s in stats)
    activation = "relu" if relu else None

    y, ctx = F.batch_norm_forward(
        x, *stats, w, b, True, 0.1, 1e-5, axis=axis, activation=activation
    )
    assert len(count_fast_calls) == 1
    y_general, ctx_general = F.batch_norm_forward(
        x, *stats_general, w, b, True, 0.1, 1e-5, axis=axis, activation=activation,
        out=np.empty_like(x),
    )  # fmt: skip
    assert len(count_fast_calls) == 1  # out= takes the general path
    _same(y, y_general)
    for got, want in zip(stats, stats_general):
        if got is not None:
            _same(got, want)

    g = rng.standard_normal(x.shape).astype(dtype)
    with np.errstate(invalid="ignore"):
        got, want = ctx.backward(g), ctx_general.backward(g)
    for got_part, want_part in zip(got, want):
        _same(got_part, want_part)


@pytest.mark.parametrize("eps", [0.0, 1e-5])
@pytest.mark.parametrize("param_dtype", [None, np.float32, np.float64])
@pytest.mark.parametrize("stats_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [1, -1])
@pytest.mark.parametrize("rows", [1, 40])
def test_plain_eval_call_has_the_bits_of_the_general_path(
    rows, axis, dtype, stats_dtype, param_dtype, eps, rng, count_fast_calls
):
    """Eval mode: the kernel's float64 mean, 1 / sqrt(var + eps) and scale round as the general
    path's NumPy steps, including a zero variance (inf with eps 0) and a negative one (NaN)."""
    x = (rng.standard_normal((rows, 24)) * 3 + 100).astype(dtype)
    x[0, 2] = np.nan
    c = x.shape[1]
    rm, rv = _stats(rng, c, stats_dtype)
    rv[5] = 0.0
    rv[6] = -1.0
    w = b = None
    if param_dtype is not None:
        w, b = (
            rng.standard_normal(c).astype(param_dtype),
            rng.standard_normal(c).astype(param_dtype),
        )
    rm_before, rv_before = rm.copy(), rv.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        y, ctx = F.batch_norm_forward(x, rm, rv, w, b, False, 0.1, eps, axis=axis)
        assert len(count_fast_calls) == 1
        y_general, ctx_general = F.batch_norm_forward(
            x, rm, rv, w, b, False, 0.1, eps, axis=axis, out=np.empty_like(x)
        )
        assert len(count_fast_calls) == 1  # out= takes the general path
        _same(y, y_general)
        _same(rm, rm_before)  # eval mode reads the running statistics only
        _same(rv, rv_before)
        g = rng.standard_normal(x.shape).astype(dtype)
        for got_part, want_part in zip(ctx.backward(g), ctx_general.backward(g)):
            _same(got_part, want_part)


@pytest.mark.parametrize("shape", [(0, 6), (5, 0), (1, 6)])
def test_eval_short_path_on_empty_single_row_and_read_only_statistics(shape, rng, count_fast_calls):
    x = rng.standard_normal(shape).astype(np.float32)
    rm, rv = _stats(rng, shape[1], np.float32)
    rm.flags.writeable = rv.flags.writeable = False  # eval mode only reads them
    y, ctx = F.batch_norm_forward(x, rm, rv, training=False)
    assert len(count_fast_calls) == 1
    y_general, ctx_general = F.batch_norm_forward(x, rm, rv, training=False, out=np.empty_like(x))
    _same(y, y_general)
    g = np.ones_like(x)
    for got_part, want_part in zip(ctx.backward(g), ctx_general.backward(g)):
        _same(got_part, want_part)


@pytest.mark.parametrize(
    "change", ["relu", "no running stats", "strided running_mean", "list running_var", "training=0"]
)
def test_other_eval_calls_take_the_general_path(change, rng, count_fast_calls):
    x = rng.standard_normal((16, 8)).astype(np.float32)
    rm, rv = _stats(rng, 8, np.float32)
    kwargs = dict(running_mean=rm, running_var=rv, training=False)
    if change == "relu":
        kwargs["activation"] = "relu"
    elif change == "no running stats":
        kwargs["running_mean"] = kwargs["running_var"] = None
    elif change == "strided running_mean":
        kwargs["running_mean"] = np.repeat(rm, 2)[::2]
    elif change == "list running_var":
        kwargs["running_var"] = rv.tolist()
    elif change == "training=0":
        kwargs["training"] = 0
    refused = ("no running stats", "list running_var", "training=0")  # the general path's errors
    try:
        y, _ = F.batch_norm_forward(x, **kwargs)
    except (TypeError, ValueError):
        assert change in refused
    else:
        assert change not in refused
        want = F.batch_norm(x, rm, rv, training=False, axis=np.int64(1))  # the general path
        if change == "relu":
            want = np.maximum(want, 0)
        _same(y, want)
    assert count_fast_calls == []


@pytest.mark.parametrize(
    "change",
    [
        "int input",
        "3-D input",
        "one row",
        "Fortran order",
        "int momentum",
        "numpy eps",
        "axis 0",
        "read-only running_var",
        "weight list",
        "float16 bias",
        "running_mean alone",
        "training=1",
        "numpy True training",
        "momentum None",
        "nan eps",
        "float16 input",
        "bool axis",
    ],
)
def test_other_calls_take_the_general_path(change, rng, count_fast_calls):
    """Anything outside the plain case, valid or not, goes through the general path, which
    checks it and gives the result or the error it always gave."""
    x = rng.standard_normal((16, 8)).astype(np.float32)
    rm, rv = _stats(rng, 8, np.float32)
    w, b = np.ones(8, np.float32), np.zeros(8, np.float32)
    kwargs = dict(running_mean=rm, running_var=rv, weight=w, bias=b, training=True)
    kwargs.update(momentum=0.1, eps=1e-5)
    if change == "int input":
        x = np.arange(128).reshape(16, 8)
    elif change == "3-D input":
        x = x.reshape(16, 8, 1)
    elif change == "one row":
        x = x[:1]
    elif change == "Fortran order":
        x = np.asfortranarray(x)
    elif change == "int momentum":
        kwargs["momentum"] = 1
    elif change == "numpy eps":
        kwargs["eps"] = np.float64(1e-5)
    elif change == "axis 0":
        kwargs["axis"] = 0
        x = rng.standard_normal((8, 16)).astype(np.float32)
    elif change == "read-only running_var":
        rv.flags.writeable = False
    elif change == "weight list":
        kwargs["weight"] = [1.0] * 8
    elif change == "float16 bias":
        kwargs["bias"] = b.astype(np.float16)
    elif change == "running_mean alone":
        kwargs["running_var"] = None
    elif change == "training=1":
        kwargs["training"] = 1
    elif change == "numpy True training":
        kwargs["training"] = np.True_
    elif change == "momentum None":
        kwargs["momentum"] = None
    elif change == "nan eps":
        kwargs["eps"] = float("nan")
    elif change == "float16 input":
        x = x.astype(np.float16)
    elif change == "bool axis":
        kwargs["axis"] = True
    before = rm.copy()
    try:
        F.batch_norm_forward(x, **kwargs)
    except (TypeError, ValueError):
        _same(rm, before)  # a refused call changes nothing
    assert count_fast_calls == []


def test_columns_backward_fast_branch_matches_the_checked_one(rng):
    x = rng.standard_normal((64, 16)).astype(np.float32)
    _, ctx = F.batch_norm_forward(x, training=True, activation="relu")
    g = rng.standard_normal(x.shape).astype(np.float32)
    fast = ctx.backward(g)
    checked = ctx.backward(np.asfortranarray(g))  # not C-contiguous: the general branch
    for a, b in zip(fast, checked):
        _same(a, b)
    with pytest.raises(ValueError, match="grad_out"):
        ctx.backward(g[:, :8])


def _fitted(alpha, solver="adam", dtype=np.float32):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 12)).astype(dtype)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = MLPClassifier(
        (16, 8), normalization="batch", solver=solver, alpha=alpha, batch_size=32, max_iter=2,
        random_state=0,
    )  # fmt: skip
    with pytest.warns(Warning):  # not converged in 2 epochs
        model.fit(X, y)
    return model, X, y


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_l2_squares_is_the_sum_over_the_linear_weights(solver):
    model, _, _ = _fitted(1e-3, solver)
    opt = model._optimizer
    linears = [m for m in model.net_ if isinstance(m, nn.Linear)]
    want = sum(np.sum(m.weight.astype(np.float64) ** 2) for m in linears)
    got = opt.l2_squares()
    assert got == pytest.approx(want, rel=1e-5)
    # a weight array replaced by the user: the buffer is rebuilt around the new array
    linears[0].params["weight"] = np.zeros_like(linears[0].weight)
    rest = sum(np.sum(m.weight.astype(np.float64) ** 2) for m in linears[1:])
    assert opt.l2_squares() == pytest.approx(rest, rel=1e-5)


def test_l2_squares_needs_a_flat_optimizer_and_builds_its_buffer():
    net = nn.Sequential(nn.Linear(4, 3, random_state=0), nn.Linear(3, 2, random_state=1))
    assert nn.Adam(net).l2_squares() is None  # not flat
    assert nn.Adam(net, flat=True).l2_squares() is None  # no l2_names
    want = sum(float(np.sum(m.weight.astype(np.float64) ** 2)) for m in net)
    flat = nn.Adam(net, flat=True, l2_names=("0.weight", "1.weight"))
    assert flat.l2_squares() == pytest.approx(want, rel=1e-6)  # before any step
    assert np.shares_memory(net[1].weight, flat._group.p)  # the weights now live in the buffer


def test_training_loss_with_flat_squares_matches_the_layer_sum():
    model, X, y = _fitted(0.5)
    out = model.net_.forward(X[:32])
    labels = np.searchsorted(model.classes_, y[:32])
    objective = Objective("log_loss", 0.5, model.net_)
    by_layers = objective(out, labels, None)[0]
    flat = objective(out, labels, None, model._optimizer.l2_squares())[0]
    assert flat == pytest.approx(by_layers, rel=1e-6)
    data_only = Objective("log_loss", 0.0, model.net_)(out, labels, None)[0]
    assert flat - data_only > 0.1 * (by_layers - data_only)  # the penalty is in it


def test_training_loop_takes_the_penalty_from_the_flat_buffer(monkeypatch):
    """One ``l2_squares`` per mini-batch, and the loss it gives is the one summed layer by layer
    (with ``l2_squares`` answering None, the objective sums the layers itself)."""
    calls = []
    squares = nn.Adam.l2_squares

    def counted(self):
        calls.append(1)
        return squares(self)

    monkeypatch.setattr(nn.Adam, "l2_squares", counted)
    flat, _, _ = _fitted(0.5)
    assert len(calls) == 2 * 3  # 2 epochs of 3 mini-batches
    monkeypatch.setattr(nn.Adam, "l2_squares", lambda self: None)
    by_layers, _, _ = _fitted(0.5)
    assert flat.loss_curve_ == pytest.approx(by_layers.loss_curve_, rel=1e-6)
    monkeypatch.setattr(nn.Adam, "l2_squares", counted)
    calls.clear()
    _fitted(0.0)  # no penalty: nothing to sum
    assert calls == []
