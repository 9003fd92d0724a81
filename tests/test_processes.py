"""fastnorm in child processes (fork, spawn, forkserver) and next to other OpenMP users.

Each scenario runs in a subprocess with a timeout: a hang or an abort must fail the test, not
stall or kill pytest.
"""

import textwrap

import pytest
from subprocess_script import run_script

POOL = """
    import multiprocessing as mp
    import numpy as np
    import fastnorm

    def work(seed):
        x = np.random.default_rng(seed).standard_normal((64, 32, 24, 24), dtype=np.float32)
        y = fastnorm.batch_norm(x, training=True)
        rm, rv = np.zeros(32, np.float32), np.ones(32, np.float32)
        fastnorm.batch_norm(x, rm, rv, training=True)
        X = np.random.default_rng(seed).standard_normal((200_000, 64))
        from fastnorm import BatchNormalizer
        mean = BatchNormalizer().fit(X).mean_
        return y.tobytes(), rm.tobytes(), mean.tobytes()

    if __name__ == "__main__":
        # the parent runs threaded kernels first: the children inherit a started thread pool
        parent = work(0), work(1)
        ctx = mp.get_context("{method}")
        with ctx.Pool(2) as pool:
            children = pool.map(work, [0, 1])
        assert list(children) == list(parent), "children computed other bits than the parent"
        print("ok")
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_process_pools_work_after_threaded_kernels(method, tmp_path):
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"{method} is not available on this platform")
    # spawn and forkserver import the main module: run it from a file
    script = tmp_path / "pool_script.py"
    script.write_text(textwrap.dedent(POOL.replace("{method}", method)))
    proc = run_script(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
    assert "unsafe" not in proc.stderr


def test_joblib_multiprocessing_backend_after_threaded_kernels():
    proc = run_script("""
        import numpy as np
        from joblib import Parallel, delayed
        import fastnorm

        def work(seed):
            x = np.random.default_rng(seed).standard_normal((64, 32, 24, 24), dtype=np.float32)
            return fastnorm.batch_norm(x, training=True).tobytes()

        parent = [work(s) for s in range(2)]
        children = Parallel(n_jobs=2, backend="multiprocessing")(delayed(work)(s) for s in range(2))
        assert children == parent
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_openmp_nesting_is_left_as_found():
    """Numba's OpenMP pool turns nested parallelism on for the process when it starts; a PyTorch
    loaded later then runs nested. fastnorm puts the setting back."""
    proc = run_script("""
        import ctypes
        import numpy as np
        try:
            gomp = ctypes.CDLL("libgomp.so.1")
        except OSError:
            print("no-gomp"); raise SystemExit
        found = gomp.omp_get_nested()
        import fastnorm, numba
        x = np.random.default_rng(0).standard_normal((64, 64, 32, 32), dtype=np.float32)
        fastnorm.batch_norm(x, training=True)  # starts Numba's thread pool
        if numba.threading_layer() != "omp":
            print("not-omp"); raise SystemExit
        assert gomp.omp_get_nested() == found, (found, gomp.omp_get_nested())
        fastnorm.batch_norm(x, training=True)
        assert gomp.omp_get_nested() == found
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if proc.stdout.strip() in ("no-gomp", "not-omp"):
        pytest.skip(f"Numba does not run on GNU OpenMP here ({proc.stdout.strip()})")
    assert proc.stdout.strip().endswith("ok")


def test_workqueue_warning_advises_only_what_works_here():
    """Under the non-thread-safe workqueue layer fastnorm serializes its kernels and says so; the
    advice names only layers Numba can load here, and no setting that breaks fork."""
    proc = run_script(
        """
        import warnings
        import numpy as np
        import fastnorm
        from fastnorm._kernels import policy
        x = np.ones((64, 64, 64, 4), np.float32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fastnorm.batch_norm(x, training=True)
        messages = [str(w.message) for w in caught if "workqueue" in str(w.message)]
        assert len(messages) == 1, messages
        text = messages[0]
        loadable = policy._safe_layers()
        assert ("tbb" in text) == ("tbb" in loadable), (text, loadable)
        assert "NUMBA_THREADING_LAYER=omp" not in text
        print("ok")
        """,
        env={"NUMBA_THREADING_LAYER": "workqueue"},
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_mlp_thread_limit_leaves_openmp_nesting_as_found():
    """``n_threads`` sets Numba's thread count; that must start Numba's pool through the policy,
    which puts OpenMP's nesting back (review finding: it bypassed it)."""
    proc = run_script(
        """
        import ctypes
        import numpy as np
        try:
            gomp = ctypes.CDLL("libgomp.so.1")
        except OSError:
            print("no-gomp"); raise SystemExit
        found = gomp.omp_get_nested()
        from fastnorm import MLPClassifier
        import numba
        X = np.random.default_rng(0).random((200, 8)).astype("f4")
        y = (X[:, 0] > 0.5).astype(int)
        import warnings
        warnings.simplefilter("ignore")
        MLPClassifier((8,), max_iter=2, n_threads=1).fit(X, y)
        if numba.threading_layer() != "omp":
            print("not-omp"); raise SystemExit
        assert gomp.omp_get_nested() == found, (found, gomp.omp_get_nested())
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    if proc.stdout.strip() in ("no-gomp", "not-omp"):
        pytest.skip(f"Numba does not run on GNU OpenMP here ({proc.stdout.strip()})")
    assert proc.stdout.strip().endswith("ok")
