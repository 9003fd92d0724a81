"""Batch norm with ``activation="relu"``: the bits of batch norm followed by ``nn.ReLU`` (forward,
backward, running statistics), whether the fused kernels apply the ReLU in their own pass or it
follows them; the float64 reference through the ReLU; ``Sequential`` fusing its (BatchNorm, ReLU)
pairs with the bits of the layers run one by one; bad input."""

import numpy as np
import pytest
import reference as ref
from cases import assert_close

import fastnorm.functional as F
from fastnorm import nn
from fastnorm.functional._contexts import ColumnsContext, RenormContext


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()  # bits: NaN, and the sign of 0


def _params(rng, c, dtype):
    w = rng.standard_normal(c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    b[0] = -0.0  # a zero shift with a negative sign
    return w, b


# (shape, axis, kwargs): the fused columns kernel (2-D, channels last, threaded, weighted,
# renorm) and the paths where the ReLU follows the kernels (channels first, ghost)
CASES = [
    ((64, 24), 1, {}),
    ((8, 5, 5, 6), -1, {}),
    ((300_000, 2), 1, {}),
    ((64, 24), 1, {"sample_weight": "w"}),
    ((64, 24), 1, {"renorm": (1.5, 0.5)}),
    ((8, 6, 5, 5), 1, {}),
    ((64, 24), 1, {"virtual_batch_size": 16}),
]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis, kwargs", CASES)
def test_relu_activation_gives_the_bits_of_batch_norm_then_relu(
    shape, axis, kwargs, dtype, training, rng
):
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[7] = np.nan
    c = shape[axis]
    w, b = _params(rng, c, dtype)
    kwargs = dict(kwargs)
    if kwargs.get("sample_weight") == "w":
        kwargs["sample_weight"] = rng.uniform(0.0, 2.0, shape[0])
    if not training:
        kwargs = {}
    stats = [(rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype))]
    stats.append(tuple(s.copy() for s in stats[0]))
    common = (w, b, training, 0.1, 1e-5)
    y, ctx = F.batch_norm_forward(x, *stats[0], *common, axis=axis, activation="relu", **kwargs)
    y_plain, ctx_plain = F.batch_norm_forward(x, *stats[1], *common, axis=axis, **kwargs)
    relu = nn.ReLU()
    _same(y, relu.forward(y_plain))
    for got, want in zip(stats[0], stats[1]):
        _same(got, want)

    g = rng.standard_normal(shape).astype(dtype)
    g.flat[11] = np.inf  # times a zero mask: NaN in both
    g.flat[12] = -1.0
    with np.errstate(invalid="ignore"):  # inf * 0 in the mask, NaN statistics: NaN gradients
        want = ctx_plain.backward(relu.backward(g))
        got = ctx.backward(g)
    for got_part, want_part in zip(got, want):
        _same(got_part, want_part)


def test_the_columns_kernel_applies_the_relu_itself(rng):
    """The fused path keeps the ReLU inside the batch-norm context (no mask pass in NumPy)."""
    x = rng.standard_normal((64, 8)).astype(np.float32)
    _, ctx = F.batch_norm_forward(x, training=True, activation="relu")
    assert type(ctx) is ColumnsContext and ctx.relu_out is not None
    _, ctx = F.batch_norm_forward(
        x, np.zeros(8), np.ones(8), training=True, renorm=(2.0, 1.0), activation="relu"
    )
    assert type(ctx) is RenormContext and ctx.inner.relu_out is not None


def test_relu_activation_against_the_float64_reference(rng):
    x = rng.standard_normal((40, 6)) * 3 + 1e4
    w, b = _params(rng, 6, np.float64)
    y, ctx = F.batch_norm_forward(x, None, None, w, b, True, activation="relu")
    z = ref.batch_norm(x, weight=w, bias=b, training=True)
    assert_close(y, np.maximum(z, 0.0), np.float64)
    g = rng.standard_normal(x.shape)
    want = ref.batch_norm_backward(g * (z > 0), x, weight=w, bias=b, training=True)
    for got_part, want_part in zip(ctx.backward(g), want):
        assert_close(got_part, want_part, np.float64)


def test_relu_activation_into_out(rng):
    x = rng.standard_normal((32, 5)).astype(np.float32)
    out = np.full_like(x, 7.0)
    y, ctx = F.batch_norm_forward(x, training=True, out=out, activation="relu")
    assert y is out and np.all(out >= 0)
    _same(y, np.maximum(F.batch_norm(x, training=True), np.float32(0)))


@pytest.mark.parametrize(
    "activation, error",
    [("gelu", ValueError), ("ReLU", ValueError), (1, TypeError), (True, TypeError)],
)
def test_bad_activation_is_refused_before_any_update(activation, error, rng):
    x = rng.standard_normal((16, 3))
    rm, rv = np.zeros(3), np.ones(3)
    with pytest.raises(error, match="activation"):
        F.batch_norm_forward(x, rm, rv, training=True, activation=activation)
    _same(rm, np.zeros(3))
    _same(rv, np.ones(3))


