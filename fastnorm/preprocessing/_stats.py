"""Pure helpers of the transformers, functions of arrays (in the spirit of scikit-learn's
``_incremental_mean_and_var``): batch moments, the exact merge, the exponential-average step,
the transform factor, and the checks of per-feature and per-sample arrays."""

import numbers

import numpy as np
from sklearn.utils.validation import check_array

from .. import _validation as rules
from .. import functional as F

EPS64 = np.finfo(np.float64).eps


def batch_moments(X, sample_weight):
    """(sum of weights, mean, M2) of each column of the C-contiguous float array X."""
    with F.streaming_kernels():
        return F.column_moments(X, sample_weight)


def biased_var(m2, sum_w):
    """M2 / sum of weights, 0 where a feature has no weight."""
    return np.divide(m2, sum_w, out=np.zeros_like(m2), where=sum_w > 0)


def exact_merge(sum_w, mean, m2, sum_w_b, mean_b, m2_b):
    """Exact pooled statistics of two sets (Chan's formula): (sum_w, mean, M2, biased var)."""
    sum_w, mean, m2 = F.merge_moments(sum_w, mean, m2, sum_w_b, mean_b, m2_b)
    return sum_w, mean, m2, biased_var(m2, sum_w)


def ema_step(old_w, old_mean, old_var, weight_b, mean_b, var_b, momentum):
    """Exponential running averages moved towards a batch, per feature; returns (mean, var).

    ``new = (1 - momentum) * old + momentum * batch``; a feature's first values initialize it
    (``old_w == 0``), and a batch in which a feature has no value leaves it unchanged."""
    mean = np.nan_to_num(old_mean)  # new arrays, updated in place below
    var = np.nan_to_num(old_var)
    F.update_running_stats(mean, var, np.nan_to_num(mean_b), var_b, momentum)
    mean = np.where(old_w > 0, mean, mean_b)
    var = np.where(old_w > 0, var, var_b)
    mean = np.where(weight_b > 0, mean, old_mean)
    var = np.where(weight_b > 0, var, old_var)
    return mean, var


def transform_factor(var, sum_w, mean, scale, eps):
    """Per-feature multiplier scale / sqrt(var + eps); 0 for constant features."""
    # StandardScaler's bound on the rounding error of the variance: below it, constant
    # (an overflowing bound, at |mean| near 1e300, means no finite variance is distinguishable)
    with np.errstate(over="ignore"):
        constant = var <= sum_w * EPS64 * var + (sum_w * np.nan_to_num(mean) * EPS64) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = scale / np.sqrt(var + eps)
    factor = np.where(constant, 0.0, factor)
    return np.where(np.isfinite(factor) | np.isnan(var), factor, 0.0)  # eps=0, var=0


def per_feature(value, name, n_features):
    """A scalar or one value per feature, as a float64 array of length n_features."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value):
        return np.full(n_features, float(value))
    if value is None or isinstance(value, (str, bytes, bool)):
        raise TypeError(
            f"{name} must be a real number or an array of one per feature, got {value!r}"
        )
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a real number or an array of one per feature, got {value!r}"
        ) from None
    if arr.ndim == 0:
        arr = np.full(n_features, arr)
    elif arr.shape != (n_features,):
        raise ValueError(
            f"{name} must be a scalar or have shape (n_features,) = ({n_features},), "
            f"got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return np.ascontiguousarray(arr)


def check_sample_weight(sample_weight, n_samples, allow_all_zero=False):
    """Sample weights as a C-contiguous float64 array: finite, non-negative, one per sample.

    All-zero weights are rejected (as scikit-learn's ``fit`` does) unless ``allow_all_zero``:
    in a stream, a chunk without weight is a valid chunk that changes nothing."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        w = np.full(n_samples, float(sample_weight))
    else:
        with rules.input_errors(
            "sample_weight must be an array of finite non-negative reals, one per sample",
            names=("sample_weight",),
        ):
            w = check_array(
                sample_weight,
                ensure_2d=False,
                dtype=np.float64,
                order="C",
                input_name="sample_weight",
                ensure_min_samples=0,
            )
        if w.ndim != 1:
            raise ValueError(f"sample_weight must be 1-D, got shape {w.shape}")
        if w.shape[0] != n_samples:
            raise ValueError(
                f"sample_weight.shape == {w.shape}, expected ({n_samples},): one weight per sample"
            )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    if not allow_all_zero and not np.any(w > 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return np.ascontiguousarray(w, dtype=np.float64)
