"""Parity with PyTorch (skipped when torch is not installed): outputs, running statistics and
gradients against torch.nn.functional and torch.nn modules, float32 and float64."""

import numpy as np
import pytest
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

import fastnorm
from fastnorm.nn import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm

DTYPE = pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)


def close(actual, expected, dtype, what=""):
    """Both sides round in float32 on their own: allow twice the float32 tolerance."""
    if np.dtype(dtype) == np.float32:
        finite = expected[np.isfinite(expected)] if np.size(expected) else expected
        scale = max(1.0, float(np.max(np.abs(finite)))) if np.size(finite) else 1.0
        np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-5 * scale, err_msg=what)
    else:
        assert_close(actual, expected, dtype, err_msg=what)


# ------------------------------------------------------------------------ functional


@DTYPE
@pytest.mark.parametrize("case,training", BATCH_NORM_MODES, ids=mode_id)
def test_batch_norm_functional(case, training, dtype, rng, tref):
    C = channel_count(case.shape, case.axis)
    x = make_input(rng, case.shape, dtype)
    rm, rv = make_running(rng, C, dtype)
    w, b = make_affine(rng, C, dtype)
    t = tref.batch_norm(x, rm, rv, w, b, training, 0.2, 1e-4, axis=case.axis)
    y = fastnorm.batch_norm(x, rm, rv, w, b, training, 0.2, 1e-4, axis=case.axis)
    assert y.dtype == t["y"].dtype
    close(y, t["y"], dtype, "y")
    close(rm, t["rm"], dtype, "running_mean")
    close(rv, t["rv"], dtype, "running_var")


@DTYPE
@pytest.mark.parametrize("case", LAYER_NORM, ids=case_id)
def test_layer_norm_functional(case, dtype, rng, tref):
    x = make_input(rng, case.shape, dtype)
    w, b = make_affine(rng, case.normalized_shape, dtype)
    t = tref.layer_norm(x, case.normalized_shape, w, b, 1e-4)
    close(fastnorm.layer_norm(x, case.normalized_shape, w, b, 1e-4), t["y"], dtype)


@DTYPE
@pytest.mark.parametrize("case", GROUP_NORM, ids=case_id)
def test_group_norm_functional(case, dtype, rng, tref):
    C = channel_count(case.shape, case.axis)
    x = make_input(rng, case.shape, dtype)
    w, b = make_affine(rng, C, dtype)
    t = tref.group_norm(x, case.groups, w, b, 1e-4, axis=case.axis)
    close(fastnorm.group_norm(x, case.groups, w, b, 1e-4, axis=case.axis), t["y"], dtype)


@DTYPE
@pytest.mark.parametrize("use_input_stats", [True, False], ids=["input_stats", "running"])
@pytest.mark.parametrize("case", [c for c in INSTANCE_NORM if 0 not in c.shape], ids=case_id)
def test_instance_norm_functional(case, use_input_stats, dtype, rng, tref):
    C = channel_count(case.shape, case.axis)
    x = make_input(rng, case.shape, dtype)
    rm, rv = make_running(rng, C, dtype)
    w, b = make_affine(rng, C, dtype)
    t = tref.instance_norm(x, rm, rv, w, b, use_input_stats, 0.2, 1e-4, axis=case.axis)
    y = fastnorm.instance_norm(x, rm, rv, w, b, use_input_stats, 0.2, 1e-4, axis=case.axis)
    close(y, t["y"], dtype, "y")
    close(rm, t["rm"], dtype, "running_mean")
    close(rv, t["rv"], dtype, "running_var")


@DTYPE
@pytest.mark.parametrize("eps", [None, 1e-3], ids=["eps=None", "eps=1e-3"])
@pytest.mark.parametrize("case", RMS_NORM, ids=case_id)
def test_rms_norm_functional(case, eps, dtype, rng, tref):
    x = make_input(rng, case.shape, dtype)
    w = make_affine(rng, case.normalized_shape, dtype)[0]
    t = tref.rms_norm(x, case.normalized_shape, w, eps)
    close(fastnorm.rms_norm(x, case.normalized_shape, w, eps), t["y"], dtype)


