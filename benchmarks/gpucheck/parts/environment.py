"""The environment part: versions, the device, and the peak matmul rate in the dtype the engine's
forward pass runs in (bf16 on CUDA), the denominator of every model-FLOP utilisation after it."""

from __future__ import annotations

import os
import platform

import torch
from timing import best_seconds

from gpucheck.harness import Context, Deadline, part
from gpucheck.rounding import rounded
from orthoreg import __version__
from orthoreg.config import default_of
from orthoreg.precision import autocast_dtype
from orthoreg.provenance import device_label, git_commit


def forward_dtype(device: torch.device) -> torch.dtype:
    """The dtype of the engine's forward pass on `device` with the default `amp` (bf16 autocast where
    the device computes bf16 natively, else fp32)."""
    return autocast_dtype(default_of("amp"), device) or torch.float32


def matmul_tflops(size: int, dtype: torch.dtype, device: torch.device) -> float:
    """TFLOP/s of a square matmul: 2 size^3 FLOPs per product, best of three rounds of ten."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    repeats = 10

    def products() -> None:
        for _ in range(repeats):
            torch.mm(a, b)

    best = best_seconds({"mm": products}, device, 3, 1)["mm"]
    return 2 * size**3 * repeats / best / 1e12


def gpu_properties(device: torch.device) -> dict[str, object]:
    properties = torch.cuda.get_device_properties(device)
    return {
        "gpu": properties.name,
        "capability": f"{properties.major}.{properties.minor}",
        "memory_gib": round(properties.total_memory / 2**30, 1),
        "visible_gpus": torch.cuda.device_count(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


@part("environment", "versions, the device and its peak matmul rate", weight=10, quick_weight=2)
def environment(context: Context, record: dict, deadline: Deadline) -> None:
    device = context.device
    record.update(
        device=device_label(device),
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        orthoreg=__version__,
        git_commit=git_commit(),
        cpu_count=os.cpu_count(),
        load_average=round(os.getloadavg()[0], 2),
    )
    if context.cuda:
        record.update(gpu_properties(device))
    dtype = forward_dtype(device)
    record["peak_dtype"] = str(dtype).removeprefix("torch.")
    record["matmul_tflops"] = {}
    for size in context.plan.matmul_sizes:
        deadline.check(f"the {size}^3 matmul")
        record["matmul_tflops"][str(size)] = rounded(matmul_tflops(size, dtype, device))
        record["peak_tflops"] = max(record["matmul_tflops"].values())
