"""Datasets: a registry, one module per source, one download path, the prepared store and the loader.

Add a dataset: one file in this package that calls `register_dataset`, and one import line below
(or a plugin module named in ORTHOREG_PLUGINS; see docs/extending.md).
"""

from orthoreg.data import cifar, fashion_mnist, synthetic  # noqa: F401  (registers them)
from orthoreg.data.download import download, fetch_verified
from orthoreg.data.loader import EpochPlan, TensorLoader, evaluation_batches
from orthoreg.data.registry import DatasetInfo, Split, available_datasets, dataset_info, register_dataset
from orthoreg.data.store import SPLITS, check_prepared, load_split, prepare_dataset

__all__ = [
    "SPLITS",
    "DatasetInfo",
    "EpochPlan",
    "Split",
    "TensorLoader",
    "available_datasets",
    "check_prepared",
    "dataset_info",
    "download",
    "evaluation_batches",
    "fetch_verified",
    "load_split",
    "prepare_dataset",
    "register_dataset",
]
