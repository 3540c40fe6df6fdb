"""Robustness tables: corruption accuracy by severity (official and generated never pooled) and
FGSM/PGD accuracy at eps = 8/255 beside clean accuracy."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from orthoreg.report.collect import RunData
from orthoreg.report.format import mark_best, mean_std_text, pivot_display
from orthoreg.report.order import sort_frame
from orthoreg.report.registry import TableBody, register_table
from orthoreg.report.tables import CELL, ENOUGH, n_range, seed_summary
from orthoreg.report.writers import Table
from orthoreg.robustness import available_attacks, get_attack

TABLE_EPS = 8 / 255
EPS_TOLERANCE = 1e-6
SOURCE_LABEL = {"official": "official CIFAR-C", "generated": "generated in code"}


def attack_label(attack: str, steps: int) -> str:
    """'clean', or the registered attack's label ('FGSM', 'PGD-10', ...)."""
    return "clean" if attack == "clean" else get_attack(attack).label(int(steps))


def attack_order(label: str) -> tuple[int, int]:
    """Clean first, then attacks in registration order, shorter before longer."""
    if label == "clean":
        return (-1, 0)
    for position, name in enumerate(available_attacks()):
        attack = get_attack(name)
        for steps in range(1, 1001):
            if attack.label(steps) == label:
                return (position, steps)
    return (len(available_attacks()), 0)


def images_text(frame: pd.DataFrame) -> str:
    """'200 images' (or '100-200 images') from the records' n."""
    counts = frame["n"].dropna().astype(int) if "n" in frame else pd.Series(dtype=int)
    if counts.empty:
        return "an unrecorded number of images"
    low, high = counts.min(), counts.max()
    return f"{low} images" if low == high else f"{low}-{high} images"


def corruption_per_seed(data: RunData) -> pd.DataFrame:
    """Per run, source and severity (1..5 and 'all'): mean accuracy (%) over the corruptions."""
    corruptions = data.main(data.corruptions) if len(data.corruptions) else data.corruptions
    if corruptions.empty:
        return pd.DataFrame(columns=[*CELL, "seed", "source", "severity", "accuracy_pct"])
    corruptions = corruptions.assign(accuracy_pct=100.0 * corruptions["accuracy"])
    keys = [*CELL, "seed", "source"]
    by_severity = corruptions.groupby([*keys, "severity"], sort=False)["accuracy_pct"].mean().reset_index()
    by_severity["severity"] = by_severity["severity"].astype(int).astype(str)
    overall = (
        corruptions.groupby(keys, sort=False)["accuracy_pct"].mean().reset_index().assign(severity="all")
    )
    return pd.concat([by_severity, overall], ignore_index=True)


@register_table(
    "robustness_corruptions",
    "Corruption accuracy (%) by severity per regulariser; official CIFAR-C and generated kept apart.",
    skip="no corruption records in robustness.json (run `orthoreg robustness`)",
)
def corruption_table(data: RunData, tables: Mapping[str, Table]) -> TableBody | None:
    per_seed = corruption_per_seed(data)
    if per_seed.empty:
        return None
    group = ["dataset", "model", "source", "regularizer", "severity"]
    summary = seed_summary(per_seed, "accuracy_pct", group)
    summary["_order"] = summary["severity"].map(lambda s: 6 if s == "all" else int(s))
    summary = sort_frame(summary, ["dataset", "model", "source", "regularizer", "_order"]).drop(
        columns="_order"
    )
    summary["source"] = summary["source"].map(SOURCE_LABEL)
    summary["best"] = mark_best(
        summary, "mean", ["dataset", "model", "source", "severity"], eligible=summary["n"] >= ENOUGH
    )
    summary["cell"] = [mean_std_text(r.mean, r.std) for r in summary.itertuples()]
    display, bold = pivot_display(summary, ["dataset", "model", "source", "regularizer"], "severity", "cell")
    display = display.rename(columns={"all": "mean (all)"})
    bold = bold.rename(columns={"all": "mean (all)"})
    records = data.main(data.corruptions)
    return TableBody(
        f"Accuracy (%) under common corruptions on {images_text(records)} per corruption and severity, "
        "averaged over corruption types per severity (1-5) and over all, then mean ± std over seeds "
        f"({n_range(summary['n'])}). Official CIFAR-C files and corruptions generated in code are separate "
        f"rows and are never averaged together. Bold: best regulariser per column among n >= {ENOUGH}.",
        summary.drop(columns="cell").rename(columns={"mean": "mean_accuracy_pct", "std": "std_accuracy_pct"}),
        display,
        bold,
    )


def adversarial_per_seed(data: RunData) -> pd.DataFrame:
    adversarial = data.main(data.adversarial) if len(data.adversarial) else data.adversarial
    if adversarial.empty:
        return pd.DataFrame(columns=[*CELL, "seed", "attack", "steps", "eps", "accuracy_pct", "label"])
    adversarial = adversarial.assign(accuracy_pct=100.0 * adversarial["accuracy"])
    adversarial["label"] = [
        attack_label(a, s) for a, s in zip(adversarial["attack"], adversarial["steps"], strict=True)
    ]
    return adversarial


@register_table(
    "robustness_adversarial",
    "Clean, FGSM and PGD accuracy (%) at eps = 8/255 (L-inf, pixel space) per regulariser.",
    skip="no FGSM/PGD record at eps = 8/255 in robustness.json",
)
def adversarial_table(data: RunData, tables: Mapping[str, Table]) -> TableBody | None:
    adversarial = adversarial_per_seed(data)
    at_eps = adversarial[
        ((adversarial["eps"] - TABLE_EPS).abs() < EPS_TOLERANCE) | (adversarial["label"] == "clean")
    ]
    if at_eps.empty or (at_eps["label"] == "clean").all():
        return None
    summary = seed_summary(at_eps, "accuracy_pct", [*CELL, "label"])
    summary["_order"] = summary["label"].map(attack_order)
    summary = sort_frame(summary, [*CELL, "_order"]).drop(columns="_order")
    summary["best"] = mark_best(
        summary, "mean", ["dataset", "model", "label"], eligible=summary["n"] >= ENOUGH
    )
    summary["cell"] = [mean_std_text(r.mean, r.std) for r in summary.itertuples()]
    display, bold = pivot_display(summary, CELL, "label", "cell")
    return TableBody(
        f"Accuracy (%) under L-inf attacks at eps = 8/255 in [0, 1] pixel space on {images_text(at_eps)} "
        "(PGD-k: k steps of 2/255 with random start), beside clean accuracy on the same images; mean ± std "
        f"over seeds ({n_range(summary['n'])}). Bold: best regulariser per column among n >= {ENOUGH}.",
        summary.drop(columns="cell").rename(
            columns={"label": "attack", "mean": "mean_accuracy_pct", "std": "std_accuracy_pct"}
        ),
        display,
        bold,
    )
