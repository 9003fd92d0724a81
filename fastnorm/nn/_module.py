"""The base class every fastnorm layer derives from: parameters, buffers, state dicts."""

import collections
import copy

import numpy as np

from .._persistence import checked_state, with_version
from .._validation import FLOAT_DTYPE, check
from .._version import __version__

__all__ = ["Module", "StateDict", "STATE_DICT_FORMAT"]

STATE_DICT_FORMAT = 1  # bumped when the keys or the meaning of a saved value change
# attributes in which layers pickled by earlier versions kept what forward saved for backward
_LEGACY_SAVED = ("_x", "_out", "_ctx", "_mask", "_cdf", "_t")


class StateDict(collections.OrderedDict):
    """What :meth:`Module.state_dict` returns: an ordered ``key -> numpy array`` mapping with a
    ``metadata`` dict (``{"format": 1, "fastnorm_version": ...}``). A plain dict (for instance
    ``{k: t.numpy() for k, t in torch_model.state_dict().items()}``) loads too.

    Parameters
    ----------
    *args, **kwargs
        As for :class:`collections.OrderedDict`.
    metadata : dict, optional
        Format number and fastnorm version of the state.

    Examples
    --------
    >>> from fastnorm.nn import BatchNorm
    >>> state = BatchNorm(2).state_dict()
    >>> list(state), state.metadata["format"]
    (['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'], 1)
    """

    def __init__(self, *args, metadata=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.metadata = dict(metadata or {})


class Module:
    """A layer with an explicit forward and backward pass.

    Contract shared by all layers (normalization, linear, activations, containers):

    - ``forward(x)`` returns the output and saves what ``backward`` needs in ``self._saved``
      (a dict). That dict is never pickled or deep-copied: it is scratch of the last step.
    - ``backward(grad_out)`` returns the gradient with respect to the input of the last
      ``forward`` and overwrites ``grads`` (one array per key of ``params``).
    - ``params`` maps names (PyTorch's: ``"weight"``, ``"bias"``) to arrays. Optimizers update
      them in place, so a layer never rebinds an entry of ``params``.
    - Buffers (:meth:`register_buffer`: running statistics, batch counters) are attributes listed
      in ``_buffer_names``; they are saved by :meth:`state_dict` but are not parameters.
    - ``train()`` / ``eval()`` switch ``training``; both return the layer.

    Gradients are not pickled either: an unpickled layer starts with zero gradients.

    Examples
    --------
    A layer of one's own: a learned per-feature scale.

    >>> import numpy as np
    >>> from fastnorm.nn import Module, SGD
    >>> class Scale(Module):
    ...     def __init__(self, n):
    ...         super().__init__()
    ...         self.register_parameter("weight", np.ones(n))
    ...     def forward(self, x):
    ...         self._saved["x"] = x
    ...         return x * self.params["weight"]
    ...     def backward(self, grad_out):
    ...         self.grads["weight"][...] = (grad_out * self._saved["x"]).sum(axis=0)
    ...         return grad_out * self.params["weight"]
    >>> layer = Scale(2)
    >>> y = layer.forward(np.array([[1.0, 2.0]]))
    >>> _ = layer.backward(np.ones_like(y))
    >>> SGD(layer, lr=0.5).step()
    >>> layer.params["weight"], list(layer.state_dict())
    (array([0.5, 0. ]), ['weight'])
    """

    training = True
    takes_sample_weight = False  # forward(x, sample_weight=...) weights batch statistics

    def __init__(self):
        self.params = {}
        self.grads = {}
        self._buffer_names = {}  # name -> persistent (saved by state_dict)
        self._saved = {}
        self.training = True

    # ------------------------------------------------------------------ registration
    def register_parameter(self, name, array):
        """Add a trainable array ``name`` to ``params`` (and a zero gradient to ``grads``)."""
        if "." in name or not name:
            raise KeyError(f"parameter name can't be empty or contain '.', got {name!r}")
        if not isinstance(array, np.ndarray):
            raise TypeError(f"parameter {name!r} must be a numpy array, got {type(array).__name__}")
        self.params[name] = array
        self.grads[name] = np.zeros_like(array)

    def register_buffer(self, name, value, persistent=True):
        """Add a non-trainable state ``name``, reachable as ``self.<name>``: an array, a Python
        int (stored as a 0-d int64 array, like torch's ``num_batches_tracked``) or None (not
        tracked: left out of :meth:`state_dict`). Non-persistent buffers are not saved."""
        if "." in name or not name:
            raise KeyError(f"buffer name can't be empty or contain '.', got {name!r}")
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = np.array(value, dtype=np.int64)
        elif value is not None and not isinstance(value, np.ndarray):
            raise TypeError(f"buffer {name!r} must be a numpy array, an int or None")
        setattr(self, name, value)
        self._buffer_names[name] = bool(persistent)

    # ------------------------------------------------------------------ traversal
    def named_children(self):
        """``(name, module)`` of the direct sub-modules (containers override this)."""
        return iter(())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def _local_params(self):
        # a container's ``params`` is a flattened property; only leaves own a dict
        return vars(self).get("params", {})

    def named_parameters(self):
        for prefix, m in self.named_modules():
            for key, value in m._local_params().items():
                yield (f"{prefix}.{key}" if prefix else key), value

    def named_buffers(self, persistent_only=False):
        for prefix, m in self.named_modules():
            for key, persistent in m._buffer_names.items():
                value = getattr(m, key)
                if value is None or (persistent_only and not persistent):
                    continue
                yield (f"{prefix}.{key}" if prefix else key), value

    # ------------------------------------------------------------------ state dicts
    def state_dict(self):
        """Copies of the parameters and persistent buffers, with PyTorch's keys (``"0.weight"``,
        ``"1.running_mean"``, ``"1.0.weight"`` in nested containers), in PyTorch's order (each
        module's parameters, then its buffers, then its children).

        Examples
        --------
        >>> from fastnorm.nn import BatchNorm, Linear, ReLU, Sequential
        >>> net = Sequential(Linear(8, 16, bias=False), BatchNorm(16), ReLU(), Linear(16, 3))
        >>> list(net.state_dict())  # doctest: +NORMALIZE_WHITESPACE
        ['0.weight', '1.weight', '1.bias', '1.running_mean', '1.running_var',
         '1.num_batches_tracked', '3.weight', '3.bias']
        >>> copy = Sequential(Linear(8, 16, bias=False), BatchNorm(16), ReLU(), Linear(16, 3))
        >>> _ = copy.load_state_dict(net.state_dict())
        """
        out = StateDict(metadata={"format": STATE_DICT_FORMAT, "fastnorm_version": __version__})
        for prefix, m in self.named_modules():
            own = list(m._local_params().items())
            own += [
                (k, getattr(m, k))
                for k, persistent in m._buffer_names.items()
                if persistent and getattr(m, k) is not None
            ]
            for key, value in own:
                out[f"{prefix}.{key}" if prefix else key] = np.array(value, copy=True)
        return out

    def _state_targets(self):
        return dict(self.named_parameters()) | dict(self.named_buffers(persistent_only=True))

    def load_state_dict(self, state, strict=True):
        """Copy ``state`` (``key -> array``, as :meth:`state_dict` gives, or a PyTorch state dict
        converted to NumPy) into the existing arrays, cast to their dtype; nothing is rebound, so
        optimizers keep working. With ``strict``, missing or unexpected keys raise ``KeyError``;
        a shape mismatch always raises ``ValueError``; nothing is copied when anything is wrong.
        Returns ``(missing_keys, unexpected_keys)``."""
        metadata = getattr(state, "metadata", None) or {}
        fmt = metadata.get("format", STATE_DICT_FORMAT)
        if fmt > STATE_DICT_FORMAT:
            raise ValueError(
                f"state dict format {fmt} is newer than this fastnorm's "
                f"({STATE_DICT_FORMAT}): upgrade fastnorm to load it"
            )
        targets = self._state_targets()
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(f"load_state_dict into {type(self).__name__}: " + "; ".join(parts))
        pairs = []
        for key, dst in targets.items():
            if key not in state:
                continue
            src = np.asarray(state[key])
            if src.shape != dst.shape:
                raise ValueError(
                    f"load_state_dict: {key!r} has shape {src.shape} in the state "
                    f"dict but {dst.shape} in the module"
                )
            pairs.append((dst, src))
        for dst, src in pairs:
            np.copyto(dst, src, casting="unsafe")
        return collections.namedtuple("LoadResult", "missing_keys unexpected_keys")(
            missing, unexpected
        )

    # ------------------------------------------------------------------ dtype
    def astype(self, dtype):
        """Cast parameters, gradients and floating-point buffers to ``dtype`` (float32 or
        float64), in this module (returns ``self``). The arrays are replaced: an optimizer built
        before the cast must be rebuilt."""
        dtype = check(dtype, "dtype", FLOAT_DTYPE)
        for m in self.modules():
            for store in (m._local_params(), vars(m).get("grads", {})):
                for key, value in store.items():
                    store[key] = value.astype(dtype)
            for key in m._buffer_names:
                value = getattr(m, key)
                if value is not None and value.dtype.kind == "f":
                    setattr(m, key, value.astype(dtype))
            if "dtype" in vars(m):
                m.dtype = dtype
            m._saved = {}
        return self

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        # what forward saved for backward is scratch of the last step (for a first Linear: the
        # whole last mini-batch); gradients are rebuilt as zeros. The fastnorm version is recorded
        state = dict(vars(self))
        state["_saved"] = {}
        if "grads" in state:
            state["grads"] = {}
        return with_version(state)

    def __setstate__(self, state):
        # warns (InconsistentVersionWarning) when pickled by another fastnorm version
        self.__dict__.update(checked_state(self, state))
        self.__dict__.setdefault("_saved", {})
        self.__dict__.setdefault("_buffer_names", {})
        for old in _LEGACY_SAVED:
            self.__dict__.pop(old, None)
        self._upgrade_state()
        if "grads" in vars(self):
            self.zero_grad()

    def _upgrade_state(self):
        """Hook for layers pickled before buffers were registered (fastnorm <= format 0)."""

    def __deepcopy__(self, memo):
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        new.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return new

    # ------------------------------------------------------------------ forward / backward
    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def train(self, mode=True):
        self.training = bool(mode)
        for _, child in self.named_children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for key, value in self._local_params().items():
            self.grads[key] = np.zeros_like(value)
        for _, child in self.named_children():
            child.zero_grad()

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        return ""
