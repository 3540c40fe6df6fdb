"""Figures drawn from the collected frames, each family registered once (orthoreg.report.registry).

Every line is drawn through measured points only (a regulariser's line breaks where it lacks a value
others have), every band says what spread over how many seeds it shows, regularisers whose curves are
identical are drawn once and labelled `a = b` instead of hiding one under the other, and a family
with no data draws nothing (the registry records why).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from orthoreg.metrics import cosine_gram
from orthoreg.report.collect import RunData
from orthoreg.report.order import FAMILY_LABEL, FAMILY_ORDER, REFERENCE, ordered
from orthoreg.report.registry import Drawn, register_figure
from orthoreg.report.style import new_figure, regularizer_styles, shared_legend, style_legend
from orthoreg.report.tables import ablation_points, value_order
from orthoreg.report.tables_robustness import (
    SOURCE_LABEL,
    adversarial_per_seed,
    attack_order,
    corruption_per_seed,
)
from orthoreg.report.writers import Table
from orthoreg.runs import load_weights, read_record

MAX_LAYER_COLUMN_TOKENS = (("max", "cos"), ("coherence",))
RESIDUAL_COLUMN_TOKENS = (("holistic",), ("residual",))
IDENTICAL_RTOL = 1e-9
GRAM_COLOURS = colormaps["cividis"].with_extremes(bad="0.85")  # the masked diagonal in grey


def _rows(frame: pd.DataFrame, dataset: str, model: str) -> pd.DataFrame:
    """The rows of one (dataset, model) pair."""
    return frame[(frame["dataset"] == dataset) & (frame["model"] == model)]


def _pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(dataset, model) pairs present, in report order."""
    pairs = {(d, m) for d, m in zip(frame["dataset"], frame["model"], strict=True)}
    models = ordered([m for _, m in pairs], "model")
    return sorted(pairs, key=lambda pair: (pair[0], models.index(pair[1])))


def seeds_note(frame: pd.DataFrame) -> str:
    """'mean over n = 3 seeds; band: ±1 sample sd' (or the range of n, or no band for one seed)."""
    counts = frame.groupby(["regularizer"])["seed"].nunique() if "seed" in frame else pd.Series([1])
    low, high = int(counts.min()), int(counts.max())
    n = f"n = {low}" if low == high else f"n = {low}-{high}"
    band = "; band: ±1 sample sd over seeds" if high > 1 else " (one seed: no band)"
    return f"lines: mean over {n} seeds{band}"


def curves(frame: pd.DataFrame, x: str, y: str) -> dict[str, pd.DataFrame]:
    """Per regulariser: the mean, sample sd and n of `y` at each x it was measured at."""
    grouped = frame.groupby(["regularizer", x])[y].agg(["mean", "std", "count"]).reset_index()
    return {
        name: part.set_index(x)[["mean", "std", "count"]] for name, part in grouped.groupby("regularizer")
    }


def merge_identical(series: dict[str, pd.DataFrame]) -> list[tuple[list[str], pd.DataFrame]]:
    """Regularisers whose curves coincide (same x, means equal to IDENTICAL_RTOL) grouped together."""
    groups: list[tuple[list[str], pd.DataFrame]] = []
    for name in ordered(series, "regularizer"):
        curve = series[name]
        for names, shown in groups:
            if shown.index.equals(curve.index) and np.allclose(
                shown["mean"], curve["mean"], rtol=IDENTICAL_RTOL, atol=0
            ):
                names.append(name)
                break
        else:
            groups.append(([name], curve))
    return groups


def draw_lines(axis: Axes, frame: pd.DataFrame, x: str, y: str, styles: dict[str, dict]) -> None:
    """One line (means) and band (±1 sd) per regulariser, NaN-broken where it has no measurement."""
    series = curves(frame, x, y)
    grid = sorted(set().union(*(curve.index for curve in series.values()))) if series else []
    for names, curve in merge_identical(series):
        style = styles[names[0]]
        full = curve.reindex(grid)
        positions = np.asarray(grid, dtype=float)
        axis.plot(
            positions,
            full["mean"].to_numpy(float),
            color=style["color"],
            marker=style["marker"],
            dashes=style["dashes"],
            markersize=4,
            label=" = ".join(names) + (" (identical)" if len(names) > 1 else ""),
        )
        spread = full["std"].to_numpy(float)
        if np.isfinite(spread).any():
            middle = full["mean"].to_numpy(float)
            axis.fill_between(
                positions, middle - spread, middle + spread, color=style["color"], alpha=0.15, linewidth=0
            )


