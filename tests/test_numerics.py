"""Numerical edge cases of the functional API: constant slices of any magnitude, non-finite
inputs, empty channel sets, read-only running statistics, NumPy warnings and memory use."""

import numpy as np
import pytest
import reference as ref
from cases import DTYPES, assert_close, dtype_id

import fastnorm

DTYPE = pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
MAGNITUDES = (1e-30, 1.0, 1e12, 1.2345678e14, 3e38)
MAGNITUDE = pytest.mark.parametrize("value", MAGNITUDES + tuple(-v for v in MAGNITUDES))

# --------------------------------------------------------------------------- constant slices

# name: (shape, channel axis or None, op, groups); the channel count is x.shape[axis]. Each entry
# runs a different statistics kernel (in brackets). Statistics are over 249 values (or another
# count n) where (n * v) * (1 / n) != v for every float32 magnitude tested: a mean formed with a
# reciprocal instead of a division is caught.
CONSTANT_PATHS = {
    # [columns_fused] 2-D features, channels last
    "batch_norm 2-D": ((249, 3), 1, "bn", None),
    "batch_norm last": ((3, 83, 2), -1, "bn", None),
    # [column_moments + merge] short channel runs; [row_moments + merge] long ones
    "batch_norm short runs": ((249, 2, 3), 1, "bn", None),
    "batch_norm long runs": ((2, 2, 249), 1, "bn", None),
    # [row_moments, two chunks of 26144 merged] runs longer than one chunk
    "batch_norm chunked runs": ((1, 2, 52288), 1, "bn", None),
    # [groups_fused] long runs; [row_moments] short runs; [column_moments] channels last
    "group_norm fused": ((1, 3, 83), 1, "gn", 1),
    "group_norm short runs": ((1, 83, 3), 1, "gn", 1),
    "group_norm chunked": ((1, 1634, 32), 1, "gn", 1),
    "group_norm last": ((1, 249, 2), -1, "gn", 1),
    "instance_norm fused": ((2, 3, 249), 1, "in", None),
    "instance_norm short runs": ((2, 3, 49), 1, "in", None),
    "instance_norm last": ((2, 249, 3), -1, "in", None),
    # [rows_fused], serial and parallel twins
    "layer_norm": ((2, 249), None, "ln", None),
    "layer_norm parallel": ((270, 996), None, "ln", None),
}


def _run_constant(kind, x, axis, groups, w, b):
    if kind == "bn":
        return fastnorm.batch_norm(x, None, None, w, b, training=True, axis=axis)
    if kind == "gn":
        return fastnorm.group_norm(x, groups, w, b, axis=axis)
    if kind == "in":
        return fastnorm.instance_norm(x, weight=w, bias=b, axis=axis)
    return fastnorm.layer_norm(x, x.shape[1:], w, b)


@DTYPE
@MAGNITUDE
@pytest.mark.parametrize("path", list(CONSTANT_PATHS))
def test_constant_slice_gives_exactly_the_bias(path, value, dtype):
    """A constant slice has mean equal to its value, so x - mean is exactly 0 and the output is
    exactly the bias, at any magnitude (the reference and PyTorch agree)."""
    shape, axis, kind, groups = CONSTANT_PATHS[path]
    x = np.full(shape, value, dtype)
    if axis is None:
        w = np.linspace(0.5, 2.0, shape[-1])
        b = np.linspace(-1.0, 1.0, shape[-1])
        expected = np.broadcast_to(b, shape).astype(dtype)
    else:
        c = shape[axis]
        w = np.linspace(0.5, 2.0, c)
        b = np.linspace(-1.0, 1.0, c)
        bshape = [1] * len(shape)
        bshape[axis] = c
        expected = np.broadcast_to(b.reshape(bshape), shape).astype(dtype)
    y = _run_constant(kind, x, axis, groups, w, b)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(_run_constant(kind, x, axis, groups, None, None), 0.0)


@DTYPE
@MAGNITUDE
def test_constant_row_rms_norm(value, dtype):
    x = np.full((3, 300), value, dtype)
    y = fastnorm.rms_norm(x, 300)
    assert np.isfinite(y).all()
    assert_close(y, ref.rms_norm(x, 300), dtype)


def test_constant_row_matches_torch(tref):
    for dtype in DTYPES:
        for value in (1e12, 1.2345678e14, 3e38):
            x = np.full((2, 300), value, dtype)
            np.testing.assert_array_equal(
                fastnorm.layer_norm(x, 300), tref.layer_norm(x, (300,))["y"]
            )
            x = np.full((1, 3, 100), value, dtype)
            np.testing.assert_array_equal(fastnorm.group_norm(x, 1), tref.group_norm(x, 1)["y"])
