"""The paper's two claims as verdicts on the runs at hand (shared PAPER.md, the abstract):

1. "strict orthogonality (dn_strict) surpasses previous regularisers in near-orthogonality": for each
   near-orthogonality measure of eval.json, dn_strict against every other regulariser, paired by seed;
   the row reports the closest competitor, and the claim holds only if it holds against all of them.
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
from collections.abc import Mapping

import numpy as np
import pandas as pd

from orthoreg.report import stats
from orthoreg.report.collect import RunData
from orthoreg.report.figures import verdict_note
from orthoreg.report.format import general_text
from orthoreg.report.order import FAMILY_LABEL, REFERENCE, model_key, ordered
from orthoreg.report.registry import Drawn, TableBody, register_figure, register_table
from orthoreg.report.style import new_figure, regularizer_styles
from orthoreg.report.tables import paired_accuracy
from orthoreg.report.tables_orthogonality import measure_goal
from orthoreg.report.writers import Table

STRICT, RELAXED = "dn_strict", "dn_relaxed"
# not near-orthogonality measures: feature expressiveness, and the Welch bound (a property of the shape)
NOT_CLAIMED = ("effective_rank", "mean_abs_channel_cosine", "mean_welch_bound")
CLAIM_1 = "1: dn_strict is the most nearly orthogonal"
CLAIM_2A = "2a: dn_strict's gain over none shrinks with depth"
CLAIM_2B = "2b: dn_relaxed's gain shrinks less than dn_strict's"
CLAIM_2C = "2c: dn_relaxed still gains at the deepest model"
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
]


def orthogonality_measures(data: RunData) -> pd.DataFrame:
    """Per run, the eval.json near-orthogonality measures where lower is better."""
    frame = data.main(data.orthogonality) if len(data.orthogonality) else data.orthogonality
    if frame.empty:
        return frame
    keep = [measure not in NOT_CLAIMED and measure_goal(measure) == "min" for measure in frame["measure"]]
    return frame[keep]


def _row(
    claim: str,
    dataset: str,
    scope: str,
    quantity: str,
    comparison: str,
    estimate: stats.Estimate,
    unit: str,
    sign: int,
    **extra,
) -> dict:
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


def claim_one(data: RunData) -> list[dict]:
    """Per dataset, model and measure: dn_strict's advantage over its closest competitor."""
    measures = orthogonality_measures(data)
    if measures.empty or STRICT not in set(measures["regularizer"]):
        return []
    rows = []
    for (dataset, model, measure), part in measures.groupby(["dataset", "model", "measure"], sort=False):
        strict = part[part["regularizer"] == STRICT].set_index("seed")["value"]
        comparisons = []
        for competitor, other in part[part["regularizer"] != STRICT].groupby("regularizer", sort=False):
            advantage = (other.set_index("seed")["value"] - strict).dropna()  # > 0: strict is lower (better)
            if len(advantage):
                comparisons.append(
                    (competitor, advantage, stats.mean_estimate(advantage), float(other["value"].mean()))
                )
        if not comparisons:
            continue
        verdicts = [estimate.verdict(+1) for _, _, estimate, _ in comparisons]
        competitor, advantage, estimate, competitor_mean = min(comparisons, key=lambda item: item[2].value)
        n = min(item[2].n for item in comparisons)
        if "contradicted" in verdicts:
            overall = "contradicted"
        elif all(verdict == "supported" for verdict in verdicts):
            overall = "supported"
        else:
            overall = f"inconclusive at n = {n}"
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
        rows.append({**row, "verdict": overall})
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
        "quantity": "slope of the gain vs log2(depth)",
        "comparison": f"{STRICT} - none",
        "n": int((part["regularizer"] == STRICT).sum()),
        "verdict": "inconclusive: a single depth in this grid",
    }


