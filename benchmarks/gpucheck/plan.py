"""What the GPU check's parts measure, in two sizes: the targets' models at their real sizes on a GPU
(`FULL`), and every part in miniature on a CPU with --quick (`QUICK`), where resnet8 stands in for each
model, so the test suite keeps the check working between the rare times a GPU is lent."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# the models of the throughput and compiled parts, in the order they run: the targets' models first,
# resnet110 (the longest compile) last
THROUGHPUT_MODELS = ("wrn28_10", "resnet18", "resnet20", "wrn16_8", "resnet110")


@dataclass(frozen=True)
class Plan:
    """The sizes of one run of the check."""

    models: tuple[str, ...]  # the throughput and compiled parts' models
    stand_in: Mapping[str, str]  # a model the targets or parts name -> the model measured for it
    budget: float  # seconds for all parts together, unless --budget says otherwise
    batch: int
    steps: int  # training steps per timed call
    rounds: int  # interleaved timed calls; the best is kept
    warmup: int  # untimed calls first (cudnn autotuning, allocator)
    matmul_sizes: tuple[int, ...]
    test_images: int  # images of the timed fp32 test pass
    workers: int  # DataLoader workers of the data-loading comparison
    grid: tuple[str, ...]  # pipeline config files, each merged over the one before
    fashion: Mapping[str, Any]  # TrainConfig fields of the Fashion-MNIST run
    resume: Mapping[str, Any]  # TrainConfig fields of the kill-and-resume run
    lock_hold: float  # seconds each claimant holds the GPU lock
    threads: int | None = None  # torch CPU threads (None: torch's default)
    compile_skip: str | None = None  # why torch.compile is not measured, when it is not


FULL = Plan(
    models=THROUGHPUT_MODELS,
    stand_in={name: name for name in THROUGHPUT_MODELS},
    budget=460.0,  # under 8 minutes of a command's 10
    batch=128,
    steps=10,
    rounds=5,
    warmup=2,
    matmul_sizes=(4096, 8192, 16384),
    test_images=10_000,
    workers=min(8, os.cpu_count() or 1),
    grid=("config/config.yaml",),
    fashion={"model": "resnet20", "epochs": 5, "batch_size": 128},
    resume={"model": "resnet20", "epochs": 4, "batch_size": 128},
    lock_hold=3.0,
)
QUICK = Plan(
    models=("resnet8",),
    stand_in=dict.fromkeys(THROUGHPUT_MODELS, "resnet8"),
    budget=45.0,  # under a minute on a CI CPU
    batch=16,
    steps=1,
    rounds=1,
    warmup=1,
    matmul_sizes=(256, 512),
    test_images=256,
    workers=0,
    grid=("config/config.yaml", "config/ci.yaml"),
    fashion={"model": "resnet8", "epochs": 1, "batch_size": 64, "limit_train": 256, "limit_test": 128},
    resume={
        "model": "resnet8",
        "epochs": 3,
        "batch_size": 64,
        "limit_train": 256,
        "limit_test": 64,
        "threads": 1,
    },
    lock_hold=1.0,
    threads=1,  # robust on a shared CI machine, where busy-waiting worker threads of torch stall
    compile_skip="--quick: inductor's build of a model takes minutes on a CPU",
)
