"""Batch norm with row weights (``sample_weight``): integer weights equal repeated rows, forward
(output, running statistics) and backward (input gradient summed over the copies, parameter
gradients), against the float64 reference; finite differences for the weighted gradient."""

import numpy as np
import pytest
import reference as ref
from numpy.testing import assert_allclose

import fastnorm.functional as F
from fastnorm.nn import BatchNorm, Linear, Sequential


def _problem(rng, n=9, c=4, dtype=np.float64):
    x = rng.normal(2.0, 3.0, (n, c)).astype(dtype)
    w = rng.integers(0, 4, n).astype(np.float64)
    w[0] = 2.0  # never all zero
    return x, w


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [9, 3000])  # one block of rows, and several merged
def test_integer_weights_equal_repeated_rows(rng, dtype, n):
    x, w = _problem(rng, n=n, dtype=dtype)
    rows = np.repeat(np.arange(n), w.astype(int))
    weight, bias = rng.normal(size=4), rng.normal(size=4)
    rm_w, rv_w = np.zeros(4, dtype), np.ones(4, dtype)
    rm_r, rv_r = np.zeros(4, dtype), np.ones(4, dtype)
    y_w, ctx_w = F.batch_norm_forward(
        x, rm_w, rv_w, weight, bias, training=True, momentum=0.3, sample_weight=w
    )
    y_r, ctx_r = F.batch_norm_forward(
        x[rows], rm_r, rv_r, weight, bias, training=True, momentum=0.3
    )
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert_allclose(y_w[rows], y_r, rtol=tol, atol=tol)
    assert_allclose(rm_w, rm_r, rtol=tol, atol=tol)
    assert_allclose(rv_w, rv_r, rtol=tol, atol=tol)
    # the float64 reference on the repeated rows
    expected = ref.batch_norm(x[rows], weight=weight, bias=bias, training=True)
    assert_allclose(y_w[rows], expected, rtol=tol, atol=tol * 10)

    g = rng.normal(size=(n, 4)).astype(dtype)
    dx_w, dweight_w, dbias_w = ctx_w.backward(g * w[:, None].astype(dtype))
    dx_r, dweight_r, dbias_r = ctx_r.backward(g[rows])
    summed = np.zeros_like(dx_w, dtype=np.float64)
    np.add.at(summed, rows, dx_r)
    assert_allclose(dx_w, summed, rtol=tol, atol=tol * 10)
    assert_allclose(dweight_w, dweight_r, rtol=tol, atol=tol * 10)
    assert_allclose(dbias_w, dbias_r, rtol=tol, atol=tol * 10)
    assert not dx_w[w == 0].any()  # a row of zero weight has no gradient


def test_weighted_gradient_matches_finite_differences(rng):
    x, _ = _problem(rng)
    w = rng.uniform(0.2, 2.0, x.shape[0])
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    g = rng.normal(size=x.shape)

    def loss(xv):
        y = F.batch_norm(xv, None, None, gamma, beta, training=True, sample_weight=w)
        return float(np.sum(g * y))

    _, ctx = F.batch_norm_forward(x, None, None, gamma, beta, training=True, sample_weight=w)
    dx = ctx.backward(g)[0]
    h = 1e-6
    for i, j in [(0, 0), (3, 2), (8, 3)]:
        xp, xm = x.copy(), x.copy()
        xp[i, j] += h
        xm[i, j] -= h
        assert dx[i, j] == pytest.approx((loss(xp) - loss(xm)) / (2 * h), rel=1e-6, abs=1e-8)


def test_unit_weights_are_bitwise_the_unweighted_forward(rng):
    x, _ = _problem(rng, n=50)
    a = F.batch_norm(x, None, None, training=True, sample_weight=np.ones(50))
    b = F.batch_norm(x, None, None, training=True)
    assert np.array_equal(a, b)


def test_weights_are_ignored_in_eval_and_reach_batch_norm_through_sequential(rng):
    x, w = _problem(rng)
    rm, rv = rng.normal(size=4), rng.uniform(1, 2, 4)
    assert np.array_equal(
        F.batch_norm(x, rm, rv, training=False, sample_weight=w),
        F.batch_norm(x, rm, rv, training=False),
    )
    net = Sequential(Linear(4, 3, random_state=0, dtype=np.float64), BatchNorm(3, dtype=np.float64))
    rows = np.repeat(np.arange(len(w)), w.astype(int))
    y_w = net.train().forward(x, sample_weight=w)
    y_r = net.forward(x[rows])
    assert_allclose(y_w[rows], y_r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.ones(5), ValueError, r"sample_weight must be an array of 9 finite non-negative"),
        (np.zeros(9), ValueError, r"not all zero"),
        (-np.ones(9), ValueError, r"sample_weight must be"),
        (np.full(9, np.nan), ValueError, r"sample_weight must be"),
        ("heavy", TypeError, r"sample_weight must be"),
    ],
)
def test_bad_weights_are_rejected(rng, bad, error, match):
    x, _ = _problem(rng)
    with pytest.raises(error, match=match):
        F.batch_norm(x, None, None, training=True, sample_weight=bad)


def test_weights_need_2d_input(rng):
    x = rng.normal(size=(4, 3, 5))
    with pytest.raises(ValueError, match="2-D input"):
        F.batch_norm(x, None, None, training=True, sample_weight=np.ones(4))
