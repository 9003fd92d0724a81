"""The compensated (double-double) Chan merge behind ``BatchNormalizer.partial_fit`` and
``merge``, against exact rational arithmetic."""

from fractions import Fraction

import numpy as np
import pytest
from sklearn.utils.extmath import _incremental_mean_and_var

import fastnorm.functional as F
from fastnorm import BatchNormalizer


def exact_moments(values):
    """Exact mean and biased variance of float64 values, as Fractions."""
    fr = [Fraction(float(v)) for v in values]
    mean = sum(fr) / len(fr)
    return mean, sum((f - mean) ** 2 for f in fr) / len(fr)


def single(values):
    """The compensated state of one set of values: (n, mean, 0, m2, 0) from the kernel."""
    n, mean, m2 = F.column_moments(np.asarray(values, dtype=np.float64).reshape(-1, 1))
    zero = np.zeros(1)
    return n, mean, zero, m2, zero


def stream(first, rows):
    """``first`` fitted at once, then ``rows`` merged one at a time."""
    state = single(first)
    for v in rows:
        state = F.merge_compensated_moments(state, single([v]))
    return state


@pytest.mark.parametrize(
    "first, then",
    [
        (np.full(5000, 1e8), np.full(5000, np.log(1e-5))),  # the issue's case
        (np.full(100, 1e15), np.arange(1.0, 101.0)),  # an offset of 1e15
        (
            np.random.default_rng(0).normal(1e6, 1e3, 200),
            np.random.default_rng(1).normal(0, 1, 300),
        ),
    ],
)
def test_streaming_one_row_at_a_time_is_correctly_rounded(first, then):
    """After thousands of single-row merges, mean + mean_lo and M2 / n are within one rounding of
    the exact values; scikit-learn's incremental update on the same stream is further off."""
    n, mean, mean_lo, m2, m2_lo = stream(first, then)
    exact_mean, exact_var = exact_moments(np.concatenate([first, then]))
    mean_error = abs(Fraction(mean[0]) + Fraction(mean_lo[0]) - exact_mean)
    var = (m2[0] + m2_lo[0]) / n[0]
    assert mean_error <= Fraction(np.spacing(float(exact_mean)))
    assert abs(Fraction(var) - exact_var) <= Fraction(np.spacing(float(exact_var)))

    sk_mean, sk_var, sk_n = np.array([first.mean()]), np.array([first.var()]), [len(first)]
    sk_n = np.array(sk_n)
    for v in then:
        sk_mean, sk_var, sk_n = _incremental_mean_and_var(np.array([[v]]), sk_mean, sk_var, sk_n)
    assert abs(Fraction(mean[0]) - exact_mean) <= abs(Fraction(sk_mean[0]) - exact_mean)
    assert abs(Fraction(var) - exact_var) <= abs(Fraction(sk_var[0]) - exact_var)


def test_batch_normalizer_streams_the_issue_case_better_than_standard_scaler():
    """The issue's figures: 5,000 rows of 1e8 fitted, then 5,000 rows of log(1e-5) streamed one
    partial_fit at a time: errors at the final rounding, below StandardScaler's."""
    from sklearn.preprocessing import StandardScaler

    first, then = np.full((5000, 1), 1e8), np.full((5000, 1), np.log(1e-5))
    ours, theirs = BatchNormalizer().fit(first), StandardScaler().fit(first)
    for row in then:
        ours.partial_fit(row[None])
        theirs.partial_fit(row[None])
    exact_mean, exact_var = exact_moments(np.concatenate([first, then]).ravel())
    ours_err = [abs(Fraction(ours.mean_[0]) - exact_mean), abs(Fraction(ours.var_[0]) - exact_var)]
    sk_err = [
        abs(Fraction(theirs.mean_[0]) - exact_mean),
        abs(Fraction(theirs.var_[0]) - exact_var),
    ]
    assert ours_err[0] <= Fraction(np.spacing(float(exact_mean)))
    assert ours_err[1] <= Fraction(np.spacing(float(exact_var)))
    assert ours_err[0] < sk_err[0] and ours_err[1] < sk_err[1]


def test_equal_means_add_no_spread_and_empty_sets_change_nothing():
    state = single(np.full(7, 0.1))
    for _ in range(50):
        state = F.merge_compensated_moments(state, single([0.1]))
    n, mean, mean_lo, m2, m2_lo = state
    assert n[0] == 57 and mean[0] == 0.1 and mean_lo[0] == 0 and m2[0] == 0 and m2_lo[0] == 0
    empty = (np.zeros(1), np.full(1, np.nan), np.zeros(1), np.zeros(1), np.zeros(1))
    for merged in (
        F.merge_compensated_moments(state, empty),
        F.merge_compensated_moments(empty, state),
    ):
        assert [a.tobytes() for a in merged] == [a.tobytes() for a in state]


@pytest.mark.parametrize("inf", [np.inf, -np.inf])
def test_infinite_means_follow_the_plain_merge(inf):
    """An infinite mean takes the plain merge's rule (the mean of the sums, as torch; M2 NaN),
    with zero low parts: no NaN from the error-free transformations."""
    a = (np.ones(1), np.full(1, inf), np.zeros(1), np.zeros(1), np.zeros(1))
    b = (np.ones(1), np.full(1, 2.0), np.zeros(1), np.zeros(1), np.zeros(1))
    n, mean, mean_lo, m2, m2_lo = F.merge_compensated_moments(a, b)
    plain = F.merge_moments(
        np.ones(1), np.full(1, inf), np.zeros(1), np.ones(1), np.full(1, 2.0), np.zeros(1)
    )
    assert mean[0] == plain[1][0] == inf and mean_lo[0] == 0 and m2_lo[0] == 0
    assert np.isnan(m2[0]) and np.isnan(plain[2][0])
    n, mean, _, m2, _ = F.merge_compensated_moments(a, a)  # one infinity twice: no spread
    assert mean[0] == inf and m2[0] == 0


def test_merge_compensated_moments_rejects_malformed_states():
    one = single([1.0, 2.0])
    with pytest.raises(ValueError, match="five arrays"):
        F.merge_compensated_moments(one[:4], one)
    two = tuple(np.concatenate([v, v]) for v in one)
    with pytest.raises(ValueError, match="equal length"):
        F.merge_compensated_moments(one, two)
