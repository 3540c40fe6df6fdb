"""What a set of runs cost the machine: per stage (train, evaluate, robustness) the number of records
that timed it and the sum of their wall and CPU seconds, in hours, and the total.

The sums are of each job's own time; jobs that ran side by side overlap in wall time, so the machine's
elapsed time is the wall sum divided by how many ran at once, and CPU time is the part that does not
depend on it.
"""

from __future__ import annotations

import pandas as pd

from orthoreg.report.analysis.collect import STAGE_RECORDS, RunData

STAGES = ("train", *STAGE_RECORDS)
TOTAL = "all stages"
BUDGET_COLUMNS = ["stage", "records", "cpu_hours", "wall_hours"]


def budget_summary(data: RunData) -> pd.DataFrame:
    """One row per stage that timed at least one run, and a total row over them."""
    runs = data.runs
    rows = []
    for stage in STAGES:
        wall, cpu = f"{stage}_wall_seconds", f"{stage}_cpu_seconds"
        if wall not in runs or runs[wall].notna().sum() == 0:
            continue
        rows.append(
            {
                "stage": stage,
                "records": int(runs[wall].notna().sum()),
                "cpu_hours": runs[cpu].sum(min_count=1) / 3600,
                "wall_hours": runs[wall].sum() / 3600,
            }
        )
    if not rows:
        return pd.DataFrame(columns=BUDGET_COLUMNS)
    frame = pd.DataFrame(rows, columns=BUDGET_COLUMNS)
    total = {
        "stage": TOTAL,
        "records": int(frame["records"].sum()),
        "cpu_hours": frame["cpu_hours"].sum(min_count=1),
        "wall_hours": frame["wall_hours"].sum(),
    }
    return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
