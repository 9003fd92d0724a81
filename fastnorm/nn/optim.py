"""Optimizers with PyTorch's update formulas, updating parameter arrays in place.

An optimizer is built from a :class:`~fastnorm.nn._module.Module` (its flattened ``params`` are
used, and ``step()`` reads its ``grads``) or from a dict ``name -> array`` (then pass the gradients
to ``step(grads)`` as a dict with the same keys). Contiguous float32/float64 arrays are updated by
one Numba kernel per array (``fastnorm.functional.adam_step`` / ``sgd_step``); anything else
falls back to NumPy with the same formula.
"""

import math
import numbers
from collections.abc import Iterable, Mapping

import numpy as np

from .._validation import Interval, check
from ..functional import adam_step
from ._flat import FlatGroup
from ._module import Module

_NON_NEGATIVE = Interval(numbers.Real, 0.0, None, closed="left")
_REAL = Interval(numbers.Real)
_BETA = Interval(numbers.Real, 0.0, 1.0, closed="left")


def _betas(betas):
    """A pair of reals in [0, 1), as floats."""
    description = "betas must be a pair of real numbers in [0, 1)"
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Iterable):
        raise TypeError(f"{description}, got {betas!r}")
    betas = tuple(betas)
    if len(betas) != 2:
        raise ValueError(f"{description}, got {betas!r}")
    try:
        return tuple(check(b, "betas", _BETA) for b in betas)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{description}, got {betas!r}") from None


__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


def _detached(v):
    return v.copy() if isinstance(v, np.ndarray) else v


def _flat(a):
    """A 1-D view of ``a`` if it is contiguous and float, else ``None``."""
    if a.flags.c_contiguous and a.dtype in (np.float32, np.float64):
        return a.reshape(-1)
    return None


class Optimizer:
    """Base class: holds the parameters (by name) and per-parameter state.

    ``flat=True`` (with a Module) moves the module's parameters and gradients into one buffer
    each, as views, so that each step is one kernel call over all of them; an array taken from
    the module before the first step is then no longer its parameter. ``l2_names`` (flat only)
    are the parameters that ``step(l2=factor)`` adds ``factor * p`` to the gradient of."""

    _state_keys = ()

    def __init__(self, params, defaults, flat=False, l2_names=()):
        if flat and not isinstance(params, Module):
            raise TypeError("flat=True needs a Module (its parameters are moved into one buffer)")
        self.flat = bool(flat)
        self.l2_names = tuple(l2_names)
        self._group = None
        if isinstance(params, Module):
            self.module = params
            named = params.params
        elif isinstance(params, dict):
            self.module = None
            named = dict(params)
        elif isinstance(params, Iterable) and not isinstance(params, (str, bytes, np.ndarray)):
            self.module = None
            named = {str(i): p for i, p in enumerate(params)}
        else:
            raise TypeError(
                "params must be a Module, a dict of arrays or an iterable of arrays, got "
                f"{type(params).__name__}"
            )
        for name, p in named.items():
            if not isinstance(p, np.ndarray):
                raise TypeError(f"parameter {name!r} is not a numpy array")
        self.params = named
        self.defaults = dict(defaults)
        self.state = {name: {} for name in named}
        self.step_count = 0

    def _grads(self, grads):
        if grads is None:
            if self.module is None:
                raise ValueError(
                    "pass the gradients to step() when the optimizer was built "
                    "from a dict of arrays"
                )
            grads = self.module.grads
        if not isinstance(grads, Mapping):
            raise TypeError(
                f"grads must be a dict name -> gradient array, got {type(grads).__name__}"
            )
        return grads

    def _flat_group(self):
        """The flat buffers, (re)built when missing or when a leaf no longer holds their views;
        None when the parameters do not share one float dtype or are not all present."""
        group = self._group
        if group is not None and group.intact():
            return group
        current = dict(self.module.named_parameters())
        arrays = [current.get(n) for n in self.params]
        if any(a is None for a in arrays) or len({a.dtype for a in arrays}) != 1:
            return None
        if arrays[0].dtype not in (np.float32, np.float64):
            return None
        self._group = FlatGroup(
            self.module, list(self.params), self.l2_names, self._state_keys, self.state
        )
        self.params = dict(self.module.named_parameters())
        return self._group

    def l2_squares(self):
        """``sum(p ** 2)`` over the ``l2_names`` parameters (an L2 penalty's value), as one dot
        product over the flat buffer where they lie first (built now if the next step would
        build it); None when the optimizer is not flat, has no ``l2_names`` or no flat buffer."""
        if not (self.flat and self.l2_names):
            return None
        group = self._flat_group()
        if group is None or not group.l2_count:
            return None
        weights = group.p[: group.l2_count]
        return float(np.vdot(weights, weights))

    def step(self, grads=None, l2=0.0):
        """One update from ``grads`` (default: the module's). ``l2`` (flat optimizers only):
        ``l2 * p`` is added to the gradients of the ``l2_names`` parameters."""
        if self.flat and grads is None:
            group = self._flat_group()
            if group is not None:
                self.step_count += 1
                self._flat_update(group, l2)
                return
        if l2:
            raise ValueError("step(l2=...) needs an optimizer built with flat=True")
        grads = self._grads(grads)
        self.step_count += 1
        for name, p in self.params.items():
            g = grads.get(name)
            if g is None:
                continue
            g = np.asarray(g)
            if g.dtype.kind not in "fiu":
                raise TypeError(f"gradient {name!r} must be a real-valued array, got {g.dtype}")
            if g.shape != p.shape:
                raise ValueError(f"gradient {name!r} has shape {g.shape}, parameter {p.shape}")
            self._update(name, p, g, self.state[name])

    def _update(self, name, p, g, state):
        raise NotImplementedError

    def _flat_update(self, group, l2):
        raise NotImplementedError

    def __getstate__(self):
        # the flat buffers are not pickled (the state dict holds their values); rebuilt at the
        # first step after loading
        state = dict(vars(self))
        state["_group"] = None
        state["state"] = {
            k: {s: _detached(v) for s, v in st.items()} for k, st in self.state.items()
        }
        return state

    def state_dict(self):
        return {
            "step_count": self.step_count,
            "state": {
                k: {s: (v.copy() if isinstance(v, np.ndarray) else v) for s, v in st.items()}
                for k, st in self.state.items()
            },
        }

    def load_state_dict(self, state):
        self.step_count = state["step_count"]
        self.state = {k: dict(v) for k, v in state["state"].items()}
        self._group = None  # the flat state is rebuilt from these values at the next step


