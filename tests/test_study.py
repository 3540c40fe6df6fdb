"""The study's committed results (README, "The study"): each record is a finished run of
config/study.yaml in the folder its settings name, with its provenance and without weights; the
tables and figures are what `orthoreg report` makes of those records, to the byte; the README's
findings are those tables'."""

import argparse
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orthoreg import grid
from orthoreg.cli import report as report_cli
from orthoreg.config import recipe_digest
from orthoreg.report.findings import check_findings

ROOT = Path(__file__).resolve().parents[1]
STUDY = Path("results/study")
TABLES = Path("results/tables/study")
FIGURES = Path("figures/study")
EXPECTED = STUDY / "grids" / "study.json"
RECORDS = {
    "run.json",
    "history.csv",
    "curve.csv",
    "eval.json",
    "layers.csv",
    "spectra.csv",
    "gram.csv",
    "robustness.json",
}
PROVENANCE = ("git_commit", "git_dirty", "versions", "cpu", "wall_seconds")


def study_config() -> dict:
    configs = [yaml.safe_load((ROOT / "config" / name).read_text()) for name in ("config.yaml", "study.yaml")]
    return grid.merge_configs(*configs)


def committed_runs() -> list[Path]:
    return sorted(path.parent for path in (ROOT / STUDY).rglob("run.json"))


def test_the_study_is_committed_as_records_without_weights():
    runs = committed_runs()
    assert len(runs) >= 100, f"{len(runs)} study runs committed"
    for run in runs:
        names = {path.name for path in run.iterdir()}
        assert names <= RECORDS, f"{run}: {sorted(names - RECORDS)} is not a record the study ships"
        assert {"run.json", "history.csv"} <= names


def test_each_run_is_a_run_of_the_study_in_the_folder_its_settings_name():
    config = study_config()
    planned = grid.all_runs(config)
    expected = {record["run_dir"] for record in json.loads((ROOT / EXPECTED).read_text())}
    assert expected == {str(STUDY / path) for path in planned}
    for run in committed_runs():
        path = str(run.relative_to(ROOT / STUDY))
        assert path in planned, f"{path} is not a run of config/study.yaml"
        record = json.loads((run / "run.json").read_text())
        digest = recipe_digest(grid.train_config(planned[path], config))
        assert path.split("/")[-2] == digest and record["test_accuracy"] is not None


def test_every_record_carries_its_provenance():
    for run in committed_runs():
        record = json.loads((run / "run.json").read_text())
        assert record["git_dirty"] is False and len(record["git_commit"]) == 40
        assert record["versions"]["torch"] and record["cpu"]["model"] and record["cpu"]["flags"]
        assert record["wall_seconds"] > 0 and record["cpu_seconds_per_epoch"] > 0
        for name in ("eval.json", "robustness.json"):
            if (run / name).exists():
                provenance = json.loads((run / name).read_text())["provenance"]
                assert all(key in provenance for key in PROVENANCE), f"{run / name}: {sorted(provenance)}"
                assert provenance["git_dirty"] is False and provenance["cpu_seconds"] > 0


@pytest.mark.slow
def test_the_report_regenerates_the_committed_tables_and_figures_to_the_byte(tmp_path, monkeypatch):
    shutil.copytree(ROOT / STUDY, tmp_path / STUDY)
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser(prog="orthoreg")
    report_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    arguments = ["--runs", str(STUDY), "--tables", str(TABLES), "--figures", str(FIGURES)]
    args = parser.parse_args(["report", *arguments, "--expected", str(EXPECTED)])
    assert args.func(args) == 0
    for folder in (TABLES, FIGURES):
        committed = sorted(path.name for path in (ROOT / folder).iterdir())
        assert committed == sorted(path.name for path in folder.iterdir())
        for name in committed:
            assert (folder / name).read_bytes() == (ROOT / folder / name).read_bytes(), folder / name


def study_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## The study")
    return readme[start : readme.index("\n## ", start + 1)]


def test_the_readme_findings_are_the_study_tables():
    check_findings((ROOT / "README.md").read_text(), ROOT / TABLES)


def test_the_readme_quotes_the_learning_curve_and_the_count_of_the_committed_runs():
    # the learning curve's rows of ablation.md, as readers see them: `| epochs | ... | 1 | 90.15 ± 0.33 (n=6) * |`
    rows = re.findall(
        r"^\| epochs \| fashion_mnist \| resnet20 \| (\d+) \| ([\d.]+)[^|]*\(n=(\d+)\)",
        (ROOT / TABLES / "ablation.md").read_text(),
        re.MULTILINE,
    )
    assert [int(epochs) for epochs, _, _ in rows] == [1, 2, 4]
    points = [f"{mean} %" for _, mean, _ in rows]
    n = [int(count) for _, _, count in rows]
    quoted = (
        f"{points[0]} after one pass (the main grid's runs, n = {n[0]}), {points[1]} after two and "
        f"{points[2]} after four (n = {n[1]} each)"
    )
    assert n[1] == n[2]
    section = " ".join(study_section().split())
    assert quoted in section
    planned, committed = len(json.loads((ROOT / EXPECTED).read_text())), len(committed_runs())
    count = f"all {planned} of its runs" if committed == planned else f"{committed} of its {planned} runs"
    assert count in section


def spoken(names: list[str]) -> str:
    """`a, b and c`, as the README lists methods."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def test_the_readme_quotes_the_significant_gains_and_the_cost_as_the_tables_give_them():
    section = " ".join(study_section().split())
    significance = pd.read_csv(ROOT / TABLES / "significance.csv")
    gains = significance[significance["significant"] & (significance["mean_difference_pp"] > 0)]
    for model, depth in (("resnet8", "ResNet-8"), ("resnet14", "ResNet-14"), ("resnet20", "ResNet-20")):
        assert f"{spoken(list(gains[gains['model'] == model]['regularizer']))} at {depth}" in section
    never = [
        name
        for name in significance["regularizer"].unique()
        if name not in set(significance[significance["significant"]]["regularizer"])
    ]
    assert f"{spoken(never)} differ from `none` at no depth" in section
    cpu_hours = pd.read_csv(ROOT / TABLES / "budget.csv").set_index("stage").loc["all stages", "cpu_hours"]
    assert f"{cpu_hours:.2f} CPU-hours, that is {cpu_hours / 2:.1f} hours of this 2-core machine" in section
