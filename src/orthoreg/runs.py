"""Reading a finished run back: the trained model (normalisation inside) and its run record."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from orthoreg.files import load_torch
from orthoreg.models import Normalize, build_model

RECORD_KEYS = ("model", "num_classes", "in_channels", "mean", "std", "config")


def build_classifier(model: str, info: Any, model_options: Mapping[str, Any] | None = None) -> nn.Sequential:
    """`Sequential(Normalize(mean, std), net)`: the model takes float images in [0, 1] pixel space.

    `info` is anything with num_classes, in_channels, mean and std (a DatasetInfo, say).
    """
    net = build_model(model, info.num_classes, in_channels=info.in_channels, **dict(model_options or {}))
    return nn.Sequential(Normalize(info.mean, info.std), net)


class _RecordInfo:
    """The dataset facts build_classifier needs, read from a run record."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        self.num_classes = int(record["num_classes"])
        self.in_channels = int(record["in_channels"])
        self.mean = tuple(record["mean"])
        self.std = tuple(record["std"])


def read_record(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """run.json of a run directory; FileNotFoundError when absent, ValueError when unreadable."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} is not a finished run (train it first)")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(record, dict):
        raise ValueError(f"{path} should hold a JSON object, found {type(record).__name__}")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise ValueError(f"{path} lacks the fields {', '.join(missing)}")
    return record


def load_weights(
    run_dir: str | os.PathLike[str], record: Mapping[str, Any], device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """model.pt of a finished run, checked against the SHA-256 its run.json recorded (runs written
    before orthoreg 0.3 recorded none)."""
    remedy = (
        f"delete {Path(run_dir) / 'run.json'} and rerun its train job (snakemake, or `orthoreg train` "
        "with the same options), which rewrites model.pt from checkpoint.pt"
    )
    return load_torch(Path(run_dir) / "model.pt", device, sha256=record.get("model_sha256"), remedy=remedy)


def load_run(run_dir: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The trained `Sequential(Normalize, net)` of a run, in eval mode on `device`, and its record."""
    record = read_record(run_dir)
    weights_path = Path(run_dir) / "model.pt"
    state = load_weights(run_dir, record, device)
    model = build_classifier(record["model"], _RecordInfo(record), record["config"].get("model_options"))
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ValueError(f"{weights_path} does not match model {record['model']!r}: {error}") from error
    return model.to(device).eval(), record
