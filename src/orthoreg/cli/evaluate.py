"""`orthoreg evaluate`: clean accuracy, calibration, near-orthogonality and features of a finished run."""

from __future__ import annotations

import argparse

from orthoreg.cli.options import add_device_arguments, add_run_arguments
from orthoreg.evaluate import evaluate_run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained run: accuracy, top-5, loss, ECE, orthogonality per layer, features",
        description="Read the run in --run (model.pt, run.json) and its dataset's test split, and write "
        "eval.json, layers.csv and spectra.csv beside them. The dataset must be prepared first with "
        "`orthoreg prepare-data`.",
    )
    add_run_arguments(parser)
    parser.add_argument("--limit-test", type=int, default=None, help="use the first N test images")
    parser.add_argument("--batch-size", type=int, default=500)
    add_device_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = evaluate_run(
        args.run,
        args.data_dir,
        limit_test=args.limit_test,
        batch_size=args.batch_size,
        device=args.device,
        amp=args.amp,
    )
    top5 = "n/a" if result["top5_accuracy"] is None else f"{result['top5_accuracy']:.4f}"
    print(
        f"evaluate: {args.run}: accuracy {result['test_accuracy']:.4f}, top-5 {top5}, "
        f"loss {result['test_loss']:.4f}, ECE {result['ece']:.4f} on {result['n_test']} images"
    )
    return 0
