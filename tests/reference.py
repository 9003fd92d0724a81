"""Slow, obvious float64 NumPy reference for every normalization, forward and backward.

Clarity over speed: every function casts to float64, computes the statistics with
``np.mean`` of centred values (two passes; the mean refined once by the mean of the residuals,
so that a constant slice has exactly its value as mean), and writes the textbook formula.
Nothing here imports fastnorm. The reference itself is validated against PyTorch in
``test_reference.py``.

Conventions
-----------
* ``axis`` is the channel axis (batch, group and instance norm). Group and instance norm move it
  to position 1, compute on ``(N, C, *S)``, and move it back.
* Forward functions return the output only; running statistics are never touched in place.
  ``*_running_stats`` functions return the *new* running statistics instead.
* Backward functions take the upstream gradient ``dy`` and the same arguments as the forward,
  and return ``(dx, dweight, dbias)`` (``rms_norm_backward``: ``(dx, dweight)``). A parameter
  given as ``None`` gets ``None`` as gradient.
"""

import numpy as np


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _channel_shape(ndim, axis):
    """Shape that broadcasts a per-channel vector along ``axis`` of an ``ndim`` array."""
    axis = axis % ndim
    shape = [1] * ndim
    shape[axis] = -1
    return tuple(shape), axis


def _other_axes(ndim, axis):
    axis = axis % ndim
    return tuple(a for a in range(ndim) if a != axis)


def _normalized_axes(ndim, normalized_shape):
    normalized_shape = _as_shape(normalized_shape)
    return tuple(range(ndim - len(normalized_shape), ndim))


def _as_shape(normalized_shape):
    if np.ndim(normalized_shape) == 0:
        return (int(normalized_shape),)
    return tuple(int(s) for s in normalized_shape)


# --------------------------------------------------------------------------------------------
# generic: normalize over `axes` (stats kept with keepdims), then per-element affine
# --------------------------------------------------------------------------------------------


def _mean(x, axis, keepdims=False):
    """``np.mean`` refined once by the mean of the residuals: exact for constant slices (whose
    mean must be their value, and their variance 0, at any magnitude)."""
    mean = np.mean(x, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore"):  # an infinite mean is not refined
        residual = np.mean(x - mean, axis=axis, keepdims=True)
    mean = np.where(np.isfinite(mean), mean + residual, mean)
    return mean if keepdims else np.squeeze(mean, axis=axis)


def _stats(x, axes):
    """Mean and biased variance over ``axes`` (keepdims), two passes."""
    mean = _mean(x, axes, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=axes, keepdims=True)
    return mean, var


def _normalize_backward(dxhat, xhat, invstd, axes):
    """Gradient through xhat = (x - mean(x)) * invstd with batch statistics over ``axes``.

    dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    """
    mean_dxhat = np.mean(dxhat, axis=axes, keepdims=True)
    mean_dxhat_xhat = np.mean(dxhat * xhat, axis=axes, keepdims=True)
    return invstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)


