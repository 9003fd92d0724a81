"""Per-row normalizers: each row normalized on its own (layer, group, instance normalization of
feature vectors); nothing is learned beyond the feature count."""

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import _validation as rules
from .. import functional as F
from .._collections import is_dask_collection
from .._persistence import VersionedState

FLOAT_DTYPES = (np.float64, np.float32)
X_ACCEPTED = "X must be a non-empty 2-D array of finite real numbers (n_samples, n_features)"


class _RowNormalizer(OneToOneFeatureMixin, TransformerMixin, VersionedState, BaseEstimator):
    """Base of the per-row normalizers: nothing to learn beyond the feature count."""

    _fitted_state = ("n_features_in_",)

    _parameter_constraints = {"eps": rules.EPS}

    def _check_params(self):
        """The parameters checked against ``_parameter_constraints``, normalized."""
        return rules.check_params(self, self._parameter_constraints)

    def _check_layout(self, params, n_features):
        """Validate the parameters against the feature count (raises ValueError)."""

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
        if is_dask_collection(X):  # only the shape is needed: nothing is computed
            from ._dask import as_dask_array

            X = as_dask_array(self, X, True, X_ACCEPTED)
        else:
            with rules.input_errors(X_ACCEPTED):
                X = validate_data(self, X, dtype=FLOAT_DTYPES)
        self._check_layout(self._check_params(), X.shape[1])
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
        if is_dask_collection(X):
            from ._dask import as_dask_array, lazy_rows

            X = as_dask_array(self, X, False, X_ACCEPTED)
            params = self._check_params()
            self._check_layout(params, X.shape[1])
            return lazy_rows(self, X, params, X_ACCEPTED)
        with rules.input_errors(X_ACCEPTED):
            X = validate_data(self, X, reset=False, dtype=FLOAT_DTYPES, order="C")
        params = self._check_params()
        self._check_layout(params, X.shape[1])
        return self._normalize(X, params)

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
    eps : float >= 0, default=1e-5
        Added to each row's variance before the square root, as in ``fastnorm.layer_norm`` and
        ``torch.nn.LayerNorm``. The rows' variance is in the data's own units: for data far
        from unit scale, standardize first (``BatchNormalizer``) or choose ``eps`` to match.

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm import LayerNormalizer
    >>> X = np.array([[1.0, 2.0, 3.0], [10.0, 10.0, 40.0]])
    >>> LayerNormalizer(eps=0.0).fit_transform(X).round(4)
    array([[-1.2247,  0.    ,  1.2247],
           [-0.7071, -0.7071,  1.4142]])
    """

    def __init__(self, *, eps=1e-5):
        self.eps = eps

    def _normalize(self, X, params):
        return F.layer_norm(X, (X.shape[1],), eps=params["eps"])


class GroupNormalizer(_RowNormalizer):
    """Split each sample's features into ``n_groups`` contiguous groups; normalize each group.

    Group normalization on feature vectors: features ``[k * G, (k + 1) * G)`` with
    ``G = n_features // n_groups`` share one mean and variance per row.

    Parameters
    ----------
    n_groups : int, default=1
        Number of groups; must divide the number of features. The default, one group, is layer
        normalization (as ``torch.nn.GroupNorm(1, C)``).
    eps : float >= 0, default=1e-5
        Added to each group's variance before the square root, as in the functional API.

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm import GroupNormalizer
    >>> X = np.array([[1.0, 3.0, 10.0, 30.0]])
    >>> GroupNormalizer(n_groups=2, eps=0.0).fit_transform(X)  # features 0-1 and 2-3
    array([[-1.,  1., -1.,  1.]])
    """

    _parameter_constraints = {"n_groups": rules.POSITIVE_INT, "eps": rules.EPS}

    def __init__(self, n_groups=1, *, eps=1e-5):
        self.n_groups = n_groups
        self.eps = eps

    def _check_layout(self, params, n_features):
        n_groups = params["n_groups"]
        if n_features % n_groups:
            raise ValueError(
                f"n_groups={n_groups} must divide the number of features, got "
                f"n_features = {n_features}"
            )

    def _normalize(self, X, params):
        return F.group_norm(X, params["n_groups"], eps=params["eps"])


class InstanceNormalizer(_RowNormalizer):
    """Normalize each channel of each sample, for rows that hold flattened channel-major images.

    A row of ``n_channels * L`` features (e.g. an image ``(C, H, W)`` flattened, ``L = H * W``)
    is viewed as ``(n_channels, L)`` and each channel block is normalized on its own.

    Parameters
    ----------
    n_channels : int, default=1
        Number of channels; must divide the number of features, leaving at least 2 values per
        channel. The default treats the whole row as one channel (layer normalization); set it
        to the images' channel count.
    eps : float >= 0, default=1e-5
        Added to each group's variance before the square root, as in the functional API.

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm import InstanceNormalizer
    >>> X = np.array([[1.0, 3.0, 10.0, 30.0]])  # one sample: 2 channels of 2 values
    >>> InstanceNormalizer(n_channels=2, eps=0.0).fit_transform(X)
    array([[-1.,  1., -1.,  1.]])
    """

    _parameter_constraints = {"n_channels": rules.POSITIVE_INT, "eps": rules.EPS}

    def __init__(self, n_channels=1, *, eps=1e-5):
        self.n_channels = n_channels
        self.eps = eps

    def _check_layout(self, params, n_features):
        n_channels = params["n_channels"]
        if n_features % n_channels or n_features // n_channels < 2:
            raise ValueError(
                f"n_channels={n_channels} must divide the number of features leaving at least 2 "
                f"values per channel, got n_features = {n_features}"
            )

    def _normalize(self, X, params):
        n, f = X.shape
        c = params["n_channels"]
        return F.instance_norm(X.reshape(n, c, f // c), eps=params["eps"]).reshape(n, f)
