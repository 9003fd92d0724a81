"""Ctrl-C (SIGINT) at random moments: it must arrive as KeyboardInterrupt, never crash the process
or surface as another error, and an interrupted fit must leave a consistent, usable model.

Each scenario runs in a subprocess that sends itself real SIGINTs: a crash (a negative exit
code) then fails the test instead of killing pytest.
"""

import numpy as np
import pytest
from subprocess_script import run_script

HARNESS = """
    import os, signal, sys, threading, time
    import numpy as np
    import fastnorm
    from fastnorm import functional as F
    from fastnorm.nn import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm

    rng = np.random.default_rng(0)
    delays = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 1)

    def interrupt_loop(name, step, n_interrupts):
        step()  # compile outside the timed part
        for _ in range(n_interrupts):
            timer = threading.Timer(delays.uniform(0.002, 0.06),
                                    lambda: os.kill(os.getpid(), signal.SIGINT))
            timer.start()
            try:
                deadline = time.perf_counter() + 30
                while time.perf_counter() < deadline:
                    step()
                print("NO-INTERRUPT", name, flush=True); sys.exit(3)
            except KeyboardInterrupt:
                pass
            except BaseException as exc:
                print("WRONG", name, type(exc).__name__, exc, flush=True); sys.exit(4)
            finally:
                timer.join()
        print("ok", name, n_interrupts, flush=True)
"""


