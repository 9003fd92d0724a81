"""fastnorm.nn: layers, Sequential, losses and optimizers.

Gradients are checked against central finite differences in float64; optimizers against
hand-written update formulas; a 20-step training run against PyTorch (skipped without torch).
"""

import pickle

import numpy as np
import pytest

from fastnorm.nn import (
    GELU,
    SGD,
    Adam,
    AdamW,
    BatchNorm,
    CrossEntropyLoss,
    Dropout,
    GroupNorm,
    Identity,
    LayerNorm,
    Linear,
    MSELoss,
    ReLU,
    RMSNorm,
    Sequential,
    Sigmoid,
    Tanh,
    fold_batchnorm,
)
from fastnorm.nn.layers import init_bound
from fastnorm.nn.losses import log_softmax, softmax

F64 = np.float64


# ---------------------------------------------------------------------------- helpers
def _reseed_dropout(module, seed=123):
    """Give every Dropout a fresh generator with the same seed, so that repeated forward passes
    draw the same mask (needed for finite differences)."""
    layers = module.layers if isinstance(module, Sequential) else [module]
    for layer in layers:
        if isinstance(layer, Sequential):
            _reseed_dropout(layer, seed)
        elif isinstance(layer, Dropout):
            layer.rng = np.random.default_rng(seed)


def _loss_of(module, x, proj):
    _reseed_dropout(module)
    return float(np.sum(module.forward(x) * proj))


def _check_gradients(module, x, rtol=1e-5, atol=1e-7, h=1e-6):
    """Compare backward() with central differences for the input and every parameter."""
    rng = np.random.default_rng(1)
    _reseed_dropout(module)
    out = module.forward(x)
    proj = rng.standard_normal(out.shape)
    grad_x = module.backward(proj.astype(out.dtype))
    grads = {k: v.copy() for k, v in module.grads.items()}

    num_x = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        old = x[idx]
        x[idx] = old + h
        up = _loss_of(module, x, proj)
        x[idx] = old - h
        down = _loss_of(module, x, proj)
        x[idx] = old
        num_x[idx] = (up - down) / (2 * h)
    np.testing.assert_allclose(grad_x, num_x, rtol=rtol, atol=atol, err_msg="input gradient")

    params = module.params
    assert set(grads) == set(params)
    for key, p in params.items():
        num = np.zeros_like(p)
        for idx in np.ndindex(*p.shape):
            old = p[idx]
            p[idx] = old + h
            up = _loss_of(module, x, proj)
            p[idx] = old - h
            down = _loss_of(module, x, proj)
            p[idx] = old
            num[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(grads[key], num, rtol=rtol, atol=atol, err_msg=key)


def _randomize_affine(module, rng):
    for p in module.params.values():
        p[...] = rng.uniform(0.5, 1.5, p.shape)


# ---------------------------------------------------------------------------- layers
@pytest.mark.parametrize(
    "make",
    [
        lambda: Linear(4, 3, random_state=0, dtype=F64),
        lambda: Linear(4, 3, bias=False, init="glorot", random_state=0, dtype=F64),
        lambda: ReLU(),
        lambda: GELU(),
        lambda: GELU(approximate="tanh"),
        lambda: Tanh(),
        lambda: Sigmoid(),
        lambda: Identity(),
        lambda: Dropout(0.3, random_state=0),
    ],
    ids=[
        "linear",
        "linear-nobias",
        "relu",
        "gelu",
        "gelu-tanh",
        "tanh",
        "sigmoid",
        "identity",
        "dropout",
    ],
)
def test_layer_gradients(make):
    layer = make()
    x = np.random.default_rng(0).standard_normal((5, 4))
    _check_gradients(layer, x)


def test_sequential_gradients_all_layers_float64():
    rng = np.random.default_rng(0)
    net = Sequential(
        Linear(6, 8, random_state=1, dtype=F64),
        BatchNorm(8, dtype=F64),
        ReLU(),
        Dropout(0.25, random_state=2),
        Linear(8, 8, random_state=3, dtype=F64),
        LayerNorm(8, dtype=F64),
        GELU(),
        Linear(8, 8, random_state=4, dtype=F64),
        GroupNorm(2, 8, dtype=F64),
        Tanh(),
        Sequential(Linear(8, 8, random_state=5, dtype=F64), RMSNorm(8, dtype=F64), Sigmoid()),
        Linear(8, 3, random_state=6, dtype=F64),
    )
    for layer in (net[1], net[5], net[8], net[10][1]):
        _randomize_affine(layer, rng)
    x = rng.standard_normal((7, 6))
    # running-statistic updates do not change the batch-mode output, so repeated forwards are fine
    _check_gradients(net, x, rtol=1e-4, atol=1e-6)


def test_sequential_gradients_eval_mode_batchnorm():
    rng = np.random.default_rng(3)
    net = Sequential(
        Linear(5, 6, random_state=0, dtype=F64),
        BatchNorm(6, dtype=F64),
        ReLU(),
        Linear(6, 2, random_state=1, dtype=F64),
    )
    net.forward(rng.standard_normal((16, 5)))  # move the running statistics
    net.eval()
    _check_gradients(net, rng.standard_normal((4, 5)))


def test_linear_first_layer_can_skip_input_gradient():
    net = Sequential(Linear(3, 4, random_state=0), ReLU(), Linear(4, 2, random_state=1))
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    out = net.forward(x)
    full = net.backward(np.ones_like(out))
    grads = {k: v.copy() for k, v in net.grads.items()}
    net[0].input_grad = False
    net.forward(x)
    assert net.backward(np.ones_like(out)) is None
    assert full.shape == x.shape
    for k, v in net.grads.items():
        np.testing.assert_array_equal(v, grads[k])


def test_linear_init_is_seeded_and_bounded():
    a = Linear(300, 50, random_state=7)
    b = Linear(300, 50, random_state=np.random.default_rng(7))
    np.testing.assert_array_equal(a.weight, b.weight)
    assert not np.array_equal(a.weight, Linear(300, 50, random_state=8).weight)
    assert a.weight.dtype == np.float32 and a.weight.shape == (50, 300)
    bound = init_bound("he", 300, 50)
    assert np.abs(a.weight).max() <= bound
    # a uniform on [-b, b] has standard deviation b / sqrt(3)
    assert abs(a.weight.std() - bound / np.sqrt(3)) < 0.05 * bound
    g = Linear(300, 50, init="glorot", random_state=0)
    assert np.abs(g.weight).max() <= init_bound("glorot", 300, 50) < bound
    np.testing.assert_array_equal(a.bias, 0)
    with pytest.raises(ValueError, match="init"):
        Linear(3, 3, init="nope")


def test_dropout_modes():
    x = np.ones((400, 250), np.float32)
    d = Dropout(0.2, random_state=0)
    y = d.forward(x)
    kept = y != 0
    assert abs(kept.mean() - 0.8) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.8, rtol=1e-6)
    np.testing.assert_array_equal(d.backward(x), y)
    assert d.eval().forward(x) is x
    assert Dropout(0.0).forward(x) is x
    np.testing.assert_array_equal(Dropout(1.0).forward(x), 0)
    with pytest.raises(ValueError):
        Dropout(1.5)


