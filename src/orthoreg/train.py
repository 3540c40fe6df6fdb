"""The training engine: one (model, dataset, regulariser, seed) run into a run directory.

Why it is shaped this way:
- Exact: every random state and the position inside the epoch are checkpointed (orthoreg.checkpoint),
  and a resumed epoch replays its plan from `TensorLoader.batches(plan, start)`, so a killed and
  resumed run ends bit-identical on the CPU.
- Never loses a run: checkpoint.pt is written at every epoch end and at the first step boundary after
  SIGTERM/SIGUSR1; the process then exits with 128 + signal so a scheduler retries, and the same
  command resumes. A finished run (run.json with the same config) is not retrained.
- Fast: data resident on the device, bf16 autocast of the forward pass and channels_last (CUDA, and
  CPUs with native bf16), optional torch.compile, the penalty in fp32 outside autocast, and no host
  sync per step: losses accumulate on the device and finiteness is read back every `nan_check_every`
  steps on CUDA, still naming the step.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from orthoreg.checkpoint import (
    EpochTotals,
    Position,
    SignalFlag,
    TrainingInterrupted,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
    set_aside,
    usable_checkpoint,
)
from orthoreg.config import TrainConfig, config_differences, recipe_digest
from orthoreg.data import TensorLoader, check_prepared, dataset_info, load_split
from orthoreg.devices import resolve_device
from orthoreg.files import file_digest, save_csv, save_json, save_torch
from orthoreg.metrics import layer_metrics, summarize
from orthoreg.models import model_options
from orthoreg.precision import autocast_dtype, autocast_factory, dtype_name
from orthoreg.progress import Progress
from orthoreg.provenance import cpu_description, device_label, git_commit, git_dirty, now, versions
from orthoreg.regularizers import OrthogonalityRegularizer, constrained_parameters, plain_state_dict
from orthoreg.regularizers.registry import resolve_options
from orthoreg.runs import build_classifier
from orthoreg.tensorboard_log import log_epoch

HISTORY_COLUMNS = (
    "epoch",
    "lr",
    "lambda",
    "train_loss",
    "train_ce",
    "reg_value",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "orth_residual",
    "orth_coherence",
    "seconds",
    "cpu_seconds",
)


def learning_rate(config: TrainConfig, progress: float) -> float:
    """The lr at `progress` (fraction of training done): a linear warm-up from 0 over the first
    `warmup` of training, then multi-step decay (x lr_decay at each milestone already reached) or a
    cosine decay to 0 over the rest."""
    if progress < config.warmup:
        return config.lr * progress / config.warmup
    if config.lr_schedule == "cosine":
        span = (progress - config.warmup) / (1.0 - config.warmup)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * span))
    passed = sum(progress >= milestone for milestone in config.lr_milestones)
    return config.lr * config.lr_decay**passed


def parameter_groups(model: torch.nn.Module) -> list[dict[str, Any]]:
    """One group with the optimiser's weight decay; a hard constraint's parameters (whose scale the
    constraint fixes) in a second group without it."""
    constrained = constrained_parameters(model)
    if not constrained:
        return [{"params": list(model.parameters())}]
    held = {id(parameter) for parameter in constrained}
    free = [parameter for parameter in model.parameters() if id(parameter) not in held]
    return [{"params": free}, {"params": constrained, "weight_decay": 0.0}]


def curve_steps(points: int, epochs: int, steps_per_epoch: int) -> set[int]:
    """The steps after which a run shorter than `points` epochs also tests: ceil(points / epochs)
    points per epoch at evenly spaced steps, its last at the epoch's end (history.csv's own pass)."""
    if points == 0 or epochs >= points:
        return set()
    per_epoch = math.ceil(points / epochs)
    inside = {j * steps_per_epoch // per_epoch - 1 for j in range(1, per_epoch)}
    return {
        epoch * steps_per_epoch + step
        for epoch in range(epochs)
        for step in inside
        if 0 <= step < steps_per_epoch - 1
    }


def make_train_step(
    forward: Callable[[torch.Tensor], torch.Tensor],
    regularizer: Callable[[float], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    autocast: Callable[[], Any],
    memory_format: torch.memory_format = torch.contiguous_format,
    label_smoothing: float = 0.0,
) -> Callable[[torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, ...]]:
    """One SGD step: forward under `autocast`, cross-entropy and the penalty in fp32 outside it.

    Returns detached device tensors (loss, ce, reg, correct) so the caller decides when to sync.
    """

    def step(x: torch.Tensor, y: torch.Tensor, progress: float) -> tuple[torch.Tensor, ...]:
        x = x.contiguous(memory_format=memory_format)
        with autocast():
            logits = forward(x)
        ce = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
        penalty = regularizer(progress)
        reg = penalty.float() if torch.is_tensor(penalty) else ce.new_tensor(float(penalty))
        loss = ce + reg
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach(), ce.detach(), reg.detach(), (logits.argmax(1) == y).sum()

    return step


def test_pass(forward: Any, loader: TensorLoader) -> tuple[float, float]:
    """Test loss and accuracy in fp32, with one host sync at the end: the recorded accuracy is the
    saved model's, as `orthoreg evaluate` or any user's fp32 forward pass reproduces it."""
    sums = torch.zeros(2, dtype=torch.float64, device=loader.device)
    with torch.no_grad():
        for x, y in loader.in_order():
            logits = forward(x).float()
            correct = (logits.argmax(1) == y).sum().to(torch.float64)
            sums += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(), correct])
    loss, correct = sums.tolist()
    count = loader.images.shape[0]
    return loss / count, correct / count


class NonFiniteWatch:
    """The first non-finite step and its (loss, penalty), kept on the device: no sync per step."""

    def __init__(
        self, device: torch.device, steps_per_epoch: int, regularizer: str, checkpoint: Path
    ) -> None:
        self.step = torch.full((), -1, dtype=torch.int64, device=device)
        self.values = torch.zeros(2, dtype=torch.float32, device=device)
        self.steps_per_epoch, self.regularizer, self.checkpoint = steps_per_epoch, regularizer, checkpoint

    def observe(self, step: torch.Tensor, loss: torch.Tensor, reg: torch.Tensor) -> None:
        newly_bad = (self.step < 0) & ~torch.isfinite(loss)
        self.step = torch.where(newly_bad, step, self.step)
        self.values = torch.where(newly_bad, torch.stack([loss, reg]), self.values)

    def check(self) -> None:
        step = int(self.step)
        if step >= 0:
            loss_value, reg_value = self.values.tolist()
            epoch, batch = divmod(step, self.steps_per_epoch)
            kept = (
                f"the last good checkpoint {self.checkpoint} is kept"
                if self.checkpoint.is_file()
                else f"no checkpoint had been written yet, so {self.checkpoint.parent} holds none"
            )
            raise RuntimeError(
                f"non-finite loss at step {step} (epoch {epoch + 1}, batch {batch}): loss {loss_value}, "
                f"regulariser value {reg_value} ({self.regularizer}, lambda-scaled); training "
                f"stopped, {kept}; a smaller lambda or lr is a new recipe"
            )


class Trainer:
    """One run's live state: model, optimiser, regulariser, loaders, generator, position, timers."""

    def __init__(self, config: TrainConfig, out: Path, data_root: Path, verbose: bool) -> None:
        self.config, self.out, self.verbose = config, out, verbose
        self.checkpoint_path = out / "checkpoint.pt"
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.info = dataset_info(config.dataset)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.loader, self.test_loader = self.loaders(data_root)
        seed_everything(config.seed)
        self.model = build_classifier(config.model, self.info, config.model_options).to(
            device=self.device, memory_format=self.memory_format
        )
        self.regularizer = OrthogonalityRegularizer(
            self.model[1],
            config.regularizer,
            config.lam,
            schedule=config.schedule,
            include_linear=config.include_linear,
            skip_stem=config.skip_stem,
            **config.reg_options,
        )
        self.optimizer = torch.optim.SGD(
            parameter_groups(self.model),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
        self.generator = torch.Generator().manual_seed(config.seed)
        self.forward = torch.compile(self.model, dynamic=False) if config.compile else self.model
        self.autocast_dtype = autocast_dtype(config.amp, self.device)
        self.autocast = autocast_factory(self.autocast_dtype, self.device)
        self.train_step = make_train_step(
            self.forward,
            self.regularizer,
            self.optimizer,
            self.autocast,
            self.memory_format,
            config.label_smoothing,
        )
        self.steps_per_epoch = len(self.loader)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.curve_steps = curve_steps(config.curve_points, config.epochs, self.steps_per_epoch)
        self.check_every = config.nan_check_every if self.device.type == "cuda" else 1
        self.progress_view = Progress(config.epochs, verbose)
        self.position = Position(epoch_generator=self.generator.get_state(), started=now())
        self.watch = NonFiniteWatch(
            self.device, self.steps_per_epoch, config.regularizer, self.checkpoint_path
        )

    def loaders(self, data_root: Path) -> tuple[TensorLoader, TensorLoader]:
        """The training loader (shuffled, augmented as configured) and the per-epoch test pass's, on
        the run's device and in its memory format."""
        config = self.config
        train = load_split(config.dataset, data_root, "train", limit=config.limit_train)
        test = load_split(config.dataset, data_root, "test", limit=config.limit_test)
        common = {"device": self.device, "memory_format": self.memory_format, "drop_last": False}
        return (
            TensorLoader(*train, config.batch_size, shuffle=True, augment=config.augment, **common),
            TensorLoader(*test, config.eval_batch_size, shuffle=False, augment=False, **common),
        )

    def resume(self, checkpoint: Mapping[str, Any]) -> None:
        """Load every state of `checkpoint`; the random states last, after construction drew from them."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.regularizer.load_state_dict(checkpoint["regularizer"])
        restore_rng_state(checkpoint["rng"])
        self.position = Position.from_state(checkpoint)
        if self.verbose:
            print(
                f"train: resuming {self.out} at epoch {self.position.epoch + 1}, batch {self.position.batch}",
                file=sys.stderr,
            )

    def calibrate(self) -> None:
        """Fix dn_relaxed's per-layer k from the first `calibration_images` training images (stored
        order, no augmentation) when its relaxation rule needs data; a resumed run has them already."""
        if self.regularizer.needs_calibration:
            images = self.loader.images[: self.config.calibration_images].float().div(255)
            self.regularizer.calibrate(
                images.contiguous(memory_format=self.memory_format), forward=self.model
            )

    def run(self) -> dict[str, Any]:
        self.calibrate()
        with SignalFlag().installed() as flag:
            for epoch in range(self.position.epoch, self.config.epochs):
                self.epoch(epoch, flag)
        return self.finish()

    def save_checkpoint(self) -> None:
        """Checkpoint the current position, never after a non-finite step."""
        self.watch.check()
        save_checkpoint(
            self.checkpoint_path,
            self.config,
            self.position,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            regularizer=self.regularizer.state_dict(),
        )

    def epoch(self, epoch: int, flag: SignalFlag) -> None:
        """One epoch from the position's batch on: train, then test, then checkpoint."""
        started = (time.monotonic(), time.process_time())
        position = self.position
        start = position.batch if epoch == position.epoch else 0
        if epoch == position.epoch and position.epoch_generator is not None:
            self.generator.set_state(position.epoch_generator)
        if start == 0:
            position.epoch_generator = self.generator.get_state()
            position.totals = EpochTotals()
        totals = position.totals
        totals.sums = totals.sums.to(self.device)
        plan = self.loader.plan_epoch(self.generator)
        step_counter = torch.full((), epoch * self.steps_per_epoch + start, device=self.device)
        self.model.train()
        for batch, (x, y) in enumerate(self.loader.batches(plan, start), start=start):
            step = epoch * self.steps_per_epoch + batch
            progress = step / self.total_steps
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(self.config, progress)
            loss, ce, reg, correct = self.train_step(x, y, progress)
            self.watch.observe(step_counter, loss, reg)
            step_counter += 1
            if (step + 1) % self.check_every == 0:
                self.watch.check()
            totals.add(loss, ce, reg, correct, y.shape[0])
            self.progress_view.update(epoch, batch + 1, self.steps_per_epoch, totals.sums[0], totals.count)
            if step in self.curve_steps:
                started = self.curve_point(epoch, batch + 1, started)
            if flag.received is not None:
                self.interrupt(epoch, batch + 1, started, flag.received)
        self.watch.check()
        self.end_epoch(epoch, started)

    def measured_row(self, epoch: float, progress: float) -> dict[str, Any]:
        """A history or curve row but for its times: the schedule at `progress`, the epoch's training
        means so far, and a test pass with the model's near-orthogonality summary."""
        self.model.eval()
        test_loss, test_accuracy = test_pass(self.forward, self.test_loader)
        summary = summarize(layer_metrics(self.model[1], include_linear=self.config.include_linear))
        return {
            "epoch": epoch,
            "lr": learning_rate(self.config, progress),
            "lambda": float(self.regularizer.lambda_at(progress)),
            **self.position.totals.means(),
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "orth_residual": float(summary["mean_holistic_residual"]),
            "orth_coherence": float(summary["max_max_cos"]),
        }

    def curve_point(self, epoch: int, batches: int, started: tuple[float, float]) -> tuple[float, float]:
        """A point of the training curve inside an epoch (curve.csv); its test pass is left out of
        the epoch's time, so the returned start is moved on by what it took."""
        paused = (time.monotonic(), time.process_time())
        progress = (epoch * self.steps_per_epoch + batches) / self.total_steps
        row = self.measured_row(epoch + batches / self.steps_per_epoch, progress)
        row["seconds"] = self.position.totals.seconds + paused[0] - started[0]
        row["cpu_seconds"] = self.position.totals.cpu_seconds + paused[1] - started[1]
        self.position.curve.append(row)
        self.model.train()
        return started[0] + time.monotonic() - paused[0], started[1] + time.process_time() - paused[1]

    def interrupt(self, epoch: int, batch: int, started: tuple[float, float], signum: int) -> None:
        seconds = time.monotonic() - started[0]
        self.position.elapsed += seconds
        self.position.totals.seconds += seconds
        self.position.totals.cpu_seconds += time.process_time() - started[1]
        self.position.epoch, self.position.batch = epoch, batch
        self.save_checkpoint()
        raise TrainingInterrupted(signum, self.checkpoint_path, epoch, batch)

    def end_epoch(self, epoch: int, started: tuple[float, float]) -> None:
        """Test, record the epoch's history row (and curve row), and checkpoint at the start of the
        next epoch."""
        epoch_progress = epoch * self.steps_per_epoch / self.total_steps
        row = self.measured_row(epoch + 1, epoch_progress)
        seconds = time.monotonic() - started[0]
        row["seconds"] = self.position.totals.seconds + seconds
        row["cpu_seconds"] = self.position.totals.cpu_seconds + time.process_time() - started[1]
        end = (epoch + 1) * self.steps_per_epoch / self.total_steps
        at_end = {"lr": learning_rate(self.config, end), "lambda": float(self.regularizer.lambda_at(end))}
        self.position.curve.append({**row, **at_end, "epoch": float(epoch + 1)})
        position = self.position
        position.history.append(row)
        position.elapsed += seconds
        position.epoch, position.batch = epoch + 1, 0
        position.epoch_generator = self.generator.get_state()
        position.totals = EpochTotals()
        self.save_checkpoint()
        save_csv(position.history, HISTORY_COLUMNS, self.out / "history.csv")
        save_csv(position.curve, HISTORY_COLUMNS, self.out / "curve.csv")
        if self.config.tensorboard:
            log_epoch(self.out, row)
        self.progress_view.epoch_line(position.history)

    def fast_path(self) -> dict[str, str]:
        """The dtype and memory format the forward pass actually ran in."""
        dtype = dtype_name(self.autocast_dtype)
        layout = "channels_last" if self.memory_format == torch.channels_last else "contiguous"
        return {"forward_dtype": dtype, "penalty_dtype": "fp32", "memory_format": layout}

    def finish(self) -> dict[str, Any]:
        """Write model.pt, history.csv, curve.csv and, last (it marks the run finished), run.json, whose
        reg_options are the ones in effect (the regulariser's defaults overlaid with the given ones)."""
        config, info, history = self.config, self.info, self.position.history
        record = {
            "model": config.model,
            "dataset": config.dataset,
            "regularizer": config.regularizer,
            "seed": config.seed,
            "lambda": config.lam,
            "schedule": config.schedule,
            "reg_options": resolve_options(config.regularizer, dict(config.reg_options)),
            "relaxation": self.regularizer.layer_settings(),
            "model_options": model_options(config.model, config.model_options),
            "ablation": config.ablation,
            "recipe": recipe_digest(config),
            "config": config.to_dict(),
            "num_classes": info.num_classes,
            "in_channels": info.in_channels,
            "image_size": info.image_size,
            "mean": list(info.mean),
            "std": list(info.std),
            "test_accuracy": history[-1]["test_accuracy"],
            "test_loss": history[-1]["test_loss"],
            "train_accuracy": history[-1]["train_accuracy"],
            "epochs_completed": len(history),
            "wall_seconds": self.position.elapsed,
            "seconds_per_epoch": sum(row["seconds"] for row in history) / len(history),
            "cpu_seconds_per_epoch": sum(row["cpu_seconds"] for row in history) / len(history),
            "load_average": os.getloadavg()[0],
            "versions": versions(),
            "device": device_label(self.device),
            "fast_path": self.fast_path(),
            "cpu": cpu_description(),
            "git_commit": git_commit(),
            "git_dirty": git_dirty(),
            "started": self.position.started,
            "finished": now(),
        }
        weights = {key: value.cpu() for key, value in plain_state_dict(self.model).items()}
        record["model_sha256"] = save_torch(weights, self.out / "model.pt")
        save_csv(history, HISTORY_COLUMNS, self.out / "history.csv")
        save_csv(self.position.curve, HISTORY_COLUMNS, self.out / "curve.csv")
        save_json(record, self.out / "run.json")
        return record


