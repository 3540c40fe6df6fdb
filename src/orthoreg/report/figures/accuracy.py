"""Accuracy figures: the gain over `none` against depth, the cost per epoch, ablation curves and
training curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from orthoreg.report.analysis.accuracy import ablation_points, cost_summary, depth_gains, value_order
from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.curves import training_points
from orthoreg.report.analysis.order import FAMILY_LABEL, FAMILY_ORDER, REFERENCE, ordered
from orthoreg.report.figures.draw import draw_lines, finish, per_pair, seeds_note, titled
from orthoreg.report.figures.style import new_figure, regularizer_styles, shared_legend, style_legend
from orthoreg.report.registry import Drawn, register_figure


def _gain_panel(axis: Axes, part: pd.DataFrame, styles: dict[str, dict]) -> None:
    """One line per regulariser: the mean paired gain per model of one family, ±1 sd bars."""
    models = ordered(part["model"], "model")
    for name in ordered(part["regularizer"], "regularizer"):
        line = part[part["regularizer"] == name].set_index("model").reindex(models)
        error = line["std_gain_pp"].to_numpy(float)
        axis.errorbar(
            range(len(models)),
            line["mean_gain_pp"].to_numpy(float),
            yerr=np.where(np.isfinite(error), error, 0.0),
            color=styles[name]["color"],
            marker=styles[name]["marker"],
            capsize=2,
            label=name,
        )
    axis.axhline(0.0, color="0.3", linewidth=0.8)
    axis.set_xticks(range(len(models)), models, rotation=30)
    axis.set_ylabel("gain over none (pp)")


@register_figure(
    "depth_trend",
    "Accuracy gain over `none` (pp, paired by seed) against ResNet depth and WRN size, one line per regulariser.",
    skip=f"no model on the ResNet/WRN axis was run with `{REFERENCE}` and a regulariser on the same seed",
)
def depth_trend_figure(data: RunData) -> list[Drawn]:
    gains = depth_gains(data)
    if gains.empty:
        return []
    families = [family for family in FAMILY_ORDER if FAMILY_LABEL[family] in set(gains["family"])]
    datasets = sorted(set(gains["dataset"]))
    styles = regularizer_styles(gains["regularizer"])
    figure, axes = new_figure(len(datasets), len(families))
    for row, dataset in enumerate(datasets):
        for column, family in enumerate(families):
            axis = axes[row * len(families) + column]
            _gain_panel(
                axis, gains[(gains["dataset"] == dataset) & (gains["family"] == FAMILY_LABEL[family])], styles
            )
            axis.set_xlabel(FAMILY_LABEL[family])
            axis.set_title(dataset)
    shared_legend(figure, axes)
    note = "points: mean paired gain; bars: ±1 sample sd over seeds (n in table depth_trend)"
    titled(figure, "Gain over none against depth", note)
    return [Drawn("depth_trend", figure)]


@register_figure(
    "cost",
    "Training time per epoch relative to `none`, per regulariser (CPU time on the CPU, wall time on a GPU).",
    skip=f"no seconds per epoch with a `{REFERENCE}` run to compare against",
)
def cost_figure(data: RunData) -> list[Drawn]:
    cost = cost_summary(data)
    if cost.empty or cost["ratio_to_none"].isna().all():
        return []
    part = cost[cost["ratio_to_none"].notna()].assign(setting=lambda f: f["dataset"] + "/" + f["model"])
    styles = regularizer_styles(part["regularizer"])
    figure, axes = new_figure(1, 1)
    figure.set_size_inches(max(3.4, 1.0 + 0.35 * len(part)), 2.9)
    palette = {name: style["color"] for name, style in styles.items()}
    sns.barplot(
        part,
        x="setting",
        y="ratio_to_none",
        hue="regularizer",
        hue_order=list(styles),
        palette=palette,
        ax=axes[0],
        edgecolor="0.2",
    )
    for container, name in zip(axes[0].containers, styles, strict=False):
        for bar in container:
            bar.set_hatch(styles[name]["hatch"])
    axes[0].axhline(1.0, color="0.3", linewidth=0.8)
    axes[0].set_xlabel("")
    axes[0].set_ylabel("seconds per epoch / none")
    axes[0].get_legend().remove()
    style_legend(figure, styles)
    titled(figure, "Cost per epoch", "; ".join(sorted(set(part["measure"]))) + " (see table cost)")
    return [Drawn("cost", figure)]


def draw_ablation(axis: Axes, curve: pd.DataFrame, styles: dict[str, dict]) -> None:
    """Accuracy against one parameter's values (numbers on their axis, rule names as categories), the
    main grid's runs as stars."""
    values = sorted(set(curve["ablation_value"]), key=value_order)
    categorical = any(isinstance(value, str) for value in values)
    positions = (
        curve["ablation_value"].map(values.index) if categorical else curve["ablation_value"].astype(float)
    )
    curve = curve.assign(position=positions)
    draw_lines(axis, curve, "position", "test_accuracy_pct", styles)
    main = curve[curve["source"] == "main grid"]
    if len(main):
        axis.plot(
            main["position"],
            main["test_accuracy_pct"],
            linestyle="none",
            marker="*",
            color="0.2",
            markersize=7,
            label="main-grid runs",
        )
    if categorical:
        axis.set_xticks(range(len(values)), values)
    elif min(values) > 0 and max(values) / min(values) >= 100:
        axis.set_xscale("log")


