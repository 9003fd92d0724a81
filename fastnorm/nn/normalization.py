"""Normalization layers: the functional API plus parameters, buffers and a backward pass."""

import numbers

import numpy as np

from .. import functional as F
from .._validation import (
    EPS,
    EPS_OR_NONE,
    FLOAT_DTYPE,
    MOMENTUM_OR_NONE,
    POSITIVE_INT,
    Boolean,
    Interval,
    IntTuple,
    NoneOr,
    check,
)
from ._module import Module

_AXIS = Interval(numbers.Integral)


def _channel_axis(axis, per_sample):
    """The channel axis: any integer for batch norm, 1 or -1 for per-sample statistics."""
    axis = check(axis, "axis", _AXIS)
    if per_sample and axis not in (1, -1):
        raise ValueError(f"axis must be 1 (channels first) or -1 (channels last), got {axis}")
    return axis


class _Norm(Module):
    """Shared parts: affine parameters, and a backward that fills ``grads``."""

    def __init__(self, param_shape, affine, dtype, with_bias=True, affine_name="affine"):
        super().__init__()
        self.dtype = check(dtype, "dtype", FLOAT_DTYPE)
        self.affine = check(affine, affine_name, Boolean())
        if self.affine:
            self.register_parameter("weight", np.ones(param_shape, dtype=self.dtype))
            if with_bias:
                self.register_parameter("bias", np.zeros(param_shape, dtype=self.dtype))

    def _weight(self):
        return self.params.get("weight")

    def _bias(self):
        return self.params.get("bias")

    def _backward_fn(self, ctx, grad_out):
        raise NotImplementedError

    def backward(self, grad_out):
        ctx = self._saved.get("ctx")
        if ctx is None:
            raise RuntimeError("backward() called before forward()")
        grad_x, grad_w, grad_b = self._backward_fn(ctx, grad_out)
        # written into the existing arrays: the step's gradients replace the previous ones
        # (a float64 sum beyond float32's range becomes inf, as intended: no warning)
        with np.errstate(over="ignore"):
            for key, grad in (("weight", grad_w), ("bias", grad_b)):
                if key in self.grads:
                    target = self.grads[key]
                    np.copyto(target, grad.reshape(target.shape), casting="unsafe")
        return grad_x


class _RunningStats(_Norm):
    """Batch-statistics layers with optional running averages (batch and instance norm)."""

    def __init__(self, num_features, eps, momentum, affine, track_running_stats, dtype):
        self.num_features = check(num_features, "num_features", POSITIVE_INT)
        super().__init__((self.num_features,), affine, dtype)
        self.eps = check(eps, "eps", EPS)
        check(momentum, "momentum", MOMENTUM_OR_NONE)
        self.momentum = momentum
        self.track_running_stats = check(track_running_stats, "track_running_stats", Boolean())
        track = self.track_running_stats
        # updated in place by the functional calls: never rebound in forward
        self.register_buffer(
            "running_mean", np.zeros(self.num_features, dtype=self.dtype) if track else None
        )
        self.register_buffer(
            "running_var", np.ones(self.num_features, dtype=self.dtype) if track else None
        )
        self.register_buffer("num_batches_tracked", 0 if track else None)

    def _upgrade_state(self):
        # pickled before buffers were registered: plain attributes, an int batch count
        if "running_mean" not in self._buffer_names:
            count = vars(self).get("num_batches_tracked")
            for name in ("running_mean", "running_var"):
                self._buffer_names[name] = True
            self.register_buffer("num_batches_tracked", count)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def _momentum_for_step(self):
        """PyTorch's rule: momentum=None is a cumulative average over the batches tracked,
        this one included. The count itself moves only once the forward pass has succeeded."""
        if self.momentum is None:
            counted = self.training and self.track_running_stats
            return 1.0 / (int(self.num_batches_tracked) + 1) if counted else 0.0
        return self.momentum

    def _count_batch(self):
        if self.training and self.track_running_stats:
            self.num_batches_tracked[()] += 1  # in place, through the scalar: a 0-d ufunc is slow

    def _check_channels(self, x):
        shape = x.shape if type(x) is np.ndarray else np.shape(x)
        axis = self.axis if len(shape) > 1 else 0
        if (
            len(shape) >= 2
            and -len(shape) <= axis < len(shape)
            and shape[axis] != self.num_features
        ):
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) got an input with {shape[axis]} "
                f"channels on axis {self.axis} (input shape {shape}); num_features="
                f"{self.num_features} channels are expected"
            )

    def _backward_fn(self, ctx, grad_out):
        return ctx.backward(grad_out)  # the context of its own forward: no type check needed


