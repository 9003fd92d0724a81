"""What a batch, group or instance norm forward saves, one type per forward path, each computing
its own backward pass: ``ctx.backward(grad_out) -> (grad_input, grad_weight, grad_bias)``.

- ``ColumnsContext``: batch norm on (A, C) columns (fused kernels, ``ChannelRuns`` with inner 1).
- ``GroupRunsContext``: group/instance norm with the fused per-(sample, group) kernels.
- ``ChannelRunsContext``: everything else, through the generic ``grad_sums`` and ``grad_input``
  passes of a layout.

No statistic is recomputed; a context holds the forward input (through its layout) and the
statistics its backward reads, nothing else.
"""

import numpy as np

from ._checks import grad_input_array, grad_output


class _Context:
    """What every context holds (``ColumnsContext`` sets it without calling this ``__init__``:
    it is built once per training step)."""

    __slots__ = ("layout", "shape", "weight")

    def __init__(self, layout, shape, weight):
        self.layout = layout  # a view of the forward input (ChannelRuns or SampleColumns)
        self.shape = shape  # the forward input's shape
        self.weight = weight  # (C,) float64, ones when absent

    def _grad_arrays(self, grad_out, out=None):
        """grad_out checked and as the layout's dtype, and the array for the input gradient
        (``out`` when given)."""
        dy = grad_output(grad_out, self.shape, self.layout.x.dtype)
        return grad_input_array(dy, out, self._saved())

    def _saved(self):
        return (self.layout.x,)

    def _zeros(self, dx):
        channels = self.weight.shape[0]
        return dx, np.zeros(channels), np.zeros(channels)


class ColumnsContext(_Context):
    """Batch norm whose channels are columns (one value per (sample, channel)): fused kernels."""

    __slots__ = ("mean", "rstd", "batch_stats", "sample_weight", "relu_out")

    def __init__(
        self, layout, shape, weight, mean, rstd, batch_stats, sample_weight=None, relu_out=None
    ):
        self.layout, self.shape, self.weight = layout, shape, weight  # _Context's, built per step
        self.mean = mean  # (C,) centre subtracted from each channel
        self.rstd = rstd  # (C,) 1 / sqrt(var + eps)
        self.batch_stats = batch_stats  # True when mean/rstd came from the input itself
        self.sample_weight = sample_weight  # the row weights of the statistics, or None
        self.relu_out = relu_out  # the output of a fused ReLU (grad_out is its gradient), or None

    def backward(self, grad_out, out=None):
        relu_out = self.relu_out
        x = self.layout.x
        if (
            out is None
            and type(grad_out) is np.ndarray
            and grad_out.dtype == x.dtype
            and grad_out.shape == self.shape
            and grad_out.flags.c_contiguous
        ):  # the per-step case, checked cheaply (a fused ReLU's output has x's dtype too)
            dy, dx = grad_out, np.empty_like(grad_out)
        else:
            if relu_out is not None and getattr(grad_out, "dtype", None) != relu_out.dtype:
                grad_out, relu_out = relu_mask(grad_out, relu_out), None  # in its own dtype
            dy, dx = self._grad_arrays(grad_out, out)
        if dy.size == 0:
            return self._zeros(dx)
        grad_weight, grad_bias = self.layout.batch_norm_columns_backward(
            dy,
            self.mean,
            self.rstd,
            self.weight,
            self.batch_stats,
            dx,
            self.sample_weight,
            relu_out,
        )
        return dx, grad_weight, grad_bias


class ReluContext:
    """A forward whose output went through ReLU (``activation="relu"``) outside the fused
    kernels: the gradient ``grad_out * (out > 0)``, as ``nn.ReLU`` computes it, reaches the
    context ``inner``."""

    __slots__ = ("inner", "out")

    def __init__(self, inner, out):
        self.inner, self.out = inner, out

    def backward(self, grad_out, out=None):
        return self.inner.backward(relu_mask(grad_out, self.out), out)


def relu_mask(grad_out, relu_out):
    """``grad_out * (relu_out > 0)`` in the gradient's own dtype, as ``nn.ReLU.backward``
    computes it (a float64 gradient beyond float32's range times 0 is 0, not inf * 0)."""
    grad = grad_output(grad_out, relu_out.shape, None)
    with np.errstate(invalid="ignore"):  # inf * 0: NaN, as the fused kernels give it
        return grad * (relu_out > 0)


class RenormContext:
    """Batch renormalization: the batch-norm context ``inner`` (built with weight * r), r and d
    held constant in the backward pass (Ioffe 2017): ``dweight = r * sum(dy * xhat) + d *
    sum(dy)``."""

    __slots__ = ("inner", "r", "d")

    def __init__(self, inner, r, d):
        self.inner, self.r, self.d = inner, r, d

    def backward(self, grad_out, out=None):
        dx, sum_dy_xhat, sum_dy = self.inner.backward(grad_out, out)
        return dx, self.r * sum_dy_xhat + self.d * sum_dy, sum_dy


