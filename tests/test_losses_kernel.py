"""The fused softmax cross-entropy against a float64 NumPy reference and finite differences."""

import numpy as np
import pytest

from fastnorm.functional import softmax_cross_entropy


def _reference(logits, labels, w=None):
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    w = np.ones(len(z)) if w is None else np.asarray(w, np.float64)
    rows = np.arange(len(z))
    loss = np.sum(-w * log_p[rows, labels]) / w.sum()
    grad = np.exp(log_p)
    grad[rows, labels] -= 1
    return loss, grad * (w / w.sum())[:, None]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(1, 2), (7, 3), (64, 10), (5, 1)])
def test_matches_the_reference(dtype, weighted, shape):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    labels = rng.integers(0, shape[1], shape[0])
    w = rng.uniform(0, 2, shape[0]) if weighted else None
    loss, grad = softmax_cross_entropy(logits, labels, w)
    ref_loss, ref_grad = _reference(logits, labels, w)
    assert grad.dtype == dtype and grad.shape == shape
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(
        grad,
        ref_grad,
        rtol=2e-6 if dtype == np.float32 else 1e-12,
        atol=1e-7 if dtype == np.float32 else 1e-15,
    )


def test_gradient_is_the_derivative_of_the_loss():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 5))
    labels = np.array([0, 4, 2, 2])
    w = np.array([1.0, 0.5, 2.0, 0.0])
    _, grad = softmax_cross_entropy(logits, labels, w)
    h = 1e-6
    for i, j in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[i, j] += h
        down[i, j] -= h
        numeric = (
            softmax_cross_entropy(up, labels, w)[0] - softmax_cross_entropy(down, labels, w)[0]
        ) / (2 * h)
        assert grad[i, j] == pytest.approx(numeric, abs=1e-8)


def test_large_logits_do_not_overflow_and_nan_propagates():
    logits = np.array([[1e4, 0.0, -1e4], [-1e30, 1e30, 0.0]], np.float32)
    loss, grad = softmax_cross_entropy(logits, np.array([1, 1]))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx(1e4 / 2)
    loss, grad = softmax_cross_entropy(np.array([[np.nan, 0.0]]), np.array([0]))
    assert np.isnan(loss)


def test_bad_labels_and_shapes_are_rejected_by_name():
    with pytest.raises(ValueError, match="labels must be class indices"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="labels must be class indices"):  # before the weights
        softmax_cross_entropy(np.zeros((2, 3)), np.array([-1, 0]), np.zeros(2))
    with pytest.raises(ValueError, match="labels must have shape"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0]))
    with pytest.raises(ValueError, match="logits must be 2-D"):
        softmax_cross_entropy(np.zeros(3), np.array([0]))
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), np.ones(3))
