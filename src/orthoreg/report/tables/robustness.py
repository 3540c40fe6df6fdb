"""Robustness tables: corruption accuracy by severity (official and generated never pooled) and
FGSM/PGD accuracy at eps = 8/255 beside clean accuracy."""

from __future__ import annotations

import pandas as pd

from orthoreg.report.analysis import robustness
from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.summary import CELL, ENOUGH
from orthoreg.report.registry import TableBody, register_table
from orthoreg.report.tables.format import mean_std_text, n_range, pivot_display


def images_text(frame: pd.DataFrame) -> str:
    """'200 images' (or '100-200 images') from the records' n."""
    counts = robustness.image_count_range(frame)
    if counts is None:
        return "an unrecorded number of images"
    low, high = counts
    return f"{low} images" if low == high else f"{low}-{high} images"


def _cells(summary: pd.DataFrame) -> pd.DataFrame:
    return summary.assign(
        cell=[mean_std_text(r.mean_accuracy_pct, r.std_accuracy_pct) for r in summary.itertuples()]
    )


@register_table(
    "robustness_corruptions",
    "Corruption accuracy (%) by severity per regulariser; official CIFAR-C and generated kept apart.",
    caption="Accuracy (%) under common corruptions on {images} per corruption and severity, averaged over "
    "corruption types per severity (1-5) and over all, then mean ± std over seeds ({n}). Official "
    "CIFAR-C files and corruptions generated in code are separate rows and are never averaged together. "
    f"Bold: best regulariser per column among n >= {ENOUGH}.",
    skip="no corruption records in robustness.json (run `orthoreg robustness`)",
)
def corruption_table(data: RunData) -> TableBody | None:
    summary = robustness.corruption_summary(data)
    if summary.empty:
        return None
    display, bold = pivot_display(
        _cells(summary), ["dataset", "model", "source", "regularizer"], "severity", "cell"
    )
    names = {"all": "mean (all)"}
    facts = {"images": images_text(data.main(data.corruptions)), "n": n_range(summary["n"])}
    return TableBody(summary, display.rename(columns=names), bold.rename(columns=names), facts)


@register_table(
    "robustness_adversarial",
    "Clean, FGSM and PGD accuracy (%) at eps = 8/255 (L-inf, pixel space) per regulariser.",
    caption="Accuracy (%) under L-inf attacks at eps = 8/255 in [0, 1] pixel space on {images} (PGD-k: k "
    "steps of 2/255 with random start), beside clean accuracy on the same images; mean ± std over seeds "
    f"({{n}}). Bold: best regulariser per column among n >= {ENOUGH}.",
    skip="no FGSM/PGD record at eps = 8/255 in robustness.json",
)
def adversarial_table(data: RunData) -> TableBody | None:
    at_eps = robustness.adversarial_at_table_eps(data)
    if at_eps.empty:
        return None
    summary = robustness.adversarial_summary(at_eps)
    display, bold = pivot_display(_cells(summary), CELL, "attack", "cell")
    return TableBody(summary, display, bold, {"images": images_text(at_eps), "n": n_range(summary["n"])})
