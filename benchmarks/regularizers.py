"""Cost of the regularisers, printed from one run (ratios, never asserted: these machines are noisy).

For each model and regulariser: milliseconds of value + backward of the batched `model_penalty`, the
same for a plain per-layer Python loop of `penalty`, and their ratio; then the ratio of a full SGD
training step with the regulariser to the plain step.

    python benchmarks/regularizers.py                                  # CPU, the issue's models
    python benchmarks/regularizers.py --device cuda --step-models wrn28_10 resnet110   # on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import orthoreg
from orthoreg.regularizers import regularized_layers


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(action: Callable[[], None], device: torch.device, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        action()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def penalty_timings(model: nn.Module, name: str, device: torch.device, repeats: int) -> tuple[float, float]:
    """(batched seconds, per-layer loop seconds) of value + backward."""
    layers = regularized_layers(model)

    def batched() -> None:
        model.zero_grad(set_to_none=True)
        orthoreg.model_penalty(name, model, check_finite=False).backward()

    def looped() -> None:
        model.zero_grad(set_to_none=True)
        total = sum(
            orthoreg.penalty(
                name, layer.module.weight, **({"stride": layer.stride} if name == "ocnn" else {})
            )
            for layer in layers
        )
        total.backward()

    return median_seconds(batched, device, repeats), median_seconds(looped, device, repeats)


def step_seconds(
    model: nn.Module, name: str | None, device: torch.device, batch: int, repeats: int, amp: bool
) -> float:
    """Median seconds of one SGD step (forward, cross-entropy [+ penalty], backward, update)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    images = torch.rand(batch, 3, 32, 32, device=device)
    labels = torch.randint(10, (batch,), device=device)
    regularizer = orthoreg.OrthogonalityRegularizer(model, name, lam=1e-4) if name else None

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(images), labels)
        if regularizer is not None:
            loss = loss + regularizer(0.0)
        loss.backward()
        optimizer.step()

    return median_seconds(step, device, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56", "resnet110", "wrn16_8"])
    parser.add_argument(
        "--regularizers", nargs="+", default=[r for r in orthoreg.available_regularizers() if r != "none"]
    )
    parser.add_argument(
        "--step-models", nargs="*", default=["resnet56"], help="models whose training step is timed"
    )
    parser.add_argument("--step-regularizers", nargs="*", default=None, help="default: --regularizers")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    amp = device.type == "cuda"
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats}"
    )

    print("\nvalue + backward of model_penalty: batched by shape vs a per-layer loop")
    print(
        f"{'model':<10} {'layers':>6} {'regulariser':<11} {'batched ms':>10} {'loop ms':>9} {'loop/batched':>12}"
    )
    for model_name in args.models:
        model = orthoreg.build_model(model_name, num_classes=10).to(device)
        count = len(regularized_layers(model))
        for name in args.regularizers:
            batched, looped = penalty_timings(model, name, device, args.repeats)
            print(
                f"{model_name:<10} {count:>6} {name:<11} {batched * 1e3:>10.2f} {looped * 1e3:>9.2f} {looped / batched:>12.2f}"
            )

    step_regularizers = args.step_regularizers if args.step_regularizers is not None else args.regularizers
    if args.step_models:
        print(
            f"\ntraining step, batch {args.batch_size}{' bf16' if amp else ''}: with the regulariser / without"
        )
        print(f"{'model':<10} {'plain ms':>9} {'regulariser':<11} {'step ms':>9} {'ratio':>6}")
    for model_name in args.step_models:
        model = orthoreg.build_model(model_name, num_classes=10).to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        plain = step_seconds(model, None, device, args.batch_size, args.repeats, amp)
        for name in step_regularizers:
            with_reg = step_seconds(model, name, device, args.batch_size, args.repeats, amp)
            print(
                f"{model_name:<10} {plain * 1e3:>9.1f} {name:<11} {with_reg * 1e3:>9.1f} {with_reg / plain:>6.3f}"
            )


if __name__ == "__main__":
    main()
