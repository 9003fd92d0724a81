"""Numerical edge cases of the functional API: constant slices of any magnitude, non-finite
inputs, empty channel sets, read-only running statistics, NumPy warnings and memory use."""

import warnings

import numpy as np
import pytest
import reference as ref
from cases import DTYPES, assert_close, dtype_id

import fastnorm
import fastnorm.functional as F

DTYPE = pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
MAGNITUDES = (1e-30, 1.0, 1e12, 1.2345678e14, 3e38)
MAGNITUDE = pytest.mark.parametrize("value", MAGNITUDES + tuple(-v for v in MAGNITUDES))

# --------------------------------------------------------------------------- constant slices

# name: (shape, channel axis or None, op, groups); the channel count is x.shape[axis]. Each entry
# runs a different statistics kernel (in brackets). Statistics are over 249 values (or another
# count n) where (n * v) * (1 / n) != v for every float32 magnitude tested: a mean formed with a
# reciprocal instead of a division is caught.
CONSTANT_PATHS = {
    # [columns_fused] 2-D features, channels last
    "batch_norm 2-D": ((249, 3), 1, "bn", None),
    "batch_norm last": ((3, 83, 2), -1, "bn", None),
    # [column_moments + merge] short channel runs; [row_moments + merge] long ones
    "batch_norm short runs": ((249, 2, 3), 1, "bn", None),
    "batch_norm long runs": ((2, 2, 249), 1, "bn", None),
    # [row_moments, two chunks of 26144 merged] runs longer than one chunk
    "batch_norm chunked runs": ((1, 2, 52288), 1, "bn", None),
    # [groups_fused] long runs; [row_moments] short runs; [column_moments] channels last
    "group_norm fused": ((1, 3, 83), 1, "gn", 1),
    "group_norm short runs": ((1, 83, 3), 1, "gn", 1),
    "group_norm chunked": ((1, 1634, 32), 1, "gn", 1),
    "group_norm last": ((1, 249, 2), -1, "gn", 1),
    "instance_norm fused": ((2, 3, 249), 1, "in", None),
    "instance_norm short runs": ((2, 3, 49), 1, "in", None),
    "instance_norm last": ((2, 249, 3), -1, "in", None),
    # [rows_fused], serial and parallel twins
    "layer_norm": ((2, 249), None, "ln", None),
    "layer_norm parallel": ((270, 996), None, "ln", None),
}


def _run_constant(kind, x, axis, groups, w, b):
    if kind == "bn":
        return fastnorm.batch_norm(x, None, None, w, b, training=True, axis=axis)
    if kind == "gn":
        return fastnorm.group_norm(x, groups, w, b, axis=axis)
    if kind == "in":
        return fastnorm.instance_norm(x, weight=w, bias=b, axis=axis)
    return fastnorm.layer_norm(x, x.shape[1:], w, b)


@DTYPE
@MAGNITUDE
@pytest.mark.parametrize("path", list(CONSTANT_PATHS))
def test_constant_slice_gives_exactly_the_bias(path, value, dtype):
    """A constant slice has mean equal to its value, so x - mean is exactly 0 and the output is
    exactly the bias, at any magnitude (the reference and PyTorch agree)."""
    shape, axis, kind, groups = CONSTANT_PATHS[path]
    x = np.full(shape, value, dtype)
    if axis is None:
        w = np.linspace(0.5, 2.0, shape[-1])
        b = np.linspace(-1.0, 1.0, shape[-1])
        expected = np.broadcast_to(b, shape).astype(dtype)
    else:
        c = shape[axis]
        w = np.linspace(0.5, 2.0, c)
        b = np.linspace(-1.0, 1.0, c)
        bshape = [1] * len(shape)
        bshape[axis] = c
        expected = np.broadcast_to(b.reshape(bshape), shape).astype(dtype)
    y = _run_constant(kind, x, axis, groups, w, b)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(_run_constant(kind, x, axis, groups, None, None), 0.0)


@DTYPE
@MAGNITUDE
def test_constant_row_rms_norm(value, dtype):
    x = np.full((3, 300), value, dtype)
    y = fastnorm.rms_norm(x, 300)
    assert np.isfinite(y).all()
    assert_close(y, ref.rms_norm(x, 300), dtype)


