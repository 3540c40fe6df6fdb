"""The GPU proof in one call (issue 14): everything the project needs to know from a lent GPU, measured
by one prepared command into one JSON file.

A GPU is lent rarely and briefly (about 15 minutes in all, one command at most 10), with nothing to
download there, so this script runs every CUDA path of the project once and measures the issue's
targets: device and peak bf16 matmul rate; the engine's training throughput and model-FLOP utilisation
(eager and torch.compile'd) against a plain PyTorch step; each regulariser's cost in a WRN-28-10 and a
ResNet-110 step; the projected GPU-hours of the paper grid; a short real Fashion-MNIST training; a
SIGKILL-and-resume through the CLI; two processes claiming the GPU; and `pytest -m cuda`.

Each part runs under its own deadline, a share of --budget (time a part leaves unused passes to the
parts after it), so a slow part is cut, recorded as {"status": "cut", "reason": ...} with whatever it
measured so far, and never the whole run. The JSON is rewritten after every part, so even a run killed
from outside returns what it measured. `--device cpu --quick` runs every part in a tiny form in under a
minute (resnet8 stands in for the issue's models), so the normal test suite keeps this script working.

    PYTHONPATH=src python benchmarks/gpu_check.py --out results/gpu_check.json \\
        --fashion-mnist-dir FOLDER_WITH_THE_FOUR_IDX_GZ_FILES          # on the lent GPU
    PYTHONPATH=src python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from regularizers import best_seconds, penalty_actions, synchronize  # benchmarks/regularizers.py
from torch.utils.flop_counter import FlopCounterMode
from torchvision.transforms import v2

from orthoreg import __version__
from orthoreg.config import TrainConfig, default_of, to_arguments
from orthoreg.data import TensorLoader, dataset_info, prepare_dataset
from orthoreg.data.fashion_mnist import DEBIAN_DIR, holds_files
from orthoreg.data.fashion_mnist import VARIABLE as FASHION_MNIST_VARIABLE
from orthoreg.devices import LOCK_DIR_ENV
from orthoreg.files import save_json
from orthoreg.grid import all_runs, main_runs, merge_configs, train_config
from orthoreg.models import build_model
from orthoreg.precision import autocast_dtype
from orthoreg.provenance import device_label, git_commit, now
from orthoreg.regularizers import OrthogonalityRegularizer, available_regularizers, schedule_multiplier
from orthoreg.robustness.cifar_c import BENCHMARK_CORRUPTIONS
from orthoreg.robustness.suite import RobustnessSettings, attack_plan
from orthoreg.train import Trainer, make_train_step, test_pass, train

ROOT = Path(__file__).resolve().parents[1]
# the issue's models: its targets name these three
WIDE, DEEP, MID = "wrn28_10", "resnet110", "resnet18"
# throughput models, eager and compiled in this order: the targets' models first, resnet110 (the
# longest compile) last
ISSUE_MODELS = (WIDE, MID, "resnet20", "wrn16_8", DEEP)
GRACE = 5.0  # seconds past its deadline before a part stuck in one long call is interrupted
FULL_BUDGET, QUICK_BUDGET = 460.0, 45.0  # seconds: under 8 minutes on a GPU, 1 on a CI CPU
# record keys part_lines leaves out (tables, or too long to read in a terminal)
DETAIL_KEYS = ("status", "seconds", "allowed_seconds", "reason", "traceback", "claimants", "output_tail")


@dataclass(frozen=True)
class Plan:
    """What the parts measure: the issue's sizes on a GPU, a tiny stand-in with --quick."""

    models: tuple[str, ...]
    stand_in: Mapping[str, str]  # an issue model -> the model measured for it
    batch: int
    steps: int  # training steps per timed call
    rounds: int  # interleaved timed calls; the best is kept
    warmup: int  # untimed calls first (cudnn autotuning, allocator)
    matmul_sizes: tuple[int, ...]
    test_images: int  # images of the timed fp32 test pass
    workers: int  # DataLoader workers of the data-loading comparison
    grid: tuple[str, ...]  # pipeline config files, each merged over the one before
    fashion: Mapping[str, Any]  # TrainConfig fields of the Fashion-MNIST run
    resume: Mapping[str, Any]  # TrainConfig fields of the kill-and-resume run
    lock_hold: float  # seconds each claimant holds the GPU lock
    weights: Mapping[str, float]  # each part's share of the budget
    threads: int | None = None  # torch CPU threads (None: torch's default)
    compile_skip: str | None = None  # why torch.compile is not measured, when it is not


