"""Robustness tables: corruption accuracy by severity (official and generated never pooled) and
FGSM/PGD accuracy at eps = 8/255 beside clean accuracy."""

from __future__ import annotations

import pandas as pd

from orthoreg.report.collect import RunData
from orthoreg.report.format import mark_best, mean_std_text, pivot_display
from orthoreg.report.order import sort_frame
from orthoreg.report.tables import CELL, seed_summary
from orthoreg.report.writers import Table

TABLE_EPS = 8 / 255
EPS_TOLERANCE = 1e-6
SOURCE_LABEL = {"official": "official CIFAR-C", "generated": "generated in code"}


def attack_label(attack: str, steps: int) -> str:
    """'clean', 'FGSM' or 'PGD-<steps>'."""
    if attack == "clean":
        return "clean"
    return "FGSM" if attack == "fgsm" else f"PGD-{int(steps)}"


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


def corruption_table(data: RunData) -> Table | None:
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
    summary["best"] = mark_best(summary, "mean", ["dataset", "model", "source", "severity"])
    summary["cell"] = [mean_std_text(r.mean, r.std) for r in summary.itertuples()]
    display, bold = pivot_display(summary, ["dataset", "model", "source", "regularizer"], "severity", "cell")
    display = display.rename(columns={"all": "mean (all)"})
    bold = bold.rename(columns={"all": "mean (all)"})
    return Table(
        "robustness_corruptions",
        "Corruption accuracy (%) by severity per regulariser; official CIFAR-C and generated kept apart.",
        "Accuracy (%) under common corruptions, averaged over corruption types per severity (1-5) and over "
        "all, then mean ± std over seeds. Official CIFAR-C files and corruptions generated in code are "
        "separate rows and are never averaged together. Bold: best regulariser per column.",
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


def adversarial_table(data: RunData) -> Table | None:
    adversarial = adversarial_per_seed(data)
    at_eps = adversarial[
        ((adversarial["eps"] - TABLE_EPS).abs() < EPS_TOLERANCE) | (adversarial["label"] == "clean")
    ]
    if at_eps.empty or (at_eps["label"] == "clean").all():
        return None
    summary = seed_summary(at_eps, "accuracy_pct", [*CELL, "label"])
    summary["_order"] = summary["label"].map(
        lambda label: (label != "clean", label != "FGSM", int(label[4:]) if label.startswith("PGD") else 0)
    )
    summary = sort_frame(summary, [*CELL, "_order"]).drop(columns="_order")
    summary["best"] = mark_best(summary, "mean", ["dataset", "model", "label"])
    summary["cell"] = [mean_std_text(r.mean, r.std) for r in summary.itertuples()]
    display, bold = pivot_display(summary, CELL, "label", "cell")
    return Table(
        "robustness_adversarial",
        "Clean, FGSM and PGD accuracy (%) at eps = 8/255 (L-inf, pixel space) per regulariser.",
        "Accuracy (%) under L-inf attacks at eps = 8/255 in [0, 1] pixel space (PGD-k: k steps of 2/255 "
        "with random start), beside clean accuracy on the same images; mean ± std over seeds. "
        "Bold: best regulariser per column.",
        summary.drop(columns="cell").rename(
            columns={"label": "attack", "mean": "mean_accuracy_pct", "std": "std_accuracy_pct"}
        ),
        display,
        bold,
    )
