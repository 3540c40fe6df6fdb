"""The training engine: one (model, dataset, regulariser, seed) run into a run directory.

Why it is shaped this way:
- Exact on CPU: every random state (torch, CUDA, python, numpy, the loader's generator at the start
  of the epoch) is checkpointed with the position inside the epoch, and a resumed epoch replays its
  plan from `TensorLoader.batches(plan, start)`, so a killed-and-resumed run ends bit-identical.
- Never loses a run: checkpoint.pt is written atomically at every epoch end and at the first step
  boundary after SIGTERM/SIGUSR1; the process then exits with 128 + signal so a scheduler retries,
  and the same command resumes. A finished run (run.json with the same config) is not retrained.
- Fast on GPU: data resident on the device, bf16 autocast, channels_last, optional torch.compile,
  the penalty in fp32 outside autocast, and no host sync per step: losses accumulate on the device
  and the finiteness check reads back every `nan_check_every` steps while still naming the step.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from orthoreg.checkpoint import (
    capture_rng_state,
    load_torch,
    restore_rng_state,
    save_csv,
    save_json,
    save_torch,
)
from orthoreg.devices import DEVICES, resolve_device

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
)
ABLATION_PARAMS = ("gamma", "rho", "lambda")
# Config fields that change how fast a run goes, not what it computes; a resume may change them.
RUNTIME_FIELDS = ("device", "threads", "compile", "nan_check_every")
CHECKPOINT_FORMAT = 1


class TrainingInterrupted(Exception):
    """Raised after SIGTERM/SIGUSR1 once the checkpoint is safely written; exit with `exit_code`."""

    def __init__(self, signum: int, checkpoint: Path, epoch: int, batch: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(
            f"{name} received: checkpoint saved at epoch {epoch + 1}, batch {batch} in {checkpoint}; "
            "run the same command again to resume"
        )


@dataclass
class TrainConfig:
    """Every knob of a run. Defaults are the recipe of shared PAPER.md (Bansal et al.'s WRN recipe)."""

    model: str
    dataset: str
    regularizer: str
    seed: int = 0
    epochs: int = 200
    lam: float = 1e-4
    schedule: str = "constant"
    reg_options: dict[str, Any] = field(default_factory=dict)
    include_linear: bool = False
    skip_stem: bool = False
    batch_size: int = 128
    lr: float = 0.1
    lr_milestones: tuple[float, ...] = (0.3, 0.6, 0.8)
    lr_decay: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    augment: bool = True
    limit_train: int | None = None
    limit_test: int | None = None
    eval_batch_size: int = 500
    model_options: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    threads: int | None = None
    nan_check_every: int = 50
    ablation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON values (tuples become lists), as stored in run.json."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def validate(self) -> None:
        """Refuse a bad config before any work, naming the bad value and what is accepted."""
        from orthoreg.data import available_datasets
        from orthoreg.models import available_models
        from orthoreg.regularizers import SCHEDULES, available_regularizers

        _check_name("model", self.model, available_models())
        _check_name("dataset", self.dataset, available_datasets())
        _check_name("regularizer", self.regularizer, available_regularizers())
        _check_name("schedule", self.schedule, SCHEDULES)
        _check_name("device", self.device, DEVICES)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("epochs", "batch_size", "eval_batch_size", "nan_check_every"):
            _check_positive_int(name, getattr(self, name))
        for name in ("limit_train", "limit_test", "threads"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        for name in ("lr", "lr_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        for name, value in (
            ("lambda", self.lam),
            ("momentum", self.momentum),
            ("weight_decay", self.weight_decay),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
        milestones = list(self.lr_milestones)
        if any(not 0 < m < 1 for m in milestones) or milestones != sorted(milestones):
            raise ValueError(
                f"lr_milestones must be increasing fractions of training in (0, 1), got {milestones}"
            )
        if self.ablation is not None and (
            set(self.ablation) != {"param", "value"} or self.ablation["param"] not in ABLATION_PARAMS
        ):
            raise ValueError(
                f"ablation must be {{param, value}} with param in {', '.join(ABLATION_PARAMS)}, "
                f"got {self.ablation!r}"
            )
        _check_regularizer_options(self)


def _check_name(kind: str, value: str, valid: Any) -> None:
    valid = sorted(valid)
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid: {', '.join(valid)}")


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_regularizer_options(config: TrainConfig) -> None:
    """Let the regulariser validate its own options (gamma, rho, ...) on a one-layer stand-in."""
    from orthoreg.regularizers import OrthogonalityRegularizer

    probe = nn.Sequential(nn.Conv2d(3, 4, 3))
    try:
        OrthogonalityRegularizer(
            probe,
            config.regularizer,
            config.lam,
            schedule=config.schedule,
            include_linear=config.include_linear,
            skip_stem=False,
            **config.reg_options,
        )
    except TypeError as error:
        raise ValueError(
            f"regularizer {config.regularizer!r}: bad option in {config.reg_options}: {error}"
        ) from error


def config_differences(stored: Mapping[str, Any], config: TrainConfig) -> list[str]:
    """Fields (runtime-only ones excepted) whose stored value differs from `config`."""
    current = config.to_dict()
    keys = sorted((set(stored) | set(current)) - set(RUNTIME_FIELDS))
    return [key for key in keys if stored.get(key) != current.get(key)]


def learning_rate(config: TrainConfig, progress: float) -> float:
    """Multi-step decay: the base lr times lr_decay for every milestone fraction already reached."""
    passed = sum(progress >= milestone for milestone in config.lr_milestones)
    return config.lr * config.lr_decay**passed


def git_commit() -> str | None:
    """HEAD of the repository this package is installed from, or None outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else None


def _versions() -> dict[str, str | None]:
    import torchvision

    try:
        package = importlib.metadata.version("orthoreg")
    except importlib.metadata.PackageNotFoundError:
        package = None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "orthoreg": package,
    }


def _device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _ensure_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test."):
            pass
    except OSError as error:
        raise ValueError(f"output directory {str(out)!r} is not writable: {error}") from error


def _check_prepared(dataset: str, data_dir: Path) -> None:
    marker = data_dir / dataset / "prepared.json"
    if not marker.is_file():
        raise FileNotFoundError(
            f"dataset {dataset!r} is not prepared under {str(data_dir)!r} (no {marker}); run "
            f"`orthoreg prepare-data --dataset {dataset} --data-dir {data_dir}` first"
        )


def _finished_record(config: TrainConfig, out: Path) -> dict[str, Any] | None:
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
    if not (out / "model.pt").is_file():
        return None
    return record


def _compatible_checkpoint(config: TrainConfig, out: Path) -> dict[str, Any] | None:
    path = out / "checkpoint.pt"
    if not path.is_file():
        return None
    state = load_torch(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} has checkpoint format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}"
        )
    differing = config_differences(state["config"], config)
    if differing:
        raise ValueError(
            f"{path} belongs to a run with a different config (differing: {', '.join(differing)}); "
            "resume with the same options, or use another --out"
        )
    return state


class _SignalFlag:
    """Records SIGTERM/SIGUSR1 instead of dying, so the loop can checkpoint at a step boundary."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.received: int | None = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum

    @contextmanager
    def installed(self) -> Iterator[_SignalFlag]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


class _Progress:
    """A one-line progress bar on a terminal; one summary line per epoch in any case."""

    def __init__(self, epochs: int, enabled: bool, stream: Any = None) -> None:
        self.epochs = epochs
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.bar = enabled and self.stream.isatty()
        self.last_draw = 0.0

    def update(self, epoch: int, batch: int, n_batches: int, loss_sum: torch.Tensor, count: int) -> None:
        """Redraw at most 5 times a second: reading the running loss syncs with the device."""
        now = time.monotonic()
        if not self.bar or (now - self.last_draw < 0.2 and batch < n_batches):
            return
        self.last_draw = now
        width = 30
        filled = int(width * batch / max(n_batches, 1))
        loss = float(loss_sum) / count
        self.stream.write(
            f"\repoch {epoch + 1}/{self.epochs} [{'#' * filled}{'.' * (width - filled)}] "
            f"{batch}/{n_batches} loss {loss:.4f}"
        )
        self.stream.flush()

    def epoch_line(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        clear = "\r\x1b[2K" if self.bar else ""
        self.stream.write(
            f"{clear}epoch {row['epoch']}/{self.epochs} loss {row['train_loss']:.4f} "
            f"reg {row['reg_value']:.4g} acc {row['train_accuracy']:.4f} "
            f"test {row['test_accuracy']:.4f} {row['seconds']:.1f}s\n"
        )
        self.stream.flush()


def _autocast_factory(bf16: bool) -> Callable[[], Any]:
    """A context-manager factory: bf16 autocast on CUDA when asked, else nothing."""
    return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext


def make_train_step(
    forward: Callable[[torch.Tensor], torch.Tensor],
    regularizer: Callable[[float], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    autocast: Callable[[], Any],
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Callable[[torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, ...]]:
    """One SGD step: forward under `autocast`, cross-entropy and the penalty in fp32 outside it.

    Returns detached device tensors (loss, ce, reg, correct) so the caller decides when to sync.
    """

    def step(x: torch.Tensor, y: torch.Tensor, progress: float) -> tuple[torch.Tensor, ...]:
        x = x.contiguous(memory_format=memory_format)
        with autocast():
            logits = forward(x)
        ce = F.cross_entropy(logits.float(), y)
        penalty = regularizer(progress)
        reg = penalty.float() if torch.is_tensor(penalty) else ce.new_tensor(float(penalty))
        loss = ce + reg
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach(), ce.detach(), reg.detach(), (logits.argmax(1) == y).sum()

    return step


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _evaluate(
    forward: Any, loader: Any, device: torch.device, autocast: Any, memory_format: torch.memory_format
) -> tuple[float, float]:
    """Test loss and accuracy with one host sync at the end."""
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    count = 0
    plan = loader.plan_epoch(torch.Generator().manual_seed(0))
    with torch.no_grad():
        for x, y in loader.batches(plan):
            x = x.contiguous(memory_format=memory_format)
            with autocast():
                logits = forward(x)
            logits = logits.float()
            correct = (logits.argmax(1) == y).sum().to(torch.float64)
            sums += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(), correct])
            count += y.shape[0]
    loss, correct = sums.tolist()
    return loss / count, correct / count


def _orthogonality_summary(net: nn.Module, include_linear: bool) -> tuple[float, float]:
    from orthoreg.metrics import layer_metrics, summarize

    summary = summarize(layer_metrics(net, include_linear=include_linear))
    return float(summary["mean_holistic_residual"]), float(summary["max_max_cos"])


class _Trainer:
    """One run's live state: model, optimiser, regulariser, loaders, generator, history, timers."""

    def __init__(self, config: TrainConfig, out: Path, data_root: Path, verbose: bool) -> None:
        from orthoreg.data import TensorLoader, dataset_info, load_split
        from orthoreg.regularizers import OrthogonalityRegularizer
        from orthoreg.runs import build_classifier

        self.config, self.out, self.verbose = config, out, verbose
        self.checkpoint_path = out / "checkpoint.pt"
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True
        self.info = dataset_info(config.dataset)
        train_images, train_labels = load_split(config.dataset, data_root, "train", limit=config.limit_train)
        test_images, test_labels = load_split(config.dataset, data_root, "test", limit=config.limit_test)

        _seed_everything(config.seed)
        self.memory_format = torch.channels_last if cuda and config.channels_last else torch.contiguous_format
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
            self.model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
        self.loader = TensorLoader(
            train_images,
            train_labels,
            config.batch_size,
            shuffle=True,
            augment=config.augment,
            device=self.device,
            drop_last=False,
        )
        self.test_loader = TensorLoader(
            test_images,
            test_labels,
            config.eval_batch_size,
            shuffle=False,
            augment=False,
            device=self.device,
            drop_last=False,
        )
        self.generator = torch.Generator().manual_seed(config.seed)
        self.forward = torch.compile(self.model, dynamic=False) if config.compile else self.model
        self.autocast = _autocast_factory(cuda and config.amp)
        self.train_step = make_train_step(
            self.forward, self.regularizer, self.optimizer, self.autocast, self.memory_format
        )
        self.steps_per_epoch = math.ceil(int(train_labels.shape[0]) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.check_every = config.nan_check_every if cuda else 1
        self.progress_view = _Progress(config.epochs, verbose)
        # where the run stands; everything here goes into checkpoint.pt
        self.position = {
            "epoch": 0,
            "batch": 0,
            "epoch_generator": self.generator.get_state(),
            "epoch_sums": torch.zeros(4, dtype=torch.float64),
            "epoch_count": 0,
            "epoch_seconds": 0.0,
            "history": [],
            "elapsed": 0.0,
            "started": _now(),
        }
        # first non-finite step and its (loss, penalty), kept on the device to avoid a sync per step
        self.bad_step = torch.full((), -1, dtype=torch.int64, device=self.device)
        self.bad_values = torch.zeros(2, dtype=torch.float32, device=self.device)

    def resume(self, checkpoint: Mapping[str, Any]) -> None:
        """Load every state of `checkpoint`; the random states last, after construction drew from them."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.regularizer.load_state_dict(checkpoint["regularizer"])
        restore_rng_state(checkpoint["rng"])
        self.position.update({key: checkpoint[key] for key in self.position})
        if self.verbose:
            print(
                f"train: resuming {self.out} at epoch {self.position['epoch'] + 1}, "
                f"batch {self.position['batch']}",
                file=sys.stderr,
            )

    def run(self) -> dict[str, Any]:
        with _SignalFlag().installed() as flag:
            for epoch in range(self.position["epoch"], self.config.epochs):
                self._epoch(epoch, flag)
        return self._finish()

    def _check_finite(self) -> None:
        step = int(self.bad_step)
        if step >= 0:
            loss_value, reg_value = self.bad_values.tolist()
            epoch, batch = divmod(step, self.steps_per_epoch)
            raise RuntimeError(
                f"non-finite loss at step {step} (epoch {epoch + 1}, batch {batch}): loss {loss_value}, "
                f"regulariser value {reg_value} ({self.config.regularizer}, lambda-scaled); training "
                f"stopped, the last good checkpoint {self.checkpoint_path} is kept"
            )

    def _save_checkpoint(self, **position: Any) -> None:
        """Checkpoint at `position` (epoch, batch, epoch sums...), never after a non-finite step."""
        self._check_finite()
        self.position.update(position)
        save_torch(
            {
                "format": CHECKPOINT_FORMAT,
                "config": self.config.to_dict(),
                **self.position,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "regularizer": self.regularizer.state_dict(),
                "rng": capture_rng_state(),
            },
            self.checkpoint_path,
        )

    def _epoch(self, epoch: int, flag: _SignalFlag) -> None:
        started = time.monotonic()
        position = self.position
        resuming_inside = epoch == position["epoch"] and position["batch"] > 0
        if epoch == position["epoch"]:
            self.generator.set_state(position["epoch_generator"])
        if resuming_inside:
            start_batch, count = position["batch"], position["epoch_count"]
            carried = position["epoch_seconds"]
            sums = position["epoch_sums"].to(self.device)
        else:
            position["epoch_generator"] = self.generator.get_state()
            start_batch, count, carried = 0, 0, 0.0
            sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        plan = self.loader.plan_epoch(self.generator)
        epoch_progress = epoch * self.steps_per_epoch / self.total_steps
        step_counter = torch.full((), epoch * self.steps_per_epoch + start_batch, device=self.device)
        self.model.train()
        for batch, (x, y) in enumerate(self.loader.batches(plan, start_batch), start=start_batch):
            step = epoch * self.steps_per_epoch + batch
            progress = step / self.total_steps
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(self.config, progress)
            loss, ce, reg, correct = self.train_step(x, y, progress)
            newly_bad = (self.bad_step < 0) & ~torch.isfinite(loss)
            self.bad_step = torch.where(newly_bad, step_counter, self.bad_step)
            self.bad_values = torch.where(newly_bad, torch.stack([loss, reg]), self.bad_values)
            step_counter += 1
            if (step + 1) % self.check_every == 0:
                self._check_finite()
            n = y.shape[0]
            sums += torch.cat([torch.stack([loss, ce, reg]).double() * n, correct.double()[None]])
            count += n
            self.progress_view.update(epoch, batch + 1, self.steps_per_epoch, sums[0], count)
            if flag.received is not None:
                seconds = time.monotonic() - started
                self.position["elapsed"] += seconds
                self._save_checkpoint(
                    epoch=epoch,
                    batch=batch + 1,
                    epoch_sums=sums.cpu(),
                    epoch_count=count,
                    epoch_seconds=carried + seconds,
                )
                raise TrainingInterrupted(flag.received, self.checkpoint_path, epoch, batch + 1)
        self._check_finite()
        self.model.eval()
        test_loss, test_accuracy = _evaluate(
            self.forward, self.test_loader, self.device, self.autocast, self.memory_format
        )
        residual, coherence = _orthogonality_summary(self.model[1], self.config.include_linear)
        loss_sum, ce_sum, reg_sum, correct_sum = sums.tolist()
        seconds = time.monotonic() - started
        row = {
            "epoch": epoch + 1,
            "lr": learning_rate(self.config, epoch_progress),
            "lambda": float(self.regularizer.lambda_at(epoch_progress)),
            "train_loss": loss_sum / count,
            "train_ce": ce_sum / count,
            "reg_value": reg_sum / count,
            "train_accuracy": correct_sum / count,
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "orth_residual": residual,
            "orth_coherence": coherence,
            "seconds": carried + seconds,
        }
        self.position["history"].append(row)
        self.position["elapsed"] += seconds
        self._save_checkpoint(
            epoch=epoch + 1,
            batch=0,
            epoch_generator=self.generator.get_state(),
            epoch_sums=torch.zeros(4, dtype=torch.float64),
            epoch_count=0,
            epoch_seconds=0.0,
        )
        save_csv(self.position["history"], HISTORY_COLUMNS, self.out / "history.csv")
        self.progress_view.epoch_line(row)

    def _finish(self) -> dict[str, Any]:
        """Write model.pt, history.csv and, last (it marks the run finished), run.json, whose
        reg_options are the ones in effect (the regulariser's defaults overlaid with the given ones)."""
        from orthoreg.regularizers.registry import resolve_options

        config, info, history = self.config, self.info, self.position["history"]
        record = {
            "model": config.model,
            "dataset": config.dataset,
            "regularizer": config.regularizer,
            "seed": config.seed,
            "lambda": config.lam,
            "schedule": config.schedule,
            "reg_options": resolve_options(config.regularizer, dict(config.reg_options)),
            "ablation": config.ablation,
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
            "wall_seconds": self.position["elapsed"],
            "seconds_per_epoch": sum(row["seconds"] for row in history) / len(history),
            "versions": _versions(),
            "device": _device_label(self.device),
            "git_commit": git_commit(),
            "started": self.position["started"],
            "finished": _now(),
        }
        weights = {key: value.cpu() for key, value in self.model.state_dict().items()}
        save_torch(weights, self.out / "model.pt")
        save_csv(history, HISTORY_COLUMNS, self.out / "history.csv")
        save_json(record, self.out / "run.json")
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
    _check_prepared(config.dataset, data_root)
    finished = _finished_record(config, out)
    if finished is not None:
        if verbose:
            print(f"train: {out} already holds this finished run; nothing to do", file=sys.stderr)
        return finished
    checkpoint = _compatible_checkpoint(config, out)
    _ensure_writable(out)
    trainer = _Trainer(config, out, data_root, verbose)
    if checkpoint is not None:
        trainer.resume(checkpoint)
    return trainer.run()
