"""The asv suite runs: every benchmark's setup, body and teardown once, in this process, with the
quick profile (``asv run --quick`` forks per parameter set and takes far longer). A benchmark
that raises here would fail under asv too; asv itself may report it only in its log."""

import importlib
import inspect
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("bench_kernels", "bench_estimators", "bench_startup", "bench_dask")
PREFIXES = ("time_", "peakmem_", "track_", "timeraw_")


def _suite(name):
    os.environ.setdefault("FASTNORM_BENCH_PROFILE", "quick")
    sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module(f"benchmarks.{name}")
    finally:
        sys.path.remove(str(ROOT))


def _calls(module):
    """(id, class or None, method name, params) for each benchmark and parameter set."""
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        if inspect.isfunction(obj) and name.startswith(PREFIXES):
            yield f"{name}", None, name, ()
        if not inspect.isclass(obj):
            continue
        grid = [()]
        for values in getattr(obj, "params", []):
            grid = [(*g, v) for g in grid for v in values]
        for method in sorted(m for m in dir(obj) if m.startswith(PREFIXES)):
            for params in grid:
                yield f"{name}.{method}{list(params)}", obj, method, params


def _run_timeraw(code):
    stmt, setup = code if isinstance(code, tuple) else (code, "")
    subprocess.run([sys.executable, "-c", f"{setup}\n{stmt}"], check=True, env=os.environ.copy())


@pytest.mark.slow
@pytest.mark.parametrize("module_name", MODULES)
def test_every_benchmark_runs_once(module_name):
    module = _suite(module_name)
    ran = 0
    caches = {}
    for _, cls, method, params in _calls(module):
        if cls is None:
            code = getattr(module, method)()
            if method.startswith("timeraw_"):
                _run_timeraw(code)
            ran += 1
            continue
        bench = cls()
        args = params
        if hasattr(cls, "setup_cache"):
            if cls not in caches:
                caches[cls] = bench.setup_cache()
            args = (caches[cls], *params)
        try:
            if hasattr(bench, "setup"):
                bench.setup(*args)
        except NotImplementedError:
            continue  # asv's skip: a cell the operation or the profile does not have
        try:
            result = getattr(bench, method)(*args)
            if method.startswith("timeraw_"):
                _run_timeraw(result)
            if method.startswith("track_"):
                assert isinstance(result, float) and (math.isnan(result) or result > 0), result
        finally:
            if hasattr(bench, "teardown"):
                bench.teardown(*args)
        ran += 1
    assert ran > 0
