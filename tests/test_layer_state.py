"""State and aliasing: failed calls leave layers untouched, ``out=x`` does not corrupt the saved
input, folding keeps the original network and only folds what is an affine map of the last axis,
and a non-thread-safe Numba threading layer is serialized instead of crashing."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastnorm.functional as F
from fastnorm.nn import BatchNorm, InstanceNorm, Linear, ReLU, Sequential, fold_batchnorm

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("layer_cls", [BatchNorm, InstanceNorm])
def test_failed_forward_counts_no_batch(layer_cls):
    layer = layer_cls(3, momentum=None, track_running_stats=True)
    bad_inputs = [np.ones((4, 5, 6))] + ([np.ones((1, 3))] if layer_cls is BatchNorm else [])
    for bad in bad_inputs:
        with pytest.raises(ValueError):
            layer.forward(bad)
    assert layer.num_batches_tracked == 0
    x = np.random.default_rng(0).standard_normal((4, 3, 6))
    layer.forward(x)
    assert layer.num_batches_tracked == 1
    axes = (0, 2) if layer_cls is BatchNorm else (2,)
    expected = x.mean(axis=axes) if layer_cls is BatchNorm else x.mean(axis=2).mean(axis=0)
    np.testing.assert_allclose(layer.running_mean, expected, rtol=1e-6)


def test_channel_mismatch_names_the_layer():
    with pytest.raises(ValueError, match=r"BatchNorm\(3\) got an input with 5 channels"):
        BatchNorm(3).forward(np.ones((4, 5)))


@pytest.mark.parametrize(
    "forward, backward, args",
    [
        (F.batch_norm_forward, F.channel_norm_backward, (None, None, None, None, True)),
        (F.group_norm_forward, F.channel_norm_backward, (2,)),
        (F.layer_norm_forward, F.rows_norm_backward, ((6,),)),
    ],
)
def test_out_aliasing_the_input_keeps_gradients(forward, backward, args):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4, 6))
    dy = rng.standard_normal(x.shape)
    y_ref, ctx_ref = forward(x.copy(), *args)
    x_alias = x.copy()
    y, ctx = forward(x_alias, *args, out=x_alias)
    assert y is x_alias
    np.testing.assert_array_equal(y, y_ref)
    for got, want in zip(backward(ctx, dy), backward(ctx_ref, dy)):
        np.testing.assert_array_equal(got, want)


def _trained(seq, x):
    for _ in range(3):
        seq.forward(x)
    return seq.eval()


def test_fold_skips_batchnorm_not_on_the_last_axis():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 4, 4))  # (N, T, F) with T == F: axis 1 is not the features
    seq = _trained(
        Sequential(Linear(4, 4, random_state=0), BatchNorm(4, axis=1, dtype=np.float64)), x
    )
    folded = fold_batchnorm(seq)
    np.testing.assert_allclose(folded.forward(x), seq.forward(x), rtol=1e-6, atol=1e-6)
    assert any(isinstance(layer, BatchNorm) for layer in folded.layers)


def test_fold_folds_2d_and_does_not_share_layers():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 4))
    seq = _trained(
        Sequential(Linear(4, 5, random_state=0), BatchNorm(5, dtype=np.float64), ReLU()), x
    )
    folded = fold_batchnorm(seq)
    np.testing.assert_allclose(folded.forward(x), seq.forward(x), rtol=1e-6, atol=1e-6)
    assert [type(layer) for layer in folded.layers] == [Linear, ReLU]
    folded.train()
    assert not seq.training and not seq.layers[2].training


def test_workqueue_layer_is_serialized_with_a_warning():
    script = textwrap.dedent("""
        import threading, warnings
        import numpy as np
        import numba, fastnorm
        x = np.random.default_rng(0).standard_normal((64, 32, 20, 20)).astype(np.float32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            want = fastnorm.batch_norm(x, training=True)
        assert numba.threading_layer() == "workqueue"
        assert any("workqueue" in str(w.message) for w in caught), caught
        errors = []
        def work():
            for _ in range(3):
                if not np.array_equal(fastnorm.batch_norm(x, training=True), want):
                    errors.append("differs")
        threads = [threading.Thread(target=work) for _ in range(4)]
        [t.start() for t in threads]; [t.join() for t in threads]
        assert not errors
        print("ok")
    """)
    env = {
        **os.environ,
        "NUMBA_THREADING_LAYER": "workqueue",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_serial_kernels_give_the_same_bits_and_restore_the_mode():
    import fastnorm
    from fastnorm._kernels import policy

    x = np.random.default_rng(4).standard_normal((64, 32, 16, 16)).astype(np.float32)
    assert policy.use_threads(x.size)  # the threaded kernels serve it by default
    threaded = fastnorm.batch_norm(x, training=True)
    with fastnorm.serial_kernels():
        with fastnorm.serial_kernels():
            pass
        assert not policy.use_threads(x.size)
        serial = fastnorm.batch_norm(x, training=True)
    assert policy.use_threads(x.size)
    np.testing.assert_array_equal(serial, threaded)