FULL = Plan(
    models=ISSUE_MODELS,
    stand_in={name: name for name in ISSUE_MODELS},
    batch=128,
    steps=10,
    rounds=5,
    warmup=2,
    matmul_sizes=(4096, 8192, 16384),
    test_images=10_000,
    workers=min(8, os.cpu_count() or 1),
    grid=("config/config.yaml",),
    fashion={"model": "resnet20", "epochs": 5, "batch_size": 128},
    resume={"model": "resnet20", "epochs": 4, "batch_size": 128},
    lock_hold=3.0,
    weights={
        "environment": 10,
        "throughput": 45,
        "regularizers": 60,
        "projection": 25,
        "data_loading": 15,
        "fashion_mnist": 40,
        "kill_resume": 45,
        "gpu_lock": 15,
        "pytest_cuda": 60,
        "compiled": 145,
    },
)
QUICK = Plan(
    models=("resnet8",),
    stand_in=dict.fromkeys(ISSUE_MODELS, "resnet8"),
    batch=16,
    steps=1,
    rounds=1,
    warmup=1,
    matmul_sizes=(256, 512),
    test_images=256,
    workers=0,
    grid=("config/config.yaml", "config/ci.yaml"),
    fashion={"model": "resnet8", "epochs": 1, "batch_size": 64, "limit_train": 256, "limit_test": 128},
    resume={
        "model": "resnet8",
        "epochs": 3,
        "batch_size": 64,
        "limit_train": 256,
        "limit_test": 64,
        "threads": 1,
    },
    lock_hold=1.0,
    weights={
        "environment": 2,
        "throughput": 4,
        "regularizers": 5,
        "projection": 1,
        "data_loading": 3,
        "fashion_mnist": 5,
        "kill_resume": 12,
        "gpu_lock": 5,
        "pytest_cuda": 7,
        "compiled": 1,
    },
    threads=1,  # robust on a shared CI machine, where busy-waiting worker threads of torch stall
    compile_skip="--quick: inductor's build of a model takes minutes on a CPU",
)
# the recipe of the short real training: the CPU demo's (config/demo.yaml), which reaches 87 % in
# one pass over 24,000 images
FASHION_RECIPE = {
    "regularizer": "dn_relaxed",
    "lam": 1e-3,
    "lr": 0.15,
    "lr_schedule": "cosine",
    "warmup": 0.1,
    "weight_decay": 5e-5,
    "label_smoothing": 0.1,
    "augment": False,
}


class Cut(Exception):
    """A part ran past its deadline."""


class Skip(Exception):
    """A part that cannot run here; the message says why."""


@dataclass
class Deadline:
    """When a part must stop: `check` between measurements keeps what was measured before it."""

    end: float  # time.monotonic()

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def check(self, next_step: str) -> None:
        if time.monotonic() >= self.end:
            raise Cut(f"deadline reached before {next_step}")


@dataclass
class Context:
    """What every part shares: the arguments, the device, the plan, a scratch folder with the synthetic
    data prepared, and the records of the parts run so far (later parts build on earlier ones)."""

    args: argparse.Namespace
    device: torch.device
    plan: Plan
    work: Path
    child_env: dict[str, str]  # the environment child processes start with
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.work / "data"

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


# ---------------------------------------------------------------- running parts under deadlines


@contextmanager
def alarm(seconds: float, message: str) -> Iterator[None]:
    """Raise Cut(message) in the main thread after `seconds`: the backstop for a part stuck in one long
    call (a torch.compile, a training epoch) that its own deadline checks cannot reach."""

    def interrupt(signum: int, frame: Any) -> None:
        raise Cut(message)

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_part(measure: Callable[..., None], context: Context, deadline: Deadline) -> dict:
    """Run one part into a record: measured, cut (with what it measured before the deadline), skipped
    or error, each but measured with its reason."""
    record: dict[str, Any] = {}
    started = time.monotonic()
    allowed = deadline.remaining()
    try:
        with alarm(allowed + GRACE, f"still running {allowed + GRACE:.0f} s after it started"):
            measure(context, record, deadline)
        status = {"status": "measured"}
    except Cut as cut:
        status = {"status": "cut", "reason": f"{cut} (its deadline: {allowed:.1f} s)"}
    except Skip as skip:
        status = {"status": "skipped", "reason": str(skip)}
    except Exception as error:  # a broken part is recorded; the other parts still run
        status = {
            "status": "error",
            "reason": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(limit=-6),
        }
    finally:
        release_memory(context.device)
    timing = {"seconds": round(time.monotonic() - started, 2), "allowed_seconds": round(allowed, 2)}
    return {**status, **timing, **record}


def release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_parts(context: Context, end: float, out: Path) -> None:
    """Each part gets its weight's share of the time left when it starts, so time a part leaves unused
    passes to the parts after it; the JSON is rewritten after each part."""
    names, weights = list(PARTS), context.plan.weights
    for index, name in enumerate(names):
        start = time.monotonic()
        share = weights[name] / sum(weights[later] for later in names[index:])
        deadline = Deadline(start + max(0.0, end - start) * share)
        print(f"[{start - context.args.started:6.1f} s] {name} ...", flush=True)
        context.parts[name] = run_part(PARTS[name], context, deadline)
        print("\n".join(part_lines(name, context.parts[name])), flush=True)
        save_json(report(context), out)


# ---------------------------------------------------------------- helpers shared by the parts


