"""Where and with what a result was computed: package versions, the git commit (and whether the tree
had uncommitted changes), the device, the CPU's model and instruction-set flags (bit-exact CPU
results hold only between machines whose torch picks the same kernels), and the time. run.json,
eval.json and robustness.json all carry it."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch


def _git(*args: str) -> str | None:
    """What a git command prints in the repository this package is installed from, or None outside a
    git checkout (or without git)."""
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_commit() -> str | None:
    """HEAD of the repository this package is installed from, or None outside a git checkout."""
    return _git("rev-parse", "HEAD") or None


def git_dirty() -> bool | None:
    """Whether tracked files differ from HEAD (None outside a git checkout): a dirty commit is not
    the code that ran."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def cpu_description() -> dict[str, Any]:
    """The CPU's model name and flags as the kernel reports them (Linux; the platform's processor
    string elsewhere), and the vector ISA torch dispatches to (e.g. AVX512)."""
    fields: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():  # the first processor's block is enough
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    model = fields.get("model name") or platform.processor() or None
    flags = sorted((fields.get("flags") or fields.get("Features") or "").split())
    return {"model": model, "capability": torch.backends.cpu.get_cpu_capability(), "flags": flags}


def provenance(device: torch.device, wall_seconds: float, cpu_seconds: float) -> dict[str, Any]:
    """What eval.json and robustness.json record of their own computation."""
    return {
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "versions": versions(),
        "device": device_label(device),
        "threads": torch.get_num_threads(),
        "cpu": cpu_description(),
        "wall_seconds": wall_seconds,
        "cpu_seconds": cpu_seconds,
    }


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": package_version("torchvision"),
        "orthoreg": package_version("orthoreg"),
    }


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
