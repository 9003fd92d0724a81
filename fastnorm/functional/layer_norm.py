"""Layer and RMS norm: statistics per sample over the trailing ``normalized_shape`` dimensions."""

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
    length = int(np.prod(shape, dtype=np.int64))
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
    """``layer_norm`` that also returns the context its backward pass needs."""
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
    """``rms_norm`` that also returns the context its backward pass needs."""
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
    ``grad_out`` itself, not the forward's input)."""
    if not isinstance(ctx, RowsContext):
        raise TypeError(
            "ctx must be a context returned by layer_norm_forward or rms_norm_forward, "
            f"got {type(ctx).__name__}"
        )
    return ctx.backward(grad_out, out)
