"""Kernel benchmark cases: one table, shared by ``python -m fastnorm bench`` and the asv suite."""

import numpy as np

from .. import nn
from .case import BenchCase


def _fwd_and_bwd(name, op, shape, axis, target, bwd_target=None):
    """The forward-alone row and the forward+backward row of one operation on one shape."""
    return [
        (f"{name} fwd {shape}", op, shape, "fwd", axis, target),
        (f"{name} fwd+bwd {shape}", op, shape, "fwd+bwd", axis, bwd_target or target),
    ]


# (name, operation, shape, mode, channel axis, target); the targets are the speed issue's: every
# row >= 1.5x PyTorch eager, forward alone and with backward, at 1 and at all threads, and more on
# the large shapes
TABLE = [
    *_fwd_and_bwd(
        "batch_norm", "batch", (256, 64, 56, 56), 1, ">= 1.5x torch, >= 85% roofline", ">= 3x torch"
    ),
    ("batch_norm fwd (32, 256, 28, 28)", "batch", (32, 256, 28, 28), "fwd", 1, ">= 1.5x torch"),
    (
        "batch_norm fwd (32, 28, 28, 256) channels-last",
        "batch",
        (32, 28, 28, 256),
        "fwd",
        -1,
        ">= 1.5x torch",
    ),
    *_fwd_and_bwd("batch_norm", "batch", (4096, 1024), 1, ">= 1.5x torch"),
    *_fwd_and_bwd("batch_norm", "batch", (128, 512), 1, ">= 1.5x torch"),
    *_fwd_and_bwd("layer_norm", "layer", (8192, 1024), None, ">= 1.5x torch"),
    *_fwd_and_bwd("group_norm 32", "group", (32, 256, 28, 28), 1, ">= 2x torch"),
    *_fwd_and_bwd("instance_norm", "instance", (32, 64, 56, 56), 1, ">= 1.5x torch"),
    *_fwd_and_bwd("rms_norm", "rms", (8192, 1024), None, ">= 1.5x torch"),
    # small-batch remedies, against the plain batch_norm rows of the same shapes
    ("batch_renorm fwd+bwd (4096, 1024)", "renorm", (4096, 1024), "fwd+bwd", 1, "<= 1.2x batch"),
    ("batch_renorm fwd+bwd (128, 512)", "renorm", (128, 512), "fwd+bwd", 1, "<= 1.2x batch"),
    ("ghost_batch 16 fwd+bwd (4096, 1024)", "ghost16", (4096, 1024), "fwd+bwd", 1, "<= 1.2x batch"),
    ("ghost_batch 16 fwd+bwd (128, 512)", "ghost16", (128, 512), "fwd+bwd", 1, "<= 1.2x batch"),
]
# operations that only fastnorm has: no NumPy or PyTorch column
FASTNORM_ONLY = {"renorm", "ghost16"}
GROUPS = 32


def _layer(op, channels, width, axis, dtype=np.float32):
    if op == "batch":
        return nn.BatchNorm(channels, axis=axis, dtype=dtype)
    if op == "renorm":  # limits that bind: r and d are computed and applied
        return nn.BatchNorm(channels, axis=axis, renorm=True, r_max=1.5, d_max=0.5, dtype=dtype)
    if op == "ghost16":
        return nn.BatchNorm(channels, axis=axis, virtual_batch_size=16, dtype=dtype)
    if op == "group":
        return nn.GroupNorm(GROUPS, channels, axis=axis, dtype=dtype)
    if op == "instance":
        return nn.InstanceNorm(channels, affine=True, axis=axis, dtype=dtype)
    if op == "layer":
        return nn.LayerNorm(width, dtype=dtype)
    return nn.RMSNorm(width, dtype=dtype)


def _channels_last(op, x, axis):
    """Channels-last input of a per-channel operation: the peers see it as an NCHW view."""
    return op not in ("layer", "rms") and axis is not None and axis % x.ndim != 1 and x.ndim > 2


