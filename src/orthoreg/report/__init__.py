"""`orthoreg report`: aggregate every run directory into the paper's tables and figures.

build_report reads run directories (docs/architecture.md), writes each table as .csv/.md/.tex and each
figure as .pdf/.png, draws only figures whose data exist, removes its own stale outputs, and writes
README.md (methods, skipped outputs, unfinished runs) and index.md (every output, one line each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from orthoreg.files import save_text
from orthoreg.report import figures, tables
from orthoreg.report.collect import RunData, load_runs
from orthoreg.report.missing import missing_runs, missing_table, read_expected
from orthoreg.report.order import REFERENCE
from orthoreg.report.published import published_vs_reproduced
from orthoreg.report.tables_orthogonality import orthogonality_best
from orthoreg.report.tables_robustness import adversarial_table, corruption_table
from orthoreg.report.writers import (
    FIGURE_SUFFIXES,
    TABLE_SUFFIXES,
    Table,
    save_figure,
    write_table,
)

__all__ = ["build_report", "load_runs"]

TABLE_NAMES = (
    "main_accuracy",
    "depth_trend",
    "significance",
    "orthogonality_best",
    "robustness_corruptions",
    "robustness_adversarial",
    "cost",
    "published_vs_reproduced",
    "ablation",
    "missing_runs",
)
FIGURE_NAMES = ("depth_trend", "cost")
FIGURE_PREFIXES = (
    "orthogonality_layers_",
    "cosine_gram_",
    "spectra_",
    "robustness_eps_",
    "robustness_severity_",
    "training_curves_",
    "ablation_",
)
SKIP_REASONS = {
    "main_accuracy": "no finished main-grid run",
    "depth_trend": f"no ResNet/WRN model run with `{REFERENCE}` and a regulariser on a shared seed",
    "significance": f"no regulariser run on a seed that `{REFERENCE}` was also run on",
    "orthogonality_best": "no eval.json orthogonality summary or layers.csv (run `orthoreg evaluate`)",
    "robustness_corruptions": "no corruption records in robustness.json (run `orthoreg robustness`)",
    "robustness_adversarial": "no FGSM/PGD record at eps = 8/255 in robustness.json",
    "cost": "no run records seconds per epoch",
    "ablation": "no ablation runs (run.json ablation is null everywhere)",
}


def _build_tables(data: RunData) -> tuple[list[Table], list[dict]]:
    built, skipped = [], []
    builders = {
        "main_accuracy": tables.main_accuracy,
        "depth_trend": tables.depth_trend,
        "significance": tables.significance,
        "orthogonality_best": orthogonality_best,
        "robustness_corruptions": corruption_table,
        "robustness_adversarial": adversarial_table,
        "cost": tables.cost,
        "ablation": tables.ablation,
    }
    for name, builder in builders.items():
        table = builder(data)
        if table is None:
            skipped.append({"name": name, "kind": "table", "reason": SKIP_REASONS[name]})
        else:
            built.append(table)
    main = next((t.data for t in built if t.name == "main_accuracy"), None)
    runs = data.main(data.runs) if len(data.runs) else None
    epochs = (
        runs.groupby(["dataset", "model", "regularizer"])["epochs_completed"].max().reset_index()
        if runs is not None and len(runs)
        else None
    )
    built.insert(1 if main is not None else 0, published_vs_reproduced(main, epochs))
    return built, skipped


def _draw(data: RunData, built: list[Table]) -> tuple[list[tuple[str, str, object]], list[dict]]:
    by_name = {table.name: table.data for table in built}
    drawn, skipped = [], []
    gram_drawn, gram_skipped, layer_of = figures.gram_figures(data)
    results = [
        figures.depth_trend_figure(by_name.get("depth_trend")),
        figures.layer_figures(data),
        (gram_drawn, gram_skipped),
        figures.spectra_figures(data, layer_of),
        figures.severity_figures(data),
        figures.eps_figures(data),
        figures.cost_figure(by_name.get("cost")),
        figures.training_figures(data),
        figures.ablation_figures(data),
    ]
    for made, missed in results:
        drawn += made
        skipped += [{"name": name, "kind": "figure", "reason": reason} for name, reason in missed]
    return drawn, skipped


def _remove_stale(folder: Path, suffixes: tuple[str, ...], managed, keep: set[str]) -> None:
    """Delete this report's own outputs from an earlier call that were not produced this time, so a
    figure or table whose data are gone does not linger."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.suffix in suffixes and path.stem not in keep and managed(path.stem):
            path.unlink()