def rounded(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def engine_trainer(context: Context, model: str, *, compile: bool = False) -> Trainer:
    """The engine's Trainer for `model` with `none` on the synthetic set (3x32x32, 10 classes: CIFAR's
    shapes), built exactly as `orthoreg train` builds it: Sequential(Normalize, net), SGD Nesterov, the
    OrthogonalityRegularizer, bf16 autocast + channels-last where the device computes bf16 natively."""
    config = TrainConfig(
        model=model,
        dataset="synthetic",
        regularizer="none",
        batch_size=context.plan.batch,
        device=context.device.type,
        compile=compile,
    )
    config.validate()
    return Trainer(config, context.work / "bench", context.data, verbose=False)


def first_batch(trainer: Trainer) -> tuple[torch.Tensor, torch.Tensor]:
    """An augmented training batch as the engine's loader yields it (on the device, channels-last)."""
    return next(trainer.loader.batches(trainer.loader.plan_epoch(trainer.generator)))


def engine_step(trainer: Trainer, regularizer: OrthogonalityRegularizer | None = None) -> Callable:
    """The engine's step of `trainer`, or the same step with another regulariser on its model."""
    if regularizer is None:
        return trainer.train_step
    return make_train_step(
        trainer.forward,
        regularizer,
        trainer.optimizer,
        trainer.autocast,
        trainer.memory_format,
        trainer.config.label_smoothing,
    )


def plain_step(trainer: Trainer) -> Callable[[torch.Tensor, torch.Tensor, float], None]:
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


def repeated(
    step: Callable, batches: Callable[[], tuple[torch.Tensor, torch.Tensor]], steps: int
) -> Callable:
    """`steps` training steps back to back (no host sync between them), one timed call."""

    def run() -> None:
        for _ in range(steps):
            step(*batches(), 0.0)

    return run


def step_seconds(
    context: Context, steps: Mapping[str, Callable], batch: tuple[torch.Tensor, torch.Tensor]
) -> dict[str, float]:
    """Seconds per training step of each step function on `batch`: the best of interleaved rounds."""
    plan = context.plan
    actions = {label: repeated(step, lambda: batch, plan.steps) for label, step in steps.items()}
    best = best_seconds(actions, context.device, plan.rounds, plan.warmup)
    return {label: seconds / plan.steps for label, seconds in best.items()}


def train_flops(trainer: Trainer, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
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
        started = time.perf_counter()
        trainer.train_step(*batch, 0.0)
        synchronize(context.device)
        row["compile_seconds"] = round(time.perf_counter() - started, 1)
    seconds = step_seconds(context, {"engine": engine_step(trainer), "plain": plain_step(trainer)}, batch)
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


def measured_rows(context: Context) -> list[dict[str, Any]]:
    return [row for part in ("throughput", "compiled") for row in context.parts.get(part, {}).get("rows", [])]


def measured_flops(context: Context, model: str) -> int | None:
    """The eager row's FLOP count of `model`, when the throughput part has counted it."""
    for row in measured_rows(context):
        if row["model"] == model and row["mode"] == "eager":
            return int(row["gflop_per_step"] * 1e9)
    return None


@contextmanager
def children() -> Iterator[list[subprocess.Popen]]:
    """Child processes started by a part, each in its own session; those still running when the part
    ends (a cut part) are killed with their own children, so no part leaves processes behind."""
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def start(
    started: list[subprocess.Popen], command: Sequence[str], env: Mapping[str, str]
) -> subprocess.Popen:
    process = subprocess.Popen(
        list(command),
        cwd=ROOT,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    started.append(process)
    return process


def finish(process: subprocess.Popen, deadline: Deadline, what: str) -> tuple[str, str]:
    """The process's (stdout, stderr) once it exits; when the deadline comes first, it is killed and
    Cut names the end of what it printed (pytest's progress, say)."""
    try:
        return process.communicate(timeout=deadline.remaining())
    except subprocess.TimeoutExpired as error:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise Cut(
            f"{what} had not finished at the deadline; its last output: {(stdout + stderr)[-1500:]}"
        ) from error


# ---------------------------------------------------------------- the parts


def environment_part(context: Context, record: dict, deadline: Deadline) -> None:
    """Versions, the device, and the peak matmul rate in the dtype the engine's forward pass runs in
    (bf16 on CUDA): the denominator of the model-FLOP utilisation."""
    device = context.device
    record.update(
        device=device_label(device),
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        orthoreg=__version__,
        git_commit=git_commit(),
        cpu_count=os.cpu_count(),
        load_average=round(os.getloadavg()[0], 2),
    )
    if context.cuda:
        properties = torch.cuda.get_device_properties(device)
        record.update(
            gpu=properties.name,
            capability=f"{properties.major}.{properties.minor}",
            memory_gib=round(properties.total_memory / 2**30, 1),
            visible_gpus=torch.cuda.device_count(),
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
    dtype = forward_dtype(device)
    record["peak_dtype"] = str(dtype).removeprefix("torch.")
    record["matmul_tflops"] = {}
    for size in context.plan.matmul_sizes:
        deadline.check(f"the {size}^3 matmul")
        record["matmul_tflops"][str(size)] = rounded(matmul_tflops(size, dtype, device))
        record["peak_tflops"] = max(record["matmul_tflops"].values())


def forward_dtype(device: torch.device) -> torch.dtype:
    """The dtype of the engine's forward pass on `device` with the default `amp` (bf16 autocast where
    the device computes bf16 natively, else fp32)."""
    return autocast_dtype(default_of("amp"), device) or torch.float32


def matmul_tflops(size: int, dtype: torch.dtype, device: torch.device) -> float:
    """TFLOP/s of a square matmul: 2 size^3 FLOPs per product, best of three rounds of ten."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    repeats = 10

    def products() -> None:
        for _ in range(repeats):
            torch.mm(a, b)

    best = best_seconds({"mm": products}, device, 3, 1)["mm"]
    return 2 * size**3 * repeats / best / 1e12


def throughput_part(context: Context, record: dict, deadline: Deadline) -> None:
    """Eager training throughput and MFU of the engine's step against the plain step, per model."""
    record["rows"] = []
    for model in context.plan.models:
        deadline.check(f"{model} (eager)")
        record["rows"].append(throughput_row(context, model, compile=False))
        release_memory(context.device)


def compiled_part(context: Context, record: dict, deadline: Deadline) -> None:
    """The same with torch.compile (as `train --compile` does: the model, dynamic=False), compile time
    included in the record but not in the rates."""
    if context.plan.compile_skip:
        raise Skip(context.plan.compile_skip)
    record["rows"] = []
    for model in context.plan.models:
        deadline.check(f"compiling {model}")
        record["rows"].append(throughput_row(context, model, compile=True))
        torch._dynamo.reset()
        release_memory(context.device)


def regularizers_part(context: Context, record: dict, deadline: Deadline) -> None:
    """Every registered regulariser's cost: first the engine's step with it over the step with `none`
    (all interleaved on one model, eager) on each model, then value + backward of the batched
    `model_penalty` against a per-layer loop of `penalty` (fp32, as the engine runs penalties)."""
    penalties = [name for name in available_regularizers() if name != "none"]
    models = list(dict.fromkeys(context.plan.stand_in[issue_model] for issue_model in (WIDE, DEEP)))
    record["models"] = {}
    for model in models:
        deadline.check(f"the {model} regulariser steps")
        record["models"][model] = regularizer_steps(context, model, penalties)
        release_memory(context.device)
    for model in models:
        net = build_model(model, num_classes=10).to(context.device)
        costs = record["models"][model]
        costs["batched_ms"], costs["loop_ms"], costs["loop_over_batched"] = {}, {}, {}
        for name in penalties:
            deadline.check(f"the {model} {name} penalty timing")
            actions = penalty_actions(net, name)
            best = best_seconds(actions, context.device, context.plan.rounds, context.plan.warmup)
            costs["batched_ms"][name] = rounded(best["batched"] * 1e3)
            costs["loop_ms"][name] = rounded(best["loop"] * 1e3)
            costs["loop_over_batched"][name] = rounded(best["loop"] / best["batched"])
        del net
        release_memory(context.device)


def regularizer_steps(context: Context, model: str, penalties: Sequence[str]) -> dict[str, Any]:
    """Milliseconds of the engine's step with each regulariser on one model, and the ratio to `none`."""
    trainer = engine_trainer(context, model)
    steps = {"none": engine_step(trainer)}
    for name in penalties:
        regularizer = OrthogonalityRegularizer(trainer.model[1], name, trainer.config.lam)
        steps[name] = engine_step(trainer, regularizer)
    seconds = step_seconds(context, steps, first_batch(trainer))
    return {
        "step_ms": {name: rounded(value * 1e3) for name, value in seconds.items()},
        "step_ratio": {name: rounded(seconds[name] / seconds["none"]) for name in penalties},
    }


def merged_config(paths: Sequence[str]) -> dict[str, Any]:
    """The pipeline config as Snakemake builds it: each file merged over the one before (nested
    mappings update, anything else replaces)."""
    return merge_configs(*(yaml.safe_load((ROOT / path).read_text()) for path in paths))


def penalised_fraction(config: TrainConfig) -> float:
    """The fraction of training steps that compute the penalty: none where the scheduled lambda is 0
    (OrthogonalityRegularizer skips it there; the step schedule is 0 from 60 % of training on)."""
    if config.regularizer == "none" or config.lam == 0:
        return 0.0
    points = 1000
    active = sum(schedule_multiplier(config.schedule, (k + 0.5) / points) > 0 for k in range(points))
    return active / points


def robustness_passes(config: Mapping[str, Any], test_size: int) -> tuple[int, int]:
    """Image passes of one run's `orthoreg robustness`: (forward + input-gradient, forward-only), from
    the config's attacks (each spec's steps, then one scoring pass) and corruptions (the 15 official
    CIFAR-C ones at each severity, plus the clean pass)."""
    settings = config["robustness"]
    plan = attack_plan(
        RobustnessSettings(
            eps=tuple(settings["eps"]),
            pgd_steps=tuple(settings["pgd_steps"]),
            severities=tuple(settings["severities"]),
        )
    )
    images = settings.get("limit") or test_size
    gradient = images * sum(spec.steps for spec in plan)
    forward = images * (len(plan) + 1 + len(BENCHMARK_CORRUPTIONS) * len(settings["severities"]))
    return gradient, forward


def model_rates(context: Context, models: Sequence[str], deadline: Deadline) -> dict[str, dict[str, Any]]:
    """Eager training and test-pass rates (images/s) per model: the throughput part's rows, and a
    measurement here for a model it did not reach."""
    rows = {row["model"]: row for row in context.parts.get("throughput", {}).get("rows", [])}
    for model in models:
        if model not in rows:
            deadline.check(f"measuring {model} for the projection")
            rows[model] = throughput_row(context, model, compile=False)
            release_memory(context.device)
    return rows


def penalty_overheads(context: Context) -> dict[str, float]:
    """Per regulariser, the extra step time it costs (ratio - 1), averaged over the models the
    regularisers part measured."""
    measured = context.parts.get("regularizers", {}).get("models", {})
    names = {name for costs in measured.values() for name in costs["step_ratio"]}
    return {
        name: sum(costs["step_ratio"][name] - 1 for costs in measured.values()) / len(measured)
        for name in names
    }


def projection_part(context: Context, record: dict, deadline: Deadline) -> None:
    """Device-hours of the paper grid (`config/config.yaml`; with --quick the CI grid merged over it):
    training from the measured eager step rate (the config's compile setting is off) with each penalty's
    measured overhead over the steps it is active, the per-epoch test pass at its measured rate, and
    evaluation + robustness from counted image passes at the measured rates."""
    config = merged_config(context.plan.grid)
    runs = all_runs(config)
    main = {run.path for run in main_runs(config)}
    configs = {path: train_config(run, config) for path, run in runs.items()}
    if any(run_config.compile for run_config in configs.values()):
        raise Skip("the grid compiles its models; this projection uses eager rates")
    rates = model_rates(context, sorted({run.model for run in runs.values()}), deadline)
    overheads = penalty_overheads(context)
    hours: dict[str, float] = {"training": 0.0, "test_passes": 0.0, "evaluate_and_robustness": 0.0}
    per_model: dict[str, float] = {}
    for path, run in runs.items():
        run_config, info = configs[path], dataset_info(run.dataset)
        rate = rates[run.model]
        train_images = run_config.epochs * (run_config.limit_train or info.train_size)
        slowdown = 1 + overheads.get(run.regularizer, 0.0) * penalised_fraction(run_config)
        seconds = {
            "training": train_images / rate["engine_images_per_s"] * slowdown,
            "test_passes": run_config.epochs
            * (run_config.limit_test or info.test_size)
            / rate["test_images_per_s"],
        }
        evaluate_images = config["evaluate"].get("limit_test") or info.test_size
        gradient, forward = robustness_passes(config, info.test_size) if path in main else (0, 0)
        seconds["evaluate_and_robustness"] = (
            gradient / rate["engine_images_per_s"] + (forward + evaluate_images) / rate["test_images_per_s"]
        )
        for part, value in seconds.items():
            hours[part] += value / 3600
        per_model[run.model] = per_model.get(run.model, 0.0) + sum(seconds.values()) / 3600
    record.update(
        grid=" + ".join(context.plan.grid),
        runs=len(runs),
        device_hours=rounded(sum(hours.values())),
        hours={part: rounded(value) for part, value in hours.items()},
        hours_per_model={model: rounded(value) for model, value in sorted(per_model.items())},
        penalty_overhead={name: rounded(value) for name, value in sorted(overheads.items())},
        method=(
            "measured: eager engine step rate (batch as measured, 3x32x32, 10 classes) and fp32 test-pass "
            "rate per model; each penalty's step overhead averaged over the models the regularisers part "
            "measured, over the steps its lambda is non-zero. Estimated: evaluation and robustness as "
            "counted image passes (attacks' gradient passes at the training rate, forward passes at the "
            "test-pass rate, 15 corruptions); corruption synthesis and process start-up are not counted"
        ),
    )


class AugmentedImages(torch.utils.data.Dataset):
    """The standard path's dataset: per-image torchvision transforms (4-px crop, flip) in the workers."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.transform = v2.Compose(
            [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def dataloader_batches(trainer: Trainer, workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches of the engine's training images through a torch DataLoader, copied to the device."""
    loader = torch.utils.data.DataLoader(
        AugmentedImages(trainer.loader.images.cpu(), trainer.loader.labels.cpu()),
        batch_size=trainer.config.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=trainer.device.type == "cuda",
        persistent_workers=workers > 0,
    )
    while True:
        for x, y in loader:
            x = x.to(trainer.device, non_blocking=True).contiguous(memory_format=trainer.memory_format)
            yield x, y.to(trainer.device, non_blocking=True)


def resident_batches(trainer: Trainer) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches from the engine's device-resident loader, a fresh epoch plan each epoch."""
    while True:
        yield from trainer.loader.batches(trainer.loader.plan_epoch(trainer.generator))


def data_loading_part(context: Context, record: dict, deadline: Deadline) -> None:
    """The engine's device-resident loader (whole-batch augmentation on the device) against a standard
    DataLoader + torchvision path, each feeding the engine's step."""
    model = context.plan.stand_in[MID]
    trainer = engine_trainer(context, model)
    sources = {
        "resident": resident_batches(trainer),
        "dataloader": dataloader_batches(trainer, context.plan.workers),
    }
    steps = context.plan.steps
    actions = {
        label: repeated(trainer.train_step, lambda source=source: next(source), steps)
        for label, source in sources.items()
    }
    best = best_seconds(actions, context.device, context.plan.rounds, context.plan.warmup)
    rates = {label: context.plan.batch * steps / seconds for label, seconds in best.items()}
    record.update(
        model=model,
        workers=context.plan.workers,
        resident_images_per_s=round(rates["resident"]),
        dataloader_images_per_s=round(rates["dataloader"]),
        resident_over_dataloader=rounded(rates["resident"] / rates["dataloader"]),
    )


def fashion_mnist_part(context: Context, record: dict, deadline: Deadline) -> None:
    """A short real training on Fashion-MNIST through `orthoreg.train.train` on the device."""
    folder = Path(context.args.fashion_mnist_dir)
    if not holds_files(folder):
        raise Skip(
            f"{folder} does not hold the four Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...); "
            f"pass --fashion-mnist-dir"
        )
    os.environ[FASHION_MNIST_VARIABLE] = str(folder)
    data = context.work / "fashion-data"
    started = time.monotonic()
    prepare_dataset("fashion_mnist", data)
    record["prepare_seconds"] = round(time.monotonic() - started, 1)
    config = TrainConfig(
        dataset="fashion_mnist", seed=0, device=context.device.type, **FASHION_RECIPE, **context.plan.fashion
    )
    deadline.check("training")
    started = time.monotonic()
    run = train(config, context.work / "fashion-run", data, verbose=False)
    record.update(
        model=config.model,
        regularizer=config.regularizer,
        epochs=run["epochs_completed"],
        train_images=config.limit_train or dataset_info("fashion_mnist").train_size,
        test_images=config.limit_test or dataset_info("fashion_mnist").test_size,
        test_accuracy=rounded(run["test_accuracy"]),
        train_seconds=round(time.monotonic() - started, 1),
        seconds_per_epoch=rounded(run["seconds_per_epoch"]),
        fast_path=run["fast_path"],
    )


def train_command(config: TrainConfig, out: Path, data: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "orthoreg",
        "train",
        *to_arguments(config),
        "--out",
        str(out),
        "--data-dir",
        str(data),
        "--quiet",
    ]


def max_abs_difference(first: Path, second: Path) -> float:
    """The largest |a - b| over every tensor of two model.pt state dicts."""
    a, b = (torch.load(path / "model.pt", weights_only=True) for path in (first, second))
    if a.keys() != b.keys():
        raise ValueError(f"{first} and {second} hold different tensors")
    return max(float((a[key].double() - b[key].double()).abs().max()) for key in a if a[key].numel())


def kill_resume_part(context: Context, record: dict, deadline: Deadline) -> None:
    """SIGKILL `orthoreg train` after its first epoch's checkpoint, rerun it to the end, and compare the
    final weights with an uninterrupted run; a second uninterrupted run gives the device's run-to-run
    difference (nonzero where kernels are not deterministic). The engine has no switch for
    torch.use_deterministic_algorithms, so none is set: the difference is what a user's resume gets."""
    config = TrainConfig(
        dataset="synthetic", regularizer="dn_relaxed", device=context.device.type, **context.plan.resume
    )
    config.validate()
    runs = {label: context.work / "resume" / label for label in ("reference", "resumed", "again")}
    env = context.child_env
    with children() as started:
        reference = start(started, train_command(config, runs["reference"], context.data), env)
        victim = start(started, train_command(config, runs["resumed"], context.data), env)
        checkpoint = runs["resumed"] / "checkpoint.pt"
        while not checkpoint.exists():
            if victim.poll() is not None:
                raise RuntimeError(f"the run to be killed exited first: {victim.communicate()[1][-2000:]}")
            deadline.check("the first checkpoint appeared")
            time.sleep(0.002)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        if (runs["resumed"] / "run.json").exists():
            raise RuntimeError("the run finished before it could be killed; give it more epochs")
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        record.update(killed_at_epoch=state["epoch"], killed_at_batch=state["batch"], epochs=config.epochs)
        resumed = start(started, train_command(config, runs["resumed"], context.data), env)
        again = start(started, train_command(config, runs["again"], context.data), env)
        for label, process in (("reference", reference), ("resumed", resumed), ("again", again)):
            _, stderr = finish(process, deadline, f"the {label} run")
            if process.returncode != 0:
                raise RuntimeError(f"the {label} run exited {process.returncode}: {stderr[-2000:]}")
    resume_difference = max_abs_difference(runs["reference"], runs["resumed"])
    run_to_run = max_abs_difference(runs["reference"], runs["again"])
    accuracies = {
        label: json.loads((path / "run.json").read_text())["test_accuracy"] for label, path in runs.items()
    }
    record.update(
        model=config.model,
        regularizer=config.regularizer,
        deterministic_algorithms=False,
        resume_max_abs_difference=resume_difference,
        run_to_run_max_abs_difference=run_to_run,
        bit_exact=resume_difference == 0.0,
        test_accuracy=accuracies,
    )


CLAIMANT = """\
import json, sys, time
import torch
from orthoreg.devices import claim_gpu
count = torch.cuda.device_count() if sys.argv[1] == "cuda" else 1
asked = time.time()
try:
    index = claim_gpu(count, timeout=float(sys.argv[2]))
except RuntimeError as error:
    print(json.dumps({"gpus": count, "asked": asked, "refused": time.time(), "error": str(error)}))
    sys.exit(0)
claimed = time.time()
time.sleep(float(sys.argv[3]))
print(json.dumps({"gpus": count, "asked": asked, "claimed": claimed, "released": time.time(), "index": index}))
"""


def lock_verdict(first: Mapping[str, Any], second: Mapping[str, Any]) -> tuple[bool | None, str]:
    """Whether two claimants behaved as the lock promises (None: they never contended), and what
    happened, in words. `first` is the one that claimed first."""
    if "error" in second:
        return True, f"the first got GPU {first['index']}; the second timed out: {second['error']}"
    if first["index"] != second["index"]:
        return True, f"each got its own GPU: {first['index']} and {second['index']}"
    waited = second["claimed"] - second["asked"]
    if second["asked"] >= first["released"]:
        return None, "the second asked after the first had released its GPU: no contention shown"
    if second["claimed"] >= first["released"] - 0.05:
        return True, f"the second waited {waited:.1f} s for GPU {first['index']} until the first released it"
    return False, f"both held GPU {first['index']} at once"


def gpu_lock_part(context: Context, record: dict, deadline: Deadline) -> None:
    """Two processes claim a GPU through `orthoreg.devices.claim_gpu` at once (lock files in a scratch
    folder), each holding it a few seconds: with 2+ GPUs they must get different ones; with one, the
    second must wait for it (or time out), never share it."""
    hold = context.plan.lock_hold
    env = {**context.child_env, LOCK_DIR_ENV: str(context.work / "locks")}
    command = [sys.executable, "-c", CLAIMANT, context.device.type, str(4 * hold), str(hold)]
    with children() as started:
        processes = [start(started, command, env) for _ in range(2)]
        outputs = [finish(process, deadline, "a claimant") for process in processes]
    answers = []
    for process, (stdout, stderr) in zip(processes, outputs):
        if process.returncode != 0:
            raise RuntimeError(f"a claimant exited {process.returncode}: {stderr[-2000:]}")
        answers.append(json.loads(stdout))
    answers.sort(key=lambda answer: answer.get("claimed", float("inf")))
    ok, verdict = lock_verdict(*answers)
    record.update(gpus=answers[0]["gpus"], ok=ok, verdict=verdict, claimants=answers)
    if not context.cuda:
        record["note"] = "no GPU: the lock was exercised as for one GPU"


def pytest_part(context: Context, record: dict, deadline: Deadline) -> None:
    """`pytest -m cuda tests/test_cuda.py` in a child process (skipped cleanly without a GPU)."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "cuda",
        "tests/test_cuda.py",
        "-v",
        "-rs",
        "-p",
        "no:cacheprovider",
    ]
    with children() as started:
        process = start(started, command, context.child_env)
        stdout, stderr = finish(process, deadline, "pytest")
    lines = [line for line in stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else stderr.strip()[-300:]
    record.update(
        command=" ".join(command[1:]),
        returncode=process.returncode,
        passed=process.returncode == 0,
        summary=summary,
        counts={
            kind: int(number)
            for number, kind in re.findall(
                r"(\d+) (passed|failed|skipped|xfailed|xpassed|deselected|errors?)", summary
            )
        },
    )
    if process.returncode != 0:
        record["output_tail"] = stdout[-4000:] + stderr[-2000:]


# the parts in the order they run: compiled last, so the time the others leave unused goes to it
PARTS: dict[str, Callable[[Context, dict, Deadline], None]] = {
    "environment": environment_part,
    "throughput": throughput_part,
    "regularizers": regularizers_part,
    "projection": projection_part,
    "data_loading": data_loading_part,
    "fashion_mnist": fashion_mnist_part,
    "kill_resume": kill_resume_part,
    "gpu_lock": gpu_lock_part,
    "pytest_cuda": pytest_part,
    "compiled": compiled_part,
}


# ---------------------------------------------------------------- targets and the printed table


def target(
    what: str, measured: float | None, limit: float, kind: str, model: str, issue_model: str, why: str = ""
) -> dict[str, Any]:
    """One of the issue's targets as measured / target ("at most": met at <= 1; "at least": >= 1)."""
    row: dict[str, Any] = {"target": what, "kind": kind, "limit": limit, "model": model}
    if model != issue_model:
        row["stands_in_for"] = issue_model
    if measured is None:
        return {**row, "measured": None, "ratio": None, "met": None, "reason": why or "not measured"}
    ratio = measured / limit
    return {
        **row,
        "measured": rounded(measured),
        "ratio": rounded(ratio),
        "met": ratio <= 1 if kind == "at most" else ratio >= 1,
    }


def not_measured(context: Context, part: str) -> str:
    record = context.parts.get(part, {})
    return f"the {part} part: {record.get('status', 'not run')} ({record.get('reason', 'no value for this')})"


def targets(context: Context) -> list[dict[str, Any]]:
    """The issue's targets: every penalty under 5 % of a WRN-28-10 bf16 step and under 10 % of a
    ResNet-110 step; WRN-28-10 at >= 35 % MFU and ResNet-18 at >= 25 % (the better of eager and
    compiled); the engine's step within 5 % of the plain PyTorch step (each model and mode)."""
    stand_in = context.plan.stand_in
    costs = context.parts.get("regularizers", {}).get("models", {})
    rows = []
    for issue_model, limit in ((WIDE, 0.05), (DEEP, 0.10)):
        model = stand_in[issue_model]
        for name in sorted(n for n in available_regularizers() if n != "none"):
            ratio = costs.get(model, {}).get("step_ratio", {}).get(name)
            overhead = None if ratio is None else ratio - 1
            what = f"{name} penalty overhead in a {issue_model} step"
            rows.append(
                target(
                    what,
                    overhead,
                    limit,
                    "at most",
                    model,
                    issue_model,
                    not_measured(context, "regularizers"),
                )
            )
    measured = measured_rows(context)
    for issue_model, limit in ((WIDE, 0.35), (MID, 0.25)):
        model = stand_in[issue_model]
        mfus = [row["mfu"] for row in measured if row["model"] == model and row["mfu"] is not None]
        best = max(mfus) if mfus else None
        rows.append(
            target(
                f"{issue_model} MFU",
                best,
                limit,
                "at least",
                model,
                issue_model,
                not_measured(context, "throughput"),
            )
        )
    for row in measured:
        what = f"engine step overhead over plain PyTorch, {row['model']} {row['mode']}"
        rows.append(target(what, row["engine_over_plain"] - 1, 0.05, "at most", row["model"], row["model"]))
    return rows


def report(context: Context) -> dict[str, Any]:
    args = context.args
    return {
        "check": "orthoreg GPU check (benchmarks/gpu_check.py, issue 14)",
        "command": sys.argv,
        "device": context.device.type,
        "quick": args.quick,
        "budget_seconds": args.budget,
        "started": args.started_at,
        "written": now(),
        "wall_seconds": round(time.monotonic() - args.started, 1),
        "parts": context.parts,
        "targets": targets(context),
    }


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[str(value) for value in header], *[["-" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[k]) for row in cells) for k in range(len(header))]
    return ["  " + "  ".join(value.rjust(widths[k]) for k, value in enumerate(row)) for row in cells]


def throughput_lines(record: Mapping[str, Any]) -> list[str]:
    header = ("model", "mode", "engine img/s", "plain img/s", "engine/plain", "GFLOP/step", "TFLOP/s", "MFU")
    keys = (
        "model",
        "mode",
        "engine_images_per_s",
        "plain_images_per_s",
        "engine_over_plain",
        "gflop_per_step",
        "tflops",
        "mfu",
    )
    return table(header, [[row.get(key) for key in keys] for row in record.get("rows", [])])


def regularizer_lines(record: Mapping[str, Any]) -> list[str]:
    lines = []
    for model, costs in record.get("models", {}).items():
        names = list(costs["step_ratio"])
        rows = [
            [
                name,
                costs["step_ms"][name],
                costs["step_ratio"][name],
                *(costs.get(key, {}).get(name) for key in ("batched_ms", "loop_ms", "loop_over_batched")),
            ]
            for name in names
        ]
        lines.append(f"  {model}: step with `none` {costs['step_ms']['none']} ms")
        lines += table(("regulariser", "step ms", "step/none", "batched ms", "loop ms", "loop/batched"), rows)
    return lines


def part_lines(name: str, record: Mapping[str, Any]) -> list[str]:
    """A part's record as a few readable lines."""
    lines = [
        f"== {name}: {record['status']} in {record['seconds']} s (allowed {record['allowed_seconds']} s)"
    ]
    if "reason" in record:
        lines.append(f"  reason: {record['reason']}")
    if name in ("throughput", "compiled"):
        lines += throughput_lines(record)
    elif name == "regularizers":
        lines += regularizer_lines(record)
    else:
        shown = {key: value for key, value in record.items() if key not in DETAIL_KEYS}
        lines += [f"  {key}: {json.dumps(value)}" for key, value in shown.items()]
    return lines


def target_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    def met(row: Mapping[str, Any]) -> str:
        return "-" if row["met"] is None else ("yes" if row["met"] else "NO")

    shown = [
        [
            row["target"] + (f" [{row['model']} stands in]" if "stands_in_for" in row else ""),
            row["kind"],
            row["limit"],
            row["measured"],
            row["ratio"],
            met(row),
        ]
        for row in rows
    ]
    return ["== targets (measured / target; 'at most' met at <= 1, 'at least' at >= 1)"] + table(
        ("target", "kind", "limit", "measured", "measured/target", "met"), shown
    )


# ---------------------------------------------------------------- the command


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
        "--budget",
        type=float,
        default=None,
        help=f"seconds for all parts together (default {FULL_BUDGET:g}; {QUICK_BUDGET:g} with --quick)",
    )
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = QUICK_BUDGET if args.quick else FULL_BUDGET
    if args.budget <= 0:
        parser.error(f"--budget must be a positive number of seconds, got {args.budget:g}")
    return args


def child_environment() -> dict[str, str]:
    """The environment of child processes: this one's, with this repository's src/ importable (a copy
    of the repository on a lent GPU has orthoreg uninstalled)."""
    paths = [str(ROOT / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


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
        context = Context(args, device, QUICK if args.quick else FULL, Path(work), child_env)
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
