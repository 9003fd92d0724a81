"""PreciseBN: batch-norm running statistics recomputed exactly over a data set."""

import numpy as np

from .. import functional as F
from .._validation import POSITIVE_INT, check
from .container import Sequential
from .normalization import BatchNorm

__all__ = ["precise_batchnorm_statistics"]


def _batch_moments(h):
    """(count, mean, M2) per feature of a 2-D batch, from the kernels (float64 accumulation)."""
    mean, m2 = F.feature_moments(h)
    return np.full_like(mean, h.shape[0]), mean, m2


def _merge(total, batch):
    return batch if total is None else F.merge_moments(*total, *batch)


def precise_batchnorm_statistics(seq, X, batch_size=1024):
    """Re-estimate the running mean and variance of every batch norm of ``seq`` exactly over
    ``X`` (2-D, rows are samples); returns ``seq``.

    PreciseBN (Wu & Johnson, 2021): with the weights frozen, the input of each batch-norm layer
    (a direct child of ``seq``) is computed for all of ``X`` in eval mode, earlier batch norms
    already using their recomputed statistics, and its mean and variance over all rows replace
    the moving averages. The variance is the unbiased one (divided by ``n - 1``), as the moving
    average of training keeps it. Per-batch ``(count, mean, M2)`` come from the kernels in
    float64 and are merged with Chan's formula, so the result does not depend on ``batch_size``
    beyond rounding. The training mode of ``seq`` is restored afterwards.

    Parameters
    ----------
    seq : Sequential
        The network; its batch norms must be direct children.
    X : ndarray of shape (n_samples, n_features)
        The data whose statistics the batch norms should hold (usually the training set).
    batch_size : int, default 1024
        Rows per forward pass (memory only: the result does not depend on it).

    Returns
    -------
    Sequential
        ``seq``, with its running statistics replaced.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import BatchNorm, Linear, Sequential, precise_batchnorm_statistics
    >>> net = Sequential(Linear(3, 2, bias=False, random_state=0), BatchNorm(2))
    >>> X = np.random.default_rng(0).normal(5.0, 2.0, size=(1000, 3)).astype(np.float32)
    >>> _ = precise_batchnorm_statistics(net, X, batch_size=100)
    >>> h = X @ net[0].weight.T  # the batch norm's input
    >>> np.allclose(net[1].running_mean, h.mean(axis=0), atol=1e-4)
    True
    >>> np.allclose(net[1].running_var, h.var(axis=0, ddof=1), rtol=1e-4)
    True
    """
    if not isinstance(seq, Sequential):
        raise TypeError("precise_batchnorm_statistics expects a Sequential")
    batch_size = check(batch_size, "batch_size", POSITIVE_INT)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(
            f"precise_batchnorm_statistics needs a 2-D X with at least 2 rows, got shape {X.shape}"
        )
    was_training = seq.training
    seq.eval()
    try:
        # activations of every batch at the end of the last segment: one pass per layer
        cached = [X[s : s + batch_size] for s in range(0, X.shape[0], batch_size)]
        start = 0
        for i, layer in enumerate(seq.layers):
            if not isinstance(layer, BatchNorm) or layer.running_mean is None:
                continue
            segment = seq.layers[start:i]
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
        seq.train(was_training)
        for m in seq.modules():
            m._saved = {}  # the forward passes above are not a training step
    return seq