def test_sigint_in_functional_ops_and_layers_arrives_as_keyboard_interrupt():
    proc = run_script(
        HARNESS
        + """
    x2 = rng.standard_normal((2048, 64)).astype(np.float32)
    x4 = rng.standard_normal((16, 32, 24, 24)).astype(np.float32)
    big = rng.standard_normal((64, 64, 32, 32)).astype(np.float32)  # threaded kernels
    rm, rv = np.zeros(64, np.float32), np.ones(64, np.float32)
    layers = [BatchNorm(64), LayerNorm(64), GroupNorm(8, 32), InstanceNorm(32), RMSNorm(64)]
    inputs = [x2, x2, x4, x4, x2]

    def layer_step(layer, x):
        def step():
            y = layer.forward(x)
            layer.backward(np.ones_like(y))
        return step

    cases = {
        "batch_norm": lambda: fastnorm.batch_norm(x2, rm, rv, training=True),
        "batch_norm_nchw_threaded": lambda: fastnorm.batch_norm(big, training=True),
        "layer_norm": lambda: fastnorm.layer_norm(x2, 64),
        "group_norm": lambda: fastnorm.group_norm(x4, 8),
        "instance_norm": lambda: fastnorm.instance_norm(x4),
        "rms_norm": lambda: fastnorm.rms_norm(x2, 64),
        "column_moments": lambda: F.column_moments(x2),
        "merge_moments": lambda: F.merge_moments(*F.column_moments(x2), *F.column_moments(x2)),
    }
    for layer, x in zip(layers, inputs):
        cases[type(layer).__name__] = layer_step(layer, x)
    for name, step in cases.items():
        interrupt_loop(name, step, 6)
    """
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count("ok ") == 13, proc.stdout


def test_sigint_in_transformer_streaming_keeps_a_consistent_state():
    proc = run_script(
        HARNESS
        + """
    from fastnorm import BatchNormalizer
    X = rng.standard_normal((20_000, 64)).astype(np.float32)
    chunks = np.array_split(X, 20)
    est = BatchNormalizer()

    def stream():
        for c in chunks:
            est.partial_fit(c)
            # whatever the interruption, the state is that of the whole chunks seen
            n = est.n_samples_seen_
            assert n % 1000 == 0, n

    interrupt_loop("partial_fit", stream, 10)
    """
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "ok partial_fit 10" in proc.stdout


MLP_INTERRUPTED = """
    import json
    from sklearn.datasets import load_digits
    from fastnorm import MLPClassifier
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    params = dict(hidden_layer_sizes=(64,), normalization="batch", batch_size=128,
                  max_iter=100_000, random_state=0, n_iter_no_change=100_000)
    results = []
    for trial in range(4):
        clf = MLPClassifier(**params)
        timer = threading.Timer(delays.uniform(0.3, 1.5),
                                lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        try:
            clf.fit(X, y)
            print("NO-INTERRUPT"); sys.exit(3)
        except KeyboardInterrupt:
            pass
        timer.join()
        if not hasattr(clf, "net_"):  # interrupted in the first epoch: left unfitted
            results.append(0)
            continue
        assert len(clf.loss_curve_) == clf.n_iter_, (len(clf.loss_curve_), clf.n_iter_)
        assert clf.t_ == clf.n_iter_ * 1797, (clf.t_, clf.n_iter_)  # samples seen per epoch
        assert clf._optimizer.step_count == clf.n_iter_ * 15  # 1797 rows / 128 -> 15 steps
        clf.predict(X)  # usable
        # the weights are those of a model trained for exactly n_iter_ epochs
        again = MLPClassifier(**{**params, "max_iter": clf.n_iter_})
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again.fit(X, y)
        for key, value in clf.net_.state_dict().items():
            assert np.array_equal(value, again.net_.state_dict()[key]), key
        results.append(clf.n_iter_)
    print("epochs", json.dumps(results))
"""


def test_sigint_during_mlp_fit_keeps_the_last_completed_epoch():
    proc = run_script(HARNESS + MLP_INTERRUPTED)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "epochs" in proc.stdout


def test_interrupted_refit_of_a_fitted_model_keeps_a_fitted_model():
    proc = run_script(
        HARNESS
        + """
    from sklearn.datasets import load_digits
    from fastnorm import MLPClassifier
    X, y = load_digits(return_X_y=True)
    clf = MLPClassifier((32,), max_iter=3, random_state=0).fit(X, y)
    before = clf.predict(X)
    for trial in range(4):
        clf.set_params(max_iter=100_000, n_iter_no_change=100_000)
        timer = threading.Timer(delays.uniform(0.0, 0.5),
                                lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        try:
            clf.fit(X, y)
        except KeyboardInterrupt:
            pass
        timer.join()
        assert hasattr(clf, "net_") and clf.n_features_in_ == 64
        assert len(clf.loss_curve_) == clf.n_iter_
        clf.predict(X)
    print("ok")
    """
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


def test_refit_whose_validation_fails_changes_nothing(rng):
    from fastnorm import MLPClassifier

    X = rng.standard_normal((60, 8)).astype(np.float32)
    y = np.arange(60) % 3
    clf = MLPClassifier((16,), max_iter=2, random_state=0)
    with pytest.warns(Warning):
        clf.fit(X, y)
    before = {k: v for k, v in vars(clf).items()}
    pred = clf.predict(X)
    with pytest.raises(ValueError, match="2 classes"):
        clf.fit(rng.standard_normal((60, 5)), np.zeros(60))
    assert clf.n_features_in_ == 8
    assert set(vars(clf)) == set(before)
    np.testing.assert_array_equal(clf.predict(X), pred)


def test_failed_refit_keeps_the_optimizer_bound_to_the_network(rng):
    """The restored state is copied as one whole: the optimizer steps the restored network, so
    training after a failed call still changes the weights (review finding)."""
    from fastnorm import MLPClassifier

    X = rng.standard_normal((200, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    clf = MLPClassifier((8,), max_iter=3, random_state=0)
    with pytest.warns(Warning):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :5], y)
    assert clf._optimizer.module is clf.net_
    before = clf.net_.state_dict()
    clf.partial_fit(X, y)
    after = clf.net_.state_dict()
    assert any(not np.array_equal(before[k], after[k]) for k in before)


def test_fork_during_a_hold_leaves_the_child_interruptible():
    """A thread that forks while the main thread holds SIGINT (during a fit or a kernel) must
    not leave the child with the recording handler that nobody releases (review finding)."""
    proc = run_script(
        """
        import os, signal, threading, time
        from fastnorm.functional import deferred_interrupts
        res = {}
        def forker():
            pid = os.fork()
            if pid == 0:
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(2)
                    os._exit(3)  # SIGINT was swallowed
                except KeyboardInterrupt:
                    os._exit(7)
            res["pid"] = pid
        with deferred_interrupts():
            t = threading.Thread(target=forker)
            t.start()
            t.join()
        _, status = os.waitpid(res["pid"], 0)
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("child 7"), proc.stdout
