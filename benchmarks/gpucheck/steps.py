"""The engine's training step, built exactly as `orthoreg train` builds it, and timed: what the
throughput, compiled, regularizers, projection and data-loading parts measure. Every trainer here
trains on the synthetic set (3x32x32, 10 classes: CIFAR's shapes) prepared in the scratch folder."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from timing import best_seconds, synchronize
from torch.utils.flop_counter import FlopCounterMode

from gpucheck.harness import Context, Deadline, release_memory
from gpucheck.rounding import rounded
from gpucheck.targets import throughput_rows
from orthoreg.config import TrainConfig
from orthoreg.data import TensorLoader
from orthoreg.train import Trainer, make_train_step, test_pass

Batch = tuple[torch.Tensor, torch.Tensor]
Step = Callable[[torch.Tensor, torch.Tensor, float], object]


def engine_trainer(
    context: Context, model: str, *, regularizer: str = "none", compile: bool = False
) -> Trainer:
    """The engine's Trainer for `model` with `regularizer`, calibrated as before a run's first step:
    Sequential(Normalize, net), the OrthogonalityRegularizer (a hard constraint parametrises the net
    there, before the optimiser is built), SGD Nesterov, bf16 autocast + channels-last where the device
    computes bf16 natively."""
    config = TrainConfig(
        model=model,
        dataset="synthetic",
        regularizer=regularizer,
        batch_size=context.plan.batch,
        device=context.device.type,
        compile=compile,
    )
    config.validate()
    trainer = Trainer(config, context.work / "bench", context.data, verbose=False)
    trainer.calibrate()
    return trainer


def first_batch(trainer: Trainer) -> Batch:
    """An augmented training batch as the engine's loader yields it (on the device, channels-last)."""
    return next(trainer.loader.batches(trainer.loader.plan_epoch(trainer.generator)))


def plain_step(trainer: Trainer) -> Step:
    """The textbook PyTorch step the engine is held against, on the same model and optimiser: forward
    under the same autocast, cross-entropy, backward, SGD step."""
    model, optimizer, autocast = trainer.forward, trainer.optimizer, trainer.autocast

    def step(x: torch.Tensor, y: torch.Tensor, progress: float) -> None:
        with autocast():
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def repeated(step: Step, batches: Callable[[], Batch], steps: int) -> Callable[[], None]:
    """`steps` training steps back to back (no host sync between them), one timed call."""

    def run() -> None:
        for _ in range(steps):
            step(*batches(), 0.0)

    return run


def step_seconds(
    context: Context, steps: Mapping[str, Step], batch: Batch, rounds: int, warmup: int
) -> dict[str, float]:
    """Seconds per training step of each step function on `batch`: the best of `rounds` interleaved
    rounds after `warmup` untimed ones."""
    actions = {label: repeated(step, lambda: batch, context.plan.steps) for label, step in steps.items()}
    best = best_seconds(actions, context.device, rounds, warmup)
    return {label: seconds / context.plan.steps for label, seconds in best.items()}


def train_flops(trainer: Trainer, batch: Batch) -> int:
    """FLOPs of one training step (forward and backward), counted by torch.utils.flop_counter on the
    eager model."""
    step = make_train_step(
        trainer.model, trainer.regularizer, trainer.optimizer, trainer.autocast, trainer.memory_format
    )
    with FlopCounterMode(display=False) as counter:
        step(*batch, 0.0)
    return counter.get_total_flops()


def test_images_per_second(context: Context, trainer: Trainer) -> float:
    """Images per second of the engine's per-epoch test pass (fp32, eval batch) on random images."""
    count = context.plan.test_images
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (count,), generator=generator)
    loader = TensorLoader(
        images,
        labels,
        trainer.config.eval_batch_size,
        shuffle=False,
        augment=False,
        device=context.device,
        memory_format=trainer.memory_format,
    )
    trainer.model.eval()
    best = best_seconds({"test": lambda: test_pass(trainer.forward, loader)}, context.device, 2, 1)
    trainer.model.train()
    return count / best["test"]


def measured_flops(context: Context, model: str) -> int | None:
    """The eager row's FLOP count of `model`, when the throughput part has counted it."""
    for row in throughput_rows(context.parts):
        if row["model"] == model and row["mode"] == "eager":
            return int(row["gflop_per_step"] * 1e9)
    return None


def compile_seconds(context: Context, trainer: Trainer, batch: Batch) -> float:
    """Seconds of the first (compiling) step of a torch.compile'd trainer."""
    started = time.perf_counter()
    trainer.train_step(*batch, 0.0)
    synchronize(context.device)
    return round(time.perf_counter() - started, 1)


def throughput_row(context: Context, model: str, *, compile: bool) -> dict[str, Any]:
    """The engine's step against the plain step on one model: images/s, their ratio, and (with a FLOP
    count and the measured peak) TFLOP/s and model-FLOP utilisation."""
    trainer = engine_trainer(context, model, compile=compile)
    batch = first_batch(trainer)
    row: dict[str, Any] = {
        "model": model,
        "mode": "compiled" if compile else "eager",
        "batch": context.plan.batch,
    }
    if compile:
        row["compile_seconds"] = compile_seconds(context, trainer, batch)
    steps = {"engine": trainer.train_step, "plain": plain_step(trainer)}
    seconds = step_seconds(context, steps, batch, context.plan.rounds, context.plan.warmup)
    images = context.plan.batch
    row.update(
        engine_images_per_s=round(images / seconds["engine"]),
        plain_images_per_s=round(images / seconds["plain"]),
        engine_over_plain=rounded(seconds["engine"] / seconds["plain"]),
    )
    flops = measured_flops(context, model) or train_flops(trainer, batch)
    peak = context.parts.get("environment", {}).get("peak_tflops")
    achieved = flops / seconds["engine"] / 1e12
    row.update(gflop_per_step=rounded(flops / 1e9), tflops=rounded(achieved))
    row["mfu"] = rounded(achieved / peak) if peak else None
    if not compile:
        row["test_images_per_s"] = round(test_images_per_second(context, trainer))
    return row


def measure_rows(context: Context, record: dict, deadline: Deadline, *, compile: bool) -> None:
    """A throughput row per model of the plan into record["rows"], kept as each model finishes."""
    record["rows"] = []
    for model in context.plan.models:
        deadline.check(f"compiling {model}" if compile else f"{model} (eager)")
        record["rows"].append(throughput_row(context, model, compile=compile))
        if compile:
            torch._dynamo.reset()
        release_memory(context.device)
