"""Near-orthogonality: which regulariser reaches the best value of each measure, and which layer
stands for a model in the per-layer figures.

Measures come from eval.json (`orthogonality` summary, plus the feature measures) and from layers.csv
(each float column averaged over the run's layers). Lower is better for residuals, deviations,
cosines/coherence and condition numbers; spectral extremes are best at 1; effective rank is best high.
"""

from __future__ import annotations

import pandas as pd

from orthoreg.report.analysis.collect import ABLATION_KEYS, KEYS, RunData
from orthoreg.report.analysis.order import sort_frame
from orthoreg.report.analysis.summary import CELL, ENOUGH, mark_best, seed_summary

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
    layers = data.main(data.layers)
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


def orthogonality_summary(data: RunData) -> pd.DataFrame:
    """Per (dataset, model, source, measure, regulariser): the measure over seeds, its goal and
    whether it is the best among cells with n >= ENOUGH."""
    measures = measures_per_run(data)
    if measures.empty:
        return pd.DataFrame(columns=["dataset", "model", "source", "measure", "regularizer", "n", "mean"])
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
    return summary


def representative_layers(data: RunData) -> dict[tuple[str, str], str]:
    """Per (dataset, model): the last 3x3 convolution of layers.csv (network order), the layer the
    spectra and cosine-Gram figures show."""
    layers = data.main(data.layers)
    if layers.empty or not {"kind", "kh", "kw"} <= set(layers.columns):
        return {}
    convolutions = layers[(layers["kind"] == "conv") & (layers["kh"] == 3) & (layers["kw"] == 3)]
    last = convolutions.sort_values("layer_index", kind="stable").groupby(["dataset", "model"]).tail(1)
    return {(r.dataset, r.model): r.layer for r in last.itertuples()}
