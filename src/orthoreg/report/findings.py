"""The findings: a Markdown block generated from the report's tables alone (their CSV files), so the
numbers a README quotes are the tables' and a test can prove it.

Per claim: the verdict with its estimate, 95% interval, p and n (table `claims`); per method: test
accuracy at each depth with its 95% t-interval and n (table `main_accuracy`); the cost of each method
relative to `none` (table `cost`); what the runs cost the machine (table `budget`). The words around
the block are the author's; the block sits between FINDINGS_START and FINDINGS_END, and
`check_findings` says whether a text holds exactly this block.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from orthoreg.files import save_text
from orthoreg.report.analysis.order import REFERENCE, ordered

FINDINGS_START = "<!-- findings:start -->"
FINDINGS_END = "<!-- findings:end -->"
SOURCES = ("claims", "main_accuracy", "cost", "budget")


def read_tables(tables_dir: Path | str) -> dict[str, pd.DataFrame]:
    """The CSV files of the tables the findings come from, those that exist."""
    folder = Path(tables_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"tables folder {folder} does not exist; run `orthoreg report` first")
    return {
        name: pd.read_csv(folder / f"{name}.csv") for name in SOURCES if (folder / f"{name}.csv").is_file()
    }


def _number(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:.4g}"


def _cells(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_cells(header), _cells(["---"] * len(header)), *(_cells(row) for row in rows)]


def claims_lines(claims: pd.DataFrame | None) -> list[str]:
    """Per claim row: the verdict, estimate, 95% interval, p (t and sign-flip) and n."""
    lines = ["### The paper's claims", ""]
    if claims is None or claims.empty:
        return [*lines, "No claim could be tested on these runs (no table `claims`)."]
    header = [
        "claim",
        "dataset",
        "scope",
        "quantity",
        "comparison",
        "estimate",
        "95% interval",
        "p (t)",
        "p (sign-flip)",
        "n",
        "verdict",
    ]
    rows = [
        [
            row.claim,
            row.dataset,
            row.scope,
            row.quantity,
            row.comparison,
            "-" if pd.isna(row.estimate) else f"{_number(row.estimate)} {row.unit}",
            "-" if pd.isna(row.ci95_low) else f"[{_number(row.ci95_low)}, {_number(row.ci95_high)}]",
            "-" if pd.isna(row.p_t) else f"{row.p_t:.3g}",
            "-" if pd.isna(row.p_sign_flip) else f"{row.p_sign_flip:.3g}",
            "-" if pd.isna(row.n) else str(int(row.n)),
            row.verdict,
        ]
        for row in claims.itertuples()
    ]
    return [*lines, *_grid(header, rows)]


def _accuracy_cell(row) -> str:
    if pd.isna(row.ci95_low_pct):
        return f"{row.mean_accuracy_pct:.2f} (n={int(row.n)})"
    return f"{row.mean_accuracy_pct:.2f} [{row.ci95_low_pct:.2f}, {row.ci95_high_pct:.2f}] (n={int(row.n)})"


def _by_method(frame: pd.DataFrame, text) -> list[str]:
    """One grid per dataset: a line per method, a column per model (report orders), '-' not run."""
    lines = []
    for dataset in sorted(set(frame["dataset"])):
        part = frame[frame["dataset"] == dataset]
        models = ordered(part["model"], "model")
        cells = {(r.regularizer, r.model): text(r) for r in part.itertuples()}
        rows = [
            [method, *(cells.get((method, model), "-") for model in models)]
            for method in ordered(part["regularizer"], "regularizer")
        ]
        lines += ["", f"{dataset}:", "", *_grid(["method", *models], rows)]
    return lines


def accuracy_lines(main: pd.DataFrame | None) -> list[str]:
    """Per dataset, method and model: mean test accuracy (%), its 95% t-interval and n."""
    lines = ["### Test accuracy (%) by method and depth: mean [95% t-interval] (n seeds)"]
    if main is None or main.empty:
        return [*lines, "", "No finished run (no table `main_accuracy`)."]
    return lines + _by_method(main, _accuracy_cell)


def _ratio_cell(row) -> str:
    return "-" if pd.isna(row.ratio_to_none) else f"{row.ratio_to_none:.2f}×"


def cost_lines(cost: pd.DataFrame | None) -> list[str]:
    """Per dataset, method and model: seconds per epoch relative to `none` (ratio of means)."""
    lines = [f"### Cost per epoch relative to `{REFERENCE}` (ratio of mean seconds per epoch)"]
    if cost is None or cost.empty:
        return [*lines, "", "No run recorded its time (no table `cost`)."]
    measures = ", ".join(sorted(set(cost["measure"])))
    return [*lines, "", f"Measured as: {measures}.", *_by_method(cost, _ratio_cell)]


def budget_lines(budget: pd.DataFrame | None) -> list[str]:
    """Per stage: the records that timed it and their summed CPU and wall hours."""
    lines = ["### What the runs cost (hours summed over jobs)"]
    if budget is None or budget.empty:
        return [*lines, "", "No record times its stage (no table `budget`)."]
    rows = [
        [row.stage, str(int(row.records)), _number(row.cpu_hours), _number(row.wall_hours)]
        for row in budget.itertuples()
    ]
    return [*lines, "", *_grid(["stage", "records", "CPU hours", "wall hours"], rows)]


def findings_markdown(tables: Mapping[str, pd.DataFrame]) -> str:
    """The findings block (without its markers) from the `claims`, `main_accuracy`, `cost` and `budget`
    frames."""
    lines = [
        "Generated by `orthoreg report` from its tables `claims`, `main_accuracy`, `cost` and `budget`; "
        "do not edit by hand.",
        "",
        *claims_lines(tables.get("claims")),
        "",
        *accuracy_lines(tables.get("main_accuracy")),
        "",
        *cost_lines(tables.get("cost")),
        "",
        *budget_lines(tables.get("budget")),
    ]
    return "\n".join(lines) + "\n"


def findings_section(block: str) -> str:
    """The block between its markers, as it is pasted into a README."""
    return f"{FINDINGS_START}\n{block}{FINDINGS_END}\n"


def write_findings(tables_dir: Path | str) -> Path:
    """findings.md in the tables folder, generated from the CSV files written there."""
    block = findings_markdown(read_tables(tables_dir))
    return save_text(findings_section(block), Path(tables_dir) / "findings.md")


def check_findings(text: str, tables_dir: Path | str) -> None:
    """Raise ValueError unless `text` (a README) holds, between the markers, exactly the block the
    tables in `tables_dir` generate; the message names the first line that differs."""
    if text.count(FINDINGS_START) != 1 or text.count(FINDINGS_END) != 1:
        raise ValueError(f"the text needs {FINDINGS_START} and {FINDINGS_END} exactly once each")
    start = text.index(FINDINGS_START) + len(FINDINGS_START)
    end = text.index(FINDINGS_END)
    if end < start:
        raise ValueError(f"{FINDINGS_END} comes before {FINDINGS_START}")
    quoted = text[start:end].strip("\n").splitlines()
    generated = findings_markdown(read_tables(tables_dir)).strip("\n").splitlines()
    for number, (line, expected) in enumerate(zip(quoted, generated, strict=False), start=1):
        if line != expected:
            raise ValueError(f"findings line {number} reads {line!r}; the tables give {expected!r}")
    if len(quoted) != len(generated):
        raise ValueError(f"the findings have {len(quoted)} lines; the tables give {len(generated)}")
