"""The paper's two claims as verdicts on the runs at hand (its abstract):

1. "strict orthogonality (dn_strict) surpasses previous regularisers in near-orthogonality": for each
   near-orthogonality measure of eval.json, dn_strict against every other penalty, paired by seed;
   the row reports the closest competitor, and the claim holds only if it holds against all of them.
   A hard constraint (`orthogonal`, `spectral`: a spec with `constrain`) is not a competitor: the claim
   is about penalties, and a parametrisation is orthogonal by construction (`orthogonality_best`
   shows where it stands).
2. "the gains of strict orthogonality decrease as depth grows, while the relaxed form keeps them":
   along each model family's depth axis, the slope of dn_strict's paired gain over `none` against
   log2(depth) (claimed < 0); the slope of dn_relaxed's gain minus dn_strict's (claimed > 0); and
   dn_relaxed's gain at the deepest model (claimed > 0).

Every row carries its n, estimate, 95% t-interval, t-test p (and the sign-flip p where it applies) and
a verdict: supported or contradicted when the interval excludes 0 with n >= 3, else inconclusive at
that n.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from orthoreg.regularizers import available_regularizers, regularizer_spec
from orthoreg.report.analysis import stats
from orthoreg.report.analysis.accuracy import paired_accuracy
from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.order import FAMILY_LABEL, model_key, ordered
from orthoreg.report.analysis.orthogonality import measure_goal

STRICT, RELAXED = "dn_strict", "dn_relaxed"
# not near-orthogonality measures: feature expressiveness, and the Welch bound (a property of the shape)
NOT_CLAIMED = ("effective_rank", "mean_abs_channel_cosine", "mean_welch_bound")
CLAIM_1 = "1: dn_strict is the most nearly orthogonal"
CLAIM_2A = "2a: dn_strict's gain over none shrinks with depth"
CLAIM_2B = "2b: dn_relaxed's gain shrinks less than dn_strict's"
CLAIM_2C = "2c: dn_relaxed still gains at the deepest model"
SLOPE = "slope of the gain vs log2(depth)"
COLUMNS = [
    "claim",
    "dataset",
    "scope",
    "quantity",
    "comparison",
    "n",
    "estimate",
    "unit",
    "ci95_low",
    "ci95_high",
    "p_t",
    "p_sign_flip",
    "effect_size",
    "verdict",
    "competitor_mean",
]


def orthogonality_measures(data: RunData) -> pd.DataFrame:
    """Per run, the eval.json near-orthogonality measures where lower is better."""
    frame = data.main(data.orthogonality)
    if frame.empty:
        return frame
    keep = [measure not in NOT_CLAIMED and measure_goal(measure) == "min" for measure in frame["measure"]]
    return frame[keep]


def _row(claim, dataset, scope, quantity, comparison, estimate: stats.Estimate, unit, sign, **extra) -> dict:
    low, high = estimate.interval
    return {
        "claim": claim,
        "dataset": dataset,
        "scope": scope,
        "quantity": quantity,
        "comparison": comparison,
        "n": estimate.n,
        "estimate": estimate.value,
        "unit": unit,
        "ci95_low": low,
        "ci95_high": high,
        "p_t": estimate.p_value,
        "verdict": estimate.verdict(sign),
        **extra,
    }


def hard_constraints() -> set[str]:
    """The registered methods that constrain the weights instead of penalising them."""
    return {name for name in available_regularizers() if regularizer_spec(name).constrain is not None}


def _advantages(part: pd.DataFrame) -> list[tuple[str, pd.Series, stats.Estimate, float]]:
    """Per competitor of dn_strict on one measure: (name, advantage by seed, its estimate, its mean);
    advantage = competitor - dn_strict, > 0 where dn_strict is lower (better)."""
    strict = part[part["regularizer"] == STRICT].set_index("seed")["value"]
    competitors = part[(part["regularizer"] != STRICT) & ~part["regularizer"].isin(hard_constraints())]
    found = []
    for competitor, other in competitors.groupby("regularizer", sort=False):
        advantage = (other.set_index("seed")["value"] - strict).dropna()
        if len(advantage):
            found.append(
                (competitor, advantage, stats.mean_estimate(advantage), float(other["value"].mean()))
            )
    return found


def _overall(verdicts: list[str], n: int) -> str:
    """Claim 1 holds only against every competitor; one contradiction contradicts it."""
    if "contradicted" in verdicts:
        return "contradicted"
    if all(verdict == "supported" for verdict in verdicts):
        return "supported"
    return f"inconclusive at n = {n}"


def claim_one(data: RunData) -> list[dict]:
    """Per dataset, model and measure: dn_strict's advantage over its closest competitor."""
    measures = orthogonality_measures(data)
    if measures.empty or STRICT not in set(measures["regularizer"]):
        return []
    rows = []
    for (dataset, model, measure), part in measures.groupby(["dataset", "model", "measure"], sort=False):
        comparisons = _advantages(part)
        if not comparisons:
            continue
        competitor, advantage, estimate, competitor_mean = min(comparisons, key=lambda item: item[2].value)
        sd = float(advantage.std(ddof=1)) if len(advantage) > 1 else math.nan
        row = _row(
            CLAIM_1,
            dataset,
            model,
            measure,
            f"{competitor} - {STRICT} (closest of {len(comparisons)})",
            estimate,
            "measure units",
            +1,
            p_sign_flip=stats.sign_flip_pvalue(advantage.to_numpy())[0],
            effect_size=estimate.value / sd if sd > 0 else math.nan,
            competitor_mean=competitor_mean,
        )
        verdicts = [item[2].verdict(+1) for item in comparisons]
        rows.append({**row, "verdict": _overall(verdicts, min(item[2].n for item in comparisons))})
    return rows


