"""Batch norm: per-channel statistics over the batch and every axis but the channel axis."""

import numpy as np

from .. import _validation as rules
from . import _checks as checks
from ._columns_step import columns_step
from ._contexts import ChannelRunsContext, ColumnsContext, ReluContext, RenormContext
from ._ghost import ghost_batch_norm
from ._layouts import ChannelRuns, channel_runs_view
from .moments import update_running_stats


def batch_norm_forward(
    x,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
    *,
    axis=1,
    out=None,
    sample_weight=None,
    renorm=None,
    virtual_batch_size=None,
    activation=None,
):
    """``batch_norm`` that also returns the context its backward pass needs.

    Parameters
    ----------
    x, running_mean, running_var, weight, bias, training, momentum, eps, axis, out, \
sample_weight, renorm, virtual_batch_size
        As for :func:`fastnorm.batch_norm`.
    activation : {None, "relu"}, default None
        ``"relu"``: the output goes through ReLU (``np.maximum(y, 0)``), in the same pass over
        the data where the fused kernels serve the call (training on (N, C) features); the
        context's backward then takes the gradient with respect to the ReLU's output and applies
        its mask ``grad_out * (out > 0)`` first. The bits are those of batch norm followed by
        :class:`fastnorm.nn.ReLU`, in a pass less over the data each way.

    Returns
    -------
    out : ndarray
        As :func:`fastnorm.batch_norm` returns it.
    ctx : context
        What the backward pass needs; ``ctx.backward(grad_out)`` returns
        ``(grad_input, grad_weight, grad_bias)`` (or :func:`channel_norm_backward`).

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import batch_norm_forward
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> y, ctx = batch_norm_forward(x, training=True, eps=0.0)
    >>> grad_x, grad_weight, grad_bias = ctx.backward(np.array([[1.0, 0.0], [0.0, 0.0]]))
    >>> grad_x, grad_weight, grad_bias
    (array([[0., 0.],
           [0., 0.]]), array([-1.,  0.]), array([1., 0.]))
    """
    return _batch_norm(
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
        True,
        sample_weight,
        renorm,
        virtual_batch_size,
        activation,
    )


def _batch_norm(
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
    sample_weight=None,
    renorm=None,
    virtual_batch_size=None,
    activation=None,
):
    """Batch norm and its context; ``save``: a backward pass may follow, so keep the input."""
    relu = activation is not None and (
        (type(activation) is str and activation == "relu")  # the common value, checked cheaply
        or rules.check(activation, "activation", rules.FUSED_ACTIVATION) == "relu"
    )
    if out is None and sample_weight is None and renorm is None and virtual_batch_size is None:
        step = columns_step(
            x, running_mean, running_var, weight, bias, training, momentum, eps, axis, relu
        )
        if step is not None:
            return step
    if virtual_batch_size is not None and renorm is not None:
        raise ValueError("renorm and virtual_batch_size cannot be combined; pass one of them")
    if virtual_batch_size is not None:  # ghost batch norm; None back when it is plain batch norm
        ghost = ghost_batch_norm(
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
        )
        if ghost is not None:
            return _relu_after(*ghost, relu)
    x = checks.as_float_array(x)
    checks.check_ndim(x, 2)
    axis = checks.check_axis(axis, x.ndim)
    eps = checks.check_eps(eps)
    training = checks.check_flag(training, "training")
    momentum = checks.check_momentum(momentum) if training else momentum
    channels = x.shape[axis]
    running_mean, running_var = checks.running_stats(
        running_mean, running_var, channels, updated=training
    )
    w = checks.vector_param(weight, "weight", channels)
    b = checks.vector_param(bias, "bias", channels)
    if not training and running_mean is None:
        raise ValueError("running_mean and running_var are required when training=False")
    sample_weight = checks.row_weights(sample_weight, x) if training else None
    renorm = checks.renorm_limits(renorm) if training else None
    if renorm is not None and running_mean is None:
        raise ValueError("renorm needs running_mean and running_var (its r and d use them)")
    x = checks.saved_input(x, out, save)
    out = checks.output_array(out, x.shape, x.dtype)

    layout = ChannelRuns(channel_runs_view(x, axis))
    count = layout.n * layout.d
    if training and count == 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {x.shape}"
        )
    w = np.ones(channels) if w is None else w
    b = np.zeros(channels) if b is None else b

    if training and count > 0 and layout.fuses_batch_norm:
        target = checks.contiguous_target(out)
        mean, m2, rstd, rd = layout.batch_norm_columns(
            w,
            b,
            eps,
            running_mean,
            running_var,
            momentum,
            channel_runs_view(target, axis),
            sample_weight,
            renorm,
            True if relu else None,
        )
        checks.finish(target, out)
        relu_out = out if relu else None
        if rd is None:
            return out, ColumnsContext(
                layout, x.shape, w, mean, rstd, True, sample_weight, relu_out
            )
        ctx = ColumnsContext(layout, x.shape, w * rd[0], mean, rstd, True, sample_weight, relu_out)
        return out, RenormContext(ctx, rd[0], rd[1])

    rd = None
    if training:
        if count > 0:
            mean, m2 = layout.channel_moments()
            var = m2 / count
            if renorm is not None:  # from the running statistics before this batch's update
                rd = renorm_factors(mean, var, running_mean, running_var, eps, renorm)
            if running_mean is not None:
                update_running_stats(running_mean, running_var, mean, m2 / (count - 1), momentum)
        else:
            mean = var = np.full(channels, np.nan)
    else:
        mean = running_mean.astype(np.float64)
        var = running_var.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # var + eps = 0 or < 0: inf, NaN
        rstd = 1.0 / np.sqrt(var + eps)
    w_used, b_used = (w, b) if rd is None else (w * rd[0], b + w * rd[1])

    if layout.fuses_batch_norm:
        ctx = ColumnsContext(layout, x.shape, w_used, mean, rstd, training)
    else:
        ctx = ChannelRunsContext(
            layout, x.shape, w_used, mean[None, :], rstd[None, :], training, count
        )
    if count > 0:
        target = checks.contiguous_target(out)
        layout.affine(
            mean[None, :],
            (rstd * w_used)[None, :],
            b_used[None, :],
            channel_runs_view(target, axis),
        )
        checks.finish(target, out)
    return _relu_after(out, ctx if rd is None else RenormContext(ctx, rd[0], rd[1]), relu)


