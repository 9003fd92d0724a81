"""scikit-learn transformers: normalization statistics learned in full or streamed, and mergeable.

``BatchNormalizer`` learns per-feature statistics over samples (exactly, or as exponential running
averages) and keeps them in a form that ``partial_fit`` and ``merge`` combine with Chan's formula.
``LayerNormalizer``, ``GroupNormalizer`` and ``InstanceNormalizer`` normalize each row on its own and
learn nothing beyond the feature count.

Statistics come from ``fastnorm.functional.column_moments`` (float64 accumulation, results bitwise
independent of the thread count) and are combined with ``functional.merge_moments``; transforms
go through ``functional.columns_affine`` and the functional normalizations.
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from . import functional as F

__all__ = ["BatchNormalizer", "LayerNormalizer", "GroupNormalizer", "InstanceNormalizer"]

_FLOAT_DTYPES = (np.float64, np.float32)
_EPS64 = np.finfo(np.float64).eps


# ---------------------------------------------------------------------------------------------
# parameter checks (plain functions: no private scikit-learn API)


def _check_eps(eps, positive=False):
    bound = "> 0" if positive else ">= 0"
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a real number {bound}, got {eps!r}")
    if not (eps > 0 if positive else eps >= 0) or not np.isfinite(eps):
        raise ValueError(f"eps must be a finite real number {bound}, got {eps!r}")
    return float(eps)


def _check_momentum(momentum):
    if momentum is None:
        return None
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"momentum must be None or a float in (0, 1], got {momentum!r}")
    if not 0.0 < momentum <= 1.0:
        raise ValueError(f"momentum must be None or a float in (0, 1], got {momentum!r}")
    return float(momentum)


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _per_feature(value, name, n_features):
    """A scalar or one value per feature, as a float64 array of length n_features."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value):
        return np.full(n_features, float(value))
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


