"""Formatting helpers shared by the tables: number text, best marking and long-to-wide display grids."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from orthoreg.report.order import ordered

NOT_RUN = "-"
# two means closer than this (in the table's unit) tie for best
BEST_TOLERANCE = 1e-9


def mean_std_text(mean: float, std: float | None, n: int | None = None, digits: int = 2) -> str:
    """'93.12 ± 0.20 (n=3)'; the ± part is left out when there is a single value."""
    text = f"{mean:.{digits}f}"
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += f" ± {std:.{digits}f}"
    if n is not None:
        text += f" (n={n})"
    return text


def signed_text(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}f}"


def general_text(value: float) -> str:
    return f"{value:.4g}"


def optional(value: float | None) -> float | None:
    """None for a missing std (a single seed) so CSVs show an empty cell, never the string 'nan'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


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
    score = pd.Series(np.nan, index=frame.index, dtype=float)
    values = frame[value].astype(float)
    score[goals == "max"] = -values[goals == "max"]
    score[goals == "min"] = values[goals == "min"]
    one = goals == "one"
    score[one] = np.abs(np.log(values[one].where(values[one] > 0)))
    unknown = sorted(set(goals) - {"max", "min", "one"})
    if unknown:
        raise ValueError(f"unknown goal {unknown}; accepted: max, min, one")
    if not len(frame):
        return pd.Series(False, index=frame.index, dtype=bool)
    best = score.groupby([frame[column] for column in within], dropna=False).transform("min")
    return (score - best).abs() <= BEST_TOLERANCE


def pivot_display(
    long: pd.DataFrame,
    rows: list[str],
    column: str,
    text: str,
    best: str | None = "best",
    column_kind: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spread `long` into a grid: one line per distinct `rows` tuple (first-appearance order), one
    column per value of `column` (report order when column_kind is 'regularizer'). Returns the text
    grid and the matching bold mask; absent cells read NOT_RUN."""
    if column_kind is not None:
        values = ordered(long[column], column_kind)
    else:
        values = list(dict.fromkeys(long[column]))
    line_keys = list(dict.fromkeys(tuple(record) for record in long[rows].itertuples(index=False)))
    texts = {key: {value: NOT_RUN for value in values} for key in line_keys}
    flags = {key: {value: False for value in values} for key in line_keys}
    for record in long.to_dict("records"):
        key = tuple(record[name] for name in rows)
        texts[key][record[column]] = record[text]
        flags[key][record[column]] = bool(record[best]) if best else False
    header = [*rows, *[str(value) for value in values]]
    display = pd.DataFrame([[*key, *texts[key].values()] for key in line_keys], columns=header)
    bold = pd.DataFrame(
        [[False] * len(rows) + list(flags[key].values()) for key in line_keys], columns=header
    )
    return display, bold
