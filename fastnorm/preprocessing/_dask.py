"""The transformers on Dask arrays and DataFrames. Dask is optional: it is imported inside the
functions, which run only when a Dask collection was passed.

Statistics: each chunk's exact moments come from fastnorm's kernels in the worker that holds
the chunk (``_stats.exact_batch_moments``), and the chunks' states are combined by the one
compensated merge of ``partial_fit`` and ``merge`` (``_stats.exact_merge``) in the tree of
``dask.array.reduction``. Only states travel between workers and back to the client: six float64
per feature of a chunk of columns, whatever the number of rows. Chunks of columns reduce on their
own and their states are concatenated along the features.

Transforms are ``map_blocks`` of the in-memory code: lazy, with the input's chunks.
"""

import copy
import numbers

import numpy as np
from sklearn.utils.validation import validate_data

from .. import _validation as rules
from .. import functional as F
from ._stats import (
    check_sample_weight,
    columns_affine,
    exact_batch_moments,
    exact_merge,
    per_feature,
)

# the state of a chunk of rows, per feature: the exact moments (``EXACT_ARRAYS``) and the rows of
# positive weight (the same for every feature)
STATE_FIELDS = ("sum_weights", "mean", "mean_lo", "m2", "m2_lo", "rows")
STATE = np.dtype([(name, np.float64) for name in STATE_FIELDS])
STATE_BYTES_PER_FEATURE = STATE.itemsize
FLOAT_DTYPES = (np.float64, np.float32, np.float16)
WEIGHTS_ACCEPTED = "sample_weight must be an array of finite non-negative reals, one per sample"
UNKNOWN_CHUNKS = (
    "X has unknown chunk sizes, which sample_weight cannot be aligned with: call "
    "X.compute_chunk_sizes() first (or pass a dask DataFrame)"
)


def as_dask_array(est, X, reset, accepted, check_names=True, lengths=False):
    """X, a Dask array or DataFrame, as a 2-D Dask array of reals (float16/32/64 kept, other reals
    as float64). Feature names and count are set (``reset``) or checked as ``validate_data``
    does, without computing anything (``lengths``: compute a DataFrame's partition lengths)."""
    import dask.array as da

    names = X  # what validate_data reads the feature names and count from
    if hasattr(X, "to_dask_array"):  # a dask DataFrame (or Series, refused below)
        if getattr(X, "ndim", 1) == 2:
            import pandas as pd  # a dependency of dask.dataframe

            names = pd.DataFrame(columns=X.columns)  # scikit-learn reads pandas' names
        X = X.to_dask_array(lengths=True if lengths else None)
    if not isinstance(X, da.Array):
        raise TypeError(f"{accepted}; got {type(names).__name__}, not a dask array or DataFrame")
    if X.ndim != 2:
        raise ValueError(f"{accepted}; got a dask array of shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{accepted}; got a dask array of dtype {X.dtype}")
    if X.shape[1] < 1 or X.shape[0] == 0:
        raise ValueError(f"{accepted}; got a dask array of shape {X.shape}")
    if check_names or reset:
        with rules.input_errors(accepted):
            validate_data(est, names, reset=reset, skip_check_array=True)
    if not reset and X.shape[1] != est.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(est).__name__} is expecting "
            f"{est.n_features_in_} features as input."
        )
    return X if X.dtype in FLOAT_DTYPES else X.astype(np.float64)


# -- statistics --------------------------------------------------------------------------------


def _chunk_state(x, weights=None, axis=None, keepdims=None):
    """The (1, n_columns) state of one chunk. Kernels run serially: Dask's workers and threads
    are the parallelism. ``weights`` is the chunk's weights broadcast to its shape."""
    out = np.zeros((1, x.shape[1]), STATE)
    out["mean"] = np.nan  # no weight yet, as column_moments says it
    if x.size == 0:  # a chunk without rows (or Dask's probe of the output type)
        return out
    w = None
    if weights is not None:
        w = check_sample_weight(weights[:, 0], x.shape[0], allow_all_zero=True)
    x = np.ascontiguousarray(x, dtype=None if x.dtype in FLOAT_DTYPES else np.float64)
    with F.serial_kernels():
        sum_w, mean, mean_lo, m2, _ = exact_batch_moments(x, w)
    out["sum_weights"][0], out["mean"][0], out["mean_lo"][0], out["m2"][0] = (
        sum_w,
        mean,
        mean_lo,
        m2,
    )
    out["rows"] = x.shape[0] if w is None else np.count_nonzero(w)
    return out


def _exact(state, i):
    return tuple(np.ascontiguousarray(state[name][i]) for name in STATE_FIELDS[:5])


def _merge_states(states, axis=None, keepdims=None):
    """The (1, n_columns) state of k states stacked as (k, n_columns), merged in order."""
    out = np.zeros((1, states.shape[1]), STATE)
    if states.shape[0] == 0:
        return out
    merged = _exact(states, 0)
    for i in range(1, states.shape[0]):
        merged = exact_merge(merged, _exact(states, i))
    for name, values in zip(STATE_FIELDS, merged):
        out[name][0] = values
    out["rows"][0] = states["rows"].sum(axis=0)  # integers: exact in float64 below 2**53
    return out


