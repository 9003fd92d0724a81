"""Model files of the MLP estimators: one ``.npz`` archive that loads without executing code.

A file is written by ``np.savez`` and read by ``np.load(path, allow_pickle=False)``; it holds:

- ``model.json``: a uint8 array, the UTF-8 text of a JSON object with ``format``
  (``"fastnorm.mlp"``), ``format_version``, ``fastnorm_version``, ``estimator``
  (``"MLPClassifier"`` or ``"MLPRegressor"``: a whitelist, nothing is imported by name),
  ``params`` (``get_params()``), ``attributes`` (the fitted attributes), ``network`` (its dtype,
  whether batch norm was folded), ``optimizer`` and ``rng`` (null unless saved with
  ``include_optimizer=True``);
- ``net/<key>``: the network's :meth:`~fastnorm.nn.Module.state_dict` (weights, running
  statistics);
- ``attr/<name>``: the fitted attributes that are arrays (``classes_``, ``feature_names_in_``);
- ``optimizer/<parameter>/<name>``: the optimizer's per-parameter arrays (Adam's moments, SGD's
  momentum buffers).

Values are encoded as JSON by :mod:`._model_values`.
"""

import json
import os
import tempfile
import zipfile
import zlib

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._version import __version__
from ._model_values import Unsupported, archive_array, decode, dtype_named, encode
from ._network import build_network, initial_rng, make_optimizer

__all__ = ["FORMAT", "FORMAT_VERSION", "load", "save_model"]

FORMAT = "fastnorm.mlp"
FORMAT_VERSION = 1
_DOC = "model.json"
# attributes that are not plain values, each handled explicitly
_EXPLICIT = ("net_", "_optimizer", "_rng")
_BIT_GENERATORS = {
    name: getattr(np.random, name) for name in ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
}


def _classes():
    from ._classifier import MLPClassifier  # not at import: _base imports this module
    from ._regressor import MLPRegressor

    return {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}


# ---------------------------------------------------------------------- save
def save_model(estimator, path, include_optimizer=False):
    """Write the fitted ``estimator`` to ``path`` (see :meth:`MLPClassifier.save`)."""
    check_is_fitted(estimator, "net_")
    name = type(estimator).__name__
    if _classes().get(name) is not type(estimator):
        raise TypeError(f"only MLPClassifier and MLPRegressor can be saved, not {name}")
    arrays = {}
    params = {}
    for key, value in estimator.get_params(deep=False).items():
        if key == "dtype":
            value = np.dtype(value).name
        try:
            params[key] = encode(list(value) if isinstance(value, tuple) else value, key, {})
            if isinstance(params[key], dict) and "array" in params[key]:
                raise Unsupported("an array")
        except Unsupported as exc:
            raise ValueError(
                f"cannot save {name}: the parameter {key}={value!r} ({exc}) is not JSON-"
                "serialisable; model files store parameters as JSON (for random_state, pass "
                "an int or None)"
            ) from None
    attributes = {}
    for key in estimator._fitted_names():
        if key in _EXPLICIT:
            continue
        try:
            attributes[key] = encode(vars(estimator)[key], f"attr/{key}", arrays)
        except Unsupported as exc:
            raise ValueError(
                f"cannot save {name}: the fitted attribute {key} holds {exc}, which a model "
                "file cannot store (plain values, lists of them and arrays of numbers or "
                "strings only)"
            ) from None
    net = estimator.net_
    net_dtype = next(iter(net.params.values())).dtype
    folded = bool(getattr(estimator, "batchnorm_folded_", False))
    rebuilt, _ = _rebuild(estimator, net_dtype, folded)
    if repr(rebuilt) != repr(net) or list(rebuilt.state_dict()) != list(net.state_dict()):
        raise ValueError(
            f"cannot save {name}: its network no longer matches its parameters (changed with "
            "set_params after fitting?), so it could not be rebuilt on load; restore the "
            "parameters or refit"
        )
    arrays.update({f"net/{k}": v for k, v in net.state_dict().items()})
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastnorm_version": __version__,
        "estimator": name,
        "params": params,
        "attributes": attributes,
        "network": {"dtype": net_dtype.name, "batchnorm_folded": folded},
        "optimizer": None,
        "rng": None,
    }
    if include_optimizer:
        doc["optimizer"] = _optimizer_doc(estimator._optimizer, arrays)
        doc["rng"] = {
            "estimator": estimator._rng.bit_generator.state,
            "layers": {prefix: m.rng.bit_generator.state for prefix, m in _layer_rngs(net)},
        }
    arrays[_DOC] = np.frombuffer(json.dumps(doc, allow_nan=False).encode(), np.uint8)
    _write(path, arrays)