def numpy_forward_backward(op, x, dy, axis):
    """Plain NumPy (vectorized, float64 statistics) for the comparison column."""
    x64 = x.astype(np.float64)
    moved = op in ("group", "instance") and _channels_last(op, x, axis)
    if moved:  # NHWC: group the channels of each sample as in NCHW (a copy NumPy must make)
        x64 = np.moveaxis(x64, axis, 1)
    shape = x64.shape
    if op == "batch":
        ax = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    elif op in ("layer", "rms"):
        ax = (-1,)
    else:
        n, c = shape[:2]
        groups = GROUPS if op == "group" else c
        x64 = x64.reshape(n, groups, -1)
        ax = (-1,)
    mean = 0.0 if op == "rms" else x64.mean(axis=ax, keepdims=True)
    xc = x64 - mean
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=ax, keepdims=True) + 1e-5)
    xhat = xc * rstd

    def back(a):
        a = a.reshape(shape)
        return (np.moveaxis(a, 1, axis) if moved else a).astype(x.dtype)

    if dy is None:
        return back(xhat)
    g = dy.astype(np.float64)
    g = (np.moveaxis(g, axis, 1) if moved else g).reshape(xhat.shape)
    term = (g * xhat).mean(axis=ax, keepdims=True) * xhat
    if op != "rms":
        term = term + g.mean(axis=ax, keepdims=True)
    return back((g - term) * rstd)


COMPILE_BACKEND = "inductor"


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

    def to_torch(a):
        if _channels_last(op, x, axis):  # an NCHW view with channels-last strides, no copy
            return torch.from_numpy(np.moveaxis(a, axis, 1))
        return torch.from_numpy(a)

    xt = to_torch(x)
    channels = xt.shape[1]
    width = x.shape[-1]
    param_len = width if op in ("layer", "rms") else channels
    weight = torch.ones(param_len, dtype=xt.dtype, requires_grad=dy is not None)
    bias = torch.zeros(param_len, dtype=xt.dtype, requires_grad=dy is not None)
    running = (torch.zeros(channels, dtype=xt.dtype), torch.ones(channels, dtype=xt.dtype))
    dyt = None if dy is None else to_torch(dy)

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
        # a case's own graphs: Dynamo counts recompilations per function code, and past its
        # limit (8) would silently run the later cases eagerly
        torch._dynamo.reset()
        forward = torch.compile(forward, backend=COMPILE_BACKEND)
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


