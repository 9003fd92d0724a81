"""``MLPRegressor``: mean squared error, one linear output per target."""

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import validate_data

from .._validation import input_errors
from ..nn.losses import MSELoss
from ._base import _PREDICT_CHUNK, _BaseMLP

XY_ACCEPTED = (
    "X must be a 2-D array of finite real numbers (n_samples, n_features) and y finite real "
    "targets, one row per sample"
)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (mean squared error) with optional normalization layers.

    Same parameters as :class:`MLPClassifier`; the output layer is linear with one unit per target
    (``y`` may be 2-D). ``validation_scores_`` hold R² on the held-out set.
    """

    def _validate_xy(self, X, y, reset, dtype):
        with input_errors(XY_ACCEPTED, names=("X", "y")):
            X, y = validate_data(
                self, X, y, reset=reset, dtype=dtype, multi_output=True, y_numeric=True
            )
        if reset:
            self._y_dtype = y.dtype
        return X, y

    def _targets(self, y, first, classes):
        y = np.asarray(y, dtype=np.dtype(self.dtype))
        if y.ndim == 1:
            y = y[:, None]
            self._y_1d = True if first else getattr(self, "_y_1d", True)
        elif first:
            self._y_1d = False
        return y, y.shape[1]

    def _loss_fn(self):
        return MSELoss()

    def _val_score(self, X, y):
        net = self.net_
        net.eval()
        pred = np.concatenate(
            [net.forward(X[s : s + _PREDICT_CHUNK]) for s in range(0, X.shape[0], _PREDICT_CHUNK)]
        )
        return float(r2_score(np.asarray(y, np.float64), np.asarray(pred, np.float64)))

    def partial_fit(self, X, y):
        """One epoch over ``(X, y)``."""
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predicted targets (float64); 1-D when the model was fitted on a 1-D ``y``."""
        out = np.asarray(self._forward(X), np.float64)
        return out[:, 0] if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
