"""Ghost batch norm (Hoffer et al. 2017): batch norm of 2-D (N, C) input in training, with the
rows cut in order into virtual sub-batches of ``virtual_batch_size`` rows, each normalized with
its own statistics, and one set of running statistics updated once per sub-batch in order.

The sub-batches that fill ``virtual_batch_size`` rows go through one ghost kernel call; an uneven
tail (with the previous sub-batch when the tail is a single row, as ``batch_bounds`` of the MLPs
does) through one call of the fused column kernels. A call that makes a single sub-batch returns
None: the caller runs plain batch norm, so its bits are those of plain batch norm.
"""

import numbers

import numpy as np

from .._kernels import ghost, schedule
from . import _checks as checks
from ._contexts import _Context
from ._layouts import NO_RUNNING_STATS, ChannelRuns


def check_virtual_batch_size(value):
    """None, or an int >= 2 (bools refused) as an int."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"virtual_batch_size must be None or an int >= 2, got {value!r}")
    if value < 2:
        raise ValueError(f"virtual_batch_size must be None or an int >= 2, got {value!r}")
    return int(value)


def sub_batches(n, k):
    """(G, tail): G sub-batches of k rows first, then the ``tail`` rows left (0, or >= 2: a last
    row on its own joins the sub-batch before it)."""
    g, tail = divmod(n, k)
    if tail == 1 and g > 0:
        g, tail = g - 1, k + 1
    return g, tail


def cumulative_momenta(batches_tracked, count):
    """The factors of a cumulative average continued over ``count`` more batches (PyTorch's
    ``momentum=None``): 1 / (batches_tracked + j + 1)."""
    return 1.0 / (batches_tracked + 1.0 + np.arange(count))


def ghost_batch_norm(
    x,
    running_mean,
    running_var,
    weight,
    bias,
    training,
    momentum,
    eps,
    axis,
    out,
    save,
    sample_weight,
    virtual_batch_size,
    batches_tracked=None,
):
    """Ghost batch norm and its context, or None when the call is plain batch norm (eval mode,
    ``virtual_batch_size`` None, or a single sub-batch). ``batches_tracked`` (an int) with
    ``momentum=None``: the running statistics continue a cumulative average, each sub-batch
    counted as one batch (what a layer with ``momentum=None`` needs)."""
    k = check_virtual_batch_size(virtual_batch_size)
    training = checks.check_flag(training, "training")
    if k is None or not training:
        return None
    x = checks.as_float_array(x)
    if x.ndim != 2:
        raise ValueError(
            f"virtual_batch_size is supported for 2-D input (N, C) only, got shape {x.shape}"
        )
    if checks.check_axis(axis, 2) != 1:
        raise ValueError("virtual_batch_size needs the channels on axis 1 (-1) of (N, C) input")
    if sample_weight is not None:
        raise ValueError("sample_weight is not supported together with virtual_batch_size")
    n, channels = x.shape
    g, tail = sub_batches(n, k)
    if g + (tail > 0) <= 1 or channels == 0:
        return None
    eps = checks.check_eps(eps)
    if momentum is None and batches_tracked is not None:
        momenta = cumulative_momenta(int(batches_tracked), g + (tail > 0))
    else:
        momenta = np.full(g + (tail > 0), checks.check_momentum(momentum))
    running_mean, running_var = checks.running_stats(
        running_mean, running_var, channels, updated=True
    )
    w = checks.vector_param(weight, "weight", channels)
    b = checks.vector_param(bias, "bias", channels)
    x = checks.saved_input(x, out, save)
    out = checks.output_array(out, x.shape, x.dtype)
    w = np.ones(channels) if w is None else w
    b = np.zeros(channels) if b is None else b

    target = checks.contiguous_target(out)
    rows = g * k
    x3 = x[:rows].reshape(g, k, channels)
    blocks = schedule.column_blocks(k, channels)
    rm, rv = (NO_RUNNING_STATS,) * 2 if running_mean is None else (running_mean, running_var)
    mean, _, rstd = ghost.ghost_normalize(
        x3, w, b, eps, rm, rv, momenta[:g], *blocks, target[:rows].reshape(x3.shape)
    )
    tail_layout = tail_mean = tail_rstd = None
    if tail:
        # after the sub-batches: the running statistics see the tail last
        tail_layout = ChannelRuns(x[rows:].reshape(tail, channels, 1))
        tail_mean, _, tail_rstd, _ = tail_layout.batch_norm_columns(
            w,
            b,
            eps,
            running_mean,
            running_var,
            float(momenta[-1]),
            target[rows:].reshape(tail, channels, 1),
        )
    checks.finish(target, out)
    ctx = GhostContext(x3, x.shape, w, mean, rstd, blocks, tail_layout, tail_mean, tail_rstd)
    return out, ctx


class GhostContext(_Context):
    """What ghost batch norm saves: the (G, k, C) view of the sub-batches with their (G, C)
    statistics, and the tail's layout and statistics (None without a tail)."""

    __slots__ = ("mean", "rstd", "blocks", "tail_layout", "tail_mean", "tail_rstd")

    def __init__(self, x3, shape, weight, mean, rstd, blocks, tail_layout, tail_mean, tail_rstd):
        super().__init__(ChannelRuns(x3), shape, weight)  # layout.x: the (G, k, C) view
        self.mean = mean  # (G, C) per sub-batch
        self.rstd = rstd
        self.blocks = blocks  # the forward's column blocks of (k, C)
        self.tail_layout = tail_layout
        self.tail_mean = tail_mean
        self.tail_rstd = tail_rstd

    def _saved(self):
        tail = () if self.tail_layout is None else (self.tail_layout.x,)
        return (self.layout.x, *tail)

    def backward(self, grad_out, out=None):
        """(dx, dweight, dbias) for the upstream gradient ``grad_out`` of the forward's shape;
        ``out`` receives dx."""
        dy, dx = self._grad_arrays(grad_out, out)
        x3 = self.layout.x
        rows = x3.shape[0] * x3.shape[1]
        grad_weight, grad_bias = ghost.ghost_normalize_backward(
            dy[:rows].reshape(x3.shape),
            x3,
            self.mean,
            self.rstd,
            self.weight,
            *self.blocks,
            dx[:rows].reshape(x3.shape),
        )
        if self.tail_layout is not None:
            tail_shape = self.tail_layout.x.shape
            tail_weight, tail_bias = self.tail_layout.batch_norm_columns_backward(
                dy[rows:].reshape(tail_shape),
                self.tail_mean,
                self.tail_rstd,
                self.weight,
                True,
                dx[rows:].reshape(tail_shape),
            )
            grad_weight += tail_weight
            grad_bias += tail_bias
        return dx, grad_weight, grad_bias
