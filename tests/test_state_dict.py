"""fastnorm.nn.Module state: registered parameters and buffers, state_dict / load_state_dict with
PyTorch's keys, astype, and nothing saved for backward being pickled or copied."""

import copy
import pickle

import numpy as np
import pytest

from fastnorm.nn import (
    GELU,
    BatchNorm,
    Dropout,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    Linear,
    ReLU,
    RMSNorm,
    Sequential,
    Sigmoid,
    StateDict,
    Tanh,
)


def _net():
    return Sequential(
        Linear(4, 6, bias=False, random_state=0), BatchNorm(6), ReLU(), Linear(6, 3, random_state=1)
    )


def _trained(module, shape, seed=0, steps=3):
    """Random parameters and moved running statistics."""
    rng = np.random.default_rng(seed)
    for p in module.params.values():
        p[...] = rng.uniform(0.5, 1.5, p.shape)
    for _ in range(steps):
        module.forward(rng.standard_normal(shape).astype(np.float32) * 2 + 1)
    return module


LAYERS = [
    (lambda: Linear(5, 3, random_state=0), (4, 5)),
    (lambda: Linear(5, 3, bias=False, random_state=0), (4, 5)),
    (lambda: BatchNorm(5), (8, 5)),
    (lambda: BatchNorm(5, affine=False, momentum=None), (8, 5, 3)),
    (lambda: BatchNorm(5, track_running_stats=False), (8, 5)),
    (lambda: InstanceNorm(5, affine=True, track_running_stats=True), (4, 5, 6)),
    (lambda: LayerNorm(5), (4, 5)),
    (lambda: GroupNorm(5, 5), (4, 5, 2)),
    (lambda: RMSNorm(5), (4, 5)),
    (
        lambda: Sequential(
            Linear(5, 5, random_state=2),
            Sequential(BatchNorm(5), GELU()),
            Dropout(0.2, random_state=0),
            Linear(5, 2, random_state=3),
        ),
        (8, 5),
    ),
]
IDS = [
    "linear",
    "linear-nobias",
    "bn",
    "bn-plain-cumulative",
    "bn-untracked",
    "in-tracked",
    "ln",
    "gn",
    "rms",
    "nested",
]


def test_keys_are_torch_state_dict_keys():
    net = _net()
    state = net.state_dict()
    assert list(state) == [
        "0.weight",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
        "3.weight",
        "3.bias",
    ]
    assert isinstance(state, StateDict) and state.metadata["format"] == 1
    assert "fastnorm_version" in state.metadata
    assert all(isinstance(v, np.ndarray) for v in state.values())
    nbt = state["1.num_batches_tracked"]
    assert nbt.shape == () and nbt.dtype == np.int64 and nbt == 0
    nested = Sequential(Linear(2, 2), Sequential(Linear(2, 2), RMSNorm(2))).state_dict()
    assert list(nested) == ["0.weight", "0.bias", "1.0.weight", "1.0.bias", "1.1.weight"]
    # only parameters and buffers: nothing saved for backward, no gradients
    net.forward(np.ones((3, 4), np.float32))
    assert list(net.state_dict()) == list(state)
    # copies, not views
    state["0.weight"][...] = 7
    assert not np.any(net[0].weight == 7)


def test_buffers_are_attributes_and_none_when_not_tracking():
    bn = BatchNorm(3)
    assert bn.running_mean is dict(bn.named_buffers())["running_mean"]
    rm = bn.running_mean
    bn.forward(np.random.default_rng(0).standard_normal((5, 3)))
    assert bn.running_mean is rm  # updated in place, never rebound
    assert int(bn.num_batches_tracked) == 1
    plain = BatchNorm(3, track_running_stats=False)
    assert plain.running_mean is None and plain.running_var is None
    assert plain.num_batches_tracked is None
    assert list(plain.state_dict()) == ["weight", "bias"]


@pytest.mark.parametrize("make, shape", LAYERS, ids=IDS)
def test_round_trip_is_bitwise(make, shape):
    src = _trained(make(), shape)
    src.eval()
    state = pickle.loads(pickle.dumps(src.state_dict()))  # survives pickling, metadata too
    assert state.metadata["format"] == 1
    dst = make().eval()
    targets = {k: id(v) for k, v in dst._state_targets().items()}
    result = dst.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert {k: id(v) for k, v in dst._state_targets().items()} == targets  # copied in place
    got = dst.state_dict()
    assert list(got) == list(state)
    for key in state:
        assert got[key].dtype == state[key].dtype, key
        np.testing.assert_array_equal(got[key], state[key], err_msg=key)
    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(dst.forward(x), src.forward(x))