class BatchNorm(_RunningStats):
    """Batch normalization over the channel axis (``axis=1``, or -1 for channels last).

    ``renorm=True`` turns on batch renormalization (Ioffe 2017) in training: the output is
    ``(xhat * r + d) * weight + bias`` with ``r = clip(sigma_B / sigma, 1 / r_max, r_max)`` and
    ``d = clip((mean_B - running_mean) / sigma, -d_max, d_max)`` from the running statistics,
    constants in the backward pass; ``r_max = 1, d_max = 0`` is plain batch norm, and the two
    attributes may be changed between steps (the paper relaxes them to 3 and 5 after a warm-up).
    Keras's names for the same: ``BatchNormalization(renorm=True, renorm_clipping={"rmax":
    r_max, "rmin": 1 / r_max, "dmax": d_max})``; Keras keeps separate renorm moving averages
    (``renorm_momentum``), fastnorm uses the running statistics themselves, as the paper does.

    ``virtual_batch_size=k`` is ghost batch norm (Hoffer et al. 2017) on 2-D input in training:
    rows cut in order into sub-batches of k (a last single row joins the one before), each
    normalized with its own statistics; one set of running statistics, updated once per
    sub-batch. Row weights (``sample_weight``) do not reach its statistics.

    Parameters
    ----------
    num_features, eps, momentum, affine, track_running_stats, axis, renorm, r_max, d_max, \
virtual_batch_size, dtype
        As in ``torch.nn.BatchNorm2d`` (``C`` channels on ``axis``: 1, or -1 for channels last),
        then the options above. ``momentum`` weighs the new batch (Keras's 0.99 is 0.01 here).

    Examples
    --------
    >>> from fastnorm.nn import BatchNorm
    >>> bn = BatchNorm(2, eps=0.0)
    >>> bn.forward([[1.0, 10.0], [3.0, 30.0]])  # training: the batch's statistics
    array([[-1., -1.],
           [ 1.,  1.]])
    """

    renorm = False  # class defaults: layers pickled before these options existed load as plain
    r_max = 3.0
    d_max = 5.0
    virtual_batch_size = None

    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=True,
        track_running_stats=True,
        *,
        axis=1,
        renorm=False,
        r_max=3.0,
        d_max=5.0,
        virtual_batch_size=None,
        dtype=np.float32,
    ):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        self.axis = _channel_axis(axis, per_sample=False)
        self.renorm = check(renorm, "renorm", Boolean())
        if self.renorm and not self.track_running_stats:
            raise ValueError("renorm=True needs track_running_stats=True (r and d use them)")
        self.virtual_batch_size = check(
            virtual_batch_size, "virtual_batch_size", NoneOr(Interval(numbers.Integral, 2, None))
        )
        if self.virtual_batch_size is not None and (self.renorm or momentum is None):
            raise ValueError(
                "virtual_batch_size (ghost batch norm) takes neither renorm=True nor "
                "momentum=None (one cumulative-average weight per sub-batch is not kept)"
            )
        self.r_max = check(r_max, "r_max", Interval(numbers.Real, 1.0, None, closed="left"))
        self.d_max = check(d_max, "d_max", Interval(numbers.Real, 0.0, None, closed="left"))

    last_input_ndim = None  # ndim of the last input: says which axis the channels were on

    @property
    def takes_sample_weight(self):
        """Row weights reach the batch statistics, except in ghost batch norm (unweighted)."""
        return self.virtual_batch_size is None

    def forward(self, x, sample_weight=None, activation=None):
        """Normalize ``x``; in training, ``sample_weight`` (one weight >= 0 per row of a 2-D ``x``)
        weights the batch statistics as repeated rows would (:func:`fastnorm.batch_norm`);
        ``activation="relu"`` fuses a ReLU (:func:`fastnorm.functional.batch_norm_forward`)."""
        self._check_channels(x)
        use_batch_stats = self.training or not self.track_running_stats
        y, self._saved["ctx"] = F.batch_norm_forward(
            x,
            self.running_mean,
            self.running_var,
            self._weight(),
            self._bias(),
            use_batch_stats,
            self._momentum_for_step(),
            self.eps,
            axis=self.axis,
            sample_weight=sample_weight if use_batch_stats else None,
            renorm=(self.r_max, self.d_max) if self.renorm and self.training else None,
            virtual_batch_size=self.virtual_batch_size if self.training else None,
            activation=activation,
        )
        self._count_batch()
        self.last_input_ndim = y.ndim
        return y

    def extra_repr(self):
        text = (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )
        if self.renorm:
            text += f", renorm=True, r_max={self.r_max}, d_max={self.d_max}"
        if self.virtual_batch_size is not None:
            text += f", virtual_batch_size={self.virtual_batch_size}"
        return text


