"""Group and instance norm: statistics per sample, over channel groups and spatial positions."""

import math

import numpy as np

from . import _checks as checks
from ._contexts import ChannelRunsContext, GroupRunsContext
from ._layouts import ChannelRuns, SampleColumns, channel_runs_view
from .moments import update_running_stats


def _per_sample_layout(x, axis):
    if axis == 1:
        return ChannelRuns(channel_runs_view(x, 1))
    return SampleColumns(x.reshape(x.shape[0], math.prod(x.shape[1:-1]), x.shape[-1]))


def _context(x, layout, mean, rstd, weight, groups, batch_stats=True):
    """Context of the generic passes: per-(sample, group) statistics repeated per channel."""
    group_size = layout.c // groups
    return ChannelRunsContext(
        layout,
        x.shape,
        weight,
        np.repeat(mean, group_size, axis=1),
        np.repeat(rstd, group_size, axis=1),
        batch_stats,
        group_size * layout.d,
        group_size,
    )


def _input_stats(x, layout, weight, bias, eps, groups, out):
    """Normalize with each (sample, group)'s own statistics; returns (out, ctx, mean, M2)."""
    w = np.ones(layout.c) if weight is None else weight
    b = np.zeros(layout.c) if bias is None else bias
    count = (layout.c // groups) * layout.d
    if x.size > 0 and layout.fuses_groups:
        target = checks.contiguous_target(out)
        mean, m2, rstd = layout.group_norm_rows(groups, w, b, eps, _same_view(target, layout))
        checks.finish(target, out)
        return out, GroupRunsContext(layout, x.shape, w, mean, rstd, groups), mean, m2
    if x.size == 0:
        mean = m2 = np.zeros((layout.n, groups))
    else:
        mean, m2 = layout.group_moments(groups)
    out, ctx = _normalize(x, layout, mean, m2 / max(count, 1), w, b, eps, groups, out)
    return out, ctx, mean, m2


def _normalize(x, layout, mean, var, weight, bias, eps, groups, out, batch_stats=True):
    """Apply per-(sample, group) statistics; returns the output and the backward context."""
    channels = layout.c
    w = np.ones(channels) if weight is None else weight
    b = np.zeros(channels) if bias is None else bias
    with np.errstate(divide="ignore", invalid="ignore"):  # var + eps = 0 or < 0: inf, NaN
        rstd = 1.0 / np.sqrt(var + eps)
    ctx = _context(x, layout, mean, rstd, w, groups, batch_stats)
    centre, rstd_c = ctx.centre, ctx.rstd
    if x.size == 0:
        return out, ctx
    target = checks.contiguous_target(out)
    layout.affine(
        centre, rstd_c * w, np.broadcast_to(b, centre.shape).copy(), _same_view(target, layout)
    )
    checks.finish(target, out)
    return out, ctx


def _same_view(arr, layout):
    return arr.reshape(layout.x.shape)


def group_norm_forward(x, num_groups, weight=None, bias=None, eps=1e-5, *, axis=1, out=None):
    """``group_norm`` that also returns the context its backward pass needs.

    Parameters
    ----------
    x, num_groups, weight, bias, eps, axis, out
        As for :func:`fastnorm.group_norm`.

    Returns
    -------
    out : ndarray
        As :func:`fastnorm.group_norm` returns it.
    ctx : context
        What the backward pass needs; ``ctx.backward(grad_out)`` returns
        ``(grad_input, grad_weight, grad_bias)`` (or :func:`channel_norm_backward`).

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import group_norm_forward
    >>> x = np.array([[1.0, 3.0, 10.0, 30.0]])
    >>> y, ctx = group_norm_forward(x, 2, np.ones(4), np.zeros(4), eps=0.0)
    >>> y
    array([[-1.,  1., -1.,  1.]])
    >>> ctx.backward(np.ones_like(y))[2]  # the bias gradient
    array([1., 1., 1., 1.])
    """
    return _group_norm(x, num_groups, weight, bias, eps, axis, out, save=True)


def _group_norm(x, num_groups, weight, bias, eps, axis, out, save):
    x = checks.as_float_array(x)
    checks.check_ndim(x, 2)
    axis = checks.check_axis(axis, x.ndim, allowed=(1, -1))
    eps = checks.check_eps(eps)
    channels = x.shape[axis]
    num_groups = checks.check_groups(num_groups, channels)
    w = checks.vector_param(weight, "weight", channels, "(num_channels,)")
    b = checks.vector_param(bias, "bias", channels, "(num_channels,)")
    x = checks.saved_input(x, out, save)
    out = checks.output_array(out, x.shape, x.dtype)
    layout = _per_sample_layout(x, axis)
    return _input_stats(x, layout, w, b, eps, num_groups, out)[:2]


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, *, axis=1, out=None):
    """Group normalization with PyTorch's semantics, on NumPy arrays.

    Each sample's channels are split into ``num_groups`` contiguous groups; each group is
    normalized over its channels and all spatial positions, then ``weight``/``bias`` (shape (C,))
    scale and shift each channel. ``axis`` is the channel axis: 1 (default) or -1 (channels last).

    Parameters
    ----------
    x : ndarray of shape (N, C, ...)
        float32 or float64 (integers are converted to float64); at least 2-D.
    num_groups : int
        Number of groups; must divide ``C``.
    weight, bias : array-like of shape (C,), optional
        Per-channel scale and shift.
    eps : float, default 1e-5
        Added to the variance; a finite real >= 0.
    axis : {1, -1}, default 1
        The channel axis.
    out : ndarray, optional
        Array of x's shape and dtype to write the result into.

    Returns
    -------
    ndarray of x's shape and floating dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm import group_norm
    >>> x = np.array([[[1.0, 3.0], [5.0, 7.0], [0.0, 0.0], [2.0, 2.0]]])  # (N=1, C=4, L=2)
    >>> group_norm(x, 2, eps=0.0)[0]  # channels 0-1 and 2-3 share statistics
    array([[-1.34164079, -0.4472136 ],
           [ 0.4472136 ,  1.34164079],
           [-1.        , -1.        ],
           [ 1.        ,  1.        ]])
    """
    return _group_norm(x, num_groups, weight, bias, eps, axis, out, save=False)[0]


