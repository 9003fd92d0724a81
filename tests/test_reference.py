"""Validate the NumPy reference itself: against PyTorch in float64 (forward, running statistics,
gradients) and against central finite differences (no torch needed). Does not import fastnorm."""

import numpy as np
import pytest
import reference as ref
from cases import (
    BATCH_NORM_MODES,
    GROUP_NORM,
    INSTANCE_NORM,
    LAYER_NORM,
    RMS_NORM,
    case_id,
    channel_count,
    make_affine,
    make_input,
    make_running,
    mode_id,
)


def close(a, b, scale=1.0):
    if a is None or b is None:
        assert a is None and b is None
        return
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * max(1.0, scale))


def scale_of(a):
    return float(np.max(np.abs(a))) if a is not None and np.size(a) else 1.0


# ------------------------------------------------------------------------ vs torch, float64


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("case,training", BATCH_NORM_MODES, ids=mode_id)
def test_batch_norm_matches_torch(case, training, affine, rng, tref):
    C = channel_count(case.shape, case.axis)
    x = make_input(rng, case.shape)
    dy = rng.standard_normal(case.shape)
    rm, rv = make_running(rng, C)
    w, b = make_affine(rng, C) if affine else (None, None)
    t = tref.batch_norm(x, rm, rv, w, b, training, 0.3, 1e-4, axis=case.axis, dy=dy)
    y = ref.batch_norm(x, rm, rv, w, b, training, 0.3, 1e-4, axis=case.axis)
    close(y, t["y"])
    if training:
        new_rm, new_rv = ref.batch_norm_running_stats(x, rm, rv, 0.3, axis=case.axis)
    else:
        new_rm, new_rv = rm, rv
    close(new_rm, t["rm"])
    close(new_rv, t["rv"], scale_of(new_rv))
    dx, dw, db = ref.batch_norm_backward(dy, x, rm, rv, w, b, training, 1e-4, axis=case.axis)
    close(dx, t["dx"], scale_of(t["dx"]))
    close(dw, t["dw"], scale_of(t["dw"]))
    close(db, t["db"], scale_of(t["db"]))


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("case", LAYER_NORM, ids=case_id)
def test_layer_norm_matches_torch(case, affine, rng, tref):
    x = make_input(rng, case.shape)
    dy = rng.standard_normal(case.shape)
    w, b = make_affine(rng, case.normalized_shape) if affine else (None, None)
    t = tref.layer_norm(x, case.normalized_shape, w, b, 1e-4, dy=dy)
    close(ref.layer_norm(x, case.normalized_shape, w, b, 1e-4), t["y"])
    dx, dw, db = ref.layer_norm_backward(dy, x, case.normalized_shape, w, b, 1e-4)
    close(dx, t["dx"], scale_of(t["dx"]))
    close(dw, t["dw"], scale_of(t["dw"]))
    close(db, t["db"], scale_of(t["db"]))


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("case", GROUP_NORM, ids=case_id)
def test_group_norm_matches_torch(case, affine, rng, tref):
    C = channel_count(case.shape, case.axis)
    x = make_input(rng, case.shape)
    dy = rng.standard_normal(case.shape)
    w, b = make_affine(rng, C) if affine else (None, None)
    t = tref.group_norm(x, case.groups, w, b, 1e-4, axis=case.axis, dy=dy)
    close(ref.group_norm(x, case.groups, w, b, 1e-4, axis=case.axis), t["y"])
    dx, dw, db = ref.group_norm_backward(dy, x, case.groups, w, b, 1e-4, axis=case.axis)
    close(dx, t["dx"], scale_of(t["dx"]))
    close(dw, t["dw"], scale_of(t["dw"]))
    close(db, t["db"], scale_of(t["db"]))


