"""Bad input: TypeError for unsupported dtypes, ValueError naming the argument otherwise."""

import numpy as np
import pytest

import fastnorm

X_NAME = r"(\bx\b|input)"


def calls(x):
    """One valid-looking call per function on a (N, C, ...) input x (channels = x.shape[1])."""
    C = x.shape[1] if x.ndim > 1 else 1
    return {
        "batch_norm": lambda: fastnorm.batch_norm(x, None, None, training=True),
        "layer_norm": lambda: fastnorm.layer_norm(x, x.shape[-1:]),
        "group_norm": lambda: fastnorm.group_norm(x, 1),
        "instance_norm": lambda: fastnorm.instance_norm(x),
        "rms_norm": lambda: fastnorm.rms_norm(x, x.shape[-1:]),
    }, C


FUNCTIONS = ["batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm"]


# ------------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize(
    "dtype",
    [np.complex128, np.complex64, object, bool, np.float16, "U3"],
    ids=["complex128", "complex64", "object", "bool", "float16", "str"],
)
def test_unsupported_dtype_raises_type_error(fn, dtype):
    x = np.ones((3, 4, 5)).astype(dtype)
    with pytest.raises(TypeError):
        calls(x)[0][fn]()


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_python_lists_of_strings_raise_type_error(fn):
    x = np.array([[["a", "b"], ["c", "d"]], [["e", "f"], ["g", "h"]]])
    with pytest.raises(TypeError):
        calls(x)[0][fn]()


# ------------------------------------------------------------------------------- ndim


@pytest.mark.parametrize("fn", ["batch_norm", "group_norm", "instance_norm"])
@pytest.mark.parametrize("shape", [(5,), ()], ids=["1-D", "0-D"])
def test_channel_functions_need_two_dims(fn, shape):
    x = np.ones(shape)
    f = {
        "batch_norm": lambda: fastnorm.batch_norm(x, np.zeros(5), np.ones(5), training=False),
        "group_norm": lambda: fastnorm.group_norm(x, 1),
        "instance_norm": lambda: fastnorm.instance_norm(
            x, np.zeros(5), np.ones(5), use_input_stats=False
        ),
    }[fn]
    with pytest.raises(ValueError, match=X_NAME):
        f()


@pytest.mark.parametrize("fn", ["layer_norm", "rms_norm"])
def test_trailing_functions_need_one_dim(fn):
    with pytest.raises(ValueError):
        getattr(fastnorm, fn)(np.float64(3.0), ())


# ------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("arg", ["weight", "bias", "running_mean", "running_var"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_parameter_shape(arg, training):
    x = np.random.default_rng(0).standard_normal((4, 3, 5))
    kw = {
        "running_mean": np.zeros(3),
        "running_var": np.ones(3),
        "weight": np.ones(3),
        "bias": np.zeros(3),
    }
    before = {k: v.copy() for k, v in kw.items()}
    kw[arg] = np.ones(4)
    with pytest.raises(ValueError, match=arg):
        fastnorm.batch_norm(x, training=training, **kw)
    # validation happens before anything is written
    for k in kw:
        if k != arg:
            np.testing.assert_array_equal(kw[k], before[k])


@pytest.mark.parametrize("arg", ["weight", "bias"])
def test_batch_norm_channels_last_parameter_shape(arg):
    """With axis=-1 the channels are the last dim: a weight sized for axis 1 is wrong."""
    x = np.ones((4, 3, 5))
    with pytest.raises(ValueError, match=arg):
        fastnorm.batch_norm(x, None, None, training=True, axis=-1, **{arg: np.ones(3)})


def test_batch_norm_2d_weight_rejected():
    x = np.ones((4, 3, 5))
    with pytest.raises(ValueError, match="weight"):
        fastnorm.batch_norm(x, None, None, np.ones((3, 1)), training=True)


@pytest.mark.parametrize("arg", ["weight", "bias", "running_mean", "running_var"])
def test_instance_norm_parameter_shape(arg):
    x = np.random.default_rng(0).standard_normal((4, 3, 5))
    kw = {
        "running_mean": np.zeros(3),
        "running_var": np.ones(3),
        "weight": np.ones(3),
        "bias": np.zeros(3),
    }
    kw[arg] = np.ones(2)
    with pytest.raises(ValueError, match=arg):
        fastnorm.instance_norm(x, **kw)


@pytest.mark.parametrize("arg", ["weight", "bias"])
@pytest.mark.parametrize("axis", [1, -1])
def test_group_norm_parameter_shape(arg, axis):
    x = np.ones((2, 4, 6))
    with pytest.raises(ValueError, match=arg):
        fastnorm.group_norm(x, 2, axis=axis, **{arg: np.ones(5)})


@pytest.mark.parametrize("groups", [3, 0, -2, 8])
def test_group_norm_groups_must_divide_channels(groups):
    with pytest.raises(ValueError, match="num_groups"):
        fastnorm.group_norm(np.ones((2, 4, 6)), groups)


