"""Softmax cross-entropy of a mini-batch in one pass: the loss and its gradient with respect to
the logits, in float64 per row (NumPy took four passes and a float64 copy)."""

import math

from ._flags import serial_kernel


@serial_kernel
def softmax_cross_entropy(logits, labels, weights, inv_sw, grad):
    """``(sum_i w_i * -log softmax(logits_i)[labels_i], True)``; ``grad`` receives
    ``w_i * (softmax(logits_i) - onehot_i) * inv_sw``. ``weights`` empty: all ones. A label
    outside ``[0, K)``: ``(0.0, False)``, nothing computed."""
    n, k = logits.shape
    for i in range(n):
        if labels[i] < 0 or labels[i] >= k:
            return 0.0, False
    total = 0.0
    for i in range(n):
        top = -math.inf
        for j in range(k):
            top = max(top, float(logits[i, j]))
        s = 0.0
        for j in range(k):
            s += math.exp(float(logits[i, j]) - top)
        w = weights[i] if weights.shape[0] else 1.0
        total += w * (top + math.log(s) - float(logits[i, labels[i]]))
        scale = w * inv_sw / s
        for j in range(k):
            grad[i, j] = math.exp(float(logits[i, j]) - top) * scale
        grad[i, labels[i]] -= w * inv_sw
    return total, True
