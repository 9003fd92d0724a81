"""fastnorm.nn normalization layers: forward/backward vs the reference, finite differences,
running statistics (momentum and cumulative average), train/eval, params/grads contract,
accuracy at a large offset."""

import numpy as np
import pytest
import reference as ref
from cases import (
    BATCH_NORM_MODES,
    DTYPES,
    GROUP_NORM,
    INSTANCE_NORM,
    LAYER_NORM,
    RMS_NORM,
    assert_close,
    case_id,
    channel_count,
    dtype_id,
    make_affine,
    make_input,
    make_running,
    mode_id,
)

from fastnorm.nn import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm

DTYPE = pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
AFFINE = pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])


def set_params(layer, rng, dtype, with_bias=True):
    """Random values written in place into the layer's params (as an optimizer would)."""
    if "weight" not in layer.params:
        return None, None
    shape = layer.params["weight"].shape
    w, b = make_affine(rng, shape, dtype)
    layer.params["weight"][...] = w
    if with_bias:
        layer.params["bias"][...] = b
    return w, (b if with_bias else None)


def run(layer, x, dy):
    y = layer.forward(x)
    dx = layer.backward(dy)
    return y, dx


def check_grads(layer, dx, expected, dtype, x):
    ex_dx, ex_dw, ex_db = (tuple(expected) + (None,))[:3]
    assert dx.shape == x.shape and dx.dtype == np.dtype(dtype)
    assert_close(dx, ex_dx, dtype, err_msg="dx")
    if ex_dw is None:
        assert layer.grads.get("weight") is None
    else:
        assert_close(layer.grads["weight"], ex_dw, dtype, err_msg="dweight")
    if ex_db is None:
        assert layer.grads.get("bias") is None
    else:
        assert_close(layer.grads["bias"], ex_db, dtype, err_msg="dbias")


# ------------------------------------------------------------------------------ grid vs reference


@DTYPE
@AFFINE
@pytest.mark.parametrize("case,training", BATCH_NORM_MODES, ids=mode_id)
def test_batch_norm_layer(case, training, affine, dtype, rng):
    C = channel_count(case.shape, case.axis)
    layer = BatchNorm(C, eps=1e-4, momentum=0.2, affine=affine, axis=case.axis, dtype=dtype)
    w, b = set_params(layer, rng, dtype)
    rm, rv = make_running(rng, C, dtype)
    layer.running_mean[...] = rm
    layer.running_var[...] = rv
    layer.train(training)
    x = make_input(rng, case.shape, dtype)
    dy = rng.standard_normal(case.shape).astype(dtype)
    y, dx = run(layer, x, dy)
    assert y.dtype == np.dtype(dtype)
    assert_close(y, ref.batch_norm(x, rm, rv, w, b, training, 0.2, 1e-4, axis=case.axis), dtype)
    check_grads(
        layer,
        dx,
        ref.batch_norm_backward(dy, x, rm, rv, w, b, training, 1e-4, axis=case.axis),
        dtype,
        x,
    )
    if training and x.size:
        new_rm, new_rv = ref.batch_norm_running_stats(x, rm, rv, 0.2, axis=case.axis)
        assert_close(layer.running_mean, new_rm, dtype)
        assert_close(layer.running_var, new_rv, dtype)
    else:
        np.testing.assert_array_equal(layer.running_mean, rm)
        np.testing.assert_array_equal(layer.running_var, rv)


@DTYPE
@AFFINE
@pytest.mark.parametrize("case", LAYER_NORM, ids=case_id)
def test_layer_norm_layer(case, affine, dtype, rng):
    layer = LayerNorm(case.normalized_shape, eps=1e-4, elementwise_affine=affine, dtype=dtype)
    w, b = set_params(layer, rng, dtype)
    x = make_input(rng, case.shape, dtype)
    dy = rng.standard_normal(case.shape).astype(dtype)
    y, dx = run(layer, x, dy)
    assert_close(y, ref.layer_norm(x, case.normalized_shape, w, b, 1e-4), dtype)
    check_grads(
        layer, dx, ref.layer_norm_backward(dy, x, case.normalized_shape, w, b, 1e-4), dtype, x
    )


