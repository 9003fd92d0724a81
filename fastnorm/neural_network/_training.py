"""The training loop of the MLP estimators: mini-batches, epochs, callbacks."""

import copy
import math
import warnings

import numpy as np
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from .. import functional as F
from ._callbacks import (
    Callback,
    DivergenceCheck,
    EarlyStopping,
    LearningRateSchedule,
    RenormSchedule,
    progress_callback,
)
from ._network import BATCH_STATISTICS

__all__ = ["TrainingLoop", "fit_epochs"]


def batch_size(est, n):
    if est.batch_size == "auto":
        return min(200, n)
    bs = int(est.batch_size)
    if bs > n:
        warnings.warn(
            f"batch_size={bs} is larger than the {n} training samples; it is clipped to {n}.",
            UserWarning,
            stacklevel=4,
        )
        bs = n
    return bs


def batch_bounds(n, bs, merge_single_row):
    """``[start, stop]`` of each mini-batch; with ``merge_single_row`` a last batch of one row
    joins the previous one (batch norm is never trained on a single row)."""
    bounds = [[s, min(s + bs, n)] for s in range(0, n, bs)]
    if merge_single_row and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2][1] = n
        bounds.pop()
    return bounds


def validation_split(est, X, y, w):
    """Hold out ``validation_fraction`` of the rows (stratified for classifiers when possible):
    (X, X_val, y, y_val, w, w_val), the weights None when ``w`` is."""
    n = X.shape[0]
    n_val = int(math.ceil(est.validation_fraction * n))
    if n_val < 1 or n - n_val < 2:
        raise ValueError(
            f"early_stopping needs at least 2 training and 1 validation sample; "
            f"got {n} samples with validation_fraction={est.validation_fraction}"
        )
    seed = int(est._rng.integers(0, 2**31 - 1))
    is_clf = is_classifier(est)
    rows = np.arange(n)
    try:
        train, val = train_test_split(
            rows, test_size=n_val, random_state=seed, stratify=y if is_clf else None
        )
    except ValueError:
        if not is_clf:
            raise
        train, val = train_test_split(rows, test_size=n_val, random_state=seed)
    ws = (None, None) if w is None else (w[train], w[val])
    return X[train], X[val], y[train], y[val], *ws


def checkpoint(est):
    """What a rollback to this point needs: copies of the weights, buffers and optimizer state
    (array copies, cheaper than a deep copy of the network) and of the other fitted attributes."""
    names = [k for k in est._fitted_names() if k not in ("net_", "_optimizer")]
    small = copy.deepcopy({k: vars(est)[k] for k in names})
    return est.net_.state_dict(), est._optimizer.state_dict(), small


def rollback(est, saved):
    """Put ``est`` back to a :func:`checkpoint` (the network arrays are written in place)."""
    net_state, optimizer_state, small = saved
    est.net_.load_state_dict(net_state)
    est._optimizer.load_state_dict(optimizer_state)
    for k in est._fitted_names():
        if k not in ("net_", "_optimizer"):
            del est.__dict__[k]
    est.__dict__.update(small)


