"""Cost of the regularisers, printed from one run (ratios, never asserted: these machines are noisy).

For each model and regulariser: milliseconds of value + backward of the batched `model_penalty`, the
same for a plain per-layer Python loop of `penalty`, and their ratio; then the ratio of a full SGD
training step (batch 128, 3x32x32 by default; bf16 autocast on a GPU) with the regulariser to the plain
step. A model is a registered name or `torchvision:<name>` (torchvision's model, built without weights).

The variants being compared run interleaved, round by round, and each is reported as its best
(minimum) time over the rounds: on a shared machine other processes only ever add time, so the
minimum is the least disturbed estimate, and interleaving exposes both variants to the same load.

    python benchmarks/regularizers.py                                  # CPU, the issue's models
    python benchmarks/regularizers.py --models resnet110 --step-models resnet56 --step-regularizers dn_strict
    python benchmarks/regularizers.py --device cuda --models wrn28_10 resnet110   # on a GPU
    python benchmarks/regularizers.py --models torchvision:convnext_tiny --batch-size 32 --image-size 224
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import orthoreg
from orthoreg.regularizers import regularized_layers

MODELS = ["resnet20", "resnet56", "resnet110", "wrn16_8"]
TORCHVISION = "torchvision:"


def build(name: str, device: torch.device) -> nn.Module:
    """A registered model, or torchvision's `name` after the prefix, freshly initialised, 10 classes."""
    if name.startswith(TORCHVISION):
        import torchvision

        model = torchvision.models.get_model(name.removeprefix(TORCHVISION), weights=None, num_classes=10)
    else:
        model = orthoreg.build_model(name, num_classes=10)
    return model.to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(
    actions: dict[str, Callable[[], None]], device: torch.device, repeats: int, warmup: int = 2
) -> dict[str, float]:
    """The minimum wall time of each action over `repeats` interleaved rounds."""
    for _ in range(warmup):
        for action in actions.values():
            action()
    synchronize(device)
    best = dict.fromkeys(actions, float("inf"))
    for _ in range(repeats):
        for label, action in actions.items():
            start = time.perf_counter()
            action()
            synchronize(device)
            best[label] = min(best[label], time.perf_counter() - start)
    return best


def penalty_actions(model: nn.Module, name: str) -> dict[str, Callable[[], None]]:
    """Value + backward of the batched model penalty and of a per-layer loop of `penalty`."""
    layers = regularized_layers(model)

    def batched() -> None:
        model.zero_grad(set_to_none=True)
        orthoreg.model_penalty(name, model).backward()

    def looped() -> None:
        model.zero_grad(set_to_none=True)
        total = sum(
            orthoreg.penalty(
                name,
                layer.weight,
                groups=layer.groups,
                **({"stride": layer.stride} if name == "ocnn" else {}),
            )
            for layer in layers
        )
        total.backward()

    return {"batched": batched, "loop": looped}


def step_action(
    model: nn.Module, name: str | None, device: torch.device, batch: int, amp: bool, size: int = 32
) -> Callable[[], None]:
    """One SGD step: forward, cross-entropy [+ lambda * penalty], backward, update."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=generator).to(device)
    labels = torch.randint(10, (batch,), generator=generator).to(device)
    regularizer = orthoreg.OrthogonalityRegularizer(model, name, lam=1e-4) if name else None

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(images), labels)
        if regularizer is not None:
            loss = loss + regularizer(0.0)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=MODELS, help="models whose penalty is timed")
    parser.add_argument(
        "--regularizers", nargs="+", default=[r for r in orthoreg.available_regularizers() if r != "none"]
    )
    parser.add_argument(
        "--step-models",
        nargs="*",
        default=None,
        help="models whose training step is timed (default: --models)",
    )
    parser.add_argument("--step-regularizers", nargs="*", default=None, help="default: --regularizers")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32, help="square input side of the step")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; the best is reported")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    for name in args.regularizers + (args.step_regularizers or []):
        orthoreg.regularizer_options(name)  # an unknown name fails here, before any timing
    device = torch.device(args.device)
    amp = device.type == "cuda"
    step_models = args.models if args.step_models is None else args.step_models
    step_regularizers = args.regularizers if args.step_regularizers is None else args.step_regularizers
    width = max(len(name) for name in ["model", *args.models, *step_models])
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"best of {args.repeats} interleaved rounds"
    )

    print("\nvalue + backward of model_penalty: batched by shape vs a per-layer loop of penalty()")
    print(
        f"{'model':<{width}} {'layers':>6} {'regulariser':<11} {'batched ms':>10} {'loop ms':>9} {'loop/batched':>12}"
    )
    for model_name in args.models:
        model = build(model_name, device)
        count = len(regularized_layers(model))
        for name in args.regularizers:
            best = best_seconds(penalty_actions(model, name), device, args.repeats)
            print(
                f"{model_name:<{width}} {count:>6} {name:<11} {best['batched'] * 1e3:>10.2f} "
                f"{best['loop'] * 1e3:>9.2f} {best['loop'] / best['batched']:>12.2f}",
                flush=True,
            )

    if step_models and step_regularizers:
        print(
            f"\ntraining step, batch {args.batch_size} x 3 x {args.image_size} x {args.image_size}"
            f"{' bf16' if amp else ''}: with the regulariser / without"
        )
        print(f"{'model':<{width}} {'regulariser':<11} {'plain ms':>9} {'step ms':>9} {'ratio':>6}")
    for model_name in step_models if step_regularizers else []:
        model = build(model_name, device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        for name in step_regularizers:
            actions = {
                "plain": step_action(model, None, device, args.batch_size, amp, args.image_size),
                name: step_action(model, name, device, args.batch_size, amp, args.image_size),
            }
            best = best_seconds(actions, device, args.repeats, warmup=1)
            print(
                f"{model_name:<{width}} {name:<11} {best['plain'] * 1e3:>9.1f} {best[name] * 1e3:>9.1f} "
                f"{best[name] / best['plain']:>6.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