def test_constant_row_matches_torch(tref):
    for dtype in DTYPES:
        for value in (1e12, 1.2345678e14, 3e38):
            x = np.full((2, 300), value, dtype)
            np.testing.assert_array_equal(
                fastnorm.layer_norm(x, 300), tref.layer_norm(x, (300,))["y"]
            )
            x = np.full((1, 3, 100), value, dtype)
            np.testing.assert_array_equal(fastnorm.group_norm(x, 1), tref.group_norm(x, 1)["y"])


# --------------------------------------------------------------------------- eval backward


# name: (shape, channel axis, op); each runs a different eval backward path
EVAL_PATHS = {
    "batch_norm 2-D": ((6, 4), 1, "bn"),  # ColumnsContext
    "batch_norm last": ((3, 5, 4), -1, "bn"),  # ColumnsContext
    "batch_norm short runs": ((3, 4, 5), 1, "bn"),  # ChannelRunsContext, column passes
    "batch_norm long runs": ((2, 4, 70), 1, "bn"),  # ChannelRunsContext, row passes
    "instance_norm short runs": ((3, 4, 5), 1, "in"),
    "instance_norm long runs": ((2, 4, 70), 1, "in"),
    "instance_norm last": ((3, 5, 4), -1, "in"),
}


@DTYPE
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("path", list(EVAL_PATHS))
def test_eval_backward_does_not_read_the_input(path, bad, dtype, rng):
    """With running statistics, y = (x - running_mean) * rstd * w + b is affine in x, so
    dx = dy * w * rstd everywhere, also where x is NaN or infinite (PyTorch agrees)."""
    shape, axis, kind = EVAL_PATHS[path]
    c = shape[axis]
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[[1, 7, flat.size - 2]] = bad
    dy = rng.standard_normal(shape).astype(dtype)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    w, b = rng.uniform(0.5, 2.0, c), rng.standard_normal(c)
    if kind == "bn":
        _, ctx = F.batch_norm_forward(x, rm, rv, w, b, training=False, axis=axis)
    else:
        _, ctx = F.instance_norm_forward(x, rm, rv, w, b, use_input_stats=False, axis=axis)
    dx, _, db = ctx.backward(dy)
    bshape = [1] * len(shape)
    bshape[axis] = c
    expected = dy * (w / np.sqrt(rv + 1e-5)).reshape(bshape)
    assert np.isfinite(dx).all()
    assert_close(dx, expected, dtype)
    assert_close(
        db, dy.sum(axis=tuple(i for i in range(len(shape)) if i != axis % len(shape))), dtype
    )


def test_eval_backward_non_finite_matches_torch(tref, rng):
    x = rng.standard_normal((3, 4, 5))
    x[0, 1, 2], x[2, 3, 4] = np.nan, np.inf
    dy = rng.standard_normal(x.shape)
    rm, rv = rng.standard_normal(4), rng.uniform(0.5, 2.0, 4)
    w, b = rng.uniform(0.5, 2.0, 4), rng.standard_normal(4)
    _, ctx = F.batch_norm_forward(x, rm, rv, w, b, training=False)
    t = tref.batch_norm(x, rm, rv, w, b, training=False, dy=dy)
    np.testing.assert_allclose(ctx.backward(dy)[0], t["dx"], rtol=1e-12)


# --------------------------------------------------------------------------- empty channel sets


def _zero_size_calls(c):
    rm, rv = np.zeros(c), np.ones(c)
    return {
        "instance_norm": lambda x, axis: F.instance_norm_forward(x, axis=axis),
        "instance_norm running": lambda x, axis: F.instance_norm_forward(x, rm, rv, axis=axis),
        "instance_norm eval": lambda x, axis: F.instance_norm_forward(
            x, rm, rv, use_input_stats=False, axis=axis
        ),
        "group_norm": lambda x, axis: F.group_norm_forward(x, 1, axis=axis),
        "batch_norm": lambda x, axis: F.batch_norm_forward(x, None, None, training=True, axis=axis),
        "batch_norm running": lambda x, axis: F.batch_norm_forward(
            x, rm, rv, training=True, axis=axis
        ),
        "batch_norm eval": lambda x, axis: F.batch_norm_forward(x, rm, rv, axis=axis),
    }


