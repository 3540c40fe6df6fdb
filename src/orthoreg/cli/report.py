"""`orthoreg report`: aggregate every run directory into tables and figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from orthoreg.report import build_report


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="aggregate run directories into results/tables (csv, md, tex, html; findings.md) "
        "and figures (pdf, png)",
        description="Read every run.json under --runs and the files beside it; write the paper's tables "
        "and figures. Figures whose data do not exist are skipped and listed in the tables README.",
    )
    parser.add_argument("--runs", type=Path, default=Path("results"), help="root searched for run.json")
    parser.add_argument("--tables", type=Path, default=Path("results/tables"), help="output table folder")
    parser.add_argument("--figures", type=Path, default=Path("figures"), help="output figure folder")
    parser.add_argument(
        "--expected",
        type=Path,
        default=None,
        help="JSON list of {dataset, model, regularizer, seed, run_dir}; absent runs go to missing_runs.csv",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    summary = build_report(args.runs, args.tables, args.figures, expected=args.expected)
    print(
        f"report: {summary['n_runs']} runs, {len(summary['tables'])} tables in {args.tables}, "
        f"{len(summary['figures'])} figures in {args.figures}, {len(summary['skipped'])} skipped, "
        f"{len(summary['missing'])} missing runs"
    )
    return 0
