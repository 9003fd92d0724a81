"""Group norm on (N, C) features (one value per channel): the fused per-(sample, group) kernels
take each group's channels as one run. Against the float64 reference far from zero, where a
one-pass formula would cancel, and with NaN and infinite values in some groups."""

import numpy as np
import pytest
import reference as ref
from cases import assert_close

import fastnorm.functional as F
from fastnorm.functional._contexts import GroupRunsContext


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, groups", [((64, 96), 8), ((5, 12), 12), ((300, 40), 1)])
def test_matches_the_reference_at_a_large_offset(shape, groups, dtype, rng):
    x = (1e4 + rng.standard_normal(shape)).astype(dtype)
    w = rng.uniform(0.5, 1.5, shape[1]).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    y, ctx = F.group_norm_forward(x, groups, w, b)
    assert isinstance(ctx, GroupRunsContext)  # the fused kernels served it
    assert_close(y, ref.group_norm(x, groups, w, b), dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    for got, want in zip(ctx.backward(dy), ref.group_norm_backward(dy, x, groups, w, b)):
        assert_close(got, want, dtype)


def test_special_values_stay_in_their_group(rng):
    x = rng.standard_normal((6, 16)).astype(np.float32)
    x[1, 2] = np.nan  # group 0 of sample 1
    x[4, 13] = np.inf  # group 3 of sample 4
    with np.errstate(invalid="ignore"):
        y = F.group_norm(x, 4)
        want = ref.group_norm(x, 4)
    assert np.isnan(y[1, :4]).all() and np.isnan(y[4, 12:]).all()
    finite = np.isfinite(want)
    assert finite.sum() == x.size - 8
    assert_close(y[finite], want[finite], np.float32)