@DTYPE
@pytest.mark.parametrize(
    "shape,axis",
    [((2, 0, 5), 1), ((2, 5, 0), -1), ((2, 0, 70), 1), ((2, 0), 1), ((2, 3, 0), 1)],
)
@pytest.mark.parametrize("call", list(_zero_size_calls(0)))
def test_zero_channels_or_positions_give_empty_results(call, shape, axis, dtype):
    """No channels (or no positions): an empty output and empty gradients, nothing raised
    (instance_norm divided by its zero group count)."""
    c = shape[axis]
    if call.startswith("instance_norm") and len(shape) < 3:
        pytest.skip("instance norm needs a spatial axis")
    x = np.ones(shape, dtype)
    fn = _zero_size_calls(c)[call]
    if call in ("instance_norm", "instance_norm running") and x.shape[2 if axis == 1 else 1] <= 1:
        with pytest.raises(ValueError, match="spatial element"):
            fn(x, axis)
        return
    y, ctx = fn(x, axis)
    assert y.shape == shape and y.dtype == np.dtype(dtype)
    dx, dw, db = ctx.backward(np.ones(shape, dtype))
    assert dx.shape == shape and dw.shape == (c,) and db.shape == (c,)
    np.testing.assert_array_equal(dw, 0.0)
    np.testing.assert_array_equal(db, 0.0)


def test_zero_channels_as_torch(tref):
    x = np.ones((2, 0, 5))
    assert fastnorm.instance_norm(x).shape == tref.instance_norm(x)["y"].shape
    assert fastnorm.group_norm(x, 1).shape == tref.group_norm(x, 1)["y"].shape


# --------------------------------------------------------------------------- read-only buffers


@pytest.mark.parametrize("frozen", ["running_mean", "running_var"])
@pytest.mark.parametrize(
    "call",
    ["batch_norm 2-D", "batch_norm 3-D", "batch_norm last", "instance_norm", "instance_norm last"],
)
def test_read_only_running_stat_is_rejected_before_any_update(call, frozen, rng):
    kind, _, variant = call.partition(" ")
    axis = -1 if variant == "last" else 1
    shape = {"2-D": (4, 3), "last": (4, 5, 3)}.get(variant, (4, 3, 5))
    x = rng.standard_normal(shape)
    rm, rv = np.full(3, 0.25), np.full(3, 1.5)
    {"running_mean": rm, "running_var": rv}[frozen].flags.writeable = False
    with pytest.raises(ValueError, match=f"{frozen} is read-only"):
        if kind == "batch_norm":
            fastnorm.batch_norm(x, rm, rv, training=True, axis=axis)
        else:
            fastnorm.instance_norm(x, rm, rv, axis=axis)
    np.testing.assert_array_equal(rm, 0.25)
    np.testing.assert_array_equal(rv, 1.5)


def test_read_only_running_stats_are_fine_when_only_read(rng):
    x = rng.standard_normal((4, 3, 5))
    rm, rv = np.full(3, 0.25), np.full(3, 1.5)
    rm.flags.writeable = rv.flags.writeable = False
    assert_close(fastnorm.batch_norm(x, rm, rv), ref.batch_norm(x, rm, rv), np.float64)
    assert_close(
        fastnorm.instance_norm(x, rm, rv, use_input_stats=False),
        ref.instance_norm(x, rm, rv, use_input_stats=False),
        np.float64,
    )


# --------------------------------------------------------------------------- out=x memory

IN_PLACE = {
    "batch_norm": lambda x, **k: fastnorm.batch_norm(x, None, None, training=True, **k),
    "batch_norm eval": lambda x, **k: fastnorm.batch_norm(
        x, np.zeros(x.shape[1]), np.ones(x.shape[1]), **k
    ),
    "batch_norm 2-D": lambda x, **k: fastnorm.batch_norm(
        x.reshape(-1, x.shape[-1]), None, None, training=True, **k
    ),
    "layer_norm": lambda x, **k: fastnorm.layer_norm(x, x.shape[-1], **k),
    "rms_norm": lambda x, **k: fastnorm.rms_norm(x, x.shape[-1], **k),
    "group_norm": lambda x, **k: fastnorm.group_norm(x, 4, **k),
    "group_norm last": lambda x, **k: fastnorm.group_norm(x, 4, axis=-1, **k),
    "instance_norm": lambda x, **k: fastnorm.instance_norm(x, **k),
}


