"""Kernel benchmark cases: one table, shared by ``python -m fastnorm bench`` and the asv suite."""

import numpy as np

from .. import nn
from .case import BenchCase

# (name, operation, shape, mode, channel axis, target)
TABLE = [
    (
        "batch_norm fwd (256, 64, 56, 56)",
        "batch",
        (256, 64, 56, 56),
        "fwd",
        1,
        ">= 3x torch, >= 60% roofline",
    ),
    (
        "batch_norm fwd+bwd (256, 64, 56, 56)",
        "batch",
        (256, 64, 56, 56),
        "fwd+bwd",
        1,
        ">= 2x torch",
    ),
    ("batch_norm fwd (32, 256, 28, 28)", "batch", (32, 256, 28, 28), "fwd", 1, ">= 1.5x torch"),
    ("batch_norm fwd (32, 28, 28, 256) channels-last", "batch", (32, 28, 28, 256), "fwd", -1, ""),
    ("batch_norm fwd+bwd (4096, 1024)", "batch", (4096, 1024), "fwd+bwd", 1, ">= 1x torch"),
    ("batch_norm fwd+bwd (128, 512)", "batch", (128, 512), "fwd+bwd", 1, ">= 1.5x torch"),
    ("layer_norm fwd+bwd (8192, 1024)", "layer", (8192, 1024), "fwd+bwd", None, ">= 1x torch"),
    (
        "group_norm 32 fwd+bwd (32, 256, 28, 28)",
        "group",
        (32, 256, 28, 28),
        "fwd+bwd",
        1,
        ">= 1x torch",
    ),
    ("instance_norm fwd+bwd (32, 64, 56, 56)", "instance", (32, 64, 56, 56), "fwd+bwd", 1, ""),
    ("rms_norm fwd+bwd (8192, 1024)", "rms", (8192, 1024), "fwd+bwd", None, ""),
    # small-batch remedies, against the plain batch_norm rows of the same shapes
    ("batch_renorm fwd+bwd (4096, 1024)", "renorm", (4096, 1024), "fwd+bwd", 1, "<= 1.2x batch"),
    ("batch_renorm fwd+bwd (128, 512)", "renorm", (128, 512), "fwd+bwd", 1, "<= 1.2x batch"),
    ("ghost_batch 16 fwd+bwd (4096, 1024)", "ghost16", (4096, 1024), "fwd+bwd", 1, "<= 1.2x batch"),
    ("ghost_batch 16 fwd+bwd (128, 512)", "ghost16", (128, 512), "fwd+bwd", 1, "<= 1.2x batch"),
]
# operations that only fastnorm has: no NumPy or PyTorch column
FASTNORM_ONLY = {"renorm", "ghost16"}
GROUPS = 32


def _layer(op, channels, width, axis):
    if op == "batch":
        return nn.BatchNorm(channels, axis=axis)
    if op == "renorm":  # limits that bind: r and d are computed and applied
        return nn.BatchNorm(channels, axis=axis, renorm=True, r_max=1.5, d_max=0.5)
    if op == "ghost16":
        return nn.BatchNorm(channels, axis=axis, virtual_batch_size=16)
    if op == "group":
        return nn.GroupNorm(GROUPS, channels)
    if op == "instance":
        return nn.InstanceNorm(channels, affine=True)
    if op == "layer":
        return nn.LayerNorm(width)
    return nn.RMSNorm(width)


def numpy_forward_backward(op, x, dy, axis):
    """Plain NumPy (vectorized, float64 statistics) for the comparison column."""
    x64 = x.astype(np.float64)
    if op == "batch":
        ax = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    elif op in ("layer", "rms"):
        ax = (-1,)
    else:
        n, c = x.shape[:2]
        groups = GROUPS if op == "group" else c
        x64 = x64.reshape(n, groups, -1)
        ax = (-1,)
    mean = 0.0 if op == "rms" else x64.mean(axis=ax, keepdims=True)
    xc = x64 - mean
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=ax, keepdims=True) + 1e-5)
    xhat = xc * rstd
    y = xhat.reshape(x.shape).astype(x.dtype)
    if dy is None:
        return y
    g = dy.astype(np.float64).reshape(xhat.shape)
    term = (g * xhat).mean(axis=ax, keepdims=True) * xhat
    if op != "rms":
        term = term + g.mean(axis=ax, keepdims=True)
    return ((g - term) * rstd).reshape(x.shape).astype(x.dtype)


def compile_peer_available():
    """torch.compile (Inductor) is a peer when asked for (``FASTNORM_BENCH_COMPILE=1``: compiling
    every shape takes minutes) and a C++ compiler is present."""
    import os
    import shutil

    return os.environ.get("FASTNORM_BENCH_COMPILE") == "1" and shutil.which("c++") is not None


def _torch_impl(op, x, dy, axis, compiled=False):
    try:
        import torch
        import torch.nn.functional as tf
    except ImportError:
        return None
    xt = torch.from_numpy(np.moveaxis(x, axis, 1) if op == "batch" and axis == -1 else x)
    if op == "batch" and axis == -1:
        xt = xt.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else xt
    channels = xt.shape[1]
    width = x.shape[-1]
    param_len = width if op in ("layer", "rms") else channels
    weight = torch.ones(param_len, requires_grad=dy is not None)
    bias = torch.zeros(param_len, requires_grad=dy is not None)
    running = (torch.zeros(channels), torch.ones(channels))
    dyt = None if dy is None else torch.from_numpy(dy).reshape(xt.shape)

    def forward(inp):
        if op == "batch":
            return tf.batch_norm(inp, *running, weight, bias, training=True)
        if op == "group":
            return tf.group_norm(inp, GROUPS, weight, bias)
        if op == "instance":
            return tf.instance_norm(inp, weight=weight, bias=bias)
        if op == "layer":
            return tf.layer_norm(inp, (width,), weight, bias)
        return tf.rms_norm(inp, (width,), weight, eps=1e-5)

    if compiled:
        forward = torch.compile(forward)
    if dy is None:

        def run():
            with torch.no_grad():
                forward(xt)

        return run

    xg = xt.detach().requires_grad_(True)

    def run():
        forward(xg).backward(dyt)
        xg.grad = weight.grad = bias.grad = None

    return run


def make_case(name, op, shape, mode, axis, target):
    def make():
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape, dtype=np.float32)
        dy = rng.standard_normal(shape, dtype=np.float32) if mode == "fwd+bwd" else None
        channels = shape[axis] if axis is not None else None
        layer = _layer(op, channels, shape[-1], axis if axis is not None else 1)
        if dy is None:

            def fastnorm_run():
                layer.forward(x)
        else:

            def fastnorm_run():
                layer.forward(x)
                layer.backward(dy)

        if op in FASTNORM_ONLY:
            return {"fastnorm": fastnorm_run}
        impls = {
            "fastnorm": fastnorm_run,
            "numpy": lambda: numpy_forward_backward(op, x, dy, axis if axis is not None else -1),
            "torch": _torch_impl(op, x, dy, axis),
        }
        if compile_peer_available():
            impls["compile"] = _torch_impl(op, x, dy, axis, compiled=True)
        return impls

    nbytes = int(np.prod(shape)) * 4
    passes = {("fwd", True): 2, ("fwd", False): 3, ("fwd+bwd", True): 5, ("fwd+bwd", False): 8}
    # per-sample statistics fit in cache with their run: one read and one write per pass
    moved = passes[(mode, op not in ("batch", "renorm", "ghost16"))] * nbytes
    return BenchCase(name, "kernels", make, bytes_moved=moved, target=target)


CASES = [make_case(*row) for row in TABLE]
