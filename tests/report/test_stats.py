"""The report's statistics against independent references: hand enumerations of the sign-flip test,
closed-form Student-t quantiles, hand-computed intervals, p-values, slopes and Welch degrees of freedom."""

import itertools
import math
import statistics

import numpy as np
import pytest

from orthoreg.report.analysis import stats
from orthoreg.report.analysis.summary import mean_interval


def test_sign_flip_pvalue_matches_hand_enumeration():
    # |(+-1 +-2 +-3)| >= 6 only for all-plus and all-minus: p = 2 / 8
    assert stats.sign_flip_pvalue(np.array([1.0, 2.0, 3.0])) == (0.25, "exact")
    # (1, -1): flipped means 0, 1, -1, 0 -> |.| >= 0 for all four
    assert stats.sign_flip_pvalue(np.array([1.0, -1.0]))[0] == 1.0
    values = np.array([0.7, -0.2, 1.3, 0.4, 0.9])
    observed = abs(values.mean())
    reference = (
        sum(
            abs(np.dot(signs, values)) / 5 >= observed - 1e-12
            for signs in itertools.product([-1, 1], repeat=5)
        )
        / 32
    )
    assert stats.sign_flip_pvalue(values)[0] == pytest.approx(reference)


def test_sign_flip_beyond_exact_limit_is_monte_carlo_and_small_for_a_clear_effect():
    p_value, method = stats.sign_flip_pvalue(np.full(25, 1.0))
    assert method == "monte-carlo"
    # exact value is 2 / 2^25; the estimate is (1 + hits) / (1 + draws), hits almost surely 0
    assert p_value <= 3 / (1 + stats.MONTE_CARLO_FLIPS)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.9995])
def test_t_quantile_matches_the_closed_forms(p):
    # df = 1 is the Cauchy distribution, df = 2 and df = 4 have closed-form quantiles
    assert stats.t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
    assert stats.t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    alpha = 4 * p * (1 - p)
    q = math.cos(math.acos(math.sqrt(alpha)) / 3) / math.sqrt(alpha)
    assert stats.t_quantile(p, 4) == pytest.approx(2 * math.sqrt(q - 1), rel=1e-9)
    assert stats.t_quantile(1 - p, 4) == pytest.approx(-stats.t_quantile(p, 4), rel=1e-12)
    # many degrees of freedom: the normal quantile
    assert stats.t_quantile(p, 1e7) == pytest.approx(statistics.NormalDist().inv_cdf(p), rel=1e-5)


def test_t_interval_and_test_of_a_mean_by_hand():
    estimate = stats.mean_estimate(np.array([3.0, 0.0, 3.0]))
    # mean 2, sd sqrt(3), se 1, 2 degrees of freedom: half-width t_0.975(2) = 4.30265...
    half = (2 * 0.975 - 1) / math.sqrt(2 * 0.975 * 0.025)
    assert estimate.interval == pytest.approx((2 - half, 2 + half), rel=1e-9)
    # P(T2 > 2) = (1 - 2 / sqrt(2^2 + 2)) / 2
    assert estimate.p_value == pytest.approx(1 - 2 / math.sqrt(6), rel=1e-9)
    assert estimate.verdict(+1) == "inconclusive at n = 3"
    assert stats.mean_estimate(np.array([1.0, 1.2, 0.9])).verdict(+1) == "supported"
    assert stats.mean_estimate(np.array([1.0, 1.2, 0.9])).verdict(-1) == "contradicted"
    assert stats.mean_estimate(np.array([1.0, 1.2])).verdict(+1) == "inconclusive at n = 2"
    single = stats.mean_estimate(np.array([4.0]))
    assert math.isnan(single.interval[0]) and single.verdict(+1) == "inconclusive at n = 1"


def test_slope_and_welch_difference_by_hand():
    x = np.log2([20, 20, 56, 56, 110, 110])
    y = np.array([3.1, 2.9, 1.2, 0.8, -0.9, -1.1])
    estimate = stats.slope_estimate(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    residuals = y - (slope * x + intercept)
    se = math.sqrt(residuals @ residuals / 4 / ((x - x.mean()) @ (x - x.mean())))
    assert (estimate.value, estimate.se, estimate.df) == pytest.approx((slope, se, 4), rel=1e-9)
    assert estimate.verdict(-1) == "supported"
    other = stats.slope_estimate(x, y[::-1])
    difference = stats.difference_estimate(other, estimate)
    welch_df = (other.se**2 + se**2) ** 2 / (other.se**4 / 4 + se**4 / 4)
    assert (difference.value, difference.df) == pytest.approx((other.value - slope, welch_df), rel=1e-9)
    with pytest.raises(ValueError, match="two distinct x"):
        stats.slope_estimate(np.array([1.0, 1.0]), np.array([0.0, 1.0]))


def test_mean_std_uses_sample_std():
    mean, std, n = stats.mean_std([90.0, 92.0, 91.0, 95.0])
    assert (mean, n) == (statistics.mean([90, 92, 91, 95]), 4)
    assert std == pytest.approx(statistics.stdev([90, 92, 91, 95]))
    assert stats.mean_std([3.0]) == (3.0, None, 1)


def test_mean_interval_from_sample_std_and_n():
    # mean 2, sd sqrt(3), n 3: se 1 on 2 degrees of freedom, the same interval as mean_estimate's
    half = (2 * 0.975 - 1) / math.sqrt(2 * 0.975 * 0.025)
    assert mean_interval(2.0, math.sqrt(3.0), 3) == pytest.approx((2 - half, 2 + half), rel=1e-9)
    assert mean_interval(2.0, None, 1) == (None, None)
