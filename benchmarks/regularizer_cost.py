"""Cost of the regularisers, printed from one run (ratios, never asserted: these machines are noisy).

For each model and penalty: milliseconds of value + backward of the batched `model_penalty`, the same
for a plain per-layer Python loop of `penalty`, and their ratio; then the ratio of a full SGD training
step (batch 128, 3x32x32 by default; bf16 autocast on a GPU) with the regulariser to the plain step.
A hard constraint (`orthogonal`, `spectral`) has no penalty to time: its cost is the parametrisation
inside the step, which the step timing measures. A model is a registered name or `torchvision:<name>`
(torchvision's model, built without weights). Timing is benchmarks/timing.py's: the best of
interleaved rounds.

    python benchmarks/regularizer_cost.py                              # CPU, the default models
    python benchmarks/regularizer_cost.py --models resnet110 --step-models resnet56 --step-regularizers dn_strict
    python benchmarks/regularizer_cost.py --device cuda --models wrn28_10 resnet110   # on a GPU
    python benchmarks/regularizer_cost.py --models torchvision:convnext_tiny --batch-size 32 --image-size 224
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
import torchvision
from timing import best_seconds
from torch import nn

import orthoreg
from orthoreg.regularizers import regularized_layers, regularizer_spec

MODELS = ["resnet20", "resnet56", "resnet110", "wrn16_8"]
TORCHVISION = "torchvision:"


def is_constraint(name: str) -> bool:
    """Whether `name` is a hard constraint: a parametrisation of the kernels, applied once when its
    OrthogonalityRegularizer is built, with a penalty of 0 and its cost inside every forward pass."""
    return regularizer_spec(name).constrain is not None


def build(name: str, device: torch.device) -> nn.Module:
    """A registered model, or torchvision's `name` after the prefix, freshly initialised, 10 classes."""
    if name.startswith(TORCHVISION):
        model = torchvision.models.get_model(name.removeprefix(TORCHVISION), weights=None, num_classes=10)
    else:
        model = orthoreg.build_model(name, num_classes=10)
    return model.to(device)


def penalty_actions(model: nn.Module, name: str) -> dict[str, Callable[[], None]]:
    """Value + backward of the batched model penalty and of a per-layer loop of `penalty` (each layer's
    stride passed where the penalty reads it)."""
    if is_constraint(name):
        raise ValueError(f"{name!r} is a hard constraint: it has no penalty to time, only a step")
    layers = regularized_layers(model)
    takes_stride = "stride" in orthoreg.regularizer_options(name)

    def batched() -> None:
        model.zero_grad(set_to_none=True)
        orthoreg.model_penalty(name, model).backward()

    def looped() -> None:
        model.zero_grad(set_to_none=True)
        total = sum(
            orthoreg.penalty(
                name, layer.weight, groups=layer.groups, **({"stride": layer.stride} if takes_stride else {})
            )
            for layer in layers
        )
        total.backward()

    return {"batched": batched, "loop": looped}


def step_action(
    model: nn.Module, name: str | None, device: torch.device, batch: int, amp: bool, size: int = 32
) -> Callable[[], None]:
    """One SGD step of its own copy of `model` (a hard constraint parametrises the copy): forward,
    cross-entropy [+ lambda * penalty], backward, update."""
    model = copy.deepcopy(model)
    regularizer = orthoreg.OrthogonalityRegularizer(model, name, lam=1e-4) if name else None
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=generator).to(device)
    labels = torch.randint(10, (batch,), generator=generator).to(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(images), labels)
        if regularizer is not None:
            loss = loss + regularizer(0.0)
        loss.backward()
        optimizer.step()

    return step


def print_penalty_costs(models: Sequence[str], names: Sequence[str], args: argparse.Namespace) -> None:
    """The batched model penalty against a per-layer loop, per model and (soft) penalty."""
    device, width = torch.device(args.device), max(len(name) for name in ["model", *models])
    print("\nvalue + backward of model_penalty: batched by shape vs a per-layer loop of penalty()")
    print(
        f"{'model':<{width}} {'layers':>6} {'regulariser':<11} {'batched ms':>10} {'loop ms':>9} {'loop/batched':>12}"
    )
    for model_name in models:
        model = build(model_name, device)
        count = len(regularized_layers(model))
        for name in names:
            best = best_seconds(penalty_actions(model, name), device, args.repeats)
            print(
                f"{model_name:<{width}} {count:>6} {name:<11} {best['batched'] * 1e3:>10.2f} "
                f"{best['loop'] * 1e3:>9.2f} {best['loop'] / best['batched']:>12.2f}",
                flush=True,
            )


def print_step_costs(models: Sequence[str], names: Sequence[str], args: argparse.Namespace) -> None:
    """A training step with each regulariser against the plain step, per model."""
    device = torch.device(args.device)
    amp, width = device.type == "cuda", max(len(name) for name in ["model", *models])
    print(
        f"\ntraining step, batch {args.batch_size} x 3 x {args.image_size} x {args.image_size}"
        f"{' bf16' if amp else ''}: with the regulariser / without"
    )
    print(f"{'model':<{width}} {'regulariser':<11} {'plain ms':>9} {'step ms':>9} {'ratio':>6}")
    for model_name in models:
        model = build(model_name, device)
        if amp:
            model = model.to(memory_format=torch.channels_last)
        for name in names:
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


def parse_arguments() -> argparse.Namespace:
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
    if args.step_models is None:
        args.step_models = args.models
    if args.step_regularizers is None:
        args.step_regularizers = args.regularizers
    return args


def main() -> None:
    args = parse_arguments()
    print(
        f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"best of {args.repeats} interleaved rounds"
    )
    constraints = [name for name in args.regularizers if is_constraint(name)]
    if constraints:
        print(f"{', '.join(constraints)}: hard constraints, no penalty to time (their cost is in the step)")
    penalties = [name for name in args.regularizers if name not in constraints]
    if penalties:
        print_penalty_costs(args.models, penalties, args)
    if args.step_models and args.step_regularizers:
        print_step_costs(args.step_models, args.step_regularizers, args)


if __name__ == "__main__":
    main()
