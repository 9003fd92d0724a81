"""ONNX export of fitted :class:`MLPClassifier` / :class:`MLPRegressor` networks.

The graph is built node by node with ``onnx.helper`` (no converter library): one exporter per
layer class (``_EXPORTERS``), each mirroring that layer's eval-mode ``forward``:

========================  ==================================================  ======
layer                     ONNX                                                opset
========================  ==================================================  ======
``Linear``                ``Gemm`` (``transB=1``; no ``C`` without a bias)    13
``BatchNorm``             ``BatchNormalization`` (running mean / variance)    15
``LayerNorm``             ``LayerNormalization``                              17
``GroupNorm``             ``GroupNormalization`` (per-channel scale / bias)   21
``RMSNorm``               ``RMSNormalization``                                23
``ReLU``, ``Tanh``,       ``Relu``, ``Tanh``, ``Sigmoid``                     13
``Sigmoid``
``GELU``                  ``Gelu`` (``approximate`` "none" or "tanh")         20
``Identity``, ``Dropout`` nothing (the identity at inference)                 --
========================  ==================================================  ======

A model is stamped with the highest opset its layers need (at least 17), with the lowest IR
version that opset allows. ``onnx`` is imported only when an export is asked for, so that
``import fastnorm`` never needs it.
"""

import os

import numpy as np

from .._version import __version__
from ..nn import (
    GELU,
    BatchNorm,
    Dropout,
    GroupNorm,
    Identity,
    LayerNorm,
    Linear,
    ReLU,
    RMSNorm,
    Sequential,
    Sigmoid,
    Tanh,
)

__all__ = ["export_mlp"]

_BASE_OPSET = 17
_INSTALL_HINT = 'ONNX export needs onnx and onnxruntime: pip install "fastnorm[onnx]"'


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return onnx


