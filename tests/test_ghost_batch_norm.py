"""Ghost batch norm (``virtual_batch_size``): forward, running statistics and backward against the
float64 reference applied chunk by chunk; finite differences; bitwise plain batch norm when there
is a single sub-batch; bitwise the same for 1 and 2 threads; bad input."""

import numpy as np
import pytest
import reference as ref
from cases import assert_close

import fastnorm.functional as F
from fastnorm.functional import _ghost


def _chunks(n, k):
    """[start, stop) of each sub-batch: a last chunk of one row joins the one before."""
    bounds = [[s, min(s + k, n)] for s in range(0, n, k)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2][1] = n
        bounds.pop()
    return bounds


def _reference(x, dy, rm, rv, w, b, momenta, eps, k):
    """(y, dx, dw, db, running_mean, running_var) of plain batch norm on each chunk in turn."""
    y, dx = np.empty(x.shape), np.empty(x.shape)
    dw, db = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    rm, rv = rm.astype(np.float64), rv.astype(np.float64)
    for (s, e), m in zip(_chunks(x.shape[0], k), momenta):
        y[s:e] = ref.batch_norm(x[s:e], weight=w, bias=b, training=True, eps=eps)
        dx[s:e], gw, gb = ref.batch_norm_backward(
            dy[s:e], x[s:e], weight=w, bias=b, training=True, eps=eps
        )
        dw += gw
        db += gb
        rm, rv = ref.batch_norm_running_stats(x[s:e], rm, rv, m)
    return y, dx, dw, db, rm, rv


def _problem(rng, n, c, dtype):
    x = rng.normal(2.0, 3.0, (n, c)).astype(dtype)
    dy = rng.normal(size=(n, c)).astype(dtype)
    w, b = rng.uniform(0.5, 1.5, c), rng.normal(size=c)
    rm, rv = rng.normal(size=c).astype(dtype), rng.uniform(0.5, 2.0, c).astype(dtype)
    return x, dy, w, b, rm, rv


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "n, k, c",
    [
        (24, 8, 7),
        (26, 8, 7),
        (25, 8, 7),
        (9, 2, 7),
        (3000, 16, 7),
        (700, 300, 7),
        (1500, 600, 64),  # sub-batches of two row blocks: the merged-blocks path of the kernel
        (10, 4, 2100),  # two column blocks
    ],
    ids=["even", "tail-2", "tail-1-joins", "k2-tail-1", "many", "long", "row-blocks", "col-blocks"],
)
def test_matches_reference_per_chunk(rng, dtype, n, k, c):
    x, dy, w, b, rm, rv = _problem(rng, n, c, dtype)
    expected = _reference(x, dy, rm, rv, w, b, [0.3] * n, 1e-5, k)
    y, ctx = F.batch_norm_forward(x, rm, rv, w, b, True, 0.3, 1e-5, virtual_batch_size=k)
    assert isinstance(ctx, _ghost.GhostContext)
    assert y.dtype == dtype
    dx, dw, db = ctx.backward(dy)
    assert dx.dtype == dtype
    names = ["y", "dx", "dweight", "dbias", "running_mean", "running_var"]
    for name, got, want in zip(names, (y, dx, dw, db, rm, rv), expected):
        assert_close(got, want, dtype, err_msg=name)
    # batch_norm (no context) gives the same output bits
    rm2, rv2 = rm.copy(), rv.copy()
    y2 = F.batch_norm(x, rm2, rv2, w, b, True, 0.3, 1e-5, virtual_batch_size=k)
    np.testing.assert_array_equal(y2, y)


def test_input_gradient_by_finite_differences(rng):
    n, c, k = 11, 3, 4  # chunks of 4, 4 and 3 rows
    x, dy, w, b, _, _ = _problem(rng, n, c, np.float64)

    def loss(v):
        return float(np.sum(F.batch_norm(v, None, None, w, b, True, virtual_batch_size=k) * dy))

    _, ctx = F.batch_norm_forward(x, None, None, w, b, True, virtual_batch_size=k)
    dx = ctx.backward(dy)[0]
    h = 1e-6
    numeric = np.empty_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        numeric[i] = (loss(x + e) - loss(x - e)) / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, k", [(20, 20), (20, 64), (21, 20), (20, None)])
def test_single_sub_batch_is_plain_batch_norm_bitwise(rng, dtype, n, k):
    """k >= N (or N = k + 1, whose last row joins the first chunk) and None: plain batch norm."""
    x, dy, w, b, rm, rv = _problem(rng, n, 5, dtype)
    rm_p, rv_p = rm.copy(), rv.copy()
    y_p, ctx_p = F.batch_norm_forward(x, rm_p, rv_p, w, b, True, 0.2)
    y_g, ctx_g = F.batch_norm_forward(x, rm, rv, w, b, True, 0.2, virtual_batch_size=k)
    for got, want in zip(
        (y_g, rm, rv, *ctx_g.backward(dy)), (y_p, rm_p, rv_p, *ctx_p.backward(dy))
    ):
        np.testing.assert_array_equal(got, want)