def per_pair(
    frame: pd.DataFrame, stem: str, draw: Callable[[pd.DataFrame, str, str], tuple[str, Figure]]
) -> list[Drawn]:
    """One figure per (dataset, model) pair of `frame`, named `stem_dataset_model`: `draw(rows, dataset,
    model)` returns its description and figure."""
    drawn = []
    for dataset, model in _pairs(frame) if len(frame) else []:
        description, figure = draw(_rows(frame, dataset, model), dataset, model)
        drawn.append(Drawn(f"{stem}_{dataset}_{model}", description, figure))
    return drawn


def finish(figure: Figure, axes: list[Axes], title: str, note: str) -> Figure:
    """One legend below the panels and a title that says what the lines and bands are."""
    shared_legend(figure, axes)
    titled(figure, title, note)
    return figure


def titled(figure: Figure, title: str, note: str) -> None:
    figure.suptitle(f"{title}\n{note}", fontsize=8)


def verdict_note(figure: Figure, table: pd.DataFrame) -> None:
    counts = table["verdict"].map(lambda verdict: verdict.split(" at ")[0]).value_counts()
    summary = ", ".join(f"{count} {verdict}" for verdict, count in counts.items())
    n = int(table["n"].min())
    titled(
        figure, "The paper's claims on these runs", f"verdicts: {summary} (smallest n = {n}; 95% t-intervals)"
    )


@register_figure(
    "depth_trend",
    "Accuracy gain over `none` (pp, paired by seed) against ResNet depth and WRN size, one line per regulariser.",
    skip=f"no model on the ResNet/WRN axis was run with `{REFERENCE}` and a regulariser on the same seed",
)
def depth_trend_figure(data: RunData, tables: Mapping[str, Table]) -> list[Drawn]:
    if "depth_trend" not in tables:
        return []
    gains = tables["depth_trend"].data
    families = [family for family in FAMILY_ORDER if FAMILY_LABEL[family] in set(gains["family"])]
    datasets = sorted(set(gains["dataset"]))
    styles = regularizer_styles(gains["regularizer"])
    figure, axes = new_figure(len(datasets), len(families))
    for row, dataset in enumerate(datasets):
        for column, family in enumerate(families):
            axis = axes[row * len(families) + column]
            part = gains[(gains["dataset"] == dataset) & (gains["family"] == FAMILY_LABEL[family])]
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
            axis.set_xlabel(FAMILY_LABEL[family])
            axis.set_ylabel("gain over none (pp)")
            axis.set_title(dataset)
    shared_legend(figure, axes)
    titled(
        figure,
        "Gain over none against depth",
        "points: mean paired gain; bars: ±1 sample sd over seeds (n in table depth_trend)",
    )
    return [
        Drawn(
            "depth_trend",
            "Accuracy gain over `none` against depth and width, one line per regulariser.",
            figure,
        )
    ]


def _layer_columns(layers: pd.DataFrame) -> list[str]:
    chosen = []
    for tokens in (MAX_LAYER_COLUMN_TOKENS, RESIDUAL_COLUMN_TOKENS):
        for option in tokens:
            match = [
                c
                for c in layers.columns
                if all(t in c.lower() for t in option) and pd.api.types.is_numeric_dtype(layers[c])
            ]
            if match:
                chosen.append(match[0])
                break
    return chosen


