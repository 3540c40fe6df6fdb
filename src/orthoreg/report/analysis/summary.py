"""Summaries over seeds shared by every table: n, mean and sample std per cell, and which cell is best.

A cell is marked best only among cells of at least MIN_N_FOR_A_VERDICT seeds, and only where two such
cells compete, so a lone or under-replicated cell never looks like a winner.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from orthoreg.report.analysis import stats

CELL = ["dataset", "model", "regularizer"]
ENOUGH = stats.MIN_N_FOR_A_VERDICT
# two means closer than this (in the table's unit) tie for best
BEST_TOLERANCE = 1e-9


def optional(value: float | None) -> float | None:
    """None for a missing std (a single seed) so CSVs show an empty cell, never the string 'nan'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def seed_summary(frame: pd.DataFrame, value: str, group: list[str]) -> pd.DataFrame:
    """Per group: n, mean and sample std (ddof=1, empty for one seed) of `value` over seeds."""
    rows = []
    for key, part in frame.groupby(group, sort=False, dropna=False):
        mean, std, n = stats.mean_std(part[value])
        rows.append({**dict(zip(group, key, strict=True)), "n": n, "mean": mean, "std": optional(std)})
    return pd.DataFrame(rows, columns=[*group, "n", "mean", "std"])


def mean_interval(mean: float, std: float | None, n: int) -> tuple[float | None, float | None]:
    """The two-sided LEVEL Student-t interval of a mean from its sample std and n (None below n = 2)."""
    if std is None or n < 2 or math.isnan(std):
        return None, None
    estimate = stats.Estimate(mean, std / math.sqrt(n), float(n - 1), n)
    return estimate.interval


def mark_best(
    frame: pd.DataFrame,
    value: str,
    within: list[str],
    *,
    goal: str | pd.Series = "max",
    eligible: pd.Series | None = None,
) -> pd.Series:
    """True where `value` is the best of its group; goal is 'max', 'min' or 'one' (closest to 1), or
    a Series of those per row. Ties within BEST_TOLERANCE are all marked. With `eligible`, only those
    rows compete, and a group is marked only where at least two of them compete."""
    if eligible is not None:
        marked = pd.Series(False, index=frame.index, dtype=bool)
        competing = frame[eligible]
        if len(competing):
            counts = competing.groupby([competing[column] for column in within], dropna=False)[
                value
            ].transform("size")
            competing = competing[counts >= 2]
            marked[competing.index] = mark_best(
                competing, value, within, goal=goal if isinstance(goal, str) else goal[competing.index]
            )
        return marked
    goals = goal if isinstance(goal, pd.Series) else pd.Series(goal, index=frame.index)
    unknown = sorted(set(goals) - {"max", "min", "one"})
    if unknown:
        raise ValueError(f"unknown goal {unknown}; accepted: max, min, one")
    if not len(frame):
        return pd.Series(False, index=frame.index, dtype=bool)
    score = pd.Series(np.nan, index=frame.index, dtype=float)
    values = frame[value].astype(float)
    score[goals == "max"] = -values[goals == "max"]
    score[goals == "min"] = values[goals == "min"]
    one = goals == "one"
    score[one] = np.abs(np.log(values[one].where(values[one] > 0)))
    best = score.groupby([frame[column] for column in within], dropna=False).transform("min")
    return (score - best).abs() <= BEST_TOLERANCE
