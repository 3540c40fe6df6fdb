"""The Fashion-MNIST part: a short real training through `orthoreg.train.train` on the device, from
the four IDX files the command is pointed at (nothing is downloaded on a lent GPU)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from gpucheck.harness import Context, Deadline, Skip, part
from gpucheck.rounding import rounded
from orthoreg.config import TrainConfig
from orthoreg.data import dataset_info, prepare_dataset
from orthoreg.data.fashion_mnist import VARIABLE, holds_files
from orthoreg.train import train

# the CPU demo's recipe (config/demo.yaml), which reaches 87 % in one pass over 24,000 images
RECIPE: dict[str, Any] = {
    "regularizer": "dn_relaxed",
    "lam": 1e-3,
    "lr": 0.15,
    "lr_schedule": "cosine",
    "warmup": 0.1,
    "weight_decay": 5e-5,
    "label_smoothing": 0.1,
    "augment": False,
}


@part("fashion_mnist", "a short real Fashion-MNIST training on the device", weight=40, quick_weight=5)
def fashion_mnist(context: Context, record: dict, deadline: Deadline) -> None:
    folder = Path(context.args.fashion_mnist_dir)
    if not holds_files(folder):
        raise Skip(
            f"{folder} does not hold the four Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...); "
            f"pass --fashion-mnist-dir"
        )
    os.environ[VARIABLE] = str(folder)
    data = context.work / "fashion-data"
    started = time.monotonic()
    prepare_dataset("fashion_mnist", data)
    record["prepare_seconds"] = round(time.monotonic() - started, 1)
    config = TrainConfig(
        dataset="fashion_mnist", seed=0, device=context.device.type, **RECIPE, **context.plan.fashion
    )
    deadline.check("training")
    started = time.monotonic()
    run = train(config, context.work / "fashion-run", data, verbose=False)
    info = dataset_info("fashion_mnist")
    record.update(
        model=config.model,
        regularizer=config.regularizer,
        epochs=run["epochs_completed"],
        train_images=config.limit_train or info.train_size,
        test_images=config.limit_test or info.test_size,
        test_accuracy=rounded(run["test_accuracy"]),
        train_seconds=round(time.monotonic() - started, 1),
        seconds_per_epoch=rounded(run["seconds_per_epoch"]),
        fast_path=run["fast_path"],
    )
