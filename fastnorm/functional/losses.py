"""Losses of the estimators' training steps, fused into one kernel pass."""

import numpy as np

from .._kernels import losses as kernels
from ._checks import FLOAT_DTYPES

__all__ = ["softmax_cross_entropy"]

_NO_WEIGHTS = np.empty(0)


def softmax_cross_entropy(logits, labels, sample_weight=None):
    """Mean cross-entropy of the softmax of ``logits`` and its gradient, in one kernel pass.

    Parameters
    ----------
    logits : ndarray of shape (N, K)
        float32 or float64 (other real dtypes are converted to float64).
    labels : array-like of int, shape (N,)
        Class indices in ``[0, K)``.
    sample_weight : array-like of shape (N,), optional
        Row weights: the loss is ``sum(w_i * nll_i) / sum(w)``.

    Returns
    -------
    loss : float
    grad : ndarray of the logits' shape and dtype
        The gradient of ``loss`` with respect to the logits, computed in float64 per row.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import softmax_cross_entropy
    >>> loss, grad = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 4), grad[0]  # log(4); softmax 1/4 minus the one-hot, / 2 rows
    (1.3863, array([-0.375,  0.125,  0.125,  0.125]))
    """
    if not (  # a training step's logits, checked cheaply
        type(logits) is np.ndarray and logits.flags.c_contiguous and logits.dtype in FLOAT_DTYPES
    ):
        logits = np.ascontiguousarray(logits)
        if logits.dtype not in FLOAT_DTYPES:
            logits = logits.astype(np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (samples, classes), got shape {logits.shape}")
    n, k = logits.shape
    if not (type(labels) is np.ndarray and labels.dtype == np.intp and labels.flags.c_contiguous):
        labels = np.ascontiguousarray(labels, dtype=np.intp)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if sample_weight is None:
        weights, sw = _NO_WEIGHTS, float(n)
    else:
        weights = np.ascontiguousarray(sample_weight, dtype=np.float64)
        if weights.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {weights.shape}")
        sw = float(np.sum(weights))
    grad = np.empty_like(logits)
    inv_sw = 1.0 / sw if sw else 0.0  # no weight: the division below raises, after the labels
    total, labels_ok = kernels.softmax_cross_entropy(logits, labels, weights, inv_sw, grad)
    if not labels_ok:  # checked by the kernel: two NumPy reductions cost more than the loss
        raise ValueError(
            f"labels must be class indices in [0, {k}), got {labels.min()}..{labels.max()}"
        )
    return total / sw, grad