def moments_graph(X, weights=None, split_every=None):
    """The lazy (1, n_features) ``STATE`` array of X (a 2-D Dask array of reals) with weights
    ``weights`` (None, a number, or a Dask array of shape (n_samples, 1))."""
    import dask.array as da

    return da.reduction(
        X,
        _chunk_state,
        _merge_states,
        combine=_merge_states,
        axis=0,
        keepdims=True,
        dtype=STATE,
        split_every=split_every,
        concatenate=True,
        meta=np.empty((0, 0), STATE),
        weights=weights,
        name="fastnorm-moments",
    )


def dask_weights(sample_weight, X):
    """``sample_weight`` ready for ``moments_graph``: None, a float, or a float64 Dask array of
    shape (n_samples, 1) chunked as X's rows. Values are checked in the workers."""
    import dask.array as da

    if sample_weight is None or isinstance(sample_weight, numbers.Number):
        return None if sample_weight is None else float(sample_weight)
    if hasattr(sample_weight, "to_dask_array"):  # a dask Series
        sample_weight = sample_weight.to_dask_array(lengths=True)
    elif not isinstance(sample_weight, da.Array):
        with rules.input_errors(WEIGHTS_ACCEPTED, names=("sample_weight",)):
            sample_weight = np.asarray(sample_weight)
    w = sample_weight
    if w.dtype.kind not in "biuf":
        raise ValueError(f"{WEIGHTS_ACCEPTED}; got dtype {w.dtype}")
    if w.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D, got shape {w.shape}")
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(UNKNOWN_CHUNKS)
    if np.isnan(w.shape[0]) or w.shape[0] != X.shape[0]:
        raise ValueError(
            f"sample_weight.shape == {w.shape}, expected ({X.shape[0]},): one weight per sample"
        )
    w = w.rechunk((X.chunks[0],)) if isinstance(w, da.Array) else da.from_array(w, (X.chunks[0],))
    return w.astype(np.float64)[:, None]


def dask_moments(X, sample_weight):
    """Computed: the exact moments ``(sum_w, mean, mean_lo, m2, m2_lo)`` of a 2-D Dask array of
    reals and its rows of positive weight."""
    state = moments_graph(X, dask_weights(sample_weight, X)).compute()[0]
    batch = tuple(np.ascontiguousarray(state[name]) for name in STATE_FIELDS[:5])
    return batch, int(state["rows"][0])


def update(est, X, sample_weight, reset, stream, accepted):
    """``BatchNormalizer.fit`` / ``partial_fit`` of a Dask array or DataFrame (inside its
    all-or-nothing guard)."""
    momentum = est._checked_momentum(reset)
    X = as_dask_array(est, X, reset, accepted, lengths=sample_weight is not None)
    per_feature(est.scale, "scale", X.shape[1])
    per_feature(est.shift, "shift", X.shape[1])
    batch, rows = dask_moments(X, sample_weight)
    if rows == 0 and sample_weight is None:
        raise ValueError(f"{accepted}; got 0 samples")
    if rows == 0 and not stream:
        raise ValueError("Sample weights must contain at least one non-zero number.")
    est._add_batch(batch, rows, sample_weight is not None, reset, momentum)


# -- transforms --------------------------------------------------------------------------------


def _affine_block(x, centre, factor, shift):
    with F.serial_kernels():
        return columns_affine(
            x, True, *(np.ascontiguousarray(v[0]) for v in (centre, factor, shift))
        )


def lazy_affine(X, centre, factor, shift):
    """``(X - centre) * factor + shift`` per column of a Dask array: lazy, same chunks and dtype."""
    import dask.array as da

    per_column = ((1,), X.chunks[1])
    params = (da.from_array(np.reshape(v, (1, -1)), per_column) for v in (centre, factor, shift))
    meta = np.empty((0, 0), X.dtype)
    return da.map_blocks(_affine_block, X, *params, dtype=X.dtype, meta=meta)


def _rows_block(x, normalizer, params, accepted):
    x = np.ascontiguousarray(x, dtype=x.dtype if x.dtype == np.float32 else np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{accepted}; got NaN or infinity")
    with F.serial_kernels():
        return normalizer._normalize(x, params)


def lazy_rows(normalizer, X, params, accepted):
    """A row normalizer's transform of a Dask array, block by block. Each block needs whole
    rows: chunks of columns are joined first."""
    X = X.rechunk({1: -1})
    dtype = X.dtype if X.dtype == np.float32 else np.dtype(np.float64)
    snapshot = copy.copy(normalizer)  # the graph keeps the parameters of this call
    meta = np.empty((0, 0), dtype)
    return X.map_blocks(_rows_block, snapshot, params, accepted, dtype=dtype, meta=meta)