# ------------------------------------------------------------------------ NaN / Inf as torch


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_nan_inf_propagate_as_torch(bad, rng, tref):
    x = make_input(rng, (4, 6, 5))
    x[1, 2, 3] = bad
    x[3, 5, 0] = bad
    rm, rv = make_running(rng, 6)
    ours = {
        "batch_norm train": fastnorm.batch_norm(x, None, None, training=True),
        "batch_norm eval": fastnorm.batch_norm(x, rm, rv),
        "batch_norm last": fastnorm.batch_norm(x, None, None, training=True, axis=-1),
        "layer_norm": fastnorm.layer_norm(x, (5,)),
        "group_norm": fastnorm.group_norm(x, 3),
        "instance_norm": fastnorm.instance_norm(x),
        "rms_norm": fastnorm.rms_norm(x, (5,)),
    }
    theirs = {
        "batch_norm train": tref.batch_norm(x, None, None, training=True)["y"],
        "batch_norm eval": tref.batch_norm(x, rm, rv)["y"],
        "batch_norm last": tref.batch_norm(x, None, None, training=True, axis=-1)["y"],
        "layer_norm": tref.layer_norm(x, (5,))["y"],
        "group_norm": tref.group_norm(x, 3)["y"],
        "instance_norm": tref.instance_norm(x)["y"],
        "rms_norm": tref.rms_norm(x, (5,))["y"],
    }
    for name in ours:
        np.testing.assert_array_equal(np.isnan(ours[name]), np.isnan(theirs[name]), err_msg=name)
        np.testing.assert_array_equal(np.isinf(ours[name]), np.isinf(theirs[name]), err_msg=name)
        finite = np.isfinite(theirs[name])
        np.testing.assert_allclose(
            ours[name][finite], theirs[name][finite], rtol=1e-10, atol=1e-10, err_msg=name
        )


# ------------------------------------------------------------------------ modules (with autograd)


def torch_bn_class(torch, ndim):
    return {
        2: torch.nn.BatchNorm1d,
        3: torch.nn.BatchNorm1d,
        4: torch.nn.BatchNorm2d,
        5: torch.nn.BatchNorm3d,
    }[ndim]


def torch_in_class(torch, ndim):
    return {3: torch.nn.InstanceNorm1d, 4: torch.nn.InstanceNorm2d, 5: torch.nn.InstanceNorm3d}[
        ndim
    ]


def compare_steps(torch, ours, theirs, shapes, dtype, rng, axis=1, steps=3, eval_step=True):
    """Train both for a few steps (forward + backward each), comparing outputs, gradients and
    running statistics, then compare one eval forward."""
    tdtype = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    theirs.to(tdtype)
    tparams = dict(theirs.named_parameters())
    assert set(tparams) == set(ours.params)
    with torch.no_grad():  # same (random) parameters on both sides
        for k, p in tparams.items():
            vals = rng.uniform(0.5, 1.5, p.shape) if k == "weight" else rng.standard_normal(p.shape)
            ours.params[k][...] = vals.astype(dtype)
            p.copy_(torch.from_numpy(ours.params[k].copy()))
    for step in range(steps):
        shape = shapes[step % len(shapes)]
        x = make_input(rng, shape, dtype, offset=step, scale=1 + step)
        dy = rng.standard_normal(shape).astype(dtype)
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        if axis != 1:
            yt = theirs(xt.movedim(axis, 1)).movedim(1, axis)
        else:
            yt = theirs(xt)
        (yt * torch.from_numpy(dy)).sum().backward()
        y = ours.forward(x)
        dx = ours.backward(dy)
        close(y, yt.detach().numpy(), dtype, f"y step {step}")
        close(dx, xt.grad.numpy(), dtype, f"dx step {step}")
        for k, p in tparams.items():
            close(ours.grads[k], p.grad.numpy(), dtype, f"d{k} step {step}")
            p.grad = None
        if getattr(theirs, "running_mean", None) is not None:
            close(ours.running_mean, theirs.running_mean.numpy(), dtype, "running_mean")
            close(ours.running_var, theirs.running_var.numpy(), dtype, "running_var")
            # torch's InstanceNorm keeps the buffer but never increments it (and maps
            # momentum=None to 0.0); only batch norm counts batches there.
            if isinstance(theirs, torch.nn.modules.batchnorm._BatchNorm):
                assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked)
    if eval_step:
        ours.eval()
        theirs.eval()
        x = make_input(rng, shapes[0], dtype)
        xt = torch.from_numpy(x.copy())
        with torch.no_grad():
            yt = theirs(xt.movedim(axis, 1)).movedim(1, axis) if axis != 1 else theirs(xt)
        close(ours.forward(x), yt.numpy(), dtype, "eval y")


