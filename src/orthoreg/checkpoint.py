"""What a bit-exact resume needs: where the run stands (`Position`), every random state, and the
checkpoint.pt that holds both with the model, optimiser and regulariser states.

A checkpoint is written atomically at every epoch end and at the first step boundary after
SIGTERM/SIGUSR1 (`SignalFlag`), with the SHA-256 of its own contents inside. It is read back only
when that digest matches and its config is the run's (runtime-only fields such as device and
threads excepted); any other checkpoint is set aside under a new name, never deleted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orthoreg.config import TrainConfig, config_differences
from orthoreg.files import load_torch, save_torch

FORMAT = 4  # 3: the contents' SHA-256 inside; 4: the regulariser's calibrated settings, the curve rows


def capture_rng_state() -> dict[str, Any]:
    """Every global random state training may draw from, in a form `weights_only` loading accepts."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put back what `capture_rng_state` saved."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class EpochTotals:
    """Sums over the current epoch's steps: loss, ce, reg (each times the batch size) and correct
    predictions, kept on the device so no step syncs; the sample count, and the wall and process CPU
    seconds spent."""

    sums: torch.Tensor = field(default_factory=lambda: torch.zeros(4, dtype=torch.float64))
    count: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def add(
        self, loss: torch.Tensor, ce: torch.Tensor, reg: torch.Tensor, correct: torch.Tensor, n: int
    ) -> None:
        self.sums += torch.cat([torch.stack([loss, ce, reg]).double() * n, correct.double()[None]])
        self.count += n

    def means(self) -> dict[str, float]:
        loss, ce, reg, correct = self.sums.tolist()
        return {
            "train_loss": loss / self.count,
            "train_ce": ce / self.count,
            "reg_value": reg / self.count,
            "train_accuracy": correct / self.count,
        }


@dataclass
class Position:
    """Where a run stands: the next epoch and batch, the loader generator's state at that epoch's
    start (its plan is replayed from it), the partial epoch's totals, the finished epochs' history
    rows, the training curve's rows within epochs so far, the training seconds so far and the start
    time."""

    epoch: int = 0
    batch: int = 0
    epoch_generator: torch.Tensor | None = None
    totals: EpochTotals = field(default_factory=EpochTotals)
    history: list[dict[str, Any]] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0
    started: str = ""

    def to_state(self) -> dict[str, Any]:
        state = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        totals = state.pop("totals")
        return {
            **state,
            "epoch_sums": totals.sums.cpu(),
            "epoch_count": totals.count,
            "epoch_seconds": totals.seconds,
            "epoch_cpu_seconds": totals.cpu_seconds,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Position:
        totals = EpochTotals(
            state["epoch_sums"].clone(),
            state["epoch_count"],
            state["epoch_seconds"],
            state["epoch_cpu_seconds"],
        )
        names = [item.name for item in dataclasses.fields(cls) if item.name != "totals"]
        return cls(**{name: state[name] for name in names}, totals=totals)


def content_digest(obj: Any) -> str:
    """SHA-256 of nested tensors and plain values, independent of how they are serialised, so a
    checkpoint can carry the digest of its own contents."""
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor {tensor.dtype} {tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(f"mapping {len(value)};".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"sequence {len(value)};".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__} {value!r};".encode())


def save_checkpoint(path: Path, config: TrainConfig, position: Position, **states: Any) -> None:
    """checkpoint.pt: the format, the config, the position, the RNG states and `states` (model,
    optimizer, regularizer state dicts), and the SHA-256 of all of these."""
    contents = {
        "format": FORMAT,
        "config": config.to_dict(),
        **position.to_state(),
        **states,
        "rng": capture_rng_state(),
    }
    save_torch({**contents, "sha256": content_digest(contents)}, path)


def usable_checkpoint(path: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The checkpoint at `path` when it is intact and belongs to a run of `config`, else None. One that
    is unreadable, changed since it was written, of another format or of another config is renamed
    aside (`set_aside`), with a line on stderr saying why and where it went, and the run starts over."""
    if not path.is_file():
        return None
    try:
        state = load_torch(path)
        if not isinstance(state, dict):
            raise ValueError(f"{path} holds a {type(state).__name__}, not a checkpoint")
        if state.get("format") != FORMAT:
            raise ValueError(f"{path} has checkpoint format {state.get('format')!r}, not {FORMAT}")
        recorded = state.pop("sha256", None)
        if recorded != content_digest(state):
            raise ValueError(f"{path} has changed since it was written (its SHA-256 does not match)")
        differing = config_differences(state["config"], config)
        if differing:
            raise ValueError(
                f"{path} belongs to a run with a different config (differing: {', '.join(differing)})"
            )
    except ValueError as refusal:
        aside = set_aside(path)
        print(f"train: {refusal}; set aside as {aside.name}, training from the start", file=sys.stderr)
        return None
    return state


def set_aside(path: Path) -> Path:
    """Rename `path` to `<stem>.set-aside-<time>[-n]<suffix>` beside it and return the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        aside = path.with_name(
            f"{path.stem}.set-aside-{stamp}{f'-{attempt}' if attempt else ''}{path.suffix}"
        )
        if not aside.exists():
            path.rename(aside)
            return aside
    raise FileExistsError(f"cannot set {path} aside: {aside} and 999 others exist")


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


class SignalFlag:
    """Records SIGTERM/SIGUSR1 instead of dying, so the loop can checkpoint at a step boundary."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.received: int | None = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum

    @contextmanager
    def installed(self) -> Iterator[SignalFlag]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
