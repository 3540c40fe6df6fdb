"""The |cosine| Gram of one layer's filters per regulariser, for the heatmaps.

`orthoreg evaluate` writes the cosines of each run's last 3x3 convolution to gram.csv (one row per
filter pair), so the heatmaps need no weights: they read the lowest seed of each cell that has one.
Runs evaluated before gram.csv existed contribute nothing, and the heatmaps are then skipped with
the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from orthoreg.report.analysis.collect import RunData

Grams = dict[tuple[str, str], tuple[str, dict[str, np.ndarray]]]


def read_gram(path) -> tuple[str, np.ndarray] | None:
    """gram.csv as (layer, |cosine| matrix with a unit diagonal), None when it holds no pair."""
    frame = pd.read_csv(path)
    if not len(frame):
        return None
    size = int(frame["column"].max()) + 1
    matrix = np.eye(size)
    rows, columns = frame["row"].to_numpy(), frame["column"].to_numpy()
    matrix[rows, columns] = matrix[columns, rows] = np.abs(frame["cosine"].to_numpy(dtype=np.float64))
    return str(frame["layer"].iloc[0]), matrix


def cosine_grams(data: RunData) -> Grams:
    """Per (dataset, model): the last 3x3 convolution and its |cosine Gram| per regulariser (the
    lowest seed with gram.csv)."""
    runs = data.main(data.runs)
    if not len(runs):
        return {}
    runs = runs[[(Path(run_dir) / "gram.csv").is_file() for run_dir in runs["run_dir"]]]
    chosen = runs.sort_values("seed").groupby(["dataset", "model", "regularizer"], sort=False).head(1)
    found: Grams = {}
    for record in chosen.to_dict("records"):
        read = read_gram(Path(record["run_dir"]) / "gram.csv")
        if read is not None:
            layer, matrix = read
            found.setdefault((record["dataset"], record["model"]), (layer, {}))[1][record["regularizer"]] = (
                matrix
            )
    return found