def _torch_out_impl(op, x, dy, axis):
    """PyTorch writing into preallocated outputs through its ``out=`` operators (the ones its
    functional API calls); None for RMS norm, which has no ``out=`` form."""
    try:
        import torch
    except ImportError:
        return None
    if op == "rms":
        return None
    aten = torch.ops.aten
    nchw = np.moveaxis(x, axis, 1) if _channels_last(op, x, axis) else x
    xt = torch.from_numpy(nchw)
    dyt = (
        None if dy is None else torch.from_numpy(np.moveaxis(dy, axis, 1) if nchw is not x else dy)
    )
    n, c = xt.shape[:2]
    if op == "instance":  # PyTorch's instance_norm: batch norm over a (1, N * C, L) reshape
        xt = xt.reshape(1, n * c, -1)
        dyt = None if dyt is None else dyt.reshape(xt.shape)
    y, dx = torch.empty_like(xt), torch.empty_like(xt)
    mask = [True, True, True]
    if op in ("batch", "instance"):
        channels = xt.shape[1]
        w, b = torch.ones(channels, dtype=xt.dtype), torch.zeros(channels, dtype=xt.dtype)
        rm, rv = (torch.zeros(channels, dtype=xt.dtype), torch.ones(channels, dtype=xt.dtype))
        if op == "instance":
            rm = rv = None
        m, s = torch.empty(channels, dtype=xt.dtype), torch.empty(channels, dtype=xt.dtype)
        dw, db = torch.empty_like(w), torch.empty_like(b)

        def fwd():
            aten.native_batch_norm.out(
                xt, w, b, rm, rv, True, 0.1, 1e-5, out=y, save_mean=m, save_invstd=s
            )

        def bwd():
            aten.native_batch_norm_backward.out(
                dyt, xt, w, rm, rv, m, s, True, 1e-5, mask, out0=dx, out1=dw, out2=db
            )

    elif op == "layer":
        width = xt.shape[-1]
        w, b = torch.ones(width, dtype=xt.dtype), torch.zeros(width, dtype=xt.dtype)
        rows = xt.numel() // width
        m, s = torch.empty(rows, 1, dtype=xt.dtype), torch.empty(rows, 1, dtype=xt.dtype)
        dw, db = torch.empty_like(w), torch.empty_like(b)

        def fwd():
            aten.native_layer_norm.out(xt, [width], w, b, 1e-5, out0=y, out1=m, out2=s)

        def bwd():
            aten.native_layer_norm_backward.out(
                dyt, xt, [width], m, s, w, b, mask, out0=dx, out1=dw, out2=db
            )

    else:  # group
        hxw = xt.numel() // (n * c) if n * c else 0
        w, b = torch.ones(c, dtype=xt.dtype), torch.zeros(c, dtype=xt.dtype)
        m, s = torch.empty(n, GROUPS, dtype=xt.dtype), torch.empty(n, GROUPS, dtype=xt.dtype)
        dw, db = torch.empty_like(w), torch.empty_like(b)

        def fwd():
            aten.native_group_norm.out(xt, w, b, n, c, hxw, GROUPS, 1e-5, out0=y, out1=m, out2=s)

        def bwd():
            aten.native_group_norm_backward.out(
                dyt, xt, m, s, w, n, c, hxw, GROUPS, mask, out0=dx, out1=dw, out2=db
            )

    def run():
        fwd()
        if dy is not None:
            bwd()

    run.outputs = (y, dx)  # for the tests: what each call writes
    return run


def _fastnorm_out_impl(op, x, dy, axis):
    """fastnorm's functional API writing into preallocated outputs (``out=`` forward and
    backward)."""
    from .. import functional as F

    y, dx = np.empty_like(x), np.empty_like(x)
    dtype = x.dtype
    if op in ("layer", "rms"):
        width = x.shape[-1]
        w, b = np.ones(width, dtype), np.zeros(width, dtype)
        if op == "layer":
            forward = lambda: F.layer_norm_forward(x, width, w, b, out=y)  # noqa: E731
        else:
            forward = lambda: F.rms_norm_forward(x, width, w, eps=1e-5, out=y)  # noqa: E731
        backward = F.rows_norm_backward
    else:
        c = x.shape[axis]
        w, b = np.ones(c, dtype), np.zeros(c, dtype)
        rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
        if op == "batch":
            forward = lambda: F.batch_norm_forward(  # noqa: E731
                x, rm, rv, w, b, training=True, axis=axis, out=y
            )
        elif op == "group":
            forward = lambda: F.group_norm_forward(x, GROUPS, w, b, axis=axis, out=y)  # noqa: E731
        else:
            forward = lambda: F.instance_norm_forward(  # noqa: E731
                x, weight=w, bias=b, axis=axis, out=y
            )
        backward = F.channel_norm_backward

    def run():
        ctx = forward()[1]
        if dy is not None:
            backward(ctx, dy, out=dx)

    run.outputs = (y, dx)  # for the tests: what each call writes
    return run


