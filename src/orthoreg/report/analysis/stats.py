"""Statistics over seeds that stay honest at small n: mean/std, seed-paired differences, Student-t
intervals and tests (of a mean, and of a slope), and an exact sign-flip permutation test.

Pairing by seed removes the seed-to-seed variation shared by both arms (same data order and init
stream), which is what makes a 3-seed comparison informative at all. The t-interval is exact for
normally distributed differences at any n >= 2; the sign-flip test assumes only symmetry but cannot
give p < 2 / 2^n (0.25 at n = 3), so it needs n >= 6 to reach p < 0.05. The Student-t quantile is
computed here (regularised incomplete beta by continued fraction), so the report needs no SciPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

LEVEL = 0.95
MIN_N_FOR_A_VERDICT = 3
EXACT_SIGN_FLIP_MAX_N = 20
MONTE_CARLO_FLIPS = 100_000
SIGN_FLIP_SEED = 0
# relative slack when comparing a permuted statistic with the observed one, so exact ties count
_TIE_TOLERANCE = 1e-12


def mean_std(values: np.ndarray | pd.Series) -> tuple[float, float | None, int]:
    """Mean, sample standard deviation (ddof=1; None for a single value) and n."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(values.std(ddof=1)) if values.size > 1 else None
    return float(values.mean()), std, int(values.size)


# ---------------------------------------------------------------- Student's t distribution


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function, for x in [0, 1]."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t (bisection on t_cdf to 1e-12 relative)."""
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p!r}, df={df!r}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, max(1.0, abs(NormalDist().inv_cdf(p)))
    while t_cdf(high, df) < p:
        low, high = high, 2.0 * high
    while high - low > 1e-12 * max(1.0, high):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return 0.5 * (low + high)


# ---------------------------------------------------------------- estimates with intervals


@dataclass(frozen=True)
class Estimate:
    """An estimate with its standard error, degrees of freedom and two-sided t-interval and p-value."""

    value: float
    se: float
    df: float
    n: int

    @property
    def interval(self) -> tuple[float, float]:
        if not self.df > 0 or not math.isfinite(self.se):
            return (math.nan, math.nan)
        half = t_quantile(0.5 + LEVEL / 2.0, self.df) * self.se
        return (self.value - half, self.value + half)

    @property
    def p_value(self) -> float:
        """Two-sided p of H0: the true value is 0 (1.0 for a zero estimate with zero spread)."""
        if not self.df > 0:
            return math.nan
        if self.se == 0.0:
            return 1.0 if self.value == 0.0 else 0.0
        return 2.0 * t_cdf(-abs(self.value / self.se), self.df)

    def verdict(self, claimed_sign: int) -> str:
        """'supported' when the interval lies on the claimed side of 0, 'contradicted' when on the other,
        'inconclusive at n = k' otherwise, or with fewer than MIN_N_FOR_A_VERDICT values."""
        low, high = self.interval
        if self.n < MIN_N_FOR_A_VERDICT or math.isnan(low):
            return f"inconclusive at n = {self.n}"
        if (low > 0 and claimed_sign > 0) or (high < 0 and claimed_sign < 0):
            return "supported"
        if (low > 0 and claimed_sign < 0) or (high < 0 and claimed_sign > 0):
            return "contradicted"
        return f"inconclusive at n = {self.n}"


def mean_estimate(values: np.ndarray | pd.Series) -> Estimate:
    """The mean of `values` with its t-interval (n - 1 degrees of freedom; none below n = 2)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_estimate needs at least one value")
    se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
    return Estimate(float(values.mean()), se, float(values.size - 1), int(values.size))


def slope_estimate(x: np.ndarray, y: np.ndarray) -> Estimate:
    """The least-squares slope of y on x, its standard error and n - 2 degrees of freedom."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.size < 2 or np.ptp(x) == 0:
        raise ValueError(f"a slope needs at least two distinct x values, got x = {x.tolist()}")
    centred = x - x.mean()
    slope = float(centred @ (y - y.mean()) / (centred @ centred))
    residuals = y - y.mean() - slope * centred
    df = x.size - 2
    se = math.sqrt(float(residuals @ residuals) / df / float(centred @ centred)) if df > 0 else math.nan
    return Estimate(slope, se, float(df), int(x.size))


def difference_estimate(first: Estimate, second: Estimate) -> Estimate:
    """first - second for independent estimates, with Welch-Satterthwaite degrees of freedom."""
    variance = first.se**2 + second.se**2
    terms = [se**4 / df for se, df in ((first.se, first.df), (second.se, second.df)) if df > 0]
    df = variance**2 / sum(terms) if terms and variance > 0 else min(first.df, second.df)
    return Estimate(first.value - second.value, math.sqrt(variance), df, min(first.n, second.n))


# ---------------------------------------------------------------- the distribution-free check


def sign_flip_pvalue(differences: np.ndarray, *, seed: int = SIGN_FLIP_SEED) -> tuple[float, str]:
    """Two-sided p-value of H0 "the paired differences are symmetric about 0".

    Exact over all 2^n sign patterns for n <= 20: p = #{patterns with |mean| >= |observed mean|} / 2^n.
    Beyond that a Monte-Carlo estimate (1 + hits) / (1 + draws) with a fixed seed. Returns (p, method).
    """
    differences = np.asarray(differences, dtype=np.float64)
    n = differences.size
    if n == 0:
        raise ValueError("sign_flip_pvalue needs at least one difference")
    observed = abs(differences.mean())
    threshold = observed - _TIE_TOLERANCE * max(1.0, observed)
    if n <= EXACT_SIGN_FLIP_MAX_N:
        hits, total, chunk = 0, 1 << n, 1 << 16
        bits = np.arange(n)
        for start in range(0, total, chunk):
            patterns = np.arange(start, min(start + chunk, total))
            signs = 1.0 - 2.0 * ((patterns[:, None] >> bits) & 1)
            hits += int((np.abs(signs @ differences) / n >= threshold).sum())
        return hits / total, "exact"
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(MONTE_CARLO_FLIPS, n))
    hits = int((np.abs(signs @ differences) / n >= threshold).sum())
    return (1 + hits) / (1 + MONTE_CARLO_FLIPS), "monte-carlo"


def smallest_sign_flip_p(n: int) -> float:
    """The smallest p the exact sign-flip test can give with n differences: 2 / 2^n."""
    return min(1.0, 2.0 / 2**n)


def paired_differences(
    frame: pd.DataFrame, value: str, group: list[str], *, reference: str = "none"
) -> pd.DataFrame:
    """Per group and regulariser, value(reg, seed) - value(reference, same seed) for the seeds both have.

    Returns rows (group..., regularizer, seed, difference); the reference itself is left out.
    """
    keys = [*group, "seed"]
    base = frame[frame["regularizer"] == reference][[*keys, value]].rename(columns={value: "_reference"})
    others = frame[frame["regularizer"] != reference]
    paired = others.merge(base, on=keys, how="inner")
    paired["difference"] = paired[value] - paired["_reference"]
    return paired[[*group, "regularizer", "seed", "difference"]].reset_index(drop=True)
