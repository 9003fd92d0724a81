"""Moments as building blocks: per-column statistics of 2-D data, the one merge formula and the
one running-statistics update.

These are the doors through which the transformers (``partial_fit``, ``merge``) and the model
utilities (precise batch-norm statistics) reach the kernels.
"""

import numpy as np

from .._kernels import merge, moments, running, schedule


def column_moments(x, sample_weight=None):
    """Per-column ``(sum of weights, mean, M2)`` of a C-contiguous float32/float64 (A, B) array.

    NaN values are skipped; ``sample_weight`` is None or a float64 array of A non-negative weights.
    Accumulated in float64, bitwise independent of the thread count. The mean is NaN where a
    column has no weight. Raises ``ValueError`` when an infinite value (or an overflowing sum) is
    met.

    Parameters
    ----------
    x : ndarray of shape (A, B), float32 or float64, C-contiguous
    sample_weight : ndarray of shape (A,), float64, optional

    Returns
    -------
    sum_weights, mean, m2 : ndarray of shape (B,), float64
        The number of (weighted) values, their mean, and the sum of squared deviations.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import column_moments
    >>> column_moments(np.array([[1.0, 10.0], [3.0, np.nan]]))  # NaN: a missing value
    (array([2., 1.]), array([ 2., 10.]), array([2., 0.]))
    """
    row_block, col_block = schedule.column_blocks(*x.shape)
    weight_sum, mean, m2, nonfinite = moments.column_moments(
        x.reshape((1,) + x.shape), sample_weight, True, row_block, col_block
    )
    if nonfinite:
        raise ValueError(
            f"Input X contains infinity or a value too large for {x.dtype!r} "
            "(NaN marks a missing value; infinities are rejected)."
        )
    return weight_sum[0].copy(), mean[0].copy(), m2[0].copy()  # not views into the partials


def merge_moments(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Moments ``(n, mean, M2)`` of the union of two sets, element-wise over float64 arrays
    (Chan et al.'s pairwise formula, the one every merge in fastnorm uses).

    Parameters
    ----------
    n_a, mean_a, m2_a : array-like
        Count (or sum of weights), mean and sum of squared deviations of the first set.
    n_b, mean_b, m2_b : array-like of the same shape
        The same for the second set.

    Returns
    -------
    n, mean, m2 : ndarray, float64

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import merge_moments
    >>> a, b = np.array([1.0, 3.0]), np.array([5.0, 7.0, 9.0])
    >>> n, mean, m2 = merge_moments(2, a.mean(), a.var() * 2, 3, b.mean(), b.var() * 3)
    >>> n, mean, m2 / n, np.var([1.0, 3.0, 5.0, 7.0, 9.0])
    (array([5.]), array([5.]), array([8.]), np.float64(8.0))
    """
    args = [
        np.ascontiguousarray(a, dtype=np.float64) for a in (n_a, mean_a, m2_a, n_b, mean_b, m2_b)
    ]
    return merge.merge_moment_arrays(*args)


def merge_compensated_moments(a, b):
    """Moments of the union of two sets, each given as float64 arrays
    ``(n, mean, mean_lo, m2, m2_lo)`` where the mean is ``mean + mean_lo`` and M2 is
    ``m2 + m2_lo`` (double-double): Chan's formula with every rounding error carried in the low
    parts. A set fresh from ``column_moments`` has zero low parts. Returns new arrays, the same
    five.

    Parameters
    ----------
    a, b : sequence of five array-like
        ``(n, mean, mean_lo, m2, m2_lo)`` of each set, of equal lengths.

    Returns
    -------
    tuple of five ndarray, float64

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import merge_compensated_moments
    >>> zero = np.zeros(1)
    >>> a = (np.array([2.0]), np.array([2.0]), zero, np.array([2.0]), zero)  # {1, 3}
    >>> b = (np.array([1.0]), np.array([8.0]), zero, zero, zero)  # {8}
    >>> n, mean, mean_lo, m2, m2_lo = merge_compensated_moments(a, b)
    >>> n, mean + mean_lo, (m2 + m2_lo) / n, np.var([1.0, 3.0, 8.0])
    (array([3.]), array([4.]), array([8.66666667]), np.float64(8.666666666666666))
    """
    args = [np.ascontiguousarray(v, dtype=np.float64).reshape(-1) for v in (*a, *b)]
    if len(args) != 10 or len({v.shape for v in args}) != 1:
        raise ValueError(
            "a and b must each be five arrays (n, mean, mean_lo, m2, m2_lo) of equal length"
        )
    return merge.merge_compensated_arrays(*args)


def update_running_stats(running_mean, running_var, mean, var, momentum):
    """In place: ``running = (1 - momentum) * running + momentum * value`` for the running mean
    (with ``mean``) and the running variance (with ``var``), element-wise over 1-D arrays.

    ``running_mean`` and ``running_var`` are writeable, C-contiguous 1-D float32/float64 arrays;
    ``mean`` and ``var`` anything NumPy turns into float64 arrays of their length. Which variance
    is averaged (biased or unbiased) is the caller's choice, as is a cumulative average
    (``momentum = 1 / (batches + 1)``).

    Parameters
    ----------
    running_mean, running_var : ndarray of shape (C,)
        Updated in place.
    mean, var : array-like of shape (C,)
        The new batch's statistics.
    momentum : float
        Weight of the new values.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import update_running_stats
    >>> running_mean, running_var = np.zeros(2, np.float32), np.ones(2, np.float32)
    >>> update_running_stats(running_mean, running_var, [10.0, 20.0], [3.0, 5.0], 0.1)
    >>> running_mean, running_var
    (array([1., 2.], dtype=float32), array([1.2, 1.4], dtype=float32))
    """
    mean = np.ascontiguousarray(mean, dtype=np.float64).reshape(-1)
    var = np.ascontiguousarray(var, dtype=np.float64).reshape(-1)
    if not (running_mean.shape == running_var.shape == mean.shape == var.shape):
        raise ValueError("running statistics and batch statistics must have the same length")
    running.update_running_stats(running_mean, running_var, mean, var, float(momentum))
