"""fastnorm's functional API against the float64 NumPy reference, over the case table."""

import numpy as np
import pytest
import reference as ref
from cases import (
    BATCH_NORM,
    BATCH_NORM_MODES,
    DTYPES,
    GROUP_NORM,
    INSTANCE_NORM,
    LAYER_NORM,
    LAYOUTS,
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

import fastnorm

AFFINE = pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
DTYPE = pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)


def check_output(y, x, expected, dtype):
    assert isinstance(y, np.ndarray)
    assert y.shape == x.shape
    assert y.dtype == np.dtype(dtype)
    assert_close(y, expected, dtype)


# --------------------------------------------------------------------------- batch norm


@DTYPE
@AFFINE
@pytest.mark.parametrize("case,training", BATCH_NORM_MODES, ids=mode_id)
def test_batch_norm(case, training, affine, dtype, rng):
    C = channel_count(case.shape, case.axis)
    x = make_input(rng, case.shape, dtype)
    x_before = x.copy()
    rm, rv = make_running(rng, C, dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    w, b = make_affine(rng, C, dtype) if affine else (None, None)
    y = fastnorm.batch_norm(x, rm, rv, w, b, training, 0.2, 1e-4, axis=case.axis)
    check_output(
        y, x, ref.batch_norm(x, rm0, rv0, w, b, training, 0.2, 1e-4, axis=case.axis), dtype
    )
    np.testing.assert_array_equal(x, x_before)
    if training and x.size:
        new_rm, new_rv = ref.batch_norm_running_stats(x, rm0, rv0, 0.2, axis=case.axis)
        assert_close(rm, new_rm, dtype)
        assert_close(rv, new_rv, dtype)
    else:  # eval, or a zero-size batch: running statistics untouched
        np.testing.assert_array_equal(rm, rm0)
        np.testing.assert_array_equal(rv, rv0)


@DTYPE
@pytest.mark.parametrize(
    "case", [c for c in BATCH_NORM if c.train and 0 not in c.shape], ids=case_id
)
def test_batch_norm_training_without_running_stats(case, dtype, rng):
    C = channel_count(case.shape, case.axis)
    x = make_input(rng, case.shape, dtype)
    w, b = make_affine(rng, C, dtype)
    y = fastnorm.batch_norm(x, None, None, w, b, training=True, axis=case.axis)
    check_output(y, x, ref.batch_norm(x, None, None, w, b, True, axis=case.axis), dtype)


@pytest.mark.parametrize("momentum", [0.0, 1.0, 0.5])
def test_batch_norm_momentum(momentum, rng):
    x = make_input(rng, (6, 4, 3))
    rm, rv = make_running(rng, 4)
    rm0, rv0 = rm.copy(), rv.copy()
    fastnorm.batch_norm(x, rm, rv, training=True, momentum=momentum)
    new_rm, new_rv = ref.batch_norm_running_stats(x, rm0, rv0, momentum)
    assert_close(rm, new_rm, np.float64)
    assert_close(rv, new_rv, np.float64)
    if momentum == 0.0:
        np.testing.assert_array_equal(rm, rm0)
    if momentum == 1.0:  # the running variance is the unbiased batch variance
        n = 6 * 3
        np.testing.assert_allclose(rv, np.var(x, axis=(0, 2)) * n / (n - 1), rtol=1e-12)


def test_batch_norm_eval_ignores_batch(rng):
    """Eval mode uses the running statistics: each sample is normalized on its own."""
    x = make_input(rng, (5, 3, 4))
    rm, rv = make_running(rng, 3)
    y = fastnorm.batch_norm(x, rm, rv, training=False)
    y0 = fastnorm.batch_norm(x[:1], rm, rv, training=False)
    np.testing.assert_allclose(y[:1], y0, rtol=1e-14, atol=1e-14)


# --------------------------------------------------------------------------- layer norm


@DTYPE
@AFFINE
@pytest.mark.parametrize("case", LAYER_NORM, ids=case_id)
def test_layer_norm(case, affine, dtype, rng):
    x = make_input(rng, case.shape, dtype)
    w, b = make_affine(rng, case.normalized_shape, dtype) if affine else (None, None)
    y = fastnorm.layer_norm(x, case.normalized_shape, w, b, 1e-4)
    check_output(y, x, ref.layer_norm(x, case.normalized_shape, w, b, 1e-4), dtype)


def test_layer_norm_int_normalized_shape(rng):
    """normalized_shape may be an int, as in torch."""
    x = make_input(rng, (3, 5))
    assert_close(fastnorm.layer_norm(x, 5), ref.layer_norm(x, (5,)), np.float64)


# --------------------------------------------------------------------------- group norm


@DTYPE
@AFFINE
@pytest.mark.parametrize("case", GROUP_NORM, ids=case_id)
def test_group_norm(case, affine, dtype, rng):
    C = channel_count(case.shape, case.axis)
    x = make_input(rng, case.shape, dtype)
    w, b = make_affine(rng, C, dtype) if affine else (None, None)
    y = fastnorm.group_norm(x, case.groups, w, b, 1e-4, axis=case.axis)
    check_output(y, x, ref.group_norm(x, case.groups, w, b, 1e-4, axis=case.axis), dtype)


# --------------------------------------------------------------------------- instance norm


@DTYPE
@AFFINE
@pytest.mark.parametrize("use_input_stats", [True, False], ids=["input_stats", "running"])
@pytest.mark.parametrize("case", INSTANCE_NORM, ids=case_id)
def test_instance_norm(case, use_input_stats, affine, dtype, rng):
    C = channel_count(case.shape, case.axis)
    x = make_input(rng, case.shape, dtype)
    rm, rv = make_running(rng, C, dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    w, b = make_affine(rng, C, dtype) if affine else (None, None)
    y = fastnorm.instance_norm(x, rm, rv, w, b, use_input_stats, 0.2, 1e-4, axis=case.axis)
    expected = ref.instance_norm(x, rm0, rv0, w, b, use_input_stats, 0.2, 1e-4, axis=case.axis)
    check_output(y, x, expected, dtype)
    if use_input_stats and x.size:
        new_rm, new_rv = ref.instance_norm_running_stats(x, rm0, rv0, 0.2, axis=case.axis)
        assert_close(rm, new_rm, dtype)
        assert_close(rv, new_rv, dtype)
    else:
        np.testing.assert_array_equal(rm, rm0)
        np.testing.assert_array_equal(rv, rv0)


@DTYPE
@pytest.mark.parametrize("case", [c for c in INSTANCE_NORM if 0 not in c.shape], ids=case_id)
def test_instance_norm_without_running_stats(case, dtype, rng):
    C = channel_count(case.shape, case.axis)
    x = make_input(rng, case.shape, dtype)
    w, b = make_affine(rng, C, dtype)
    y = fastnorm.instance_norm(x, weight=w, bias=b, axis=case.axis)
    check_output(y, x, ref.instance_norm(x, None, None, w, b, axis=case.axis), dtype)


# --------------------------------------------------------------------------- RMS norm


@DTYPE
@AFFINE
@pytest.mark.parametrize("eps", [None, 1e-3], ids=["eps=None", "eps=1e-3"])
@pytest.mark.parametrize("case", RMS_NORM, ids=case_id)
def test_rms_norm(case, eps, affine, dtype, rng):
    x = make_input(rng, case.shape, dtype)
    w = make_affine(rng, case.normalized_shape, dtype)[0] if affine else None
    y = fastnorm.rms_norm(x, case.normalized_shape, w, eps)
    check_output(y, x, ref.rms_norm(x, case.normalized_shape, w, eps), dtype)


@DTYPE
def test_rms_norm_default_eps_is_dtype_eps(dtype, rng):
    """Rows of tiny values make eps visible: eps=None must equal eps=finfo(dtype).eps and
    differ from the other dtype's eps."""
    x = (3e-5 * rng.standard_normal((4, 6))).astype(dtype)
    y = fastnorm.rms_norm(x, (6,))
    np.testing.assert_array_equal(y, fastnorm.rms_norm(x, (6,), eps=float(np.finfo(dtype).eps)))
    assert_close(y, ref.rms_norm(x, (6,)), dtype)
    if dtype == np.float32:
        other = ref.rms_norm(x, (6,), eps=float(np.finfo(np.float64).eps))
        assert not np.allclose(y, other, rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------------------- one call per op


def call_each(x, rng, dtype, out=None):
    """(name, fastnorm result, reference) for every op on a (N, C, S...) input x."""
    C = x.shape[1]
    rm, rv = make_running(rng, C, dtype)
    w, b = make_affine(rng, C, dtype)
    lw, lb = make_affine(rng, x.shape[-1:], dtype)
    ns = x.shape[-1:]
    kw = {} if out is None else {"out": out}
    return [
        (
            "batch_norm train",
            lambda: fastnorm.batch_norm(x, None, None, w, b, True, **kw),
            lambda: ref.batch_norm(x, None, None, w, b, True),
        ),
        (
            "batch_norm eval",
            lambda: fastnorm.batch_norm(x, rm, rv, w, b, False, **kw),
            lambda: ref.batch_norm(x, rm, rv, w, b, False),
        ),
        (
            "batch_norm channels last",
            lambda: fastnorm.batch_norm(x, None, None, lw, lb, True, axis=-1, **kw),
            lambda: ref.batch_norm(x, None, None, lw, lb, True, axis=-1),
        ),
        (
            "layer_norm",
            lambda: fastnorm.layer_norm(x, ns, lw, lb, **kw),
            lambda: ref.layer_norm(x, ns, lw, lb),
        ),
        (
            "group_norm",
            lambda: fastnorm.group_norm(x, 2, w, b, **kw),
            lambda: ref.group_norm(x, 2, w, b),
        ),
        (
            "group_norm channels last",
            lambda: fastnorm.group_norm(x, 2, lw, lb, axis=-1, **kw),
            lambda: ref.group_norm(x, 2, lw, lb, axis=-1),
        ),
        (
            "instance_norm",
            lambda: fastnorm.instance_norm(x, None, None, w, b, **kw),
            lambda: ref.instance_norm(x, None, None, w, b),
        ),
        (
            "instance_norm channels last",
            lambda: fastnorm.instance_norm(x, None, None, lw, lb, axis=-1, **kw),
            lambda: ref.instance_norm(x, None, None, lw, lb, axis=-1),
        ),
        ("rms_norm", lambda: fastnorm.rms_norm(x, ns, lw, **kw), lambda: ref.rms_norm(x, ns, lw)),
    ]


@DTYPE
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(4, 6, 8), (3, 4, 2, 6)], ids=lambda s: "x".join(map(str, s)))
def test_memory_layouts(shape, layout, dtype, rng):
    """C-contiguous, Fortran-ordered and strided inputs give the reference result (and are not
    modified)."""
    x = make_input(rng, shape, dtype, layout)
    x_before = x.copy()
    for name, fn, expected in call_each(x, rng, dtype):
        y = fn()
        assert y.shape == x.shape and y.dtype == np.dtype(dtype), name
        assert_close(y, expected(), dtype, err_msg=name)
        np.testing.assert_array_equal(x, x_before, err_msg=name)


def test_strided_view_of_channels(rng):
    """The brief's example: x[:, ::2] (every other channel) of a C-contiguous array."""
    big = make_input(rng, (5, 8, 3))
    x = big[:, ::2]
    w, b = make_affine(rng, 4)
    assert_close(
        fastnorm.batch_norm(x, None, None, w, b, True),
        ref.batch_norm(x, None, None, w, b, True),
        np.float64,
    )
    assert_close(fastnorm.group_norm(x, 2, w, b), ref.group_norm(x, 2, w, b), np.float64)
    assert_close(
        fastnorm.instance_norm(x, weight=w, bias=b),
        ref.instance_norm(x, None, None, w, b),
        np.float64,
    )
    assert_close(fastnorm.layer_norm(x, (4, 3)), ref.layer_norm(x, (4, 3)), np.float64)


@DTYPE
@pytest.mark.parametrize("out_layout", ["C", "F", "strided"])
def test_out_argument(out_layout, dtype, rng):
    """out= receives the result and is returned (the same object)."""
    x = make_input(rng, (4, 6, 8), dtype)
    out = make_input(rng, x.shape, dtype, out_layout)
    for name, fn, expected in call_each(x, rng, dtype, out=out):
        out[...] = np.nan
        y = fn()
        assert y is out, name
        assert_close(out, expected(), dtype, err_msg=name)


def test_out_wrong_shape_is_rejected(rng):
    x = make_input(rng, (4, 6, 8))
    with pytest.raises((ValueError, TypeError)):
        fastnorm.layer_norm(x, (8,), out=np.empty((4, 6, 7)))
    with pytest.raises((ValueError, TypeError)):
        fastnorm.batch_norm(x, None, None, training=True, out=np.empty((4, 6)))


@pytest.mark.parametrize("int_dtype", [np.int64, np.int32, np.uint8])
def test_integer_input_gives_float64(int_dtype, rng):
    x = rng.integers(0, 50, (4, 6, 8)).astype(int_dtype)
    for name, fn, expected in call_each(x, rng, np.float64):
        y = fn()
        assert y.dtype == np.float64, name
        assert_close(y, expected(), np.float64, err_msg=name)


def test_rms_norm_integer_input_uses_float64_eps():
    x = np.array([[0, 0, 1], [2, 0, 0]], dtype=np.int64)
    np.testing.assert_allclose(fastnorm.rms_norm(x, (3,)), ref.rms_norm(x, (3,)), rtol=1e-14)


@pytest.mark.parametrize("fn", ["layer_norm", "rms_norm"])
def test_one_dimensional_input(fn, rng):
    x = make_input(rng, (9,))
    assert_close(getattr(fastnorm, fn)(x, (9,)), getattr(ref, fn)(x, (9,)), np.float64)


def test_large_spatial_batch_norm_float32(rng):
    """A realistic conv block: many elements per channel (more than one reduction block)."""
    x = make_input(rng, (8, 16, 24, 24), np.float32)
    rm, rv = make_running(rng, 16, np.float32)
    rm0, rv0 = rm.copy(), rv.copy()
    y = fastnorm.batch_norm(x, rm, rv, training=True)
    assert_close(y, ref.batch_norm(x, None, None, training=True), np.float32)
    new_rm, new_rv = ref.batch_norm_running_stats(x, rm0, rv0)
    assert_close(rm, new_rm, np.float32)
    assert_close(rv, new_rv, np.float32)


# --------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("axis", [1, -1])
def test_forward_accuracy_large_offset(axis, rng):
    """float32 input 1e4 + randn: outputs within 1e-3 of the float64 reference of the same
    float32 values (E[x^2] - E[x]^2 would fail this by orders of magnitude)."""
    x = (1e4 + rng.standard_normal((32, 8, 40))).astype(np.float32)
    if axis == -1:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    C = x.shape[axis]
    rm = np.zeros(C, np.float32)
    rv = np.ones(C, np.float32)
    y = fastnorm.batch_norm(x, rm, rv, training=True, axis=axis)
    np.testing.assert_allclose(
        y, ref.batch_norm(x, None, None, training=True, axis=axis), atol=1e-3, rtol=0
    )
    new_rm, new_rv = ref.batch_norm_running_stats(x, np.zeros(C), np.ones(C), axis=axis)
    np.testing.assert_allclose(rv, new_rv, atol=1e-3, rtol=0)
    np.testing.assert_allclose(rm, new_rm, rtol=1e-6)
    checks = [
        (fastnorm.layer_norm(x, x.shape[-1:]), ref.layer_norm(x, x.shape[-1:])),
        (fastnorm.group_norm(x, 4, axis=axis), ref.group_norm(x, 4, axis=axis)),
        (fastnorm.instance_norm(x, axis=axis), ref.instance_norm(x, axis=axis)),
        (fastnorm.rms_norm(x, x.shape[-1:]), ref.rms_norm(x, x.shape[-1:])),
    ]
    for got, expected in checks:
        np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)


