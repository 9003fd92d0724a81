"""``python -m fastnorm compile``: the warm-up calls run, and a filled cache serves a fresh process
without compiling."""

import json
import os
import subprocess
import sys

import pytest

from fastnorm import _compile
from fastnorm.functional import _warmup


@pytest.mark.parametrize("family", sorted(_warmup.FAMILIES))
def test_every_functional_warmup_family_runs(family):
    job, compiled, seconds = _compile.run_job((family, "float64", False))
    assert job == (family, "float64", False) and compiled >= 0 and seconds >= 0


def test_forced_threads_restores_the_threshold():
    from fastnorm._kernels import policy  # the test reads the policy it checks

    before = policy.min_parallel_elements()
    with _warmup.forced_threads():
        assert policy.use_threads(1)
    assert policy.min_parallel_elements() == before


def test_jobs_cover_every_family_dtype_and_twin():
    todo = _compile.jobs()
    assert len(todo) == len(_compile._families()) * 2 * 2
    assert {dtype for _, dtype, _ in todo} == {"float32", "float64"}


_FIRST_CALLS = """
import json, numpy as np
from numba.core import event
import fastnorm
from fastnorm import functional as F
from fastnorm._kernels import schedule
x = np.random.default_rng(0).standard_normal((64, 64))
with event.install_recorder("numba:compile") as rec:
    y, ctx = F.batch_norm_forward(x, np.zeros(64), np.ones(64), training=True)
    ctx.backward(np.ones_like(y))
    rows = schedule.column_blocks(10**6, 64)[0] + 1  # rows of two blocks: the merge code
    x2 = np.resize(x, (rows, 64))
    y, ctx = F.batch_norm_forward(x2, np.zeros(64), np.ones(64), training=True)
    ctx.backward(np.ones_like(y))
    y, ctx = F.layer_norm_forward(x, 64)
    ctx.backward(np.ones_like(y))
    fastnorm.group_norm(x.reshape(4, 16, 8, 8), 4)
print(json.dumps(sum(1 for _, e in rec.buffer if e.is_start)))
"""


_MERGE_CODE = """
import numpy as np
from fastnorm import functional as F
from fastnorm._kernels import moments, schedule
def compiled():
    return len(moments.merge_block_step.signatures) + len(moments.merge_block_columns.signatures)
for rows in (64, schedule.column_blocks(10**6, 32)[0] + 1):  # one block of rows, then two
    x = np.random.default_rng(0).standard_normal((rows, 32)).astype(np.float32)
    y, ctx = F.batch_norm_forward(x, training=True)
    ctx.backward(np.ones_like(y))
    print(compiled())
"""


def test_a_first_batch_norm_on_one_block_of_rows_compiles_no_merge_code(tmp_path):
    """What a first small batch-norm call leaves out of its compile (``merges`` None): the
    block-merge functions, compiled by the first input of several row blocks."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", _MERGE_CODE], env=env, check=True, capture_output=True, text=True
    )
    one_block, two_blocks = (int(n) for n in run.stdout.split())
    assert one_block == 0 and two_blocks > 0


@pytest.mark.slow
def test_a_precompiled_cache_serves_a_fresh_process_without_compiling(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    code = (
        "from fastnorm._compile import precompile\n"
        "r = precompile(('float64',), processes=1, threaded=(False,))\n"
        "assert r['missed'] == 0, r"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_CALLS], env=env, check=True, capture_output=True, text=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == 0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"dtypes": ("float16",)}, TypeError, "dtypes must be float32 or float64"),
        ({"dtypes": ()}, ValueError, "must not be empty"),
        ({"dtypes": 3}, TypeError, "dtypes must be"),
        ({"processes": -1}, ValueError, "processes must be None or an integer >= 0"),
        ({"processes": "2"}, TypeError, "processes must be"),
        ({"threaded": (2,)}, TypeError, "threaded must be a bool"),
        ({"log": 5}, TypeError, "log must be None or a function"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(monkeypatch, kwargs, error, match):
    monkeypatch.setattr(_compile, "run_job", lambda *a, **k: pytest.fail("work was started"))
    with pytest.raises(error, match=match):
        _compile.precompile(**{"processes": 0, **kwargs})


def test_one_dtype_and_one_twin_may_be_given_alone(monkeypatch):
    done = []
    monkeypatch.setattr(_compile, "run_job", lambda job, *a: done.append(job) or (job, 0, 0.0))
    result = _compile.precompile("float32", processes=0, threaded=False)
    assert result["missed"] == 0
    assert {(d, t) for _, d, t in done} == {("float32", False)}


_ROWS_BITS = """
import sys, numpy as np
import fastnorm.functional as F
rng = np.random.default_rng(0)
out = []
for shape in [(64, 256), (300, 1000), (4096, 256)]:  # serial, and threaded from 2^18
    x = (rng.standard_normal(shape) * 3 + 1e3).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(shape[1]).astype(np.float32)
    b = rng.standard_normal(shape[1]).astype(np.float32)
    for forward in (
        lambda: F.layer_norm_forward(x, shape[1], w, b), lambda: F.rms_norm_forward(x, shape[1], w)
    ):
        y, ctx = forward()
        out += [y, *F.rows_norm_backward(ctx, dy)]
np.savez(sys.argv[1], *out)
"""


def test_a_process_that_compiles_and_one_that_loads_give_the_same_bits(tmp_path):
    """Layer and RMS norm, whose backward loops LLVM may not inline (a process that loads the
    caller from the cache runs the caller's own copy of them): the same bits either way."""
    import numpy as np

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    for name in ("compiled", "loaded"):
        subprocess.run(
            [sys.executable, "-c", _ROWS_BITS, str(tmp_path / f"{name}.npz")], env=env, check=True
        )
    compiled, loaded = np.load(tmp_path / "compiled.npz"), np.load(tmp_path / "loaded.npz")
    assert len(compiled.files) == 24
    for key in compiled.files:
        np.testing.assert_array_equal(compiled[key], loaded[key])
