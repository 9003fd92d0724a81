"""Memory: a forward pass allocates its output and scratch in proportion to its statistics (one
value per channel, or per sample and channel), a backward pass its input gradient and the same;
the ``out=`` paths allocate only that scratch. Measured with tracemalloc, which sees NumPy's
allocations and those of the compiled kernels (Numba's runtime allocates through Python's raw
allocator)."""

import tracemalloc

import numba
import numpy as np
import pytest

from fastnorm import functional as F

KIB = 1024


def _peak(fn):
    """Peak bytes allocated while ``fn`` runs (after a first, untraced call that compiles)."""
    fn()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _stats_bound(slots):
    """What scratch per statistic may cost: 16 float64 per slot (a slot is a channel, a (sample,
    channel) pair, ...: see CASES) and a fixed 64 KiB."""
    return 64 * KIB + 16 * 8 * slots


def _running(c):
    return np.zeros(c, np.float32), np.ones(c, np.float32)


# name -> (shape, forward(x, out), slots). Slots: batch norm, one per channel (channels-first runs
# shorter than 64 are reduced per (channel, position) column: C * D); group and instance norm, one
# per (sample, channel), on (N, C) features one per (sample, group) plus 16 per channel (the
# backward's partials per block of samples); layer and RMS norm, one per row plus 64 per feature
# (the backward's per-block weight and bias partials, at most 64 blocks).
CASES = {
    "batch nchw": (
        (16, 32, 16, 16),
        lambda x, out: F.batch_norm_forward(x, *_running(32), training=True, out=out),
        32,
    ),
    "batch nchw short runs": (
        (64, 32, 5, 5),
        lambda x, out: F.batch_norm_forward(x, *_running(32), training=True, out=out),
        32 * 25,
    ),
    "batch eval": (
        (16, 32, 16, 16),
        lambda x, out: F.batch_norm_forward(x, *_running(32), out=out),
        32,
    ),
    "batch nhwc": (
        (16, 16, 16, 32),
        lambda x, out: F.batch_norm_forward(x, *_running(32), training=True, axis=-1, out=out),
        32,
    ),
    "batch mlp": (
        (256, 128),
        lambda x, out: F.batch_norm_forward(x, *_running(128), training=True, out=out),
        128,
    ),
    "group nchw": ((16, 32, 16, 16), lambda x, out: F.group_norm_forward(x, 8, out=out), 16 * 32),
    "group short runs": (
        (64, 32, 5, 5),
        lambda x, out: F.group_norm_forward(x, 8, out=out),
        64 * 32,
    ),
    "group features": (
        (4096, 256),
        lambda x, out: F.group_norm_forward(x, 4, out=out),
        4096 * 4 + 16 * 256,
    ),
    "group nhwc": (
        (16, 8, 8, 32),
        lambda x, out: F.group_norm_forward(x, 8, axis=-1, out=out),
        16 * 32,
    ),
    "instance nchw": (
        (16, 32, 16, 16),
        lambda x, out: F.instance_norm_forward(x, out=out),
        16 * 32,
    ),
    "instance short runs": (
        (64, 32, 5, 5),
        lambda x, out: F.instance_norm_forward(x, out=out),
        64 * 32,
    ),
    "layer": ((512, 256), lambda x, out: F.layer_norm_forward(x, 256, out=out), 512 + 64 * 256),
    "rms": ((512, 256), lambda x, out: F.rms_norm_forward(x, 256, out=out), 512 + 64 * 256),
}


def _setup(name):
    shape, forward, n_stats = CASES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    return x, forward, _stats_bound(n_stats)


@pytest.mark.parametrize("name", CASES)
def test_forward_allocates_its_output_and_per_statistic_scratch(name):
    x, forward, bound = _setup(name)
    assert _peak(lambda: forward(x, None)) <= x.nbytes + bound
    out = np.empty_like(x)
    assert _peak(lambda: forward(x, out)) <= bound


@pytest.mark.parametrize("name", CASES)
def test_backward_allocates_its_gradient_and_per_statistic_scratch(name):
    x, forward, bound = _setup(name)
    _, ctx = forward(x, None)
    dy = np.ones_like(x)
    assert _peak(lambda: ctx.backward(dy)) <= x.nbytes + bound
    dx = np.empty_like(x)
    assert _peak(lambda: ctx.backward(dy, out=dx)) <= bound


@pytest.mark.parametrize("name", CASES)
def test_forward_and_backward_peak_at_twice_the_input(name):
    x, forward, bound = _setup(name)
    dy = np.ones_like(x)

    def step():
        y, ctx = forward(x, None)
        return y, ctx.backward(dy)

    assert _peak(step) <= 2 * x.nbytes + bound


def test_batch_norm_over_many_rows_keeps_per_channel_scratch():
    """Batch norm over the columns of (N, C) keeps at most ROW_GROUPS partial moments per channel
    (each group merges its row blocks as it computes them) and one block's partials per running
    task: its scratch does not grow with the rows (before the row groups it was 32 bytes per
    channel for every 32 rows at C = 1024, a quarter of a float32 input)."""
    from fastnorm._kernels.schedule import ROW_GROUPS

    c = 1024
    peaks = []
    for n in (2048, 16384):
        x = np.random.default_rng(0).standard_normal((n, c)).astype(np.float32)
        out = np.empty_like(x)
        rm, rv = _running(c)
        peaks.append(_peak(lambda: F.batch_norm_forward(x, rm, rv, training=True, out=out)))
    assert peaks[1] <= peaks[0] + 4 * KIB
    task_scratch = numba.get_num_threads() * 6 * 8 * c  # one block's partials, a low part
    assert peaks[1] <= _stats_bound(c) + ROW_GROUPS * 4 * 8 * c + task_scratch