def ensure_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test."):
            pass
    except OSError as error:
        raise ValueError(f"output directory {str(out)!r} is not writable: {error}") from error


def finished_record(config: TrainConfig, out: Path) -> dict[str, Any] | None:
    """The run record when `out` already holds this finished run; a different run there is refused."""
    record_path = out / "run.json"
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the existing run record {record_path}: {error}") from error
    differing = config_differences(record.get("config", {}), config)
    if differing:
        raise ValueError(
            f"{out} already holds a finished run with a different config (differing: "
            f"{', '.join(differing)}); choose another --out or remove that run"
        )
    weights = out / "model.pt"
    if not weights.is_file():
        return None
    if "model_sha256" in record and file_digest(weights) != record["model_sha256"]:
        aside = set_aside(weights)
        print(
            f"train: {weights} has changed since it was written (its SHA-256 is not run.json's); set "
            f"aside as {aside.name}, finishing the run again",
            file=sys.stderr,
        )
        return None
    return record


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] = "data",
    *,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train (or resume, or return the finished record of) the run `config` describes in `out_dir`.

    Writes model.pt, history.csv and run.json there, and keeps checkpoint.pt for resuming.
    Raises ValueError/FileNotFoundError on bad input before writing anything, RuntimeError on a
    non-finite loss (the last good checkpoint stays), TrainingInterrupted after SIGTERM/SIGUSR1.
    """
    config.validate()
    out, data_root = Path(out_dir), Path(data_dir)
    check_prepared(config.dataset, data_root)
    finished = finished_record(config, out)
    if finished is not None:
        if verbose:
            print(f"train: {out} already holds this finished run; nothing to do", file=sys.stderr)
        return finished
    ensure_writable(out)
    checkpoint = usable_checkpoint(out / "checkpoint.pt", config)
    trainer = Trainer(config, out, data_root, verbose)
    if checkpoint is not None:
        trainer.resume(checkpoint)
    return trainer.run()
