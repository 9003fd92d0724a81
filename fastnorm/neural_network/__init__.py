"""scikit-learn multi-layer perceptrons with normalization layers, trained on the CPU.

:class:`MLPClassifier` and :class:`MLPRegressor` build a :class:`~fastnorm.nn.Sequential`
``[Linear -> Norm -> activation -> Dropout] * len(hidden_layer_sizes) -> Linear``: the
normalization sits between the linear layer and the activation, as in the batch-norm paper.
Training uses mini-batches, PyTorch's optimizers (``"adam"``, ``"adamw"``, ``"sgd"``) and
scikit-learn's objective: its losses (``log_loss``; ``squared_error`` or ``poisson`` for the
regressor), ``sample_weight`` / ``class_weight`` as a weighted mean over each mini-batch, the L2
penalty ``alpha`` and the learning-rate schedules (plus ``"cosine"``). Same weights in, the same
loss and SGD step come out as from scikit-learn's MLPs (tests/test_mlp_sklearn_parity.py).

Behaviour worth knowing:

- Inference (``predict``, ``predict_proba``, ``score``) runs the network in eval mode: batch norm
  uses its running statistics, never the statistics of the rows being predicted, so predicting one
  row at a time gives the same result as predicting the whole set. It runs on a float64 copy of
  the current weights of ``net_``, made on each call (so edited or loaded weights are used):
  float32 BLAS products round differently depending on how many rows they have (~1e-6 relative),
  float64 ones ~1e-16, so batching does not change predictions. This is slower than float32;
  ``model.net_.eval().forward(X.astype(np.float32))`` gives the float32 logits directly.
- ``batch_size`` larger than the training set is clipped to its size (with a warning), as in
  scikit-learn. With ``normalization="batch"``, ``batch_size=1`` is rejected (batch statistics of
  one row are undefined), a training set of one row is rejected, and a final mini-batch of a single
  row is merged into the previous one.
- The regressor (``squared_error``) learns standardized targets and predicts
  ``out * _y_scale + _y_mean``: raw targets of any scale train as well as scaled ones.
- ``sample_weight`` weights the loss and batch norm's training statistics (weighted mean and
  variance per mini-batch): integer weights equal repeated rows, up to rounding and to how the
  rows fall into mini-batches.
- Small data sets: a normalization layer makes training fast enough that the default
  ``max_iter=200`` can overfit (on scikit-learn's diabetes data, 331 training rows, a (64, 64)
  network with batch norm peaks near epoch 25); use ``early_stopping=True``, ``dropout`` or fewer
  epochs there.
- NaN or infinity in ``X`` or ``y``, a wrong number of features, a single class: ``ValueError``.
- A run whose loss becomes NaN or infinite stops with :class:`TrainingDivergedError`; the
  estimator is left as it was before the call (unfitted after a fresh ``fit``).
- One rule for a ``fit`` or ``partial_fit`` that does not finish: any error (bad input found by
  validation included) leaves the estimator exactly as it was before the call. Ctrl-C
  (``KeyboardInterrupt``) is the exception once an epoch of the call has completed: training
  stops at the next mini-batch and the model keeps the last completed epoch, with consistent
  weights, optimizer state, ``n_iter_``, ``t_`` and ``loss_curve_``; it can be used, saved or
  trained further. Interrupted during its first epoch, the call is undone like an error.

Layout: ``_base`` (parameters, validation, fitted state, predict), ``_classifier`` /
``_regressor``, ``_network`` (layer registry, optimizer), ``_objective`` (losses, weights,
penalty), ``_training`` (the epoch loop) and ``_callbacks`` (learning-rate schedules, divergence,
early stopping, progress output), ``_model_tools`` (``coefs_``, ``save``, batch-norm tools),
``_model_file`` (``save`` / :func:`load`: model files without pickle).
"""

from ._callbacks import TrainingDivergedError
from ._classifier import MLPClassifier
from ._model_file import load
from ._regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "TrainingDivergedError", "load"]

# pickles name the classes by this package, whatever module of it defines them
for _cls in (MLPClassifier, MLPRegressor, TrainingDivergedError):
    _cls.__module__ = __name__
del _cls
