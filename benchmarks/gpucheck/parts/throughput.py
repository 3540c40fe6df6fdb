"""The throughput part: eager training throughput and model-FLOP utilisation of the engine's step
against the plain PyTorch step, per model of the plan."""

from __future__ import annotations

from gpucheck.harness import Context, Deadline, part
from gpucheck.printing import throughput_lines
from gpucheck.steps import measure_rows


@part(
    "throughput",
    "eager engine step against the plain PyTorch step: images/s, TFLOP/s, MFU",
    weight=45,
    quick_weight=4,
    lines=throughput_lines,
)
def throughput(context: Context, record: dict, deadline: Deadline) -> None:
    measure_rows(context, record, deadline, compile=False)