def claim_two(data: RunData) -> list[dict]:
    gains = gains_by_depth(data)
    rows = []
    for (dataset, family), part in gains.groupby(["dataset", "family"], sort=False):
        if part["depth"].nunique() < 2:
            rows.append(single_depth_row(dataset, part))
            continue
        scope = (
            f"{FAMILY_LABEL[family]}: depths {', '.join(str(int(d)) for d in sorted(part['depth'].unique()))}"
        )
        slopes = {}
        for regularizer in (STRICT, RELAXED):
            points = part[part["regularizer"] == regularizer]
            if points["depth"].nunique() >= 2 and len(points) >= 3:
                slopes[regularizer] = stats.slope_estimate(
                    np.log2(points["depth"].to_numpy(float)), points["difference"].to_numpy()
                )
        if STRICT in slopes:
            rows.append(
                _row(
                    CLAIM_2A,
                    dataset,
                    scope,
                    "slope of the gain vs log2(depth)",
                    f"{STRICT} - none",
                    slopes[STRICT],
                    "pp per doubling",
                    -1,
                )
            )
        if STRICT in slopes and RELAXED in slopes:
            difference = stats.difference_estimate(slopes[RELAXED], slopes[STRICT])
            rows.append(
                _row(
                    CLAIM_2B,
                    dataset,
                    scope,
                    "slope difference (relaxed - strict)",
                    "gain slopes",
                    difference,
                    "pp per doubling",
                    +1,
                )
            )
        deepest = part[(part["regularizer"] == RELAXED) & (part["depth"] == part["depth"].max())]
        if len(deepest):
            estimate = stats.mean_estimate(deepest["difference"])
            rows.append(
                _row(
                    CLAIM_2C,
                    dataset,
                    f"{deepest['model'].iloc[0]} (deepest)",
                    "accuracy gain",
                    f"{RELAXED} - none",
                    estimate,
                    "pp",
                    +1,
                    p_sign_flip=stats.sign_flip_pvalue(deepest["difference"].to_numpy())[0],
                )
            )
    return rows


@register_table(
    "claims",
    "The paper's two claims (strict is most orthogonal; strict's gain fades with depth, relaxed's does not) as verdicts.",
    skip=f"no {STRICT} run beside another regulariser with eval.json, nor {STRICT}/{RELAXED} beside `{REFERENCE}` at two depths",
)
def claims_table(data: RunData, tables: Mapping[str, Table]) -> TableBody | None:
    rows = claim_one(data) + claim_two(data)
    if not rows:
        return None
    table = pd.DataFrame(rows).reindex(columns=[*COLUMNS, "competitor_mean"])
    models = ordered(table["scope"][table["claim"] == CLAIM_1], "model")
    table["_order"] = [
        (claim, models.index(scope) if claim == CLAIM_1 else 0)
        for claim, scope in zip(table["claim"], table["scope"], strict=True)
    ]
    table = table.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    display = pd.DataFrame(
        {
            "claim": table["claim"],
            "dataset": table["dataset"],
            "scope": table["scope"],
            "quantity": table["quantity"],
            "comparison": table["comparison"],
            "n": table["n"].astype(str),
            "estimate [95% t-interval]": [
                "-"
                if pd.isna(r.estimate)
                else f"{general_text(r.estimate)} [{general_text(r.ci95_low)}, {general_text(r.ci95_high)}] {r.unit}"
                if not pd.isna(r.ci95_low)
                else f"{general_text(r.estimate)} {r.unit}"
                for r in table.itertuples()
            ],
            "p (t)": table["p_t"].map(lambda p: "-" if pd.isna(p) else f"{p:.3g}"),
            "p (sign-flip)": table["p_sign_flip"].map(lambda p: "-" if pd.isna(p) else f"{p:.3g}"),
            "verdict": table["verdict"],
        }
    )
    bold = pd.DataFrame(False, index=display.index, columns=display.columns)
    bold["verdict"] = table["verdict"].isin(["supported", "contradicted"])
    return TableBody(
        "Each claim of the paper's abstract tested on these runs. Claim 1, per near-orthogonality measure "
        f"(lower is better): the paired advantage (competitor - {STRICT}, by seed) over the closest "
        "competitor; supported only if the 95% t-interval excludes 0 in dn_strict's favour against every "
        "competitor. Claim 2, per model family: least-squares slopes of the seed-level accuracy gains over "
        "none against log2(depth) (t-interval with n - 2 degrees of freedom; the slope difference with "
        "Welch-Satterthwaite degrees of freedom) and the relaxed gain at the deepest model. Verdicts: "
        f"'supported' / 'contradicted' when the interval excludes 0 on the claimed / the other side with "
        f"n >= {stats.MIN_N_FOR_A_VERDICT}, otherwise 'inconclusive at n = k'. The sign-flip p (exact, "
        "never below 2/2^n) is the assumption-free check. Effect size (csv): mean / sd of the paired "
        "differences.",
        table,
        display,
        bold,
    )


@register_figure(
    "claims",
    "The paper's claims on these runs: dn_strict's advantage in each near-orthogonality measure over its "
    "closest competitor, and the accuracy gains over none against depth, with 95% t-intervals and verdicts.",
    skip="the claims table has no rows",
)
def claims_figure(data: RunData, tables: Mapping[str, Table]) -> list[Drawn]:
    if "claims" not in tables:
        return []
    table = tables["claims"].data
    first = table[table["claim"] == CLAIM_1]
    gains = gains_by_depth(data)
    panels = (1 if len(first) else 0) + (1 if len(gains) and gains["depth"].nunique() >= 2 else 0)
    if panels == 0:
        return []
    figure, axes = new_figure(1, panels)
    figure.set_size_inches(4.2 * panels, max(3.0, 0.4 * len(first) + 1.6))
    styles = regularizer_styles([STRICT, RELAXED])
    axis_index = 0
    if len(first):
        axis = axes[axis_index]
        axis_index += 1
        labels = [f"{r.dataset}/{r.scope}: {r.quantity}" for r in first.itertuples()]
        for position, row in enumerate(first.itertuples()):
            value = 100.0 * row.estimate / row.competitor_mean
            low, high = (
                (value, value)
                if pd.isna(row.ci95_low)
                else (100.0 * row.ci95_low / row.competitor_mean, 100.0 * row.ci95_high / row.competitor_mean)
            )
            axis.errorbar(
                [value], [position], xerr=[[value - low], [high - value]], fmt="o", color="0.2", capsize=3
            )
            axis.annotate(
                row.verdict,
                (value, position),
                textcoords="offset points",
                xytext=(0, 5),
                fontsize=6,
                ha="center",
            )
        axis.axvline(0.0, color="0.3", linewidth=0.8)
        axis.set_yticks(range(len(labels)), labels, fontsize=6)
        axis.set_ylim(-0.7, len(labels) - 0.3)
        axis.set_xlabel("advantage over the closest competitor (%)")
        axis.set_title("claim 1: dn_strict most orthogonal (> 0 supports)", fontsize=8)
    if axis_index < panels:
        axis = axes[axis_index]
        for regularizer in (STRICT, RELAXED):
            points = gains[gains["regularizer"] == regularizer]
            if points.empty:
                continue
            style = styles[regularizer]
            depths = np.array(sorted(points["depth"].unique()), dtype=float)
            estimates = [
                stats.mean_estimate(points[points["depth"] == depth]["difference"]) for depth in depths
            ]
            means = np.array([estimate.value for estimate in estimates])
            lows = np.array(
                [
                    estimate.value if math.isnan(estimate.interval[0]) else estimate.interval[0]
                    for estimate in estimates
                ]
            )
            highs = np.array(
                [
                    estimate.value if math.isnan(estimate.interval[1]) else estimate.interval[1]
                    for estimate in estimates
                ]
            )
            axis.errorbar(
                depths,
                means,
                yerr=[means - lows, highs - means],
                color=style["color"],
                marker=style["marker"],
                capsize=3,
                label=f"{regularizer}: mean, 95% t-interval",
            )
            axis.plot(
                points["depth"],
                points["difference"],
                linestyle="none",
                marker=style["marker"],
                color=style["color"],
                alpha=0.3,
                markersize=3,
            )
        axis.axhline(0.0, color="0.3", linewidth=0.8)
        axis.set_xscale("log", base=2)
        depths_present = sorted(gains["depth"].unique())
        axis.set_xticks(depths_present, [str(int(depth)) for depth in depths_present])
        axis.minorticks_off()
        axis.set_xlabel("depth (log scale; faint: single seeds)")
        axis.set_ylabel("accuracy gain over none (pp)")
        axis.set_title("claim 2: gains against depth", fontsize=8)
        axis.legend(fontsize=6)
    verdict_note(figure, table)
    return [Drawn("claims", "The paper's claims as verdicts on these runs (see table claims).", figure)]
