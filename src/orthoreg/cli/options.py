"""Arguments several sub-commands share: the finished run they read, the prepared data, the device
and the forward pass's fast path."""

from __future__ import annotations

import argparse
from pathlib import Path

from orthoreg.devices import DEVICES
from orthoreg.precision import AMP_MODES


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=Path, required=True, help="run directory holding model.pt and run.json")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="prepared datasets root")


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto picks CUDA when present")
    parser.add_argument(
        "--amp",
        choices=AMP_MODES,
        default="off",
        help="forward passes in bf16 autocast: auto = where the hardware computes bf16 natively; off = fp32",
    )
