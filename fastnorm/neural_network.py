"""scikit-learn multi-layer perceptrons with normalization layers, trained on the CPU.

:class:`MLPClassifier` and :class:`MLPRegressor` build a :class:`~fastnorm.nn.Sequential`
``[Linear -> Norm -> activation -> Dropout] * len(hidden_layer_sizes) -> Linear``: the
normalization sits between the linear layer and the activation, as in the batch-norm paper.
Training uses mini-batches, PyTorch's optimizers (``"adam"``, ``"adamw"``, ``"sgd"``), softmax
cross-entropy or mean squared error.

Behaviour worth knowing:

- Inference (``predict``, ``predict_proba``, ``score``) runs the network in eval mode: batch norm
  uses its running statistics, never the statistics of the rows being predicted, so predicting one
  row at a time gives the same result as predicting the whole set. It runs on a float64 copy of the
  trained weights: float32 BLAS products round differently depending on how many rows they have
  (~1e-6 relative), float64 ones ~1e-16, so batching does not change predictions. This costs about
  2x in inference speed against float32; ``model.net_.eval().forward(X.astype(np.float32))`` gives
  the float32 logits directly.
- ``batch_size`` larger than the training set is clipped to its size (with a warning), as in
  scikit-learn. With ``normalization="batch"``, ``batch_size=1`` is rejected (batch statistics of
  one row are undefined), a training set of one row is rejected, and a final mini-batch of a single
  row is merged into the previous one.
- NaN or infinity in ``X`` or ``y``, a wrong number of features, a single class: ``ValueError``.
- A run whose loss becomes NaN or infinite stops with :class:`TrainingDivergedError`; the
  estimator is left as it was before the call (unfitted after a fresh ``fit``).
"""

import contextlib
import copy
import math
import numbers
import sys
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import functional as F
from .nn import BatchNorm, GroupNorm, LayerNorm, RMSNorm
from .nn.container import Sequential
from .nn.layers import GELU, Dropout, Identity, Linear, ReLU, Sigmoid, Tanh
from .nn.losses import CrossEntropyLoss, MSELoss, softmax
from .nn.optim import SGD, Adam, AdamW

__all__ = ["MLPClassifier", "MLPRegressor", "TrainingDivergedError"]

_ACTIVATIONS = {
    "relu": (ReLU, "he"),
    "gelu": (GELU, "he"),
    "tanh": (Tanh, "glorot"),
    "logistic": (Sigmoid, "glorot"),
    "sigmoid": (Sigmoid, "glorot"),
    "identity": (Identity, "glorot"),
}
_NORMALIZATIONS = (None, "batch", "layer", "group", "rms")
_SOLVERS = ("adam", "adamw", "sgd")
_PREDICT_CHUNK = 8192


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _cast_module(module, dtype):
    """A deep copy of ``module`` with every floating-point array (parameters, gradients, running
    statistics) cast to ``dtype``."""
    module = copy.deepcopy(module)
    dtype = np.dtype(dtype)

    def visit(layer):
        if isinstance(layer, Sequential):
            for child in layer.layers:
                visit(child)
            return
        for store in (layer.params, layer.grads):
            for key, value in store.items():
                store[key] = value.astype(dtype)
        for key, value in list(vars(layer).items()):
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                setattr(layer, key, value.astype(dtype))
        if hasattr(layer, "dtype"):
            layer.dtype = dtype

    visit(module)
    return module


_CONTROLLER = []


