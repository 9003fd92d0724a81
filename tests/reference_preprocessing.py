"""Slow, obvious float64 NumPy reference for the scikit-learn transformers.

Nothing here imports fastnorm. Statistics are two-pass (mean, then mean of centred squares) with
NaN values dropped and optional sample weights.
"""

import numpy as np


def weighted_moments(X, sample_weight=None):
    """Per column: (sum of weights of non-NaN values, weighted mean, weighted biased variance).

    A column without any (positively weighted) value gets mean and variance NaN."""
    X = np.asarray(X, dtype=np.float64)
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, np.float64)
    sum_w = np.empty(X.shape[1])
    mean = np.full(X.shape[1], np.nan)
    var = np.full(X.shape[1], np.nan)
    for j in range(X.shape[1]):
        keep = ~np.isnan(X[:, j])
        col, wj = X[keep, j], w[keep]
        sum_w[j] = wj.sum()
        if sum_w[j] > 0:
            mean[j] = (wj * col).sum() / sum_w[j]
            var[j] = (wj * (col - mean[j]) ** 2).sum() / sum_w[j]
    return sum_w, mean, var


def batch_normalize(X, mean, var, eps=0.0, scale=1.0, shift=0.0):
    """(X - mean) / sqrt(var + eps) * scale + shift, in float64 (NaN stays NaN); eps defaults to
    BatchNormalizer's 0."""
    X = np.asarray(X, dtype=np.float64)
    return (X - mean) / np.sqrt(var + eps) * scale + shift


def row_group_normalize(X, n_groups, eps=1e-5):
    """Each row cut into n_groups contiguous groups, each normalized on its own (biased var)."""
    X = np.asarray(X, dtype=np.float64)
    n, f = X.shape
    g = X.reshape(n, n_groups, f // n_groups)
    mean = g.mean(axis=2, keepdims=True)
    var = ((g - mean) ** 2).mean(axis=2, keepdims=True)
    return ((g - mean) / np.sqrt(var + eps)).reshape(n, f)
