"""Choosing the device a run trains on, and claiming one GPU among several without a scheduler.

Snakemake's local `--resources gpu=N` limits how many GPU jobs run at once but assigns no device, so a
job that sees several GPUs claims one through an exclusive `fcntl` lock on `gpu<name>.lock`, where
<name> is the GPU's entry in CUDA_VISIBLE_DEVICES (its physical index or UUID), or its index when the
variable is unset. Jobs that see the same GPUs under different indices (CUDA_VISIBLE_DEVICES=2,3 beside
an unset one) therefore contend for the same physical device; the index returned is always the one
within the visible set, which is what torch calls it. A job that sees one GPU uses it without a lock:
SLURM (`--gpus=1`), `docker run --gpus device=K` and a hand-set CUDA_VISIBLE_DEVICES=K have chosen it
already, and under SLURM's device cgroups every job sees its own GPU as 0.

The lock is held by an open file descriptor for the life of the process and released by the kernel when
it exits, even on SIGKILL, so a crashed job never leaves a GPU claimed. Lock files live in a per-user
folder, one per SLURM job inside an allocation (two allocations on one node may both call their GPUs
0,1), or in $ORTHOREG_GPU_LOCK_DIR.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from pathlib import Path
from typing import IO

import torch

DEVICES = ("auto", "cpu", "cuda")
LOCK_DIR_ENV = "ORTHOREG_GPU_LOCK_DIR"
VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"
# how long a job waits for a GPU that other jobs hold before it gives up
CLAIM_TIMEOUT = 600.0

# lock files of the GPUs this process claimed; kept open so the locks last as long as the process
_held_locks: list[IO[str]] = []


def default_lock_dir() -> Path:
    """Where GPU lock files live: $ORTHOREG_GPU_LOCK_DIR, else a per-user folder under the temp dir
    (per SLURM job inside an allocation)."""
    configured = os.environ.get(LOCK_DIR_ENV)
    if configured:
        return Path(configured)
    job = os.environ.get("SLURM_JOB_ID")
    scope = f"-slurm{job}" if job else ""
    return Path(tempfile.gettempdir()) / f"orthoreg-gpu-locks-{os.getuid()}{scope}"


def visible_gpus(n_devices: int, visible: str | None) -> list[str]:
    """The names of the `n_devices` GPUs torch sees, in torch's index order: the entries of
    CUDA_VISIBLE_DEVICES (`visible`; physical indices, UUIDs or MIG names), or 0..n-1 when unset."""
    if n_devices < 1:
        raise ValueError(f"n_devices must be at least 1, got {n_devices}")
    if visible is None:
        return [str(index) for index in range(n_devices)]
    entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
    if len(entries) < n_devices:
        raise ValueError(
            f"{VISIBLE_ENV}={visible!r} lists {len(entries)} GPUs but {n_devices} are visible; set it to "
            f"a comma-separated list of GPU indices or UUIDs, or unset it"
        )
    return entries[:n_devices]


def lock_name(gpu: str) -> str:
    """The lock file of one GPU name, with characters a file name cannot hold ('/' in MIG names)
    replaced."""
    return "gpu" + re.sub(r"[^A-Za-z0-9_.-]", "_", gpu) + ".lock"


def claim_gpu(
    n_devices: int, lock_dir: str | os.PathLike[str] | None = None, *, timeout: float = 0.0, poll: float = 0.5
) -> int:
    """Claim the first free GPU among the `n_devices` visible ones and return its index within the
    visible set. GPUs are named as CUDA_VISIBLE_DEVICES names them (see `visible_gpus`). Waits up to
    `timeout` seconds for one to free up, then raises RuntimeError naming the lock folder."""
    gpus = visible_gpus(n_devices, os.environ.get(VISIBLE_ENV))
    folder = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for index, gpu in enumerate(gpus):
            handle = open(folder / lock_name(gpu), "a+")  # noqa: SIM115 - held for the process life
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


def gpu_for_this_job(
    n_devices: int, lock_dir: str | os.PathLike[str] | None = None, *, timeout: float = CLAIM_TIMEOUT
) -> int:
    """The index (within the visible set) of the GPU this process should use: the only one when one
    is visible, else one claimed for the life of the process (see the module docstring)."""
    if n_devices == 1:
        return 0
    return claim_gpu(n_devices, lock_dir, timeout=timeout)


def resolve_device(name: str) -> torch.device:
    """The torch device for a config's `device`: auto picks CUDA when present. With several visible
    GPUs, one free GPU is claimed for the life of the process, whatever CUDA_VISIBLE_DEVICES lists."""
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; valid: {', '.join(DEVICES)}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch sees no CUDA device; use cpu or auto")
    index = gpu_for_this_job(torch.cuda.device_count())
    torch.cuda.set_device(index)
    return torch.device("cuda", index)