@DTYPE
@AFFINE
@pytest.mark.parametrize("case", [c for c in GROUP_NORM if c.axis == 1], ids=case_id)
def test_group_norm_layer(case, affine, dtype, rng):
    C = case.shape[1]
    layer = GroupNorm(case.groups, C, eps=1e-4, affine=affine, dtype=dtype)
    w, b = set_params(layer, rng, dtype)
    x = make_input(rng, case.shape, dtype)
    dy = rng.standard_normal(case.shape).astype(dtype)
    y, dx = run(layer, x, dy)
    assert_close(y, ref.group_norm(x, case.groups, w, b, 1e-4), dtype)
    check_grads(layer, dx, ref.group_norm_backward(dy, x, case.groups, w, b, 1e-4), dtype, x)


@DTYPE
@pytest.mark.parametrize(
    "affine,track,training",
    [
        (False, False, True),
        (True, False, True),
        (True, True, True),
        (False, True, False),
        (True, True, False),
        (True, False, False),
    ],
    ids=[
        "plain",
        "affine",
        "affine-track",
        "plain-track-eval",
        "affine-track-eval",
        "affine-notrack-eval",
    ],
)
@pytest.mark.parametrize("case", [c for c in INSTANCE_NORM if c.axis == 1], ids=case_id)
def test_instance_norm_layer(case, affine, track, training, dtype, rng):
    C = case.shape[1]
    layer = InstanceNorm(
        C, eps=1e-4, momentum=0.2, affine=affine, track_running_stats=track, dtype=dtype
    )
    w, b = set_params(layer, rng, dtype)
    rm = rv = None
    if track:
        rm, rv = make_running(rng, C, dtype)
        layer.running_mean[...] = rm
        layer.running_var[...] = rv
    layer.train(training)
    use_input_stats = training or not track  # as torch
    x = make_input(rng, case.shape, dtype)
    dy = rng.standard_normal(case.shape).astype(dtype)
    y, dx = run(layer, x, dy)
    assert_close(y, ref.instance_norm(x, rm, rv, w, b, use_input_stats, 0.2, 1e-4), dtype)
    check_grads(
        layer, dx, ref.instance_norm_backward(dy, x, rm, rv, w, b, use_input_stats, 1e-4), dtype, x
    )
    if track and training and x.size:
        new_rm, new_rv = ref.instance_norm_running_stats(x, rm, rv, 0.2)
        assert_close(layer.running_mean, new_rm, dtype)
        assert_close(layer.running_var, new_rv, dtype)
    elif track:
        np.testing.assert_array_equal(layer.running_mean, rm)
        np.testing.assert_array_equal(layer.running_var, rv)


@DTYPE
@AFFINE
@pytest.mark.parametrize("eps", [None, 1e-3], ids=["eps=None", "eps=1e-3"])
@pytest.mark.parametrize("case", RMS_NORM, ids=case_id)
def test_rms_norm_layer(case, eps, affine, dtype, rng):
    layer = RMSNorm(case.normalized_shape, eps=eps, elementwise_affine=affine, dtype=dtype)
    w, _ = set_params(layer, rng, dtype, with_bias=False)
    x = make_input(rng, case.shape, dtype)
    dy = rng.standard_normal(case.shape).astype(dtype)
    y, dx = run(layer, x, dy)
    assert_close(y, ref.rms_norm(x, case.normalized_shape, w, eps), dtype)
    check_grads(layer, dx, ref.rms_norm_backward(dy, x, case.normalized_shape, w, eps), dtype, x)


# ------------------------------------------------------------------------------ finite differences


def make_layers():
    """(id, factory, input shape) for every layer configuration checked by finite differences."""
    f64 = np.float64
    return [
        ("batch-train", lambda: BatchNorm(3, dtype=f64), (4, 3, 2), True),
        ("batch-train-2d", lambda: BatchNorm(3, dtype=f64), (5, 3), True),
        ("batch-train-last", lambda: BatchNorm(3, axis=-1, dtype=f64), (2, 2, 3), True),
        ("batch-eval", lambda: BatchNorm(3, dtype=f64), (4, 3, 2), False),
        (
            "batch-notrack-eval",
            lambda: BatchNorm(3, track_running_stats=False, dtype=f64),
            (4, 3, 2),
            False,
        ),
        ("layer", lambda: LayerNorm((3, 2), dtype=f64), (2, 3, 2), True),
        ("group", lambda: GroupNorm(2, 4, dtype=f64), (2, 4, 3), True),
        ("instance", lambda: InstanceNorm(3, affine=True, dtype=f64), (2, 3, 4), True),
        (
            "instance-track-eval",
            lambda: InstanceNorm(3, affine=True, track_running_stats=True, dtype=f64),
            (2, 3, 4),
            False,
        ),
        ("rms", lambda: RMSNorm((4,), dtype=f64), (3, 4), True),
        ("rms-eps", lambda: RMSNorm(4, eps=1e-2, dtype=f64), (3, 4), True),
    ]


