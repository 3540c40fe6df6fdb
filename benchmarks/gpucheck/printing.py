"""What the GPU check prints: each part's record in a few lines as it finishes, and the targets at the
end. The JSON holds everything; these lines are for the person watching the command."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Record = Mapping[str, Any]
# record keys `record_lines` leaves out (the status line shows some; others are tables, or too long to
# read in a terminal)
DETAIL_KEYS = ("status", "seconds", "allowed_seconds", "reason", "traceback", "claimants", "output_tail")
THROUGHPUT_COLUMNS = {
    "model": "model",
    "mode": "mode",
    "engine_images_per_s": "engine img/s",
    "plain_images_per_s": "plain img/s",
    "engine_over_plain": "engine/plain",
    "gflop_per_step": "GFLOP/step",
    "tflops": "TFLOP/s",
    "mfu": "MFU",
}
PENALTY_COLUMNS = {"batched_ms": "batched ms", "loop_ms": "loop ms", "loop_over_batched": "loop/batched"}


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Right-aligned columns, a missing value as "-"."""
    cells = [[str(value) for value in header], *[["-" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[k]) for row in cells) for k in range(len(header))]
    return ["  " + "  ".join(value.rjust(widths[k]) for k, value in enumerate(row)) for row in cells]


def record_lines(record: Record) -> list[str]:
    """A record's values, one `key: JSON` line each."""
    shown = {key: value for key, value in record.items() if key not in DETAIL_KEYS}
    return [f"  {key}: {json.dumps(value)}" for key, value in shown.items()]


def throughput_lines(record: Record) -> list[str]:
    rows = [[row.get(key) for key in THROUGHPUT_COLUMNS] for row in record.get("rows", [])]
    return table(list(THROUGHPUT_COLUMNS.values()), rows)


def regularizer_lines(record: Record) -> list[str]:
    """Per model: the step with `none`, then each regulariser's step and (a penalty's) batched and
    looped value + backward."""
    lines = []
    for model, costs in record.get("models", {}).items():
        rows = [
            [
                name,
                costs["step_ms"][name],
                ratio,
                *(costs.get(key, {}).get(name) for key in PENALTY_COLUMNS),
            ]
            for name, ratio in costs["step_ratio"].items()
        ]
        lines.append(f"  {model}: step with `none` {costs['step_ms']['none']} ms")
        lines += table(("regulariser", "step ms", "step/none", *PENALTY_COLUMNS.values()), rows)
    return lines


def part_lines(name: str, record: Record, body: Callable[[Record], list[str]]) -> list[str]:
    """A part's status line, its reason when it has one, then `body`'s lines of its record."""
    lines = [
        f"== {name}: {record['status']} in {record['seconds']} s (allowed {record['allowed_seconds']} s)"
    ]
    if "reason" in record:
        lines.append(f"  reason: {record['reason']}")
    return lines + body(record)


def target_lines(rows: Sequence[Record]) -> list[str]:
    def met(row: Record) -> str:
        return "-" if row["met"] is None else ("yes" if row["met"] else "NO")

    shown = [
        [
            row["target"] + (f" [{row['model']} stands in]" if "stands_in_for" in row else ""),
            row["kind"],
            row["limit"],
            row["measured"],
            row["ratio"],
            met(row),
        ]
        for row in rows
    ]
    return ["== targets (measured / target; 'at most' met at <= 1, 'at least' at >= 1)"] + table(
        ("target", "kind", "limit", "measured", "measured/target", "met"), shown
    )
