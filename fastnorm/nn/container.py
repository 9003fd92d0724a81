"""``Sequential``: a chain of layers with one forward and one backward pass."""

import copy

import numpy as np

from ._module import Module
from .layers import ReLU
from .normalization import BatchNorm

__all__ = ["Sequential", "fold_batchnorm"]


class Sequential(Module):
    """Apply ``layers`` in order; ``backward`` runs them in reverse.

    ``params`` and ``grads`` are flattened views with PyTorch ``state_dict``-style keys
    (``"0.weight"``, ``"2.bias"``, ``"1.0.weight"`` for nested containers). They are rebuilt on each
    access from the children's dictionaries, so they always hold the children's current arrays:
    updating ``seq.params[key]`` in place updates the layer.

    Parameters
    ----------
    *layers : Module
        The layers, in order (or one list or tuple of them). Indexing gives a layer, slicing a
        new ``Sequential`` sharing the same layers.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import BatchNorm, Linear, ReLU, Sequential
    >>> net = Sequential(Linear(4, 8, bias=False, random_state=0), BatchNorm(8), ReLU(),
    ...                  Linear(8, 2, random_state=1))
    >>> y = net.forward(np.ones((5, 4), dtype=np.float32))
    >>> y.shape
    (5, 2)
    >>> grad_x = net.backward(np.ones_like(y))  # fills net.grads
    >>> sorted(net.grads)
    ['0.weight', '1.bias', '1.weight', '3.bias', '3.weight']
    >>> len(net[:2])
    2
    """

    def __init__(self, *layers):
        # Module.__init__ would assign self.params / self.grads, which are properties here
        self.training = True
        self._buffer_names = {}
        self._saved = {}
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for layer in layers:
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Module instances, got {type(layer).__name__}")
        self.layers = list(layers)

    # container protocol
    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __iter__(self):
        return iter(self.layers)

    def append(self, layer):
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential takes Module instances, got {type(layer).__name__}")
        self.layers.append(layer)
        return self

    def named_children(self):
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    # flattened views
    @property
    def params(self):
        return dict(self.named_parameters())

    @property
    def grads(self):
        return {
            f"{i}.{key}": value
            for i, layer in enumerate(self.layers)
            for key, value in layer.grads.items()
        }

    def forward(self, x, sample_weight=None):
        """Each layer's forward in turn; ``sample_weight`` (row weights) reaches the layers whose
        batch statistics take it (``takes_sample_weight``: :class:`BatchNorm`). A
        :class:`BatchNorm` followed by a :class:`ReLU` runs as one call
        (``activation="relu"``): the same bits, a pass less over the data each way."""
        layers = self.layers
        n_layers = len(layers)
        fused = []
        i = 0
        while i < n_layers:
            layer = layers[i]
            kwargs = {}
            if sample_weight is not None and layer.takes_sample_weight:
                kwargs["sample_weight"] = sample_weight
            if type(layer) is BatchNorm and i + 1 < n_layers and type(layers[i + 1]) is ReLU:
                x = layer.forward(x, activation="relu", **kwargs)
                layers[i + 1]._saved["out"] = x  # what the ReLU's own backward would read
                fused.append(i + 1)
                i += 2
                continue
            x = layer.forward(x, **kwargs)
            i += 1
        self._saved["fused"] = fused
        return x

    def backward(self, grad_out):
        g = grad_out
        fused = self._saved.get("fused", ())
        i = len(self.layers) - 1
        while i >= 0:
            if i in fused:  # a ReLU whose mask the batch norm before it applies
                i -= 1
            g = self.layers[i].backward(g)
            if g is None:  # a first Linear with input_grad=False: nothing below needs it
                break
            i -= 1
        return g

    def fold_batchnorm(self):
        """Return a new ``Sequential`` with each eval-mode batch norm folded into the linear
        layer before it; see :func:`fold_batchnorm`."""
        return fold_batchnorm(self)

    def __repr__(self):
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)" if lines else "Sequential()"


def _folds_into_linear(layer):
    """A batch norm that, in eval mode, is an affine map of the last axis (the Linear's output)."""
    if not isinstance(layer, BatchNorm) or layer.running_mean is None:
        return False
    ndim = layer.last_input_ndim
    return layer.axis == -1 or (ndim is not None and layer.axis % ndim == ndim - 1)


def fold_batchnorm(seq):
    """Fold every ``Linear -> BatchNorm`` pair of ``seq`` into one ``Linear``.

    In eval mode a batch norm with running statistics is an affine map per feature,
    ``y = (x - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``, so
    ``BN(W x + b) = (s[:, None] * W) x + (b - mean) * s + beta``. The products are formed in
    float64 and cast to the layer's dtype. Returns a new ``Sequential`` (the input is not modified)
    in eval mode; nested ``Sequential`` containers are folded recursively. A batch norm that is not
    preceded by a ``Linear`` (or that does not track running statistics) is kept as it is.

    Parameters
    ----------
    seq : Sequential
        A network in eval mode (``seq.eval()``).

    Returns
    -------
    Sequential
        The folded network, in eval mode.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import BatchNorm, Linear, ReLU, Sequential, fold_batchnorm
    >>> net = Sequential(Linear(4, 8, bias=False, random_state=0), BatchNorm(8), ReLU())
    >>> x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    >>> _ = net.forward(x)  # one training step's statistics
    >>> folded = fold_batchnorm(net.eval())
    >>> folded
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): ReLU()
    )
    >>> np.allclose(folded.forward(x), net.forward(x), atol=1e-5)
    True
    """
    from .layers import Linear

    if not isinstance(seq, Sequential):
        raise TypeError("fold_batchnorm expects a Sequential")
    if seq.training:
        raise ValueError(
            "fold_batchnorm needs a Sequential in eval mode: call .eval() first "
            "(in training mode batch norm uses batch statistics and cannot be folded)"
        )
    out = []
    for layer in seq.layers:
        if isinstance(layer, Sequential):
            out.append(fold_batchnorm(layer))
            continue
        prev = out[-1] if out else None
        if isinstance(prev, Linear) and _folds_into_linear(layer):
            out[-1] = _fold_pair(prev, layer)
        else:
            out.append(copy.deepcopy(layer))  # the result must not share layers with ``seq``
    return Sequential(*out).eval()


def _fold_pair(linear, bn):
    from .layers import Linear

    mean = np.asarray(bn.running_mean, np.float64)
    var = np.asarray(bn.running_var, np.float64)
    scale = 1.0 / np.sqrt(var + float(bn.eps))
    beta = np.zeros_like(mean)
    if "weight" in bn.params:
        scale = scale * np.asarray(bn.params["weight"], np.float64)
    if "bias" in bn.params:
        beta = np.asarray(bn.params["bias"], np.float64)
    w = np.asarray(linear.params["weight"], np.float64)
    b = np.asarray(linear.params["bias"], np.float64) if "bias" in linear.params else 0.0
    folded = Linear(linear.in_features, linear.out_features, bias=True, dtype=linear.dtype)
    folded.params["weight"][...] = scale[:, None] * w
    folded.params["bias"][...] = (b - mean) * scale + beta
    folded.input_grad = linear.input_grad
    return folded.eval()
