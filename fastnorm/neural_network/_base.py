"""``_BaseMLP``: the scikit-learn glue shared by :class:`MLPClassifier` and :class:`MLPRegressor`
(parameters, validation, fitted state, fit / predict plumbing)."""

import copy
import functools

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .. import functional as F
from .._collections import is_dask_collection
from .._persistence import checked_mlp_state, with_version
from .._validation import input_errors
from ._inference import build_steps, predict_rows
from ._model_tools import ModelTools
from ._network import (
    build_network,
    inference_copy,
    initial_rng,
    make_optimizer,
)
from ._objective import OUTPUT_ACTIVATIONS
from ._params import checked_params
from ._threads import thread_limit
from ._training import fit_epochs

_PREDICT_CHUNK = 8192


@functools.cache
def _param_names(cls):
    return frozenset(cls._get_param_names())  # inspects the signature: once per class


def _inference_input(est, X, check_finite=True):
    """``X`` for predict/score checked against the fitted estimator; errors name X.

    A non-empty 2-D float32/float64 ndarray with the fitted feature count, for a model fitted
    without feature names, is what validate_data would return once its values are known to be
    finite: it is taken as is (validate_data's fixed cost is about a third of a 64-row
    prediction), its values checked here unless ``check_finite=False`` (the caller checks)."""
    if (
        type(X) is np.ndarray
        and X.ndim == 2
        and X.dtype in (np.float32, np.float64)
        and X.shape[0] >= 1
        and X.shape[1] == est.n_features_in_
        and not hasattr(est, "feature_names_in_")
        and (not check_finite or np.isfinite(np.add.reduce(X, axis=None)))
    ):
        return X
    with input_errors("X must be a 2-D array of finite real numbers (n_samples, n_features)"):
        return validate_data(est, X, reset=False, dtype=(np.float64, np.float32))


