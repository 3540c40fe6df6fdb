"""Training curves for TensorBoard: each epoch's history row as scalars under <run dir>/tensorboard/, so
that `tensorboard --logdir results/` shows every run of a grid live, one curve per run.

A view, never a record: history.csv stays what the report reads. Optional (`TrainConfig.tensorboard`,
off by default, the extra `orthoreg[tensorboard]`), so torch.utils.tensorboard, which needs the
tensorboard package, is imported only when a run asks for the curves.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FOLDER = "tensorboard"
# the history columns that are not curves (the epoch is the step)
NOT_CURVES = ("epoch",)

# the open writer of each run folder this process logs to, with the last epoch it wrote
_writers: dict[Path, tuple[Any, int]] = {}


def tensorboard_available(enabled: bool) -> str | None:
    """TrainConfig's check of `tensorboard`: None when it is off or the package is installed, else why
    not (before any work is done, not after the first epoch)."""
    if not enabled or importlib.util.find_spec("tensorboard") is not None:
        return None
    return "needs the tensorboard package, which is not installed (pip install 'orthoreg[tensorboard]')"


def scalar_tag(column: str) -> str:
    """A history column's tag: the words before the first underscore are its group in TensorBoard
    (train_loss -> train/loss, orth_residual -> orth/residual); lr, lambda and seconds stand alone."""
    return column.replace("_", "/", 1)


def log_epoch(run_dir: str | Path, row: Mapping[str, Any]) -> Path:
    """Write a history row as scalars at step `row["epoch"]` into run_dir/tensorboard/ and flush them,
    so a running TensorBoard shows the epoch at once. Returns the folder."""
    folder = (Path(run_dir) / FOLDER).resolve()
    step = int(row["epoch"])
    writer = _writer(folder, step)
    for column, value in row.items():
        if column not in NOT_CURVES:
            writer.add_scalar(scalar_tag(column), float(value), global_step=step)
    writer.flush()
    _writers[folder] = (writer, step)
    return folder


def _writer(folder: Path, step: int) -> Any:
    """The folder's open writer, or a new one when this process has none or logs an epoch again (a
    resumed run): its purge_step hides whatever an interrupted attempt logged from `step` on."""
    held = _writers.pop(folder, None)
    if held is not None and step > held[1]:
        return held[0]
    if held is not None:
        held[0].close()
    from torch.utils.tensorboard import SummaryWriter  # optional: needs the tensorboard package

    return SummaryWriter(str(folder), purge_step=step)