@pytest.mark.parametrize("use_input_stats", [True, False], ids=["input_stats", "running"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("case", INSTANCE_NORM, ids=case_id)
def test_instance_norm_matches_torch(case, affine, use_input_stats, rng, tref):
    if 0 in case.shape:
        pytest.skip("torch's instance_norm fails on zero-size batches (IndexError)")
    C = channel_count(case.shape, case.axis)
    x = make_input(rng, case.shape)
    dy = rng.standard_normal(case.shape)
    rm, rv = make_running(rng, C)
    w, b = make_affine(rng, C) if affine else (None, None)
    t = tref.instance_norm(x, rm, rv, w, b, use_input_stats, 0.3, 1e-4, axis=case.axis, dy=dy)
    close(ref.instance_norm(x, rm, rv, w, b, use_input_stats, 0.3, 1e-4, axis=case.axis), t["y"])
    if use_input_stats:
        new_rm, new_rv = ref.instance_norm_running_stats(x, rm, rv, 0.3, axis=case.axis)
    else:
        new_rm, new_rv = rm, rv
    close(new_rm, t["rm"])
    close(new_rv, t["rv"], scale_of(new_rv))
    dx, dw, db = ref.instance_norm_backward(
        dy, x, rm, rv, w, b, use_input_stats, 1e-4, axis=case.axis
    )
    close(dx, t["dx"], scale_of(t["dx"]))
    close(dw, t["dw"], scale_of(t["dw"]))
    close(db, t["db"], scale_of(t["db"]))


@pytest.mark.parametrize("eps", [None, 1e-3], ids=["eps=None", "eps=1e-3"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("case", RMS_NORM, ids=case_id)
def test_rms_norm_matches_torch(case, affine, eps, rng, tref):
    x = make_input(rng, case.shape)
    dy = rng.standard_normal(case.shape)
    w = make_affine(rng, case.normalized_shape)[0] if affine else None
    t = tref.rms_norm(x, case.normalized_shape, w, eps, dy=dy)
    close(ref.rms_norm(x, case.normalized_shape, w, eps), t["y"])
    dx, dw = ref.rms_norm_backward(dy, x, case.normalized_shape, w, eps)
    close(dx, t["dx"], scale_of(t["dx"]))
    close(dw, t["dw"], scale_of(t["dw"]))


def test_rms_norm_default_eps_follows_input_dtype(rng, tref):
    """eps=None: torch uses finfo(input dtype).eps; the reference does too (float32 eps is
    large enough to change the result of a tiny-valued row, so the choice is observable)."""
    x = (1e-4 * rng.standard_normal((3, 5))).astype(np.float32)
    t = tref.rms_norm(x, (5,), None, None)
    np.testing.assert_allclose(ref.rms_norm(x, (5,)), t["y"], rtol=1e-6, atol=1e-6)
    assert not np.allclose(
        ref.rms_norm(x, (5,), eps=np.finfo(np.float64).eps), t["y"], rtol=1e-4, atol=1e-4
    )


# ------------------------------------------------------------ vs finite differences (no torch)


def numeric_grad(f, a, h=1e-6):
    """Central differences of the scalar f() with respect to every element of ``a`` (in place)."""
    g = np.zeros(a.shape)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + h
        fp = f()
        a[idx] = old - h
        fm = f()
        a[idx] = old
        g[idx] = (fp - fm) / (2 * h)
    return g


def check_fd(forward, backward, arrays, shape, rng):
    r = rng.standard_normal(shape)
    analytic = backward(r)
    for a, g in zip(arrays, analytic):
        if a is None:
            continue
        num = numeric_grad(lambda: np.sum(forward() * r), a)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape,axis", [((4, 3), 1), ((3, 2, 4), 1), ((2, 3, 2), -1)])
def test_reference_batch_norm_backward_fd(shape, axis, training, rng):
    C = shape[axis]
    x = make_input(rng, shape)
    rm, rv = make_running(rng, C)
    w, b = make_affine(rng, C)
    check_fd(
        lambda: ref.batch_norm(x, rm, rv, w, b, training, axis=axis),
        lambda r: ref.batch_norm_backward(r, x, rm, rv, w, b, training, axis=axis),
        [x, w, b],
        shape,
        rng,
    )


@pytest.mark.parametrize("shape,ns", [((3, 4), (4,)), ((2, 3, 2), (3, 2))])
def test_reference_layer_and_rms_norm_backward_fd(shape, ns, rng):
    x = make_input(rng, shape)
    w, b = make_affine(rng, ns)
    check_fd(
        lambda: ref.layer_norm(x, ns, w, b),
        lambda r: ref.layer_norm_backward(r, x, ns, w, b),
        [x, w, b],
        shape,
        rng,
    )
    check_fd(
        lambda: ref.rms_norm(x, ns, w, 1e-5),
        lambda r: ref.rms_norm_backward(r, x, ns, w, 1e-5),
        [x, w],
        shape,
        rng,
    )


@pytest.mark.parametrize("shape,groups,axis", [((2, 4, 3), 2, 1), ((2, 3, 4), 2, -1)])
def test_reference_group_norm_backward_fd(shape, groups, axis, rng):
    C = shape[axis]
    x = make_input(rng, shape)
    w, b = make_affine(rng, C)
    check_fd(
        lambda: ref.group_norm(x, groups, w, b, axis=axis),
        lambda r: ref.group_norm_backward(r, x, groups, w, b, axis=axis),
        [x, w, b],
        shape,
        rng,
    )


@pytest.mark.parametrize("use_input_stats", [True, False])
def test_reference_instance_norm_backward_fd(use_input_stats, rng):
    shape = (2, 3, 4)
    x = make_input(rng, shape)
    rm, rv = make_running(rng, 3)
    w, b = make_affine(rng, 3)
    check_fd(
        lambda: ref.instance_norm(x, rm, rv, w, b, use_input_stats),
        lambda r: ref.instance_norm_backward(r, x, rm, rv, w, b, use_input_stats),
        [x, w, b],
        shape,
        rng,
    )
