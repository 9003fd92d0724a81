"""The table of shapes every test parametrizes from (defined once here).

Each case is a small namedtuple; ``id`` gives readable pytest ids. The grid covers C = 1,
spatial size 1, N = 1, zero-size batches, odd sizes, a large channel count, both layouts
(axis=1 and axis=-1, plus a middle axis for batch norm) and 1-D to 5-D inputs.
"""

from collections import namedtuple

import numpy as np

DTYPES = (np.float32, np.float64)

# ---------------------------------------------------------------- batch norm
# shape, channel axis; `train` False means the case only makes sense in eval (one value per
# channel, which training must reject).
BN = namedtuple("BN", "shape axis train")
BATCH_NORM = [
    BN((8, 3), 1, True),  # MLP features, 2-D
    BN((7, 1), 1, True),  # C = 1, odd N
    BN((1, 6), 1, False),  # N = 1: eval only
    BN((1, 4, 1), 1, False),  # N = 1 and spatial size 1: eval only
    BN((5, 4, 1), 1, True),  # spatial size 1
    BN((1, 3, 5), 1, True),  # N = 1 with spatial > 1 trains fine
    BN((3, 5, 7), 1, True),  # odd sizes, 3-D
    BN((3, 7, 5), -1, True),  # channels last, 3-D
    BN((2, 3, 4, 5), 1, True),  # 4-D NCHW
    BN((2, 4, 5, 3), -1, True),  # 4-D NHWC
    BN((4, 5, 3, 2), 2, True),  # a middle axis
    BN((2, 3, 2, 3, 4), 1, True),  # 5-D
    BN((2, 2, 3, 2, 5), -1, True),  # 5-D channels last
    BN((13, 1031), 1, True),  # large channel count, odd N
    BN((2, 3, 1031), -1, True),  # large channel count, channels last
    BN((0, 3, 4), 1, True),  # zero-size batch
    BN((0, 5), 1, True),  # zero-size batch, 2-D
    BN((0, 2, 3), -1, True),  # zero-size batch, channels last
]

# (case, training) pairs: every case in eval, and in training where training is defined.
BATCH_NORM_MODES = [(c, t) for c in BATCH_NORM for t in (True, False) if c.train or not t]


def mode_id(value):
    """pytest id for an element of a BATCH_NORM_MODES pair."""
    if isinstance(value, bool):
        return "train" if value else "eval"
    return case_id(value)


# ---------------------------------------------------------------- layer / RMS norm
# shape, normalized_shape (trailing dims)
LN = namedtuple("LN", "shape normalized_shape")
LAYER_NORM = [
    LN((7,), (7,)),  # 1-D input
    LN((5, 13), (13,)),  # odd sizes
    LN((4, 1), (1,)),  # a single normalized element
    LN((1, 9), (9,)),  # one row
    LN((3, 4, 5), (4, 5)),  # 3-D, two normalized dims
    LN((2, 3, 4, 5), (3, 4, 5)),  # 4-D
    LN((2, 3, 2, 3, 4), (4,)),  # 5-D, last dim only
    LN((3, 1031), (1031,)),  # long rows
    LN((1030, 3), (3,)),  # many short rows
    LN((0, 6), (6,)),  # zero-size batch
]
RMS_NORM = LAYER_NORM

# ---------------------------------------------------------------- group norm
GN = namedtuple("GN", "shape groups axis")
GROUP_NORM = [
    GN((2, 6, 5), 3, 1),
    GN((3, 4), 2, 1),  # 2-D: no spatial dims
    GN((2, 1, 7), 1, 1),  # C = 1
    GN((3, 6, 1), 6, 1),  # groups == C, spatial size 1: one element per group
    GN((2, 6, 1), 2, 1),  # spatial size 1
    GN((1, 4, 3, 5), 1, 1),  # one group (layer-norm-like), N = 1
    GN((2, 3, 5, 4), 2, -1),  # channels last
    GN((1, 8, 2, 3, 2), 4, 1),  # 5-D
    GN((2, 3, 2, 2, 6), 3, -1),  # 5-D channels last
    GN((2, 1032, 3), 8, 1),  # large channel count
    GN((0, 4, 3), 2, 1),  # zero-size batch
    GN((0, 4, 4, 6), 2, -1),  # zero-size batch, channels last
    GN((1, 8), 2, 1),  # N = 1, 2-D: per-sample statistics, not the batch's
    GN((1, 6, 1), 3, 1),  # N = 1, spatial size 1
    GN((2, 6, 100), 3, 1),  # long runs
    GN((33, 96), 8, 1),  # (N, C) features: one value per channel, many rows
    GN((1, 4, 7, 10), 2, 1),  # long runs, N = 1
]