def _relu_after(out, ctx, relu):
    """``activation="relu"`` where the kernels did not fuse it: ``np.maximum`` in place (an
    empty output stays empty), and the mask in the backward pass."""
    if not relu:
        return out, ctx
    np.maximum(out, out.dtype.type(0), out=out)
    return out, ReluContext(ctx, out)


def renorm_factors(mean, var, running_mean, running_var, eps, limits):
    """Batch renormalization's (r, d) per channel: ``sigma_B / sigma`` clipped to
    [1 / r_max, r_max] and ``(mean_B - running_mean) / sigma`` clipped to [-d_max, d_max], with
    ``sigma = sqrt(running_var + eps)`` (the columns kernel computes the same in-kernel)."""
    r_max, d_max = limits
    sigma = np.sqrt(running_var.astype(np.float64) + eps)
    r = np.clip(np.sqrt(var + eps) / sigma, 1.0 / r_max, r_max)
    d = np.clip((mean - running_mean) / sigma, -d_max, d_max)
    return np.stack([r, d])


def batch_norm(
    x,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
    *,
    axis=1,
    out=None,
    sample_weight=None,
    renorm=None,
    virtual_batch_size=None,
):
    """Batch normalization with PyTorch's semantics, on NumPy arrays.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        float32 or float64 (integers are converted to float64). ``axis`` names the channel axis:
        1 (default, channels first) or -1 for channels-last data such as NHWC.
    running_mean, running_var : ndarray of shape (C,), optional
        Updated in place when ``training``; used to normalize when not.
    weight, bias : array-like of shape (C,), optional
        Scale and shift applied after normalization.
    training : bool
        Use the batch's statistics (and update the running ones) instead of the running ones.
    momentum : float
        ``running = (1 - momentum) * running + momentum * batch``; the running variance is unbiased.
    eps : float
        Added to the variance for numerical stability; a finite real >= 0.
    out : ndarray, optional
        Array of x's shape and dtype to write the result into.
    sample_weight : array-like of shape (N,), optional
        With ``training`` and 2-D ``x``: non-negative row weights of the batch statistics
        (weighted mean and variance; integer weights equal repeated rows, the running variance
        unbiased with the sum of the weights). Ignored when not training.
    renorm : (r_max, d_max), optional
        With ``training``: batch renormalization (Ioffe 2017). The output is
        ``(xhat * r + d) * weight + bias`` with ``r = clip(sigma_B / sigma, 1 / r_max, r_max)``
        and ``d = clip((mean_B - running_mean) / sigma, -d_max, d_max)``, ``sigma`` from the
        running statistics before this batch; r and d are constants for the backward pass.
        ``(1, 0)`` is plain batch norm. Needs the running statistics.
    virtual_batch_size : int >= 2, optional
        Ghost batch norm (Hoffer et al. 2017), with ``training`` and 2-D ``x`` (N, C): the rows
        are cut in order into sub-batches of this many rows (the last one shorter; a last single
        row joins the one before), each normalized with its own statistics; the running
        statistics are updated once per sub-batch, in order. Not with ``sample_weight``. None,
        or at least N, is plain batch norm; ignored when not training.

    Returns
    -------
    ndarray of x's shape and floating dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm import batch_norm
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> running_mean, running_var = np.zeros(2), np.ones(2)
    >>> batch_norm(x, running_mean, running_var, training=True, eps=0.0)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> running_mean, running_var  # 0.9 * old + 0.1 * batch (unbiased variance)
    (array([0.2, 2. ]), array([  1.1, 20.9]))
    """
    return _batch_norm(
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
        False,
        sample_weight,
        renorm,
        virtual_batch_size,
    )[0]


def feature_moments(x):
    """(mean, M2) of each column of a 2-D array over its rows, accumulated in float64.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_columns)
        Non-empty.

    Returns
    -------
    mean, m2 : ndarray of shape (n_columns,), float64
        The mean and the sum of squared deviations from it (``var = m2 / n_rows``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import feature_moments
    >>> feature_moments(np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32))
    (array([ 2., 20.]), array([  2., 200.]))
    """
    x = checks.as_float_array(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"feature_moments expects a non-empty 2-D array, got shape {x.shape}")
    return ChannelRuns(x.reshape(x.shape[0], x.shape[1], 1)).channel_moments()