def _optimizer_doc(optimizer, arrays):
    if optimizer is None:  # a folded model cannot be trained: it has no optimizer
        return None
    saved = optimizer.state_dict()
    state = {
        param: {k: encode(v, f"optimizer/{param}/{k}", arrays) for k, v in entries.items()}
        for param, entries in saved["state"].items()
    }
    return {"class": type(optimizer).__name__, "step_count": saved["step_count"], "state": state}


def _layer_rngs(net):
    """``(prefix, layer)`` of the layers that draw random numbers (dropout masks)."""
    return [
        (prefix, m)
        for prefix, m in net.named_modules()
        if isinstance(vars(m).get("rng"), np.random.Generator)
    ]


def _write(path, arrays):
    """``np.savez`` to exactly ``path`` (no ``.npz`` appended), replacing it only once the
    archive is complete."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _rebuild(estimator, dtype, folded):
    """The network of ``estimator``'s parameters (weights still random) and the generator that
    seeded it, as after ``fit``'s initialisation."""
    p = dict(estimator._checked_params())
    p["dtype"] = dtype
    if folded:
        # folding turns each Linear(bias=False) -> BatchNorm pair into one Linear(bias=True):
        # the network built without normalization
        p["normalization"] = None
    rng = initial_rng(estimator.random_state)
    return build_network(p, estimator.n_features_in_, estimator.n_outputs_, rng).eval(), rng


# ---------------------------------------------------------------------- load
def load(path):
    """Load an estimator saved by :meth:`MLPClassifier.save` / :meth:`MLPRegressor.save`.

    The file is read with ``np.load(path, allow_pickle=False)``: loading executes no code from
    it. The network is rebuilt from the saved parameters and its weights and running statistics
    are loaded, so predictions equal those of the saved model bit for bit.

    Parameters
    ----------
    path : str or path-like
        A file written by ``save``.

    Returns
    -------
    estimator : MLPClassifier or MLPRegressor

    Raises
    ------
    ValueError
        The file is not a fastnorm model file, is truncated or altered, or was written by a newer
        format version; the message names the file and the problem.

    Examples
    --------
    >>> import os, tempfile, warnings
    >>> import numpy as np
    >>> import fastnorm
    >>> X = np.random.default_rng(0).normal(size=(50, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # ConvergenceWarning: a few epochs only
    ...     clf = fastnorm.MLPClassifier((8,), normalization="batch", max_iter=5,
    ...                                  random_state=0).fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "clf.npz")
    >>> clf.save(path)
    >>> loaded = fastnorm.load(path)
    >>> np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    True
    """
    path = os.fspath(path)

    def fail(problem):
        return ValueError(f"cannot load model file {path!r}: {problem}")

    arrays = _read(path, fail)
    doc = _document(arrays.pop(_DOC, None), fail)
    cls = _classes().get(doc["estimator"]) if isinstance(doc["estimator"], str) else None
    if cls is None:
        raise fail(f"unknown estimator class {doc['estimator']!r} (MLPClassifier, MLPRegressor)")
    used = set()
    try:
        params = {k: decode(v, fail, arrays, used) for k, v in _object(doc, "params", fail)}
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        if "dtype" in params:
            params["dtype"] = dtype_named(params["dtype"], fail)
        estimator = cls().set_params(**params)
        estimator._checked_params()
        for key, value in _object(doc, "attributes", fail):
            setattr(estimator, key, decode(value, fail, arrays, used))
        _load_network(estimator, doc, arrays, used, fail)
    except ValueError as exc:
        if str(exc).startswith("cannot load model file"):
            raise
        raise fail(str(exc)) from exc
    except AttributeError as exc:  # a missing n_features_in_ / n_outputs_ / random_state
        raise fail(f"incomplete: {exc}") from exc
    unexpected = sorted(set(arrays) - used)
    if unexpected:
        raise fail(f"unexpected arrays {unexpected}")
    return estimator