def gains_by_depth(data: RunData) -> pd.DataFrame:
    """Seed-level gains over `none` (pp) of dn_strict and dn_relaxed with each model's family and depth."""
    paired = paired_accuracy(data)
    paired = paired[paired["regularizer"].isin([STRICT, RELAXED])]
    if paired.empty:
        return paired.assign(family=pd.Series(dtype=str), depth=pd.Series(dtype=float))
    keys = paired["model"].map(model_key)
    paired = paired.assign(family=[key.family for key in keys], depth=[key.depth for key in keys])
    return paired[(paired["family"] != "other") & paired["depth"].notna()]


def single_depth_row(dataset: str, part: pd.DataFrame) -> dict:
    """Claim 2 cannot be tested on one depth: say so as a row rather than leave it out."""
    return {
        "claim": CLAIM_2A,
        "dataset": dataset,
        "scope": f"{part['model'].iloc[0]} only",
        "quantity": SLOPE,
        "comparison": f"{STRICT} - none",
        "n": int((part["regularizer"] == STRICT).sum()),
        "verdict": "inconclusive: a single depth in this grid",
    }


def gain_slopes(part: pd.DataFrame) -> dict[str, stats.Estimate]:
    """Per regulariser with gains at two depths and three points: the slope of its gain on log2(depth)."""
    slopes = {}
    for regularizer in (STRICT, RELAXED):
        points = part[part["regularizer"] == regularizer]
        if points["depth"].nunique() >= 2 and len(points) >= 3:
            depths = np.log2(points["depth"].to_numpy(float))
            slopes[regularizer] = stats.slope_estimate(depths, points["difference"].to_numpy())
    return slopes


def family_rows(dataset: str, scope: str, part: pd.DataFrame) -> list[dict]:
    """Claims 2a-2c on one model family of one dataset, at two depths or more."""
    slopes, rows = gain_slopes(part), []
    if STRICT in slopes:
        rows.append(
            _row(CLAIM_2A, dataset, scope, SLOPE, f"{STRICT} - none", slopes[STRICT], "pp per doubling", -1)
        )
    if STRICT in slopes and RELAXED in slopes:
        difference = stats.difference_estimate(slopes[RELAXED], slopes[STRICT])
        quantity = "slope difference (relaxed - strict)"
        rows.append(
            _row(CLAIM_2B, dataset, scope, quantity, "gain slopes", difference, "pp per doubling", +1)
        )
    deepest = part[(part["regularizer"] == RELAXED) & (part["depth"] == part["depth"].max())]
    if len(deepest):
        differences = deepest["difference"]
        rows.append(
            _row(
                CLAIM_2C,
                dataset,
                f"{deepest['model'].iloc[0]} (deepest)",
                "accuracy gain",
                f"{RELAXED} - none",
                stats.mean_estimate(differences),
                "pp",
                +1,
                p_sign_flip=stats.sign_flip_pvalue(differences.to_numpy())[0],
            )
        )
    return rows


def claim_two(data: RunData) -> list[dict]:
    """Per dataset and model family: claims 2a-2c, or one row saying a single depth cannot test them."""
    rows = []
    for (dataset, family), part in gains_by_depth(data).groupby(["dataset", "family"], sort=False):
        if part["depth"].nunique() < 2:
            rows.append(single_depth_row(dataset, part))
            continue
        depths = ", ".join(str(int(depth)) for depth in sorted(part["depth"].unique()))
        rows += family_rows(dataset, f"{FAMILY_LABEL[family]}: depths {depths}", part)
    return rows


def claims_frame(data: RunData) -> pd.DataFrame:
    """Every claim row, claim 1 in model order, with COLUMNS (empty when no claim can be tested)."""
    rows = claim_one(data) + claim_two(data)
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    models = ordered(table["scope"][table["claim"] == CLAIM_1], "model")
    order = [
        (claim, models.index(scope) if claim == CLAIM_1 else 0)
        for claim, scope in zip(table["claim"], table["scope"], strict=True)
    ]
    return (
        table.assign(_order=order)
        .sort_values("_order", kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
