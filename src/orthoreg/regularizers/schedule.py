"""Coefficient schedules: lambda as a function of training progress in [0, 1]."""

from __future__ import annotations

# Bansal et al.'s decay (their epochs 0, 20, 50, 70, 120 of 200) as fractions of training.
STEP_DECAY = ((0.0, 1.0), (0.10, 1e-3), (0.25, 1e-4), (0.35, 1e-6), (0.60, 0.0))
SCHEDULES = ("constant", "step")


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; available: {', '.join(SCHEDULES)}")


def schedule_multiplier(schedule: str, progress: float) -> float:
    """The factor on lambda at `progress` (fraction of training done)."""
    check_schedule(schedule)
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress!r}")
    if schedule == "constant":
        return 1.0
    return next(factor for start, factor in reversed(STEP_DECAY) if progress >= start)
