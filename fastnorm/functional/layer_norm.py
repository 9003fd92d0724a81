"""Layer and RMS norm: statistics per sample over the trailing ``normalized_shape`` dimensions."""

import math

import numpy as np

from .._kernels import rows_fused, schedule
from . import _checks as checks


class RowsContext:
    """What a layer/RMS norm forward saves; ``backward`` computes the gradients from it."""

    __slots__ = ("x2", "shape", "mean", "rstd", "weight", "subtract_mean")

    def __init__(self, x2, shape, mean, rstd, weight, subtract_mean):
        self.x2 = x2  # (rows, length) view of the input
        self.shape = shape
        self.mean = mean  # (rows,), zeros for RMS norm
        self.rstd = rstd  # (rows,)
        self.weight = weight  # (length,) float64, ones when absent
        self.subtract_mean = subtract_mean

    def backward(self, grad_out, out=None):
        """Gradients (input, weight, bias) of the forward pass that saved this context; ``out``
        receives the input gradient."""
        dy = checks.grad_output(grad_out, self.shape, self.x2.dtype)
        rows, length = self.x2.shape
        dy, dx = checks.grad_input_array(dy, out, (self.x2,))
        if dy.size == 0:
            return dx, np.zeros(length), np.zeros(length)
        grad_w, grad_b = rows_fused.rows_normalize_backward(
            dy.reshape(rows, length),
            self.x2,
            self.mean,
            self.rstd,
            self.weight,
            self.subtract_mean,
            schedule.rows_per_block(rows, length),
            dx.reshape(rows, length),
        )
        return dx, grad_w, grad_b


def _rows_forward(x, normalized_shape, weight, bias, eps, out, subtract_mean, save=True):
    shape = checks.normalized_shape_of(normalized_shape, x.shape)
    w = checks.shaped_param(weight, "weight", shape)
    b = checks.shaped_param(bias, "bias", shape) if subtract_mean else None
    x = checks.saved_input(x, out, save)
    out = checks.output_array(out, x.shape, x.dtype)
    length = math.prod(shape)
    rows = x.size // length if length else 0
    x2 = x.reshape(rows, length)
    w = np.ones(length) if w is None else w
    b = np.zeros(length) if b is None else b
    if x.size == 0:
        empty = np.zeros(rows)
        return out, RowsContext(x2, x.shape, empty, empty, w, subtract_mean)
    target = checks.contiguous_target(out)
    mean, rstd = rows_fused.rows_normalize(
        x2, w, b, eps, subtract_mean, target.reshape(rows, length)
    )
    checks.finish(target, out)
    return out, RowsContext(x2, x.shape, mean, rstd, w, subtract_mean)


def layer_norm_forward(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, out=None):
    """``layer_norm`` that also returns the context its backward pass needs.

    Parameters
    ----------
    x, normalized_shape, weight, bias, eps, out
        As for :func:`fastnorm.layer_norm`.

    Returns
    -------
    out : ndarray
        As :func:`fastnorm.layer_norm` returns it.
    ctx : context
        What the backward pass needs; ``ctx.backward(grad_out)`` returns
        ``(grad_input, grad_weight, grad_bias)`` (or :func:`rows_norm_backward`).

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import layer_norm_forward
    >>> y, ctx = layer_norm_forward(np.array([[1.0, 3.0]]), 2, np.ones(2), np.zeros(2), eps=0.0)
    >>> y, ctx.backward(np.array([[1.0, 0.0]]))[1]  # the weight gradient: grad_out * x_hat
    (array([[-1.,  1.]]), array([-1.,  0.]))
    """
    return _layer_norm(x, normalized_shape, weight, bias, eps, out, save=True)


def _layer_norm(x, normalized_shape, weight, bias, eps, out, save):
    x = checks.as_float_array(x)
    checks.check_ndim(x, 1)
    eps = checks.check_eps(eps)
    return _rows_forward(x, normalized_shape, weight, bias, eps, out, True, save)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, out=None):
    """Layer normalization with PyTorch's semantics, on NumPy arrays.

    Each sample is normalized over its trailing dimensions ``normalized_shape``; ``weight`` and
    ``bias`` (of shape ``normalized_shape``) then scale and shift each element.

    Parameters
    ----------
    x : ndarray whose trailing dimensions are ``normalized_shape``
        float32 or float64 (integers are converted to float64).
    normalized_shape : int or tuple of int
        The trailing dimensions normalized over.
    weight, bias : array-like of shape normalized_shape, optional
        Element-wise scale and shift.
    eps : float, default 1e-5
        Added to the variance.
    out : ndarray, optional
        Array of x's shape and dtype to write the result into.

    Returns
    -------
    ndarray of x's shape and floating dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm import layer_norm
    >>> layer_norm(np.array([[1.0, 2.0, 3.0], [10.0, 10.0, 40.0]]), 3, eps=0.0).round(4)
    array([[-1.2247,  0.    ,  1.2247],
           [-0.7071, -0.7071,  1.4142]])
    """
    return _layer_norm(x, normalized_shape, weight, bias, eps, out, save=False)[0]


