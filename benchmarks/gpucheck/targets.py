"""Every target the GPU check holds its measurements against, in one place.

A target row reads measured / target: an "at most" target is met at a ratio <= 1, an "at least" one at
>= 1. Where --quick measures a stand-in model, the row names the model it stands in for. The rows are
built from the parts' records alone (plain dictionaries), so this module runs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpucheck.rounding import rounded
from orthoreg.regularizers import available_regularizers

Records = Mapping[str, Mapping[str, Any]]  # the parts' records, by part name

# a regulariser's overhead in a training step (its step time over the step with `none`, minus 1), at
# most, per model: every registered regulariser, hard constraints (their parametrisation) included
PENALTY_OVERHEAD = {"wrn28_10": 0.05, "resnet110": 0.10}
# model-FLOP utilisation of the engine's step (bf16 on a GPU), the better of eager and compiled, at least
MFU = {"wrn28_10": 0.35, "resnet18": 0.25}
# the engine's step time over the textbook PyTorch step's, minus 1, at most: every model and mode
ENGINE_OVERHEAD = 0.05


def target(
    what: str, measured: float | None, limit: float, kind: str, model: str, target_model: str, why: str = ""
) -> dict[str, Any]:
    """One target as measured / target; unmeasured, with `why`."""
    row: dict[str, Any] = {"target": what, "kind": kind, "limit": limit, "model": model}
    if model != target_model:
        row["stands_in_for"] = target_model
    if measured is None:
        return {**row, "measured": None, "ratio": None, "met": None, "reason": why or "not measured"}
    ratio = measured / limit
    return {
        **row,
        "measured": rounded(measured),
        "ratio": rounded(ratio),
        "met": ratio <= 1 if kind == "at most" else ratio >= 1,
    }


def not_measured(parts: Records, part: str) -> str:
    record = parts.get(part, {})
    return f"the {part} part: {record.get('status', 'not run')} ({record.get('reason', 'no value for this')})"


def throughput_rows(parts: Records) -> list[dict[str, Any]]:
    """The rows of the throughput (eager) and compiled parts."""
    return [row for part in ("throughput", "compiled") for row in parts.get(part, {}).get("rows", [])]


def penalty_targets(parts: Records, stand_in: Mapping[str, str]) -> list[dict[str, Any]]:
    costs = parts.get("regularizers", {}).get("models", {})
    rows = []
    for target_model, limit in PENALTY_OVERHEAD.items():
        model = stand_in[target_model]
        for name in sorted(name for name in available_regularizers() if name != "none"):
            ratio = costs.get(model, {}).get("step_ratio", {}).get(name)
            overhead = None if ratio is None else ratio - 1
            what = f"{name} penalty overhead in a {target_model} step"
            why = not_measured(parts, "regularizers")
            rows.append(target(what, overhead, limit, "at most", model, target_model, why))
    return rows


def mfu_targets(parts: Records, stand_in: Mapping[str, str]) -> list[dict[str, Any]]:
    rows = []
    for target_model, limit in MFU.items():
        model = stand_in[target_model]
        mfus = [
            row["mfu"] for row in throughput_rows(parts) if row["model"] == model and row["mfu"] is not None
        ]
        best = max(mfus) if mfus else None
        why = not_measured(parts, "throughput")
        rows.append(target(f"{target_model} MFU", best, limit, "at least", model, target_model, why))
    return rows


def engine_targets(parts: Records) -> list[dict[str, Any]]:
    return [
        target(
            f"engine step overhead over plain PyTorch, {row['model']} {row['mode']}",
            row["engine_over_plain"] - 1,
            ENGINE_OVERHEAD,
            "at most",
            row["model"],
            row["model"],
        )
        for row in throughput_rows(parts)
    ]


def targets(parts: Records, stand_in: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every target row: the penalties' overheads, the MFU floors, the engine against the plain step."""
    return [*penalty_targets(parts, stand_in), *mfu_targets(parts, stand_in), *engine_targets(parts)]