@pytest.mark.parametrize(
    "name,factory,shape,training", make_layers(), ids=[c[0] for c in make_layers()]
)
def test_gradients_match_finite_differences(name, factory, shape, training, rng):
    layer = factory()
    set_params(layer, rng, np.float64, with_bias="bias" in layer.params)
    if getattr(layer, "running_mean", None) is not None:
        rm, rv = make_running(rng, layer.running_mean.shape[0])
        layer.running_mean[...] = rm
        layer.running_var[...] = rv
    layer.train(training)
    x = make_input(rng, shape)
    r = rng.standard_normal(shape)
    layer.forward(x)
    dx = layer.backward(r)
    analytic = {"x": dx, **{k: v.copy() for k, v in layer.grads.items()}}
    assert set(analytic) == {"x", *layer.params}

    def loss():
        return float(np.sum(layer.forward(x) * r))

    h = 1e-6
    for key, arr in [("x", x), *layer.params.items()]:
        num = np.zeros(arr.shape)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + h
            fp = loss()
            arr[idx] = old - h
            fm = loss()
            arr[idx] = old
            num[idx] = (fp - fm) / (2 * h)
        np.testing.assert_allclose(analytic[key], num, rtol=1e-6, atol=1e-7, err_msg=key)


# ------------------------------------------------------------------------------ running statistics


def test_batch_norm_momentum_steps_and_eval(rng):
    layer = BatchNorm(4, momentum=0.3, dtype=np.float64)
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    for step in range(3):
        x = make_input(rng, (6, 4, 3), offset=step)
        layer.forward(x)
        rm, rv = ref.batch_norm_running_stats(x, rm, rv, 0.3)
        assert_close(layer.running_mean, rm, np.float64)
        assert_close(layer.running_var, rv, np.float64)
    assert int(layer.num_batches_tracked) == 3
    # eval: uses the running statistics, changes nothing
    layer.eval()
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    x = make_input(rng, (5, 4, 3))
    y = layer.forward(x)
    assert_close(y, ref.batch_norm(x, rm, rv, np.ones(4), np.zeros(4), False), np.float64)
    np.testing.assert_array_equal(layer.running_mean, rm)
    np.testing.assert_array_equal(layer.running_var, rv)
    assert int(layer.num_batches_tracked) == 3


@pytest.mark.parametrize("layer_cls", [BatchNorm, InstanceNorm])
def test_momentum_none_is_cumulative_average(layer_cls, rng):
    """momentum=None: factor 1/num_batches_tracked, so the running mean is the plain average of
    the batch means and the running variance the average of the unbiased batch variances."""
    kw = {"track_running_stats": True} if layer_cls is InstanceNorm else {}
    layer = layer_cls(3, momentum=None, dtype=np.float64, **kw)
    running = (
        ref.batch_norm_running_stats if layer_cls is BatchNorm else ref.instance_norm_running_stats
    )
    rm, rv = np.zeros(3), np.ones(3)
    means, variances = [], []
    for step in range(1, 5):
        x = make_input(rng, (5, 3, 4), offset=step, scale=step)
        layer.forward(x)
        rm, rv = running(x, rm, rv, 1.0 / step)
        one_m, one_v = running(x, np.zeros(3), np.zeros(3), 1.0)
        means.append(one_m)
        variances.append(one_v)
        assert int(layer.num_batches_tracked) == step
        assert_close(layer.running_mean, rm, np.float64)
        assert_close(layer.running_var, rv, np.float64)
    assert_close(layer.running_mean, np.mean(means, axis=0), np.float64)
    assert_close(layer.running_var, np.mean(variances, axis=0), np.float64)


def test_batch_norm_without_tracking_uses_batch_stats_in_eval(rng):
    layer = BatchNorm(3, track_running_stats=False, dtype=np.float64).eval()
    x = make_input(rng, (6, 3, 2))
    dy = rng.standard_normal(x.shape)
    y, dx = run(layer, x, dy)
    w, b = np.ones(3), np.zeros(3)
    assert_close(y, ref.batch_norm(x, None, None, w, b, True), np.float64)
    check_grads(layer, dx, ref.batch_norm_backward(dy, x, None, None, w, b, True), np.float64, x)