def make_case(name, op, shape, mode, axis, target="", dtype="float32"):
    dtype = np.dtype(dtype)

    def make():
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape, dtype=dtype)
        dy = rng.standard_normal(shape, dtype=dtype) if mode == "fwd+bwd" else None
        channels = shape[axis] if axis is not None else None
        layer = _layer(op, channels, shape[-1], axis if axis is not None else 1, dtype)
        if dy is None:

            def fastnorm_run():
                layer.forward(x)
        else:

            def fastnorm_run():
                layer.forward(x)
                layer.backward(dy)

        if op in FASTNORM_ONLY:
            return {"fastnorm": fastnorm_run}
        channel_axis = axis if axis is not None else -1
        impls = {
            "fastnorm": fastnorm_run,
            "numpy": lambda: numpy_forward_backward(op, x, dy, channel_axis),
            "torch": _torch_impl(op, x, dy, axis),
            # both libraries into preallocated outputs: no page faults of fresh arrays
            "fastnorm out=": _fastnorm_out_impl(op, x, dy, channel_axis),
            "torch out=": _torch_out_impl(op, x, dy, channel_axis),
        }
        if compile_peer_available():
            impls["compile"] = _torch_impl(op, x, dy, axis, compiled=True)
        return impls

    nbytes = int(np.prod(shape)) * dtype.itemsize
    passes = {("fwd", True): 2, ("fwd", False): 3, ("fwd+bwd", True): 5, ("fwd+bwd", False): 8}
    # per-sample statistics fit in cache with their run: one read and one write per pass
    moved = passes[(mode, op not in ("batch", "renorm", "ghost16"))] * nbytes
    return BenchCase(name, "kernels", make, bytes_moved=moved, target=target)


CASES = [make_case(*row) for row in TABLE]

# -- the grid: every operation x shape x mode x dtype (the asv suite's kernel benchmarks) -------
# shape kind: (quick-profile shape, full-profile shape, channel axis). The quick shapes keep each
# kind's character (overhead-bound, cache-resident, channels-first/last) at CI size; the
# out-of-cache tensor (256 MB whatever the dtype) is in the full profile only.
SHAPE_KINDS = {
    "tiny": ((8, 64), (8, 64), 1),  # call overhead dominates
    "mlp": ((128, 512), (128, 512), 1),
    "mlp-large": ((1024, 512), (4096, 1024), 1),
    "nchw": ((8, 64, 28, 28), (32, 64, 56, 56), 1),
    "nhwc": ((8, 28, 28, 64), (32, 56, 56, 64), -1),
    "out-of-cache": (None, (1 << 28, 1024), 1),  # rows scaled by the itemsize: 256 MB
}
# the shape kinds each operation is defined on (instance norm needs spatial positions)
OP_SHAPES = {
    "batch": ("tiny", "mlp", "mlp-large", "nchw", "nhwc", "out-of-cache"),
    "layer": ("tiny", "mlp", "mlp-large", "out-of-cache"),
    "rms": ("tiny", "mlp", "mlp-large", "out-of-cache"),
    "group": ("tiny", "mlp", "nchw", "nhwc"),
    "instance": ("nchw", "nhwc"),
}
OP_NAMES = {
    "batch": "batch_norm",
    "layer": "layer_norm",
    "rms": "rms_norm",
    "group": "group_norm 32",
    "instance": "instance_norm",
}
MODES = ("fwd", "fwd+bwd")
DTYPES = ("float32", "float64")


def grid_shape(kind, dtype, profile="full"):
    """The shape of a kind in a profile, or None where the profile leaves the kind out."""
    quick, full, _ = SHAPE_KINDS[kind]
    shape = quick if profile == "quick" else full
    if kind == "out-of-cache" and shape is not None:
        shape = (shape[0] // (shape[1] * np.dtype(dtype).itemsize), shape[1])
    return shape


def grid_case(op, kind, mode, dtype, profile="full"):
    """One grid cell as a BenchCase, or None where the operation or the profile has no such
    shape."""
    shape = grid_shape(kind, dtype, profile)
    if kind not in OP_SHAPES[op] or shape is None:
        return None
    axis = SHAPE_KINDS[kind][2] if op not in ("layer", "rms") else None
    layout = " channels-last" if kind == "nhwc" else ""
    name = f"{OP_NAMES[op]} {mode} {dtype} {shape}{layout}"
    return make_case(name, op, shape, mode, axis, dtype=dtype)