@pytest.mark.parametrize("arg", ["weight", "bias"])
def test_layer_norm_parameter_shape(arg):
    x = np.ones((2, 4, 6))
    with pytest.raises(ValueError, match=arg):
        fastnorm.layer_norm(x, (4, 6), **{arg: np.ones(6)})
    with pytest.raises(ValueError, match=arg):
        fastnorm.layer_norm(x, (6,), **{arg: np.ones((4, 6))})


def test_rms_norm_weight_shape():
    with pytest.raises(ValueError, match="weight"):
        fastnorm.rms_norm(np.ones((2, 4, 6)), (6,), np.ones(5))


@pytest.mark.parametrize("fn", ["layer_norm", "rms_norm"])
@pytest.mark.parametrize(
    "normalized_shape",
    [(5,), (3, 6), (1, 2, 4, 6), 7],
    ids=["wrong-last", "wrong-second", "too-long", "int"],
)
def test_normalized_shape_must_match_trailing_dims(fn, normalized_shape):
    with pytest.raises(ValueError, match="normalized_shape"):
        getattr(fastnorm, fn)(np.ones((2, 4, 6)), normalized_shape)


# ------------------------------------------------------------------------------- eps


@pytest.mark.parametrize("eps", [-1e-5, float("nan"), float("inf")])
@pytest.mark.parametrize("fn", ["batch_norm", "layer_norm", "group_norm", "instance_norm"])
def test_eps_must_be_a_finite_non_negative_real(fn, eps):
    x = np.ones((2, 4, 6))
    f = {
        "batch_norm": lambda: fastnorm.batch_norm(x, None, None, training=True, eps=eps),
        "layer_norm": lambda: fastnorm.layer_norm(x, (6,), eps=eps),
        "group_norm": lambda: fastnorm.group_norm(x, 2, eps=eps),
        "instance_norm": lambda: fastnorm.instance_norm(x, eps=eps),
    }[fn]
    with pytest.raises(ValueError, match="eps"):
        f()


@pytest.mark.parametrize(
    "fn", ["batch_norm", "layer_norm", "rms_norm", "group_norm", "instance_norm"]
)
def test_eps_zero_is_accepted(fn):
    """As in torch: eps=0 is a valid parameter (non-constant data keeps a finite result)."""
    x = np.arange(48.0).reshape(2, 4, 6) ** 1.5
    f = {
        "batch_norm": lambda: fastnorm.batch_norm(x, None, None, training=True, eps=0.0),
        "layer_norm": lambda: fastnorm.layer_norm(x, (6,), eps=0.0),
        "rms_norm": lambda: fastnorm.rms_norm(x, (6,), eps=0.0),
        "group_norm": lambda: fastnorm.group_norm(x, 2, eps=0),
        "instance_norm": lambda: fastnorm.instance_norm(x, eps=0.0),
    }[fn]
    assert np.isfinite(f()).all()


# ------------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(
    "shape,axis", [((1, 4), 1), ((1, 4, 1), 1), ((1, 1, 1, 3), -1), ((1, 3, 1, 1, 1), 1)]
)
def test_one_value_per_channel_in_training(shape, axis):
    rm, rv = np.zeros(shape[axis]), np.ones(shape[axis])
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        fastnorm.batch_norm(np.ones(shape), rm, rv, training=True, axis=axis)
    np.testing.assert_array_equal(rm, 0.0)
    np.testing.assert_array_equal(rv, 1.0)
    # eval mode is fine with a single sample
    assert fastnorm.batch_norm(np.ones(shape), rm, rv, training=False, axis=axis).shape == shape


@pytest.mark.parametrize("shape", [(2, 3, 1), (2, 3), (2, 3, 1, 1)])
def test_instance_norm_needs_more_than_one_spatial_element(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    with pytest.raises(ValueError):
        fastnorm.instance_norm(x)
    # with running statistics and use_input_stats=False it is well defined
    y = fastnorm.instance_norm(x, np.zeros(3), np.ones(3), use_input_stats=False)
    assert y.shape == shape


def test_batch_norm_eval_requires_running_stats():
    x = np.ones((4, 3))
    with pytest.raises(ValueError, match="running"):
        fastnorm.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match="running"):
        fastnorm.batch_norm(x, np.zeros(3), None, training=False)


def test_instance_norm_running_stats_without_input_stats():
    with pytest.raises(ValueError, match="running"):
        fastnorm.instance_norm(np.ones((2, 3, 4)), use_input_stats=False)


@pytest.mark.parametrize("axis", [3, -4])
def test_batch_norm_axis_out_of_range(axis):
    with pytest.raises(ValueError, match="axis"):
        fastnorm.batch_norm(np.ones((2, 3, 4)), None, None, training=True, axis=axis)
