"""`orthoreg prepare-data`: fetch and verify a dataset once, before any training job."""

from __future__ import annotations

import argparse

from orthoreg.data import available_datasets, prepare_dataset
from orthoreg.robustness.cifar_c import ARCHIVES, download_cifar_c


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare-data",
        help="download or copy a dataset, verify its checksums, store it for training",
        epilog="CIFAR archives already placed in DATA_DIR/<dataset>/ are verified and used as they are."
        " Fashion-MNIST is read from $ORTHOREG_FASHION_MNIST_DIR when set, else from Debian's"
        " /usr/share/datasets/fashion-mnist or an earlier download; where none exists, the upstream files"
        " are downloaded, else Debian's package dataset-fashion-mnist is installed with apt-get as root, or"
        " through password-less sudo only when ORTHOREG_ALLOW_SUDO=1. Each step is said on stderr.",
    )
    parser.add_argument("--dataset", required=True, help=f"one of: {', '.join(available_datasets())}")
    parser.add_argument("--data-dir", default="data", help="root of the prepared datasets (default: data)")
    parser.add_argument(
        "--cifar-c",
        action="store_true",
        help="instead of the dataset, its official corrupted test set (Hendrycks & Dietterich, for "
        f"{', '.join(ARCHIVES)}): the archive is downloaded, MD5-checked and extracted to DATA_DIR/"
        f"{' or DATA_DIR/'.join(archive.folder for archive in ARCHIVES.values())}; a folder already "
        "there is used as it is",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.cifar_c:
        print(f"{args.dataset}: official corruptions in {download_cifar_c(args.dataset, args.data_dir)}")
        return 0
    marker = prepare_dataset(args.dataset, args.data_dir)
    print(f"{args.dataset}: prepared and verified ({marker})")
    return 0
