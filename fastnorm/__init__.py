"""fastnorm: Numba-parallel CPU normalization kernels with NumPy, scikit-learn and MLP front ends.

The functional API (``batch_norm``, ``layer_norm``, ``group_norm``, ``instance_norm``,
``rms_norm``) is imported eagerly. The scikit-learn estimators are loaded on first use, so that
``import fastnorm`` does not pay for importing scikit-learn.
"""

import importlib

from ._version import __version__
from .functional import batch_norm, group_norm, instance_norm, layer_norm, rms_norm, serial_kernels

# public name -> submodule that defines it (imported on first access)
_LAZY = {
    "BatchNormalizer": "preprocessing",
    "LayerNormalizer": "preprocessing",
    "GroupNormalizer": "preprocessing",
    "InstanceNormalizer": "preprocessing",
    "MLPClassifier": "neural_network",
    "MLPRegressor": "neural_network",
    "load": "neural_network",
    "precompile": "_compile",  # python -m fastnorm compile
}
_SUBMODULES = {"nn", "functional", "preprocessing", "neural_network"}

__all__ = [
    "__version__",
    "batch_norm",
    "group_norm",
    "instance_norm",
    "layer_norm",
    "rms_norm",
    "serial_kernels",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastnorm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
