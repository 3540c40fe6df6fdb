"""Near-orthogonality: which regulariser reaches the best value of each measure.

Measures come from eval.json (`orthogonality` summary, plus the feature measures) and from layers.csv
(each float column averaged over the run's layers). Lower is better for residuals, deviations,
cosines/coherence and condition numbers; spectral extremes are best at 1; effective rank is best high.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from orthoreg.report.collect import ABLATION_KEYS, KEYS, RunData
from orthoreg.report.format import general_text, mark_best, pivot_display
from orthoreg.report.order import sort_frame
from orthoreg.report.registry import TableBody, register_table
from orthoreg.report.tables import CELL, ENOUGH, n_range, seed_summary
from orthoreg.report.writers import Table

LAYER_SOURCE = "layers.csv, mean over layers"
HIGHER_IS_BETTER = ("effective_rank",)
BEST_AT_ONE = ("sigma_max", "sigma_min", "max_singular", "min_singular", "spectral_norm")
NOT_MEASURES = ("layer_index", "index", *KEYS, *ABLATION_KEYS)


def measure_goal(measure: str) -> str:
    """'max', 'one' (closest to 1) or 'min' for a near-orthogonality or feature measure name."""
    name = measure.lower()
    if any(token in name for token in HIGHER_IS_BETTER):
        return "max"
    if any(token in name for token in BEST_AT_ONE):
        return "one"
    return "min"


def layer_measure_columns(layers: pd.DataFrame) -> list[str]:
    """The float columns of layers.csv: the per-layer measures (shape/count columns are integers)."""
    return [
        column
        for column in layers.columns
        if column not in NOT_MEASURES and pd.api.types.is_float_dtype(layers[column])
    ]


def measures_per_run(data: RunData) -> pd.DataFrame:
    """One row per (run, source, measure, value), main grid only."""
    frames = [data.main(data.orthogonality)] if len(data.orthogonality) else []
    layers = data.main(data.layers) if len(data.layers) else data.layers
    columns = layer_measure_columns(layers) if len(layers) else []
    if columns:
        means = layers.groupby([*CELL, "seed"], sort=False)[columns].mean().reset_index()
        frames.append(
            means.melt(id_vars=[*CELL, "seed"], var_name="measure", value_name="value").assign(
                source=LAYER_SOURCE
            )
        )
    if not frames:
        return pd.DataFrame(columns=[*CELL, "seed", "source", "measure", "value"])
    combined = pd.concat(frames, ignore_index=True)
    return combined[combined["value"].notna()][[*CELL, "seed", "source", "measure", "value"]]


@register_table(
    "orthogonality_best",
    "Which regulariser reaches the best near-orthogonality, per measure (mean over seeds).",
    skip="no eval.json orthogonality summary or layers.csv (run `orthoreg evaluate`)",
)
def orthogonality_best(data: RunData, tables: Mapping[str, Table]) -> TableBody | None:
    measures = measures_per_run(data)
    if measures.empty:
        return None
    group = ["dataset", "model", "source", "measure", "regularizer"]
    summary = sort_frame(seed_summary(measures, "value", group), ["dataset", "model", "source"])
    summary["goal"] = summary["measure"].map(measure_goal)
    summary["best"] = mark_best(
        summary,
        "mean",
        ["dataset", "model", "source", "measure"],
        goal=summary["goal"],
        eligible=summary["n"] >= ENOUGH,
    )
    summary["cell"] = summary["mean"].map(general_text)
    summary["measure (source)"] = summary["measure"] + " (" + summary["source"] + ")"
    display, bold = pivot_display(
        summary, ["dataset", "model", "measure (source)"], "regularizer", "cell", column_kind="regularizer"
    )
    winners = (
        summary[summary["best"]]
        .groupby(["dataset", "model", "measure (source)"], sort=False)["regularizer"]
        .agg(", ".join)
    )
    display["best"] = [winners.get((r[0], r[1], r[2]), "") for r in display.itertuples(index=False)]
    bold["best"] = False
    return TableBody(
        f"Near-orthogonality per measure, mean over seeds ({n_range(summary['n'])}): eval.json summaries "
        "and layers.csv columns averaged over layers. Best (bold) = lowest for residuals, deviations, "
        "cosines, coherence and condition numbers; closest to 1 for extreme singular values; highest for "
        f"effective rank (csv column goal); marked only among cells with n >= {ENOUGH}. Table `claims` "
        "tests whether the lead is real.",
        summary.drop(columns=["cell", "measure (source)"]),
        display,
        bold,
    )
