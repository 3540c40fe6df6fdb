"""The training console: a one-line progress bar on a terminal, one summary line per epoch always,
ending with the time left and the projected total (from the mean epoch time so far, the epochs of an
earlier attempt of a resumed run included)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
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

    def epoch_line(self, history: Sequence[Mapping[str, Any]]) -> None:
        """The line of the last epoch of `history` (the run's rows so far, in order)."""
        if not self.enabled:
            return
        row = history[-1]
        clear = "\r\x1b[2K" if self.bar else ""
        self.stream.write(
            f"{clear}epoch {row['epoch']}/{self.epochs} loss {row['train_loss']:.4f} "
            f"reg {row['reg_value']:.4g} acc {row['train_accuracy']:.4f} "
            f"test {row['test_accuracy']:.4f} {row['seconds']:.1f}s, {time_left(history, self.epochs)}\n"
        )
        self.stream.flush()


def time_left(history: Sequence[Mapping[str, Any]], epochs: int) -> str:
    """'ETA <left> of <total>': the epochs still to run at the mean epoch time so far, and the elapsed
    time plus that; 'total <elapsed>' after the last epoch."""
    elapsed = sum(float(row["seconds"]) for row in history)
    remaining = epochs - int(history[-1]["epoch"])
    if remaining <= 0:
        return f"total {duration(elapsed)}"
    left = remaining * elapsed / len(history)
    return f"ETA {duration(left)} of {duration(elapsed + left)}"


def duration(seconds: float) -> str:
    """A duration as people read one: 42s, 12m 05s, 3h 07m."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