def _markdown_list(entries: list[tuple[str, str]]) -> list[str]:
    return [f"- `{name}`: {text}" for name, text in entries] or ["- (none)"]


def _write_readme(tables_dir: Path, built: list[Table], skipped: list[dict], data: RunData) -> None:
    lines = [
        "# Report tables",
        "",
        "Generated by `orthoreg report`; do not edit by hand.",
        "",
        "## Methods",
        "",
        "- Accuracies are percentages; mean ± sample standard deviation (ddof=1) over seeds, n seeds.",
        "- Gains and differences against `none` are paired by seed (only seeds both were run on).",
        f"- {next((t.caption for t in built if t.name == 'significance'), 'Significance: not computed.')}",
        "",
        "## Tables",
        "",
    ]
    lines += _markdown_list([(t.name, t.caption) for t in built])
    lines += ["", "## Skipped (no data)", ""]
    lines += _markdown_list([(item["name"], f"{item['kind']}: {item['reason']}") for item in skipped])
    lines += ["", "## Unfinished runs (left out of every table)", ""]
    lines += _markdown_list([(item["run_dir"], item["reason"]) for item in data.incomplete])
    save_text("\n".join(lines) + "\n", tables_dir / "README.md")


def _write_index(tables_dir: Path, figures_dir: Path, built: list[Table], drawn, skipped: list[dict]) -> None:
    lines = ["# Index of the report", "", f"## Tables (`{tables_dir}`, each as .csv, .md and .tex)", ""]
    lines += _markdown_list([(t.name, t.description) for t in built])
    lines += ["", f"## Figures (`{figures_dir}`, each as .pdf and .png)", ""]
    lines += _markdown_list([(name, text) for name, text, _ in drawn])
    lines += ["", "## Not drawn or not tabulated (no data)", ""]
    lines += _markdown_list([(item["name"], item["reason"]) for item in skipped])
    save_text("\n".join(lines) + "\n", tables_dir / "index.md")


def build_report(
    runs_root: Path | str,
    tables_dir: Path | str,
    figures_dir: Path | str,
    expected: Path | str | list[dict] | None = None,
) -> dict[str, Any]:
    """Aggregate every run under runs_root into tables_dir and figures_dir.

    Returns {n_runs, tables: {name: [paths]}, figures: {name: [paths]}, skipped: [{name, kind, reason}],
    missing: [expected runs absent or incomplete], incomplete: [unfinished runs found]}.
    """
    runs_root, tables_dir, figures_dir = Path(runs_root), Path(tables_dir), Path(figures_dir)
    expected_records = read_expected(expected) if expected is not None else None
    data = load_runs(runs_root)

    built, skipped = _build_tables(data)
    missing = pd.DataFrame()
    if expected_records is not None:
        missing = missing_runs(expected_records, data)
        built.append(missing_table(missing, len(expected_records)))
    drawn, figure_skips = _draw(data, built)
    skipped += figure_skips

    written_tables = {table.name: [str(p) for p in write_table(table, tables_dir)] for table in built}
    written_figures = {
        name: [str(p) for p in save_figure(figure, figures_dir, name)] for name, _, figure in drawn
    }
    _remove_stale(tables_dir, TABLE_SUFFIXES, lambda stem: stem in TABLE_NAMES, set(written_tables))
    _remove_stale(
        figures_dir,
        FIGURE_SUFFIXES,
        lambda stem: stem in FIGURE_NAMES or stem.startswith(FIGURE_PREFIXES),
        set(written_figures),
    )
    _write_readme(tables_dir, built, skipped, data)
    _write_index(tables_dir, figures_dir, built, drawn, skipped)
    return {
        "n_runs": len(data.runs),
        "tables": written_tables,
        "figures": written_figures,
        "skipped": skipped,
        "missing": missing.to_dict("records"),
        "incomplete": data.incomplete,
    }