def _blas_controller():
    """One threadpoolctl controller, created on first use (inspecting the loaded libraries costs
    ~0.6 ms; limiting through a kept controller ~0.03 ms)."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


@contextlib.contextmanager
def _thread_limit(n_threads):
    """Limit BLAS (threadpoolctl) and Numba to ``n_threads`` threads; restore them afterwards.
    Normalization kernels run serially throughout: between BLAS calls a parallel region waits on
    BLAS's spinning threads."""
    with F.serial_kernels():
        if n_threads is None:
            yield
            return
        import numba

        old = numba.get_num_threads()
        numba.set_num_threads(max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS)))
        try:
            with _blas_controller().limit(limits=int(n_threads), user_api="blas"):
                yield
        finally:
            numba.set_num_threads(old)


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class _BaseMLP(BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        normalization=None,
        norm_groups=8,
        bn_momentum=0.1,
        dropout=0.0,
        solver="adam",
        learning_rate_init=1e-3,
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
        self.bn_momentum = bn_momentum
        self.dropout = dropout
        self.solver = solver
        self.learning_rate_init = learning_rate_init
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
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = (sizes,)
        try:
            sizes = tuple(int(s) for s in sizes)
        except TypeError:
            raise ValueError(f"hidden_layer_sizes must be an int or a sequence of ints, got "
                             f"{self.hidden_layer_sizes!r}") from None
        if any(s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}")
        return sizes

    def _validate_params_(self):
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got "
                             f"{self.activation!r}")
        if self.normalization not in _NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, got "
                             f"{self.normalization!r}")
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {_SOLVERS}, got {self.solver!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not float(self.learning_rate_init) > 0:
            raise ValueError(f"learning_rate_init must be > 0, got {self.learning_rate_init}")
        if self.weight_decay is not None and not float(self.weight_decay) >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not (isinstance(self.max_iter, numbers.Integral) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be an int >= 1, got {self.max_iter!r}")
        if not (isinstance(self.n_iter_no_change, numbers.Integral) and self.n_iter_no_change >= 1):
            raise ValueError(f"n_iter_no_change must be an int >= 1, got {self.n_iter_no_change!r}")
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if not float(self.tol) >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if not (self.batch_size == "auto" or (isinstance(self.batch_size, numbers.Integral)
                                              and self.batch_size >= 1)):
            raise ValueError(f"batch_size must be 'auto' or an int >= 1, got {self.batch_size!r}")
        if self.normalization == "batch" and self.batch_size == 1:
            raise ValueError("normalization='batch' needs batch_size >= 2: batch statistics of a "
                             "single row are undefined (use normalization='layer' or 'group' for "
                             "batch size 1)")
        if self.normalization == "group":
            g = self.norm_groups
            if not (isinstance(g, numbers.Integral) and g >= 1):
                raise ValueError(f"norm_groups must be an int >= 1, got {g!r}")
            bad = [h for h in self._hidden_sizes() if h % g]
            if bad:
                raise ValueError(f"norm_groups={g} must divide every hidden layer size; "
                                 f"{bad} are not divisible")
        if not 0.0 <= float(self.beta_1) < 1 or not 0.0 <= float(self.beta_2) < 1:
            raise ValueError("beta_1 and beta_2 must be in [0, 1)")
        if self.n_threads is not None and not (isinstance(self.n_threads, numbers.Integral)
                                               and self.n_threads >= 1):
            raise ValueError(f"n_threads must be None or an int >= 1, got {self.n_threads!r}")
        dtype = np.dtype(self.dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        self._hidden_sizes()
        return dtype

    # ------------------------------------------------------------------ network
    def _build(self, n_in, n_out, rng):
        act_cls, init = _ACTIVATIONS[self.activation]
        dtype = np.dtype(self.dtype)
        seeds = rng.integers(0, 2**63 - 1, size=2 * len(self._hidden_sizes()) + 1)
        layers = []
        fan_in = n_in
        for i, h in enumerate(self._hidden_sizes()):
            bn = self.normalization == "batch"
            layers.append(Linear(fan_in, h, bias=not bn, init=init,
                                 random_state=int(seeds[2 * i]), dtype=dtype))
            if self.normalization == "batch":
                layers.append(BatchNorm(h, momentum=self.bn_momentum, dtype=dtype))
            elif self.normalization == "layer":
                layers.append(LayerNorm(h, dtype=dtype))
            elif self.normalization == "group":
                layers.append(GroupNorm(self.norm_groups, h, dtype=dtype))
            elif self.normalization == "rms":
                layers.append(RMSNorm(h, dtype=dtype))
            layers.append(act_cls())
            if self.dropout > 0:
                layers.append(Dropout(self.dropout, random_state=int(seeds[2 * i + 1])))
            fan_in = h
        layers.append(Linear(fan_in, n_out, init="glorot", random_state=int(seeds[-1]),
                             dtype=dtype))
        layers[0].input_grad = False  # nobody needs d(loss)/d(X)
        return Sequential(*layers)

    def _make_optimizer(self):
        lr = float(self.learning_rate_init)
        if self.solver == "sgd":
            wd = 0.0 if self.weight_decay is None else float(self.weight_decay)
            return SGD(self.net_, lr=lr, momentum=float(self.momentum), weight_decay=wd,
                       nesterov=bool(self.nesterovs_momentum) and self.momentum > 0)
        betas = (float(self.beta_1), float(self.beta_2))
        if self.solver == "adamw":
            wd = 1e-2 if self.weight_decay is None else float(self.weight_decay)
            return AdamW(self.net_, lr=lr, betas=betas, eps=float(self.epsilon), weight_decay=wd)
        wd = 0.0 if self.weight_decay is None else float(self.weight_decay)
        return Adam(self.net_, lr=lr, betas=betas, eps=float(self.epsilon), weight_decay=wd)

    def _initialize(self, n_features, n_out):
        rs = check_random_state(self.random_state)
        self._rng = np.random.default_rng(rs.randint(0, 2**31 - 1))
        self.net_ = self._build(n_features, n_out, self._rng)
        self.net_.eval()
        self._optimizer = self._make_optimizer()
        self.n_outputs_ = n_out
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self.best_loss_ = np.inf
        self._no_improvement_count = 0
        self.batchnorm_folded_ = False
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None

    _FITTED_ATTRS = ("net_", "_optimizer", "_rng", "n_outputs_", "n_iter_", "t_", "loss_curve_",
                     "best_loss_", "_no_improvement_count", "batchnorm_folded_",
                     "validation_scores_", "best_validation_score_", "classes_",
                     "n_features_in_", "feature_names_in_", "_y_dtype")

    def _snapshot(self):
        return {k: copy.deepcopy(self.__dict__[k]) for k in self._FITTED_ATTRS if k in self.__dict__}

    def _restore(self, state):
        for k in self._FITTED_ATTRS:
            self.__dict__.pop(k, None)
        if state:
            self.__dict__.update(state)

    # ------------------------------------------------------------------ training
    def _batch_size(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        bs = int(self.batch_size)
        if bs > n:
            warnings.warn(f"batch_size={bs} is larger than the {n} training samples; it is "
                          f"clipped to {n}.", UserWarning, stacklevel=4)
            bs = n
        return bs

    def _batches(self, n, bs):
        starts = list(range(0, n, bs))
        bounds = [[s, min(s + bs, n)] for s in starts]
        if self.normalization == "batch" and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2][1] = n  # never train batch norm on a single row
            bounds.pop()
        return bounds

    def _loss_fn(self):
        raise NotImplementedError

    def _targets(self, y):
        raise NotImplementedError

    def _val_score(self, X, y):
        raise NotImplementedError

    def _check_trainable(self):
        if getattr(self, "batchnorm_folded_", False):
            raise ValueError("fold_batchnorm() removed the batch-norm layers of this model: it can "
                             "no longer be trained. Refit from scratch (warm_start=False).")

    def _train_epoch(self, X, y, bounds, order, loss_fn, bar, epoch):
        """One pass over the mini-batches; returns (sum of batch losses * sizes, rows seen)."""
        net, opt = self.net_, self._optimizer
        total = 0.0
        seen = 0
        for j, (s, e) in enumerate(bounds):
            if order is None:
                xb, yb = X[s:e], y[s:e]
            else:
                ids = order[s:e]
                xb, yb = X.take(ids, axis=0), y.take(ids, axis=0)
            out = net.forward(xb)
            loss = loss_fn.forward(out, yb)
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"{type(self).__name__} training diverged: the loss became {loss} at "
                    f"epoch {epoch}, mini-batch {j + 1}/{len(bounds)} (solver={self.solver!r}, "
                    f"learning_rate_init={self.learning_rate_init}). Try a smaller "
                    f"learning_rate_init, a normalization layer, or scaling the inputs/targets.")
            net.backward(loss_fn.backward())
            opt.step()
            self.t_ += 1
            total += loss * (e - s)
            seen += e - s
            if bar is not None:
                if j % 10 == 0 or j == len(bounds) - 1:
                    bar.set_postfix(loss=f"{total / seen:.4g}", refresh=False)
                bar.update(1)
        return total, seen

    def _fit_epochs(self, X, y, n_epochs, incremental):
        """Train for up to ``n_epochs`` epochs on ``(X, y)`` (``y`` already encoded)."""
        n = X.shape[0]
        if self.normalization == "batch" and n < 2:
            raise ValueError(f"normalization='batch' needs at least 2 training samples, got "
                             f"{n} sample (n_samples=1)")
        X_val = y_val = None
        if self.early_stopping and not incremental:
            X, X_val, y, y_val = self._split(X, y)
            n = X.shape[0]
        bs = self._batch_size(n)
        bounds = self._batches(n, bs)
        loss_fn = self._loss_fn()
        net, rng = self.net_, self._rng
        tqdm = _tqdm() if self.verbose else None
        best_state = None
        converged = False
        for _ in range(n_epochs):
            epoch = self.n_iter_ + 1
            order = rng.permutation(n) if self.shuffle else None
            net.train()
            bar = None
            if tqdm is not None:
                bar = tqdm(total=len(bounds), desc=f"epoch {epoch}", leave=True,
                           file=sys.stderr, dynamic_ncols=True)
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    total, seen = self._train_epoch(X, y, bounds, order, loss_fn, bar, epoch)
                    if not all(np.isfinite(p).all() for p in net.params.values()):
                        raise TrainingDivergedError(
                            f"{type(self).__name__} training diverged: parameters became NaN or "
                            f"infinite in epoch {epoch}. Try a smaller learning_rate_init.")
            except BaseException:
                net.eval()
                if bar is not None:
                    bar.close()
                raise
            net.eval()
            epoch_loss = total / max(seen, 1)
            self.n_iter_ += 1
            self.loss_curve_.append(epoch_loss)
            msg = f"Iteration {epoch}, loss = {epoch_loss:.8f}"
            if X_val is not None:
                score = self._val_score(X_val, y_val)
                self.validation_scores_.append(score)
                msg += f", validation score = {score:.6f}"
                if score < self.best_validation_score_ + self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_state = copy.deepcopy(net)
            else:
                if epoch_loss > self.best_loss_ - self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, epoch_loss)
            if bar is not None:
                postfix = {"loss": f"{epoch_loss:.4g}"}
                if X_val is not None:
                    postfix["val_score"] = f"{self.validation_scores_[-1]:.4g}"
                bar.set_postfix(postfix, refresh=False)
                bar.close()
            elif self.verbose:
                print(msg)
            if not incremental and self._no_improvement_count >= self.n_iter_no_change:
                converged = True
                if self.verbose:
                    what = "Validation score" if X_val is not None else "Training loss"
                    print(f"{what} did not improve more than tol={self.tol} for "
                          f"{self.n_iter_no_change} consecutive epochs. Stopping.")
                break
        if best_state is not None:
            # early stopping: keep the weights of the best validation score
            self.net_ = best_state
            self._optimizer.module = best_state
            self._optimizer.params = best_state.params
        if not incremental and not converged:
            warnings.warn(f"Stochastic optimizer: maximum iterations ({self.max_iter}) reached "
                          f"and the optimization hasn't converged yet.", ConvergenceWarning)

    def _split(self, X, y):
        n = X.shape[0]
        n_val = int(math.ceil(self.validation_fraction * n))
        if n_val < 1 or n - n_val < 2:
            raise ValueError(f"early_stopping needs at least 2 training and 1 validation sample; "
                             f"got {n} samples with validation_fraction={self.validation_fraction}")
        seed = int(self._rng.integers(0, 2**31 - 1))
        is_clf = isinstance(self, ClassifierMixin)
        try:
            return train_test_split(X, y, test_size=n_val, random_state=seed,
                                    stratify=y if is_clf else None)
        except ValueError:
            if not is_clf:
                raise
            return train_test_split(X, y, test_size=n_val, random_state=seed)

    def _fit(self, X, y, incremental, classes=None):
        dtype = self._validate_params_()
        first = not (incremental or self.warm_start) or not hasattr(self, "net_")
        state = None if first else self._snapshot()
        if not first:
            self._check_trainable()
        X, y = self._validate_xy(X, y, reset=first, dtype=dtype)
        y_enc, n_out = self._targets(y, first, classes)
        try:
            if first:
                self._initialize(X.shape[1], n_out)
            elif n_out != self.n_outputs_:
                raise ValueError(f"y has {n_out} outputs but the fitted model has "
                                 f"{self.n_outputs_}")
            elif not incremental:
                # a warm-started fit uses the current solver settings (as scikit-learn does);
                # partial_fit keeps the optimizer state
                self._optimizer = self._make_optimizer()
            n_epochs = 1 if incremental else int(self.max_iter)
            with _thread_limit(self.n_threads):
                self._fit_epochs(X, y_enc, n_epochs, incremental)
        except Exception:
            # divergence or any other error: leave the estimator as it was before the call
            # (unfitted after a fresh fit). A KeyboardInterrupt keeps the epochs done so far.
            self._restore(state)
            raise
        finally:
            self._refresh_inference_net()
        return self

    def _refresh_inference_net(self):
        """Rebuild the network used by predict: a float64 copy of ``net_`` in eval mode.

        float32 BLAS kernels round differently depending on how many rows a product has, so a row
        predicted alone and the same row predicted in a batch could differ in the last bits;
        in float64 the differences are ~1e-16, far below what the float32 weights resolve.
        Called after every change of ``net_`` (fit, partial_fit, fold, recompute, unpickling), never
        from predict (which must not change the estimator).
        """
        if "net_" not in self.__dict__:
            self.__dict__.pop("_net64", None)
            return
        if np.dtype(self.dtype) == np.float64 and self.net_.params and all(
                p.dtype == np.float64 for p in self.net_.params.values()):
            self._net64 = self.net_
        else:
            self._net64 = _cast_module(self.net_, np.float64)
        self._net64.eval()

    def _inference_net(self):
        net = self.__dict__.get("_net64")
        if net is None:  # e.g. net_ replaced by hand
            net = _cast_module(self.net_, np.float64).eval()
        return net

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_net64", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._refresh_inference_net()

    def _forward(self, X):
        check_is_fitted(self, "net_")
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        net = self._inference_net()
        X = np.asarray(X, np.float64)
        with _thread_limit(self.n_threads):
            if X.shape[0] <= _PREDICT_CHUNK:
                return net.forward(X)
            return np.concatenate([net.forward(X[s:s + _PREDICT_CHUNK])
                                   for s in range(0, X.shape[0], _PREDICT_CHUNK)])

    # ------------------------------------------------------------------ public
    def fit(self, X, y):
        """Fit the network on ``(X, y)`` for up to ``max_iter`` epochs.

        Stops earlier when the training loss (or, with ``early_stopping``, the validation score)
        has not improved by ``tol`` for ``n_iter_no_change`` consecutive epochs. With
        ``warm_start=True`` a fitted model continues from its current weights.
        """
        return self._fit(X, y, incremental=False)

    def fold_batchnorm(self):
        """Fold every batch-norm layer into the linear layer before it (in place).

        Inference then skips the normalization step; predictions are unchanged up to rounding.
        The folded model can no longer be trained (``partial_fit`` and warm starts raise).
        Returns ``self``.
        """
        check_is_fitted(self, "net_")
        folded = self.net_.eval().fold_batchnorm()
        if len(folded) == len(self.net_):  # no batch norm: nothing changes, training may go on
            return self
        self.net_ = folded
        self._optimizer = None
        self.batchnorm_folded_ = True
        self._refresh_inference_net()
        return self

    def recompute_batchnorm_statistics(self, X, batch_size=1024):
        """Re-estimate every batch norm's running mean and variance exactly over ``X``.

        PreciseBN (Wu & Johnson, 2021): with the weights frozen, the input of each batch-norm
        layer is computed for all of ``X`` in eval mode (earlier batch norms already using their
        recomputed statistics), and its mean and variance over all rows replace the moving averages.
        The variance is the unbiased one (divided by ``n - 1``), as the moving average of training
        keeps it. Per-batch ``(count, mean, M2)`` come from the kernels in float64 and are merged
        with Chan's formula, so the result does not depend on ``batch_size`` beyond rounding. Returns ``self``.
        """
        check_is_fitted(self, "net_")
        X = validate_data(self, X, reset=False, dtype=np.dtype(self.dtype))
        if not (isinstance(batch_size, numbers.Integral) and batch_size >= 1):
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if X.shape[0] < 2:
            raise ValueError("recompute_batchnorm_statistics needs at least 2 samples")
        net = self.net_
        was_training = net.training
        net.eval()
        try:
            # activations of every batch at the end of the last segment: one pass per layer
            cached = [X[s:s + batch_size] for s in range(0, X.shape[0], batch_size)]
            start = 0
            for i, layer in enumerate(net.layers):
                if not isinstance(layer, BatchNorm):
                    continue
                segment = net.layers[start:i]
                moments = None
                for k, h in enumerate(cached):
                    for p in segment:
                        h = p.forward(h)
                    cached[k] = h
                    moments = _merge(moments, _batch_moments(h))
                count, mean, m2 = moments
                layer.running_mean[...] = mean
                layer.running_var[...] = m2 / (count - 1)  # unbiased, as in training
                start = i
        finally:
            net.train(was_training)
            self._refresh_inference_net()
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def _batch_moments(h):
    """(count, mean, M2) per feature of a 2-D batch, from the kernels (float64 accumulation)."""
    mean, m2 = F.feature_moments(h)
    return np.full_like(mean, h.shape[0]), mean, m2


def _merge(total, batch):
    return batch if total is None else F.merge_moments(*total, *batch)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier with optional normalization layers and dropout.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        Width of each hidden layer.
    activation : {"relu", "gelu", "tanh", "logistic", "sigmoid", "identity"}, default "relu"
        Hidden activation. ReLU/GELU layers use He initialisation, the others Glorot.
    normalization : {None, "batch", "layer", "group", "rms"}, default None
        Normalization layer placed between each hidden linear layer and its activation. With
        ``"batch"`` the linear layers have no bias (batch norm's shift replaces it).
    norm_groups : int, default 8
        Number of groups for ``normalization="group"``; must divide every hidden size.
    bn_momentum : float or None, default 0.1
        Momentum of batch norm's running averages (``None``: cumulative average).
    dropout : float, default 0.0
        Dropout probability after each hidden activation.
    solver : {"adam", "adamw", "sgd"}, default "adam"
        PyTorch's update rules (see :mod:`fastnorm.nn.optim`).
    learning_rate_init : float, default 1e-3
    weight_decay : float or None, default None
        L2 penalty (``"adam"``, ``"sgd"``) or decoupled decay (``"adamw"``). ``None`` means the
        solver's PyTorch default: 0 for adam and sgd, 0.01 for adamw.
    momentum, nesterovs_momentum : SGD momentum (default 0.9, Nesterov).
    beta_1, beta_2, epsilon : Adam's constants.
    batch_size : int or "auto", default "auto"
        ``"auto"`` is ``min(200, n_samples)``; larger than the data: clipped with a warning.
    max_iter : int, default 200
        Maximum number of epochs.
    shuffle : bool, default True
        Shuffle the training rows each epoch.
    random_state : int, RandomState or None
        Seeds weights, dropout masks, shuffling and the validation split.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data (stratified) and stop when its accuracy has not
        improved by ``tol`` for ``n_iter_no_change`` epochs; the best weights are kept.
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10
    tol : float, default 1e-4
    warm_start : bool, default False
        Continue from the fitted weights on ``fit``.
    verbose : bool, default False
        Show a progress bar per epoch with the running loss (tqdm if installed, else one printed
        line per epoch).
    n_threads : int or None, default None
        Threads for BLAS (matrix products) and the Numba kernels during fit and predict; None
        leaves the libraries' settings alone. On a busy or shared machine, ``n_threads=1`` avoids
        BLAS threads spin-waiting on each other, which can make training many times slower.
    dtype : float32 or float64, default numpy.float32
        Precision of weights and computations.

    Attributes
    ----------
    classes_, n_features_in_, n_outputs_, n_iter_ (epochs run), t_ (optimizer steps),
    loss_curve_ (mean training loss per epoch), best_loss_, validation_scores_ and
    best_validation_score_ (with early stopping, else None), net_ (the
    :class:`~fastnorm.nn.Sequential`), batchnorm_folded_.
    """

    def _validate_xy(self, X, y, reset, dtype):
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, multi_output=False)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if type_of_target(y) not in ("binary", "multiclass"):
            raise ValueError(f"MLPClassifier supports binary and multiclass targets, got "
                             f"{type_of_target(y)!r}")
        return X, y

    def _targets(self, y, first, classes):
        if first:
            cls = np.unique(np.asarray(classes) if classes is not None else y)
            if len(cls) < 2:
                raise ValueError("MLPClassifier needs at least 2 classes in y; got 1 class"
                                 + (f" ({cls[0]!r})" if len(cls) else ""))
        else:
            cls = self.classes_
        unseen = np.setdiff1d(np.unique(y), cls)
        if unseen.size:
            raise ValueError(f"y contains labels {unseen.tolist()} not in classes {cls.tolist()}")
        if first:
            self.classes_ = cls
        return np.searchsorted(cls, y).astype(np.intp), len(cls)

    def _loss_fn(self):
        return CrossEntropyLoss()

    def _val_score(self, X, y):
        net = self.net_
        net.eval()
        pred = np.concatenate([np.argmax(net.forward(X[s:s + _PREDICT_CHUNK]), axis=1)
                               for s in range(0, X.shape[0], _PREDICT_CHUNK)])
        return float(accuracy_score(y, pred))

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``. ``classes`` (all labels) is required on the first call."""
        if not hasattr(self, "net_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities (float64), computed with the running statistics."""
        logits = self._forward(X)
        return softmax(np.asarray(logits, np.float64), axis=1)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        from .nn.losses import log_softmax

        return log_softmax(np.asarray(self._forward(X), np.float64), axis=1)

    def predict(self, X):
        """Most probable class of each row."""
        logits = self._forward(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (mean squared error) with optional normalization layers.

    Same parameters as :class:`MLPClassifier`; the output layer is linear with one unit per target
    (``y`` may be 2-D). ``validation_scores_`` hold R² on the held-out set.
    """

    def _validate_xy(self, X, y, reset, dtype):
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, multi_output=True,
                             y_numeric=True)
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

    _FITTED_ATTRS = _BaseMLP._FITTED_ATTRS + ("_y_1d",)

    def _loss_fn(self):
        return MSELoss()

    def _val_score(self, X, y):
        net = self.net_
        net.eval()
        pred = np.concatenate([net.forward(X[s:s + _PREDICT_CHUNK])
                               for s in range(0, X.shape[0], _PREDICT_CHUNK)])
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
