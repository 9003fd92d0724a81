"""Batch renormalization (Ioffe 2017): forward and backward against the float64 reference,
finite differences with r and d held constant, the plain batch-norm limit (bitwise), running
statistics, thread independence, the layer and the MLP option."""

import warnings

import numba
import numpy as np
import pytest
import reference as ref
from numpy.testing import assert_allclose

import fastnorm.functional as F
from fastnorm import MLPClassifier
from fastnorm.nn import BatchNorm

SHAPES = [(64, 5), (6, 5, 7)]  # the fused columns kernel, and channel runs


def _case(rng, shape, dtype=np.float64):
    x = rng.normal(1.5, 2.0, shape).astype(dtype)
    c = shape[1]
    stats = rng.normal(0.0, 1.0, c), rng.uniform(0.3, 4.0, c)
    params = rng.normal(size=c), rng.normal(size=c)
    return x, stats, params


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("limits", [(1.5, 0.2), (3.0, 5.0)])
def test_forward_backward_and_running_stats_match_the_reference(rng, shape, dtype, limits):
    x, (rm, rv), (w, b) = _case(rng, shape, dtype)
    expected, r, d = ref.batch_renorm(x, rm, rv, w, b, *limits)
    run_mean, run_var = rm.astype(dtype), rv.astype(dtype)
    y, ctx = F.batch_norm_forward(x, run_mean, run_var, w, b, training=True, renorm=limits)
    tol = 1e-10 if dtype == np.float64 else 2e-5
    assert_allclose(y, expected, rtol=tol, atol=tol)
    new_mean, new_var = ref.batch_norm_running_stats(x, rm, rv)  # as plain batch norm
    assert_allclose(run_mean, new_mean, rtol=tol, atol=tol)
    assert_allclose(run_var, new_var, rtol=tol, atol=tol)
    dy = rng.normal(size=shape).astype(dtype)
    dx, dw, db = ctx.backward(dy)
    dx_ref, dw_ref, db_ref = ref.batch_renorm_backward(dy, x, r, d, w)
    assert_allclose(dx, dx_ref, rtol=tol * 10, atol=tol * 10)
    assert_allclose(dw, dw_ref, rtol=tol * 10, atol=tol * 10)
    assert_allclose(db, db_ref, rtol=tol * 10, atol=tol * 10)
    assert np.any(r != 1.0) and np.any(d != 0.0)  # the case really renormalizes