def test_zero_size_batch_leaves_running_stats(rng):
    layer = BatchNorm(3, dtype=np.float64)
    layer.running_mean[...] = [1.0, 2.0, 3.0]
    x = np.empty((0, 3, 4))
    y = layer.forward(x)
    assert y.shape == x.shape
    dx = layer.backward(np.empty((0, 3, 4)))
    assert dx.shape == x.shape
    np.testing.assert_array_equal(layer.grads["weight"], 0.0)
    np.testing.assert_array_equal(layer.grads["bias"], 0.0)
    np.testing.assert_array_equal(layer.running_mean, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(layer.running_var, 1.0)


# ------------------------------------------------------------------------------ the layer contract


@pytest.mark.parametrize(
    "factory,keys",
    [
        (lambda d: BatchNorm(5, dtype=d), {"weight", "bias"}),
        (lambda d: BatchNorm(5, affine=False, dtype=d), set()),
        (lambda d: LayerNorm((5,), dtype=d), {"weight", "bias"}),
        (lambda d: LayerNorm(5, elementwise_affine=False, dtype=d), set()),
        (lambda d: GroupNorm(1, 5, dtype=d), {"weight", "bias"}),
        (lambda d: GroupNorm(5, 5, affine=False, dtype=d), set()),
        (lambda d: InstanceNorm(5, dtype=d), set()),
        (lambda d: InstanceNorm(5, affine=True, dtype=d), {"weight", "bias"}),
        (lambda d: RMSNorm((5,), dtype=d), {"weight"}),
        (lambda d: RMSNorm(5, elementwise_affine=False, dtype=d), set()),
    ],
    ids=[
        "bn",
        "bn-plain",
        "ln",
        "ln-plain",
        "gn",
        "gn-plain",
        "in",
        "in-affine",
        "rms",
        "rms-plain",
    ],
)
@DTYPE
def test_params_grads_and_modes(factory, keys, dtype, rng):
    layer = factory(dtype)
    assert set(layer.params) == keys
    for p in layer.params.values():
        assert p.dtype == np.dtype(dtype) and p.shape == (5,)
    # torch's initial values: weight 1, bias 0
    if keys:
        np.testing.assert_array_equal(layer.params["weight"], 1.0)
    if "bias" in keys:
        np.testing.assert_array_equal(layer.params["bias"], 0.0)
    if getattr(layer, "running_mean", None) is not None:
        assert layer.running_mean.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(layer.running_mean, 0.0)
        np.testing.assert_array_equal(layer.running_var, 1.0)
    assert layer.training is True
    assert layer.eval() is layer and layer.training is False
    assert layer.train() is layer and layer.training is True

    x = make_input(
        rng, (4, 5, 3) if not isinstance(layer, (LayerNorm, RMSNorm)) else (4, 3, 5), dtype
    )
    dy = rng.standard_normal(x.shape).astype(dtype)
    param_ids = {k: id(v) for k, v in layer.params.items()}
    layer.forward(x)
    layer.backward(dy)
    assert set(layer.grads) == keys
    first = {k: v.copy() for k, v in layer.grads.items()}
    # a second backward overwrites (does not accumulate) the grads
    layer.forward(x)
    layer.backward(dy)
    for k in keys:
        assert layer.grads[k].shape == layer.params[k].shape
        np.testing.assert_array_equal(layer.grads[k], first[k])
    # params are never rebound
    assert {k: id(v) for k, v in layer.params.items()} == param_ids


def test_in_place_param_update_is_used(rng):
    """An optimizer updates params in place; the next forward must see the new values."""
    layer = LayerNorm((6,), dtype=np.float64)
    x = make_input(rng, (3, 6))
    layer.params["weight"] *= 2.0
    layer.params["bias"] += 0.5
    assert_close(
        layer.forward(x), ref.layer_norm(x, (6,), 2 * np.ones(6), 0.5 * np.ones(6)), np.float64
    )


def test_backward_uses_last_forward(rng):
    """backward pairs with the most recent forward (what it saved), not an earlier one."""
    layer = BatchNorm(3, dtype=np.float64)
    x1, x2 = make_input(rng, (5, 3, 2)), make_input(rng, (4, 3, 2), offset=3.0)
    dy = rng.standard_normal(x2.shape)
    layer.forward(x1)
    layer.forward(x2)
    dx = layer.backward(dy)
    check_grads(
        layer,
        dx,
        ref.batch_norm_backward(dy, x2, None, None, np.ones(3), np.zeros(3), True),
        np.float64,
        x2,
    )


# ------------------------------------------------------------------------------ accuracy

ACCURACY_LAYERS = [
    (
        "batch",
        lambda d=np.float32: BatchNorm(8, dtype=d),
        (64, 8, 10),
        lambda x, w, b, dy: (
            ref.batch_norm(x, None, None, w, b, True),
            ref.batch_norm_backward(dy, x, None, None, w, b, True),
        ),
    ),
    (
        "batch-last",
        lambda d=np.float32: BatchNorm(8, axis=-1, dtype=d),
        (64, 10, 8),
        lambda x, w, b, dy: (
            ref.batch_norm(x, None, None, w, b, True, axis=-1),
            ref.batch_norm_backward(dy, x, None, None, w, b, True, axis=-1),
        ),
    ),
    (
        "batch-2d",
        lambda d=np.float32: BatchNorm(16, dtype=d),
        (512, 16),
        lambda x, w, b, dy: (
            ref.batch_norm(x, None, None, w, b, True),
            ref.batch_norm_backward(dy, x, None, None, w, b, True),
        ),
    ),
    (
        "layer",
        lambda d=np.float32: LayerNorm((256,), dtype=d),
        (16, 256),
        lambda x, w, b, dy: (
            ref.layer_norm(x, (256,), w, b),
            ref.layer_norm_backward(dy, x, (256,), w, b),
        ),
    ),
    (
        "group",
        lambda d=np.float32: GroupNorm(4, 8, dtype=d),
        (8, 8, 40),
        lambda x, w, b, dy: (ref.group_norm(x, 4, w, b), ref.group_norm_backward(dy, x, 4, w, b)),
    ),
    (
        "instance",
        lambda d=np.float32: InstanceNorm(8, affine=True, dtype=d),
        (4, 8, 200),
        lambda x, w, b, dy: (
            ref.instance_norm(x, None, None, w, b),
            ref.instance_norm_backward(dy, x, None, None, w, b),
        ),
    ),
    (
        "rms",
        lambda d=np.float32: RMSNorm((256,), dtype=d),
        (16, 256),
        lambda x, w, b, dy: (ref.rms_norm(x, (256,), w), ref.rms_norm_backward(dy, x, (256,), w)),
    ),
]


def _assert_within_1e3(layer, y, dx, ex_y, grads, b):
    """Output and every gradient within 1e-3 (absolute) of the float64 reference."""
    np.testing.assert_allclose(y, ex_y, rtol=0, atol=1e-3, err_msg="y")
    np.testing.assert_allclose(dx, grads[0], rtol=0, atol=1e-3, err_msg="dx")
    np.testing.assert_allclose(
        layer.grads["weight"], grads[1], rtol=0, atol=1e-3, err_msg="dweight"
    )
    if b is not None:
        np.testing.assert_allclose(
            layer.grads["bias"], grads[2], rtol=0, atol=1e-3, err_msg="dbias"
        )


@pytest.mark.parametrize(
    "name,factory,shape,reference", ACCURACY_LAYERS, ids=[c[0] for c in ACCURACY_LAYERS]
)
def test_float32_accuracy_at_large_offset(name, factory, shape, reference, rng):
    """float32 input 1e4 + randn: output and every gradient within 1e-3 (absolute) of the
    float64 reference computed from the same float32 values."""
    layer = factory()
    w, b = set_params(layer, rng, np.float32, with_bias="bias" in layer.params)
    x = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    y, dx = run(layer, x, dy)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    ex_y, grads = reference(x, w, b, dy)
    _assert_within_1e3(layer, y, dx, ex_y, grads, b)


# ------------------------------------------------------------- bigger shapes, layouts

BIG = [
    (
        "batch-features",
        lambda d: BatchNorm(64, dtype=d),
        (4099, 64),
        lambda x, w, b, dy: (
            ref.batch_norm(x, None, None, w, b, True),
            ref.batch_norm_backward(dy, x, None, None, w, b, True),
        ),
    ),
    (
        "batch-nhwc",
        lambda d: BatchNorm(48, axis=-1, dtype=d),
        (9, 21, 19, 48),
        lambda x, w, b, dy: (
            ref.batch_norm(x, None, None, w, b, True, axis=-1),
            ref.batch_norm_backward(dy, x, None, None, w, b, True, axis=-1),
        ),
    ),
    (
        "batch-nchw",
        lambda d: BatchNorm(6, dtype=d),
        (33, 6, 37, 29),
        lambda x, w, b, dy: (
            ref.batch_norm(x, None, None, w, b, True),
            ref.batch_norm_backward(dy, x, None, None, w, b, True),
        ),
    ),
    (
        "batch-wide",
        lambda d: BatchNorm(2051, dtype=d),
        (37, 2051),
        lambda x, w, b, dy: (
            ref.batch_norm(x, None, None, w, b, True),
            ref.batch_norm_backward(dy, x, None, None, w, b, True),
        ),
    ),
    (
        "layer",
        lambda d: LayerNorm((1031,), dtype=d),
        (257, 1031),
        lambda x, w, b, dy: (
            ref.layer_norm(x, (1031,), w, b),
            ref.layer_norm_backward(dy, x, (1031,), w, b),
        ),
    ),
    (
        "layer-long-row",
        lambda d: LayerNorm((70001,), dtype=d),
        (3, 70001),
        lambda x, w, b, dy: (
            ref.layer_norm(x, (70001,), w, b),
            ref.layer_norm_backward(dy, x, (70001,), w, b),
        ),
    ),
    (
        "group",
        lambda d: GroupNorm(4, 12, dtype=d),
        (5, 12, 61, 17),
        lambda x, w, b, dy: (ref.group_norm(x, 4, w, b), ref.group_norm_backward(dy, x, 4, w, b)),
    ),
    (
        "instance",
        lambda d: InstanceNorm(3, affine=True, dtype=d),
        (2, 3, 211, 97),
        lambda x, w, b, dy: (
            ref.instance_norm(x, None, None, w, b),
            ref.instance_norm_backward(dy, x, None, None, w, b),
        ),
    ),
    (
        "rms",
        lambda d: RMSNorm((1031,), dtype=d),
        (257, 1031),
        lambda x, w, b, dy: (ref.rms_norm(x, (1031,), w), ref.rms_norm_backward(dy, x, (1031,), w)),
    ),
]


@DTYPE
@pytest.mark.parametrize("name,factory,shape,reference", BIG, ids=[c[0] for c in BIG])
def test_multi_block_shapes(name, factory, shape, reference, dtype, rng):
    """Shapes large enough to be split into several parallel blocks / chunks, with odd sizes so
    the last block is partial: forward and every gradient still match the reference."""
    layer = factory(dtype)
    w, b = set_params(layer, rng, dtype, with_bias="bias" in layer.params)
    x = make_input(rng, shape, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    y, dx = run(layer, x, dy)
    ex_y, grads = reference(x, w, b, dy)
    assert_close(y, ex_y, dtype, err_msg="y")
    check_grads(layer, dx, grads, dtype, x)


@pytest.mark.parametrize("x_layout,dy_layout", [("F", "C"), ("strided", "F"), ("C", "strided")])
@pytest.mark.parametrize(
    "name,factory,shape,reference", ACCURACY_LAYERS, ids=[c[0] for c in ACCURACY_LAYERS]
)
def test_layer_memory_layouts(name, factory, shape, reference, x_layout, dy_layout, rng):
    """Fortran-ordered and strided inputs and upstream gradients (float64)."""
    layer64 = factory(np.float64)
    shape = (max(2, shape[0] // 4),) + shape[1:]
    w, b = set_params(layer64, rng, np.float64, with_bias="bias" in layer64.params)
    x = make_input(rng, shape, np.float64, x_layout)
    dy = make_input(rng, shape, np.float64, dy_layout, offset=0.0, scale=1.0)
    x_before, dy_before = x.copy(), dy.copy()
    y, dx = run(layer64, x, dy)
    ex_y, grads = reference(x, w, b, dy)
    assert_close(y, ex_y, np.float64, err_msg="y")
    check_grads(layer64, dx, grads, np.float64, x)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dy, dy_before)


@pytest.mark.parametrize("name,factory,shape,reference", BIG, ids=[c[0] for c in BIG])
def test_float32_accuracy_at_large_offset_multi_block(name, factory, shape, reference, rng):
    """The 1e4 + randn accuracy bound also on shapes split into many blocks (block merges,
    long rows), forward and every gradient."""
    layer = factory(np.float32)
    w, b = set_params(layer, rng, np.float32, with_bias="bias" in layer.params)
    x = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    y, dx = run(layer, x, dy)
    ex_y, grads = reference(x, w, b, dy)
    _assert_within_1e3(layer, y, dx, ex_y, grads, b)