class _BaseMLP(ModelTools, BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
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
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.normalization = normalization
        self.norm_groups = norm_groups
        self.virtual_batch_size = virtual_batch_size
        self.bn_momentum = bn_momentum
        self.dropout = dropout
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.power_t = power_t
        self.warmup_fraction = warmup_fraction
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.verbose = verbose
        self.n_threads = n_threads
        self.dtype = dtype

    # ------------------------------------------------------------------ validation
    def _checked_params(self):
        return checked_params(self)

    # ------------------------------------------------------------------ fitted state
    def _initialize(self, p, n_features, n_out):
        self._rng = initial_rng(self.random_state)
        self.net_ = build_network(p, n_features, n_out, self._rng).eval()
        self._optimizer = make_optimizer(p, self.net_)
        self.n_outputs_ = n_out
        self.n_layers_ = len(p["hidden_layer_sizes"]) + 2
        self.out_activation_ = OUTPUT_ACTIVATIONS[self._loss_name()]
        self._learning_rate = p["learning_rate_init"]
        self.n_iter_ = 0
        self._epochs = 0  # every epoch trained, over all calls (n_iter_ counts the last call's)
        self.t_ = 0
        self.loss_curve_ = []
        self.best_loss_ = np.inf
        self._no_improvement_count = 0
        self.batchnorm_folded_ = False
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None

    def _fitted_names(self):
        """Every attribute set by fitting: a name ending or starting with ``_`` that is not a
        constructor parameter (as scikit-learn's ``check_is_fitted`` reads ``vars``)."""
        params = _param_names(type(self))
        return [
            k
            for k in vars(self)
            if (k.endswith("_") or k.startswith("_")) and not k.startswith("__") and k not in params
        ]

    def _snapshot(self):
        return copy.deepcopy({k: vars(self)[k] for k in self._fitted_names()})

    def _restore(self, state):
        for k in self._fitted_names():
            del self.__dict__[k]
        if state:
            self.__dict__.update(state)

    def _check_trainable(self):
        if getattr(self, "batchnorm_folded_", False):
            raise ValueError(
                "fold_batchnorm() removed the batch-norm layers of this model: it can "
                "no longer be trained. Refit from scratch (warm_start=False)."
            )

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y, incremental, classes=None, sample_weight=None):
        """Fit or continue fitting. A call that raises leaves the estimator as it was before
        it, except after Ctrl-C once an epoch has completed: the model then keeps the last
        completed epoch (weights, optimizer state, ``n_iter_``, ``t_``, ``loss_curve_``)."""
        if is_dask_collection(X):  # blocks streamed through partial_fit (Dask is optional)
            from ._dask import fit_blocks

            return fit_blocks(self, X, y, incremental, classes, sample_weight)
        previous = self._snapshot()
        progress = {"epochs": 0}
        try:
            with F.deferred_interrupts():
                self._fit_guarded(X, y, incremental, classes, sample_weight, progress)
        except KeyboardInterrupt:
            if progress["epochs"] == 0:
                self._restore(previous)
            raise
        except BaseException:
            self._restore(previous)
            raise
        return self

    def _fit_guarded(self, X, y, incremental, classes, sample_weight, progress):
        p = self._checked_params()
        first = not (incremental or self.warm_start) or not hasattr(self, "net_")
        if not first:
            self._check_trainable()
        X, y = self._validate_xy(X, y, reset=first, dtype=p["dtype"])
        w = self._sample_weights(sample_weight, X, y, incremental)
        y_enc, n_out = self._targets(y, first, classes)
        if first:
            self._initialize(p, X.shape[1], n_out)
            self._init_output_layer(y_enc, w)
        elif n_out != self.n_outputs_:
            raise ValueError(f"y has {n_out} outputs but the fitted model has {self.n_outputs_}")
        elif not incremental:
            # a warm-started fit uses the current solver settings (as scikit-learn does);
            # partial_fit keeps the optimizer state
            self._optimizer = make_optimizer(p, self.net_)
            self._learning_rate = p["learning_rate_init"]
        n_epochs = 1 if incremental else p["max_iter"]
        with thread_limit(p["n_threads"]):
            fit_epochs(self, X, y_enc, w, n_epochs, incremental, progress)

    def _sample_weights(self, sample_weight, X, y, incremental):
        """Checked float64 sample weights (None for none), times the class weights."""
        if sample_weight is None:
            return None
        accepted = "sample_weight must be an array of finite non-negative reals, one per sample"
        try:
            return _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{accepted}; {exc}") from None

    def _init_output_layer(self, y, w):
        """Fit the output layer to the targets' scale (the regressor overrides it)."""

    def fit(self, X, y, sample_weight=None):
        """Fit the network on ``(X, y)`` for up to ``max_iter`` epochs.

        Stops earlier when the training loss (or, with ``early_stopping``, the validation score)
        has not improved by ``tol`` for ``n_iter_no_change`` consecutive epochs. With
        ``warm_start=True`` a fitted model continues from its current weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss: each mini-batch minimises
            ``sum(w_i * loss_i) / sum(w_i)`` (plus the ``alpha`` penalty), as scikit-learn.

        Returns
        -------
        self : object
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    # ------------------------------------------------------------------ inference
    def _forward(self, X):
        """Output of the network for ``X`` (eval mode), in the model's dtype.

        Computed by fastnorm's inference kernels from the current weights (no copy is made or
        kept), so edited or loaded weights are always used, and a row's result is bitwise the
        same whatever batch it is predicted in and whatever the thread count (``_inference``).
        A network with a layer those kernels do not cover runs as a float64 copy instead.
        """
        check_is_fitted(self, "net_")
        plan = build_steps(self.net_)
        X = _inference_input(self, X, check_finite=plan is None)
        if plan is not None:
            out, finite = predict_rows(*plan, X, self.n_threads)
            if not finite:
                _inference_input(self, X)  # raises scikit-learn's error, naming X
            return out
        net = inference_copy(self.net_, np.float64)
        X = np.asarray(X, np.float64)
        with thread_limit(self.n_threads):
            return np.concatenate(
                [net.forward(X[s : s + _PREDICT_CHUNK]) for s in range(0, len(X), _PREDICT_CHUNK)]
            )

    def __getstate__(self):
        return with_version(super().__getstate__())  # checked at load by __setstate__

    def __setstate__(self, state):  # version warning, fitted-state check, drops the old _net64
        super().__setstate__(checked_mlp_state(self, state))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