class Adam(Optimizer):
    """Adam with ``torch.optim.Adam``'s update (L2 penalty added to the gradient):

    ``g += weight_decay * p``; ``m = m + (1 - beta1) (g - m)``; ``v = beta2 v + (1 - beta2) g^2``;
    ``p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.

    Parameters
    ----------
    params : Module, dict of str to ndarray, or iterable of ndarray
        The arrays to update in place (see :class:`SGD`).
    lr : float >= 0, default 1e-3
        Learning rate.
    betas : (float, float) in [0, 1), default (0.9, 0.999)
        Decay rates of the first and second moment estimates.
    eps : float >= 0, default 1e-8
        Added to the denominator.
    weight_decay : float >= 0, default 0.0
        L2 penalty added to the gradient.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import Adam, Linear
    >>> layer = Linear(2, 1, random_state=0)
    >>> opt = Adam(layer, lr=0.1)
    >>> before = layer.weight.copy()
    >>> y = layer.forward(np.ones((4, 2), dtype=np.float32))
    >>> _ = layer.backward(np.ones_like(y))
    >>> opt.step()  # reads layer.grads; the first Adam step moves each weight by lr
    >>> np.round(before - layer.weight, 4)
    array([[0.1, 0.1]], dtype=float32)
    """

    _decoupled = False

    _state_keys = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        *,
        flat=False,
        l2_names=(),
    ):
        lr = check(lr, "lr", _NON_NEGATIVE)
        betas = _betas(betas)
        eps = check(eps, "eps", _NON_NEGATIVE)
        weight_decay = check(weight_decay, "weight_decay", _NON_NEGATIVE)
        super().__init__(
            params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay), flat, l2_names
        )
        self.lr = float(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)

    def _flat_update(self, group, l2):
        states = self.state.values()
        steps = {st.get("step", 0) for st in states}
        if len(steps) > 1:
            raise RuntimeError("flat Adam needs one step count for every parameter")
        t = (steps.pop() if steps else 0) + 1
        for st in states:
            st["step"] = t
        if not group.started:
            group.started = True
            group.publish(self.state)
        b1, b2 = self.betas
        adam_step(
            group.p,
            group.g,
            group.state["exp_avg"],
            group.state["exp_avg_sq"],
            self.lr,
            b1,
            b2,
            self.eps,
            self.lr / (1.0 - b1**t),
            math.sqrt(1.0 - b2**t),
            self.weight_decay,
            self._decoupled,
            group.l2_count,
            l2,
        )

    def _update(self, name, p, g, state):
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        b1, b2 = self.betas
        m, v = state["exp_avg"], state["exp_avg_sq"]
        step_size = self.lr / (1.0 - b1**t)
        bc2_sqrt = math.sqrt(1.0 - b2**t)
        pf, gf = _flat(p), _flat(np.ascontiguousarray(g, dtype=p.dtype))
        if pf is not None and gf is not None:
            adam_step(
                pf,
                gf,
                m.reshape(-1),
                v.reshape(-1),
                self.lr,
                b1,
                b2,
                self.eps,
                step_size,
                bc2_sqrt,
                self.weight_decay,
                self._decoupled,
            )
            return
        g = np.asarray(g, dtype=p.dtype)
        if self._decoupled:
            p *= 1 - self.lr * self.weight_decay
        elif self.weight_decay:
            g = g + self.weight_decay * p
        m += (1 - b1) * (g - m)
        v *= b2
        v += (1 - b2) * g * g
        p -= step_size * m / (np.sqrt(v) / bc2_sqrt + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``): ``p *= 1 - lr * weight_decay``
    before the Adam step, and no L2 term in the gradient.

    Parameters
    ----------
    params : Module, dict of str to ndarray, or iterable of ndarray
        The arrays to update in place (see :class:`SGD`).
    lr : float >= 0, default 1e-3
        Learning rate.
    betas : (float, float) in [0, 1), default (0.9, 0.999)
        Decay rates of the first and second moment estimates.
    eps : float >= 0, default 1e-8
        Added to the denominator.
    weight_decay : float >= 0, default 1e-2
        Decoupled decay: each step first multiplies the parameters by ``1 - lr * weight_decay``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.nn import AdamW
    >>> w = np.array([1.0], dtype=np.float32)
    >>> opt = AdamW({"w": w}, lr=0.1, weight_decay=0.5)
    >>> opt.step({"w": np.zeros(1, dtype=np.float32)})  # no gradient: only the decay acts
    >>> w  # 1 * (1 - 0.1 * 0.5)
    array([0.95], dtype=float32)
    """

    _decoupled = True

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        *,
        flat=False,
        l2_names=(),
    ):
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            flat=flat,
            l2_names=l2_names,
        )


from ._sgd import SGD  # noqa: E402  (built on Optimizer above)