def test_load_casts_dtype_and_rejects_bad_state():
    net = _net()
    state = {
        k: v.astype(np.float64) if v.dtype.kind == "f" else v
        for k, v in _trained(_net(), (8, 4)).state_dict().items()
    }
    net.load_state_dict(state)
    assert net[0].weight.dtype == np.float32
    np.testing.assert_array_equal(net[0].weight, state["0.weight"].astype(np.float32))
    assert int(net[1].num_batches_tracked) == 3

    before = {k: v.copy() for k, v in net.state_dict().items()}
    missing = {k: v for k, v in state.items() if k != "1.running_var"}
    with pytest.raises(KeyError, match=r"missing keys \['1.running_var'\]"):
        net.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected keys \['2.weight'\]"):
        net.load_state_dict({**state, "2.weight": np.ones(3)})
    bad = {**state, "0.bias": state["3.bias"], "3.weight": np.zeros((3, 5))}
    with pytest.raises(ValueError, match=r"'3.weight' has shape \(3, 5\)"):
        net.load_state_dict(bad, strict=False)
    for key, value in net.state_dict().items():  # nothing was copied
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    result = net.load_state_dict({"0.weight": np.zeros((6, 4)), "9.x": np.ones(1)}, strict=False)
    assert result.unexpected_keys == ["9.x"] and "3.bias" in result.missing_keys
    np.testing.assert_array_equal(net[0].weight, 0)
    newer = StateDict(state, metadata={"format": 99})
    with pytest.raises(ValueError, match="format 99"):
        net.load_state_dict(newer)


def test_astype_casts_params_grads_and_float_buffers():
    net = _trained(_net(), (8, 4))
    x = np.random.default_rng(1).standard_normal((5, 4))
    net.backward(np.ones_like(net.forward(x.astype(np.float32))))
    assert net.astype(np.float64) is net
    for store in (net.params, net.grads):
        assert all(v.dtype == np.float64 for v in store.values())
    assert net[1].running_mean.dtype == net[1].running_var.dtype == np.float64
    assert net[1].num_batches_tracked.dtype == np.int64
    assert net[0].dtype == np.float64 and net[1].dtype == np.float64
    out = net.eval().forward(x)
    assert out.dtype == np.float64
    with pytest.raises(TypeError, match="dtype"):
        net.astype(np.int32)


@pytest.mark.parametrize(
    "make, shape",
    LAYERS
    + [
        (ReLU, (4, 5)),
        (Tanh, (4, 5)),
        (Sigmoid, (4, 5)),
        (lambda: GELU("tanh"), (4, 5)),
        (lambda: Dropout(0.5, random_state=0), (4, 5)),
    ],
    ids=IDS + ["relu", "tanh", "sigmoid", "gelu", "dropout"],
)
def test_saved_for_backward_is_not_pickled_or_copied(make, shape):
    layer = make()
    x = np.random.default_rng(0).standard_normal((64,) + shape[1:]).astype(np.float32)
    layer.forward(x)
    for clone in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert all(not m._saved for m in clone.modules())
        assert all(
            not any(np.shape(a)[:1] == (64,) for a in vars(m).values() if isinstance(a, np.ndarray))
            for m in clone.modules()
        )
        if clone.params:  # gradients are rebuilt as zeros
            assert all(not np.any(g) for g in clone.grads.values())
            with pytest.raises(RuntimeError, match="before forward"):
                clone.backward(np.ones_like(layer.forward(x)))
    layer.backward(np.ones_like(layer.forward(x)))  # the original keeps what it saved
    assert len(pickle.dumps(layer)) < len(pickle.dumps(x)) + 4096


def test_layer_parameter_rules():
    with pytest.raises(ValueError, match="eps"):
        BatchNorm(3, eps=-1e-5)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(3, momentum=2)
    with pytest.raises(TypeError, match="momentum"):
        InstanceNorm(3, momentum="fast")
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm(0)
    with pytest.raises(TypeError, match="num_groups"):
        GroupNorm(2.5, 5)
    with pytest.raises(ValueError, match="num_channels"):
        GroupNorm(1, 0)
    with pytest.raises(ValueError, match="normalized_shape"):
        LayerNorm((4, 0))
    with pytest.raises(TypeError, match="eps"):
        RMSNorm(4, eps="small")
    assert BatchNorm(3, eps=0).eps == 0.0  # as in torch, eps >= 0
    with pytest.raises(ValueError, match="num_channels"):
        GroupNorm(2, 6, affine=False).forward(np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match="num_channels"):
        GroupNorm(2, 6, axis=-1).forward(np.ones((3, 5, 4)))


def test_register_parameter_and_buffer():
    layer = Linear(2, 2)
    layer.register_buffer("steps", 0)
    layer.register_buffer("scratch", np.zeros(2), persistent=False)
    layer.register_parameter("scale", np.ones(2, np.float32))
    assert list(layer.state_dict()) == ["weight", "bias", "scale", "steps"]
    assert layer.steps.dtype == np.int64 and layer.grads["scale"].shape == (2,)
    with pytest.raises(KeyError):
        layer.register_buffer("a.b", 0)
    with pytest.raises(TypeError):
        layer.register_parameter("w2", [1.0])


def test_layers_pickled_before_buffers_load():
    """A batch norm pickled by the previous layout (plain attributes, an int count, ``_ctx``)."""
    bn = _trained(BatchNorm(3), (6, 3))
    old = dict(vars(bn))
    old.pop("_buffer_names")
    old.pop("_saved")
    old["num_batches_tracked"] = 3
    old["_ctx"] = object()
    clone = BatchNorm.__new__(BatchNorm)
    clone.__setstate__(old)
    assert "_ctx" not in vars(clone)
    assert list(clone.state_dict()) == list(bn.state_dict())
    assert clone.num_batches_tracked.dtype == np.int64 and int(clone.num_batches_tracked) == 3
    clone.forward(np.ones((4, 3)))
    assert int(clone.num_batches_tracked) == 4