def rms_norm_forward(x, normalized_shape, weight=None, eps=None, *, out=None):
    """``rms_norm`` that also returns the context its backward pass needs.

    Parameters
    ----------
    x, normalized_shape, weight, eps, out
        As for :func:`fastnorm.rms_norm`.

    Returns
    -------
    out : ndarray
        As :func:`fastnorm.rms_norm` returns it.
    ctx : context
        What the backward pass needs; ``ctx.backward(grad_out)`` returns
        ``(grad_input, grad_weight, grad_bias)`` (or :func:`rows_norm_backward`); RMS norm has
        no bias: its third gradient is that of a bias it does not use.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import rms_norm_forward
    >>> y, ctx = rms_norm_forward(np.array([[3.0, 4.0]]), 2, eps=0.0)
    >>> grad_x = ctx.backward(np.ones_like(y))[0]
    >>> grad_x.shape
    (1, 2)
    """
    return _rms_norm(x, normalized_shape, weight, eps, out, save=True)


def _rms_norm(x, normalized_shape, weight, eps, out, save):
    x = checks.as_float_array(x)
    checks.check_ndim(x, 1)
    eps = checks.check_eps(eps, allow_none=True)
    eps = float(np.finfo(x.dtype).eps) if eps is None else eps
    return _rows_forward(x, normalized_shape, weight, None, eps, out, False, save)


def rms_norm(x, normalized_shape, weight=None, eps=None, *, out=None):
    """Root-mean-square normalization with PyTorch's semantics, on NumPy arrays.

    ``y = x / sqrt(mean(x**2) + eps) * weight`` over the trailing ``normalized_shape`` dimensions;
    ``eps=None`` uses the machine epsilon of x's dtype.

    Parameters
    ----------
    x : ndarray whose trailing dimensions are ``normalized_shape``
        float32 or float64.
    normalized_shape : int or tuple of int
        The trailing dimensions normalized over.
    weight : array-like of shape normalized_shape, optional
        Element-wise scale.
    eps : float or None, default None
        Added to the mean square.
    out : ndarray, optional
        Array of x's shape and dtype to write the result into.

    Returns
    -------
    ndarray of x's shape and floating dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm import rms_norm
    >>> rms_norm(np.array([[3.0, 4.0]]), 2, eps=0.0).round(4)  # rms = sqrt(12.5)
    array([[0.8485, 1.1314]])
    """
    return _rms_norm(x, normalized_shape, weight, eps, out, save=False)[0]


def rows_norm_backward(ctx, grad_out, *, out=None):
    """Gradients (input, weight, bias) of layer or RMS norm from a saved context.

    ``out``, an array of the input's shape and dtype, receives the input gradient (it may be
    ``grad_out`` itself, not the forward's input).

    Parameters
    ----------
    ctx : context
        As returned by :func:`layer_norm_forward` or :func:`rms_norm_forward`.
    grad_out : ndarray
        Gradient of the loss with respect to the forward's output.
    out : ndarray, optional
        Receives the input gradient.

    Returns
    -------
    grad_input : ndarray of the input's shape
    grad_weight, grad_bias : ndarray of shape normalized_shape, float64
        Computed whether or not the forward had a weight and a bias.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import layer_norm_forward, rows_norm_backward
    >>> y, ctx = layer_norm_forward(np.array([[1.0, 3.0]]), 2, np.ones(2), np.zeros(2))
    >>> rows_norm_backward(ctx, np.ones_like(y))[2]
    array([1., 1.])
    """
    if not isinstance(ctx, RowsContext):
        raise TypeError(
            "ctx must be a context returned by layer_norm_forward or rms_norm_forward, "
            f"got {type(ctx).__name__}"
        )
    return ctx.backward(grad_out, out)
