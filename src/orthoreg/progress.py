"""The training console: a one-line progress bar on a terminal, one summary line per epoch always."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

import torch


class Progress:
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
