"""Wall time as every benchmark here measures it, so that their numbers compare.

The variants being compared run interleaved, round by round, and each is reported as its best
(minimum) time over the rounds: on a shared machine other processes only ever add time, so the
minimum is the least disturbed estimate, and interleaving exposes every variant to the same load.
Nothing here asserts a time; the scripts print ratios.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (a CUDA call returns before its kernels have run)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(
    actions: Mapping[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int = 2
) -> dict[str, float]:
    """The minimum wall time of each action over `repeats` interleaved rounds, after `warmup` untimed
    rounds (cudnn autotuning, the allocator, lazy initialisation)."""
    for _ in range(warmup):
        for action in actions.values():
            action()
    synchronize(device)
    best = dict.fromkeys(actions, float("inf"))
    for _ in range(repeats):
        for label, action in actions.items():
            start = time.perf_counter()
            action()
            synchronize(device)
            best[label] = min(best[label], time.perf_counter() - start)
    return best
