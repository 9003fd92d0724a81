"""Element-wise passes over channel runs of at least ``ROW_MIN`` values (batch norm channels first,
instance norm with running statistics): runs shorter than ``RUNS_MAX_LENGTH``, from
``RUNS_MIN_SAMPLES`` samples, go through the ``runs_*`` kernels (one task per sample) instead of
the row kernels (a call per row); the same bits either way, and the float64 reference."""

import contextlib

import numpy as np
import pytest
import reference as ref
from cases import assert_close

import fastnorm.functional as F
from fastnorm._kernels import elementwise, policy
from fastnorm.functional import _layouts

SHAPES = [(4, 3, 8, 8), (8, 5, 100), (5, 2, 4095), (6, 7, 70)]


def _short(shape):
    n, c = shape[:2]
    return _layouts.ChannelRuns(np.empty((n, c, int(np.prod(shape[2:]))), np.float32)).short_rows


def test_which_runs_take_the_runs_kernels():
    assert _short((4, 3, 64)) and _short((4, 3, 4095)) and _short((4, 3, 8, 8))
    assert not _short((3, 3, 64))  # few samples: the row kernels' chunks give the threads work
    assert not _short((4, 3, 63))  # short runs are reduced and normalized as columns
    assert not _short((4, 3, 4096))


def _forward_backward(op, x, dy, stats):
    c = x.shape[1]
    w = np.linspace(0.5, 1.5, c).astype(x.dtype)
    b = np.linspace(-1.0, 1.0, c).astype(x.dtype)
    if op == "batch train":
        y, ctx = F.batch_norm_forward(x, *stats, w, b, training=True)
    elif op == "batch eval":
        y, ctx = F.batch_norm_forward(x, *stats, w, b, training=False)
    else:
        y, ctx = F.instance_norm_forward(x, *stats, w, b, use_input_stats=False)
    return (y, *F.channel_norm_backward(ctx, dy), *stats)


@pytest.mark.parametrize("threaded", [False, True], ids=["serial", "threaded"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", ["batch train", "batch eval", "instance eval"])
def test_runs_kernels_give_the_bits_of_the_row_kernels(
    op, shape, dtype, threaded, monkeypatch, rng
):
    """Threaded: the runs kernels' threaded twins (``forced_threads``) against the serial row
    kernels."""
    x = (rng.standard_normal(shape) * 3 + 100).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    stats = (
        rng.standard_normal(shape[1]).astype(dtype),
        rng.uniform(0.5, 2, shape[1]).astype(dtype),
    )
    calls = []
    runs_affine = elementwise.runs_affine
    monkeypatch.setattr(elementwise, "runs_affine", lambda *a: calls.append(1) or runs_affine(*a))
    assert _short(shape)
    results = []
    for short in (True, False):
        if not short:
            monkeypatch.setattr(_layouts, "RUNS_MIN_SAMPLES", 1 << 30)  # the row kernels
            assert not _short(shape)
            served = len(calls)
        forcing = policy.forced_threads() if threaded and short else contextlib.nullcontext()
        with forcing:
            results.append(_forward_backward(op, x, dy, tuple(s.copy() for s in stats)))
    assert served > 0 and len(calls) == served  # the runs kernel served the first call only
    for got, want in zip(*results):
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_on_short_runs_matches_the_reference(shape, training, dtype, rng):
    x = (rng.standard_normal(shape) * 2 + 5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    y, ctx = F.batch_norm_forward(x, rm, rv, w, b, training=training, eps=1e-4)
    dx, dw, db = F.channel_norm_backward(ctx, dy)
    assert_close(y, ref.batch_norm(x, rm0, rv0, w, b, training, eps=1e-4), dtype)
    want = ref.batch_norm_backward(dy, x, rm0, rv0, w, b, training, eps=1e-4)
    for got, expected in zip((dx, dw, db), want):
        assert_close(got, expected, dtype)