def instance_norm_forward(
    x,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    use_input_stats=True,
    momentum=0.1,
    eps=1e-5,
    *,
    axis=1,
    out=None,
):
    """``instance_norm`` that also returns the context its backward pass needs.

    Parameters
    ----------
    x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps, axis, out
        As for :func:`fastnorm.instance_norm`.

    Returns
    -------
    out : ndarray
        As :func:`fastnorm.instance_norm` returns it.
    ctx : context
        What the backward pass needs; ``ctx.backward(grad_out)`` returns
        ``(grad_input, grad_weight, grad_bias)`` (or :func:`channel_norm_backward`).

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import instance_norm_forward
    >>> y, ctx = instance_norm_forward(np.array([[[1.0, 3.0]]]), eps=0.0)
    >>> y, ctx.backward(np.ones_like(y))[0]  # a constant gradient does not reach the input
    (array([[[-1.,  1.]]]), array([[[0., 0.]]]))
    """
    return _instance_norm(
        x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps, axis, out, True
    )


def _instance_norm(
    x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps, axis, out, save
):
    x = checks.as_float_array(x)
    checks.check_ndim(x, 2)
    axis = checks.check_axis(axis, x.ndim, allowed=(1, -1))
    eps = checks.check_eps(eps)
    channels = x.shape[axis]
    use_input_stats = checks.check_flag(use_input_stats, "use_input_stats")
    running_mean, running_var = checks.running_stats(
        running_mean, running_var, channels, updated=use_input_stats
    )
    w = checks.vector_param(weight, "weight", channels)
    b = checks.vector_param(bias, "bias", channels)
    x = checks.saved_input(x, out, save)
    out = checks.output_array(out, x.shape, x.dtype)
    layout = _per_sample_layout(x, axis)
    spatial = layout.d
    groups = max(channels, 1)  # one group per channel; no channels: one empty group
    if use_input_stats:
        if running_mean is not None:
            momentum = checks.check_momentum(momentum)
        if spatial <= 1:
            raise ValueError(
                f"Expected more than 1 spatial element when training, got input size {x.shape}"
            )
        out, ctx, mean, m2 = _input_stats(x, layout, w, b, eps, groups, out)
        if running_mean is not None and x.size > 0:
            with np.errstate(invalid="ignore", over="ignore"):  # infinities: NaN/inf intended
                batch_mean, batch_var = mean.mean(axis=0), (m2 / (spatial - 1)).mean(axis=0)
            update_running_stats(running_mean, running_var, batch_mean, batch_var, momentum)
        return out, ctx
    if running_mean is None:
        raise ValueError("running_mean and running_var are required when use_input_stats=False")
    n = layout.n
    mean = np.broadcast_to(running_mean.astype(np.float64), (n, channels))
    var = np.broadcast_to(running_var.astype(np.float64), (n, channels))
    return _normalize(x, layout, mean, var, w, b, eps, groups, out, batch_stats=False)


def instance_norm(
    x,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    use_input_stats=True,
    momentum=0.1,
    eps=1e-5,
    *,
    axis=1,
    out=None,
):
    """Instance normalization with PyTorch's semantics, on NumPy arrays.

    Each (sample, channel) is normalized over its spatial positions. With running statistics and
    ``use_input_stats``, they are updated in place with the batch average of the instance
    statistics; with ``use_input_stats=False`` the running statistics normalize instead.

    Parameters
    ----------
    x : ndarray of shape (N, C, ...)
        float32 or float64, with at least one spatial dimension of more than one position in
        total.
    running_mean, running_var : ndarray of shape (C,), optional
        Updated in place with ``use_input_stats``; used to normalize without it.
    weight, bias : array-like of shape (C,), optional
        Per-channel scale and shift.
    use_input_stats : bool, default True
        Normalize with each instance's own statistics.
    momentum : float, default 0.1
        Weight of the new batch in the running averages.
    eps : float, default 1e-5
        Added to the variance.
    axis : {1, -1}, default 1
        The channel axis.
    out : ndarray, optional
        Array of x's shape and dtype to write the result into.

    Returns
    -------
    ndarray of x's shape and floating dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm import instance_norm
    >>> instance_norm(np.array([[[1.0, 3.0], [10.0, 30.0]]]), eps=0.0)
    array([[[-1.,  1.],
            [-1.,  1.]]])
    """
    return _instance_norm(
        x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps, axis, out, False
    )[0]
