"""The vectorized, column-split merge of block partials gives the bits of the obvious one: each
column's blocks merged in order with the scalar ``merge_compensated``."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from fastnorm._kernels import moments
from fastnorm._kernels.merge import merge_compensated_arrays


def _partials(rng, P, n_rb, B, special):
    parts = np.empty((4, P, n_rb, B))
    parts[0] = rng.integers(1, 40, (P, n_rb, B)).astype(float)
    parts[1] = 1e6 + rng.standard_normal((P, n_rb, B))
    parts[2] = rng.standard_normal((P, n_rb, B)) * 1e-11
    parts[3] = rng.uniform(0.0, 50.0, (P, n_rb, B))
    if special:  # what the general merge handles: empty blocks, infinite and NaN means
        for value in (np.inf, -np.inf, np.nan):
            parts[1].flat[rng.integers(0, parts[1].size, 3)] = value
        empty = rng.integers(0, parts[0].size, 6)
        parts[0].flat[empty] = 0.0
        parts[1].flat[empty] = np.nan
        parts[:, 0, 0, B - 1] = (0.0, np.nan, 0.0, 0.0)  # a first block without data
    return parts


def _merged_one_by_one(parts):
    _, P, n_rb, B = parts.shape
    out = np.empty((3, P, B))
    for p in range(P):
        n, mean, mean_lo, m2 = (parts[k, p, 0].copy() for k in range(4))
        m2_lo = np.zeros(B)
        for i in range(1, n_rb):
            b = [parts[k, p, i].copy() for k in range(4)]
            n, mean, mean_lo, m2, m2_lo = merge_compensated_arrays(
                n, mean, mean_lo, m2, m2_lo, *b, np.zeros(B)
            )
        out[:, p] = n, mean, m2
    return out


@pytest.mark.parametrize("special", [False, True], ids=["finite", "empty-inf-nan"])
@pytest.mark.parametrize("shape", [(1, 1, 5), (1, 7, 300), (3, 5, 129), (2, 2, 1)])
def test_block_merge_equals_the_scalar_merge_bitwise(shape, special):
    rng = np.random.default_rng(sum(shape))
    parts = _partials(rng, *shape, special)
    want = _merged_one_by_one(parts)
    got = np.array(moments.merge_blocks(parts.copy()))  # in tasks of MERGE_COLUMNS columns
    assert_array_equal(got.view(np.int64), want.view(np.int64))
