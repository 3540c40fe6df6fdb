"""The near-orthogonality table: which regulariser reaches the best value of each measure."""

from __future__ import annotations

from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.orthogonality import orthogonality_summary
from orthoreg.report.analysis.summary import ENOUGH
from orthoreg.report.registry import TableBody, register_table
from orthoreg.report.tables.format import general_text, n_range, pivot_display

ROWS = ["dataset", "model", "measure (source)"]


@register_table(
    "orthogonality_best",
    "Which regulariser reaches the best near-orthogonality, per measure (mean over seeds).",
    caption="Near-orthogonality per measure, mean over seeds ({n}): eval.json summaries and layers.csv "
    "columns averaged over layers. Best (bold) = lowest for residuals, deviations, cosines, coherence and "
    "condition numbers; closest to 1 for extreme singular values; highest for effective rank (csv column "
    f"goal); marked only among cells with n >= {ENOUGH}. Table `claims` tests whether the lead is real.",
    skip="no eval.json orthogonality summary or layers.csv (run `orthoreg evaluate`)",
)
def orthogonality_best(data: RunData) -> TableBody | None:
    summary = orthogonality_summary(data)
    if summary.empty:
        return None
    cells = summary.assign(
        cell=summary["mean"].map(general_text),
        **{"measure (source)": summary["measure"] + " (" + summary["source"] + ")"},
    )
    display, bold = pivot_display(cells, ROWS, "regularizer", "cell", column_kind="regularizer")
    winners = cells[cells["best"]].groupby(ROWS, sort=False)["regularizer"].agg(", ".join)
    display["best"] = [winners.get(tuple(r), "") for r in display[ROWS].itertuples(index=False)]
    bold["best"] = False
    return TableBody(summary, display, bold, {"n": n_range(summary["n"])})
