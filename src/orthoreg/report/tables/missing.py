"""The missing-runs table: the runs an expected grid names that are absent or incomplete."""

from __future__ import annotations

from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.missing import missing_runs
from orthoreg.report.registry import TableBody, register_table


@register_table(
    "missing_runs",
    "Expected runs that are absent, unfinished or not evaluated (from --expected).",
    caption="{missing} of {expected} expected runs are absent or incomplete; the other tables use what exists.",
    skip="no --expected grid was given",
)
def missing_table(data: RunData) -> TableBody | None:
    if data.expected is None:
        return None
    missing = missing_runs(data.expected, data)
    return TableBody(
        missing, missing.astype(str), None, {"missing": len(missing), "expected": len(data.expected)}
    )
