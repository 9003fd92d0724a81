"""Flat optimizers (``flat=True``): the module's parameters and gradients in one buffer, one fused
update per step. They must give the per-array optimizers' results, survive a state-dict round
trip, a pickle and a parameter replaced by the user, and add the L2 penalty of ``l2_names``."""

import copy
import pickle

import numpy as np
import pytest

from fastnorm.nn import SGD, Adam, AdamW, BatchNorm, CrossEntropyLoss, Linear, ReLU, Sequential

OPTIMIZERS = {
    "adam": lambda net, **kw: Adam(net, lr=1e-2, weight_decay=1e-3, **kw),
    "adamw": lambda net, **kw: AdamW(net, lr=1e-2, **kw),
    "sgd": lambda net, **kw: SGD(net, lr=0.05, momentum=0.9, dampening=0.1, **kw),
    "nesterov": lambda net, **kw: SGD(net, lr=0.05, momentum=0.9, nesterov=True, **kw),
    "plain sgd": lambda net, **kw: SGD(net, lr=0.05, **kw),
}
NAMES = pytest.mark.parametrize("name", list(OPTIMIZERS))


def _net(dtype=np.float32):
    return Sequential(
        Linear(6, 8, bias=False, random_state=0, dtype=dtype),
        BatchNorm(8, dtype=dtype),
        ReLU(),
        Linear(8, 3, random_state=1, dtype=dtype),
    )


def _batches(steps=6, dtype=np.float32):
    rng = np.random.default_rng(0)
    return [
        (rng.standard_normal((16, 6)).astype(dtype) * 2 + 0.5, rng.integers(0, 3, 16))
        for _ in range(steps)
    ]


def _train(net, opt, batches, l2=0.0, penalty_by_hand=False):
    loss_fn = CrossEntropyLoss()
    for x, y in batches:
        loss_fn.forward(net.forward(x), y)
        net.backward(loss_fn.backward())
        if penalty_by_hand:  # what an optimizer without l2 needs: the term in the gradient
            for key in ("0.weight", "3.weight"):
                net.grads[key][...] += net.grads[key].dtype.type(l2) * net.params[key]
            opt.step()
        elif l2:
            opt.step(l2=l2)
        else:
            opt.step()
    return net


@NAMES
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flat_steps_equal_per_array_steps(name, dtype):
    batches = _batches(dtype=dtype)
    a, b = _net(dtype), _net(dtype)
    _train(a, OPTIMIZERS[name](a), batches)
    opt = OPTIMIZERS[name](b, flat=True)
    _train(b, opt, batches)
    for key, value in a.params.items():
        np.testing.assert_array_equal(b.params[key], value, err_msg=key)
    # one buffer: every parameter is a view of it
    assert all(np.shares_memory(p, opt._group.p) for p in b.params.values())


@NAMES
def test_l2_penalty_is_added_to_the_named_weights_only(name):
    batches = _batches()
    a, b = _net(), _net()
    _train(a, OPTIMIZERS[name](a), batches, l2=0.03, penalty_by_hand=True)
    opt = OPTIMIZERS[name](b, flat=True, l2_names=("0.weight", "3.weight"))
    _train(b, opt, batches, l2=0.03)
    for key, value in a.params.items():
        np.testing.assert_allclose(b.params[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    c = _net()
    _train(c, OPTIMIZERS[name](c, flat=True, l2_names=("0.weight", "3.weight")), batches)
    assert not np.allclose(c.params["0.weight"], b.params["0.weight"], rtol=0, atol=1e-7)


@NAMES
def test_state_dict_round_trip_continues_the_same_training(name):
    batches = _batches(steps=8)
    a = _net()
    opt_a = OPTIMIZERS[name](a, flat=True)
    _train(a, opt_a, batches)
    b = _net()
    opt_b = OPTIMIZERS[name](b, flat=True)
    _train(b, opt_b, batches[:4])
    saved_net, saved_opt = b.state_dict(), opt_b.state_dict()
    c = _net()
    opt_c = OPTIMIZERS[name](c, flat=True)
    c.load_state_dict(saved_net)
    opt_c.load_state_dict(saved_opt)
    _train(c, opt_c, batches[4:])
    for key, value in a.params.items():
        np.testing.assert_array_equal(c.params[key], value, err_msg=key)


@NAMES
def test_pickle_and_a_replaced_parameter_rebuild_the_buffer(name):
    batches = _batches(steps=8)
    a = _net()
    _train(a, OPTIMIZERS[name](a, flat=True), batches)

    b = _net()
    opt = OPTIMIZERS[name](b, flat=True)
    _train(b, opt, batches[:3])
    b, opt = pickle.loads(pickle.dumps((b, opt)))  # views come back as separate arrays
    _train(b, opt, batches[3:5])
    b.layers[0].params["weight"] = b.layers[0].params["weight"].copy()  # a user's new array
    _train(b, opt, batches[5:])
    for key, value in a.params.items():
        np.testing.assert_array_equal(b.params[key], value, err_msg=key)
    assert all(np.shares_memory(p, opt._group.p) for p in b.params.values())


def test_deepcopy_of_a_flat_optimizer_with_its_module_is_independent():
    batches = _batches()
    net = _net()
    opt = Adam(net, lr=1e-2, flat=True)
    _train(net, opt, batches[:2])
    net2, opt2 = copy.deepcopy((net, opt))
    _train(net2, opt2, batches[2:])
    assert not np.array_equal(net2.params["0.weight"], net.params["0.weight"])


def test_flat_needs_a_module_and_l2_needs_flat():
    with pytest.raises(TypeError, match="flat=True needs a Module"):
        Adam({"w": np.zeros(3)}, flat=True)
    net = _net()
    opt = Adam(net)
    with pytest.raises(ValueError, match="flat=True"):
        opt.step(l2=0.1)


def test_mixed_dtypes_fall_back_to_per_array_updates():
    net = Sequential(Linear(4, 3, random_state=0), Linear(3, 2, random_state=1, dtype=np.float64))
    ref = copy.deepcopy(net)
    batches = [(np.ones((5, 4), np.float32), None)]
    for model, opt in ((net, Adam(net, flat=True)), (ref, Adam(ref))):
        for x, _ in batches:
            model.forward(x)
            model.backward(np.ones((5, 2)))
            opt.step()
    assert opt is not None
    for key, value in ref.params.items():
        np.testing.assert_array_equal(net.params[key], value, err_msg=key)
