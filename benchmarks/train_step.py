"""Training throughput of the engine's own step (`orthoreg.train.make_train_step`).

On CPU: images/s per model at a small batch. On CUDA (or with --flops / --dataloader on CPU):
images/s and achieved TFLOP/s (FLOPs of one forward+backward counted by torch.utils.flop_counter),
the GPU-resident TensorLoader against a standard torch DataLoader + torchvision transforms path, and
the GPU-hours the full paper grid would take at the measured rates. Everything printed is measured in
this run; the images are random uint8 tensors of CIFAR shape (throughput does not depend on content).

    python benchmarks/train_step.py                       # CPU defaults
    python benchmarks/train_step.py --device cuda         # the GPU report
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from orthoreg.data import TensorLoader
from orthoreg.models import Normalize, build_model
from orthoreg.precision import autocast_dtype, autocast_factory
from orthoreg.regularizers import OrthogonalityRegularizer
from orthoreg.train import make_train_step

CPU_MODELS = ["resnet8", "resnet20", "resnet56", "resnet110", "resnet18", "wrn16_8"]
GPU_MODELS = ["resnet20", "resnet32", "resnet56", "resnet110", "resnet18", "resnet34", "wrn16_8", "wrn28_10"]
GPU_HEADLINE = ["resnet18", "resnet110", "wrn16_8", "wrn28_10"]
# the paper grid of config/config.yaml: 2 datasets x 9 regularisers (none + 8 penalties) x 3 seeds
GRID = {
    "datasets": 2,
    "penalised_regularizers": 8,
    "seeds": 3,
    "epochs": 200,
    "train": 50_000,
    "test": 10_000,
}
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def random_cifar(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return images, torch.randint(0, 10, (n,), generator=generator)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Setup:
    """Model, regulariser, optimiser and the engine's train step, built as `orthoreg train` does."""

    def __init__(self, name: str, regularizer: str, device: torch.device, args: argparse.Namespace) -> None:
        self.memory_format = torch.channels_last
        self.model = torch.nn.Sequential(Normalize(MEAN, STD), build_model(name, 10)).to(
            device=device, memory_format=self.memory_format
        )
        self.regularizer = OrthogonalityRegularizer(self.model[1], regularizer, 1e-4)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4
        )
        self.forward = torch.compile(self.model, dynamic=False) if args.compile else self.model
        self.autocast = autocast_factory(autocast_dtype("off" if args.no_amp else "auto", device), device)
        self.step = make_train_step(
            self.forward, self.regularizer, self.optimizer, self.autocast, self.memory_format
        )

    def train_flops(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """FLOPs of one training step (forward, backward, penalty), counted on the eager model."""
        eager = make_train_step(
            self.model, self.regularizer, self.optimizer, self.autocast, self.memory_format
        )
        with FlopCounterMode(display=False) as counter:
            eager(x, y, 0.0)
        return counter.get_total_flops()

    def eval_images_per_second(self, x: torch.Tensor, repeats: int) -> float:
        self.model.eval()
        with torch.no_grad():
            for _ in range(2):
                with self.autocast():
                    self.forward(x.contiguous(memory_format=self.memory_format))
            synchronize(x.device)
            start = time.perf_counter()
            for _ in range(repeats):
                with self.autocast():
                    self.forward(x.contiguous(memory_format=self.memory_format))
            synchronize(x.device)
        self.model.train()
        return repeats * x.shape[0] / (time.perf_counter() - start)


def timed_steps(
    setup: Setup, batches: Callable[[], Any], steps: int, warmup: int, device: torch.device
) -> float:
    """Images per second over `steps` steps after `warmup` untimed ones; batches() yields (x, y)."""
    iterator = batches()
    for _ in range(warmup):
        x, y = next(iterator)
        setup.step(x, y, 0.0)
    synchronize(device)
    start = time.perf_counter()
    images = 0
    for _ in range(steps):
        x, y = next(iterator)
        setup.step(x, y, 0.0)
        images += y.shape[0]
    synchronize(device)
    return images / (time.perf_counter() - start)


def resident_batches(loader: TensorLoader) -> Callable[[], Any]:
    """Endless batches from the GPU-resident loader: a fresh plan (permutation + augmentation) per epoch."""

    def generate() -> Any:
        generator = torch.Generator().manual_seed(0)
        while True:
            yield from loader.batches(loader.plan_epoch(generator))

    return generate


class _AugmentedCifar(torch.utils.data.Dataset):
    """The standard path: per-image torchvision transforms in DataLoader workers."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        from torchvision.transforms import v2

        self.images, self.labels = images, labels
        self.transform = v2.Compose(
            [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def dataloader_batches(
    images: torch.Tensor, labels: torch.Tensor, batch: int, device: torch.device, workers: int
) -> Callable[[], Any]:
    loader = torch.utils.data.DataLoader(
        _AugmentedCifar(images, labels),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )

    def generate() -> Any:
        while True:
            for x, y in loader:
                yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    return generate


def measure(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    n_images = max(
        GRID["train"] if device.type == "cuda" else 0, args.batch_size * (args.steps + args.warmup)
    )
    images, labels = random_cifar(n_images)
    loader = TensorLoader(
        images, labels, args.batch_size, shuffle=True, augment=True, device=device, drop_last=True
    )
    rows = []
    for name in args.models:
        for regularizer in args.regularizers:
            torch.manual_seed(0)
            setup = Setup(name, regularizer, device, args)
            row: dict[str, Any] = {"model": name, "regularizer": regularizer, "batch": args.batch_size}
            row["images_per_s"] = timed_steps(
                setup, resident_batches(loader), args.steps, args.warmup, device
            )
            if args.flops:
                x, y = next(resident_batches(loader)())
                row["gflop_per_image"] = setup.train_flops(x, y) / args.batch_size / 1e9
                row["tflop_per_s"] = row["gflop_per_image"] * row["images_per_s"] / 1e3
            if args.dataloader and name in args.dataloader_models and regularizer == args.regularizers[0]:
                batches = dataloader_batches(images, labels, args.batch_size, device, args.workers)
                row["dataloader_images_per_s"] = timed_steps(setup, batches, args.steps, args.warmup, device)
            if args.projection:
                x, _ = next(resident_batches(loader)())
                row["eval_images_per_s"] = setup.eval_images_per_second(x, args.steps)
            rows.append(row)
            print(json.dumps(row), flush=True)
            del setup
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def projected_gpu_hours(rows: list[dict[str, Any]], baseline: str, penalised: str) -> tuple[float, list[str]]:
    """Hours for the whole grid: each model trains `none` once and 8 penalties at the `penalised` rate."""
    rate = {(row["model"], row["regularizer"]): row for row in rows}
    seconds, lines = 0.0, []
    for model in sorted({row["model"] for row in rows}):
        per_run = {}
        for regularizer in (baseline, penalised):
            row = rate[(model, regularizer)]
            per_epoch = GRID["train"] / row["images_per_s"] + GRID["test"] / row["eval_images_per_s"]
            per_run[regularizer] = per_epoch * GRID["epochs"]
        runs = GRID["datasets"] * GRID["seeds"]
        model_seconds = runs * (per_run[baseline] + GRID["penalised_regularizers"] * per_run[penalised])
        seconds += model_seconds
        lines.append(
            f"  {model:10s} {per_run[baseline] / 3600:6.2f} h/run ({baseline}), "
            f"{per_run[penalised] / 3600:6.2f} h/run ({penalised}), {model_seconds / 3600:8.1f} h in the grid"
        )
    return seconds / 3600, lines


def report(rows: list[dict[str, Any]], args: argparse.Namespace, device: torch.device) -> None:
    label = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\ntraining throughput on {label}, batch {args.batch_size}, compile={args.compile} "
        f"(load average {load}: other processes on the machine slow every figure)"
    )
    header = f"{'model':10s} {'regularizer':12s} {'images/s':>10s}"
    if args.flops:
        header += f" {'GFLOP/img':>10s} {'TFLOP/s':>8s}"
    if args.dataloader:
        header += f" {'DataLoader img/s':>17s} {'resident/DL':>11s}"
    print(header)
    for row in rows:
        line = f"{row['model']:10s} {row['regularizer']:12s} {row['images_per_s']:10.0f}"
        if args.flops:
            line += f" {row['gflop_per_image']:10.3f} {row['tflop_per_s']:8.3f}"
        if "dataloader_images_per_s" in row:
            ratio = row["images_per_s"] / row["dataloader_images_per_s"]
            line += f" {row['dataloader_images_per_s']:17.0f} {ratio:11.2f}"
        print(line)
    if args.projection:
        baseline, penalised = args.regularizers[0], args.regularizers[-1]
        hours, lines = projected_gpu_hours(rows, baseline, penalised)
        n_models = len({row["model"] for row in rows})
        print(
            f"\nprojected paper grid ({n_models} models x {GRID['datasets']} datasets x "
            f"(1 {baseline} + {GRID['penalised_regularizers']} penalties at the {penalised} rate) x "
            f"{GRID['seeds']} seeds x {GRID['epochs']} epochs of {GRID['train']} images + test passes):"
        )
        print("\n".join(lines))
        unit = "GPU-hours" if device.type == "cuda" else "CPU-hours"
        print(f"  total {hours:.0f} {unit} on this device")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument(
        "--regularizers",
        nargs="+",
        default=["none", "dn_relaxed"],
        help="first is the baseline, last the rate used for penalised runs in the projection",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default 32 on CPU, 128 (the recipe) on CUDA"
    )
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5 on CPU, 100 on CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 1 / 20)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--no-amp", action="store_true", help="fp32 on CUDA instead of bf16 autocast")
    parser.add_argument("--flops", action="store_true", default=None, help="count FLOPs (default on CUDA)")
    parser.add_argument(
        "--dataloader",
        action="store_true",
        default=None,
        help="also time a torch DataLoader + torchvision path (default on CUDA)",
    )
    parser.add_argument("--dataloader-models", nargs="+", default=GPU_HEADLINE)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader workers")
    parser.add_argument(
        "--projection",
        action="store_true",
        default=None,
        help="project the paper grid's GPU-hours (default on CUDA)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the measured rows to this file")
    args = parser.parse_args()

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    if cuda:
        torch.backends.cudnn.benchmark = True
    args.models = args.models or (GPU_MODELS if cuda else CPU_MODELS)
    args.batch_size = args.batch_size or (128 if cuda else 32)
    args.steps = args.steps or (100 if cuda else 5)
    args.warmup = args.warmup if args.warmup is not None else (20 if cuda else 1)
    for flag in ("flops", "dataloader", "projection"):
        if getattr(args, flag) is None:
            setattr(args, flag, cuda)
    rows = measure(args, device)
    report(rows, args, device)
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(rows, stream, indent=1)


if __name__ == "__main__":
    main()
