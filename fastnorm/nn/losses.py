"""Losses: ``forward(prediction, target)`` returns the mean loss as a Python float and saves what
``backward()`` needs; ``backward()`` returns the gradient of that mean with respect to the
prediction."""

import numpy as np

from .layers import real_input

__all__ = ["CrossEntropyLoss", "MSELoss", "softmax", "log_softmax"]


def log_softmax(logits, axis=-1):
    """``log(softmax(logits))`` with the log-sum-exp shift (no overflow for large logits)."""
    z = logits - np.max(logits, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def softmax(logits, axis=-1):
    """Row-wise softmax, shifted by the row maximum so that it never overflows."""
    e = np.exp(logits - np.max(logits, axis=axis, keepdims=True))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


class _Loss:
    """``forward`` saves what ``backward`` needs in ``self._saved``, never pickled or copied."""

    def __init__(self):
        self._saved = {}

    def __call__(self, prediction, target):
        return self.forward(prediction, target)

    def __getstate__(self):
        return {**vars(self), "_saved": {}}

    def __deepcopy__(self, memo):
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__getstate__())
        return new


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy on integer class labels, averaged over the batch
    (``torch.nn.CrossEntropyLoss()`` with ``reduction="mean"``).

    ``forward(logits, target)``: ``logits`` of shape ``(N, K)``, ``target`` integers in
    ``[0, K)`` of shape ``(N,)``. Computed as ``logsumexp(z) - z[target]`` with ``z`` shifted by
    the row maximum; the per-row losses are summed in float64.

    ``forward`` returns the mean loss as a Python float; ``backward()`` (no argument) returns its
    gradient with respect to the logits, ``(softmax(logits) - onehot(target)) / N``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import CrossEntropyLoss
    >>> loss = CrossEntropyLoss()
    >>> logits = np.array([[0.0, 0.0], [10.0, -10.0]])
    >>> round(loss.forward(logits, np.array([0, 0])), 4)  # (log 2 + ~0) / 2
    0.3466
    >>> loss.backward().round(3)
    array([[-0.25,  0.25],
           [-0.  ,  0.  ]])
    """

    def forward(self, logits, target):
        logits = real_input(logits, "logits")
        if logits.ndim != 2 or logits.shape[1] == 0:
            raise ValueError(
                f"logits must be 2-D (N, K) with at least one class (K >= 1), got shape "
                f"{logits.shape}"
            )
        target = np.asarray(target)
        if target.shape != (logits.shape[0],):
            raise ValueError(f"target must have shape ({logits.shape[0]},), got {target.shape}")
        if not np.issubdtype(target.dtype, np.integer):
            raise TypeError("target must hold integer class indices")
        n, k = logits.shape
        if n and (target.min() < 0 or target.max() >= k):
            raise ValueError(f"target values must be in [0, {k})")
        z = logits - np.max(logits, axis=1, keepdims=True)
        e = np.exp(z)
        s = np.sum(e, axis=1, keepdims=True)
        rows = np.arange(n)
        per_row = np.log(s[:, 0]) - z[rows, target]
        e /= s
        self._saved = {"p": e, "target": target}
        return float(np.sum(per_row, dtype=np.float64) / max(n, 1))

    def backward(self):
        if "p" not in self._saved:
            raise RuntimeError("backward() called before forward()")
        g = self._saved["p"].copy()
        n = g.shape[0]
        g[np.arange(n), self._saved["target"]] -= 1
        g *= g.dtype.type(1.0 / max(n, 1))
        return g


class MSELoss(_Loss):
    """Mean squared error over all elements (``torch.nn.MSELoss()``).

    ``forward(prediction, target)`` returns the mean of ``(prediction - target) ** 2`` as a
    Python float; ``backward()`` returns ``2 * (prediction - target) / size``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import MSELoss
    >>> loss = MSELoss()
    >>> loss.forward(np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    2.5
    >>> loss.backward()
    array([1., 2.])
    """

    def forward(self, prediction, target):
        prediction = real_input(prediction, "prediction")
        target = real_input(target, "target").astype(prediction.dtype, copy=False)
        if target.shape != prediction.shape:
            raise ValueError(f"target shape {target.shape} != prediction shape {prediction.shape}")
        diff = prediction - target
        self._saved = {"diff": diff}
        return float(np.sum(np.square(diff, dtype=np.float64)) / max(diff.size, 1))

    def backward(self):
        diff = self._saved.get("diff")
        if diff is None:
            raise RuntimeError("backward() called before forward()")
        return diff * diff.dtype.type(2.0 / max(diff.size, 1))
