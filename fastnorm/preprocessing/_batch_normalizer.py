"""``BatchNormalizer``: per-feature statistics over samples, exact (mergeable) or as exponential
running averages; the array arithmetic lives in ``_stats``."""

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .. import _validation as rules
from .._collections import is_dask_collection
from .._persistence import VersionedState
from ._state import (
    EXACT_ARRAYS,
    FLOAT_DTYPES,
    RUNNING_ARRAYS,
    SPARSE_CENTRE,
    X_ACCEPTED,
    _StreamedState,
)
from ._stats import (
    check_sample_weight,
    columns_affine,
    exact_batch_moments,
    exact_merge,
    fold_batch,
    per_feature,
)


class BatchNormalizer(
    OneToOneFeatureMixin, TransformerMixin, _StreamedState, VersionedState, BaseEstimator
):
    """Standardize features with statistics learned over samples, in full, streamed or merged.

    A drop-in for :class:`sklearn.preprocessing.StandardScaler`: same parameters, attributes and,
    with the defaults, the same results, ``transform`` computing ``(X - mean_) / scale_``. It adds
    batch normalization's knobs: ``eps``, a ``scale`` and ``shift`` applied after standardizing,
    and ``momentum`` for exponential running averages. Its statistics are exact to the last bit:
    ``var_`` of a constant feature is 0 and its ``mean_`` the constant; ``partial_fit`` one row at
    a time loses nothing to rounding (a compensated merge); ``merge`` combines normalizers fitted
    on other data, and ``get_state`` / ``set_state`` move that state without pickle.

    With ``momentum=None`` (exact statistics), after any sequence of ``partial_fit`` calls (or
    ``merge``) ``mean_`` and ``var_`` are the pooled, sample-weighted mean and biased variance of
    everything seen. With a float ``momentum`` they are exponential running averages with
    PyTorch's convention, ``new = (1 - momentum) * old + momentum * batch``, for drifting streams;
    unlike PyTorch's ``running_var``, the batch variance averaged is the biased one, so that
    ``fit(X)`` gives the statistics of X in both modes.

    Differences from batch normalization as in ``fastnorm.nn.BatchNorm`` (and PyTorch): ``eps``
    defaults to 0 here, because it is added to the variance in the data's own units (``1e-5``
    would change a feature of variance 1e-5 by a factor of sqrt(2)); and a constant feature gets
    ``scale_ = 1`` (as in StandardScaler) rather than a division by ``sqrt(eps)``. One difference
    from StandardScaler: with ``sample_weight``, which features are constant is decided by a
    rounding-error bound that counts rows, not the sum of the weights (StandardScaler's bound
    declares every feature constant when all weights are multiplied by 1e14).

    Parameters
    ----------
    with_mean : bool, default=True
        Centre the data before scaling. Sparse input needs ``with_mean=False``.
    with_std : bool, default=True
        Scale the data to unit variance (then multiply by ``scale``).
    copy : bool, default=True
        If False, ``transform`` and ``inverse_transform`` work in place when X already is a
        C-contiguous, writeable float ndarray (or a sparse matrix of floats).
    momentum : float in [0, 1] or None, default=None
        None for exact pooled statistics; a float for exponential running averages.
    eps : float >= 0, default=0.0
        Added to ``var_`` when ``scale_`` is computed.
    scale : float or array-like of shape (n_features,), default=1.0
        Multiplies the standardized values.
    shift : float or array-like of shape (n_features,), default=0.0
        Added after scaling (must be 0 for sparse input, which would become dense).

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,) or None
        Per-feature mean (NaN for a feature that has had no value yet); None when both
        ``with_mean`` and ``with_std`` are False.
    var_ : ndarray of shape (n_features,) or None
        Per-feature biased variance; None when ``with_std=False``.
    scale_ : ndarray of shape (n_features,) or None
        ``sqrt(var_ + eps)``, 1 for constant features (a variance within the rounding-error bound
        of its float64 computation, as StandardScaler decides); None when ``with_std=False``.
    n_samples_seen_ : int or ndarray of shape (n_features,)
        Number of samples seen for each feature, NaN values excluded; with ``sample_weight``, the
        sum of the weights. A single number when it is the same for every feature.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when X had string column names.

    Notes
    -----
    NaN values are ignored when learning the statistics and kept by ``transform``. Infinite values
    are rejected by ``fit`` and ``partial_fit`` and pass through ``transform``. float16 input is
    kept as float16 (statistics in float64), float32 as float32, anything else becomes float64.

    Dask arrays and DataFrames (``pip install "fastnorm[dask]"``): ``fit`` and ``partial_fit``
    compute each chunk's statistics in the workers and merge them exactly, bringing back only the
    state; ``transform`` and ``inverse_transform`` return lazy Dask arrays (see the Dask page of
    the documentation).

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm import BatchNormalizer
    >>> X = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    >>> bn = BatchNormalizer().fit(X)
    >>> bn.mean_, bn.var_, bn.scale_
    (array([2., 1.]), array([2.66666667, 0.        ]), array([1.63299316, 1.        ]))
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
        "scale_",
        "n_samples_seen_",
        "_moments",
        "_weighted",
        "_n_rows",
    )
    _parameter_constraints = {
        "with_mean": rules.Boolean(),
        "with_std": rules.Boolean(),
        "copy": rules.Boolean(),
        "momentum": rules.MOMENTUM_OR_NONE,
        "eps": rules.EPS,
    }

    def __init__(
        self,
        *,
        with_mean=True,
        with_std=True,
        copy=True,
        momentum=None,
        eps=0.0,
        scale=1.0,
        shift=0.0,
    ):
        self.with_mean = with_mean
        self.with_std = with_std
        self.copy = copy
        self.momentum = momentum
        self.eps = eps
        self.scale = scale
        self.shift = shift

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None):
        """Compute the statistics of X, forgetting any previous state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data; NaN values are ignored. Sparse (CSR, CSC) needs ``with_mean=False``.
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

        With ``momentum=None`` the result is that of ``fit`` on all batches seen so far;
        otherwise the running averages move towards the batch statistics. A call that raises
        leaves the fitted state exactly as it was.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
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
        return self._update(X, sample_weight, reset=not hasattr(self, "_moments"), stream=True)

    def _update_unguarded(self, X, sample_weight, reset, stream):
        momentum = self._checked_momentum(reset)
        X = self._validate_batch(X, reset)
        n_features = X.shape[1]
        per_feature(self.scale, "scale", n_features)
        per_feature(self.shift, "shift", n_features)
        # a chunk of a stream may carry no weight at all: it leaves the statistics as they were
        # (a first such chunk fixes the features and leaves their statistics NaN, as fit does
        # for a feature that has no value); fit keeps scikit-learn's rule against zero weight
        w = check_sample_weight(sample_weight, X.shape[0], allow_all_zero=stream)
        rows = X.shape[0] if w is None else np.count_nonzero(w)
        self._add_batch(exact_batch_moments(X, w), rows, w is not None, reset, momentum)

    def _add_batch(self, batch, rows, weighted, reset, momentum):
        """Fold a batch's exact moments ``(sum_w, mean, mean_lo, m2, m2_lo)`` of ``rows`` rows of
        positive weight into the state (they become it when ``reset``): the one update of
        in-memory and Dask input."""
        names = EXACT_ARRAYS if momentum is None else RUNNING_ARRAYS
        old = None if reset else self._state_as(names)
        state = fold_batch(old, batch, momentum)
        weighted = weighted or (not reset and self._weighted)
        self._set_state(dict(zip(names, state)), weighted, rows + (0 if reset else self._n_rows))

    def _exact_moments(self):
        m = self._moments
        return m["sum_weights"], m["mean"], m["mean_lo"], m["m2"], m["m2_lo"]

    def merge(self, other):
        """Combine with the exact state of ``other``, fitted on other data, in place.

        Afterwards ``self`` holds the statistics it would have after seeing its own data and
        ``other``'s (Chan's formula, compensated): statistics computed on parts of the data, in
        parallel or on other machines (see ``get_state``), are combined without revisiting the
        data. Both normalizers must use ``momentum=None`` and have seen the same features.
        ``other`` is not modified.

        Parameters
        ----------
        other : BatchNormalizer
            A fitted normalizer.

        Returns
        -------
        self : BatchNormalizer
        """
        self._check_mergeable(other)
        state = exact_merge(self._exact_moments(), other._exact_moments())
        weighted = self._weighted or other._weighted
        self._set_state(dict(zip(EXACT_ARRAYS, state)), weighted, self._n_rows + other._n_rows)
        return self

    # -- transforming ----------------------------------------------------------------------------

    def _factor(self, X):
        """Per-feature (centre, multiplier, shift) of transform: (X - centre) * factor + shift."""
        n = self.n_features_in_
        with_mean = rules.check(self.with_mean, "with_mean", rules.Boolean())
        with_std = rules.check(self.with_std, "with_std", rules.Boolean())
        if sp.issparse(X) and with_mean:
            raise ValueError(SPARSE_CENTRE)
        for flag, name, attribute in (
            (with_mean, "with_mean", self.mean_),
            (with_std, "with_std", self.scale_),
        ):
            if flag and attribute is None:
                raise ValueError(f"{name}=True needs a normalizer fitted with {name}=True; refit")
        shift = per_feature(self.shift, "shift", n)
        if sp.issparse(X) and np.any(shift != 0):
            raise ValueError("shift must be 0 for sparse X, which a shift would make dense")
        factor = per_feature(self.scale, "scale", n)
        if with_std:
            factor = factor / self.scale_
        return (self.mean_ if with_mean else np.zeros(n)), factor, shift

    def _check_input(self, X, reset_names):
        if is_dask_collection(X):
            from ._dask import as_dask_array

            return as_dask_array(self, X, False, X_ACCEPTED, check_names=reset_names)
        with rules.input_errors(X_ACCEPTED):
            if reset_names:
                X = validate_data(
                    self,
                    X,
                    reset=False,
                    accept_sparse=("csr", "csc"),
                    dtype=FLOAT_DTYPES,
                    ensure_all_finite=False,
                    copy=False,
                )
            else:
                X = check_array(
                    X,
                    accept_sparse=("csr", "csc"),
                    dtype=FLOAT_DTYPES,
                    ensure_all_finite=False,
                    input_name="X",
                )
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X

    def transform(self, X, copy=None):
        """Standardize X with the learned statistics.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data; NaN values stay NaN.
        copy : bool, default=None
            Overrides the ``copy`` parameter when given.

        Returns
        -------
        X_new : {ndarray, sparse matrix} of shape (n_samples, n_features)
            Same dtype as X for float16/32/64 input (float64 otherwise), same sparse format.
        """
        check_is_fitted(self)
        copy = rules.check(self.copy if copy is None else copy, "copy", rules.Boolean())
        X = self._check_input(X, reset_names=True)
        return columns_affine(X, copy, *self._factor(X))

    def inverse_transform(self, X, copy=None):
        """Undo ``transform``: ``(X - shift) / factor + mean_`` (``mean_`` where ``scale`` is 0).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Standardized data.
        copy : bool, default=None
            Overrides the ``copy`` parameter when given.

        Returns
        -------
        X_original : {ndarray, sparse matrix} of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        copy = rules.check(self.copy if copy is None else copy, "copy", rules.Boolean())
        X = self._check_input(X, reset_names=False)
        centre, factor, shift = self._factor(X)
        with np.errstate(divide="ignore"):
            inverse = np.where(factor != 0, 1.0 / np.where(factor != 0, factor, 1.0), 0.0)
        return columns_affine(X, copy, shift, inverse, centre)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = not self.with_mean
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
