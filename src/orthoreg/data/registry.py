"""The dataset registry: a name, the facts a model needs about the images, and how to fetch them.

A dataset is one file in this package (or a plugin) that calls `register_dataset` with its
`DatasetInfo` and a `fetch(directory)` function; `orthoreg.data.store` calls `fetch` once and keeps
the verified splits, so nothing else ever downloads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from orthoreg.registry import Registry

Split = tuple[torch.Tensor, torch.Tensor]
Fetch = Callable[[Path], tuple[Split, Split]]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_size: int
    test_size: int


@dataclass(frozen=True)
class Dataset:
    info: DatasetInfo
    fetch: Fetch  # root/<name> -> (train, test)


DATASETS: Registry[Dataset] = Registry("dataset")


def register_dataset(info: DatasetInfo, fetch: Fetch) -> None:
    """Register a dataset: `fetch(directory)` returns ((train images, labels), (test images, labels)),
    images uint8 [N, C, H, W], labels int64 [N], after verifying whatever it downloaded or read."""
    if len(info.mean) != info.in_channels or len(info.std) != info.in_channels or min(info.std) <= 0:
        raise ValueError(
            f"dataset {info.name!r}: need one mean and one std > 0 per channel ({info.in_channels}),"
            f" got mean {info.mean}, std {info.std}"
        )
    if info.num_classes < 1 or info.image_size < 1:
        raise ValueError(f"dataset {info.name!r}: num_classes and image_size must be positive, got {info}")
    DATASETS.register(info.name, Dataset(info, fetch))


def available_datasets() -> list[str]:
    return DATASETS.names()


def get_dataset(name: str) -> Dataset:
    return DATASETS.get(name)


def dataset_info(name: str) -> DatasetInfo:
    return get_dataset(name).info