def _check_sample_weight(sample_weight, n_samples):
    """Sample weights as a C-contiguous float64 array: finite, non-negative, one per sample."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        w = np.full(n_samples, float(sample_weight))
    else:
        w = check_array(
            sample_weight, ensure_2d=False, dtype=np.float64, order="C", input_name="sample_weight",
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
    if not np.any(w > 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return np.ascontiguousarray(w, dtype=np.float64)


def _batch_moments(X, sample_weight):
    """(sum of weights, mean, M2) of each column of the C-contiguous float array X."""
    with F.streaming_kernels():
        return F.column_moments(X, sample_weight)


# ---------------------------------------------------------------------------------------------


class BatchNormalizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Normalize each feature with statistics learned over samples, in full or streamed.

    ``transform`` computes ``(X - mean_) / sqrt(var_ + eps) * scale + shift``.

    With ``momentum=None`` the statistics are exact: after any sequence of ``partial_fit`` calls
    (or ``merge`` of normalizers fitted on other data) ``mean_`` and ``var_`` are the pooled,
    sample-weighted mean and (biased) variance of everything seen, as with
    :class:`sklearn.preprocessing.StandardScaler`. With a float ``momentum`` they are exponential
    running averages with PyTorch's convention, ``new = (1 - momentum) * old + momentum * batch``,
    for drifting streams. Unlike PyTorch's ``running_var``, the batch variance averaged is the
    biased one, so that ``fit(X)`` gives the statistics of X in both modes: the first batch after a
    reset (and the first batch in which a feature has a value) initializes them.

    Parameters
    ----------
    momentum : float in (0, 1] or None, default=None
        None for exact pooled statistics; a float for exponential running averages.
    eps : float >= 0, default=1e-5
        Added to the variance before the square root.
    scale : float or array-like of shape (n_features,), default=1.0
        Multiplies the normalized values.
    shift : float or array-like of shape (n_features,), default=0.0
        Added after scaling.
    copy : bool, default=True
        If False, ``transform`` and ``inverse_transform`` write into X when it already is a
        C-contiguous, writeable float32/float64 ndarray.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,), float64
        Per-feature mean (NaN for a feature that has had no value yet).
    var_ : ndarray of shape (n_features,), float64
        Per-feature biased variance (NaN for a feature that has had no value yet).
    n_samples_seen_ : int or ndarray of shape (n_features,)
        Number of samples seen for each feature, NaN values excluded; with ``sample_weight``, the
        sum of the weights. A single int when every feature has the same unweighted count, as in
        ``StandardScaler``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features, when X had string column names.

    Notes
    -----
    NaN values are ignored when learning the statistics and kept by ``transform``. Infinite values
    are rejected by ``fit`` and ``partial_fit`` and pass through ``transform``.

    A feature whose variance is indistinguishable from zero (within the rounding error bound of
    the float64 computation, as ``StandardScaler`` decides) is treated as constant: ``transform``
    maps it to ``shift`` exactly and ``inverse_transform`` maps it back to ``mean_``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm import BatchNormalizer
    >>> X = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    >>> bn = BatchNormalizer().fit(X)
    >>> bn.mean_, bn.var_
    (array([2., 1.]), array([2.66666667, 0.        ]))
    >>> bn.transform(X).round(3)
    array([[-1.225,  0.   ],
           [ 0.   ,  0.   ],
           [ 1.225,  0.   ]])
    """

    def __init__(self, *, momentum=None, eps=1e-5, scale=1.0, shift=0.0, copy=True):
        self.momentum = momentum
        self.eps = eps
        self.scale = scale
        self.shift = shift
        self.copy = copy

    # -- state ---------------------------------------------------------------------------------

    def _set_state(self, sum_weights, mean, m2, var, weighted):
        """Publish a new state; every array is new, none is ever modified in place."""
        has_data = sum_weights > 0
        self._sum_weights = sum_weights
        self._m2 = m2
        self._weighted = weighted
        self.mean_ = np.where(has_data, mean, np.nan)
        self.var_ = np.where(has_data, var, np.nan)
        if weighted:
            seen = sum_weights.copy()
        else:
            seen = np.rint(sum_weights).astype(np.int64)
        if seen.size and np.all(seen == seen[0]):
            seen = seen[0].item()
        self.n_samples_seen_ = seen

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None):
        """Compute the statistics of X, forgetting any previous state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data; NaN values are ignored.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample.

        Returns
        -------
        self : object
            Fitted normalizer.
        """
        return self._update(X, sample_weight, reset=True)

    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the statistics with the batch X.

        With ``momentum=None`` the result is exactly that of ``fit`` on all batches seen so far
        (up to rounding); otherwise the running averages move towards the batch statistics.
        A call that raises leaves the fitted state exactly as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data; NaN values are ignored.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample.

        Returns
        -------
        self : object
            Fitted normalizer.
        """
        return self._update(X, sample_weight, reset=not hasattr(self, "_sum_weights"))

    def _update(self, X, sample_weight, reset):
        saved = dict(self.__dict__)
        try:
            self._update_unguarded(X, sample_weight, reset)
        except BaseException:
            # validate_data may have set n_features_in_ / feature_names_in_ before the error
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        return self

    def _update_unguarded(self, X, sample_weight, reset):
        momentum = _check_momentum(self.momentum)
        _check_eps(self.eps)
        if not reset and momentum is None and self._m2 is None:
            raise ValueError(
                "momentum was changed to None after partial_fit with a float momentum: exact "
                "statistics cannot be recovered from running averages; call fit first."
            )
        X = self._validate_batch(X, reset)
        n_features = X.shape[1]
        _per_feature(self.scale, "scale", n_features)
        _per_feature(self.shift, "shift", n_features)
        w = _check_sample_weight(sample_weight, X.shape[0])
        weight_b, mean_b, m2_b = _batch_moments(X, w)
        weighted = w is not None or (not reset and self._weighted)

        if reset:
            old_w = np.zeros(n_features)
        else:
            old_w = self._sum_weights
        if momentum is None:
            if reset:
                sum_w, mean, m2 = weight_b, mean_b, m2_b
            else:
                sum_w, mean, m2 = F.merge_moments(
                    self._sum_weights, self.mean_, self._m2, weight_b, mean_b, m2_b
                )
            var = np.divide(m2, sum_w, out=np.zeros_like(m2), where=sum_w > 0)
            self._set_state(sum_w, mean, m2, var, weighted)
            return

        # exponential running averages, per feature: a feature's first values initialize it,
        # a batch in which a feature has no value leaves it unchanged
        var_b = np.divide(m2_b, weight_b, out=np.zeros_like(m2_b), where=weight_b > 0)
        if reset:
            mean, var = mean_b, var_b
        else:
            old_mean = np.nan_to_num(self.mean_)
            old_var = np.nan_to_num(self.var_)
            new_b = np.nan_to_num(mean_b)
            ema_mean = (1.0 - momentum) * old_mean + momentum * new_b
            ema_var = (1.0 - momentum) * old_var + momentum * var_b
            mean = np.where(old_w > 0, ema_mean, mean_b)
            var = np.where(old_w > 0, ema_var, var_b)
            mean = np.where(weight_b > 0, mean, self.mean_)
            var = np.where(weight_b > 0, var, self.var_)
        self._set_state(old_w + weight_b, mean, None, var, weighted)

    def _validate_batch(self, X, reset):
        """validate_data for fit/partial_fit, with a fast path for the streaming case.

        Streaming calls partial_fit on many small batches, where validate_data's fixed cost (about
        0.1-0.5 ms here) is larger than the statistics themselves. A non-empty 2-D float32/float64
        ndarray with the fitted feature count, for a normalizer fitted without feature names, is
        exactly what validate_data would return unchanged (we do not ask it to check finiteness),
        so it is taken as is; everything else goes through validate_data."""
        if (
            not reset
            and type(X) is np.ndarray
            and X.ndim == 2
            and X.dtype in _FLOAT_DTYPES
            and X.shape[0] >= 1
            and X.shape[1] == self.n_features_in_
            and not hasattr(self, "feature_names_in_")
        ):
            return np.ascontiguousarray(X)
        return validate_data(
            self, X, reset=reset, dtype=_FLOAT_DTYPES, order="C", ensure_all_finite=False,
        )

    def merge(self, other):
        """Combine with the exact state of ``other``, fitted on other data, in place.

        Afterwards ``self`` holds the statistics it would have after seeing its own data and
        ``other``'s (Chan's formula, float64): statistics computed on parts of the data, in
        parallel or on other machines, are combined without revisiting the data. Both normalizers
        must use ``momentum=None`` and have seen the same features. ``other`` is not modified.

        Parameters
        ----------
        other : BatchNormalizer
            A fitted normalizer.

        Returns
        -------
        self : BatchNormalizer
        """
        if not isinstance(other, BatchNormalizer):
            raise TypeError(f"can only merge a BatchNormalizer, got {type(other).__name__}")
        check_is_fitted(self)
        check_is_fitted(other)
        if self._m2 is None or other._m2 is None:
            raise ValueError(
                "merge needs exact statistics: both normalizers must be fitted with momentum=None"
            )
        if other.n_features_in_ != self.n_features_in_:
            raise ValueError(
                f"cannot merge a normalizer fitted on {other.n_features_in_} features into one "
                f"fitted on {self.n_features_in_} features"
            )
        names, other_names = (getattr(e, "feature_names_in_", None) for e in (self, other))
        if (names is None) != (other_names is None) or (
            names is not None and not np.array_equal(names, other_names)
        ):
            raise ValueError("cannot merge normalizers fitted on different feature names")
        sum_w, mean, m2 = F.merge_moments(
            self._sum_weights, self.mean_, self._m2, other._sum_weights, other.mean_, other._m2
        )
        var = np.divide(m2, sum_w, out=np.zeros_like(m2), where=sum_w > 0)
        self._set_state(sum_w, mean, m2, var, self._weighted or other._weighted)
        return self

    # -- transforming ----------------------------------------------------------------------------

    def _factor(self):
        """Per-feature multiplier scale / sqrt(var_ + eps); 0 for constant features."""
        eps = _check_eps(self.eps)
        n = self.n_features_in_
        scale = _per_feature(self.scale, "scale", n)
        var = self.var_
        sum_w = self._sum_weights
        # StandardScaler's bound on the rounding error of the variance: below it, constant
        constant = var <= sum_w * _EPS64 * var + (sum_w * np.nan_to_num(self.mean_) * _EPS64) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = scale / np.sqrt(var + eps)
        factor = np.where(constant, 0.0, factor)
        factor = np.where(np.isfinite(factor) | np.isnan(var), factor, 0.0)  # eps=0, var=0
        return factor, _per_feature(self.shift, "shift", n)

    def _apply(self, X, copy, centre, factor, shift):
        X = np.asarray(X)
        in_place = not copy and X.flags.c_contiguous and X.flags.writeable
        X = np.ascontiguousarray(X)
        out = X if in_place else np.empty_like(X)
        F.columns_affine(X, centre, factor, shift, out)
        return out

    def transform(self, X, copy=None):
        """Normalize X with the learned statistics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data; NaN values stay NaN.
        copy : bool, default=None
            Overrides the ``copy`` parameter when given.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
            float32 for float32 input, float64 otherwise.
        """
        check_is_fitted(self)
        copy = self.copy if copy is None else copy
        X = validate_data(
            self, X, reset=False, dtype=_FLOAT_DTYPES, ensure_all_finite=False, copy=False,
        )
        factor, shift = self._factor()
        return self._apply(X, copy, self.mean_, factor, shift)

    def inverse_transform(self, X, copy=None):
        """Undo ``transform``: ``(X - shift) / factor + mean_``, constant features to ``mean_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Normalized data.
        copy : bool, default=None
            Overrides the ``copy`` parameter when given.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        copy = self.copy if copy is None else copy
        X = check_array(X, dtype=_FLOAT_DTYPES, ensure_all_finite=False, input_name="X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        factor, shift = self._factor()
        with np.errstate(divide="ignore"):
            inverse = np.where(factor != 0, 1.0 / np.where(factor != 0, factor, 1.0), 0.0)
        return self._apply(X, copy, shift, inverse, self.mean_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


# ---------------------------------------------------------------------------------------------


class _RowNormalizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Base of the per-row normalizers: nothing to learn beyond the feature count."""

    def _check_layout(self, n_features):
        """Validate the parameters against the feature count (raises ValueError/TypeError)."""

    def fit(self, X, y=None):
        """Check X and record its feature count.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        self : object
        """
        X = validate_data(self, X, dtype=_FLOAT_DTYPES)
        _check_eps(self.eps, positive=True)
        self._check_layout(X.shape[1])
        return self

    def transform(self, X):
        """Normalize each row of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
            float32 for float32 input, float64 otherwise.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOAT_DTYPES, order="C")
        eps = _check_eps(self.eps, positive=True)
        self._check_layout(X.shape[1])
        return self._normalize(X, eps)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.requires_fit = True
        return tags


class LayerNormalizer(_RowNormalizer):
    """Normalize each sample over its features: ``(x - mean(x)) / sqrt(var(x) + eps)``.

    Stateless apart from the feature count: the statistics belong to each row (layer
    normalization, as ``fastnorm.layer_norm`` over the last axis).

    Parameters
    ----------
    eps : float > 0, default=1e-5
        Added to each row's variance before the square root.

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    """

    def __init__(self, *, eps=1e-5):
        self.eps = eps

    def _normalize(self, X, eps):
        return F.layer_norm(X, (X.shape[1],), eps=eps)


class GroupNormalizer(_RowNormalizer):
    """Split each sample's features into ``n_groups`` contiguous groups; normalize each group.

    Group normalization on feature vectors: features ``[k * G, (k + 1) * G)`` with
    ``G = n_features // n_groups`` share one mean and variance per row.

    Parameters
    ----------
    n_groups : int
        Number of groups; must divide the number of features.
    eps : float > 0, default=1e-5

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    """

    def __init__(self, n_groups, *, eps=1e-5):
        self.n_groups = n_groups
        self.eps = eps

    def _check_layout(self, n_features):
        n_groups = _check_count(self.n_groups, "n_groups")
        if n_features % n_groups:
            raise ValueError(
                f"n_groups={n_groups} must divide the number of features, got "
                f"n_features = {n_features}"
            )

    def _normalize(self, X, eps):
        return F.group_norm(X, int(self.n_groups), eps=eps)


class InstanceNormalizer(_RowNormalizer):
    """Normalize each channel of each sample, for rows that hold flattened channel-major images.

    A row of ``n_channels * L`` features (e.g. an image ``(C, H, W)`` flattened, ``L = H * W``)
    is viewed as ``(n_channels, L)`` and each channel block is normalized on its own.

    Parameters
    ----------
    n_channels : int
        Number of channels; must divide the number of features, leaving at least 2 values per
        channel.
    eps : float > 0, default=1e-5

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    """

    def __init__(self, n_channels, *, eps=1e-5):
        self.n_channels = n_channels
        self.eps = eps

    def _check_layout(self, n_features):
        n_channels = _check_count(self.n_channels, "n_channels")
        if n_features % n_channels or n_features // n_channels < 2:
            raise ValueError(
                f"n_channels={n_channels} must divide the number of features leaving at least 2 "
                f"values per channel, got n_features = {n_features}"
            )

    def _normalize(self, X, eps):
        n, f = X.shape
        c = int(self.n_channels)
        return F.instance_norm(X.reshape(n, c, f // c), eps=eps).reshape(n, f)
