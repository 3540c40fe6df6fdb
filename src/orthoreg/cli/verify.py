"""`orthoreg verify`: retrain committed runs and compare their measurements with the committed ones."""

from __future__ import annotations

import argparse
from pathlib import Path

from orthoreg.verify import Verdict, machine_line, verify


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="retrain committed runs (a random sample, or named) and compare eval.json exactly",
        description="Retrain each chosen run from its run.json's config in a scratch folder, evaluate it "
        "as its eval.json records, and compare every measured value with the committed one. On a "
        "machine with the recorded torch version, CPU instruction set and thread count they must agree "
        "exactly (exit 2 when they do not); elsewhere the differences are reported with the reason.",
    )
    parser.add_argument("--runs", type=Path, default=Path("results/study"), help="folder of committed runs")
    parser.add_argument("--sample", type=int, default=3, help="runs drawn at random (default 3)")
    parser.add_argument(
        "--run", type=Path, action="append", default=[], help="a run folder to verify (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draw")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.set_defaults(func=run)


def describe(verdict: Verdict) -> list[str]:
    if verdict.exact:
        return [f"verify: {verdict.run_dir}: all {verdict.compared} measured values agree exactly"]
    expectation = "expected to agree exactly" if verdict.expected_exact else "; ".join(verdict.reasons)
    lines = [
        f"verify: {verdict.run_dir}: {len(verdict.differences)} of {verdict.compared} values differ ({expectation})"
    ]
    for name, committed, again in verdict.differences:
        gap = ""
        if isinstance(committed, (int, float)) and isinstance(again, (int, float)):
            gap = f" (difference {again - committed:+.3g})"
        lines.append(f"  {name}: committed {committed!r}, re-run {again!r}{gap}")
    return lines


def run(args: argparse.Namespace) -> int:
    print(machine_line())
    verdicts = verify(args.runs, args.data_dir, sample=args.sample, named=args.run, seed=args.seed)
    for verdict in verdicts:
        print("\n".join(describe(verdict)))
    failed = [verdict for verdict in verdicts if verdict.expected_exact and not verdict.exact]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(verdicts)} runs differ where they must agree exactly")
    return 0
