"""Input validation shared by the functional API: clear errors before any kernel runs.

Parameters (eps, momentum, axis, group counts) follow the rules declared once in
``fastnorm._validation``; the array checks (dtype, shape, output buffers) are here.
"""

import math
import numbers

import numpy as np

from .. import _validation as rules

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT32, _FLOAT64 = FLOAT_DTYPES


def as_float_array(x, name="input"):
    """``x`` as a C-contiguous float32/float64 array; integers become float64."""
    arr = np.asarray(x)  # not ascontiguousarray: it would turn a 0-d input into a 1-d one
    if arr.dtype in FLOAT_DTYPES:
        return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
    if arr.dtype.kind in "iu":
        return arr.astype(np.float64, order="C")
    raise TypeError(
        f"{name} has dtype {arr.dtype}; expected float32 or float64 (integers are converted to "
        "float64)"
    )


def check_ndim(x, minimum, name="input"):
    if x.ndim < minimum:
        raise ValueError(f"{name} must have at least {minimum} dimensions, got shape {x.shape}")


def check_eps(eps, allow_none=False):
    """A finite real >= 0 as a float (``rules.EPS``); None too with ``allow_none`` (RMS norm)."""
    if type(eps) is float and 0.0 <= eps < math.inf:  # the common case, without the rule's cost
        return eps
    return rules.check(eps, "eps", rules.EPS_OR_NONE if allow_none else rules.EPS)


def check_momentum(momentum):
    """A real in [0, 1] as a float (``rules.MOMENTUM``)."""
    if type(momentum) is float and 0.0 <= momentum <= 1.0:
        return momentum
    return rules.check(momentum, "momentum", rules.MOMENTUM)


def check_flag(value, name):
    """A bool (``training``, ``use_input_stats``): strings and numbers are refused."""
    if type(value) is bool:
        return value
    return rules.check(value, name, rules.Boolean())


def check_axis(axis, ndim, allowed=None):
    """An integer axis of an ``ndim``-dimensional input, as a non-negative int; with ``allowed``,
    one of those axes."""
    if type(axis) is not int:
        axis = rules.check(axis, "axis", rules.Interval(numbers.Integral))
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of range for an input with {ndim} dimensions")
    axis = axis % ndim
    if allowed is not None and axis not in [a % ndim for a in allowed]:
        raise ValueError(f"axis must be 1 (channels first) or -1 (channels last), got {axis}")
    return axis


def check_groups(num_groups, channels):
    """An integer (``TypeError`` otherwise) that is a positive divisor of ``channels``."""
    value = num_groups
    try:
        num_groups = rules.check(num_groups, "num_groups", rules.POSITIVE_INT)
    except ValueError:
        num_groups = 0
    if num_groups <= 0 or channels % num_groups != 0:
        raise ValueError(
            f"num_groups={value!r} must be a positive divisor of the number of "
            f"channels ({channels})"
        )
    return num_groups


def vector_param(value, name, length, shape_text="(num_features,)"):
    """A per-channel parameter as a float64 vector of ``length``, or None."""
    if value is None:
        return None
    if type(value) is np.ndarray and value.shape == (length,):  # the common cases, cheaply
        if value.dtype == _FLOAT64:
            return value if value.flags.c_contiguous else np.ascontiguousarray(value)
        if value.dtype == _FLOAT32:
            return value.astype(np.float64)
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise TypeError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    if arr.shape != (length,):
        raise ValueError(f"{name} must have shape {shape_text} = ({length},), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def shaped_param(value, name, shape):
    """A per-element parameter of exactly ``shape``, flattened to float64, or None."""
    if value is None:
        return None
    if type(value) is np.ndarray and value.shape == shape and value.dtype in FLOAT_DTYPES:
        return np.ascontiguousarray(value, dtype=np.float64).reshape(-1)  # checked cheaply
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(
            f"{name} must have shape normalized_shape = {tuple(shape)}, got {arr.shape}"
        )
    return np.ascontiguousarray(arr, dtype=np.float64).reshape(-1)


def running_stat(value, name, length, updated=False):
    """A running statistic buffer: a float array of shape (length,); writeable when ``updated``
    (checked before anything is computed, so a failed call changes neither buffer)."""
    if value is None:
        return None
    if (
        type(value) is np.ndarray
        and value.shape == (length,)
        and value.dtype in FLOAT_DTYPES
        and (value.flags.writeable or not updated)
    ):
        return value  # the common case, checked cheaply
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array (it is updated in place), got {type(value)}")
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {value.dtype}")
    if value.shape != (length,):
        raise ValueError(f"{name} must have shape (num_features,) = ({length},), got {value.shape}")
    if updated and not value.flags.writeable:
        raise ValueError(f"{name} is read-only; it is updated in place when training")
    return value


def running_stats(running_mean, running_var, length, updated=False):
    """Both running statistics checked, or both None; ``updated``: they will be written."""
    running_mean = running_stat(running_mean, "running_mean", length, updated)
    running_var = running_stat(running_var, "running_var", length, updated)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together")
    return running_mean, running_var


def normalized_shape_of(normalized_shape, x_shape):
    """``normalized_shape`` as a tuple that must equal the trailing dimensions of the input."""

    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))

    if type(normalized_shape) is int:  # the common cases first: the checks below cost a call
        shape = (normalized_shape,)
    elif type(normalized_shape) is tuple and all(type(s) is int for s in normalized_shape):
        shape = normalized_shape
    elif is_int(normalized_shape):
        shape = (int(normalized_shape),)
    elif isinstance(normalized_shape, (tuple, list, np.ndarray)) and all(
        is_int(s) for s in normalized_shape
    ):
        shape = tuple(int(s) for s in normalized_shape)
    else:
        raise TypeError(
            f"normalized_shape must be an int or a tuple of ints, got {normalized_shape!r}"
        )
    if len(shape) == 0:
        raise ValueError("normalized_shape must have at least one dimension")
    if len(shape) > len(x_shape) or tuple(x_shape[len(x_shape) - len(shape) :]) != shape:
        raise ValueError(
            f"normalized_shape={shape} must equal the trailing dimensions of the input, whose "
            f"shape is {tuple(x_shape)}"
        )
    return shape


