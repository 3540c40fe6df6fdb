"""`orthoreg train`: train one model with one regulariser into a run directory (resumes when re-run).

Every flag but --out, --data-dir and --quiet is generated from a TrainConfig field (orthoreg.config).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orthoreg.config import add_arguments, from_arguments
from orthoreg.train import TrainingInterrupted, train


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one (model, dataset, regulariser, seed) run; re-running the command resumes it",
        description="Train a model into --out: model.pt, history.csv, run.json, and checkpoint.pt for "
        "resuming (written every epoch and on SIGTERM/SIGUSR1, after which the command exits with "
        "128 + the signal number). The dataset must be prepared first with `orthoreg prepare-data`.",
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="prepared datasets root")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = from_arguments(args)
    try:
        record = train(config, args.out, args.data_dir, verbose=not args.quiet)
    except TrainingInterrupted as interrupted:
        print(f"train: {interrupted}", flush=True)
        return interrupted.exit_code
    print(
        f"train: {config.model} on {config.dataset} with {config.regularizer}, seed {config.seed}: "
        f"test accuracy {record['test_accuracy']:.4f} after {record['epochs_completed']} epochs -> {args.out}"
    )
    return 0
