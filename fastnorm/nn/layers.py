"""Dense layers, activations and dropout with explicit forward and backward passes.

Every layer follows the :class:`~fastnorm.nn._module.Module` contract: ``forward(x)`` saves what
``backward(grad_out)`` needs, ``backward`` returns the gradient with respect to the input and
overwrites ``grads``, ``params`` arrays are only ever updated in place.
"""

import math
import numbers

import numpy as np

from .._validation import FLOAT_DTYPE, POSITIVE_INT, Boolean, Interval, Options, check
from ..functional._checks import grad_output
from ._module import Module

__all__ = ["Linear", "ReLU", "GELU", "Tanh", "Sigmoid", "Identity", "Dropout", "init_bound"]

_INITS = ("he", "glorot", "torch")
_REAL_KINDS = "fiu"  # what layers compute on: floats, and integers promoted by NumPy


def real_input(x, name="input"):
    """``x`` as an array of real numbers (not bool, complex, strings or objects)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in _REAL_KINDS:
        raise TypeError(
            f"{name} must be an array of real numbers (float32 or float64), got dtype {arr.dtype}"
        )
    return arr


def check_grad(grad_out, shape):
    """``grad_out`` checked against the shape of what the forward pass returned."""
    return grad_output(grad_out, shape, None)


def saved(layer, key):
    """What ``forward`` saved for ``backward``; a ``RuntimeError`` before any forward pass."""
    value = layer._saved.get(key)
    if value is None:
        raise RuntimeError("backward() called before forward()")
    return value


def init_bound(init, fan_in, fan_out):
    """Half-width of the uniform initialisation ``U(-bound, bound)``.

    ``"he"`` (Kaiming uniform, gain sqrt(2), for ReLU-like activations): ``sqrt(6 / fan_in)``;
    ``"glorot"`` (Xavier uniform, for tanh / sigmoid): ``sqrt(6 / (fan_in + fan_out))``;
    ``"torch"`` (``torch.nn.Linear``'s default): ``1 / sqrt(fan_in)``.
    """
    if init == "he":
        return math.sqrt(6.0 / fan_in)
    if init == "glorot":
        return math.sqrt(6.0 / (fan_in + fan_out))
    if init == "torch":
        return 1.0 / math.sqrt(fan_in)
    check(init, "init", Options(*_INITS))


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` of shape ``(out_features, in_features)``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    init : {"he", "glorot", "torch"}, default "he"
        Uniform initialisation of the weight (see :func:`init_bound`); the bias starts at zero
        (``"torch"`` draws it from the same uniform as the weight, like PyTorch).
    random_state : int, numpy.random.Generator or None
        Seed or generator for the initialisation.
    dtype : numpy dtype, default float32

    The matrix products go to BLAS through ``numpy.matmul``; the weight and bias gradients are
    written into the existing ``grads`` arrays. Set ``input_grad = False`` on a first layer to
    skip computing the gradient with respect to the data (``backward`` then returns ``None``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import Linear
    >>> linear = Linear(3, 2, random_state=0)
    >>> linear.weight.shape, linear.bias
    ((2, 3), array([0., 0.], dtype=float32))
    >>> x = np.ones((4, 3), dtype=np.float32)
    >>> y = linear.forward(x)
    >>> np.allclose(y, x @ linear.weight.T)
    True
    >>> grad_x = linear.backward(np.ones_like(y))
    >>> linear.grads["bias"]  # the sum of grad_out over the rows
    array([4., 4.], dtype=float32)
    """

    def __init__(
        self,
        in_features,
        out_features,
        bias=True,
        *,
        init="he",
        random_state=None,
        dtype=np.float32,
    ):
        super().__init__()
        in_features = check(in_features, "in_features", POSITIVE_INT)
        out_features = check(out_features, "out_features", POSITIVE_INT)
        bias = check(bias, "bias", Boolean())
        self.in_features = in_features
        self.out_features = out_features
        self.dtype = check(dtype, "dtype", FLOAT_DTYPE)
        self.init = check(init, "init", Options(*_INITS))
        self.input_grad = True
        rng = np.random.default_rng(random_state)
        bound = init_bound(init, in_features, out_features)
        self.register_parameter(
            "weight", rng.uniform(-bound, bound, (out_features, in_features)).astype(self.dtype)
        )
        if bias:
            if init == "torch":
                b = rng.uniform(-bound, bound, out_features).astype(self.dtype)
            else:
                b = np.zeros(out_features, self.dtype)
            self.register_parameter("bias", b)

    @property
    def weight(self):
        return self.params["weight"]

    @property
    def bias(self):
        return self.params.get("bias")

    def forward(self, x):
        if not (  # the per-step case, checked cheaply
            type(x) is np.ndarray
            and x.dtype == self.dtype
            and x.ndim
            and x.shape[-1] == self.in_features
        ):
            x = real_input(x)
            if x.ndim < 1 or x.shape[-1] != self.in_features:
                raise ValueError(
                    f"input must have in_features={self.in_features} features in its last "
                    f"dimension, got shape {x.shape}"
                )
            if x.dtype != self.dtype:
                x = x.astype(self.dtype)
        self._saved["x"] = x
        out = np.matmul(x, self.params["weight"].T)
        b = self.params.get("bias")
        if b is not None:
            out += b
        return out

    def backward(self, grad_out):
        x = saved(self, "x")
        grad_out = check_grad(grad_out, x.shape[:-1] + (self.out_features,))
        if x.ndim == 2:
            g2, x2 = grad_out, x
        else:
            g2, x2 = grad_out.reshape(-1, self.out_features), x.reshape(-1, self.in_features)
        weight = self.params["weight"]
        gw = self.grads.get("weight")
        if gw is None or gw.shape != weight.shape or gw.dtype != self.dtype:
            gw = self.grads["weight"] = np.empty_like(weight)
        np.matmul(g2.T, x2, out=gw)
        if "bias" in self.params:
            gb = self.grads.get("bias")
            if gb is None or gb.shape != self.params["bias"].shape or gb.dtype != self.dtype:
                gb = self.grads["bias"] = np.empty_like(self.params["bias"])
            np.add.reduce(g2, axis=0, out=gb)  # np.sum's own Python costs as much
        if not self.input_grad:
            return None
        return np.matmul(grad_out, weight)

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={'bias' in self.params}"
        )


