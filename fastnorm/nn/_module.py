"""The base class every fastnorm layer derives from."""

import numpy as np


class Module:
    """A layer with an explicit forward and backward pass.

    Contract shared by all layers (normalization, linear, activations, containers):

    - ``forward(x)`` returns the output and saves what ``backward`` needs.
    - ``backward(grad_out)`` returns the gradient with respect to the input of the last
      ``forward`` and overwrites ``grads`` (one array per key of ``params``).
    - ``params`` maps names (PyTorch's: ``"weight"``, ``"bias"``) to arrays. Optimizers update
      them in place, so a layer never rebinds an entry of ``params``.
    - ``train()`` / ``eval()`` switch ``training``; both return the layer.
    """

    training = True

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.training = True

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for key, value in self.params.items():
            self.grads[key] = np.zeros_like(value)

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        return ""
