"""The compiled part: the throughput part again with torch.compile, as `train --compile` compiles
(the model, dynamic=False); each model's compile time is recorded but kept out of the rates. It runs
last, so the time the other parts leave unused goes to the longest compiles."""

from __future__ import annotations

from gpucheck.harness import Context, Deadline, Skip, part
from gpucheck.printing import throughput_lines
from gpucheck.steps import measure_rows


@part(
    "compiled",
    "the throughput part with torch.compile, compile time recorded apart",
    weight=145,
    quick_weight=1,
    lines=throughput_lines,
)
def compiled(context: Context, record: dict, deadline: Deadline) -> None:
    if context.plan.compile_skip:
        raise Skip(context.plan.compile_skip)
    measure_rows(context, record, deadline, compile=True)
