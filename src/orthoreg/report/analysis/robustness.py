"""Robustness per seed and over seeds: corruption accuracy by severity (official and generated never
pooled: they are different images) and attack accuracy at each eps beside clean accuracy."""

from __future__ import annotations

import pandas as pd

from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.order import sort_frame
from orthoreg.report.analysis.summary import CELL, ENOUGH, mark_best, seed_summary
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


def corruption_per_seed(data: RunData) -> pd.DataFrame:
    """Per run, source and severity (1..5 and 'all'): mean accuracy (%) over the corruptions."""
    corruptions = data.main(data.corruptions)
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


def corruption_summary(data: RunData) -> pd.DataFrame:
    """Per (dataset, model, source label, regulariser, severity): accuracy over seeds, best marked."""
    per_seed = corruption_per_seed(data)
    if per_seed.empty:
        return per_seed
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
    return summary.rename(columns={"mean": "mean_accuracy_pct", "std": "std_accuracy_pct"})


def adversarial_per_seed(data: RunData) -> pd.DataFrame:
    """Per run: every attack record (and clean accuracy) in percent, with its label."""
    adversarial = data.main(data.adversarial)
    if adversarial.empty:
        return pd.DataFrame(columns=[*CELL, "seed", "attack", "steps", "eps", "accuracy_pct", "label"])
    adversarial = adversarial.assign(accuracy_pct=100.0 * adversarial["accuracy"])
    adversarial["label"] = [
        attack_label(a, s) for a, s in zip(adversarial["attack"], adversarial["steps"], strict=True)
    ]
    return adversarial


def adversarial_at_table_eps(data: RunData) -> pd.DataFrame:
    """The records at eps = TABLE_EPS and clean accuracy (empty when no attack is at that eps)."""
    adversarial = adversarial_per_seed(data)
    at_eps = adversarial[
        ((adversarial["eps"] - TABLE_EPS).abs() < EPS_TOLERANCE) | (adversarial["label"] == "clean")
    ]
    if at_eps.empty or (at_eps["label"] == "clean").all():
        return at_eps.iloc[:0]
    return at_eps


def adversarial_summary(at_eps: pd.DataFrame) -> pd.DataFrame:
    """Per cell and attack label: accuracy over seeds at TABLE_EPS, best marked per attack."""
    summary = seed_summary(at_eps, "accuracy_pct", [*CELL, "label"])
    summary["_order"] = summary["label"].map(attack_order)
    summary = sort_frame(summary, [*CELL, "_order"]).drop(columns="_order")
    summary["best"] = mark_best(
        summary, "mean", ["dataset", "model", "label"], eligible=summary["n"] >= ENOUGH
    )
    return summary.rename(columns={"label": "attack", "mean": "mean_accuracy_pct", "std": "std_accuracy_pct"})


def image_count_range(frame: pd.DataFrame) -> tuple[int, int] | None:
    """The smallest and largest number of images the records were measured on (None: unrecorded)."""
    counts = frame["n"].dropna().astype(int) if "n" in frame else pd.Series(dtype=int)
    if counts.empty:
        return None
    return int(counts.min()), int(counts.max())