@register_figure(
    "ablation",
    "Test accuracy against each ablated hyper-parameter, the main grid's runs included at their own value.",
    caption="Test accuracy against {params} per regulariser on {dataset}/{model}.",
    skip="no ablation runs (run.json ablation is null everywhere)",
    per_pair=True,
)
def ablation_figures(data: RunData) -> list[Drawn]:
    def draw(part: pd.DataFrame, dataset: str, model: str) -> tuple[dict, Figure]:
        params = sorted(set(part["ablation_param"]))
        styles = regularizer_styles(part["regularizer"])
        figure, axes = new_figure(1, len(params))
        for axis, param in zip(axes, params, strict=True):
            draw_ablation(axis, part[part["ablation_param"] == param], styles)
            axis.set_xlabel(param)
            axis.set_ylabel("test accuracy (%)")
        note = seeds_note(part) + "; stars: the main grid's runs"
        return {"params": ", ".join(params)}, finish(figure, axes, f"{dataset} / {model}: ablations", note)

    return per_pair(ablation_points(data), "ablation", draw)


def images_label(limits: pd.Series) -> str:
    """The per-epoch test pass's images: 'all test images', 'the first 1000 test images' (or several)."""
    counts = sorted({int(limit) for limit in limits.dropna()})
    texts = (["all"] if limits.isna().any() else []) + [f"the first {count}" for count in counts]
    return " / ".join(texts) + " test images"


@register_figure(
    "training_curves",
    "Test accuracy and the (lambda-free) penalty value during training, one line per regulariser: within "
    "epochs where runs record curve.csv, else per epoch; runs of one epoch without curve.csv are left out.",
    caption="Test accuracy (per-epoch pass on {images}) and penalty value against epochs trained per "
    "regulariser on {dataset}/{model}, from {source}.",
    skip="no run with two training-curve points or more (history.csv has one row per epoch; a one-epoch "
    "run needs curve.csv, the points within its epoch)",
    per_pair=True,
)
def training_figures(data: RunData) -> list[Drawn]:
    def draw(part: pd.DataFrame, dataset: str, model: str) -> tuple[dict, Figure]:
        images = images_label(part["test_images"])
        penalties = part[part["regularizer"] != REFERENCE]
        styles = regularizer_styles(part["regularizer"])
        figure, axes = new_figure(1, 2 if len(penalties) else 1)
        draw_lines(axes[0], part, "epoch", "test_accuracy_pct", styles)
        axes[0].set_ylabel(f"test accuracy (%), {images}")
        for axis in axes:
            if (part["epoch"] % 1 == 0).all():
                axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.set_xlabel("epochs trained")
        if len(penalties):
            draw_lines(axes[1], penalties, "epoch", "reg_value", styles)
            if (penalties["reg_value"] > 0).all():
                axes[1].set_yscale("log")
            axes[1].set_ylabel("penalty value (reg_value)")
        source = " and ".join(sorted(set(part["source"])))
        evaluated = evaluated_note(data, dataset, model)
        figure = finish(figure, axes, f"{dataset} / {model}", f"{seeds_note(part)}; {source}{evaluated}")
        return {"images": images, "source": source}, figure

    return per_pair(training_points(data), "training_curves", draw)


def evaluated_note(data: RunData, dataset: str, model: str) -> str:
    """'; tables: eval.json on 10000 images' for the pair's runs (empty without eval.json)."""
    runs = data.main(data.runs)
    counts = runs[(runs["dataset"] == dataset) & (runs["model"] == model)]["n_test"].dropna()
    if counts.empty:
        return ""
    return f"; tables: eval.json on {'/'.join(str(int(n)) for n in sorted(set(counts)))} test images"