class GroupRunsContext(_Context):
    """Group or instance norm with its own statistics, through the fused per-(sample, group)
    kernels (channels first: long channel runs, or one value per channel)."""

    __slots__ = ("mean", "rstd", "groups")

    def __init__(self, layout, shape, weight, mean, rstd, groups):
        super().__init__(layout, shape, weight)
        self.mean = np.ascontiguousarray(mean).reshape(-1)  # (N * groups,)
        self.rstd = np.ascontiguousarray(rstd).reshape(-1)
        self.groups = groups

    def backward(self, grad_out, out=None):
        dy, dx = self._grad_arrays(grad_out, out)
        if dy.size == 0:
            return self._zeros(dx)
        shape3 = self.layout.x.shape
        s_dyxhat, s_dy = self.layout.group_norm_rows_backward(
            dy.reshape(shape3), self.mean, self.rstd, self.weight, self.groups, dx.reshape(shape3)
        )
        return dx, s_dyxhat.sum(axis=0), s_dy.sum(axis=0)


class ChannelRunsContext(_Context):
    """Any batch, group or instance norm through a layout's generic passes: sums of dy and of
    dy * (x - centre) per parameter slot, then the element-wise input gradient."""

    __slots__ = ("centre", "rstd", "batch_stats", "count", "group_size")

    def __init__(self, layout, shape, weight, centre, rstd, batch_stats, count, group_size=1):
        super().__init__(layout, shape, weight)
        self.centre = centre  # (Np, C): the mean subtracted from each channel slot
        self.rstd = rstd  # (Np, C): 1 / sqrt(var + eps)
        self.batch_stats = batch_stats  # True when centre/rstd came from the input itself
        self.count = count  # values behind each statistic
        self.group_size = group_size  # channels that share one statistic (group norm)

    def backward(self, grad_out, out=None):
        dy, dx = self._grad_arrays(grad_out, out)
        if self.count == 0 or dy.size == 0:
            return self._zeros(dx)
        # an infinite rstd (constant input, eps=0) or non-finite sums give inf/NaN gradients as in
        # PyTorch, without NumPy warnings
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self._backward(dy, dx)

    def _backward(self, dy, dx):
        layout = self.layout
        dy3 = dy.reshape(layout.x.shape)
        s_dy, s_dyx = layout.grad_sums(dy3, self.centre)  # (Np, C)
        grad_weight = (s_dyx * self.rstd).sum(axis=0)
        grad_bias = s_dy.sum(axis=0)

        alpha = self.rstd * self.weight  # (Np, C)
        if not self.batch_stats:
            # constant statistics: dx = alpha * dy, without reading x (a NaN or infinite x must
            # not give NaN through 0 * (x - centre))
            layout.scale(dy3, alpha, dx.reshape(layout.x.shape))
            return dx, grad_weight, grad_bias
        g = self.group_size
        n_p = s_dy.shape[0]
        # sums of (weight * dy) and (weight * dy * (x - mean)) over each statistic's values
        sum_g = (s_dy * self.weight).reshape(n_p, -1, g).sum(axis=2)
        sum_gx = (s_dyx * self.weight).reshape(n_p, -1, g).sum(axis=2)
        rstd = self.rstd[:, ::g]
        beta = np.repeat(-(rstd**3) * sum_gx / self.count, g, axis=1)
        gamma = np.repeat(-rstd * sum_g / self.count, g, axis=1)
        layout.grad_input(dy3, self.centre, alpha, beta, gamma, dx.reshape(layout.x.shape))
        return dx, grad_weight, grad_bias


def channel_norm_backward(ctx, grad_out, *, out=None):
    """Gradients (input, weight, bias) of batch, group or instance norm from a saved context.

    ``out``, an array of the input's shape and dtype, receives the input gradient (it may be
    ``grad_out`` itself, not the forward's input).

    Parameters
    ----------
    ctx : context
        As returned by :func:`batch_norm_forward`, :func:`group_norm_forward` or
        :func:`instance_norm_forward`.
    grad_out : ndarray
        Gradient of the loss with respect to the forward's output.
    out : ndarray, optional
        Receives the input gradient.

    Returns
    -------
    grad_input : ndarray of the input's shape
    grad_weight, grad_bias : ndarray of shape (C,), float64

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import batch_norm_forward, channel_norm_backward
    >>> y, ctx = batch_norm_forward(np.array([[1.0], [3.0]]), training=True, eps=0.0)
    >>> channel_norm_backward(ctx, np.array([[1.0], [1.0]]))
    (array([[0.],
           [0.]]), array([0.]), array([2.]))
    """
    if not isinstance(ctx, (_Context, RenormContext, ReluContext)):
        raise TypeError(
            "ctx must be a context returned by batch_norm_forward, group_norm_forward or "
            f"instance_norm_forward, got {type(ctx).__name__}"
        )
    return ctx.backward(grad_out, out)