def _net(dtype, seed):
    return nn.Sequential(
        nn.Linear(6, 16, bias=False, dtype=dtype, random_state=seed),
        nn.BatchNorm(16, dtype=dtype),
        nn.ReLU(),
        nn.Linear(16, 16, bias=False, dtype=dtype, random_state=seed + 1),
        nn.BatchNorm(16, dtype=dtype),
        nn.Tanh(),  # not fused
        nn.Linear(16, 3, dtype=dtype, random_state=seed + 2),
    )


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequential_fuses_batch_norm_and_relu_with_the_same_bits(dtype, training, rng):
    fused, one_by_one = _net(dtype, 3), _net(dtype, 3)
    for net in (fused, one_by_one):
        net.train(training)
    x = rng.standard_normal((32, 6)).astype(dtype)
    g = rng.standard_normal((32, 3)).astype(dtype)
    for _ in range(2):  # a second step reads the running statistics the first one updated
        y = fused.forward(x)
        grad_x = fused.backward(g)
        h = x
        for layer in one_by_one:
            h = layer.forward(h)
        _same(y, h)
        grad = g
        for layer in reversed(one_by_one.layers):
            grad = layer.backward(grad)
        _same(grad_x, grad)
        for key, value in one_by_one.grads.items():
            _same(fused.grads[key], value)
        for key, value in one_by_one.state_dict().items():
            _same(fused.state_dict()[key], value)
    # the ReLU of a fused pair still answers a backward call of its own
    _same(
        fused[2].backward(g[:, :1].repeat(16, axis=1)),
        one_by_one[2].backward(g[:, :1].repeat(16, axis=1)),
    )


def test_the_relu_kernel_is_numpys_maximum_bitwise():
    """-0.0 becomes +0.0 and a NaN keeps its sign, as in ``np.maximum(v, 0)``."""
    from fastnorm._kernels.elementwise import block_relu

    for dtype in (np.float32, np.float64):
        values = np.array(
            [-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-40, -1e-40, 2.5, -2.5], dtype
        )
        got = values.reshape(1, 2, 5).copy()
        block_relu(got, 0, 2)
        _same(got.reshape(-1), np.maximum(values, dtype(0)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_negative_zero_output_becomes_positive_as_in_nn_relu(dtype):
    """A constant column (x - mean = 0), a negative weight and a -0.0 bias give batch norm the
    output -0.0; the fused ReLU returns +0.0 like ``nn.ReLU``."""
    x = np.ones((16, 3), dtype)
    x[:, 1] = np.arange(16)
    w = np.array([-2.0, 1.0, -1.0], dtype)
    b = np.array([-0.0, -0.0, 0.5], dtype)
    y, _ = F.batch_norm_forward(x, None, None, w, b, True, activation="relu")
    plain, _ = F.batch_norm_forward(x, None, None, w, b, True)
    assert np.signbit(plain[:, 0]).all()  # the case under test does arise
    _same(y, nn.ReLU().forward(plain))


def test_fused_relu_is_the_same_for_one_and_two_threads(rng):
    x = rng.standard_normal((300_000, 2)).astype(np.float32)  # threaded kernels
    g = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for threads in (1, 2):
        previous = F.set_num_threads(threads)
        try:
            y, ctx = F.batch_norm_forward(x, training=True, activation="relu")
            results.append((y, *ctx.backward(g)))
        finally:
            F.set_num_threads(previous)
    for one, two in zip(*results):
        _same(one, two)


def test_a_wider_gradient_is_masked_in_its_own_dtype(rng):
    """A float64 gradient beyond float32's range where the ReLU output is 0: times 0 in float64
    (as ``nn.ReLU`` does), not inf * 0 after the cast."""
    x = rng.standard_normal((32, 4)).astype(np.float32)
    g = np.full(x.shape, 1e300)
    y, ctx = F.batch_norm_forward(x, training=True, activation="relu")
    plain, plain_ctx = F.batch_norm_forward(x, training=True)
    relu = nn.ReLU()
    relu.forward(plain)
    with np.errstate(over="ignore", invalid="ignore"):
        want = plain_ctx.backward(relu.backward(g))
        got = ctx.backward(g)
    for got_part, want_part in zip(got, want):
        _same(got_part, want_part)


def test_sequential_passes_row_weights_to_a_fused_pair(rng):
    fused, one_by_one = _net(np.float32, 5), _net(np.float32, 5)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    w = rng.uniform(0.0, 2.0, 32)
    y = fused.forward(x, sample_weight=w)
    h = x
    for layer in one_by_one:
        h = layer.forward(h, sample_weight=w) if layer.takes_sample_weight else layer.forward(h)
    _same(y, h)
    for key, value in one_by_one.state_dict().items():
        _same(fused.state_dict()[key], value)