@register_figure(
    "orthogonality_layers",
    "Per-layer near-orthogonality (max |cos| and holistic residual) against layer index, one line per regulariser.",
    skip="no layers.csv with a max-cosine or residual column (run `orthoreg evaluate`)",
    per_pair=True,
)
def layer_figures(data: RunData, tables: Mapping[str, Table]) -> list[Drawn]:
    layers = data.main(data.layers) if len(data.layers) else data.layers
    columns = _layer_columns(layers) if len(layers) else []

    def draw(part: pd.DataFrame, dataset: str, model: str) -> tuple[str, Figure]:
        styles = regularizer_styles(part["regularizer"])
        figure, axes = new_figure(1, len(columns))
        for axis, column in zip(axes, columns, strict=True):
            draw_lines(axis, part, "layer_index", column, styles)
            axis.set_xlabel("layer index (regularised layers, network order)")
            axis.set_ylabel(column.replace("_", " "))
        description = f"Per-layer near-orthogonality ({', '.join(columns)}) on {dataset}/{model}, one line per regulariser."
        return description, finish(figure, axes, f"{dataset} / {model}", seeds_note(part))

    return per_pair(layers if columns else layers.iloc[:0], "orthogonality_layers", draw)


def representative_layer(state: Mapping) -> str | None:
    """Name of the last 3x3 convolution in a state dict (network order), without '.weight'."""
    names = [
        key[: -len(".weight")]
        for key, value in state.items()
        if key.endswith(".weight") and value.ndim == 4 and tuple(value.shape[-2:]) == (3, 3)
    ]
    return names[-1] if names else None