@pytest.mark.parametrize("op", list(IN_PLACE))
def test_out_is_input_does_not_copy_the_input(op, rng):
    """The plain functions have no backward pass, so out=x needs no saved copy of x."""
    import tracemalloc

    x = rng.standard_normal((64, 16, 256))
    x2d = x.reshape(-1, x.shape[-1]) if op.endswith("2-D") else x
    expected = IN_PLACE[op](x.copy())
    IN_PLACE[op](x.copy(), out=None)  # compile outside the measurement
    tracemalloc.start()
    try:
        y = IN_PLACE[op](x, out=x2d)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert y is x2d
    np.testing.assert_array_equal(x.reshape(expected.shape), expected)
    assert peak < x.nbytes / 2, f"peak {peak} bytes for a {x.nbytes}-byte input"


FORWARDS = {
    "batch_norm": (
        lambda x, **k: F.batch_norm_forward(x, None, None, training=True, **k),
        lambda x, dy: ref.batch_norm_backward(dy, x, None, None, training=True),
    ),
    "batch_norm 2-D": (
        lambda x, **k: F.batch_norm_forward(x, None, None, training=True, **k),
        lambda x, dy: ref.batch_norm_backward(dy, x, None, None, training=True),
    ),
    "layer_norm": (
        lambda x, **k: F.layer_norm_forward(x, x.shape[-1], **k),
        lambda x, dy: ref.layer_norm_backward(dy, x, x.shape[-1]),
    ),
    "rms_norm": (
        lambda x, **k: F.rms_norm_forward(x, x.shape[-1], **k),
        lambda x, dy: ref.rms_norm_backward(dy, x, x.shape[-1]),
    ),
    "group_norm": (
        lambda x, **k: F.group_norm_forward(x, 2, **k),
        lambda x, dy: ref.group_norm_backward(dy, x, 2),
    ),
    "instance_norm": (
        lambda x, **k: F.instance_norm_forward(x, **k),
        lambda x, dy: ref.instance_norm_backward(dy, x),
    ),
}


@pytest.mark.parametrize("op", list(FORWARDS))
def test_forward_with_out_is_input_keeps_its_gradients(op, rng):
    """The ``*_forward`` variants save a copy when out=x: the backward pass reads the input."""
    forward, backward = FORWARDS[op]
    x = rng.standard_normal((6, 4) if op.endswith("2-D") else (3, 4, 70))
    dy = rng.standard_normal(x.shape)
    x0 = x.copy()
    y, ctx = forward(x, out=x)
    assert y is x
    assert_close(ctx.backward(dy)[0], backward(x0, dy)[0], np.float64)


def test_partially_overlapping_out_is_still_correct(rng):
    buf = rng.standard_normal((65, 8))
    x, out = buf[:64], buf[1:]
    expected = ref.batch_norm(x, None, None, training=True)
    fastnorm.batch_norm(x, None, None, training=True, out=out)
    assert_close(buf[1:], expected, np.float64)


# --------------------------------------------------------------------------- no NumPy warnings

F32_MAX = float(np.finfo(np.float32).max)


def _warning_inputs():
    rng = np.random.default_rng(0)
    cases = {}
    for dt in DTYPES:
        name = dtype_id(dt)
        x = np.full((4, 3, 70), F32_MAX, dt)
        x[:, :, ::2] = -F32_MAX
        cases[f"float32 max {name}"] = (x, 1e-5)
        cases[f"constant at float32 max {name}"] = (np.full((4, 3, 70), F32_MAX, dt), 1e-5)
        cases[f"constant eps=0 {name}"] = (np.full((4, 3, 70), 2.0, dt), 0.0)
        cases[f"constant eps=0 short {name}"] = (np.full((4, 3, 5), 2.0, dt), 0.0)
        for bad in (np.nan, np.inf, -np.inf):
            x = rng.standard_normal((4, 3, 70)).astype(dt)
            x[1, 2, 3] = x[0, 0, 0] = bad
            cases[f"{bad} {name}"] = (x, 1e-5)
    cases["1e300 float64"] = (rng.standard_normal((4, 3, 70)) * 1e300, 1e-5)
    return cases


WARNING_INPUTS = _warning_inputs()


def _layer(module, x):
    y = module.forward(x)
    module.backward(np.ones_like(y))
    module.eval()
    module.forward(x)


