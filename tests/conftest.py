"""Fixtures shared by the test modules: private registry copies, and a run directory in the
contract's layout around an untrained network."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import orthoreg.data.registry
import orthoreg.models.registry
import orthoreg.regularizers.registry
from orthoreg.data import dataset_info, prepare_dataset
from orthoreg.runs import build_classifier

REGISTRIES = (
    (orthoreg.regularizers.registry, "_REGISTRY"),
    (orthoreg.models.registry, "_MODELS"),
    (orthoreg.data.registry, "_DATASETS"),
)


def isolate(patch: pytest.MonkeyPatch) -> None:
    """Give the regulariser, model and dataset registries private copies, so names a test registers
    do not leak into the rest of the session."""
    for module, name in REGISTRIES:
        patch.setattr(module, name, dict(getattr(module, name)))


@pytest.fixture
def isolated_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch)


@pytest.fixture(scope="module")
def module_registries():
    """Private registry copies for a whole test module; yields the MonkeyPatch that holds them."""
    with pytest.MonkeyPatch.context() as patch:
        isolate(patch)
        yield patch


def write_untrained_run(
    run_dir: Path, data_dir: Path, dataset: str = "synthetic", model_name: str = "resnet8"
) -> nn.Module:
    """A run directory (run.json + model.pt) around an untrained network; returns it in eval mode."""
    prepare_dataset(dataset, data_dir)
    info = dataset_info(dataset)
    torch.manual_seed(0)
    model = build_classifier(model_name, info)
    run_dir.mkdir(parents=True)
    torch.save(model.state_dict(), run_dir / "model.pt")
    record = {
        "model": model_name,
        "dataset": dataset,
        "regularizer": "none",
        "seed": 0,
        "num_classes": info.num_classes,
        "in_channels": info.in_channels,
        "image_size": info.image_size,
        "mean": list(info.mean),
        "std": list(info.std),
        "config": {"include_linear": False},
        "test_accuracy": 0.1,
    }
    (run_dir / "run.json").write_text(json.dumps(record))
    return model.eval()


@pytest.fixture
def untrained_run() -> Callable[..., nn.Module]:
    return write_untrained_run
