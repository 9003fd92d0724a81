"""The vectorized, column-split merge of block partials gives the bits of the obvious one: each
column's blocks merged in order with the scalar ``merge_compensated``."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from reference_preprocessing import weighted_moments

from fastnorm import functional as F
from fastnorm._kernels import moments, schedule
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
    got = np.array(moments.merge_blocks(parts.copy(), True))  # in tasks of MERGE_COLUMNS columns
    assert_array_equal(got.view(np.int64), want.view(np.int64))


@pytest.mark.parametrize("special", [False, True], ids=["finite", "empty-inf-nan"])
def test_merge_step_equals_the_scalar_merge_bitwise(special):
    """``merge_block_step``, the in-task merge of each new block into its group's running state,
    takes the vectorized path only when every column allows it: the scalar merge's bits."""
    rng = np.random.default_rng(7)
    parts = _partials(rng, 1, 9, 130, special)
    want = _merged_one_by_one(parts)
    state = [parts[k, 0, 0].copy() for k in range(4)] + [np.zeros(130)]
    slow = np.zeros(130, dtype=bool)
    for i in range(1, 9):
        moments.merge_block_step(*state, *(parts[k, 0, i].copy() for k in range(4)), slow)
    got = np.array([state[0], state[1], state[3]])[:, None, :]
    assert_array_equal(got.view(np.int64), want.view(np.int64))


def test_row_groups_with_empty_blocks_match_the_reference():
    """Many row blocks in 16 groups (``schedule.row_groups``), where whole blocks and whole groups
    of a column hold no data (NaN, or zero weights): the merged statistics are the float64
    reference's."""
    rng = np.random.default_rng(3)
    x = 1e3 + rng.standard_normal((20000, 64))
    row_block, col_block = schedule.column_blocks(*x.shape)
    assert (x.shape[0] + row_block - 1) // row_block > 2 * schedule.ROW_GROUPS
    x[:3000, 3] = np.nan  # the first groups of column 3 are empty
    x[:-1, 5] = np.nan  # column 5: one value, in the last block
    x[7000:9000:3, 9] = np.nan
    w = rng.uniform(0.5, 2.0, x.shape[0])
    w[4000:11000] = 0.0  # whole groups without weight
    for weights in (None, w):
        got = F.column_moments(x, weights)
        want = weighted_moments(x, weights)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-13)
        np.testing.assert_allclose(got[2], want[2] * want[0], rtol=1e-11, atol=1e-12)


def _normalize(x3, merges, relu, w=None, renorm=None, running=True, twin="serial"):
    """``columns_normalize`` (its ``twin``) on (1, A, B) ``x3`` with its shape's schedule:
    (out, stats...)."""
    from fastnorm._kernels import columns_fused

    B = x3.shape[2]
    rng = np.random.default_rng(1)
    weight, bias = rng.standard_normal(B), rng.standard_normal(B)
    rm, rv = (np.zeros(B), np.ones(B)) if running else (np.empty(0), np.empty(0))
    rd = None if renorm is None else np.empty((2, B))
    out = np.empty_like(x3)
    stats = getattr(columns_fused.columns_normalize, twin)(
        x3, w, weight, bias, 1e-5, rm, rv, 0.1, *schedule.column_blocks(*x3.shape[1:]),
        out, renorm, rd, relu, merges,
    )  # fmt: skip
    return (out, *stats, rm, rv) + (() if rd is None else (rd,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3), (7, 5), (64, 64), (512, 64), (8, 4096)])
@pytest.mark.parametrize("variant", ["plain", "relu", "weights", "renorm", "no running stats"])
def test_one_block_without_the_merge_code_gives_the_same_bits(dtype, shape, variant):
    """Inputs of one row block compile batch norm's fused kernel without the block-merge code
    (``merges`` None): the merges it leaves out would change nothing, bit for bit."""
    assert schedule.column_blocks(*shape)[0] >= shape[0]  # one block of rows
    rng = np.random.default_rng(0)
    x3 = (rng.standard_normal((1, *shape)) * 3 + 1e4).astype(dtype)
    x3[0, 0, -1] = np.nan
    kwargs = {
        "relu": True if variant == "relu" else None,
        "w": rng.uniform(0, 2, shape[0]) if variant == "weights" else None,
        "renorm": np.array([3.0, 5.0]) if variant == "renorm" else None,
        "running": variant != "no running stats",
    }
    general = _normalize(x3, True, **kwargs)
    one_block = _normalize(x3, None, **kwargs)
    assert len(general) == len(one_block)
    for a, b in zip(general, one_block):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_one_block_in_the_threaded_twin_gives_the_same_bits():
    """One block of rows can be large enough for threads (8 rows of 20,000 columns, ten column
    blocks): the threaded twin without the merge code gives the bits of the general one."""
    shape = (8, 20000)
    assert schedule.column_blocks(*shape)[0] >= shape[0]
    x3 = (np.random.default_rng(0).standard_normal((1, *shape)) * 3 + 1e4).astype(np.float32)
    general = _normalize(x3, True, None, twin="parallel")
    one_block = _normalize(x3, None, None, twin="parallel")
    for a, b in zip(general, one_block, strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    serial = _normalize(x3, None, None)
    for a, b in zip(one_block, serial, strict=True):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("channels", [6, 64, 1000])
def test_the_merge_code_is_left_out_only_for_one_block(monkeypatch, channels):
    """The layout passes ``merges`` None for at most one block of rows, and True beyond: one row
    past the block gives statistics that need the merge (checked against the reference)."""
    from fastnorm._kernels import columns_fused

    seen = []
    kernel = columns_fused.columns_normalize

    def recorded(*args):
        seen.append(args[-1])
        return kernel(*args)

    monkeypatch.setattr(columns_fused, "columns_normalize", recorded)
    rows = schedule.column_blocks(10**6, channels)[0]
    rng = np.random.default_rng(0)
    for n, expected in ((rows, None), (rows + 1, True)):
        x = rng.standard_normal((n, channels)) + 1e3
        x[-1] += 50.0  # the last row, alone in its block when there are two
        rm, rv = np.zeros(channels), np.ones(channels)
        F.batch_norm(x, rm, rv, training=True, momentum=1.0)
        assert seen[-1] is expected
        _, mean, var = weighted_moments(x)
        np.testing.assert_allclose(rm, mean, rtol=1e-13)
        np.testing.assert_allclose(rv, var * n / (n - 1), rtol=1e-10)
