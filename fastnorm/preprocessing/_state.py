"""How ``BatchNormalizer`` keeps its fitted state: private moments from which the public
attributes are published, restored when an update fails, and exported or imported as plain
arrays (``get_state`` / ``set_state``) so that statistics cross machines without pickle."""

import contextlib

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import _validation as rules
from .._collections import is_dask_collection
from .._version import __version__
from ._stats import biased_var, check_sample_weight, exact_batch_moments, standard_scale

FLOAT_DTYPES = (np.float64, np.float32, np.float16)
X_ACCEPTED = "X must be a non-empty 2-D array of real numbers of shape (n_samples, n_features)"
SPARSE_CENTRE = (
    "Cannot center sparse matrices: pass `with_mean=False` instead. See docstring for "
    "motivation and alternatives."
)

# exact mode: (sum of weights, mean + mean_lo, m2 + m2_lo) is the state; momentum mode: sum of
# weights, mean and var (the lo parts and m2 are absent)
EXACT_ARRAYS = ("sum_weights", "mean", "mean_lo", "m2", "m2_lo")
RUNNING_ARRAYS = ("sum_weights", "mean", "var")


class _StreamedState:
    """The state half of ``BatchNormalizer``: see the module docstring."""

    def _set_state(self, moments, weighted, rows):
        """Publish a new state from ``moments``, a dict of ``EXACT_ARRAYS`` or ``RUNNING_ARRAYS``
        (new arrays, never modified in place), as StandardScaler publishes its attributes;
        ``rows`` counts the rows of positive weight seen."""
        self._moments = moments
        self._weighted = bool(weighted)
        self._n_rows = int(rows)
        sum_w = moments["sum_weights"]
        has_data = sum_w > 0
        var = moments["var"] if "var" in moments else biased_var(moments["m2"], sum_w)
        mean = np.where(has_data, moments["mean"], np.nan)
        var = np.where(has_data, var, np.nan)
        seen = sum_w.copy() if weighted else np.rint(sum_w).astype(np.int64)
        if seen.size and np.all(seen == seen[0]):
            seen = seen[0].item()
        self.n_samples_seen_ = seen
        self.mean_ = mean if (self.with_mean or self.with_std) else None
        self.var_ = var if self.with_std else None
        eps = rules.check(self.eps, "eps", rules.EPS)
        # StandardScaler's constant-feature bound counts the sum of the weights: multiplied by
        # 1e14 it declares every feature constant. The rounding error grows with rows, not weight.
        count = self._n_rows if weighted else sum_w
        self.scale_ = standard_scale(var, mean, count, eps) if self.with_std else None

    @contextlib.contextmanager
    def _all_or_nothing(self):
        """On any error, put every attribute back as it was (validate_data may have set
        n_features_in_ / feature_names_in_ before the error)."""
        saved = dict(self.__dict__)
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _update(self, X, sample_weight, reset, stream):
        with self._all_or_nothing():
            if is_dask_collection(X) or is_dask_collection(sample_weight):
                from ._dask import update  # Dask is optional: imported when given

                update(self, X, sample_weight, reset, stream, X_ACCEPTED)
            else:
                self._update_unguarded(X, sample_weight, reset, stream)
        return self

    def _state_as(self, names):
        """The state's arrays of ``names``; exact statistics seen as running averages (they start
        them when a float momentum follows ``momentum=None``)."""
        if names == RUNNING_ARRAYS and self._is_exact():
            sum_w, mean, mean_lo, m2, m2_lo = self._exact_moments()
            return sum_w, mean + mean_lo, biased_var(m2 + m2_lo, sum_w)
        return [self._moments[k] for k in names]

    def _is_exact(self):
        return "m2" in self._moments

    def _checked_momentum(self, reset):
        """The checked parameters' ``momentum``, refused when exact statistics cannot go on."""
        momentum = rules.check_params(self, self._parameter_constraints)["momentum"]
        if not reset and momentum is None and not self._is_exact():
            raise ValueError(
                "momentum was changed to None after partial_fit with a float momentum: exact "
                "statistics cannot be recovered from running averages; call fit first."
            )
        return momentum

    def _check_mergeable(self, other):
        """``other`` holds exact statistics of the same features as ``self``."""
        if not isinstance(other, type(self)):
            raise TypeError(f"can only merge a {type(self).__name__}, got {type(other).__name__}")
        check_is_fitted(self)
        check_is_fitted(other)
        if not (self._is_exact() and other._is_exact()):
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
        larger than the statistics themselves. A non-empty 2-D float32/float64 ndarray with the
        fitted feature count, for a normalizer fitted without feature names, is exactly what
        validate_data would return unchanged (we do not ask it to check finiteness), so it is
        taken as is, and so is a CSR or CSC matrix of such floats; everything else goes through
        validate_data."""
        if (
            not reset
            and (type(X) is np.ndarray or (sp.issparse(X) and X.format in ("csr", "csc")))
            and X.ndim == 2
            and X.dtype in FLOAT_DTYPES[:2]
            and X.shape[0] >= 1
            and X.shape[1] == self.n_features_in_
            and not hasattr(self, "feature_names_in_")
        ):
            if sp.issparse(X):
                if self.with_mean:
                    raise ValueError(SPARSE_CENTRE)
                return X
            return np.ascontiguousarray(X)
        with rules.input_errors(X_ACCEPTED):
            X = validate_data(
                self,
                X,
                reset=reset,
                accept_sparse=("csr", "csc"),
                dtype=FLOAT_DTYPES,
                order="C",
                ensure_all_finite=False,
            )
        if sp.issparse(X) and self.with_mean:
            raise ValueError(SPARSE_CENTRE)
        return X

    def recompute_statistics(self, X, sample_weight=None):
        """Replace the fitted statistics by the exact statistics of ``X``, keeping the mode.

        With a float ``momentum`` the running averages become the exact (weighted) mean and
        biased variance of X, from which later ``partial_fit`` calls keep averaging: the
        transformers' counterpart of PreciseBN (:func:`fastnorm.nn.precise_batchnorm_statistics`).
        With ``momentum=None`` this is ``fit(X)`` restricted to the fitted features.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data with the fitted features; NaN values are ignored.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        check_is_fitted(self)
        with self._all_or_nothing():
            X = self._validate_batch(X, reset=False)
            w = check_sample_weight(sample_weight, X.shape[0])
            batch = exact_batch_moments(X, w)
            rows = X.shape[0] if w is None else np.count_nonzero(w)
            if self._is_exact():
                moments = dict(zip(EXACT_ARRAYS, batch))
            else:
                sum_w, mean, mean_lo, m2, _ = batch
                var = biased_var(m2, sum_w)
                moments = {"sum_weights": sum_w, "mean": mean + mean_lo, "var": var}
            self._set_state(moments, w is not None, rows)
        return self

    # -- plain-array state ------------------------------------------------------------------------

    def get_state(self):
        """The fitted state as a dict of NumPy arrays and Python scalars, without pickle.

        It holds what ``merge`` and ``partial_fit`` need (exact moments, or running averages with
        ``momentum``), not the data. Save it with ``np.savez`` and load it with
        ``np.load(..., allow_pickle=False)``; :meth:`set_state` rebuilds a normalizer from it.

        Returns
        -------
        state : dict
        """
        check_is_fitted(self)
        state = {f"moments_{k}": v.copy() for k, v in self._moments.items()}
        state.update(
            fastnorm_version=__version__,
            n_features_in=self.n_features_in_,
            weighted=self._weighted,
            n_rows=self._n_rows,
        )
        if hasattr(self, "feature_names_in_"):
            state["feature_names_in"] = self.feature_names_in_.astype(str)
        return state

    def set_state(self, state):
        """Load a state from :meth:`get_state` (a dict, or an ``np.load`` result) in place.

        Parameters define the published attributes (``scale_`` uses this normalizer's ``eps``).

        Parameters
        ----------
        state : mapping
            As returned by :meth:`get_state`.

        Returns
        -------
        self : BatchNormalizer
        """
        try:
            keys = set(state.keys())
            n = int(state["n_features_in"])
            names = ("moments_" + k for k in EXACT_ARRAYS)
            kind = EXACT_ARRAYS if all(k in keys for k in names) else RUNNING_ARRAYS
            moments = {k: np.array(state["moments_" + k], dtype=np.float64) for k in kind}
            weighted = bool(state["weighted"])
            rows = int(state["n_rows"])
            feature_names = (
                np.asarray(state["feature_names_in"], dtype=str).astype(object)
                if "feature_names_in" in keys
                else None
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"state must be a dict made by get_state(): {error!r}") from None
        if n < 1 or any(v.shape != (n,) for v in moments.values()):
            raise ValueError(f"state must hold arrays of shape (n_features_in,) = ({n},)")
        if feature_names is not None and feature_names.shape != (n,):
            raise ValueError(f"state's feature_names_in must have shape ({n},)")
        if not np.all(moments["sum_weights"] >= 0) or rows < 0:
            raise ValueError("state's sum_weights and n_rows must be non-negative")
        with self._all_or_nothing():
            rules.check_params(self, self._parameter_constraints)
            for attribute in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(attribute, None)
            self.n_features_in_ = n
            if feature_names is not None:
                self.feature_names_in_ = feature_names
            self._set_state(moments, weighted, rows)
        return self
