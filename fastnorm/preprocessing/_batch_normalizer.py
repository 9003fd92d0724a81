"""``BatchNormalizer``: per-feature statistics over samples, exact (mergeable) or as exponential
running averages; the array arithmetic lives in ``_stats``."""

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .. import _validation as rules
from .. import functional as F
from .._persistence import VersionedState
from ._stats import (
    batch_moments,
    biased_var,
    check_sample_weight,
    ema_step,
    exact_merge,
    per_feature,
    transform_factor,
)

FLOAT_DTYPES = (np.float64, np.float32)
X_ACCEPTED = "X must be a non-empty 2-D array of real numbers of shape (n_samples, n_features)"


class _StreamedState:
    """How ``BatchNormalizer`` keeps its fitted state: published as new arrays, restored when an
    update fails, and fed by batches validated with a fast path for streaming."""

    def _rows(self):
        """Rows with a positive weight seen so far (pickles of 0.1.0 lack it: their weights)."""
        rows = getattr(self, "_n_rows", None)
        return np.max(self._sum_weights, initial=0.0) if rows is None else rows

    def _set_state(self, sum_weights, mean, m2, var, weighted, rows):
        """Publish a new state; every array is new, none is ever modified in place."""
        self._n_rows = int(rows)
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

    def _update(self, X, sample_weight, reset, stream):
        saved = dict(self.__dict__)
        try:
            self._update_unguarded(X, sample_weight, reset, stream)
        except BaseException:
            # validate_data may have set n_features_in_ / feature_names_in_ before the error
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        return self

    def _check_mergeable(self, other):
        """``other`` holds exact statistics of the same features as ``self``."""
        if not isinstance(other, type(self)):
            raise TypeError(f"can only merge a {type(self).__name__}, got {type(other).__name__}")
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

    def _validate_batch(self, X, reset):
        """validate_data for fit/partial_fit, with a fast path for the streaming case.

        Streaming calls partial_fit on many small batches, where validate_data's fixed cost is
        larger than the statistics themselves. A non-empty 2-D float32/float64
        ndarray with the fitted feature count, for a normalizer fitted without feature names, is
        exactly what validate_data would return unchanged (we do not ask it to check finiteness),
        so it is taken as is; everything else goes through validate_data."""
        if (
            not reset
            and type(X) is np.ndarray
            and X.ndim == 2
            and X.dtype in FLOAT_DTYPES
            and X.shape[0] >= 1
            and X.shape[1] == self.n_features_in_
            and not hasattr(self, "feature_names_in_")
        ):
            return np.ascontiguousarray(X)
        with rules.input_errors(X_ACCEPTED):
            return validate_data(
                self,
                X,
                reset=reset,
                dtype=FLOAT_DTYPES,
                order="C",
                ensure_all_finite=False,
            )


class BatchNormalizer(
    OneToOneFeatureMixin, TransformerMixin, _StreamedState, VersionedState, BaseEstimator
):
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
    momentum : float in [0, 1] or None, default=None
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

    # set together by every fit; a pickle holding some of them must hold all (checked at load)
    _fitted_state = (
        "n_features_in_",
        "mean_",
        "var_",
        "n_samples_seen_",
        "_sum_weights",
        "_m2",
        "_weighted",
    )
    _parameter_constraints = {
        "momentum": rules.MOMENTUM_OR_NONE,
        "eps": rules.EPS,
        "copy": rules.Boolean(),
    }

    def __init__(self, *, momentum=None, eps=1e-5, scale=1.0, shift=0.0, copy=True):
        self.momentum = momentum
        self.eps = eps
        self.scale = scale
        self.shift = shift
        self.copy = copy

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
        return self._update(X, sample_weight, reset=True, stream=False)

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
            Non-negative weight of each sample. A batch whose weights are all zero
            changes nothing (a first one only fixes the feature count).

        Returns
        -------
        self : object
            Fitted normalizer.
        """
        return self._update(X, sample_weight, reset=not hasattr(self, "_sum_weights"), stream=True)

    def _update_unguarded(self, X, sample_weight, reset, stream):
        momentum = rules.check_params(self, self._parameter_constraints)["momentum"]
        if not reset and momentum is None and self._m2 is None:
            raise ValueError(
                "momentum was changed to None after partial_fit with a float momentum: exact "
                "statistics cannot be recovered from running averages; call fit first."
            )
        X = self._validate_batch(X, reset)
        n_features = X.shape[1]
        per_feature(self.scale, "scale", n_features)
        per_feature(self.shift, "shift", n_features)
        # a chunk of a stream may carry no weight at all: it leaves the statistics as they were
        # (a first such chunk fixes the features and leaves their statistics NaN, as fit does
        # for a feature that has no value); fit keeps scikit-learn's rule against zero weight
        w = check_sample_weight(sample_weight, X.shape[0], allow_all_zero=stream)
        weight_b, mean_b, m2_b = batch_moments(X, w)
        weighted = w is not None or (not reset and self._weighted)
        rows = (X.shape[0] if w is None else np.count_nonzero(w)) + (0 if reset else self._rows())
        if momentum is None:
            if reset:
                sum_w, mean, m2, var = weight_b, mean_b, m2_b, biased_var(m2_b, weight_b)
            else:
                sum_w, mean, m2, var = exact_merge(
                    self._sum_weights, self.mean_, self._m2, weight_b, mean_b, m2_b
                )
            self._set_state(sum_w, mean, m2, var, weighted, rows)
            return
        var_b = biased_var(m2_b, weight_b)
        if reset:
            old_w = np.zeros(n_features)
            mean, var = mean_b, var_b
        else:
            old_w = self._sum_weights
            mean, var = ema_step(old_w, self.mean_, self.var_, weight_b, mean_b, var_b, momentum)
        self._set_state(old_w + weight_b, mean, None, var, weighted, rows)

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
        self._check_mergeable(other)
        sum_w, mean, m2, var = exact_merge(
            self._sum_weights, self.mean_, self._m2, other._sum_weights, other.mean_, other._m2
        )
        rows = self._rows() + other._rows()
        self._set_state(sum_w, mean, m2, var, self._weighted or other._weighted, rows)
        return self

    # -- transforming ----------------------------------------------------------------------------

    def _factor(self):
        """Per-feature multiplier scale / sqrt(var_ + eps) (0 for constant features), and shift."""
        eps = rules.check(self.eps, "eps", rules.EPS)
        n = self.n_features_in_
        scale = per_feature(self.scale, "scale", n)
        # the rounding-error bound counts samples, not their weights (weight scale is irrelevant)
        count = self._rows() if self._weighted else self._sum_weights
        factor = transform_factor(self.var_, count, self.mean_, scale, eps)
        return factor, per_feature(self.shift, "shift", n)

    def _copy(self, copy):
        """The ``copy`` argument of transform, or the ``copy`` parameter when it is None."""
        if copy is None:
            return rules.check(self.copy, "copy", rules.Boolean())
        return rules.check(copy, "copy", rules.Boolean())

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
        copy = self._copy(copy)
        with rules.input_errors(X_ACCEPTED):
            X = validate_data(
                self,
                X,
                reset=False,
                dtype=FLOAT_DTYPES,
                ensure_all_finite=False,
                copy=False,
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
        copy = self._copy(copy)
        with rules.input_errors(X_ACCEPTED):
            X = check_array(X, dtype=FLOAT_DTYPES, ensure_all_finite=False, input_name="X")
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
