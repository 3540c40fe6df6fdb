"""Drawing shared by the figure families: lines through measured points only, one figure per
(dataset, model) pair, and titles that say what the lines and bands are.

A regulariser's line breaks where it lacks a value others have, every band says what spread over how
many seeds it shows, and regularisers whose curves are identical are drawn once and labelled `a = b`
instead of hiding one under the other.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from orthoreg.report.analysis.curves import curves, merge_identical, seed_counts
from orthoreg.report.analysis.order import ordered
from orthoreg.report.figures.style import shared_legend
from orthoreg.report.registry import Drawn


def pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(dataset, model) pairs present, in report order."""
    present = {(d, m) for d, m in zip(frame["dataset"], frame["model"], strict=True)}
    models = ordered([m for _, m in present], "model")
    return sorted(present, key=lambda pair: (pair[0], models.index(pair[1])))


def seeds_note(frame: pd.DataFrame) -> str:
    """'mean over n = 3 seeds; band: ±1 sample sd' (or the range of n, or no band for one seed)."""
    low, high = seed_counts(frame)
    n = f"n = {low}" if low == high else f"n = {low}-{high}"
    band = "; band: ±1 sample sd over seeds" if high > 1 else " (one seed: no band)"
    return f"lines: mean over {n} seeds{band}"


def draw_lines(axis: Axes, frame: pd.DataFrame, x: str, y: str, styles: dict[str, dict]) -> None:
    """One line (means) and band (±1 sd) per regulariser, NaN-broken where it has no measurement."""
    series = curves(frame, x, y)
    grid = sorted(set().union(*(curve.index for curve in series.values()))) if series else []
    positions = np.asarray(grid, dtype=float)
    for names, curve in merge_identical(series):
        style = styles[names[0]]
        full = curve.reindex(grid)
        middle = full["mean"].to_numpy(float)
        axis.plot(
            positions,
            middle,
            color=style["color"],
            marker=style["marker"],
            dashes=style["dashes"],
            markersize=4,
            label=" = ".join(names) + (" (identical)" if len(names) > 1 else ""),
        )
        spread = full["std"].to_numpy(float)
        if np.isfinite(spread).any():
            axis.fill_between(
                positions, middle - spread, middle + spread, color=style["color"], alpha=0.15, linewidth=0
            )


def per_pair(
    frame: pd.DataFrame, stem: str, draw: Callable[[pd.DataFrame, str, str], tuple[dict, Figure]]
) -> list[Drawn]:
    """One figure per (dataset, model) pair of `frame`, named `stem_dataset_model`: `draw(rows, dataset,
    model)` returns the facts its caption states and the figure (dataset and model are added)."""
    drawn = []
    for dataset, model in pairs(frame) if len(frame) else []:
        rows = frame[(frame["dataset"] == dataset) & (frame["model"] == model)]
        facts, figure = draw(rows, dataset, model)
        drawn.append(
            Drawn(f"{stem}_{dataset}_{model}", figure, {"dataset": dataset, "model": model, **facts})
        )
    return drawn


def titled(figure: Figure, title: str, note: str) -> None:
    figure.suptitle(f"{title}\n{note}", fontsize=8)


def finish(figure: Figure, axes: list[Axes], title: str, note: str) -> Figure:
    """One legend below the panels and a title that says what the lines and bands are."""
    shared_legend(figure, axes)
    titled(figure, title, note)
    return figure
