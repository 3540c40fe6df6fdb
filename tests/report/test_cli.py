"""`orthoreg report` on the command line: --runs, --tables, --figures and --expected, and a missing
runs folder refused by name."""

import argparse
import json

import pandas as pd
import pytest
from fake_runs import PNG_MAGIC, make_run

from orthoreg.cli import report as report_cli


def report_parser() -> argparse.ArgumentParser:
    """Only the report sub-command, so this test does not depend on the other CLI modules."""
    parser = argparse.ArgumentParser(prog="orthoreg")
    report_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_report(tmp_path, capsys):
    make_run(tmp_path / "results", "cifar10", "resnet20", "none", 0, 0.9, robustness=False)
    make_run(tmp_path / "results", "cifar10", "resnet20", "dn_strict", 0, 0.95, robustness=False)
    # the grid names the two runs made above and an absent one; a run outside the grid is not read
    make_run(tmp_path / "results" / "other_config", "cifar10", "resnet20", "none", 0, 0.1, robustness=False)
    expected = [
        {
            "dataset": "cifar10",
            "model": "resnet20",
            "regularizer": regularizer,
            "seed": 0,
            "ablation": None,
            "run_dir": str(tmp_path / "results" / "runs" / "cifar10" / "resnet20" / regularizer / "seed0"),
        }
        for regularizer in ("none", "dn_strict", "fro")
    ]
    (tmp_path / "grid.json").write_text(json.dumps(expected))
    args = report_parser().parse_args(
        [
            "report",
            "--runs",
            str(tmp_path / "results"),
            "--tables",
            str(tmp_path / "tables"),
            "--figures",
            str(tmp_path / "figures"),
            "--expected",
            str(tmp_path / "grid.json"),
        ]
    )
    assert args.func(args) == 0
    assert "2 runs" in capsys.readouterr().out
    assert (tmp_path / "tables" / "significance.csv").exists()
    assert len(pd.read_csv(tmp_path / "tables" / "missing_runs.csv")) == 1
    assert (tmp_path / "figures" / "training_curves_cifar10_resnet20.png").read_bytes().startswith(PNG_MAGIC)
    args = report_parser().parse_args(["report", "--runs", str(tmp_path / "missing")])
    with pytest.raises(FileNotFoundError, match="not a directory"):
        args.func(args)