# --------------------------------------------------------------------------- NaN / Inf


def test_nan_propagates_within_its_slot(rng):
    """A NaN poisons exactly the statistics it enters: its channel (batch norm, training), its
    row (layer/RMS norm), its group (group norm), its (sample, channel) (instance norm)."""
    x = make_input(rng, (4, 6, 5))
    x[2, 3, 1] = np.nan
    y = fastnorm.batch_norm(x, None, None, training=True)
    assert np.isnan(y[:, 3]).all() and np.isfinite(np.delete(y, 3, axis=1)).all()
    y = fastnorm.layer_norm(x, (5,))
    assert np.isnan(y[2, 3]).all() and np.isnan(y).sum() == 5
    y = fastnorm.rms_norm(x, (6, 5))
    assert np.isnan(y[2]).all() and np.isnan(y).sum() == 30
    y = fastnorm.group_norm(x, 3)
    assert np.isnan(y[2, 2:4]).all() and np.isnan(y).sum() == 10
    y = fastnorm.instance_norm(x)
    assert np.isnan(y[2, 3]).all() and np.isnan(y).sum() == 5
    # eval batch norm: no coupling, only the NaN element itself
    rm, rv = make_running(rng, 6)
    y = fastnorm.batch_norm(x, rm, rv, training=False)
    assert np.isnan(y[2, 3, 1]) and np.isnan(y).sum() == 1


