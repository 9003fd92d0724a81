"""Which twin of a threaded kernel runs (``_kernels/policy.py``): threads from 2^16 elements (from
2^17 for batch norm's fused column kernels, 2^18 at one Numba thread, unless forced as
``precompile`` does), and the same bits either way."""

import contextlib
import threading

import numba
import numpy as np
import pytest

import fastnorm.functional as F
from fastnorm._kernels import columns_fused, policy, rows_fused

needs_two_threads = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="Numba has one thread on this machine"
)


def _counted(monkeypatch, kernel):
    """Counts of ``kernel``'s serial and threaded twin calls."""
    calls = {"serial": 0, "parallel": 0}

    def counting(name):
        compiled = getattr(kernel, name)

        def call(*args):
            calls[name] += 1
            return compiled(*args)

        return call

    monkeypatch.setattr(kernel, "serial", counting("serial"))
    monkeypatch.setattr(kernel, "parallel", counting("parallel"))
    return calls


@pytest.fixture
def twin_calls(monkeypatch):
    """Counts of the layer-norm kernel's twin calls."""
    return _counted(monkeypatch, rows_fused.rows_normalize)


@pytest.fixture
def numba_threads():
    """Set this Python thread's Numba thread count for the test; restored afterwards."""
    previous = []

    def set_to(n):
        previous.append(F.set_num_threads(n))

    yield set_to
    if previous:
        F.set_num_threads(previous[0])


def _layer_norm(rows):
    x = np.random.default_rng(rows).standard_normal((rows, 512)).astype(np.float32)
    return F.layer_norm(x, 512)


@needs_two_threads
def test_threads_from_2_16_elements(twin_calls, numba_threads):
    numba_threads(2)
    assert policy.PARALLEL_MIN_ELEMENTS == 1 << 16
    _layer_norm(127)  # 65,024 elements
    assert twin_calls == {"serial": 1, "parallel": 0}
    _layer_norm(128)  # 65,536
    assert twin_calls == {"serial": 1, "parallel": 1}


def test_one_numba_thread_runs_the_threaded_twin_only_from_2_18(twin_calls, numba_threads):
    """At one thread the threaded twin's region costs more than it saves on small inputs, but its
    code is faster on large ones."""
    numba_threads(1)
    assert not policy.use_threads((1 << 18) - 1)
    _layer_norm(511)  # 261,632 elements
    assert twin_calls == {"serial": 1, "parallel": 0}
    _layer_norm(512)  # 2 ** 18
    assert twin_calls == {"serial": 1, "parallel": 1}


@needs_two_threads
def test_batch_norm_columns_thread_from_2_17(monkeypatch, numba_threads):
    calls = _counted(monkeypatch, columns_fused.columns_normalize)
    numba_threads(2)
    for rows in (128, 255, 256):  # 2 ** 16, 130,560 and 2 ** 17 elements
        x = np.random.default_rng(rows).standard_normal((rows, 512)).astype(np.float32)
        F.batch_norm(x, training=True)
    assert calls == {"serial": 2, "parallel": 1}


def test_forced_threads_run_the_threaded_twin_with_one_thread(twin_calls, numba_threads):
    """``precompile`` compiles the threaded twins under ``forced_threads`` at any thread count."""
    numba_threads(1)
    with policy.forced_threads():
        _layer_norm(8)
    assert twin_calls == {"serial": 0, "parallel": 1}


def test_the_twins_give_the_same_bits_at_the_threshold():
    """The serial twin (by default below 2^18 at one thread, and for batch norm's columns) and the
    threaded twin (``forced_threads``) on 2^16 elements."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((128, 512)) * 3 + 1e3).astype(np.float32)  # 2 ** 16 elements
    dy = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for forced in (True, False):
        with policy.forced_threads() if forced else policy.kernel_threshold(1 << 17):
            for forward in (
                lambda: F.batch_norm_forward(x, np.zeros(512), np.ones(512), training=True),
                lambda: F.batch_norm_forward(x, np.zeros(512), np.ones(512), training=False),
                lambda: F.layer_norm_forward(x, 512),
                lambda: F.group_norm_forward(x, 32),
            ):
                y, ctx = forward()
                results.append((y, *ctx.backward(dy)))
    half = len(results) // 2
    for threaded, serial in zip(results[:half], results[half:]):
        for a, b in zip(threaded, serial):
            np.testing.assert_array_equal(a, b)


@contextlib.contextmanager
def _forcing_in_another_thread(inside_check=None):
    """A worker Python thread inside ``forced_threads`` (as ``precompile`` runs) for the block;
    ``inside_check`` runs in the worker, inside the context."""
    inside, release = threading.Event(), threading.Event()

    def forcing():
        with policy.forced_threads():
            if inside_check is not None:
                inside_check()
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=forcing)
    worker.start()
    try:
        assert inside.wait(10)
        yield
    finally:
        release.set()
        worker.join()


def test_forced_threads_stay_in_their_python_thread():
    """Small inputs skip the thread-local lookup unless some thread forces threads; that shortcut
    must neither leak one thread's forcing into another nor outlive it."""

    def forced_there():
        assert policy.use_threads(1)

    with _forcing_in_another_thread(forced_there):
        assert not policy.use_threads(1)  # this thread's threshold is untouched
    assert not policy.use_threads(1)
    assert policy.use_threads(policy.ONE_THREAD_MIN_ELEMENTS)  # threaded at any thread count


@needs_two_threads
def test_another_threads_forcing_leaves_a_kernels_own_threshold(monkeypatch, numba_threads):
    """While a worker is inside ``forced_threads`` (``precompile``), this thread's batch-norm
    columns of 2^16 elements still run serially (their threads pay from 2^17)."""
    calls = _counted(monkeypatch, columns_fused.columns_normalize)
    numba_threads(2)
    with _forcing_in_another_thread():
        x = np.random.default_rng(1).standard_normal((128, 512)).astype(np.float32)
        F.batch_norm(x, training=True)
    assert calls == {"serial": 1, "parallel": 0}


def test_one_thread_is_read_without_starting_the_pool():
    """With ``NUMBA_NUM_THREADS=1`` and no pool started, a 2^17 input runs serially and the
    policy's reading of the count does not start Numba's pool."""
    from subprocess_script import run_script

    done = run_script(
        """
        import numpy as np
        from numba.np.ufunc import parallel
        import fastnorm.functional as F
        from fastnorm._kernels import policy, rows_fused
        assert policy._numba_threads() == 1
        ran = []
        serial = rows_fused.rows_normalize.serial
        rows_fused.rows_normalize.serial = lambda *a: ran.append(1) or serial(*a)
        F.layer_norm(np.ones((256, 512), np.float32), 512)
        assert ran == [1] and not parallel._is_initialized
        print("ok")
        """,
        env={"NUMBA_NUM_THREADS": "1"},
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_threads_as_before_where_numba_moved_its_count(monkeypatch):
    """No ``_get_num_threads`` in a future Numba: the count is taken as more than one."""
    import sys
    import types

    import numba.np.ufunc

    moved = types.SimpleNamespace(_is_initialized=True)
    monkeypatch.setattr(numba.np.ufunc, "parallel", moved)
    monkeypatch.setitem(sys.modules, "numba.np.ufunc.parallel", moved)
    assert policy._numba_threads() == 2
