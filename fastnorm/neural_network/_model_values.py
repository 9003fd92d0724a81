"""Values of a model file's JSON description (``fastnorm.neural_network._model_file``).

null, booleans, finite numbers, strings and lists are JSON's own; other values are tagged
objects: ``{"float": "inf"}`` (also ``"-inf"``, ``"nan"``), ``{"tuple": [...]}``,
``{"dtype": "float64"}``, ``{"numpy": "float32", "value": 0.5}`` (a NumPy scalar),
``{"dict": [[key, value], ...]}`` (a dict such as ``class_weight``, keys of any of these kinds)
and
``{"array": "attr/classes_", "object": false}`` (an array of the archive; ``object`` restores an
array of strings as dtype object, as scikit-learn keeps ``feature_names_in_``). Nothing else is
stored: no objects, no arrays of objects.
"""

import math

import numpy as np

__all__ = ["Unsupported", "archive_array", "decode", "dtype_named", "encode"]

_ARRAY_KINDS = "biufcUS"  # bool, integers, floats, complex, strings: never objects


class Unsupported(TypeError):
    """A value that a model file cannot store."""


def encode(value, key, arrays):
    """``value`` as JSON; arrays go to ``arrays[key]``. Raises ``Unsupported``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"float": repr(float(value))}
    if isinstance(value, (np.bool_, np.number)) and value.dtype.kind in _ARRAY_KINDS:
        return {"numpy": value.dtype.name, "value": encode(value.item(), key, arrays)}
    if isinstance(value, np.dtype) and value.kind in _ARRAY_KINDS:
        return {"dtype": value.name}
    if isinstance(value, (list, tuple)):
        items = [encode(v, key, {}) for v in value]  # no arrays inside lists
        if any(isinstance(v, dict) and "array" in v for v in items):
            raise Unsupported("a list of arrays")
        return {"tuple": items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        items = [[encode(k, key, {}), encode(v, key, {})] for k, v in value.items()]
        if any(isinstance(x, dict) and "array" in x for pair in items for x in pair):
            raise Unsupported("a dict of arrays")
        return {"dict": items}
    if isinstance(value, np.ndarray):
        is_object = value.dtype == object
        if is_object and all(isinstance(v, str) for v in value.flat):
            value = value.astype(str)
        elif value.dtype.kind not in _ARRAY_KINDS:
            raise Unsupported(f"an array of dtype {value.dtype}")
        arrays[key] = value
        return {"array": key, "object": is_object}
    raise Unsupported(type(value).__name__)


def decode(value, fail, arrays, used):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(v, fail, arrays, used) for v in value]
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise fail(f"unexpected JSON value {value!r}")
    if "float" in value and value["float"] in ("inf", "-inf", "nan"):
        return float(value["float"])
    if isinstance(value.get("dict"), list):
        pairs = [decode(p, fail, arrays, used) for p in value["dict"]]
        if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise fail(f"unexpected JSON value {value!r}")
        try:
            return {k: v for k, v in pairs}
        except TypeError:
            raise fail(f"unexpected JSON value {value!r}") from None
    if isinstance(value.get("tuple"), list):
        return tuple(decode(v, fail, arrays, used) for v in value["tuple"])
    if "dtype" in value:
        return dtype_named(value["dtype"], fail)
    if "numpy" in value and isinstance(value.get("value"), (bool, int, float, dict)):
        return dtype_named(value["numpy"], fail).type(decode(value["value"], fail, arrays, used))
    if isinstance(value.get("array"), str):
        found = archive_array(value["array"], fail, arrays, used)
        return found.astype(object) if value.get("object") is True else found
    raise fail(f"unexpected JSON value {value!r}")


def dtype_named(name, fail):
    try:
        dtype = np.dtype(name) if isinstance(name, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in _ARRAY_KINDS:
        raise fail(f"bad dtype {name!r}")
    return dtype


def archive_array(key, fail, arrays, used):
    if key not in arrays:
        raise fail(f"the array {key!r} is missing")
    used.add(key)
    return arrays[key]
