"""Statistics over seeds with numpy only: mean/std, seed-paired differences, a percentile bootstrap
interval of the mean difference and an exact sign-flip permutation test.

Pairing by seed removes the seed-to-seed variation shared by both arms (same data order and init
stream), which is what makes a 3-seed comparison informative at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
EXACT_SIGN_FLIP_MAX_N = 20
MONTE_CARLO_FLIPS = 100_000
# relative slack when comparing a permuted statistic with the observed one, so exact ties count
_TIE_TOLERANCE = 1e-12


def mean_std(values: np.ndarray | pd.Series) -> tuple[float, float | None, int]:
    """Mean, sample standard deviation (ddof=1; None for a single value) and n."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(values.std(ddof=1)) if values.size > 1 else None
    return float(values.mean()), std, int(values.size)


def bootstrap_ci(
    differences: np.ndarray,
    *,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `differences` (resampling seeds with replacement)."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.size == 0:
        raise ValueError("bootstrap_ci needs at least one difference")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level {level!r} must lie in (0, 1)")
    if resamples < 1:
        raise ValueError(f"resamples {resamples!r} must be a positive integer")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, differences.size, size=(resamples, differences.size))
    means = differences[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def sign_flip_pvalue(differences: np.ndarray, *, seed: int = BOOTSTRAP_SEED) -> tuple[float, str]:
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