def grad_output(grad_out, shape, dtype):
    """``grad_out`` of a backward pass: real numbers of the forward input's ``shape``, as a
    C-contiguous array of ``dtype``."""
    if (
        type(grad_out) is np.ndarray
        and grad_out.shape == shape
        and (grad_out.dtype == dtype if dtype is not None else grad_out.dtype in FLOAT_DTYPES)
        and grad_out.flags.c_contiguous
    ):
        return grad_out  # the common case, checked cheaply
    if grad_out is None or isinstance(grad_out, (str, bytes)):
        raise TypeError(f"grad_out must be {_expected_grad(shape)}, got {grad_out!r}")
    arr = np.asarray(grad_out)
    if arr.dtype.kind not in "fiu":
        raise TypeError(
            f"grad_out must be {_expected_grad(shape)} of real numbers, got dtype {arr.dtype}"
        )
    if arr.shape != tuple(shape):
        raise ValueError(f"grad_out must be {_expected_grad(shape)}, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


def _expected_grad(shape):
    return f"an array of the forward input's shape {tuple(shape)}"


def output_array(out, shape, dtype):
    """Where to write the result: ``out`` when given (checked), else a new array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array, got {type(out)}")
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(
            f"out must have shape {tuple(shape)} and dtype {dtype}, got {out.shape} and {out.dtype}"
        )
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def grad_input_array(dy, out, saved):
    """``(dy, dx)`` for a backward pass: dx is ``out`` (checked, C-contiguous: the kernels write
    through reshaped views) or a new array. A backward pass reads the saved input after writing
    some of dx, so ``out`` must not overlap it; it may be dy, which is then copied first."""
    if out is None:
        return dy, np.empty_like(dy)
    out = output_array(out, dy.shape, dy.dtype)
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous for a backward pass")
    if any(np.may_share_memory(out, a) for a in saved):
        raise ValueError("out must not share memory with the forward pass's input")
    if np.may_share_memory(out, dy):
        dy = dy.copy()
    return dy, out


def saved_input(x, out, save=True):
    """The input the forward pass (and, with ``save``, a backward pass) reads: a copy when ``out``
    would overwrite it. Without ``save``, ``out`` that is ``x`` itself (same memory, same strides)
    needs no copy: every forward pass reads a value before it writes the same position."""
    if not (isinstance(out, np.ndarray) and np.may_share_memory(x, out)):
        return x
    same = (
        out.__array_interface__["data"][0] == x.__array_interface__["data"][0]
        and out.shape == x.shape
        and out.strides == x.strides
        and out.dtype == x.dtype
    )
    return x if same and not save else x.copy()


def contiguous_target(out):
    """A C-contiguous array to compute into; copy back with ``finish`` if it is not ``out``."""
    return out if out.flags.c_contiguous else np.empty(out.shape, dtype=out.dtype)


def finish(result, out):
    if result is not out:
        out[...] = result
    return out


def row_weights(sample_weight, x):
    """Batch norm's row weights: None, or a float64 array of one finite non-negative weight per
    row of the 2-D ``x``, not all zero."""
    if sample_weight is None:
        return None
    if x.ndim != 2:
        raise ValueError(
            f"sample_weight is supported for 2-D input (N, C) only, got input of shape {x.shape}"
        )
    accepted = f"sample_weight must be an array of {x.shape[0]} finite non-negative reals"
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{accepted}, got {type(sample_weight).__name__}") from None
    if w.shape != (x.shape[0],):
        raise ValueError(f"{accepted}, got shape {w.shape}")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and np.any(w > 0)):
        raise ValueError(f"{accepted}, not all zero")
    return np.ascontiguousarray(w)


def renorm_limits(renorm):
    """Batch renormalization's clipping limits: None, or (r_max >= 1, d_max >= 0) as a float64
    array."""
    if renorm is None:
        return None
    accepted = (
        "renorm must be None or a pair (r_max, d_max) of finite reals, r_max >= 1, d_max >= 0"
    )
    if isinstance(renorm, (str, bytes)):
        raise TypeError(f"{accepted}, got {renorm!r}")
    try:
        r_max, d_max = (float(v) for v in renorm)
    except (TypeError, ValueError):
        raise TypeError(f"{accepted}, got {renorm!r}") from None
    if any(isinstance(v, bool) for v in renorm):
        raise TypeError(f"{accepted}, got {renorm!r}")
    if not (np.isfinite(r_max) and np.isfinite(d_max) and r_max >= 1 and d_max >= 0):
        raise ValueError(f"{accepted}, got {renorm!r}")
    return np.array([r_max, d_max])
