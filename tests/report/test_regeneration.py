"""`orthoreg report` regenerates byte-identical tables and figures from the same run records (run.json,
eval.json, history.csv, curve.csv, layers.csv, spectra.csv and robustness.json; no model.pt), run
twice in one place or once more in a copy of the records elsewhere."""

import argparse
import shutil
from pathlib import Path

import pytest
from fake_runs import build_tree, make_run

from orthoreg.cli import report as report_cli

COMMITTED = {
    "run.json",
    "eval.json",
    "history.csv",
    "curve.csv",
    "layers.csv",
    "spectra.csv",
    "robustness.json",
}


def orthoreg_report(folder: Path, monkeypatch) -> dict[str, bytes]:
    """Run `orthoreg report` on folder/results with relative paths; every file it wrote, by name."""
    monkeypatch.chdir(folder)
    parser = argparse.ArgumentParser(prog="orthoreg")
    report_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", "--runs", "results", "--tables", "tables", "--figures", "figures"])
    assert args.func(args) == 0
    written = sorted([*Path("tables").iterdir(), *Path("figures").iterdir()])
    return {str(path): path.read_bytes() for path in written}


@pytest.mark.slow
def test_the_same_records_give_the_same_bytes(tmp_path, monkeypatch):
    first = tmp_path / "first"
    build_tree(first / "results")
    for seed in (0, 1):
        make_run(first / "results", "cifar10", "resnet8", "none", seed, 0.8, epochs=1, curve_points=4)
    records = {path.name for path in (first / "results").rglob("*") if path.is_file()}
    assert records <= COMMITTED
    once = orthoreg_report(first, monkeypatch)
    assert {name.rsplit(".", 1)[1] for name in once} == {"csv", "md", "tex", "html", "pdf", "png"}
    assert "figures/training_curves_cifar10_resnet8.png" in once
    assert orthoreg_report(first, monkeypatch) == once
    elsewhere = tmp_path / "elsewhere" / "clone"
    shutil.copytree(first / "results", elsewhere / "results")
    assert orthoreg_report(elsewhere, monkeypatch) == once