class InstanceNorm(_RunningStats):
    """Instance normalization: each (sample, channel) over its spatial positions.

    Parameters
    ----------
    num_features, eps, momentum, affine, track_running_stats, axis, dtype
        As for :class:`BatchNorm`, but ``affine`` and ``track_running_stats`` default to False.

    Examples
    --------
    >>> from fastnorm.nn import InstanceNorm
    >>> InstanceNorm(1, eps=0.0).forward([[[1.0, 3.0, 5.0]]])  # (N=1, C=1, L=3)
    array([[[-1.22474487,  0.        ,  1.22474487]]])
    """

    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=False,
        track_running_stats=False,
        *,
        axis=1,
        dtype=np.float32,
    ):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        self.axis = _channel_axis(axis, per_sample=True)

    def forward(self, x):
        self._check_channels(x)
        use_input_stats = self.training or not self.track_running_stats
        y, self._saved["ctx"] = F.instance_norm_forward(
            x,
            self.running_mean,
            self.running_var,
            self._weight(),
            self._bias(),
            use_input_stats,
            self._momentum_for_step(),
            self.eps,
            axis=self.axis,
        )
        self._count_batch()
        return y

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class GroupNorm(_Norm):
    """Group normalization: each sample's channels in ``num_groups`` groups.

    Parameters
    ----------
    num_groups, num_channels, eps, affine, axis, dtype
        ``num_groups`` contiguous groups of the channels; the rest as for :class:`BatchNorm`.

    Examples
    --------
    >>> from fastnorm.nn import GroupNorm
    >>> GroupNorm(2, 4, eps=0.0).forward([[1.0, 3.0, 10.0, 30.0]])  # channels 0-1, 2-3
    array([[-1.,  1., -1.,  1.]])
    """

    def __init__(
        self, num_groups, num_channels, eps=1e-5, affine=True, *, axis=1, dtype=np.float32
    ):
        self.num_groups = check(num_groups, "num_groups", POSITIVE_INT)
        self.num_channels = check(num_channels, "num_channels", POSITIVE_INT)
        if self.num_channels % self.num_groups:
            raise ValueError(f"num_groups={num_groups} must divide num_channels={num_channels}")
        super().__init__((self.num_channels,), affine, dtype)
        self.eps = check(eps, "eps", EPS)
        self.axis = _channel_axis(axis, per_sample=True)

    def forward(self, x):
        shape = np.shape(x)
        # without affine parameters the functional call has nothing to check the channels against
        if (
            len(shape) >= 2
            and -len(shape) <= self.axis < len(shape)
            and shape[self.axis] != self.num_channels
        ):
            raise ValueError(
                f"GroupNorm(num_channels={self.num_channels}) got an input with "
                f"{shape[self.axis]} channels on axis {self.axis} (input shape {shape})"
            )
        y, self._saved["ctx"] = F.group_norm_forward(
            x, self.num_groups, self._weight(), self._bias(), self.eps, axis=self.axis
        )
        return y

    def _backward_fn(self, ctx, grad_out):
        return F.channel_norm_backward(ctx, grad_out)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LayerNorm(_Norm):
    """Layer normalization over the trailing ``normalized_shape`` dimensions.

    Parameters
    ----------
    normalized_shape, eps, elementwise_affine, dtype
        As in ``torch.nn.LayerNorm``: ``weight`` and ``bias`` have the shape normalized over.

    Examples
    --------
    >>> from fastnorm.nn import LayerNorm
    >>> LayerNorm(3, eps=0.0).forward([[1.0, 2.0, 3.0]]).round(4)
    array([[-1.2247,  0.    ,  1.2247]])
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, *, dtype=np.float32):
        self.normalized_shape = check(normalized_shape, "normalized_shape", IntTuple())
        super().__init__(
            self.normalized_shape, elementwise_affine, dtype, affine_name="elementwise_affine"
        )
        self.eps = check(eps, "eps", EPS)

    def forward(self, x):
        y, self._saved["ctx"] = F.layer_norm_forward(
            x, self.normalized_shape, self._weight(), self._bias(), self.eps
        )
        return y

    def _backward_fn(self, ctx, grad_out):
        return F.rows_norm_backward(ctx, grad_out)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.affine}"


class RMSNorm(_Norm):
    """Root-mean-square normalization over the trailing ``normalized_shape`` dimensions.

    Parameters
    ----------
    normalized_shape, eps, elementwise_affine, dtype
        As in ``torch.nn.RMSNorm`` (``eps=None``: the machine epsilon of the input's dtype).

    Examples
    --------
    >>> from fastnorm.nn import RMSNorm
    >>> RMSNorm(2, eps=0.0).forward([[3.0, 4.0]]).round(4)
    array([[0.8485, 1.1314]])
    """

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, *, dtype=np.float32):
        self.normalized_shape = check(normalized_shape, "normalized_shape", IntTuple())
        super().__init__(
            self.normalized_shape,
            elementwise_affine,
            dtype,
            with_bias=False,
            affine_name="elementwise_affine",
        )
        self.eps = check(eps, "eps", EPS_OR_NONE)

    def forward(self, x):
        y, self._saved["ctx"] = F.rms_norm_forward(
            x, self.normalized_shape, self._weight(), self.eps
        )
        return y

    def _backward_fn(self, ctx, grad_out):
        return F.rows_norm_backward(ctx, grad_out)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.affine}"
