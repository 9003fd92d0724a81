"""Backward passes into a preallocated ``out``: the same bits as the allocating call, for every
kind of saved context (fused columns, channel runs, fused group runs, renorm, ghost, rows)."""

import numpy as np
import pytest
from cases import DTYPES, dtype_id

import fastnorm
from fastnorm.functional import channel_norm_backward, rows_norm_backward

F = fastnorm.functional


def _running(c, dtype):
    return np.zeros(c, dtype), np.ones(c, dtype)


# name -> (shape, forward(x) -> ctx, backward function)
FORWARDS = {
    "batch columns (N, C)": (
        (64, 9),
        lambda x: F.batch_norm_forward(x, *_running(9, x.dtype), training=True)[1],
        channel_norm_backward,
    ),
    "batch channel runs NCHW": (
        (4, 5, 6, 7),
        lambda x: F.batch_norm_forward(x, *_running(5, x.dtype), training=True)[1],
        channel_norm_backward,
    ),
    "batch channels last": (
        (4, 6, 7, 5),
        lambda x: F.batch_norm_forward(x, *_running(5, x.dtype), training=True, axis=-1)[1],
        channel_norm_backward,
    ),
    "batch eval": (
        (4, 5, 6),
        lambda x: F.batch_norm_forward(x, *_running(5, x.dtype), training=False)[1],
        channel_norm_backward,
    ),
    "batch renorm": (
        (64, 9),
        lambda x: F.batch_norm_forward(x, *_running(9, x.dtype), training=True, renorm=(1.5, 0.5))[
            1
        ],
        channel_norm_backward,
    ),
    "ghost batch with a tail": (
        (37, 9),
        lambda x: F.batch_norm_forward(
            x, *_running(9, x.dtype), training=True, virtual_batch_size=8
        )[1],
        channel_norm_backward,
    ),
    "group short runs": ((3, 6, 5), lambda x: F.group_norm_forward(x, 3)[1], channel_norm_backward),
    "group long runs": (
        (2, 6, 100),
        lambda x: F.group_norm_forward(x, 3)[1],
        channel_norm_backward,
    ),
    "group channels last": (
        (2, 3, 5, 4),
        lambda x: F.group_norm_forward(x, 2, axis=-1)[1],
        channel_norm_backward,
    ),
    "instance": ((2, 3, 80), lambda x: F.instance_norm_forward(x)[1], channel_norm_backward),
    "layer": ((6, 33), lambda x: F.layer_norm_forward(x, 33)[1], rows_norm_backward),
    "rms": ((6, 33), lambda x: F.rms_norm_forward(x, 33)[1], rows_norm_backward),
}
NAMES = pytest.mark.parametrize("name", list(FORWARDS))


def _setup(name, dtype, rng):
    shape, forward, backward = FORWARDS[name]
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, dy, forward(x), backward


@NAMES
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_out_gives_the_allocating_result(name, dtype, rng):
    x, dy, ctx, backward = _setup(name, dtype, rng)
    dx, dw, db = backward(ctx, dy)
    out = np.full_like(dx, np.nan)
    dx_out, dw_out, db_out = backward(ctx, dy, out=out)
    assert dx_out is out
    np.testing.assert_array_equal(out, dx)
    np.testing.assert_array_equal(dw_out, dw)
    np.testing.assert_array_equal(db_out, db)
    # ctx.backward takes it too
    out2 = np.full_like(dx, np.nan)
    assert ctx.backward(dy, out2)[0] is out2
    np.testing.assert_array_equal(out2, dx)


@NAMES
def test_out_may_be_grad_out_itself(name, rng):
    x, dy, ctx, backward = _setup(name, np.float64, rng)
    expected = backward(ctx, dy)[0]
    in_place = dy.copy()
    assert backward(ctx, in_place, out=in_place)[0] is in_place
    np.testing.assert_array_equal(in_place, expected)


@NAMES
def test_out_overlapping_the_forward_input_is_rejected(name, rng):
    x, dy, ctx, backward = _setup(name, np.float64, rng)
    before = x.copy()
    with pytest.raises(ValueError, match="out must not share memory"):
        backward(ctx, dy, out=x)
    np.testing.assert_array_equal(x, before)


def test_bad_out_is_rejected_with_its_name(rng):
    x, dy, ctx, backward = _setup("batch columns (N, C)", np.float64, rng)
    with pytest.raises(ValueError, match="out must have shape"):
        backward(ctx, dy, out=np.empty((64, 8)))
    with pytest.raises(ValueError, match="out must have shape"):
        backward(ctx, dy, out=np.empty(x.shape, np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        backward(ctx, dy, out=np.empty(x.shape, order="F"))
    with pytest.raises(TypeError, match="out must be a NumPy array"):
        backward(ctx, dy, out=[0.0] * x.size)