def test_eval_mode_ignores_virtual_batch_size(rng):
    x, _, w, b, rm, rv = _problem(rng, 30, 4, np.float64)
    plain = F.batch_norm(x, rm, rv, w, b, False)
    np.testing.assert_array_equal(F.batch_norm(x, rm, rv, w, b, False, virtual_batch_size=4), plain)
    # eval never needs 2-D input
    x4 = rng.normal(size=(6, 4, 3, 3))
    F.batch_norm(x4, rm, rv, training=False, virtual_batch_size=2)


def test_momentum_none_continues_a_cumulative_average(rng):
    """A layer's momentum=None counts every sub-batch as one batch (``batches_tracked``); the
    public function, like plain batch norm, wants a real momentum."""
    n, k, tracked = 26, 8, 3
    x, dy, w, b, rm, rv = _problem(rng, n, 4, np.float64)
    momenta = [1.0 / (tracked + j + 1) for j in range(len(_chunks(n, k)))]
    expected = _reference(x, dy, rm, rv, w, b, momenta, 1e-5, k)
    args = (x, rm, rv, w, b, True, None, 1e-5, 1, None, True, None, k)
    y, ctx = _ghost.ghost_batch_norm(*args, batches_tracked=tracked)
    for got, want in zip((y, *ctx.backward(dy), rm, rv), expected):
        assert_close(got, want, np.float64)
    with pytest.raises(TypeError, match="momentum"):
        F.batch_norm(x, rm, rv, training=True, momentum=None, virtual_batch_size=k)


def test_out_and_non_contiguous_input(rng):
    x, dy, w, b, _, _ = _problem(rng, 40, 6, np.float64)
    expected = F.batch_norm(x, None, None, w, b, True, virtual_batch_size=8)
    out = np.empty_like(x)
    assert F.batch_norm(x, None, None, w, b, True, out=out, virtual_batch_size=8) is out
    np.testing.assert_array_equal(out, expected)
    xf = np.asfortranarray(x)
    np.testing.assert_array_equal(
        F.batch_norm(xf, None, None, w, b, True, virtual_batch_size=8), expected
    )
    # out that is the input: the saved input is a copy, so the backward still reads x
    _, ctx = F.batch_norm_forward(x, None, None, w, b, True, virtual_batch_size=8)
    x_in = x.copy()
    _, ctx_in = F.batch_norm_forward(x_in, None, None, w, b, True, out=x_in, virtual_batch_size=8)
    np.testing.assert_array_equal(x_in, expected)
    for got, want in zip(ctx_in.backward(dy), ctx.backward(dy)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("k", [16, 256])  # one block per sub-batch, and two merged
def test_bitwise_the_same_for_1_and_2_threads(rng, k):
    """(2048, 256) takes the threaded kernels (policy.PARALLEL_MIN_ELEMENTS = 2 ** 16)."""
    x, dy, w, b, rm, rv = _problem(rng, 2048 + k * 3 + 1, 256, np.float32)  # with a tail
    results = []
    for threads in (1, 2):
        previous = F.set_num_threads(threads)
        try:
            rm_t, rv_t = rm.copy(), rv.copy()
            y, ctx = F.batch_norm_forward(x, rm_t, rv_t, w, b, True, virtual_batch_size=k)
            results.append((y, rm_t, rv_t, *ctx.backward(dy)))
        finally:
            F.set_num_threads(previous)
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize(
    "value, error",
    [(1, ValueError), (0, ValueError), (-4, ValueError), (True, TypeError), (2.0, TypeError),
     ("8", TypeError)],
)  # fmt: skip
def test_bad_virtual_batch_size(rng, value, error):
    x = rng.normal(size=(10, 3))
    with pytest.raises(error, match="virtual_batch_size"):
        F.batch_norm(x, None, None, training=True, virtual_batch_size=value)


def test_bad_input_with_virtual_batch_size(rng):
    x4 = rng.normal(size=(8, 3, 2, 2))
    with pytest.raises(ValueError, match="2-D"):
        F.batch_norm(x4, None, None, training=True, virtual_batch_size=2)
    x = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="sample_weight"):
        F.batch_norm(x, None, None, training=True, virtual_batch_size=4, sample_weight=np.ones(10))
    with pytest.raises(ValueError, match="axis"):
        F.batch_norm(x, None, None, training=True, axis=0, virtual_batch_size=4)
    rm, rv = np.zeros(3), np.ones(3)
    rv.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        F.batch_norm(x, rm, rv, training=True, virtual_batch_size=4)
    np.testing.assert_array_equal(rm, 0.0)  # a failed call changes neither buffer
    with pytest.raises(ValueError, match="eps"):
        F.batch_norm(x, None, None, training=True, eps=-1.0, virtual_batch_size=4)
