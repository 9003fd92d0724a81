"""``MLPClassifier``: softmax cross-entropy on integer-encoded classes."""

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d, validate_data

from .._validation import input_errors
from ..functional.inference import rows_softmax
from ._base import _PREDICT_CHUNK, _BaseMLP
from ._objective import Objective
from ._params import CLASSIFIER_CONSTRAINTS

XY_ACCEPTED = (
    "X must be a 2-D array of finite real numbers (n_samples, n_features) and y one class "
    "label per sample"
)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier with optional normalization layers and dropout.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        Width of each hidden layer.
    activation : {"relu", "gelu", "tanh", "logistic", "sigmoid", "identity"}, default "relu"
        Hidden activation. ReLU/GELU layers use He initialisation, the others Glorot.
    normalization : {None, "batch", "batch_renorm", "ghost_batch", "layer", "group", "rms"}, \
default None
        Normalization layer placed between each hidden linear layer and its activation. With
        the batch norms the linear layers have no bias (batch norm's shift replaces it).
        ``"batch_renorm"``: batch renormalization (Ioffe 2017) with the paper's schedule scaled
        to ``max_iter``: plain batch norm for the first 5 % of training, then r_max relaxed to 3
        over the next 30 % and d_max to 5 over the next 20 %. ``"ghost_batch"``: ghost batch
        norm (Hoffer et al. 2017), statistics per virtual batch of ``virtual_batch_size`` rows.
    norm_groups : int or "auto", default "auto"
        Number of groups for ``normalization="group"``; an int must divide every hidden size.
        ``"auto"`` takes, for each hidden layer, the largest divisor of its width that is at most
        8 (8 for a width of 64, 5 for the default 100).
    virtual_batch_size : int >= 2, default 32
        Rows per virtual batch for ``normalization="ghost_batch"``.
    bn_momentum : float or None, default 0.1
        Momentum of batch norm's running averages (``None``: cumulative average).
    dropout : float, default 0.0
        Dropout probability after each hidden activation.
    solver : {"adam", "adamw", "sgd"}, default "adam"
        PyTorch's update rules (see :mod:`fastnorm.nn.optim`).
    learning_rate_init : float, default 1e-3
    alpha : float >= 0, default 1e-4
        L2 penalty with scikit-learn's objective: ``0.5 * alpha * sum(W ** 2) / sum(w)`` per
        mini-batch over the linear layers' weights (not biases or normalization parameters).
    learning_rate : {"constant", "invscaling", "adaptive", "cosine"}, default "constant"
        Learning-rate schedule, as scikit-learn defines the first three (there for
        ``solver="sgd"`` only, here for every solver): ``"invscaling"`` uses
        ``learning_rate_init / (t_ + 1) ** power_t`` after each epoch, ``"adaptive"`` divides the
        rate by 5 whenever the stopping rule fires and stops below 1e-6; ``"cosine"`` warms up
        linearly over ``warmup_fraction`` of ``max_iter`` epochs, then decays to 0 along half a
        cosine, per mini-batch.
    power_t : float >= 0, default 0.5
        Exponent of ``"invscaling"``.
    warmup_fraction : float in [0, 1), default 0.05
        Warm-up share of training for ``"cosine"``.
    class_weight : None, "balanced" or dict, default None
        Weight of each class in the loss (multiplies ``sample_weight``); ``"balanced"`` uses
        ``n_samples / (n_classes * count(class))`` (not with ``partial_fit``: pass a dict).
    weight_decay : float or None, default None
        L2 penalty (``"adam"``, ``"sgd"``) or decoupled decay (``"adamw"``). ``None`` means the
        solver's PyTorch default: 0 for adam and sgd, 0.01 for adamw.
    momentum, nesterovs_momentum : SGD momentum in [0, 1] (default 0.9, Nesterov).
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
    verbose : bool or int >= 0, default False
        Show one progress bar for the whole fit, one step per epoch, with the loss and (with
        early stopping) the validation score (tqdm if installed, else one printed line per
        epoch, as scikit-learn prints).
    n_threads : int or None, default None
        Threads for BLAS (matrix products) and the Numba kernels during fit and predict; None
        leaves the libraries' settings alone. On a busy or shared machine, ``n_threads=1`` avoids
        BLAS threads spin-waiting on each other, which can make training many times slower.
    dtype : float32 or float64, default numpy.float32
        Precision of weights and computations.

    Attributes
    ----------
    classes_, n_features_in_, n_outputs_, n_layers_, out_activation_ (``"softmax"``),
    n_iter_ (epochs of the last ``fit`` / ``partial_fit`` call, as scikit-learn), t_ (samples
    seen over all calls), loss_ and loss_curve_ (mean training loss per epoch, penalty
    included, over all calls), best_loss_, validation_scores_ and best_validation_score_ (with
    early stopping, else None), coefs_ and intercepts_ (views of the linear layers' weights in
    scikit-learn's (n_in, n_out) layout), net_ (the :class:`~fastnorm.nn.Sequential`),
    batchnorm_folded_.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastnorm import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier((16,), normalization="batch", learning_rate_init=0.01, max_iter=100,
    ...                     batch_size=32, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    >>> clf.predict(X[:1]), clf.predict_proba(X[:1]).shape
    (array([0]), (1, 3))
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        class_weight=None,
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
        self.class_weight = class_weight

    _parameter_constraints = CLASSIFIER_CONSTRAINTS

    def _validate_xy(self, X, y, reset, dtype):
        with input_errors(XY_ACCEPTED, names=("X", "y")):
            X, y = validate_data(self, X, y, reset=reset, dtype=dtype, multi_output=False)
            y = column_or_1d(y, warn=True)
            check_classification_targets(y)
        if type_of_target(y) not in ("binary", "multiclass"):
            raise ValueError(
                f"MLPClassifier supports binary and multiclass targets, got {type_of_target(y)!r}"
            )
        return X, y

    def _targets(self, y, first, classes):
        if first:
            cls = np.unique(np.asarray(classes) if classes is not None else y)
            if len(cls) < 2:
                raise ValueError(
                    "MLPClassifier needs at least 2 classes in y; got 1 class"
                    + (f" ({cls[0]!r})" if len(cls) else "")
                )
        else:
            cls = self.classes_
        unseen = np.setdiff1d(np.unique(y), cls)
        if unseen.size:
            raise ValueError(f"y contains labels {unseen.tolist()} not in classes {cls.tolist()}")
        if first:
            self.classes_ = cls
        return np.searchsorted(cls, y).astype(np.intp), len(cls)

    def _loss_name(self):
        return "log_loss"

    def _objective(self):
        return Objective("log_loss", self.alpha, self.net_)

    def _sample_weights(self, sample_weight, X, y, incremental):
        """Sample weights times the ``class_weight`` of each row's class (None when neither)."""
        w = super()._sample_weights(sample_weight, X, y, incremental)
        class_weight = self.class_weight
        if class_weight is None:
            return w
        labels, inverse = np.unique(y, return_inverse=True)
        if isinstance(class_weight, str):  # "balanced", checked with the other parameters
            if incremental:
                raise ValueError(
                    "class_weight='balanced' is not supported by partial_fit (the class "
                    "frequencies of the whole stream are unknown); pass "
                    "sklearn.utils.class_weight.compute_class_weight('balanced', ...) as a dict"
                )
            counts = np.bincount(inverse)
            per_class = len(y) / (len(labels) * counts)
        else:
            per_class = np.array([float(class_weight.get(c, 1.0)) for c in labels.tolist()])
        factor = per_class[inverse].astype(np.float64)
        return factor if w is None else w * factor

    def _val_score(self, X, y, w=None):
        net = self.net_
        net.eval()
        pred = np.concatenate(
            [
                np.argmax(net.forward(X[s : s + _PREDICT_CHUNK]), axis=1)
                for s in range(0, X.shape[0], _PREDICT_CHUNK)
            ]
        )
        return float(accuracy_score(y, pred, sample_weight=w))

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``(X, y)``. ``classes`` (all labels) is required on the first call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            Every class of the problem; required on the first call only.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss.

        Returns
        -------
        self : object
        """
        if not hasattr(self, "net_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)

    def predict_proba(self, X):
        """Class probabilities (float64), computed with the running statistics."""
        return rows_softmax(self._forward(X))

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        return rows_softmax(self._forward(X), log=True)

    def predict(self, X):
        """Most probable class of each row."""
        logits = self._forward(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags
