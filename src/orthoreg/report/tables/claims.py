"""The claims table: each claim of the paper's abstract as a verdict on these runs."""

from __future__ import annotations

import pandas as pd

from orthoreg.report.analysis import stats
from orthoreg.report.analysis.claims import RELAXED, STRICT, claims_frame
from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.order import REFERENCE
from orthoreg.report.registry import TableBody, register_table
from orthoreg.report.tables.format import bold_column, general_text, p_text

VERDICTS = ("supported", "contradicted")


def estimate_text(row) -> str:
    """'0.2 [0.15, 0.25] pp' (the interval left out where it does not exist; '-' without an estimate)."""
    if pd.isna(row.estimate):
        return "-"
    if pd.isna(row.ci95_low):
        return f"{general_text(row.estimate)} {row.unit}"
    return f"{general_text(row.estimate)} [{general_text(row.ci95_low)}, {general_text(row.ci95_high)}] {row.unit}"


@register_table(
    "claims",
    "The paper's two claims (strict is most orthogonal; strict's gain fades with depth, relaxed's does not) as verdicts.",
    caption="Each claim of the paper's abstract tested on these runs. Claim 1, per near-orthogonality "
    f"measure (lower is better): the paired advantage (competitor - {STRICT}, by seed) over the closest "
    "competitor; supported only if the 95% t-interval excludes 0 in dn_strict's favour against every "
    "competitor. Claim 2, per model family: least-squares slopes of the seed-level accuracy gains over "
    "none against log2(depth) (t-interval with n - 2 degrees of freedom; the slope difference with "
    "Welch-Satterthwaite degrees of freedom) and the relaxed gain at the deepest model. Verdicts: "
    "'supported' / 'contradicted' when the interval excludes 0 on the claimed / the other side with "
    f"n >= {stats.MIN_N_FOR_A_VERDICT}, otherwise 'inconclusive at n = k'. The sign-flip p (exact, never "
    "below 2/2^n) is the assumption-free check. Effect size (csv): mean / sd of the paired differences.",
    skip=f"no {STRICT} run beside another regulariser with eval.json, nor {STRICT}/{RELAXED} beside "
    f"`{REFERENCE}` at two depths",
)
def claims_table(data: RunData) -> TableBody | None:
    table = claims_frame(data)
    if table.empty:
        return None
    display = pd.DataFrame(
        {
            "claim": table["claim"],
            "dataset": table["dataset"],
            "scope": table["scope"],
            "quantity": table["quantity"],
            "comparison": table["comparison"],
            "n": table["n"].astype(str),
            "estimate [95% t-interval]": [estimate_text(row) for row in table.itertuples()],
            "p (t)": table["p_t"].map(p_text),
            "p (sign-flip)": table["p_sign_flip"].map(p_text),
            "verdict": table["verdict"],
        }
    )
    return TableBody(table, display, bold_column(display, "verdict", table["verdict"].isin(VERDICTS)))
