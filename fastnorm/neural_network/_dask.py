"""``MLPClassifier`` / ``MLPRegressor`` on Dask arrays and DataFrames: the row blocks are computed
one at a time and streamed through ``partial_fit``, so the whole array is never in memory.
Dask is optional: it is imported inside the functions, which run only for Dask input.

``partial_fit`` of a Dask array is ``partial_fit`` of each of its blocks, in order. ``fit`` makes
up to ``max_iter`` passes over the blocks (in a new random order each pass with ``shuffle``);
``loss_curve_`` holds one loss per pass (the blocks' losses weighted by their rows), and the pass
loss decides scikit-learn's stopping rule (``tol``, ``n_iter_no_change``).
"""

import warnings

import numpy as np
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

UNALIGNED = (
    "{name} must be split into the same blocks as X, or X must have known chunk sizes "
    "(X.compute_chunk_sizes())"
)


def _x_blocks(X):
    """Lazy row blocks of X (all its columns each) and their bounds (None when unknown)."""
    import dask.array as da

    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D dask array, got shape {X.shape}")
        sizes = X.chunks[0]
        blocks = [X.blocks[i] for i in range(len(sizes))]
    elif hasattr(X, "partitions") and getattr(X, "ndim", 0) == 2:  # a dask DataFrame
        sizes = (np.nan,) * X.npartitions
        blocks = [X.partitions[i] for i in range(X.npartitions)]
    else:
        raise TypeError(f"X must be a dask array or DataFrame, got {type(X).__name__}")
    bounds = None if np.isnan(sum(sizes)) else np.concatenate([[0], np.cumsum(sizes)])
    return blocks, bounds


def _aligned_blocks(data, n_blocks, bounds, name):
    """Lazy blocks of ``y`` or ``sample_weight`` matching X's row blocks."""
    import dask.array as da

    if data is None:
        return [None] * n_blocks
    if hasattr(data, "partitions") and data.npartitions == n_blocks and bounds is None:
        return [data.partitions[i] for i in range(n_blocks)]  # the same partitions as X
    if hasattr(data, "to_dask_array"):
        data = data.to_dask_array(lengths=True)
    if isinstance(data, da.Array):
        if bounds is None or np.isnan(data.shape[0]):
            if data.numblocks[0] != n_blocks:
                raise ValueError(UNALIGNED.format(name=name))
            return [data.blocks[i] for i in range(n_blocks)]
        if data.shape[0] != bounds[-1]:
            raise ValueError(f"{name} has {data.shape[0]} rows, X has {bounds[-1]}")
        data = data.rechunk((tuple(np.diff(bounds)),) + data.chunks[1:])
        return [data.blocks[i] for i in range(n_blocks)]
    if bounds is None:
        raise ValueError(UNALIGNED.format(name=name))
    data = np.asarray(data)
    if data.ndim == 0 or data.shape[0] != bounds[-1]:
        raise ValueError(f"{name} has shape {data.shape}, X has {bounds[-1]} rows")
    return [data[bounds[i] : bounds[i + 1]] for i in range(n_blocks)]


def _classes(y_blocks):
    """Every label of y, from each block's unique labels (computed in the workers)."""
    import dask

    uniques = dask.compute(*[dask.delayed(np.unique)(b) for b in y_blocks])
    return np.unique(np.concatenate([np.ravel(u) for u in uniques]))


def _stream(est, blocks, order, kwargs):
    """``partial_fit`` on each block in ``order``, one block in memory at a time; returns the
    pass loss (the blocks' losses weighted by their rows)."""
    import dask

    total = rows = 0.0
    for i in order:
        xb, yb, wb = dask.compute(*blocks[i])
        if len(xb) == 0:
            continue
        est.partial_fit(xb, yb, sample_weight=wb, **kwargs)
        total += est.loss_curve_[-1] * len(xb)
        rows += len(xb)
    return total / max(rows, 1.0)


def _fit_passes(est, blocks, kwargs):
    """``fit``: passes over the blocks until scikit-learn's stopping rule or ``max_iter``."""
    if est.early_stopping:
        raise ValueError(
            "early_stopping is not supported for Dask input: hold out a validation set and "
            "call partial_fit, or compute X"
        )
    if is_classifier(est) and isinstance(est.class_weight, str):
        raise ValueError(
            "class_weight='balanced' is not supported for Dask input: pass the weights as a dict"
        )
    est._checked_params()
    if not (est.warm_start and hasattr(est, "net_")):
        est._restore(None)  # forget the fitted state: the first block initializes the model
    rng = check_random_state(est.random_state)
    losses = []
    stopped = False
    for _ in range(est.max_iter):
        best = getattr(est, "best_loss_", np.inf)
        count = getattr(est, "_no_improvement_count", 0)
        curve = len(getattr(est, "loss_curve_", []))
        order = rng.permutation(len(blocks)) if est.shuffle else range(len(blocks))
        loss = _stream(est, blocks, order, kwargs)
        # partial_fit recorded and counted each block; fit counts passes
        del est.loss_curve_[curve:]
        est.loss_curve_.append(loss)
        est.loss_ = loss
        losses.append(loss)
        est._no_improvement_count = count + 1 if loss > best - est.tol else 0
        est.best_loss_ = min(best, loss)
        if est._no_improvement_count > est.n_iter_no_change:
            stopped = True
            break
    est.n_iter_ = len(losses)
    if not stopped:
        warnings.warn(
            f"Stochastic optimizer: maximum iterations ({est.max_iter}) reached "
            f"and the optimization hasn't converged yet.",
            ConvergenceWarning,
            stacklevel=5,  # the user's fit()
        )


def fit_blocks(est, X, y, incremental, classes, sample_weight):
    """``fit`` (``incremental`` False) or ``partial_fit`` of a Dask X. A call that raises
    leaves the estimator as it was before it."""
    x_blocks, bounds = _x_blocks(X)
    n = len(x_blocks)
    y_blocks = _aligned_blocks(y, n, bounds, "y")
    w_blocks = _aligned_blocks(sample_weight, n, bounds, "sample_weight")
    blocks = list(zip(x_blocks, y_blocks, w_blocks))
    previous = est._snapshot()
    try:
        kwargs = {}
        if is_classifier(est):
            if classes is None and not incremental:
                classes = _classes(y_blocks)
            kwargs["classes"] = classes
        if incremental:
            _stream(est, blocks, range(n), kwargs)
        else:
            _fit_passes(est, blocks, kwargs)
    except BaseException:
        est._restore(previous)
        raise
    return est
