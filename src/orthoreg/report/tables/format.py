"""Number text and long-to-wide display grids shared by the tables."""

from __future__ import annotations

import math

import pandas as pd

from orthoreg.report.analysis.order import ordered

NOT_RUN = "-"


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


def p_text(p: float) -> str:
    return "-" if pd.isna(p) else f"{p:.3g}"


def interval_text(low: float | None, high: float | None, digits: int = 2, *, signed: bool = True) -> str:
    """'[+1.20, +3.40]' ('-' where the interval does not exist, below n = 2)."""
    if low is None or pd.isna(low):
        return "-"
    number = signed_text if signed else lambda value, digits: f"{value:.{digits}f}"
    return f"[{number(low, digits)}, {number(high, digits)}]"


def n_range(counts: pd.Series) -> str:
    """'n = 3' or 'n = 2-3' for the seed counts of a table."""
    low, high = int(counts.min()), int(counts.max())
    return f"n = {low}" if low == high else f"n = {low}-{high}"


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


def bold_column(display: pd.DataFrame, column: str, flags: pd.Series) -> pd.DataFrame:
    """A bold mask marking `flags` in one column of `display` and nothing else."""
    bold = pd.DataFrame(False, index=display.index, columns=display.columns)
    bold[column] = flags.to_numpy(dtype=bool)
    return bold