def test_activations_values():
    x = np.linspace(-30, 30, 121)
    np.testing.assert_allclose(ReLU().forward(x), np.maximum(x, 0))
    np.testing.assert_allclose(Tanh().forward(x), np.tanh(x))
    s = Sigmoid().forward(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])
    from math import erf, sqrt

    expected = np.array([v * 0.5 * (1 + erf(v / sqrt(2))) for v in x])
    np.testing.assert_allclose(GELU().forward(x), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(GELU("tanh").forward(x), expected, rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------------------- Sequential
def test_sequential_params_are_flat_views_with_state_dict_keys():
    net = Sequential(
        Linear(3, 4, random_state=0),
        BatchNorm(4),
        ReLU(),
        Sequential(Linear(4, 2, random_state=1), RMSNorm(2)),
    )
    assert list(net.params) == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "3.0.weight",
        "3.0.bias",
        "3.1.weight",
    ]
    assert net.params["3.0.weight"] is net[3][0].params["weight"]
    net.params["0.weight"][...] = 5.0  # in-place update reaches the layer
    np.testing.assert_array_equal(net[0].weight, 5.0)
    x = np.ones((2, 3), np.float32)
    net.backward(np.ones_like(net.forward(x)))
    assert set(net.grads) == set(net.params)
    assert net.grads["3.1.weight"] is net[3][1].grads["weight"]


def test_sequential_train_eval_recursive():
    inner = Sequential(Dropout(0.5), BatchNorm(3))
    net = Sequential(Linear(3, 3), inner)
    assert net.eval() is net
    assert not inner.training and not inner[0].training and not inner[1].training
    net.train()
    assert inner[1].training and net[0].training
    with pytest.raises(TypeError):
        Sequential(Linear(2, 2), "relu")


def test_fold_batchnorm_sequential():
    rng = np.random.default_rng(0)
    net = Sequential(
        Linear(5, 8, random_state=0),
        BatchNorm(8),
        ReLU(),
        Linear(8, 8, bias=False, random_state=1),
        BatchNorm(8),
        GELU(),
        Linear(8, 3, random_state=2),
    )
    for _ in range(5):  # non-trivial running statistics
        net.forward(rng.standard_normal((32, 5)).astype(np.float32) * 3 + 1)
    for bn in (net[1], net[4]):
        _randomize_affine(bn, rng)
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(net)
    net.eval()
    folded = net.fold_batchnorm()
    assert len(folded) == len(net) - 2
    assert not any(isinstance(layer, BatchNorm) for layer in folded)
    x = rng.standard_normal((50, 5)).astype(np.float32) * 3 + 1
    np.testing.assert_allclose(folded.forward(x), net.forward(x), rtol=1e-5, atol=1e-5)
    assert len(net) == 7  # the original is untouched


def test_layers_pickle():
    net = Sequential(
        Linear(3, 4, random_state=0),
        BatchNorm(4),
        ReLU(),
        Dropout(0.1),
        Linear(4, 2, random_state=1),
    )
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    net.forward(x)
    net.eval()
    clone = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(clone.forward(x), net.forward(x))


# ---------------------------------------------------------------------------- losses
def test_cross_entropy_value_gradient_and_stability():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 4))
    target = rng.integers(0, 4, 6)
    ce = CrossEntropyLoss()
    loss = ce.forward(logits, target)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(6), target])), rel=1e-12)
    grad = ce.backward()
    num = np.zeros_like(logits)
    for idx in np.ndindex(*logits.shape):
        e = np.zeros_like(logits)
        e[idx] = 1e-6
        num[idx] = (ce.forward(logits + e, target) - ce.forward(logits - e, target)) / 2e-6
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)
    # huge logits: a naive exp overflows; log-sum-exp does not
    big = logits.astype(np.float32) * 1e4
    loss_big = ce.forward(big, target)
    assert np.isfinite(loss_big)
    assert loss_big == pytest.approx(
        -np.mean(log_softmax(big.astype(np.float64))[np.arange(6), target]), rel=1e-5
    )
    assert np.isfinite(ce.backward()).all()
    np.testing.assert_allclose(softmax(big).sum(1), 1, rtol=1e-6)
    with pytest.raises(ValueError):
        ce.forward(logits, np.array([0, 1, 2, 3, 4, 0]))
    with pytest.raises(TypeError):
        ce.forward(logits, target.astype(float))


