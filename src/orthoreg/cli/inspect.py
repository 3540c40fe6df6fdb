"""`orthoreg inspect`: how orthogonal are the layers of a model, a run or any saved state dict."""

from __future__ import annotations

import argparse
from pathlib import Path

from orthoreg.inspect import figure_format, format_table, inspect_target, write_spectrum_figure, write_table


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="per-layer near-orthogonality of a registered model, a run directory or a state dict file",
        description="Print one row per convolution (and, with --include-linear, per linear layer) with "
        "the near-orthogonality measures of orthoreg.metrics.layer_metrics. TARGET is a registered model "
        "name (freshly initialised), torchvision:<name> (a torchvision model without weights), a run "
        "directory or its model.pt, or any file saved with "
        "torch.save(model.state_dict()); for a bare state dict the 4-D and 2-D weight tensors are read "
        "directly, so no model class is needed.",
    )
    parser.add_argument("target", metavar="CHECKPOINT_OR_MODEL_NAME")
    parser.add_argument("--csv", type=Path, default=None, help="also write the full table to this CSV")
    parser.add_argument(
        "--figure", type=Path, default=None, help="write the singular-value spectra (.pdf or .png)"
    )
    parser.add_argument("--include-linear", action="store_true", help="measure linear layers too")
    parser.add_argument(
        "--conv-input-size",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="also give the exact singular values of each convolution operator on an HxW input (FFT)",
    )
    parser.add_argument(
        "--rho", type=float, default=None, help="add each layer's k under dn_relaxed's rho rule with this rho"
    )
    parser.add_argument("--num-classes", type=int, default=10, help="for a model name (default 10)")
    parser.add_argument("--in-channels", type=int, default=3, help="for a model name (default 3)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.figure is not None:
        figure_format(args.figure)
    report = inspect_target(
        args.target,
        include_linear=args.include_linear,
        conv_input_size=None if args.conv_input_size is None else tuple(args.conv_input_size),
        num_classes=args.num_classes,
        in_channels=args.in_channels,
        rho=args.rho,
    )
    print(f"inspect: {report.source}: {len(report.rows)} layers")
    print(format_table(report.rows))
    if args.csv is not None:
        write_table(report.rows, args.csv)
        print(f"inspect: table -> {args.csv}")
    if args.figure is not None:
        write_spectrum_figure(report.spectra, args.figure)
        print(f"inspect: figure -> {args.figure}")
    return 0