def _first_runs_with_model(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs[runs["has_model"]]
    return runs.sort_values("seed").groupby(["dataset", "model", "regularizer"], sort=False).head(1)


def chosen_layers(data: RunData) -> dict[tuple[str, str], tuple[str, dict[str, np.ndarray]]]:
    """Per (dataset, model): the last 3x3 convolution and its |cosine Gram| per regulariser (lowest seed)."""
    runs = data.main(data.runs) if len(data.runs) else data.runs
    chosen = _first_runs_with_model(runs) if len(runs) else runs
    found: dict[tuple[str, str], tuple[str, dict[str, np.ndarray]]] = {}
    for record in chosen.to_dict("records"):
        state = load_weights(record["run_dir"], read_record(record["run_dir"]))
        layer = representative_layer(state)
        if layer is None:
            continue
        pair = (record["dataset"], record["model"])
        layer = found.get(pair, (layer, {}))[0]
        if f"{layer}.weight" in state:
            found.setdefault(pair, (layer, {}))[1][record["regularizer"]] = np.abs(
                np.asarray(cosine_gram(state[f"{layer}.weight"]), dtype=np.float64)
            )
    return found


@register_figure(
    "cosine_gram",
    "|cosine| between the filters of the last 3x3 convolution per regulariser (lowest seed), the colour "
    "scale spanning the off-diagonal entries and the diagonal (always 1) greyed out.",
    skip="no model.pt with a 3x3 convolution in any main-grid run",
    per_pair=True,
)
def gram_figures(data: RunData, tables: Mapping[str, Table]) -> list[Drawn]:
    drawn = []
    for (dataset, model), (layer, grams) in sorted(chosen_layers(data).items()):
        names = ordered(grams, "regularizer")
        off_diagonal = [gram[~np.eye(len(gram), dtype=bool)] for gram in grams.values() if len(gram) > 1]
        top = max((float(values.max()) for values in off_diagonal), default=1.0) or 1.0
        columns = min(len(names), 4)
        rows = -(-len(names) // columns)
        with sns.axes_style("white"):
            figure, axes = new_figure(rows, columns)
        for axis, name in zip(axes, names, strict=False):
            gram = grams[name].copy()
            np.fill_diagonal(gram, np.nan)
            image = axis.imshow(gram, cmap=GRAM_COLOURS, vmin=0.0, vmax=top, interpolation="nearest")
            rms = math.sqrt(float(np.nanmean(np.square(gram)))) if gram.size > 1 else 0.0
            axis.set_title(f"{name}: rms |cos| {rms:.3f}", fontsize=7)
            axis.set_xlabel("filter")
            axis.set_ylabel("filter")
        for axis in axes[len(names) :]:
            axis.set_visible(False)
        figure.colorbar(image, ax=axes[: len(names)], label="|cos| between distinct filters", shrink=0.8)
        titled(
            figure,
            f"{dataset} / {model}: {layer}",
            f"one seed per regulariser; colour scale 0 to {top:.3f} (largest off-diagonal |cos|); diagonal grey",
        )
        drawn.append(
            Drawn(
                f"cosine_gram_{dataset}_{model}",
                f"|cosine Gram| of {layer} per regulariser on {dataset}/{model} (lowest seed, off-diagonal colour scale).",
                figure,
            )
        )
    return drawn


def _match_layer(layers: list[str], preferred: str | None) -> str:
    if preferred is not None:
        for layer in layers:
            if layer == preferred or preferred.endswith("." + layer) or layer.endswith("." + preferred):
                return layer
    return layers[-1]


@register_figure(
    "spectra",
    "Singular values of one layer (the Gram figure's) against their index, one line per regulariser; 1 is orthogonal.",
    skip="no spectra.csv (run `orthoreg evaluate`)",
    per_pair=True,
)
def spectra_figures(data: RunData, tables: Mapping[str, Table]) -> list[Drawn]:
    spectra = data.main(data.spectra) if len(data.spectra) else data.spectra
    preferred = {pair: layer for pair, (layer, _) in chosen_layers(data).items()} if len(spectra) else {}

    def draw(part: pd.DataFrame, dataset: str, model: str) -> tuple[str, Figure]:
        layer = _match_layer(list(dict.fromkeys(part["layer"])), preferred.get((dataset, model)))
        part = part[part["layer"] == layer]
        figure, axes = new_figure(1, 1)
        draw_lines(axes[0], part, "index", "singular_value", regularizer_styles(part["regularizer"]))
        axes[0].axhline(1.0, color="0.3", linewidth=0.8)
        axes[0].set_xlabel("index (descending)")
        axes[0].set_ylabel("singular value of W")
        description = (
            f"Singular values of layer {layer} per regulariser on {dataset}/{model} (1 = orthogonal)."
        )
        return description, finish(figure, axes, f"{dataset} / {model}: {layer}", seeds_note(part))

    return per_pair(spectra, "spectra", draw)


@register_figure(
    "robustness_eps",
    "Accuracy against L-inf attack strength eps, one panel per attack (clean accuracy at eps = 0).",
    skip="no adversarial records in robustness.json",
    per_pair=True,
)
def eps_figures(data: RunData, tables: Mapping[str, Table]) -> list[Drawn]:
    adversarial = adversarial_per_seed(data)
    attacked = (
        adversarial["label"]
        .ne("clean")
        .groupby([adversarial["dataset"], adversarial["model"]])
        .transform("any")
    )

    def draw(part: pd.DataFrame, dataset: str, model: str) -> tuple[str, Figure]:
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
        description = f"Accuracy against attack strength eps per regulariser on {dataset}/{model} ({', '.join(labels)})."
        return description, finish(figure, axes, title, seeds_note(part))

    return per_pair(
        adversarial[attacked.astype(bool)] if len(adversarial) else adversarial, "robustness_eps", draw
    )


@register_figure(
    "robustness_severity",
    "Mean corruption accuracy against severity, official CIFAR-C and generated corruptions in separate panels.",
    skip="no corruption records in robustness.json",
    per_pair=True,
)
def severity_figures(data: RunData, tables: Mapping[str, Table]) -> list[Drawn]:
    per_seed = corruption_per_seed(data)
    per_seed = per_seed[per_seed["severity"] != "all"] if len(per_seed) else per_seed
    per_seed = per_seed.assign(severity=per_seed["severity"].astype(int))

    def draw(part: pd.DataFrame, dataset: str, model: str) -> tuple[str, Figure]:
        sources = [s for s in SOURCE_LABEL if s in set(part["source"])]
        styles = regularizer_styles(part["regularizer"])
        figure, axes = new_figure(1, len(sources), sharey=True)
        for axis, source in zip(axes, sources, strict=True):
            draw_lines(axis, part[part["source"] == source], "severity", "accuracy_pct", styles)
            axis.set_xticks(range(1, 6))
            axis.set_xlabel("corruption severity")
            axis.set_ylabel("mean accuracy over corruptions (%)")
            axis.set_title(SOURCE_LABEL[source])
        description = (
            f"Corruption accuracy by severity per regulariser on {dataset}/{model} "
            f"({' and '.join(SOURCE_LABEL[s] for s in sources)}, kept apart)."
        )
        return description, finish(figure, axes, f"{dataset} / {model}", seeds_note(part))

    return per_pair(per_seed, "robustness_severity", draw)


@register_figure(
    "training_curves",
    "Test accuracy and the (lambda-free) penalty value per epoch, one line per regulariser.",
    skip="no history.csv",
    per_pair=True,
)
def training_figures(data: RunData, tables: Mapping[str, Table]) -> list[Drawn]:
    history = data.main(data.history) if len(data.history) else data.history

    def draw(part: pd.DataFrame, dataset: str, model: str) -> tuple[str, Figure]:
        penalties = part[part["regularizer"] != REFERENCE]
        styles = regularizer_styles(part["regularizer"])
        figure, axes = new_figure(1, 2 if len(penalties) else 1)
        draw_lines(axes[0], part, "epoch", "test_accuracy_pct", styles)
        axes[0].set_ylabel("test accuracy (%)")
        for axis in axes:
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.set_xlabel("epoch")
        if len(penalties):
            draw_lines(axes[1], penalties, "epoch", "reg_value", styles)
            if (penalties["reg_value"] > 0).all():
                axes[1].set_yscale("log")
            axes[1].set_ylabel("penalty value (reg_value)")
        description = f"Test accuracy and penalty value per epoch per regulariser on {dataset}/{model}."
        return description, finish(figure, axes, f"{dataset} / {model}", seeds_note(part))

    return per_pair(history, "training_curves", draw)


@register_figure(
    "ablation",
    "Test accuracy against each ablated hyper-parameter, the main grid's runs included at their own value.",
    skip="no ablation runs (run.json ablation is null everywhere)",
    per_pair=True,
)
def ablation_figures(data: RunData, tables: Mapping[str, Table]) -> list[Drawn]:
    def draw(part: pd.DataFrame, dataset: str, model: str) -> tuple[str, Figure]:
        params = sorted(set(part["ablation_param"]))
        styles = regularizer_styles(part["regularizer"])
        figure, axes = new_figure(1, len(params))
        for axis, param in zip(axes, params, strict=True):
            draw_ablation(axis, part[part["ablation_param"] == param], styles)
            axis.set_xlabel(param)
            axis.set_ylabel("test accuracy (%)")
        description = f"Test accuracy against {', '.join(params)} per regulariser on {dataset}/{model}."
        note = seeds_note(part) + "; stars: the main grid's runs"
        return description, finish(figure, axes, f"{dataset} / {model}: ablations", note)

    return per_pair(ablation_points(data), "ablation", draw)


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
    "cost",
    "Training time per epoch relative to `none`, per regulariser (CPU time on the CPU, wall time on a GPU).",
    skip=f"no seconds per epoch with a `{REFERENCE}` run to compare against",
)
def cost_figure(data: RunData, tables: Mapping[str, Table]) -> list[Drawn]:
    cost = tables["cost"].data if "cost" in tables else None
    if cost is None or cost["ratio_to_none"].isna().all():
        return []
    part = cost[cost["ratio_to_none"].notna()].assign(setting=lambda f: f["dataset"] + "/" + f["model"])
    styles = regularizer_styles(part["regularizer"])
    figure, axes = new_figure(1, 1)
    figure.set_size_inches(max(3.4, 1.0 + 0.35 * len(part)), 2.9)
    sns.barplot(
        part,
        x="setting",
        y="ratio_to_none",
        hue="regularizer",
        hue_order=list(styles),
        palette={k: v["color"] for k, v in styles.items()},
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
    return [Drawn("cost", "Training time per epoch relative to `none`, per regulariser.", figure)]