@pytest.mark.parametrize("shape", SHAPES)
def test_gradient_matches_finite_differences_with_r_and_d_constant(rng, shape):
    x, (rm, rv), (w, b) = _case(rng, shape)
    limits = (1.5, 0.2)
    _, r, d = ref.batch_renorm(x, rm, rv, w, b, *limits)
    dy = rng.normal(size=shape)
    _, ctx = F.batch_norm_forward(x, rm.copy(), rv.copy(), w, b, training=True, renorm=limits)
    dx = ctx.backward(dy)[0]
    cshape = [1] * x.ndim
    cshape[1] = -1
    axes = tuple(i for i in range(x.ndim) if i != 1)

    def loss(xv):  # r and d frozen at the values of the forward pass
        mean = xv.mean(axis=axes, keepdims=True)
        sigma_b = np.sqrt(xv.var(axis=axes, keepdims=True) + 1e-5)
        y = ((xv - mean) / sigma_b * r.reshape(cshape) + d.reshape(cshape)) * w.reshape(cshape)
        return float(np.sum(dy * y))

    h = 1e-6
    for index in [(0, 0), (3, 4)] if x.ndim == 2 else [(0, 0, 0), (5, 4, 6)]:
        xp, xm = x.copy(), x.copy()
        xp[index] += h
        xm[index] -= h
        assert dx[index] == pytest.approx((loss(xp) - loss(xm)) / (2 * h), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("shape", SHAPES)
def test_limits_one_and_zero_are_plain_batch_norm_bitwise(rng, shape):
    x, (rm, rv), (w, b) = _case(rng, shape)
    rm1, rv1, rm2, rv2 = rm.copy(), rv.copy(), rm.copy(), rv.copy()
    y1, c1 = F.batch_norm_forward(x, rm1, rv1, w, b, training=True, renorm=(1.0, 0.0))
    y2, c2 = F.batch_norm_forward(x, rm2, rv2, w, b, training=True)
    assert np.array_equal(y1, y2) and np.array_equal(rm1, rm2) and np.array_equal(rv1, rv2)
    dy = rng.normal(size=shape)
    for a, b_ in zip(c1.backward(dy), c2.backward(dy)):
        assert np.array_equal(a, b_)


def test_result_does_not_depend_on_the_thread_count(rng):
    x, (rm, rv), (w, b) = _case(rng, (4096, 256), np.float32)  # above the parallel threshold
    outs = []
    before = numba.get_num_threads()
    try:
        for k in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(k)
            y, ctx = F.batch_norm_forward(
                x,
                rm.astype(np.float32),
                rv.astype(np.float32),
                w,
                b,
                training=True,
                renorm=(1.5, 0.3),
            )
            outs.append((y, *ctx.backward(np.ones_like(y))))
    finally:
        numba.set_num_threads(before)
    for a, b_ in zip(*outs):
        assert np.array_equal(a, b_)


@pytest.mark.parametrize(
    "bad, error",
    [((0.5, 1.0), ValueError), ((2.0, -1.0), ValueError), ("3", TypeError), ((2.0,), TypeError)],
)
def test_bad_limits_are_rejected(rng, bad, error):
    x, (rm, rv), _ = _case(rng, (8, 5))
    with pytest.raises(error, match="renorm must be None or a pair"):
        F.batch_norm(x, rm, rv, training=True, renorm=bad)


def test_renorm_needs_running_statistics(rng):
    x, _, _ = _case(rng, (8, 5))
    with pytest.raises(ValueError, match="renorm needs running_mean"):
        F.batch_norm(x, None, None, training=True, renorm=(2.0, 1.0))
    with pytest.raises(ValueError, match="track_running_stats"):
        BatchNorm(5, renorm=True, track_running_stats=False)
    with pytest.raises(ValueError, match="r_max"):
        BatchNorm(5, renorm=True, r_max=0.5)


def test_layer_renormalizes_in_training_only(rng):
    x, _, _ = _case(rng, (32, 5))
    layer = BatchNorm(5, renorm=True, r_max=2.0, d_max=1.0, dtype=np.float64)
    layer.running_mean[...] = 3.0  # far from the batch: d is clipped at 1
    y = layer.train().forward(x)
    plain = BatchNorm(5, dtype=np.float64)
    plain.running_mean[...] = 3.0
    assert not np.allclose(y, plain.train().forward(x))
    assert np.array_equal(layer.eval().forward(x), plain.eval().forward(x))  # same running stats
    assert "renorm=True" in repr(layer)
    assert list(layer.state_dict()) == list(plain.state_dict())


def test_mlp_schedule_relaxes_the_limits_and_restores_them():
    from types import SimpleNamespace

    from fastnorm.neural_network._callbacks import RenormSchedule

    layer = BatchNorm(3, renorm=True)
    net = SimpleNamespace(modules=lambda: [layer])
    est = SimpleNamespace(_epochs=0, max_iter=100)
    loop = SimpleNamespace(net=net, est=est, n_batches=10)
    schedule = RenormSchedule()
    seen = []
    for epoch in range(100):
        est._epochs = epoch
        schedule.on_batch_begin(loop, 0)
        seen.append((layer.r_max, layer.d_max))
    assert seen[0] == (1.0, 0.0) and seen[4] == (1.0, 0.0)  # warm-up: plain batch norm
    assert seen[20] == pytest.approx((1.0 + 2.0 * 0.15 / 0.30, 5.0 * 0.15 / 0.20))
    assert seen[60] == (3.0, 5.0)
    layer.r_max = 1.2
    schedule.on_train_end(loop)
    assert (layer.r_max, layer.d_max) == (3.0, 5.0)


def test_mlp_batch_renorm_trains_at_batch_size_two():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPClassifier(
            (32,), normalization="batch_renorm", batch_size=2, max_iter=3, random_state=0
        ).fit(X[:600], y[:600])
    assert (
        model.score(X[600:900], y[600:900]) > 0.5
    )  # learns (chance: 0.1); accuracy: the experiment
    assert all(m.r_max == 3.0 for m in model.net_ if getattr(m, "renorm", False))


def test_ghost_layer_equals_the_functional_and_ignores_row_weights(rng):
    """nn.BatchNorm(virtual_batch_size=k): the functional ghost batch norm in training, plain
    running statistics at inference; row weights are not passed to its statistics."""
    x = rng.normal(size=(40, 6))
    layer = BatchNorm(6, virtual_batch_size=8, dtype=np.float64)
    y = layer.train().forward(x)
    rm, rv = np.zeros(6), np.ones(6)
    expected = F.batch_norm(
        x, rm, rv, layer.params["weight"], layer.params["bias"], training=True, virtual_batch_size=8
    )
    assert np.array_equal(y, expected)
    assert np.array_equal(layer.running_mean, rm) and np.array_equal(layer.running_var, rv)
    assert not layer.takes_sample_weight and BatchNorm(6).takes_sample_weight
    assert "virtual_batch_size=8" in repr(layer)
    with pytest.raises(ValueError, match="virtual_batch_size"):
        BatchNorm(6, virtual_batch_size=8, momentum=None)
    with pytest.raises(ValueError, match="virtual_batch_size"):
        BatchNorm(6, virtual_batch_size=1)
    with pytest.raises(ValueError, match="bn_momentum"):
        MLPClassifier(normalization="ghost_batch", bn_momentum=None).fit(x, np.arange(40) % 2)


@pytest.mark.parametrize("layer_kw", [{}, {"renorm": True}, {"virtual_batch_size": 4}])
def test_precise_statistics_of_a_sequential_pool_exactly(rng, layer_kw):
    """nn.precise_batchnorm_statistics: the running statistics of every batch norm (plain, renorm
    or ghost) become the exact mean and unbiased variance of its input over X, whatever the
    batch size: the spread of the batch means included, which averaging per-batch variances
    (fvcore's PreciseBN) misses."""
    from fastnorm.nn import Linear, ReLU, Sequential, precise_batchnorm_statistics

    X = rng.normal(size=(300, 5))
    X[150:] += 4.0  # batches with different means
    net = Sequential(
        Linear(5, 6, random_state=0, dtype=np.float64),
        BatchNorm(6, dtype=np.float64, **layer_kw),
        ReLU(),
        Linear(6, 3, random_state=1, dtype=np.float64),
        BatchNorm(3, dtype=np.float64, **layer_kw),
    )
    net.train().forward(X[:40])  # some training step: running statistics move
    for batch_size in (7, 150, 1000):
        precise_batchnorm_statistics(net, X, batch_size=batch_size)
        h1 = net[0].forward(X)
        assert_allclose(net[1].running_mean, h1.mean(axis=0), rtol=1e-12, atol=1e-12)
        assert_allclose(net[1].running_var, h1.var(axis=0, ddof=1), rtol=1e-12)
        h4 = net[3].forward(net[2].forward(net[1].eval().forward(h1)))
        assert_allclose(net[4].running_var, h4.var(axis=0, ddof=1), rtol=1e-12)
    per_batch = np.mean([h1[s : s + 150].var(axis=0, ddof=1) for s in (0, 150)], axis=0)
    assert not np.allclose(net[1].running_var, per_batch, rtol=1e-3)