def test_nan_in_running_stats_stays_in_place(rng):
    x = make_input(rng, (4, 3, 5))
    rm, rv = make_running(rng, 3)
    y = fastnorm.batch_norm(x, rm, rv, training=True)
    assert np.isfinite(y).all() and np.isfinite(rm).all()
    x[0, 1, 0] = np.nan
    fastnorm.batch_norm(x, rm, rv, training=True)
    assert np.isnan(rm[1]) and np.isnan(rv[1])
    assert np.isfinite(rm[[0, 2]]).all() and np.isfinite(rv[[0, 2]]).all()


# --------------------------------------------------------------------------- unusual arrays


def test_negative_zero_strides_and_read_only(rng):
    """Reversed views, broadcast (zero-stride) views and read-only arrays are valid inputs."""
    x = make_input(rng, (5, 6, 8))
    inputs = {
        "reversed": x[::-1, :, ::-1],
        "broadcast": np.broadcast_to(make_input(rng, (1, 6, 8)), (5, 6, 8)),
        "read-only": x.copy(),
    }
    inputs["read-only"].flags.writeable = False
    for name, v in inputs.items():
        assert_close(
            fastnorm.batch_norm(v, None, None, training=True),
            ref.batch_norm(v, None, None, training=True),
            np.float64,
            err_msg=name,
        )
        assert_close(
            fastnorm.batch_norm(v, None, None, training=True, axis=-1),
            ref.batch_norm(v, None, None, training=True, axis=-1),
            np.float64,
            err_msg=name,
        )
        assert_close(
            fastnorm.layer_norm(v, (6, 8)), ref.layer_norm(v, (6, 8)), np.float64, err_msg=name
        )
        assert_close(
            fastnorm.group_norm(v, 2, axis=-1),
            ref.group_norm(v, 2, axis=-1),
            np.float64,
            err_msg=name,
        )
        assert_close(fastnorm.instance_norm(v), ref.instance_norm(v), np.float64, err_msg=name)
        assert_close(fastnorm.rms_norm(v, (8,)), ref.rms_norm(v, (8,)), np.float64, err_msg=name)