def test_mse_value_and_gradient():
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    mse = MSELoss()
    assert mse.forward(pred, target) == pytest.approx(np.mean((pred - target) ** 2), rel=1e-12)
    np.testing.assert_allclose(mse.backward(), 2 * (pred - target) / pred.size, rtol=1e-12)
    with pytest.raises(ValueError):
        mse.forward(pred, target[:, :2])


# ---------------------------------------------------------------------------- optimizers
def _problem(dtype, shape=(7, 5), steps=4, seed=0):
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]
    return p0, grads


def _sgd_reference(p, grads, lr, momentum, wd, nesterov, dampening=0.0):
    p = p.astype(np.float64)
    buf = None
    for g in grads:
        d = g.astype(np.float64) + wd * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def _adam_reference(p, grads, lr, b1, b2, eps, wd, decoupled):
    p = p.astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        # torch puts eps outside the bias-corrected square root
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "momentum,nesterov,wd",
    [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 0.01), (0.5, False, 0.1)],
)
def test_sgd_matches_formula(dtype, momentum, nesterov, wd):
    p0, grads = _problem(dtype)
    p = p0.copy()
    opt = SGD({"w": p}, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    for g in grads:
        opt.step({"w": g})
    assert opt.params["w"] is p  # updated in place
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(
        p, _sgd_reference(p0, grads, 0.1, momentum, wd, nesterov), rtol=tol, atol=tol
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,wd", [(Adam, 0.0), (Adam, 0.05), (AdamW, 0.05), (AdamW, 0.0)])
def test_adam_matches_formula(dtype, cls, wd):
    p0, grads = _problem(dtype, steps=6)
    p = p0.copy()
    opt = cls({"w": p}, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd)
    for g in grads:
        opt.step({"w": g})
    expected = _adam_reference(p0, grads, 0.01, 0.8, 0.95, 1e-6, wd, cls is AdamW)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p, expected, rtol=tol, atol=tol)


def test_optimizer_non_contiguous_parameter_uses_same_formula():
    base = np.random.default_rng(0).standard_normal((6, 8))
    p = base[:, ::2]  # a strided view: the NumPy fallback path
    assert not p.flags.c_contiguous
    p0 = p.copy()
    grads = [np.random.default_rng(i).standard_normal(p.shape) for i in range(3)]
    opt = Adam({"w": p}, lr=0.1, weight_decay=0.1)
    for g in grads:
        opt.step({"w": g})
    np.testing.assert_allclose(
        p, _adam_reference(p0, grads, 0.1, 0.9, 0.999, 1e-8, 0.1, False), rtol=1e-12
    )
    np.testing.assert_array_equal(
        base[:, 1::2], np.random.default_rng(0).standard_normal((6, 8))[:, 1::2]
    )


def test_optimizer_reads_module_grads():
    net = Sequential(Linear(3, 2, random_state=0))
    opt = SGD(net, lr=0.5)
    w0 = net[0].weight.copy()
    x = np.ones((4, 3), np.float32)
    net.forward(x)
    net.backward(np.ones((4, 2), np.float32))
    opt.step()
    np.testing.assert_allclose(net[0].weight, w0 - 0.5 * net.grads["0.weight"], rtol=1e-6)
    with pytest.raises(ValueError):
        SGD({"w": np.zeros(3)}).step()
    with pytest.raises(ValueError):
        SGD(net, lr=0.1, nesterov=True)


# ---------------------------------------------------------------------------- PyTorch parity
def _torch_pair(torch, norm, dtype, seed=0):
    """The same network in fastnorm and torch, starting from identical weights."""
    rng = np.random.default_rng(seed)
    sizes = [10, 16, 12, 4]
    ours, theirs = [], []
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = Linear(a, b, init="torch", random_state=rng, dtype=dtype)
        tlin = torch.nn.Linear(a, b).to(tdtype)
        with torch.no_grad():
            tlin.weight.copy_(torch.from_numpy(lin.weight))
            tlin.bias.copy_(torch.from_numpy(lin.bias))
        ours.append(lin)
        theirs.append(tlin)
        if i < len(sizes) - 2:
            if norm == "batch":
                ours.append(BatchNorm(b, dtype=dtype))
                theirs.append(torch.nn.BatchNorm1d(b).to(tdtype))
            elif norm == "layer":
                ours.append(LayerNorm(b, dtype=dtype))
                theirs.append(torch.nn.LayerNorm(b).to(tdtype))
            elif norm == "group":
                ours.append(GroupNorm(4, b, dtype=dtype))
                theirs.append(torch.nn.GroupNorm(4, b).to(tdtype))
            ours.append(ReLU())
            theirs.append(torch.nn.ReLU())
    return Sequential(*ours), torch.nn.Sequential(*theirs)


@pytest.mark.parametrize(
    "norm,solver", [("batch", "adam"), ("batch", "sgd"), ("layer", "adamw"), ("group", "adam")]
)
def test_twenty_steps_match_torch(norm, solver):
    torch = pytest.importorskip("torch")
    dtype = np.float32
    net, tnet = _torch_pair(torch, norm, dtype)
    if solver == "adam":
        opt, topt = (
            Adam(net, lr=1e-2, weight_decay=1e-3),
            torch.optim.Adam(tnet.parameters(), lr=1e-2, weight_decay=1e-3),
        )
    elif solver == "adamw":
        opt, topt = AdamW(net, lr=1e-2), torch.optim.AdamW(tnet.parameters(), lr=1e-2)
    else:
        opt, topt = (
            SGD(net, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
            torch.optim.SGD(
                tnet.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3
            ),
        )
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20 * 16, 10)).astype(dtype) * 2 + 0.5
    y = rng.integers(0, 4, len(X))
    loss_fn, tloss_fn = CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    for step in range(20):
        xb, yb = X[step * 16 : (step + 1) * 16], y[step * 16 : (step + 1) * 16]
        loss = loss_fn.forward(net.forward(xb), yb)
        net.backward(loss_fn.backward())
        opt.step()
        topt.zero_grad()
        tloss = tloss_fn(tnet(torch.from_numpy(xb)), torch.from_numpy(yb))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), abs=1e-4), step
    tparams = dict(tnet.state_dict())
    for key, value in net.params.items():
        np.testing.assert_allclose(value, tparams[key].numpy(), atol=1e-4, rtol=0, err_msg=key)
    if norm == "batch":
        for i, layer in enumerate(net):
            if isinstance(layer, BatchNorm):
                np.testing.assert_allclose(
                    layer.running_mean, tparams[f"{i}.running_mean"].numpy(), atol=1e-4
                )
                np.testing.assert_allclose(
                    layer.running_var, tparams[f"{i}.running_var"].numpy(), atol=1e-4
                )
    # and the trained networks agree in eval mode
    net.eval()
    tnet.eval()
    with torch.no_grad():
        np.testing.assert_allclose(
            net.forward(X[:50]), tnet(torch.from_numpy(X[:50])).numpy(), atol=1e-4
        )
