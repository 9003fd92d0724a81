"""Pure helpers of the transformers, functions of arrays (in the spirit of scikit-learn's
``_incremental_mean_and_var``): batch moments, the exact merge, the exponential-average step,
StandardScaler's ``scale_``, and the checks of per-feature and per-sample arrays."""

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array

from .. import _validation as rules
from .. import functional as F
from .._collections import is_dask_collection

EPS64 = np.finfo(np.float64).eps
ILL_CONDITIONED = 1e-3  # a batch's standard deviation below this fraction of its |mean|


def batch_moments(X, sample_weight):
    """(sum of weights, mean, M2) of each column of X: a C-contiguous float array or a CSR/CSC
    matrix (float16 is summed as float32, which holds it exactly)."""
    if sp.issparse(X):
        return F.sparse_column_moments(X, sample_weight)
    if X.dtype == np.float16:
        X = X.astype(np.float32)
    with F.streaming_kernels():
        return F.column_moments(X, sample_weight)


def exact_batch_moments(X, sample_weight):
    """The batch's exact moments ``(sum_w, mean, mean_lo, m2, m2_lo)`` (see ``exact_merge``)."""
    sum_w, mean, m2 = batch_moments(X, sample_weight)
    mean_lo = np.zeros_like(mean)
    if not sp.issparse(X):
        mean, mean_lo = _compensated_mean(X, sample_weight, sum_w, mean, m2)
    return sum_w, mean, mean_lo, m2, np.zeros_like(m2)


def _compensated_mean(X, sample_weight, sum_w, mean, m2):
    """The mean as hi + lo. Merged with other batches, the rounding of a float64 mean enters
    their difference and costs the variance about eps * |mean| / std of its value (1e-10 for
    timestamps in seconds with a spread of 10 s): where the spread is below 1e-3 of the mean,
    the low part is the mean of the residuals X - mean, from the same kernel."""
    lo = np.zeros_like(mean)
    with np.errstate(invalid="ignore", over="ignore"):
        ill = np.flatnonzero((sum_w > 0) & (m2 < (ILL_CONDITIONED * mean) ** 2 * sum_w))
    if ill.size == 0:
        return mean, lo
    residuals = np.ascontiguousarray(X[:, ill] - mean[ill])  # float64, NaN kept
    residual_mean = batch_moments(residuals, sample_weight)[1]
    hi = mean.copy()
    hi[ill] = mean[ill] + residual_mean
    lo[ill] = residual_mean - (hi[ill] - mean[ill])  # normalized: at most half an ulp of hi
    return hi, lo


def biased_var(m2, sum_w):
    """M2 / sum of weights, 0 where a feature has no weight."""
    return np.divide(m2, sum_w, out=np.zeros_like(m2), where=sum_w > 0)


def exact_merge(state, batch):
    """Exact pooled moments of two sets, each ``(sum_w, mean, mean_lo, m2, m2_lo)`` (the mean is
    ``mean + mean_lo``, M2 ``m2 + m2_lo``): Chan's formula in double-double, so that streaming
    one row at a time loses nothing to rounding."""
    return F.merge_compensated_moments(state, batch)


def fold_batch(old, batch, momentum):
    """The state after a batch of exact moments ``(sum_w, mean, mean_lo, m2, m2_lo)``: with
    ``momentum`` None the exact moments of both (``old`` the same five arrays), otherwise the
    running ``(sum_w, mean, var)`` moved towards the batch's (``old`` those three). ``old`` None:
    the batch alone. New arrays; ``old`` is not modified."""
    if momentum is None:
        return batch if old is None else exact_merge(old, batch)
    weight_b, mean_b, mean_lo_b, m2_b, m2_lo_b = batch
    mean_b, var_b = mean_b + mean_lo_b, biased_var(m2_b + m2_lo_b, weight_b)
    if old is None:
        return weight_b, mean_b, var_b
    old_w, old_mean, old_var = old
    mean, var = ema_step(old_w, old_mean, old_var, weight_b, mean_b, var_b, momentum)
    return old_w + weight_b, mean, var


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


def is_constant(var, mean, n_samples_seen):
    """StandardScaler's rule: a variance within the rounding-error bound of its float64
    computation is zero (an overflowing bound, at |mean| near 1e300, means no finite variance is
    distinguishable)."""
    with np.errstate(over="ignore", invalid="ignore"):
        bound = n_samples_seen * EPS64 * var + (n_samples_seen * np.nan_to_num(mean) * EPS64) ** 2
        return var <= bound


def standard_scale(var, mean, n_samples_seen, eps):
    """``scale_``: sqrt(var + eps), and 1 for constant features (StandardScaler's ``scale_`` when
    eps is 0); NaN for a feature without data."""
    return np.where(is_constant(var, mean, n_samples_seen), 1.0, np.sqrt(var + eps))


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


def columns_affine(X, copy, centre, factor, shift):
    """``(X - centre) * factor + shift`` per column of X (dense or CSR/CSC, where centre and
    shift are 0), in place when ``copy`` is False and X allows it; float16 computed in float32.
    A Dask array gives a lazy Dask array (``copy`` does not apply)."""
    if is_dask_collection(X):
        from ._dask import lazy_affine

        return lazy_affine(X, centre, factor, shift)
    if sp.issparse(X):
        out = X.copy() if copy else X
        F.sparse_scale_columns(X, factor, out.data)
        return out
    X = np.asarray(X)
    in_place = not copy and X.flags.c_contiguous and X.flags.writeable
    work = np.ascontiguousarray(X, dtype=np.float32 if X.dtype == np.float16 else None)
    out = work if (in_place or work is not X) else np.empty_like(work)
    F.columns_affine(work, centre, factor, shift, out)
    if X.dtype == np.float16:
        if in_place:
            X[...] = out
            return X
        return out.astype(np.float16)
    return out
