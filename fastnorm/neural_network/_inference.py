"""Inference of a fitted MLP in its own dtype, with results that do not depend on the batch.

A BLAS product rounds a row differently depending on the number of rows and on the row's place
among them (OpenBLAS's float32 kernels do, by about 1e-6). The linear layers here run on
fastnorm's own kernels instead (``fastnorm.functional.inference``): activations are stored in
row blocks, (blocks, features, width), rows are the vector lanes, and every row goes through the
same IEEE operations in the same order (one fma chain per output, input by input) whatever the
batch, its place in it and the thread count. The element-wise steps (bias, batch norm,
activations), the per-row norms and the softmax work row by row as well, so a row predicted
alone equals, bitwise, the same row predicted in any batch.

Nothing is cached: the steps hold the layers' current arrays (``coefs_`` edits, loaded weights
and new running statistics are used at once); building them costs microseconds.
"""

import concurrent.futures
import contextlib
import itertools
import math
import os
import threading

import numpy as np
from scipy.special import erf, expit

from .. import functional as F
from ..functional.inference import (
    block_buffer,
    block_width,
    from_blocks,
    linear_blocks,
    num_threads,
    rows_norm_blocks,
    to_blocks,
)
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

__all__ = ["TASK_ROWS", "build_steps", "predict_rows"]

TASK_ROWS = 512  # rows taken through every layer at a time (activations stay in cache)


class _Linear:
    """A linear layer, then its bias or eval batch norm and ReLU, in one kernel."""

    def __init__(self, layer, dtype):
        self.weight = np.ascontiguousarray(layer.params["weight"], dtype)  # no copy when it is
        self.n_out = self.weight.shape[0]
        bias = layer.params.get("bias")
        self.bias = None if bias is None else np.asarray(bias, dtype)
        self.bn = None
        self.relu = False

    def __call__(self, At, rows, out):
        bn = self.bn
        if bn is not None:
            w, b = bn.params.get("weight"), bn.params.get("bias")
            bn = (bn.running_mean, bn.running_var, w, b, bn.eps)
        return linear_blocks(self.weight, At, rows, out, self.bias, bn, self.relu)


class _InPlace:
    """An element-wise or per-row step on the block array, in place (element-wise steps also
    touch the padding lanes, which hold zeros or earlier finite rows)."""

    n_out = None

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, At, rows, out=None):
        self.fn(At, rows)
        return At


def _gelu(layer):
    if layer.approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        return lambda x, rows: np.multiply(x, 0.5 * (1 + np.tanh(c * (x + 0.044715 * x**3))), out=x)
    return lambda x, rows: np.multiply(x, 0.5 * (1.0 + erf(x * (1.0 / math.sqrt(2.0)))), out=x)


def _bn_alone(bn):
    """A batch norm after something other than a linear layer (not in the estimators' nets),
    per feature, in float64 rounded once."""

    def apply(x, rows):
        mean = np.asarray(bn.running_mean, np.float64)[:, None]
        scale = 1.0 / np.sqrt(np.asarray(bn.running_var, np.float64) + bn.eps)
        w, b = bn.params.get("weight"), bn.params.get("bias")
        scale = (scale if w is None else scale * w)[:, None]
        shift = 0.0 if b is None else np.asarray(b, np.float64)[:, None]
        x[...] = (x.astype(np.float64) - mean) * scale + shift

    return apply


def _rows_norm(layer):
    w, b = layer.params.get("weight"), layer.params.get("bias")
    if isinstance(layer, LayerNorm):
        return lambda x, rows: rows_norm_blocks(x, rows, 1, True, w, b, layer.eps)
    if isinstance(layer, RMSNorm):
        eps = float(np.finfo(layer.dtype).eps) if layer.eps is None else layer.eps
        return lambda x, rows: rows_norm_blocks(x, rows, 1, False, w, None, eps)
    return lambda x, rows: rows_norm_blocks(x, rows, layer.num_groups, True, w, b, layer.eps)


def _flat(net):
    for layer in net:
        if isinstance(layer, Sequential):
            yield from _flat(layer)
        else:
            yield layer


def _per_row_norm(layer, width):
    """A norm over the features of each row of (rows, width) input."""
    if isinstance(layer, (LayerNorm, RMSNorm)):
        return tuple(layer.normalized_shape) == (width,)
    return isinstance(layer, GroupNorm) and layer.num_channels == width