class _Activation(Module):
    """Elementwise activation without parameters."""

    def forward(self, x):
        raise NotImplementedError


class Identity(_Activation):
    """``y = x``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import Identity
    >>> Identity().forward(np.array([-1.0, 2.0]))
    array([-1.,  2.])
    """

    def forward(self, x):
        return x

    def backward(self, grad_out):
        return grad_out


class ReLU(_Activation):
    """``y = max(x, 0)``; the gradient at 0 is 0 (as in PyTorch).

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import ReLU
    >>> relu = ReLU()
    >>> relu.forward(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    >>> relu.backward(np.ones(3))
    array([0., 0., 1.])
    """

    def forward(self, x):
        x = real_input(x)
        out = np.maximum(x, x.dtype.type(0))
        self._saved["out"] = out
        return out

    def backward(self, grad_out):
        out = saved(self, "out")
        # where out == 0 (x <= 0) the gradient is 0; multiplying by the mask is faster than
        # np.where here
        return check_grad(grad_out, out.shape) * (out > 0)


class GELU(_Activation):
    """``y = x * Phi(x)`` (exact, with erf) or the tanh approximation, like ``torch.nn.GELU``.

    Parameters
    ----------
    approximate : {"none", "tanh"}, default "none"
        ``"none"``: ``Phi`` is the normal distribution function (with ``erf``); ``"tanh"``: its
        tanh approximation.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import GELU
    >>> GELU().forward(np.array([-1.0, 0.0, 1.0])).round(4)
    array([-0.1587,  0.    ,  0.8413])
    """

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = check(approximate, "approximate", Options("none", "tanh"))

    def forward(self, x):
        x = real_input(x)
        self._saved["x"] = x
        if self.approximate == "tanh":
            c = math.sqrt(2.0 / math.pi)
            t = np.tanh(c * (x + 0.044715 * x**3))
            self._saved["t"] = t
            return 0.5 * x * (1 + t)
        from scipy.special import erf

        cdf = 0.5 * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))
        self._saved["cdf"] = cdf
        return x * cdf

    def backward(self, grad_out):
        x = saved(self, "x")
        grad_out = check_grad(grad_out, x.shape)
        if self.approximate == "tanh":
            c = math.sqrt(2.0 / math.pi)
            t = self._saved["t"]
            d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
        else:
            pdf = np.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))
            d = self._saved["cdf"] + x * pdf
        return (grad_out * d).astype(grad_out.dtype, copy=False)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Tanh(_Activation):
    """``y = tanh(x)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import Tanh
    >>> Tanh().forward(np.array([0.0, 1.0])).round(4)
    array([0.    , 0.7616])
    """

    def forward(self, x):
        out = np.tanh(real_input(x))
        self._saved["out"] = out
        return out

    def backward(self, grad_out):
        out = saved(self, "out")
        return check_grad(grad_out, out.shape) * (1 - out * out)


class Sigmoid(_Activation):
    """``y = 1 / (1 + exp(-x))``, computed without overflow.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import Sigmoid
    >>> Sigmoid().forward(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """

    def forward(self, x):
        from scipy.special import expit

        out = expit(real_input(x))
        self._saved["out"] = out
        return out

    def backward(self, grad_out):
        out = saved(self, "out")
        return check_grad(grad_out, out.shape) * out * (1 - out)


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the rest
    by ``1 / (1 - p)``; in eval mode, the identity.

    Parameters
    ----------
    p : float in [0, 1], default 0.5
        Probability of zeroing each element.
    random_state : int, numpy.random.Generator or None
        Seeds the masks.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import Dropout
    >>> drop = Dropout(0.5, random_state=0)
    >>> y = drop.forward(np.ones(8))
    >>> sorted(set(y.tolist()))  # zeroed, or scaled by 1 / (1 - p)
    [0.0, 2.0]
    >>> drop.eval().forward(np.ones(3))  # eval mode: the identity
    array([1., 1., 1.])
    """

    def __init__(self, p=0.5, *, random_state=None):
        super().__init__()
        self.p = check(p, "p", Interval(numbers.Real, 0.0, 1.0))
        self.rng = np.random.default_rng(random_state)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._saved.pop("mask", None)
            return x
        x = real_input(x)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        if self.p == 1.0:
            mask = np.zeros(x.shape, dtype)
        else:
            keep = self.rng.random(x.shape, dtype=dtype) >= self.p
            mask = keep.astype(dtype)
            mask *= dtype.type(1.0 / (1.0 - self.p))
        self._saved["mask"] = mask
        return x * mask

    def backward(self, grad_out):
        mask = self._saved.get("mask")
        if mask is None:
            return grad_out
        return check_grad(grad_out, mask.shape) * mask

    def extra_repr(self):
        return f"p={self.p}"