class _Graph:
    """The nodes, initializers and opset of the graph being built; every name is fresh."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.nodes = []
        self.initializers = []
        self.opset = _BASE_OPSET
        self._count = 0

    def fresh(self, base):
        self._count += 1
        return f"{base}_{self._count}"

    def const(self, base, array, dtype=np.float32):
        """An initializer holding ``array`` (cast to ``dtype`` unless ``dtype`` is None)."""
        array = np.asarray(array) if dtype is None else np.asarray(array, dtype)
        name = self.fresh(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, opset=_BASE_OPSET, **attrs):
        """Append an ``op`` node; returns the name of its (single) output."""
        out = self.fresh(op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs))
        self.opset = max(self.opset, opset)
        return out

    def rename_output(self, current, name):
        """Make the value ``current`` (the last node's output) the graph output ``name``."""
        last = self.nodes[-1] if self.nodes else None
        if last is not None and last.output[0] == current:
            last.output[0] = name
            last.name = name
        else:
            self.nodes.append(self.onnx.helper.make_node("Identity", [current], [name], name=name))
        return name


# ---------------------------------------------------------------------- one exporter per layer
def _linear(g, layer, x):
    inputs = [x, g.const("weight", layer.params["weight"])]
    if "bias" in layer.params:
        inputs.append(g.const("bias", layer.params["bias"]))
    return g.node("Gemm", inputs, transB=1)


def _affine_params(layer, shape):
    """(weight, bias) of a normalization layer; ones / zeros where it has none."""
    weight = layer.params.get("weight")
    bias = layer.params.get("bias")
    return (
        np.ones(shape) if weight is None else weight,
        np.zeros(shape) if bias is None else bias,
    )


def _batch_norm(g, layer, x):
    if layer.running_mean is None:
        raise ValueError(
            f"cannot export {layer!r} to ONNX: without running statistics (track_running_stats="
            "False) batch norm normalizes with the statistics of each batch, even at inference"
        )
    if layer.axis not in (1, -1):
        raise ValueError(f"cannot export {layer!r} to ONNX: channel axis {layer.axis} is not 1")
    weight, bias = _affine_params(layer, layer.num_features)
    inputs = [
        x,
        g.const("bn_scale", weight),
        g.const("bn_bias", bias),
        g.const("bn_mean", layer.running_mean),
        g.const("bn_var", layer.running_var),
    ]
    return g.node("BatchNormalization", inputs, opset=15, epsilon=float(layer.eps))


def _layer_norm(g, layer, x):
    weight, bias = _affine_params(layer, layer.normalized_shape)
    inputs = [x, g.const("ln_scale", weight), g.const("ln_bias", bias)]
    axis = -len(layer.normalized_shape)
    return g.node("LayerNormalization", inputs, opset=17, axis=axis, epsilon=float(layer.eps))


def _group_norm(g, layer, x):
    # opset 21: scale and bias are per channel (C,), as GroupNorm's (opset 18 had them per group)
    weight, bias = _affine_params(layer, layer.num_channels)
    inputs = [x, g.const("gn_scale", weight), g.const("gn_bias", bias)]
    return g.node(
        "GroupNormalization",
        inputs,
        opset=21,
        num_groups=int(layer.num_groups),
        epsilon=float(layer.eps),
    )


def _rms_norm(g, layer, x):
    # eps=None is the machine epsilon of the computation's dtype: predict computes in float64
    eps = float(np.finfo(np.float64).eps) if layer.eps is None else float(layer.eps)
    weight, _ = _affine_params(layer, layer.normalized_shape)
    inputs = [x, g.const("rms_scale", weight)]
    axis = -len(layer.normalized_shape)
    return g.node("RMSNormalization", inputs, opset=23, axis=axis, epsilon=eps)


def _gelu(g, layer, x):
    return g.node("Gelu", [x], opset=20, approximate=layer.approximate)


def _elementwise(op):
    def export(g, layer, x):
        return g.node(op, [x])

    export.__name__ = f"_{op.lower()}"
    return export


def _passthrough(g, layer, x):
    return x  # Identity, and Dropout (the identity in eval mode)


def _sequential(g, layer, x):
    for child in layer:
        x = _export_layer(g, child, x)
    return x


# exact classes only: a subclass may compute something else
_EXPORTERS = {
    Linear: _linear,
    BatchNorm: _batch_norm,
    LayerNorm: _layer_norm,
    GroupNorm: _group_norm,
    RMSNorm: _rms_norm,
    ReLU: _elementwise("Relu"),
    Tanh: _elementwise("Tanh"),
    Sigmoid: _elementwise("Sigmoid"),
    GELU: _gelu,
    Identity: _passthrough,
    Dropout: _passthrough,
    Sequential: _sequential,
}


def _export_layer(g, layer, x):
    exporter = _EXPORTERS.get(type(layer))
    if exporter is None:
        supported = ", ".join(sorted(cls.__name__ for cls in _EXPORTERS))
        raise ValueError(
            f"cannot export layer {layer!r} ({type(layer).__name__}) to ONNX; supported "
            f"layers: {supported}"
        )
    return exporter(g, layer, x)


# ---------------------------------------------------------------------- heads
def _classes_tensor(g, classes):
    """``classes_`` as a constant: its own numeric / bool dtype, or strings."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biuf":
        elem_type = g.onnx.helper.np_dtype_to_tensor_dtype(classes.dtype)
        return g.const("classes", classes, dtype=None), elem_type
    if classes.dtype.kind == "U" or all(isinstance(c, str) for c in classes):
        name = g.fresh("classes")
        proto = g.onnx.helper.make_tensor(
            name,
            g.onnx.TensorProto.STRING,
            [len(classes)],
            [str(c).encode("utf-8") for c in classes],
        )
        g.initializers.append(proto)
        return name, g.onnx.TensorProto.STRING
    raise ValueError(
        f"cannot export classes_ of dtype {classes.dtype} to ONNX: labels must be numbers, "
        "booleans or strings"
    )


def _classifier_head(g, est, logits):
    """``probabilities`` = softmax of the logits (predict_proba, binary included: the network
    has one logit per class) and ``label`` = classes_[argmax(logits)] (predict)."""
    helper, tp = g.onnx.helper, g.onnx.TensorProto
    n_classes = len(est.classes_)
    proba = g.rename_output(g.node("Softmax", [logits], axis=1), "probabilities")
    index = g.node("ArgMax", [logits], axis=1, keepdims=0)
    classes, label_type = _classes_tensor(g, est.classes_)
    label = g.rename_output(g.node("Gather", [classes, index], axis=0), "label")
    return [
        helper.make_tensor_value_info(label, label_type, [None]),
        helper.make_tensor_value_info(proba, tp.FLOAT, [None, n_classes]),
    ]


def _regressor_head(g, est, out):
    """``variable`` = the network's output, de-standardized when the estimator scaled y
    (``_y_scale`` / ``_y_mean``), or its ``Exp`` for the Poisson loss (log link): always 2-D,
    (n_samples, n_outputs)."""
    if getattr(est, "_fit_loss", None) == "poisson":
        out = g.node("Exp", [out])
    scale = getattr(est, "_y_scale", None)
    mean = getattr(est, "_y_mean", None)
    if scale is not None:
        out = g.node("Mul", [out, g.const("y_scale", np.reshape(scale, (1, -1)))])
    if mean is not None:
        out = g.node("Add", [out, g.const("y_mean", np.reshape(mean, (1, -1)))])
    name = g.rename_output(out, "variable")
    tp = g.onnx.TensorProto
    return [g.onnx.helper.make_tensor_value_info(name, tp.FLOAT, [None, est.n_outputs_])]


# ---------------------------------------------------------------------- model
def export_mlp(est, path=None):
    """The ``onnx.ModelProto`` of the fitted estimator ``est``; saved to ``path`` if given."""
    onnx = _import_onnx()
    g = _Graph(onnx)
    out = _export_layer(g, est.net_, "X")
    if out == "X":  # cannot happen with build_network's nets, which end with a Linear
        raise ValueError("the network has no layer to export")
    if hasattr(est, "classes_"):
        outputs = _classifier_head(g, est, out)
    else:
        outputs = _regressor_head(g, est, out)
    helper = onnx.helper
    x_info = helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [None, est.n_features_in_])
    kind = type(est).__name__
    graph = helper.make_graph(
        g.nodes,
        f"fastnorm_{kind}",
        [x_info],
        outputs,
        g.initializers,
        doc_string=f"fastnorm {kind}: {len(est.net_)} layers, float32 weights",
    )
    opsets = [helper.make_opsetid("", g.opset)]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="fastnorm",
        producer_version=__version__,
        ir_version=helper.find_min_ir_version_for(opsets),
    )
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save_model(model, os.fspath(path))
    return model
