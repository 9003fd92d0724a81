"""Determinism across Numba thread counts and safety of concurrent calls from Python threads.

Both run in a subprocess: NUMBA_NUM_THREADS must be set before numba starts (to allow 8 threads
on a 2-core machine), and a threading layer that is not thread-safe aborts the whole process,
which must fail the test instead of killing pytest.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

COMMON = textwrap.dedent("""
    import json, sys, hashlib
    import numpy as np
    import numba
    import fastnorm
    from fastnorm.nn import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm

    def layer_cases():
        # (name, factory, input shape, dtype): shapes large enough for several parallel blocks
        f32, f64 = np.float32, np.float64
        return [
            ("batch-nchw", lambda: BatchNorm(32), (64, 32, 20, 20), f32),
            ("batch-features", lambda: BatchNorm(256), (4096, 256), f32),
            ("batch-features-f64", lambda: BatchNorm(96, dtype=f64), (3000, 96), f64),
            ("batch-nhwc", lambda: BatchNorm(32, axis=-1), (32, 20, 20, 32), f32),
            ("batch-eval", lambda: BatchNorm(32).eval(), (32, 32, 20, 20), f32),
            ("layer", lambda: LayerNorm(512), (2048, 512), f32),
            ("layer-f64", lambda: LayerNorm((16, 32), dtype=f64), (512, 16, 32), f64),
            ("group", lambda: GroupNorm(8, 32), (32, 32, 20, 20), f32),
            ("group-features", lambda: GroupNorm(8, 256), (4096, 256), f32),
            ("instance", lambda: InstanceNorm(32, affine=True, track_running_stats=True),
             (32, 32, 20, 20), f32),
            ("rms", lambda: RMSNorm(512), (2048, 512), f32),
        ]

    def run_layer(factory, shape, dtype, seed):
        rng = np.random.default_rng(seed)
        layer = factory()
        for key, p in layer.params.items():
            p[...] = rng.uniform(0.5, 1.5, p.shape) if key == "weight" \\
                else rng.standard_normal(p.shape)
        if getattr(layer, "running_mean", None) is not None:
            layer.running_mean[...] = rng.standard_normal(layer.running_mean.shape)
            layer.running_var[...] = rng.uniform(0.5, 2.0, layer.running_var.shape)
        x = (3.0 + 2.0 * rng.standard_normal(shape)).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        out = {"y": layer.forward(x), "dx": layer.backward(dy)}
        out.update({"d" + k: v for k, v in layer.grads.items()})
        if getattr(layer, "running_mean", None) is not None:
            out["running_mean"] = layer.running_mean.copy()
            out["running_var"] = layer.running_var.copy()
        return out

    def functional_cases():
        rng = np.random.default_rng(1)
        x4 = (1.0 + rng.standard_normal((32, 32, 16, 16))).astype(np.float32)
        x2 = rng.standard_normal((4096, 256))
        rm, rv = np.zeros(32, np.float32), np.ones(32, np.float32)
        return [
            ("f-batch-train", lambda: fastnorm.batch_norm(x4, rm.copy(), rv.copy(),
                                                          training=True)),
            ("f-batch-2d-f64", lambda: fastnorm.batch_norm(x2, None, None, training=True)),
            ("f-batch-last", lambda: fastnorm.batch_norm(x2, None, None, training=True,
                                                         axis=-1)),
            ("f-layer", lambda: fastnorm.layer_norm(x2, (256,))),
            ("f-group-last", lambda: fastnorm.group_norm(x4, 4, axis=-1)),
            ("f-instance", lambda: fastnorm.instance_norm(x4)),
            ("f-rms", lambda: fastnorm.rms_norm(x4, (16, 16))),
        ]
""")

DETERMINISM = COMMON + textwrap.dedent("""
    digests = {}
    for k in (1, 2, 8):
        numba.set_num_threads(k)
        assert numba.get_num_threads() == k
        for name, factory, shape, dtype in layer_cases():
            for key, arr in run_layer(factory, shape, dtype, seed=7).items():
                digests.setdefault(f"{name}:{key}", {})[k] = hashlib.sha256(
                    np.ascontiguousarray(arr).tobytes()).hexdigest()
        for name, fn in functional_cases():
            digests.setdefault(name, {})[k] = hashlib.sha256(
                np.ascontiguousarray(fn()).tobytes()).hexdigest()
    differ = sorted(key for key, d in digests.items() if len(set(d.values())) != 1)
    print(json.dumps({"checked": len(digests), "differ": differ}))
""")

CONCURRENCY = COMMON + textwrap.dedent("""
    import threading
    # expected results, computed one call at a time in the main thread
    layers = [(n, f, s, d) for n, f, s, d in layer_cases()
              if n in ("batch-nchw", "batch-features", "batch-nhwc", "layer", "group", "rms")]
    funcs = functional_cases()
    expected_layers = {n: run_layer(f, s, d, seed=11) for n, f, s, d in layers}
    expected_funcs = {n: fn() for n, fn in funcs}

    errors = []
    n_threads = 8
    barrier = threading.Barrier(n_threads)

    def worker(t):
        try:
            barrier.wait()
            for rep in range(2):
                order = list(range(len(funcs)))
                order = order[t % len(order):] + order[:t % len(order)]
                for i in order:
                    name, fn = funcs[i]
                    got = fn()
                    if not np.allclose(got, expected_funcs[name], rtol=1e-6, atol=1e-6):
                        errors.append(f"thread {t}: {name} differs")
                for name, f, s, d in layers[t % 2::2]:
                    got = run_layer(f, s, d, seed=11)
                    for key, arr in got.items():
                        if not np.allclose(arr, expected_layers[name][key], rtol=1e-6,
                                           atol=1e-5):
                            errors.append(f"thread {t}: {name}:{key} differs")
        except Exception as e:  # noqa: BLE001
            errors.append(f"thread {t}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(json.dumps({"errors": errors, "layer": numba.threading_layer()}))
""")


def run_script(script, extra_env, timeout=420):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env.update(extra_env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"subprocess exited with {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
        f"stderr:\n{proc.stderr[-3000:]}"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_bitwise_identical_for_1_2_8_threads():
    """Outputs, gradients and running statistics do not depend on the Numba thread count."""
    result = run_script(DETERMINISM, {"NUMBA_NUM_THREADS": "8"})
    assert result["checked"] >= 40
    assert result["differ"] == [], f"results depend on the thread count: {result['differ']}"


def test_concurrent_python_threads_and_threading_layer():
    """8 Python threads calling kernels at once get the single-threaded results, the process
    survives, and the threading layer chosen on a fresh environment is a thread-safe one."""
    result = run_script(CONCURRENCY, {})
    assert result["errors"] == []
    assert result["layer"] in ("omp", "tbb"), result["layer"]


@pytest.mark.parametrize("k", [1, 2])
def test_set_num_threads_in_process_gives_same_result(k):
    """In-process check (cheap): results under numba.set_num_threads(k) equal the default's;
    the caller's thread count is restored afterwards."""
    numba = pytest.importorskip("numba")
    import numpy as np

    import fastnorm

    rng = np.random.default_rng(3)
    x = rng.standard_normal((512, 64)).astype(np.float32)
    base = fastnorm.batch_norm(x, None, None, training=True)
    before = numba.get_num_threads()
    numba.set_num_threads(min(k, numba.config.NUMBA_NUM_THREADS))
    try:
        got = fastnorm.batch_norm(x, None, None, training=True)
        assert numba.get_num_threads() == min(k, numba.config.NUMBA_NUM_THREADS)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(got, base)
