"""Callbacks of the training loop: divergence checks, early stopping, progress output.

Each callback gets the :class:`~fastnorm.neural_network._training.TrainingLoop` (``loop.est`` is
the estimator, ``loop.net`` its network, ``loop.epoch`` the epoch being run, ``loop.n_batches``)
at these hooks; all default to doing nothing:

- ``on_epoch_begin(loop)`` before the first mini-batch of an epoch;
- ``on_batch_begin(loop, batch)`` before each mini-batch's forward pass;
- ``on_batch_end(loop, batch, loss, mean_loss)`` after each optimizer step (``batch`` counts from
  0, ``loss`` is the batch's, ``mean_loss`` the epoch's running mean);
- ``on_epoch_end(loop, loss)`` once the epoch's mean training loss is recorded; setting
  ``loop.stop = True`` (with ``loop.stop_message``) ends training after this epoch;
- ``on_epoch_error(loop)`` when the epoch raised (the error is re-raised afterwards);
- ``on_train_end(loop)`` after the last epoch.
"""

import math
import sys

import numpy as np

__all__ = [
    "TrainingDivergedError",
    "Callback",
    "DivergenceCheck",
    "EarlyStopping",
    "LearningRateSchedule",
    "RenormSchedule",
    "ProgressBar",
    "PrintProgress",
]


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite.

    Raised by ``fit`` and ``partial_fit`` of the MLP estimators; the estimator is left as it was
    before the call. A lower ``learning_rate_init`` (or a normalization layer) usually helps.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm import MLPRegressor
    >>> from fastnorm.neural_network import TrainingDivergedError
    >>> X = np.random.default_rng(0).standard_normal((64, 3))
    >>> model = MLPRegressor((32,), solver="sgd", learning_rate_init=1e6, max_iter=5,
    ...                      random_state=0)
    >>> try:
    ...     model.fit(X, X.sum(axis=1))
    ... except TrainingDivergedError:
    ...     print("diverged; fitted:", hasattr(model, "net_"))
    diverged; fitted: False
    """


class Callback:
    def on_epoch_begin(self, loop):
        pass

    def on_batch_begin(self, loop, batch):
        pass

    def on_batch_end(self, loop, batch, loss, mean_loss):
        pass

    def on_epoch_end(self, loop, loss):
        pass

    def on_epoch_error(self, loop):
        pass

    def on_train_end(self, loop):
        pass


class DivergenceCheck(Callback):
    """Stop with :class:`TrainingDivergedError` as soon as a batch loss is NaN or infinite, and
    after an epoch whose parameters are not all finite."""

    def on_batch_end(self, loop, batch, loss, mean_loss):
        if not math.isfinite(loss):
            est = loop.est
            raise TrainingDivergedError(
                f"{type(est).__name__} training diverged: the loss became {loss} at "
                f"epoch {loop.epoch}, mini-batch {batch + 1}/{loop.n_batches} (solver="
                f"{est.solver!r}, learning_rate_init={est.learning_rate_init}). Try a smaller "
                f"learning_rate_init, a normalization layer, or scaling the inputs/targets."
            )

    def on_epoch_end(self, loop, loss):
        if not all(np.isfinite(p).all() for p in loop.net.params.values()):
            raise TrainingDivergedError(
                f"{type(loop.est).__name__} training diverged: parameters became NaN or "
                f"infinite in epoch {loop.epoch}. Try a smaller learning_rate_init."
            )


class EarlyStopping(Callback):
    """scikit-learn's rule: stop when the monitored value has not improved by ``tol`` for
    ``n_iter_no_change`` consecutive epochs (``stop`` False: count only, as ``partial_fit`` does).

    With validation data the monitored value is ``est._val_score`` on it (higher is better),
    recorded in ``est.validation_scores_``, and the weights of the best score are loaded back at
    the end; otherwise it is the training loss. The count lives in the estimator
    (``_no_improvement_count``), so it carries over warm starts and ``partial_fit`` calls.
    """

    def __init__(self, X_val=None, y_val=None, w_val=None, stop=True):
        self.X_val, self.y_val, self.w_val, self.stop = X_val, y_val, w_val, stop
        self.best_state = None

    def on_epoch_end(self, loop, loss):
        est = loop.est
        if self.X_val is not None:
            score = est._val_score(self.X_val, self.y_val, self.w_val)
            est.validation_scores_.append(score)
            worse = score < est.best_validation_score_ + est.tol
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_state = loop.net.state_dict()
        else:
            worse = loss > est.best_loss_ - est.tol
        est._no_improvement_count = est._no_improvement_count + 1 if worse else 0
        est.best_loss_ = min(est.best_loss_, loss)
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.X_val is not None else "Training loss"
            message = (
                f"{what} did not improve more than tol={est.tol} for "
                f"{est.n_iter_no_change} consecutive epochs."
            )
            # learning_rate="adaptive": divide the rate by 5 instead, until it is below 1e-6
            if est.learning_rate == "adaptive" and est._learning_rate > 1e-6:
                est._learning_rate /= 5.0
                est._no_improvement_count = 0
                if est.verbose:
                    print(f"{message} Setting learning rate to {est._learning_rate:f}")
                return
            if not self.stop:  # partial_fit counts, fit stops
                return
            loop.stop = True
            loop.stop_message = message + (
                " Learning rate too small. Stopping."
                if est.learning_rate == "adaptive"
                else " Stopping."
            )

    def on_train_end(self, loop):
        if self.best_state is not None:
            # keep the weights (and running statistics) of the best validation score
            loop.net.load_state_dict(self.best_state)


class LearningRateSchedule(Callback):
    """Sets the optimizer's learning rate from ``est.learning_rate``, as scikit-learn defines the
    schedules (there for ``solver="sgd"`` only; here for every solver):

    - ``"constant"``: ``learning_rate_init``;
    - ``"invscaling"``: after each epoch ``learning_rate_init / (t_ + 1) ** power_t``, ``t_``
      the number of samples seen;
    - ``"adaptive"``: ``learning_rate_init``, divided by 5 each time the stopping rule fires
      (:class:`EarlyStopping`), training ending once it is below 1e-6;
    - ``"cosine"``, which scikit-learn lacks: per mini-batch, a linear warm-up over the first
      ``warmup_fraction`` of the ``max_iter`` epochs, then half a cosine from
      ``learning_rate_init`` down to 0 at epoch ``max_iter``.

    The current rate is the fitted attribute ``_learning_rate``; it carries over ``partial_fit``
    calls and is reset by a (warm-started) ``fit``."""

    def on_epoch_begin(self, loop):
        loop.est._optimizer.lr = loop.est._learning_rate

    def on_batch_begin(self, loop, batch):
        est = loop.est
        if est.learning_rate == "cosine":
            start = (est._epochs + batch / loop.n_batches) / est.max_iter
            end = (est._epochs + (batch + 1) / loop.n_batches) / est.max_iter
            est._optimizer.lr = cosine_rate(est.learning_rate_init, start, end, est.warmup_fraction)

    def on_epoch_end(self, loop, loss):
        est = loop.est
        if est.learning_rate == "invscaling":
            est._learning_rate = est.learning_rate_init / (est.t_ + 1) ** est.power_t


class RenormSchedule(Callback):
    """Batch renormalization's schedule (Ioffe 2017, scaled to the planned training): plain batch
    norm (r_max = 1, d_max = 0) for the first 5 % of the ``max_iter`` epochs, then r_max relaxed
    linearly to its final value (3) over the next 30 % and d_max to its final value (5) over the
    next 20 %; per mini-batch. After training the layers hold the final values again (they do
    not affect inference)."""

    WARMUP, R_SPAN, D_SPAN = 0.05, 0.30, 0.20

    def _layers(self, loop):
        return [m for m in loop.net.modules() if getattr(m, "renorm", False)]

    def on_epoch_begin(self, loop):
        self.layers = self._layers(loop)  # per epoch, not per mini-batch: a network walk

    def on_batch_begin(self, loop, batch):
        layers = getattr(self, "layers", None)
        if layers is None:
            layers = self.layers = self._layers(loop)
        if not layers:
            return
        est = loop.est
        progress = (est._epochs + batch / loop.n_batches) / est.max_iter
        after = max(0.0, progress - self.WARMUP)
        for m in layers:
            final = type(m).r_max, type(m).d_max
            m.r_max = 1.0 + (final[0] - 1.0) * min(1.0, after / self.R_SPAN)
            m.d_max = final[1] * min(1.0, after / self.D_SPAN)

    def on_train_end(self, loop):
        for m in self._layers(loop):
            m.r_max, m.d_max = type(m).r_max, type(m).d_max

    def on_epoch_error(self, loop):
        self.on_train_end(loop)


def cosine_rate(initial, start, end, warmup):
    """The cosine schedule's rate for a step from ``start`` to ``end`` (fractions of training):
    ``initial * end / warmup`` during the warm-up (never 0), then the cosine at ``start``."""
    if start < warmup:
        return initial * min(1.0, end / warmup)
    progress = min(1.0, (start - warmup) / (1.0 - warmup))
    return initial * 0.5 * (1.0 + math.cos(math.pi * progress))


class PrintProgress(Callback):
    """One printed line per epoch (``verbose`` without tqdm), as scikit-learn's MLP prints."""

    def on_epoch_end(self, loop, loss):
        msg = f"Iteration {loop.epoch}, loss = {loss:.8f}"
        if loop.validating:
            msg += f", validation score = {loop.est.validation_scores_[-1]:.6f}"
        print(msg)
        if loop.stop:
            print(loop.stop_message)


class ProgressBar(Callback):
    """One tqdm bar on stderr for the whole fit (one step per epoch) with the epoch's loss and,
    with early stopping, the validation score (``verbose`` with tqdm)."""

    def __init__(self, tqdm, n_epochs):
        self.tqdm = tqdm
        self.n_epochs = n_epochs
        self.bar = None

    def on_epoch_begin(self, loop):
        if self.bar is None:
            self.bar = self.tqdm(
                total=self.n_epochs,
                desc=type(loop.est).__name__,
                unit="epoch",
                leave=True,
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def on_epoch_end(self, loop, loss):
        postfix = {"loss": f"{loss:.4g}"}
        if loop.validating:
            postfix["val_score"] = f"{loop.est.validation_scores_[-1]:.4g}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)
        if loop.stop:
            self.bar.write(loop.stop_message, file=sys.stderr)

    def on_epoch_error(self, loop):
        self.on_train_end(loop)

    def on_train_end(self, loop):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def progress_callback(n_epochs):
    """The verbose output: one tqdm bar for the fit when tqdm is installed, else a printed line
    per epoch (as scikit-learn prints)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return PrintProgress()
    return ProgressBar(tqdm, n_epochs)