def build_steps(net):
    """``(steps, dtype)`` of the eval-mode forward pass of ``net`` (a ``Sequential`` starting
    with a ``Linear``), or ``None`` when a layer is not one these steps know (the caller then
    runs the network itself)."""
    layers = list(_flat(net))
    if not layers or not isinstance(layers[0], Linear):
        return None
    dtype = np.dtype(layers[0].params["weight"].dtype)
    steps = []
    width = layers[0].in_features
    for layer in layers:
        last = steps[-1] if steps else None
        fresh = isinstance(last, _Linear) and not last.relu
        if isinstance(layer, Linear):
            steps.append(_Linear(layer, dtype))
            width = layer.out_features
        elif isinstance(layer, (Identity, Dropout)):
            continue
        elif isinstance(layer, BatchNorm):
            if layer.running_mean is None or layer.axis not in (1, -1):
                return None  # batch statistics in eval mode: no per-row answer
            if fresh and last.bn is None:
                last.bn = layer
            else:
                steps.append(_InPlace(_bn_alone(layer)))
        elif isinstance(layer, ReLU):
            if fresh:
                last.relu = True
            else:
                steps.append(_InPlace(lambda x, rows: np.maximum(x, 0, out=x)))
        elif isinstance(layer, Tanh):
            steps.append(_InPlace(lambda x, rows: np.tanh(x, out=x)))
        elif isinstance(layer, Sigmoid):
            steps.append(_InPlace(lambda x, rows: expit(x, out=x)))
        elif isinstance(layer, GELU):
            steps.append(_InPlace(_gelu(layer)))
        elif _per_row_norm(layer, width):
            steps.append(_InPlace(_rows_norm(layer)))
        else:
            return None
    return steps, dtype


@contextlib.contextmanager
def _threads(n_threads):
    """Numba's thread count for the kernels (None: as it is); 1 runs them without threads."""
    if n_threads is None:
        yield
    elif n_threads == 1:
        with F.serial_kernels():
            yield
    else:
        old = F.set_num_threads(n_threads)
        try:
            yield
        finally:
            F.set_num_threads(old)


_POOL = {}
_POOL_LOCK = threading.Lock()


def _pool():
    """This process's worker threads (a forked child makes its own: the parent's are gone)."""
    with _POOL_LOCK:
        pool = _POOL.get(os.getpid())
        if pool is None:
            _POOL.clear()
            workers = max(1, (os.cpu_count() or 1) - 1)
            pool = _POOL[os.getpid()] = concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix="fastnorm-predict"
            )
        return pool


def _run_tasks(steps, dtype, X, out, tasks, task, nonfinite):
    """Take tasks (row offsets, ``task`` rows each) from the shared iterator ``tasks`` until
    none is left, each through every step, on this thread's own buffers; appends to the list
    ``nonfinite`` the count of input rows holding a NaN or an infinity."""
    n, n_in = X.shape
    width = block_width(task)
    first = block_buffer(task, n_in, dtype, width)
    bufs = [block_buffer(task, s.n_out, dtype, width) for s in steps if s.n_out is not None]
    for a in tasks:
        with F.deferred_interrupts():  # one Ctrl-C hold per task, not one per kernel call
            m = min(task, n - a)
            nonfinite.append(to_blocks(X, a, m, first))
            h = first
            used = 0
            for step in steps:
                if step.n_out is None:
                    h = step(h, m)
                else:
                    h = step(h, m, bufs[used])
                    used += 1
            from_blocks(h, m, out[a : a + m])


def predict_rows(steps, dtype, X, n_threads=None):
    """``(output, finite)``: the output of ``steps`` (from :func:`build_steps`) for the 2-D array
    ``X``, in ``dtype``, over ``n_threads`` threads (default: Numba's thread count), and whether
    every value of ``X`` was finite (checked while reading it, for the caller to raise).

    ``TASK_ROWS`` rows at a time go through every layer. One task threads inside each layer;
    several are shared out to worker threads that run serial kernels and take the next task
    when done (no barrier between layers, so a descheduled thread on a busy machine holds up
    nothing but its own task).
    """
    X = np.ascontiguousarray(X)
    n = X.shape[0]
    out = np.empty((n, [s.n_out for s in steps if s.n_out is not None][-1]), dtype)
    task = min(n, TASK_ROWS)
    n_tasks = -(-n // task)
    n_threads = num_threads() if n_threads is None else int(n_threads)
    workers = min(n_threads, n_tasks)
    nonfinite = []
    if workers <= 1:
        with _threads(n_threads):
            _run_tasks(steps, dtype, X, out, iter(range(0, n, task)), task, nonfinite)
        return out, not any(nonfinite)
    tasks = iter(range(0, n, task))  # shared: next() on a range iterator holds the GIL
    stop = []

    def work():
        with F.serial_kernels():
            _run_tasks(steps, dtype, X, out, itertools.takewhile(lambda _: not stop, tasks), task,
                       nonfinite)  # fmt: skip

    futures = [_pool().submit(work) for _ in range(workers - 1)]
    try:
        work()
    finally:
        stop.append(True)  # after an error or Ctrl-C here, the others stop at their next task
        for f in futures:
            f.result()
    return out, not any(nonfinite)
