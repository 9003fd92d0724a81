"""Stochastic gradient descent, ``torch.optim.SGD``'s update (see :mod:`fastnorm.nn.optim`)."""

import numpy as np

from .._validation import Boolean, check
from ..functional import sgd_step
from .optim import _NON_NEGATIVE, _REAL, Optimizer, _flat


class SGD(Optimizer):
    """Stochastic gradient descent, ``torch.optim.SGD``'s update:

    ``g += weight_decay * p``; with momentum ``buf = momentum * buf + (1 - dampening) * g``
    (``buf = g`` on the first step), ``g = g + momentum * buf`` if ``nesterov`` else ``buf``;
    ``p -= lr * g``.

    Parameters
    ----------
    params : Module, dict of str to ndarray, or iterable of ndarray
        The arrays to update in place. With a Module, ``step()`` reads its ``grads``; otherwise
        pass the gradients to ``step(grads)`` as a dict with the same keys.
    lr : float >= 0, default 0.01
        Learning rate.
    momentum : float >= 0, default 0.0
        Momentum factor.
    dampening : float, default 0.0
        Dampening of the momentum.
    weight_decay : float >= 0, default 0.0
        L2 penalty added to the gradient.
    nesterov : bool, default False
        Nesterov momentum (needs a momentum and zero dampening).

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import SGD
    >>> w = np.array([1.0, 2.0], dtype=np.float32)
    >>> opt = SGD({"w": w}, lr=0.1)
    >>> opt.step({"w": np.array([1.0, -1.0], dtype=np.float32)})
    >>> w  # updated in place: w - lr * g
    array([0.9, 2.1], dtype=float32)
    """

    def __init__(
        self,
        params,
        lr=0.01,
        momentum=0.0,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        *,
        flat=False,
        l2_names=(),
    ):
        lr = check(lr, "lr", _NON_NEGATIVE)
        momentum = check(momentum, "momentum", _NON_NEGATIVE)
        dampening = check(dampening, "dampening", _REAL)
        weight_decay = check(weight_decay, "weight_decay", _NON_NEGATIVE)
        nesterov = check(nesterov, "nesterov", Boolean())
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
            ),
            flat,
            l2_names,
        )
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.dampening = float(dampening)
        self.weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)

    @property
    def _state_keys(self):
        return ("momentum_buffer",) if self.momentum != 0.0 else ()

    def _flat_update(self, group, l2):
        first = self.momentum != 0.0 and not group.started
        buf = group.state["momentum_buffer"] if self.momentum != 0.0 else group.p
        sgd_step(
            group.p,
            group.g,
            buf,
            self.lr,
            self.momentum,
            self.dampening,
            self.weight_decay,
            self.nesterov,
            first,
            group.l2_count,
            l2,
        )
        if first:
            group.started = True
            group.publish(self.state)

    def _update(self, name, p, g, state):
        first = "momentum_buffer" not in state
        if self.momentum != 0.0 and first:
            state["momentum_buffer"] = np.zeros_like(p)
        buf = state.get("momentum_buffer")
        pf, gf = _flat(p), _flat(np.ascontiguousarray(g, dtype=p.dtype))
        if pf is not None and gf is not None:
            bf = buf.reshape(-1) if buf is not None else pf
            sgd_step(
                pf,
                gf,
                bf,
                self.lr,
                self.momentum,
                self.dampening,
                self.weight_decay,
                self.nesterov,
                first,
            )
            return
        g = np.asarray(g, dtype=p.dtype)
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            if first:
                buf[...] = g
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


# saved models name it by its public module (files written before the move load unchanged)
SGD.__module__ = "fastnorm.nn.optim"
