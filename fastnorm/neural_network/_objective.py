"""What the MLP estimators minimise: scikit-learn's losses, sample-weighted, with its L2 penalty.

For a mini-batch with sample weights ``w`` (ones when none are given), ``sw = sum(w)``:

- ``log_loss`` (classifier): ``sum(w_i * -log p_i[y_i]) / sw`` on the softmax of the logits;
- ``squared_error``: ``0.5 * mean over outputs of sum(w_i * (pred_i - y_i) ** 2) / sw``;
- ``poisson`` (log link, ``pred = exp(z)``): ``sum over outputs of
  sum(w_i * (y log(y / pred) - y + pred)) / sw`` (half the Poisson deviance);

plus ``0.5 * alpha * sum(W ** 2) / sw`` over the weight matrices of the linear layers (not the
biases, nor normalization parameters). The gradient with respect to the network's output is
scikit-learn's ``w_i * (pred_i - y_i) / sw`` (with ``pred = softmax``, identity or ``exp``), and
``alpha * W / sw`` is added to each weight gradient. For several squared-error outputs this is
scikit-learn's choice too: the gradient of the sum over outputs, the loss reported as their mean.

A regressor trained with ``squared_error`` predicts ``out * y_scale + y_mean`` from its network's
output ``out`` (``_y_scale``, ``_y_mean`` fitted on the first targets it saw) and is trained on
the standardized targets ``(y - y_mean) / y_scale``: the loss, its gradient and the weight of
``alpha`` do not depend on the targets' units (with raw targets of spread 77, an SGD step would
be 77 ** 2 times larger), and ``loss_`` is reported in those standardized units.
"""

import numpy as np
from scipy.special import xlogy

from ..functional import softmax_cross_entropy
from ..nn import Linear

__all__ = ["Objective", "OUTPUT_ACTIVATIONS"]

# the out_activation_ of each loss, named as scikit-learn names them
OUTPUT_ACTIVATIONS = {"log_loss": "softmax", "squared_error": "identity", "poisson": "exp"}


def _row_weights(w, n, dtype):
    """(column of row weights or None, sum of weights)."""
    if w is None:
        return None, float(n)
    return w.astype(dtype, copy=False)[:, None], float(np.sum(w, dtype=np.float64))


def squared_error(pred, y, w):
    diff = pred - y
    wcol, sw = _row_weights(w, diff.shape[0], diff.dtype)
    sq = np.square(diff, dtype=np.float64)
    per_output = np.sum(sq if wcol is None else w[:, None] * sq, axis=0) / sw
    grad = diff if wcol is None else diff * wcol
    return float(0.5 * np.mean(per_output)), grad * grad.dtype.type(1.0 / sw)


def poisson(z, y, w):
    """Half the Poisson deviance of ``exp(z)`` (computed from z, so it never overflows to
    ``log(inf)``)."""
    mu = np.exp(z.astype(np.float64))
    y64 = y.astype(np.float64)
    per_row = xlogy(y64, y64) - y64 * z - y64 + mu
    wcol, sw = _row_weights(w, z.shape[0], z.dtype)
    per_output = np.sum(per_row if w is None else w[:, None] * per_row, axis=0) / sw
    grad = (mu - y64).astype(z.dtype)
    if wcol is not None:
        grad *= wcol
    return float(np.sum(per_output)), grad * grad.dtype.type(1.0 / sw)


# log_loss: integer-encoded classes, one fused pass (called directly: it runs per mini-batch)
LOSSES = {"log_loss": softmax_cross_entropy, "squared_error": squared_error, "poisson": poisson}


class Objective:
    """The loss of ``loss_name`` and the L2 penalty ``alpha`` on ``net``'s linear weights, with
    the regressor's target affine map ``(y_scale, y_mean)`` (None for none)."""

    def __init__(self, loss_name, alpha, net, target_affine=None):
        self.loss = LOSSES[loss_name]
        self.alpha = float(alpha)
        self.linears = [layer for layer in net if isinstance(layer, Linear)]
        self.target_affine = target_affine

    def __call__(self, out, y, w, weight_squares=None):
        """(loss, gradient w.r.t. ``out``) of the batch, the penalty included in the loss;
        ``weight_squares``: ``sum(W ** 2)`` over the linear weights when the caller has it
        (``Optimizer.l2_squares``), else it is computed here."""
        if self.target_affine is not None:
            scale, mean = self.target_affine
            y = ((y - mean) / scale).astype(out.dtype)
        loss, grad = self.loss(out, y, w)
        sw = out.shape[0] if w is None else float(np.sum(w, dtype=np.float64))
        if self.alpha:
            if weight_squares is None:
                weight_squares = sum(
                    float(np.vdot(m.params["weight"], m.params["weight"])) for m in self.linears
                )
            loss += 0.5 * self.alpha * weight_squares / sw
        self._sw = sw
        return loss, grad

    def penalty_factor(self):
        """``alpha / sw`` of the last batch: the L2 term ``factor * W`` of each linear weight's
        gradient, which the optimizer adds in its update (``step(l2=...)``)."""
        return self.alpha / self._sw if self.alpha else 0.0

    def add_penalty_gradients(self):
        """``alpha * W / sw`` into each linear layer's weight gradient (after ``backward``), for
        an optimizer that does not add it itself."""
        if self.alpha:
            factor = self.penalty_factor()
            for m in self.linears:
                m.grads["weight"] += m.grads["weight"].dtype.type(factor) * m.params["weight"]
