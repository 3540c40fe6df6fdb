"""Choosing the device a run trains on, and claiming one GPU among several without a scheduler.

Snakemake's local `--resources gpu=N` limits how many GPU jobs run at once but assigns no device, so a
job that sees several GPUs claims one through an exclusive `fcntl` lock on `gpu<k>.lock`. The lock is
held by an open file descriptor for the life of the process and released by the kernel when it exits,
even on SIGKILL, so a crashed job never leaves a GPU claimed.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import IO

import torch

DEVICES = ("auto", "cpu", "cuda")
LOCK_DIR_ENV = "ORTHOREG_GPU_LOCK_DIR"

# lock files of the GPUs this process claimed; kept open so the locks last as long as the process
_held_locks: list[IO[str]] = []


def default_lock_dir() -> Path:
    """Where GPU lock files live: $ORTHOREG_GPU_LOCK_DIR, else a per-user folder under the temp dir."""
    configured = os.environ.get(LOCK_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"orthoreg-gpu-locks-{os.getuid()}"


def claim_gpu(
    n_devices: int, lock_dir: str | os.PathLike[str] | None = None, *, timeout: float = 0.0, poll: float = 0.5
) -> int:
    """Claim the lowest-numbered free GPU among `n_devices` and return its index.

    Waits up to `timeout` seconds for one to free up, then raises RuntimeError naming the lock folder.
    """
    if n_devices < 1:
        raise ValueError(f"n_devices must be at least 1, got {n_devices}")
    folder = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for index in range(n_devices):
            handle = open(folder / f"gpu{index}.lock", "a+")  # noqa: SIM115 - held for the process life
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            _held_locks.append(handle)
            return index
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"all {n_devices} GPUs are claimed by other jobs (lock files in {folder}); run fewer "
                f"concurrent GPU jobs or set CUDA_VISIBLE_DEVICES"
            )
        time.sleep(poll)


def resolve_device(name: str) -> torch.device:
    """The torch device for a config's `device`: auto picks CUDA when present. With several visible
    GPUs and no CUDA_VISIBLE_DEVICES, one free GPU is claimed for the life of the process."""
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; valid: {', '.join(DEVICES)}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch sees no CUDA device; use cpu or auto")
    count = torch.cuda.device_count()
    shared = count > 1 and "CUDA_VISIBLE_DEVICES" not in os.environ
    index = claim_gpu(count, timeout=600.0) if shared else 0
    torch.cuda.set_device(index)
    return torch.device("cuda", index)
