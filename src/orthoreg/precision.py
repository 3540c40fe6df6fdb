"""The forward pass's fast path, chosen the same way by training, evaluation and robustness: bf16
autocast where the hardware computes bf16 natively (any CUDA GPU; a CPU with AMX-BF16 or
AVX512-BF16), fp32 elsewhere, and channels-last tensors. Penalties, losses and optimiser steps stay in
fp32; every result file records the dtype its forward pass ran in.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

AMP_MODES = ("auto", "bf16", "off")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX-BF16 or AVX512-BF16), where bf16 autocast is
    faster than fp32; elsewhere it is emulated and slower. Read from /proc/cpuinfo (Linux)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The forward pass's autocast dtype for an `amp` mode (auto, bf16, off) on `device`, or None for fp32."""
    if amp not in AMP_MODES:
        raise ValueError(f"unknown amp mode {amp!r}; valid: {', '.join(AMP_MODES)}")
    if amp == "off":
        return None
    if amp == "bf16" or device.type == "cuda" or cpu_has_native_bf16():
        return torch.bfloat16
    return None


def autocast_factory(dtype: torch.dtype | None, device: torch.device) -> Callable[[], Any]:
    """A context-manager factory: autocast to `dtype` on `device`, or nothing for fp32."""
    if dtype is None:
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


class Autocast(nn.Module):
    """`model` with its forward pass under autocast to `dtype`, returning fp32 outputs: attacks and
    corruption passes use it unchanged (their input gradients stay fp32)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.model, self.dtype, self.device_type = model, dtype, device.type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.model(x).float()


def dtype_name(dtype: torch.dtype | None) -> str:
    return "fp32" if dtype is None else str(dtype).removeprefix("torch.")