def _read(path, fail):
    with open(path, "rb") as fh:  # a missing file raises FileNotFoundError, as open does
        try:
            npz = np.load(fh, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise fail("not an .npz archive")
            with npz:
                return {key: npz[key] for key in npz.files}
        except ValueError as exc:
            if str(exc).startswith("cannot load model file"):
                raise
            if "allow_pickle" in str(exc) or "pickled" in str(exc):
                raise fail(f"it holds pickled data, which model files never do ({exc})") from exc
            raise fail(f"corrupt or truncated archive ({exc})") from exc
        except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise fail(f"corrupt or truncated archive ({type(exc).__name__}: {exc})") from exc


def _document(raw, fail):
    if raw is None:
        raise fail(f"the array {_DOC!r} (the model description) is missing")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise fail(f"{_DOC!r} must be a 1-D uint8 array, got {raw.dtype} {raw.shape}")
    try:
        doc = json.loads(raw.tobytes().decode("utf-8"))
    except ValueError as exc:
        raise fail(f"{_DOC!r} is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise fail(f"{_DOC!r} must be a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise fail(f"format {doc.get('format')!r} is not {FORMAT!r}")
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise fail(f"bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise fail(
            f"format version {version} (written by fastnorm {doc.get('fastnorm_version')}) is "
            f"newer than this fastnorm's ({FORMAT_VERSION}, fastnorm {__version__}): upgrade "
            "fastnorm to load it"
        )
    for key in ("estimator", "params", "attributes", "network", "optimizer", "rng"):
        if key not in doc:
            raise fail(f"the model description lacks {key!r}")
    return doc


def _object(doc, key, fail):
    value = doc.get(key)
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise fail(f"{key!r} must be a JSON object")
    return value.items()


def _load_network(estimator, doc, arrays, used, fail):
    network = dict(_object(doc, "network", fail))
    dtype = dtype_named(network.get("dtype"), fail)
    folded = network.get("batchnorm_folded")
    if not isinstance(folded, bool) or folded != bool(getattr(estimator, "batchnorm_folded_", 0)):
        raise fail(f"bad network description {network!r}")
    net, rng = _rebuild(estimator, dtype, folded)
    net.load_state_dict(_matching(net.state_dict(), "net/", fail, arrays, used))
    estimator.net_ = net
    estimator._rng = rng
    estimator._optimizer = None if folded else make_optimizer(estimator._checked_params(), net)
    if doc["optimizer"] is not None and estimator._optimizer is not None:
        _load_optimizer(estimator._optimizer, doc["optimizer"], arrays, used, fail)
    if doc["rng"] is not None:
        rngs = doc["rng"]
        if not isinstance(rngs, dict) or not isinstance(rngs.get("layers"), dict):
            raise fail("'rng' must be a JSON object with 'estimator' and 'layers'")
        estimator._rng = _generator(rngs.get("estimator"), fail)
        layers = _layer_rngs(net)
        if sorted(rngs["layers"]) != sorted(prefix for prefix, _ in layers):
            raise fail(f"random generators saved for layers {sorted(rngs['layers'])}")
        for prefix, layer in layers:
            layer.rng = _generator(rngs["layers"][prefix], fail)


def _matching(expected, prefix, fail, arrays, used):
    """The arrays ``prefix + key`` for each ``key -> target array`` of ``expected``, checked to
    have the target's shape and dtype (writable copies)."""
    out = {}
    for key, target in expected.items():
        src = archive_array(prefix + key, fail, arrays, used)
        if src.shape != target.shape or src.dtype != target.dtype:
            raise fail(
                f"the array {prefix + key!r} has shape {src.shape} and dtype {src.dtype}, "
                f"expected {target.shape} and {target.dtype}"
            )
        out[key] = np.array(src, copy=True, order="C")
    return out


def _load_optimizer(optimizer, saved, arrays, used, fail):
    if not isinstance(saved, dict) or saved.get("class") != type(optimizer).__name__:
        found = saved.get("class") if isinstance(saved, dict) else saved
        raise fail(f"optimizer state of {found!r}, the solver's is {type(optimizer).__name__}")
    step_count, state = saved.get("step_count"), saved.get("state")
    if not isinstance(step_count, int) or not isinstance(state, dict):
        raise fail("the optimizer state lacks 'step_count' or 'state'")
    if not set(state) <= set(optimizer.params):
        raise fail(
            f"optimizer state for unknown parameters {sorted(set(state) - set(optimizer.params))}"
        )
    loaded = {}
    for param, entries in state.items():
        if not isinstance(entries, dict):
            raise fail(f"the optimizer state of {param!r} must be a JSON object")
        values = {k: decode(v, fail, arrays, used) for k, v in entries.items()}
        shapes = {
            k: optimizer.params[param] for k, v in values.items() if isinstance(v, np.ndarray)
        }
        values.update(_matching(shapes, f"optimizer/{param}/", fail, arrays, used))
        loaded[param] = values
    optimizer.load_state_dict({"step_count": step_count, "state": {**optimizer.state, **loaded}})


def _generator(state, fail):
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise fail(f"bad random generator state {state!r}")
    bit_generator = _BIT_GENERATORS[name]()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise fail(f"bad random generator state ({exc})") from exc
    return np.random.Generator(bit_generator)
