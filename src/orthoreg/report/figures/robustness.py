"""Robustness figures: accuracy against attack strength, and corruption accuracy against severity."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.robustness import (
    SOURCE_LABEL,
    adversarial_per_seed,
    attack_order,
    corruption_per_seed,
)
from orthoreg.report.figures.draw import draw_lines, finish, per_pair, seeds_note
from orthoreg.report.figures.style import new_figure, regularizer_styles
from orthoreg.report.registry import Drawn, register_figure


def attacked(adversarial: pd.DataFrame) -> pd.DataFrame:
    """The records of (dataset, model) pairs with at least one attack (not clean accuracy alone)."""
    if adversarial.empty:
        return adversarial
    keep = (
        adversarial["label"]
        .ne("clean")
        .groupby([adversarial["dataset"], adversarial["model"]])
        .transform("any")
    )
    return adversarial[keep.astype(bool)]


@register_figure(
    "robustness_eps",
    "Accuracy against L-inf attack strength eps, one panel per attack (clean accuracy at eps = 0).",
    caption="Accuracy against attack strength eps per regulariser on {dataset}/{model} ({attacks}).",
    skip="no adversarial records in robustness.json",
    per_pair=True,
)
def eps_figures(data: RunData) -> list[Drawn]:
    def draw(part: pd.DataFrame, dataset: str, model: str) -> tuple[dict, Figure]:
        labels = sorted(set(part["label"]) - {"clean"}, key=attack_order)
        styles = regularizer_styles(part["regularizer"])
        figure, axes = new_figure(1, len(labels), sharey=True)
        for axis, label in zip(axes, labels, strict=True):
            curve = part[part["label"].isin([label, "clean"])].assign(eps_255=lambda f: 255.0 * f["eps"])
            draw_lines(axis, curve, "eps_255", "accuracy_pct", styles)
            axis.set_xlabel("eps (x 1/255, L-inf)")
            axis.set_ylabel("accuracy (%)")
            axis.set_title(label)
        images = int(part["n"].max()) if "n" in part and part["n"].notna().any() else None
        title = f"{dataset} / {model}" + (f", {images} test images" if images else "")
        return {"attacks": ", ".join(labels)}, finish(figure, axes, title, seeds_note(part))

    return per_pair(attacked(adversarial_per_seed(data)), "robustness_eps", draw)


@register_figure(
    "robustness_severity",
    "Mean corruption accuracy against severity, official CIFAR-C and generated corruptions in separate panels.",
    caption="Corruption accuracy by severity per regulariser on {dataset}/{model} ({sources}, kept apart).",
    skip="no corruption records in robustness.json",
    per_pair=True,
)
def severity_figures(data: RunData) -> list[Drawn]:
    per_seed = corruption_per_seed(data)
    per_seed = per_seed[per_seed["severity"] != "all"]
    per_seed = per_seed.assign(severity=per_seed["severity"].astype(int))

    def draw(part: pd.DataFrame, dataset: str, model: str) -> tuple[dict, Figure]:
        sources = [s for s in SOURCE_LABEL if s in set(part["source"])]
        styles = regularizer_styles(part["regularizer"])
        figure, axes = new_figure(1, len(sources), sharey=True)
        for axis, source in zip(axes, sources, strict=True):
            draw_lines(axis, part[part["source"] == source], "severity", "accuracy_pct", styles)
            axis.set_xticks(range(1, 6))
            axis.set_xlabel("corruption severity")
            axis.set_ylabel("mean accuracy over corruptions (%)")
            axis.set_title(SOURCE_LABEL[source])
        facts = {"sources": " and ".join(SOURCE_LABEL[s] for s in sources)}
        return facts, finish(figure, axes, f"{dataset} / {model}", seeds_note(part))

    return per_pair(per_seed, "robustness_severity", draw)
