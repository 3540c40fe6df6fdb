"""The GPU check in one call: everything the project needs to know from a lent GPU, measured by one
prepared command into one JSON file.

A GPU is lent rarely and briefly (about 15 minutes in all, one command at most 10), with nothing to
download there, so this command runs every CUDA path of the project once and holds the measurements
against their targets: device and peak bf16 matmul rate; the engine's training throughput and
model-FLOP utilisation (eager and torch.compile'd) against a plain PyTorch step; every registered
regulariser's cost in a WRN-28-10 and a ResNet-110 step; the projected GPU-hours of the paper grid; a
short real Fashion-MNIST training; a SIGKILL-and-resume through the CLI; two processes claiming the
GPU; and `pytest -m cuda`.

Each part runs under its own deadline, a share of --budget (time a part leaves unused passes to the
parts after it), so a slow part is cut, recorded as {"status": "cut", "reason": ...} with whatever it
measured so far, and never the whole run. The JSON is rewritten after every part, so even a run killed
from outside returns what it measured. `--device cpu --quick` runs every part in a tiny form in under a
minute (resnet8 stands in for every model), so the normal test suite keeps this command working. The
parts live in benchmarks/gpucheck/ (one module each, under parts/).

    PYTHONPATH=src python benchmarks/gpu_check.py --out results/gpu_check.json \\
        --fashion-mnist-dir FOLDER_WITH_THE_FOUR_IDX_GZ_FILES          # on the lent GPU
    PYTHONPATH=src python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from gpucheck import parts  # noqa: F401  (registers the parts, in the order they run)
from gpucheck.harness import PARTS, Context, child_environment, report, run_parts
from gpucheck.plan import FULL, QUICK
from gpucheck.printing import target_lines

from orthoreg.data import prepare_dataset
from orthoreg.data.fashion_mnist import DEBIAN_DIR
from orthoreg.data.fashion_mnist import VARIABLE as FASHION_MNIST_VARIABLE
from orthoreg.files import save_json
from orthoreg.provenance import now


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    descriptions = PARTS.describe()
    listing = "\n".join(f"  {part.name}: {descriptions[part.name]}" for part in PARTS.in_order())
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog=f"the parts, in the order they run:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument(
        "--quick", action="store_true", help="every part in a tiny form (CI; under a minute on a CPU)"
    )
    parser.add_argument("--out", type=Path, default=Path("results/gpu_check.json"), help="the JSON written")
    parser.add_argument(
        "--fashion-mnist-dir",
        default=os.environ.get(FASHION_MNIST_VARIABLE, str(DEBIAN_DIR)),
        help=f"folder with the four Fashion-MNIST IDX .gz files for the real training (default: "
        f"${FASHION_MNIST_VARIABLE}, else {DEBIAN_DIR})",
    )
    parser.add_argument(
        "--grid",
        nargs="+",
        default=None,
        metavar="CONFIG",
        help="pipeline config files the projection prices, each merged over the one before (default: "
        "config/config.yaml, the paper grid; e.g. config/config.yaml config/study.yaml config/study_cifar.yaml)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help=f"seconds for all parts together (default {FULL.budget:g}; {QUICK.budget:g} with --quick)",
    )
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = (QUICK if args.quick else FULL).budget
    if args.budget <= 0:
        parser.error(f"--budget must be a positive number of seconds, got {args.budget:g}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    args.started, args.started_at = time.monotonic(), now()
    child_env = child_environment()
    if args.device == "cuda" and "CUDA_VISIBLE_DEVICES" not in os.environ:
        # one GPU for every in-process part, as each pipeline job has, set before CUDA is first asked
        # (without it the engine would claim another GPU's lock for each Trainer on a multi-GPU
        # machine); child processes see every GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = "0"
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit(
            "gpu_check: --device cuda, but torch sees no CUDA device; use --device cpu (with --quick for CI)"
        )
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        plan = QUICK if args.quick else FULL
        if args.grid:
            plan = dataclasses.replace(plan, grid=tuple(args.grid))
        context = Context(args, device, plan, Path(work), child_env)
        if context.plan.threads is not None:
            torch.set_num_threads(context.plan.threads)
        prepare_dataset("synthetic", context.data)
        run_parts(context, args.started + args.budget, args.out)
        result = report(context)
    save_json(result, args.out)
    print("\n".join(target_lines(result["targets"])))
    statuses = {name: record["status"] for name, record in context.parts.items()}
    print(f"\n{json.dumps(statuses)}\nwrote {args.out} after {result['wall_seconds']} s")
    return 1 if "error" in statuses.values() else 0


if __name__ == "__main__":
    sys.exit(main())