class TrainingLoop:
    """Epochs of mini-batch steps on ``est.net_`` with ``est._optimizer``; callbacks run at the
    hooks described in :mod:`fastnorm.neural_network._callbacks`."""

    def __init__(self, est, objective, bounds, callbacks, validating=False):
        self.est, self.net, self.objective = est, est.net_, objective
        self.bounds, self.n_batches = bounds, len(bounds)
        self.callbacks = list(callbacks)
        self._hooks = {}
        self.validating = validating
        self.epoch = None
        self.completed_epochs = 0
        self.stop = False
        self.stop_message = ""

    def _hooks_of(self, hook):
        """The bound ``hook`` of the callbacks that override it (some run per mini-batch)."""
        hooks = self._hooks.get(hook)
        if hooks is None:
            hooks = self._hooks[hook] = [
                getattr(cb, hook)
                for cb in self.callbacks
                if getattr(type(cb), hook, None) is not getattr(Callback, hook, None)
            ]
        return hooks

    def _call(self, hook, *args):
        for fn in self._hooks_of(hook):
            fn(self, *args)

    def _run_batches(self, X, y, w, order):
        """One pass over the mini-batches; returns (sum of batch losses * sizes, rows seen)."""
        net, opt, objective, est = self.net, self.est._optimizer, self.objective, self.est
        # the penalty's sum of squares in one dot product over the flat buffer of the weights
        squares_of_weights = opt.l2_squares if opt.flat and objective.alpha else lambda: None
        batch_begin, batch_end = self._hooks_of("on_batch_begin"), self._hooks_of("on_batch_end")
        total = 0.0
        seen = 0
        for j, (s, e) in enumerate(self.bounds):
            if order is None:
                xb, yb, wb = X[s:e], y[s:e], None if w is None else w[s:e]
            else:
                ids = order[s:e]
                xb, yb = X.take(ids, axis=0), y.take(ids, axis=0)
                wb = None if w is None else w.take(ids)
            est.t_ += e - s  # samples seen, as scikit-learn counts them
            if wb is not None and not np.any(wb > 0):
                continue  # a batch without weight carries no information
            for hook in batch_begin:
                hook(self, j)
            out = net.forward(xb) if wb is None else net.forward(xb, sample_weight=wb)
            loss, grad = objective(out, yb, wb, squares_of_weights())
            if math.isfinite(loss):
                net.backward(grad)
                if opt.flat:  # the L2 penalty is added inside the one fused update
                    opt.step(l2=objective.penalty_factor())
                else:
                    objective.add_penalty_gradients()
                    opt.step()
                total += loss * (e - s)
                seen += e - s
            for hook in batch_end:
                hook(self, j, loss, total / max(seen, 1))
            F.deliver_interrupts()  # a Ctrl-C held during the step arrives here
        return total, seen

    def run(self, X, y, w, n_epochs):
        """Up to ``n_epochs`` epochs; returns True when a callback stopped training."""
        est, net = self.est, self.net
        n = X.shape[0]
        for _ in range(n_epochs):
            saved = checkpoint(est)  # an interrupted epoch is rolled back to here
            self.epoch = est._epochs + 1
            order = est._rng.permutation(n) if est.shuffle else None
            net.train()
            self._call("on_epoch_begin")
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    total, seen = self._run_batches(X, y, w, order)
                net.eval()
                epoch_loss = total / max(seen, 1)
                est.n_iter_ += 1
                est._epochs += 1
                est.loss_ = epoch_loss
                est.loss_curve_.append(epoch_loss)
                self._call("on_epoch_end", epoch_loss)
            except BaseException as exc:
                net.eval()
                self._call("on_epoch_error")
                if isinstance(exc, KeyboardInterrupt):
                    rollback(est, saved)
                raise
            self.completed_epochs += 1
            if self.stop:
                break
        self._call("on_train_end")
        return self.stop


def fit_epochs(est, X, y, w, n_epochs, incremental, progress=None):
    """Train ``est.net_`` for up to ``n_epochs`` epochs on ``(X, y)`` (``y`` already encoded)
    with sample weights ``w`` (None: all ones).
    ``progress`` (a dict) receives ``"epochs"``: the epochs completed so far, also when an
    exception ends training."""
    n = X.shape[0]
    batch_stats = est.normalization in BATCH_STATISTICS
    if batch_stats and n < 2:
        raise ValueError(
            f"normalization={est.normalization!r} needs at least 2 training samples, got {n} "
            "sample (n_samples=1)"
        )
    X_val = y_val = w_val = None
    if est.early_stopping and not incremental:
        X, X_val, y, y_val, w, w_val = validation_split(est, X, y, w)
        n = X.shape[0]
    bounds = batch_bounds(n, batch_size(est, n), merge_single_row=batch_stats)
    callbacks = [
        LearningRateSchedule(),
        RenormSchedule(),
        DivergenceCheck(),
        EarlyStopping(X_val, y_val, w_val, stop=not incremental),
    ]
    if est.verbose:
        callbacks.append(progress_callback(n_epochs))
    loop = TrainingLoop(est, est._objective(), bounds, callbacks, validating=X_val is not None)
    est.n_iter_ = 0  # as scikit-learn: the epochs of this call (t_ and loss_curve_ accumulate)
    try:
        stopped = loop.run(X, y, w, n_epochs)
    finally:
        if progress is not None:
            progress["epochs"] = loop.completed_epochs
    if not incremental and not stopped:
        warnings.warn(
            f"Stochastic optimizer: maximum iterations ({est.max_iter}) reached "
            f"and the optimization hasn't converged yet.",
            ConvergenceWarning,
            stacklevel=4,  # the user's fit()
        )
