"""Fixtures shared by the test modules: private registry copies, and a run directory in the
contract's layout around an untrained network."""

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import torch
from torch import nn

from orthoreg.data import dataset_info, prepare_dataset
from orthoreg.registry import Registry
from orthoreg.runs import build_classifier


@contextmanager
def isolated() -> Iterator[None]:
    """Every registry (regularisers, relaxation rules, models, datasets, attacks, report tables and
    figures, ...) restored on exit, so names a test registers do not leak into the rest of the session."""
    with ExitStack() as stack:
        for registry in Registry.all():
            stack.enter_context(registry.isolated())
        yield


@pytest.fixture
def isolated_registries() -> Iterator[None]:
    with isolated():
        yield


@pytest.fixture(scope="module")
def module_registries() -> Iterator[None]:
    """The registries isolated for a whole test module."""
    with isolated():
        yield


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules that run a demo through Snakemake first, then those with other slow tests: `make test`
    hands whole modules, in this order, to one worker per core (pytest-xdist, --dist loadfile
    --no-loadscope-reorder), and starting the longest early keeps one worker from finishing alone."""
    pipeline = {item.path for item in items if item.get_closest_marker("pipeline")}
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (item.path not in pipeline, item.path not in slow))