def _empty_like64(x):
    return np.zeros(x.shape, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# batch norm
# --------------------------------------------------------------------------------------------


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
):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, statistics per channel ``axis``."""
    x = _f64(x)
    cshape, axis = _channel_shape(x.ndim, axis)
    red = _other_axes(x.ndim, axis)
    if training:
        if x.size == 0:
            return _empty_like64(x)
        mean, var = _stats(x, red)
    else:
        mean = _f64(running_mean).reshape(cshape)
        var = _f64(running_var).reshape(cshape)
    y = (x - mean) / np.sqrt(var + eps)
    if weight is not None:
        y = y * _f64(weight).reshape(cshape)
    if bias is not None:
        y = y + _f64(bias).reshape(cshape)
    return y


def batch_norm_running_stats(x, running_mean, running_var, momentum=0.1, *, axis=1):
    """New (running_mean, running_var) after one training step; unbiased batch variance."""
    x = _f64(x)
    rm, rv = _f64(running_mean).copy(), _f64(running_var).copy()
    if x.size == 0:
        return rm, rv
    axis = axis % x.ndim
    red = _other_axes(x.ndim, axis)
    n = x.size // x.shape[axis]
    mean = _mean(x, red)
    var_unbiased = np.sum((x - np.expand_dims(mean, red)) ** 2, axis=red) / (n - 1)
    rm = (1 - momentum) * rm + momentum * mean
    rv = (1 - momentum) * rv + momentum * var_unbiased
    return rm, rv


def batch_norm_backward(
    dy,
    x,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    training=False,
    eps=1e-5,
    *,
    axis=1,
):
    """(dx, dweight, dbias). Training couples all samples of a channel; eval does not."""
    x, dy = _f64(x), _f64(dy)
    cshape, axis = _channel_shape(x.ndim, axis)
    red = _other_axes(x.ndim, axis)
    C = x.shape[axis]
    w = 1.0 if weight is None else _f64(weight).reshape(cshape)
    if x.size == 0:
        dx = _empty_like64(x)
        dw = None if weight is None else np.zeros(C)
        db = None if bias is None else np.zeros(C)
        return dx, dw, db
    if training:
        mean, var = _stats(x, red)
    else:
        mean = _f64(running_mean).reshape(cshape)
        var = _f64(running_var).reshape(cshape)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * invstd
    dxhat = dy * w
    if training:
        dx = _normalize_backward(dxhat, xhat, invstd, red)
    else:
        dx = dxhat * invstd
    dw = None if weight is None else np.sum(dy * xhat, axis=red)
    db = None if bias is None else np.sum(dy, axis=red)
    return dx, dw, db


def batch_renorm(x, running_mean, running_var, weight, bias, r_max, d_max, eps=1e-5, *, axis=1):
    """Batch renormalization in training (Ioffe 2017): (y, r, d) with
    y = ((x - mean_B) / sigma_B * r + d) * weight + bias, sigma_B = sqrt(var_B + eps),
    r = clip(sigma_B / sigma, 1 / r_max, r_max), d = clip((mean_B - mu) / sigma, -d_max, d_max),
    mu and sigma = sqrt(running_var + eps) the running statistics before the batch."""
    x = _f64(x)
    cshape, axis = _channel_shape(x.ndim, axis)
    red = _other_axes(x.ndim, axis)
    mean, var = _stats(x, red)
    sigma_b = np.sqrt(var + eps)
    sigma = np.sqrt(_f64(running_var).reshape(cshape) + eps)
    r = np.clip(sigma_b / sigma, 1.0 / r_max, r_max)
    d = np.clip((mean - _f64(running_mean).reshape(cshape)) / sigma, -d_max, d_max)
    y = ((x - mean) / sigma_b * r + d) * _f64(weight).reshape(cshape) + _f64(bias).reshape(cshape)
    return y, r.reshape(-1), d.reshape(-1)


def batch_renorm_backward(dy, x, r, d, weight, eps=1e-5, *, axis=1):
    """(dx, dweight, dbias) of ``batch_renorm`` with r and d held constant."""
    x, dy = _f64(x), _f64(dy)
    cshape, axis = _channel_shape(x.ndim, axis)
    red = _other_axes(x.ndim, axis)
    mean, var = _stats(x, red)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * invstd
    r, d = _f64(r).reshape(cshape), _f64(d).reshape(cshape)
    dx = _normalize_backward(dy * _f64(weight).reshape(cshape) * r, xhat, invstd, red)
    dw = np.sum(dy * (xhat * r + d), axis=red)
    return dx, dw, np.sum(dy, axis=red)


# --------------------------------------------------------------------------------------------
# layer norm
# --------------------------------------------------------------------------------------------


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x = _f64(x)
    axes = _normalized_axes(x.ndim, normalized_shape)
    if x.size == 0:
        return _empty_like64(x)
    mean, var = _stats(x, axes)
    y = (x - mean) / np.sqrt(var + eps)
    if weight is not None:
        y = y * _f64(weight)
    if bias is not None:
        y = y + _f64(bias)
    return y


def layer_norm_backward(dy, x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x, dy = _f64(x), _f64(dy)
    axes = _normalized_axes(x.ndim, normalized_shape)
    lead = tuple(range(x.ndim - len(axes)))
    fshape = _as_shape(normalized_shape)
    if x.size == 0:
        dw = None if weight is None else np.zeros(fshape)
        db = None if bias is None else np.zeros(fshape)
        return _empty_like64(x), dw, db
    mean, var = _stats(x, axes)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * invstd
    dxhat = dy if weight is None else dy * _f64(weight)
    dx = _normalize_backward(dxhat, xhat, invstd, axes)
    dw = None if weight is None else np.sum(dy * xhat, axis=lead)
    db = None if bias is None else np.sum(dy, axis=lead)
    return dx, dw, db


# --------------------------------------------------------------------------------------------
# group norm (computed on (N, C, *S); axis moved to 1 and back)
# --------------------------------------------------------------------------------------------


def _to_nc(x, axis):
    return np.moveaxis(x, axis, 1)


def _from_nc(x, axis):
    return np.moveaxis(x, 1, axis)


def _group_view(x, num_groups):
    """(N, C, *S) -> (N, G, C // G, *S) (a reshape of a copy: always possible)."""
    N, C = x.shape[:2]
    return np.ascontiguousarray(x).reshape((N, num_groups, C // num_groups) + x.shape[2:])


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, *, axis=1):
    x = _to_nc(_f64(x), axis)
    N, C = x.shape[:2]
    if x.size == 0:
        return _from_nc(_empty_like64(x), axis)
    xg = _group_view(x, num_groups)
    axes = tuple(range(2, xg.ndim))
    mean, var = _stats(xg, axes)
    y = ((xg - mean) / np.sqrt(var + eps)).reshape(x.shape)
    cshape = (1, C) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * _f64(weight).reshape(cshape)
    if bias is not None:
        y = y + _f64(bias).reshape(cshape)
    return _from_nc(y, axis)


def group_norm_backward(dy, x, num_groups, weight=None, bias=None, eps=1e-5, *, axis=1):
    x = _to_nc(_f64(x), axis)
    dy = _to_nc(_f64(dy), axis)
    N, C = x.shape[:2]
    cshape = (1, C) + (1,) * (x.ndim - 2)
    red = (0,) + tuple(range(2, x.ndim))
    if x.size == 0:
        dw = None if weight is None else np.zeros(C)
        db = None if bias is None else np.zeros(C)
        return _from_nc(_empty_like64(x), axis), dw, db
    xg = _group_view(x, num_groups)
    axes = tuple(range(2, xg.ndim))
    mean, var = _stats(xg, axes)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat_g = (xg - mean) * invstd
    xhat = xhat_g.reshape(x.shape)
    dxhat = dy if weight is None else dy * _f64(weight).reshape(cshape)
    dx = _normalize_backward(_group_view(dxhat, num_groups), xhat_g, invstd, axes)
    dx = dx.reshape(x.shape)
    dw = None if weight is None else np.sum(dy * xhat, axis=red)
    db = None if bias is None else np.sum(dy, axis=red)
    return _from_nc(dx, axis), dw, db


# --------------------------------------------------------------------------------------------
# instance norm (statistics per (sample, channel) over the spatial axes)
# --------------------------------------------------------------------------------------------


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
):
    x = _to_nc(_f64(x), axis)
    C = x.shape[1]
    cshape = (1, C) + (1,) * (x.ndim - 2)
    if use_input_stats:
        if x.size == 0:
            return _from_nc(_empty_like64(x), axis)
        mean, var = _stats(x, tuple(range(2, x.ndim)))
    else:
        mean = _f64(running_mean).reshape(cshape)
        var = _f64(running_var).reshape(cshape)
    y = (x - mean) / np.sqrt(var + eps)
    if weight is not None:
        y = y * _f64(weight).reshape(cshape)
    if bias is not None:
        y = y + _f64(bias).reshape(cshape)
    return _from_nc(y, axis)


def instance_norm_running_stats(x, running_mean, running_var, momentum=0.1, *, axis=1):
    """As torch: average the per-instance mean and unbiased variance over the batch."""
    x = _to_nc(_f64(x), axis)
    rm, rv = _f64(running_mean).copy(), _f64(running_var).copy()
    if x.size == 0:
        return rm, rv
    spatial = tuple(range(2, x.ndim))
    S = int(np.prod(x.shape[2:]))
    mean_nc = _mean(x, spatial)  # (N, C)
    var_nc = np.sum((x - _mean(x, spatial, keepdims=True)) ** 2, axis=spatial) / (S - 1)
    rm = (1 - momentum) * rm + momentum * np.mean(mean_nc, axis=0)
    rv = (1 - momentum) * rv + momentum * np.mean(var_nc, axis=0)
    return rm, rv


def instance_norm_backward(
    dy,
    x,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    use_input_stats=True,
    eps=1e-5,
    *,
    axis=1,
):
    x = _to_nc(_f64(x), axis)
    dy = _to_nc(_f64(dy), axis)
    C = x.shape[1]
    cshape = (1, C) + (1,) * (x.ndim - 2)
    red = (0,) + tuple(range(2, x.ndim))
    spatial = tuple(range(2, x.ndim))
    if x.size == 0:
        dw = None if weight is None else np.zeros(C)
        db = None if bias is None else np.zeros(C)
        return _from_nc(_empty_like64(x), axis), dw, db
    if use_input_stats:
        mean, var = _stats(x, spatial)
    else:
        mean = _f64(running_mean).reshape(cshape)
        var = _f64(running_var).reshape(cshape)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * invstd
    dxhat = dy if weight is None else dy * _f64(weight).reshape(cshape)
    if use_input_stats:
        dx = _normalize_backward(dxhat, xhat, invstd, spatial)
    else:
        dx = dxhat * invstd
    dw = None if weight is None else np.sum(dy * xhat, axis=red)
    db = None if bias is None else np.sum(dy, axis=red)
    return _from_nc(dx, axis), dw, db


# --------------------------------------------------------------------------------------------
# RMS norm: y = x / sqrt(mean(x^2) + eps) * weight; eps=None -> machine eps of the input dtype
# --------------------------------------------------------------------------------------------


def rms_eps(x_dtype, eps):
    """torch's default: finfo(input dtype).eps; integer input is computed in float64."""
    if eps is not None:
        return float(eps)
    dt = np.dtype(x_dtype)
    if not np.issubdtype(dt, np.floating):
        dt = np.dtype(np.float64)
    return float(np.finfo(dt).eps)


def rms_norm(x, normalized_shape, weight=None, eps=None):
    eps = rms_eps(np.asarray(x).dtype, eps)
    x = _f64(x)
    axes = _normalized_axes(x.ndim, normalized_shape)
    if x.size == 0:
        return _empty_like64(x)
    ms = np.mean(x * x, axis=axes, keepdims=True)
    y = x / np.sqrt(ms + eps)
    if weight is not None:
        y = y * _f64(weight)
    return y


def rms_norm_backward(dy, x, normalized_shape, weight=None, eps=None):
    """r = 1/sqrt(mean(x^2) + eps); dx = r * g - r^3 * x * mean(g * x), g = dy * weight."""
    eps = rms_eps(np.asarray(x).dtype, eps)
    x, dy = _f64(x), _f64(dy)
    axes = _normalized_axes(x.ndim, normalized_shape)
    lead = tuple(range(x.ndim - len(axes)))
    if x.size == 0:
        dw = None if weight is None else np.zeros(_as_shape(normalized_shape))
        return _empty_like64(x), dw
    r = 1.0 / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps)
    g = dy if weight is None else dy * _f64(weight)
    dx = r * g - r**3 * x * np.mean(g * x, axis=axes, keepdims=True)
    dw = None if weight is None else np.sum(dy * x * r, axis=lead)
    return dx, dw