def _warning_calls(x, eps):
    from fastnorm import BatchNormalizer, nn

    c = x.shape[1]
    rm, rv = np.zeros(c), np.ones(c)
    x2 = x.reshape(-1, x.shape[-1])
    finite_rows = x2[np.isfinite(x2).all(axis=1)]  # fit rejects infinite values
    forwards = {
        "batch_norm": lambda: F.batch_norm_forward(x, rm, rv, training=True, eps=eps),
        "batch_norm last": lambda: F.batch_norm_forward(
            x, None, None, training=True, eps=eps, axis=-1
        ),
        "batch_norm 2-D": lambda: F.batch_norm_forward(x2, None, None, training=True, eps=eps),
        "batch_norm eval": lambda: F.batch_norm_forward(x, rm, np.zeros(c), eps=eps),
        "layer_norm": lambda: F.layer_norm_forward(x, x.shape[-1], eps=eps),
        "rms_norm": lambda: F.rms_norm_forward(x, x.shape[-1], eps=eps),
        "group_norm": lambda: F.group_norm_forward(x, 3, eps=eps),
        "group_norm last": lambda: F.group_norm_forward(x, 1, eps=eps, axis=-1),
        "instance_norm": lambda: F.instance_norm_forward(x, rm, rv, eps=eps),
        "instance_norm eval": lambda: F.instance_norm_forward(
            x, rm, np.zeros(c), use_input_stats=False, eps=eps
        ),
    }
    calls = {
        name: (lambda f=f: (lambda y, ctx: ctx.backward(np.ones_like(y)))(*f()))
        for name, f in forwards.items()
    }
    calls.update(
        {
            "nn.BatchNorm": lambda: _layer(nn.BatchNorm(c, eps=eps, dtype=x.dtype), x),
            "nn.LayerNorm": lambda: _layer(nn.LayerNorm(x.shape[-1], eps=eps, dtype=x.dtype), x),
            "nn.GroupNorm": lambda: _layer(nn.GroupNorm(3, c, eps=eps, dtype=x.dtype), x),
            "nn.InstanceNorm": lambda: _layer(
                nn.InstanceNorm(c, eps=eps, track_running_stats=True, dtype=x.dtype), x
            ),
            "nn.RMSNorm": lambda: _layer(nn.RMSNorm(x.shape[-1], eps=eps, dtype=x.dtype), x),
            "BatchNormalizer": lambda: BatchNormalizer(eps=eps).fit(finite_rows).transform(x2),
            "BatchNormalizer momentum": lambda: (
                BatchNormalizer(eps=eps, momentum=0.1)
                .partial_fit(finite_rows)
                .partial_fit(finite_rows)
                .transform(x2)
            ),
        }
    )
    return calls


@pytest.mark.parametrize("data", list(WARNING_INPUTS))
def test_no_numpy_warnings(data):
    """Overflow, division by zero and invalid values give the intended inf/NaN/0 results
    without NumPy RuntimeWarnings leaking out of fastnorm."""
    import warnings

    x, eps = WARNING_INPUTS[data]
    leaked = []
    for name, call in _warning_calls(x, eps).items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                call()
            except RuntimeWarning as w:
                leaked.append(f"{name}: {w}")
    assert not leaked, leaked


def test_instance_norm_running_stats_with_opposite_infinities_warn_nothing():
    """Found by the long property-test profile: the batch average of instance statistics of
    +inf and -inf samples leaked a NumPy RuntimeWarning (the NaN result itself is intended)."""
    x = np.random.default_rng(0).standard_normal((2, 4, 130)).astype(np.float32)
    x[0, 3, 5] = np.inf
    x[1, 3, 7] = -np.inf
    rm, rv = np.zeros(4, np.float32), np.ones(4, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastnorm.instance_norm(x, rm, rv)
    assert np.isnan(rm[3]) and np.all(np.isfinite(rm[:3]))


def test_layer_gradients_beyond_float32_range_warn_nothing():
    """Found by the long property-test profile: a float32 layer whose float64 weight gradient
    exceeds float32's range stores inf, and must not leak NumPy's cast-overflow warning."""
    from fastnorm.nn import BatchNorm

    layer = BatchNorm(2).eval()
    x = np.ones((4, 2), np.float32)
    dy = np.full((4, 2), 3e38, np.float32)
    layer.forward(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.backward(dy)
    assert np.all(np.isinf(layer.grads["bias"]))