# ---------------------------------------------------------------- instance norm
IN = namedtuple("IN", "shape axis")
INSTANCE_NORM = [
    IN((2, 3, 5), 1),
    IN((1, 3, 7), 1),  # N = 1
    IN((3, 1, 6), 1),  # C = 1
    IN((2, 4, 3, 5), 1),  # 4-D
    IN((2, 3, 5, 4), -1),  # channels last
    IN((2, 2, 2, 3, 2), 1),  # 5-D
    IN((2, 1030, 3), 1),  # large channel count
    IN((0, 3, 4), 1),  # zero-size batch
    IN((0, 4, 4, 6), -1),  # zero-size batch, channels last
    IN((2, 3, 80), 1),  # long runs: fused kernels
    IN((1, 2, 9, 9), 1),  # long runs, N = 1
]


def case_id(case):
    """Readable pytest id: 'shape=2x3x4-axis=1'."""
    parts = []
    for name, value in case._asdict().items():
        if isinstance(value, tuple):
            value = "x".join(map(str, value)) or "()"
        parts.append(f"{name}={value}")
    return "-".join(parts)


def dtype_id(dtype):
    return np.dtype(dtype).name


def channel_count(shape, axis):
    return shape[axis % len(shape)]


# ---------------------------------------------------------------- inputs and tolerances
LAYOUTS = ("C", "F", "strided")


def make_input(rng, shape, dtype=np.float64, layout="C", offset=0.5, scale=2.0):
    """Random data of ``shape``/``dtype`` in a given memory layout.

    "C": C-contiguous; "F": Fortran-ordered; "strided": a non-contiguous view taking every
    other element along the last axis (and the first axis too when it has more than one element).
    """
    data = (offset + scale * rng.standard_normal(shape)).astype(dtype)
    if layout == "C":
        return np.ascontiguousarray(data)
    if layout == "F":
        return np.asfortranarray(data)
    if layout == "strided":
        big_shape = list(shape)
        big_shape[-1] *= 2
        if len(shape) > 1:
            big_shape[0] *= 2
        big = np.full(big_shape, np.nan, dtype=dtype)
        idx = [slice(None)] * len(shape)
        idx[-1] = slice(None, None, 2)
        if len(shape) > 1:
            idx[0] = slice(1, None, 2)
        view = big[tuple(idx)]
        view[...] = data
        assert view.size == 0 or not view.flags.c_contiguous
        return view
    raise ValueError(layout)


def make_affine(rng, n_or_shape, dtype=np.float64):
    """A (weight, bias) pair of the given shape: weight in [0.5, 1.5], bias normal."""
    weight = rng.uniform(0.5, 1.5, n_or_shape).astype(dtype)
    bias = rng.standard_normal(n_or_shape).astype(dtype)
    return weight, bias


def make_running(rng, n, dtype=np.float64):
    """Plausible running statistics (mean normal, variance in [0.5, 2])."""
    return (rng.standard_normal(n).astype(dtype), rng.uniform(0.5, 2.0, n).astype(dtype))


def tolerance(dtype):
    """(rtol, atol) for values of unit scale. float64 ~1e-10; float32 ~1e-5."""
    return (1e-10, 1e-10) if np.dtype(dtype) == np.float64 else (1e-5, 1e-5)


def assert_close(actual, expected, dtype, scale=None, err_msg=""):
    """Compare with ``tolerance(dtype)``, the absolute part scaled by the size of ``expected``
    (so sums such as weight gradients over many elements get a proportional tolerance)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape, err_msg)
    rtol, atol = tolerance(dtype)
    if scale is None:
        finite = expected[np.isfinite(expected)]
        scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
    np.testing.assert_allclose(
        actual.astype(np.float64), expected, rtol=rtol, atol=atol * scale, err_msg=err_msg
    )