@pytest.mark.parametrize("fn", ["batch_norm", "instance_norm"])
def test_running_stats_views_are_updated_in_place(fn, rng):
    """Running statistics that are strided views (e.g. slices of a larger buffer) must be
    updated in place, and nothing else in the buffer touched."""
    x = make_input(rng, (5, 6, 7))
    buf_m, buf_v = np.full(12, 0.25), np.full(12, 1.5)
    rm, rv = buf_m[::2], buf_v[::2]
    if fn == "batch_norm":
        fastnorm.batch_norm(x, rm, rv, training=True, momentum=0.5)
        em, ev = ref.batch_norm_running_stats(x, np.full(6, 0.25), np.full(6, 1.5), 0.5)
    else:
        fastnorm.instance_norm(x, rm, rv, momentum=0.5)
        em, ev = ref.instance_norm_running_stats(x, np.full(6, 0.25), np.full(6, 1.5), 0.5)
    assert_close(buf_m[::2], em, np.float64)
    assert_close(buf_v[::2], ev, np.float64)
    np.testing.assert_array_equal(buf_m[1::2], 0.25)
    np.testing.assert_array_equal(buf_v[1::2], 1.5)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_constant_channel_gives_bias(dtype):
    """Zero variance: (x - mean) is exactly 0, so the output is the bias (no NaN), even at a
    large offset where a one-pass variance could come out negative."""
    x = np.full((4, 3, 5), 1e4, dtype)
    w = np.array([0.5, 1.0, 2.0], dtype)
    b = np.array([-1.0, 0.0, 3.0], dtype)
    expected = np.broadcast_to(b[None, :, None], x.shape)
    atol = 1e-3 if dtype == np.float32 else 1e-9
    results = {
        "batch_norm": fastnorm.batch_norm(x, None, None, w, b, training=True),
        "batch_norm last": fastnorm.batch_norm(
            np.moveaxis(x, 1, -1), None, None, w, b, training=True, axis=-1
        ),
        "group_norm": fastnorm.group_norm(x, 3, w, b),
        "instance_norm": fastnorm.instance_norm(x, weight=w, bias=b),
    }
    for name, y in results.items():
        if name.endswith("last"):
            y = np.moveaxis(y, -1, 1)
        np.testing.assert_allclose(y, expected, rtol=0, atol=atol, err_msg=name)
    np.testing.assert_allclose(fastnorm.layer_norm(x, (5,)), 0.0, rtol=0, atol=atol)


def test_normalized_shape_as_list(rng):
    x = make_input(rng, (3, 4, 5))
    assert_close(fastnorm.layer_norm(x, [4, 5]), ref.layer_norm(x, (4, 5)), np.float64)
    assert_close(fastnorm.rms_norm(x, [4, 5]), ref.rms_norm(x, (4, 5)), np.float64)
