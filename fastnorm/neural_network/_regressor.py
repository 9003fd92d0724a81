"""``MLPRegressor``: squared error (on internally standardized targets) or Poisson loss."""

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import validate_data

from .._validation import input_errors
from ..nn import Linear
from ._base import _PREDICT_CHUNK, _BaseMLP
from ._objective import Objective
from ._params import REGRESSOR_CONSTRAINTS

XY_ACCEPTED = (
    "X must be a 2-D array of finite real numbers (n_samples, n_features) and y finite real "
    "targets, one row per sample"
)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor with optional normalization layers.

    Same parameters as :class:`MLPClassifier` (without ``class_weight``), plus ``loss``:

    - ``"squared_error"`` (default): the output layer is linear, one unit per target (``y`` may
      be 2-D). The network learns the targets standardized: it predicts
      ``out * _y_scale + _y_mean``, with the mean and standard deviation of the targets of the
      first fit (or first ``partial_fit`` batch), and trains on the standardized targets, so
      that raw targets of any scale train as well as scaled ones, with any solver. The loss
      (``loss_``, ``loss_curve_``) is scikit-learn's, half the mean squared error plus the
      ``alpha`` penalty, of the standardized targets: multiply by ``_y_scale ** 2`` for the
      targets' own units (one output).
    - ``"poisson"``: half the Poisson deviance with a log link (``out_activation_ = "exp"``),
      for non-negative targets such as counts; the output bias starts at the log of the
      targets' mean.

    ``validation_scores_`` hold R² on the held-out set.

    Parameters
    ----------
    hidden_layer_sizes, activation, normalization, norm_groups, virtual_batch_size, \
bn_momentum, dropout, solver, learning_rate_init, alpha, learning_rate, power_t, \
warmup_fraction, weight_decay, momentum, nesterovs_momentum, beta_1, beta_2, epsilon, \
batch_size, max_iter, shuffle, random_state, early_stopping, validation_fraction, \
n_iter_no_change, tol, warm_start, verbose, n_threads, dtype
        As for :class:`MLPClassifier`.
    loss : {"squared_error", "poisson"}, default "squared_error"
        See above.

    Attributes
    ----------
    n_features_in_, n_outputs_, n_layers_, out_activation_ (``"identity"`` or ``"exp"``),
    n_iter_, t_, loss_, loss_curve_, best_loss_, validation_scores_, best_validation_score_,
    coefs_, intercepts_, net_, batchnorm_folded_
        As for :class:`MLPClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm import MLPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((500, 4))
    >>> y = 100.0 * X[:, 0] - 50.0 * X[:, 1] ** 2 + 1000.0  # any scale: targets are standardized
    >>> model = MLPRegressor((64, 64), normalization="layer", learning_rate_init=0.01,
    ...                      tol=1e-3, random_state=0).fit(X, y)
    >>> model.score(X, y) > 0.95
    True
    """

    _parameter_constraints = REGRESSOR_CONSTRAINTS

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        loss="squared_error",
        normalization=None,
        norm_groups="auto",
        virtual_batch_size=32,
        bn_momentum=0.1,
        dropout=0.0,
        solver="adam",
        learning_rate_init=1e-3,
        alpha=1e-4,
        learning_rate="constant",
        power_t=0.5,
        warmup_fraction=0.05,
        weight_decay=None,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        batch_size="auto",
        max_iter=200,
        shuffle=True,
        random_state=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        verbose=False,
        n_threads=None,
        dtype=np.float32,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            normalization=normalization,
            norm_groups=norm_groups,
            virtual_batch_size=virtual_batch_size,
            bn_momentum=bn_momentum,
            dropout=dropout,
            solver=solver,
            learning_rate_init=learning_rate_init,
            alpha=alpha,
            learning_rate=learning_rate,
            power_t=power_t,
            warmup_fraction=warmup_fraction,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            batch_size=batch_size,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            warm_start=warm_start,
            verbose=verbose,
            n_threads=n_threads,
            dtype=dtype,
        )
        self.loss = loss

    def _validate_xy(self, X, y, reset, dtype):
        with input_errors(XY_ACCEPTED, names=("X", "y")):
            X, y = validate_data(
                self, X, y, reset=reset, dtype=dtype, multi_output=True, y_numeric=True
            )
        if self.loss == "poisson" and np.any(np.asarray(y) < 0):
            raise ValueError("y must be non-negative for loss='poisson' (Poisson regression)")
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

    def _loss_name(self):
        return self.loss

    def _target_affine(self):
        if getattr(self, "_y_scale", None) is None:
            return None
        return self._y_scale, self._y_mean

    def _objective(self):
        return Objective(self._fit_loss, self.alpha, self.net_, self._target_affine())

    def _init_output_layer(self, y, w):
        """Squared error: the targets' (weighted) mean and standard deviation, by which the
        network's output is scaled; Poisson: the output bias at the log of the mean."""
        y64 = y.astype(np.float64)
        mean = np.average(y64, axis=0, weights=w)
        self._fit_loss = self.loss
        if self.loss == "poisson":
            self._y_mean = self._y_scale = None
            last = [m for m in self.net_ if isinstance(m, Linear)][-1]
            bias = np.log(np.maximum(mean, 1e-12))
            last.params["bias"][...] = bias.astype(last.params["bias"].dtype)
            return
        std = np.sqrt(np.average((y64 - mean) ** 2, axis=0, weights=w))
        self._y_mean = mean
        self._y_scale = np.where(np.isfinite(std) & (std > 0), std, 1.0)

    def _predict_raw(self, out):
        """Predictions from the network's output (float64)."""
        out = np.asarray(out, np.float64)
        if self._fit_loss == "poisson":
            return np.exp(out)
        affine = self._target_affine()
        return out if affine is None else out * affine[0] + affine[1]

    def _val_score(self, X, y, w=None):
        net = self.net_
        net.eval()
        out = np.concatenate(
            [net.forward(X[s : s + _PREDICT_CHUNK]) for s in range(0, X.shape[0], _PREDICT_CHUNK)]
        )
        return float(r2_score(np.asarray(y, np.float64), self._predict_raw(out), sample_weight=w))

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss.

        Returns
        -------
        self : object
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X):
        """Predicted targets (float64); 1-D when the model was fitted on a 1-D ``y``."""
        out = self._predict_raw(self._forward(X))
        return out[:, 0] if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.positive_only = getattr(self, "loss", None) == "poisson"
        return tags
