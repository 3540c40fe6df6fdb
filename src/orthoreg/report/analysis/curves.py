"""Lines over seeds for the figures: the mean, sample sd and n at each measured x, regularisers whose
lines coincide grouped together, and the training-curve points of each run.

A training curve is drawn from the finest record a run has: curve.csv (points within epochs, x the
fraction of epochs trained) where the run wrote one, else history.csv (one point per epoch). A curve
of one point says nothing about training, so runs with a single point are left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.order import ordered

IDENTICAL_RTOL = 1e-9
CURVE_COLUMNS = ["epoch", "test_accuracy_pct", "reg_value"]


def curves(frame: pd.DataFrame, x: str, y: str) -> dict[str, pd.DataFrame]:
    """Per regulariser: the mean, sample sd and n of `y` at each x it was measured at."""
    grouped = frame.groupby(["regularizer", x])[y].agg(["mean", "std", "count"]).reset_index()
    return {
        name: part.set_index(x)[["mean", "std", "count"]] for name, part in grouped.groupby("regularizer")
    }


def merge_identical(series: dict[str, pd.DataFrame]) -> list[tuple[list[str], pd.DataFrame]]:
    """Regularisers whose curves coincide (same x, means equal to IDENTICAL_RTOL) grouped together."""
    groups: list[tuple[list[str], pd.DataFrame]] = []
    for name in ordered(series, "regularizer"):
        curve = series[name]
        for names, shown in groups:
            if shown.index.equals(curve.index) and np.allclose(
                shown["mean"], curve["mean"], rtol=IDENTICAL_RTOL, atol=0
            ):
                names.append(name)
                break
        else:
            groups.append(([name], curve))
    return groups


def seed_counts(frame: pd.DataFrame) -> tuple[int, int]:
    """The fewest and most seeds any regulariser of `frame` has (1, 1 without a seed column)."""
    if "seed" not in frame:
        return 1, 1
    counts = frame.groupby(["regularizer"])["seed"].nunique()
    return int(counts.min()), int(counts.max())


def training_points(data: RunData) -> pd.DataFrame:
    """Per main-grid run with two points or more: (epoch, test_accuracy_pct, reg_value) from curve.csv
    where it has one, else from history.csv, with the record they came from (`source`) and the
    number of test images of that per-epoch pass (`test_images`, None: all)."""
    history, curve = data.main(data.history), data.main(data.curve)
    finer = set(curve["run_dir"]) if len(curve) else set()
    frames = [history[~history["run_dir"].isin(finer)].assign(source="history.csv")] if len(history) else []
    if len(curve):
        frames.append(curve.assign(source="curve.csv"))
    if not frames:
        return pd.DataFrame(columns=["dataset", "model", "regularizer", "seed", *CURVE_COLUMNS])
    points = pd.concat(frames, ignore_index=True)
    points = points[points.groupby("run_dir")["epoch"].transform("size") >= 2]
    images = data.runs.set_index("run_dir")["history_test_images"]
    points = points.assign(epoch=points["epoch"].astype(float), test_images=points["run_dir"].map(images))
    return points.reset_index(drop=True)
