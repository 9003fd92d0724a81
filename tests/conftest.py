"""Shared fixtures. Nothing here imports fastnorm, so the reference tests run on their own."""

import os

import numpy as np
import pytest

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is in the test extra; without it only test_properties.py fails
    settings = None

if settings is not None:
    # property tests (test_properties.py). "ci": the same examples on every run, no deadline
    # (a first call compiles kernels); "long", on demand: HYPOTHESIS_PROFILE=long
    _slow_ok = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    settings.register_profile(
        "ci",
        max_examples=800,
        derandomize=True,
        deadline=None,
        print_blob=True,
        suppress_health_check=_slow_ok,
    )
    settings.register_profile(
        "long", max_examples=5000, deadline=None, print_blob=True, suppress_health_check=_slow_ok
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id, so every test (and parameter set) is reproducible
    on its own and independent of the order tests run in."""
    seed = int.from_bytes(request.node.nodeid.encode(), "little") % (2**63)
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def torch():
    """PyTorch (CPU, float64-capable), or skip the test when it is not installed."""
    torch = pytest.importorskip("torch")
    torch.set_default_dtype(torch.float32)
    return torch


class TorchRef:
    """Run torch.nn.functional on NumPy arrays: returns a dict with the output ``y``, the updated
    running statistics ``rm``/``rv`` (when given) and, when ``dy`` is given, the gradients
    ``dx``/``dw``/``db`` of sum(y * dy). Channel axis ``axis`` is moved to 1 for torch."""

    def __init__(self, torch):
        self.torch = torch
        self.F = torch.nn.functional

    def _t(self, a, grad=False):
        if a is None:
            return None
        t = self.torch.from_numpy(np.array(a, copy=True))
        if grad:
            t.requires_grad_(True)
        return t

    @staticmethod
    def _np(t):
        return None if t is None else t.detach().numpy().copy()

    def _run(self, fn, x, weight, bias, dy, axis, rm=None, rv=None):
        xt = self._t(x, grad=dy is not None)
        wt = self._t(weight, grad=dy is not None)
        bt = self._t(bias, grad=dy is not None)
        rmt, rvt = self._t(rm), self._t(rv)
        y = fn(xt.movedim(axis, 1) if axis is not None else xt, rmt, rvt, wt, bt)
        if axis is not None:
            y = y.movedim(1, axis)
        res = {"y": self._np(y), "rm": self._np(rmt), "rv": self._np(rvt)}
        if dy is not None:
            (y * self._t(dy)).sum().backward()
            res["dx"] = self._np(xt.grad) if xt.grad is not None else np.zeros(np.shape(x))
            res["dw"] = None if wt is None else self._np(wt.grad)
            res["db"] = None if bt is None else self._np(bt.grad)
        return res

    def batch_norm(
        self,
        x,
        running_mean=None,
        running_var=None,
        weight=None,
        bias=None,
        training=False,
        momentum=0.1,
        eps=1e-5,
        axis=1,
        dy=None,
    ):
        def fn(x, rm, rv, w, b):
            return self.F.batch_norm(x, rm, rv, w, b, training, momentum, eps)

        return self._run(fn, x, weight, bias, dy, axis, running_mean, running_var)

    def layer_norm(self, x, normalized_shape, weight=None, bias=None, eps=1e-5, dy=None):
        def fn(x, rm, rv, w, b):
            return self.F.layer_norm(x, tuple(normalized_shape), w, b, eps)

        return self._run(fn, x, weight, bias, dy, None)

    def group_norm(self, x, num_groups, weight=None, bias=None, eps=1e-5, axis=1, dy=None):
        def fn(x, rm, rv, w, b):
            return self.F.group_norm(x, num_groups, w, b, eps)

        return self._run(fn, x, weight, bias, dy, axis)

    def instance_norm(
        self,
        x,
        running_mean=None,
        running_var=None,
        weight=None,
        bias=None,
        use_input_stats=True,
        momentum=0.1,
        eps=1e-5,
        axis=1,
        dy=None,
    ):
        def fn(x, rm, rv, w, b):
            return self.F.instance_norm(x, rm, rv, w, b, use_input_stats, momentum, eps)

        return self._run(fn, x, weight, bias, dy, axis, running_mean, running_var)

    def rms_norm(self, x, normalized_shape, weight=None, eps=None, dy=None):
        def fn(x, rm, rv, w, b):
            return self.F.rms_norm(x, tuple(normalized_shape), w, eps)

        return self._run(fn, x, weight, None, dy, None)


@pytest.fixture(scope="session")
def tref(torch):
    """:class:`TorchRef` bound to the installed torch (skips when torch is missing)."""
    return TorchRef(torch)
