"""`orthoreg prepare-data`: fetch and verify a dataset once, before any training job."""

from __future__ import annotations

import argparse

from orthoreg.data import available_datasets, prepare_dataset


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare-data",
        help="download or copy a dataset, verify its checksums, store it for training",
        epilog="CIFAR archives already placed in DATA_DIR/<dataset>/ are verified and used as they are."
        " Fashion-MNIST is read from $ORTHOREG_FASHION_MNIST_DIR when set, else from Debian's"
        " /usr/share/datasets/fashion-mnist; where neither exists, Debian's package dataset-fashion-mnist is"
        " installed with apt-get (as root or with password-less sudo), else the upstream files are"
        " downloaded.",
    )
    parser.add_argument("--dataset", required=True, help=f"one of: {', '.join(available_datasets())}")
    parser.add_argument("--data-dir", default="data", help="root of the prepared datasets (default: data)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    marker = prepare_dataset(args.dataset, args.data_dir)
    print(f"{args.dataset}: prepared and verified ({marker})")
    return 0