@DTYPE
@pytest.mark.parametrize("momentum", [0.1, None], ids=["m=0.1", "m=None"])
@pytest.mark.parametrize(
    "shape,axis",
    [((6, 5), 1), ((4, 3, 7), 1), ((3, 4, 5, 6), 1), ((3, 5, 6, 4), -1), ((2, 3, 2, 3, 4), 1)],
    ids=["2d", "3d", "4d", "4d-last", "5d"],
)
def test_batch_norm_module(shape, axis, momentum, dtype, rng, torch):
    C = shape[axis]
    ours = BatchNorm(C, momentum=momentum, axis=axis, dtype=dtype)
    ndim_first = len(shape)
    theirs = torch_bn_class(torch, ndim_first)(C, momentum=momentum)
    other = list(shape)
    other[0] += 2
    compare_steps(torch, ours, theirs, [shape, tuple(other)], dtype, rng, axis=axis)


@DTYPE
def test_batch_norm_module_no_tracking(dtype, rng, torch):
    ours = BatchNorm(4, affine=False, track_running_stats=False, dtype=dtype)
    theirs = torch.nn.BatchNorm2d(4, affine=False, track_running_stats=False)
    compare_steps(torch, ours, theirs, [(3, 4, 2, 5)], dtype, rng)


@DTYPE
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("shape,ns", [((6, 9), (9,)), ((2, 3, 4, 5), (4, 5))], ids=["2d", "4d"])
def test_layer_norm_module(shape, ns, affine, dtype, rng, torch):
    ours = LayerNorm(ns, elementwise_affine=affine, dtype=dtype)
    theirs = torch.nn.LayerNorm(ns, elementwise_affine=affine)
    compare_steps(torch, ours, theirs, [shape], dtype, rng)


@DTYPE
@pytest.mark.parametrize(
    "groups,shape",
    [(2, (3, 4, 5)), (3, (2, 6, 3, 2)), (1, (2, 5, 2, 2, 2))],
    ids=["3d", "4d", "5d"],
)
def test_group_norm_module(groups, shape, dtype, rng, torch):
    ours = GroupNorm(groups, shape[1], dtype=dtype)
    theirs = torch.nn.GroupNorm(groups, shape[1])
    compare_steps(torch, ours, theirs, [shape], dtype, rng)


@DTYPE
@pytest.mark.parametrize(
    "affine,track",
    [(False, False), (True, False), (True, True), (False, True)],
    ids=["plain", "affine", "affine-track", "plain-track"],
)
@pytest.mark.parametrize(
    "shape", [(3, 4, 6), (2, 3, 4, 5), (2, 2, 3, 2, 2)], ids=["3d", "4d", "5d"]
)
def test_instance_norm_module(shape, affine, track, dtype, rng, torch):
    ours = InstanceNorm(
        shape[1], momentum=0.2, affine=affine, track_running_stats=track, dtype=dtype
    )
    theirs = torch_in_class(torch, len(shape))(
        shape[1], momentum=0.2, affine=affine, track_running_stats=track
    )
    compare_steps(torch, ours, theirs, [shape], dtype, rng)


@DTYPE
@pytest.mark.parametrize("eps", [None, 1e-4], ids=["eps=None", "eps=1e-4"])
@pytest.mark.parametrize("shape,ns", [((6, 9), (9,)), ((2, 3, 4, 5), (4, 5))], ids=["2d", "4d"])
def test_rms_norm_module(shape, ns, eps, dtype, rng, torch):
    ours = RMSNorm(ns, eps=eps, dtype=dtype)
    theirs = torch.nn.RMSNorm(ns, eps=eps)
    compare_steps(torch, ours, theirs, [shape], dtype, rng)
