"""Figures drawn from the collected frames. Each builder returns (drawn, skipped): drawn is a list of
(name, one-line description, Figure), skipped a list of (name, reason) for figures whose data do not
exist, so no empty figure is ever written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from orthoreg.report.collect import RunData
from orthoreg.report.order import FAMILY_LABEL, FAMILY_ORDER, REFERENCE, ordered
from orthoreg.report.style import (
    line_kwargs,
    new_figure,
    paper_style,
    regularizer_styles,
    shared_legend,
    style_legend,
)
from orthoreg.report.tables_robustness import SOURCE_LABEL, adversarial_per_seed, corruption_per_seed

Drawn = list[tuple[str, str, object]]
Skipped = list[tuple[str, str]]

MAX_LAYER_COLUMN_TOKENS = (("max", "cos"), ("coherence",))
RESIDUAL_COLUMN_TOKENS = (("holistic",), ("residual",))


def _rows(frame: pd.DataFrame, dataset: str, model: str) -> pd.DataFrame:
    """The rows of one (dataset, model) pair."""
    return frame[(frame["dataset"] == dataset) & (frame["model"] == model)]


def _pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(dataset, model) pairs present, in report order."""
    pairs = {(d, m) for d, m in zip(frame["dataset"], frame["model"], strict=True)}
    models = ordered([m for _, m in pairs], "model")
    return sorted(pairs, key=lambda pair: (pair[0], models.index(pair[1])))


def depth_trend_figure(gains: pd.DataFrame | None) -> tuple[Drawn, Skipped]:
    """x = model along depth/width (one panel per dataset and family), y = gain over none (pp)."""
    if gains is None or gains.empty:
        return [], [
            (
                "depth_trend",
                f"no model on the ResNet/WRN axis was run with `{REFERENCE}` and a "
                "regulariser on the same seed",
            )
        ]
    families = [f for f in FAMILY_ORDER if FAMILY_LABEL[f] in set(gains["family"])]
    datasets = sorted(set(gains["dataset"]))
    styles = regularizer_styles(gains["regularizer"])
    with paper_style():
        figure, axes = new_figure(len(datasets), len(families))
        for row, dataset in enumerate(datasets):
            for column, family in enumerate(families):
                axis = axes[row * len(families) + column]
                part = gains[(gains["dataset"] == dataset) & (gains["family"] == FAMILY_LABEL[family])]
                models = ordered(part["model"], "model")
                part = part.assign(position=part["model"].map(models.index))
                if len(part):
                    sns.lineplot(part, x="position", y="mean_gain_pp", ax=axis, **line_kwargs(styles))
                axis.axhline(0.0, color="0.3", linewidth=0.8)
                axis.set_xticks(range(len(models)), models, rotation=30)
                axis.set_xlabel(FAMILY_LABEL[family])
                axis.set_ylabel("gain over none (pp)")
                axis.set_title(dataset)
        shared_legend(figure, axes)
    return [
        (
            "depth_trend",
            "Accuracy gain over `none` (pp, paired by seed) against ResNet depth and WRN "
            "size, one line per regulariser.",
            figure,
        )
    ], []


def _layer_columns(layers: pd.DataFrame) -> list[tuple[str, str]]:
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
    return [(column, column.replace("_", " ")) for column in chosen]


def layer_figures(data: RunData) -> tuple[Drawn, Skipped]:
    """Per (dataset, model): layer index against max |cos| and the holistic residual, mean over seeds."""
    layers = data.main(data.layers) if len(data.layers) else data.layers
    if layers.empty:
        return [], [("orthogonality_layers_*", "no layers.csv (run `orthoreg evaluate`)")]
    columns = _layer_columns(layers)
    if not columns:
        return [], [
            (
                "orthogonality_layers_*",
                f"layers.csv has no max-cosine/coherence or residual column; "
                f"columns: {', '.join(layers.columns)}",
            )
        ]
    drawn = []
    for dataset, model in _pairs(layers):
        part = _rows(layers, dataset, model)
        styles = regularizer_styles(part["regularizer"])
        every = max(1, int(part["layer_index"].max()) // 12)
        with paper_style():
            figure, axes = new_figure(1, len(columns))
            for axis, (column, label) in zip(axes, columns, strict=True):
                sns.lineplot(
                    part,
                    x="layer_index",
                    y=column,
                    ax=axis,
                    errorbar=None,
                    markevery=every,
                    **line_kwargs(styles),
                )
                axis.set_xlabel("layer index (regularised layers, network order)")
                axis.set_ylabel(label)
            figure.suptitle(f"{dataset} / {model}")
            shared_legend(figure, axes)
        drawn.append(
            (
                f"orthogonality_layers_{dataset}_{model}",
                f"Per-layer near-orthogonality ({', '.join(c for c, _ in columns)}) on {dataset}/{model}, "
                "one line per regulariser.",
                figure,
            )
        )
    return drawn, []


def representative_layer(state: dict) -> str | None:
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


def gram_figures(data: RunData) -> tuple[Drawn, Skipped, dict[tuple[str, str], str]]:
    """Per (dataset, model): |cosine Gram| of the last 3x3 conv, one panel per regulariser (lowest seed).

    Also returns the chosen layer per (dataset, model) so the spectra figure shows the same layer."""
    runs = data.main(data.runs) if len(data.runs) else data.runs
    chosen = _first_runs_with_model(runs) if len(runs) else runs
    if chosen.empty:
        return [], [("cosine_gram_*", "no model.pt in any main-grid run")], {}
    import torch

    from orthoreg.metrics import cosine_gram

    drawn: Drawn = []
    skipped: Skipped = []
    layer_of: dict[tuple[str, str], str] = {}
    for dataset, model in _pairs(chosen):
        part = _rows(chosen, dataset, model)
        grams = {}
        for record in part.to_dict("records"):
            state = torch.load(f"{record['run_dir']}/model.pt", map_location="cpu", weights_only=True)
            layer = representative_layer(state)
            if layer is None:
                continue
            layer_of.setdefault((dataset, model), layer)
            grams[record["regularizer"]] = (
                layer,
                np.abs(np.asarray(cosine_gram(state[f"{layer}.weight"]), dtype=np.float64)),
            )
        if not grams:
            skipped.append((f"cosine_gram_{dataset}_{model}", "model.pt holds no 3x3 convolution"))
            continue
        names = ordered(grams, "regularizer")
        columns = min(len(names), 4)
        rows = -(-len(names) // columns)
        with paper_style(), sns.axes_style("white"):
            figure, axes = new_figure(rows, columns)
            for axis, name in zip(axes, names, strict=False):
                layer, gram = grams[name]
                image = axis.imshow(gram, cmap="cividis", vmin=0.0, vmax=1.0, interpolation="nearest")
                axis.set_title(f"{name}\n{layer}", fontsize=8)
                axis.set_xlabel("filter")
                axis.set_ylabel("filter")
            for axis in axes[len(names) :]:
                axis.set_visible(False)
            figure.colorbar(image, ax=axes[: len(names)], label="|cos| between filters", shrink=0.8)
            figure.suptitle(f"{dataset} / {model}: cosine Gram of the last 3x3 conv")
        drawn.append(
            (
                f"cosine_gram_{dataset}_{model}",
                f"|cosine Gram| of the last 3x3 convolution per regulariser on {dataset}/{model} "
                "(lowest seed).",
                figure,
            )
        )
    return drawn, skipped, layer_of


def _match_layer(layers: list[str], preferred: str | None) -> str:
    if preferred is not None:
        for layer in layers:
            if layer == preferred or preferred.endswith("." + layer) or layer.endswith("." + preferred):
                return layer
    return layers[-1]


def spectra_figures(data: RunData, layer_of: dict[tuple[str, str], str]) -> tuple[Drawn, Skipped]:
    """Per (dataset, model): singular values of one layer (the Gram figure's, else spectra.csv's last)
    against their index, mean over seeds, one line per regulariser; sigma = 1 is orthogonal."""
    spectra = data.main(data.spectra) if len(data.spectra) else data.spectra
    if spectra.empty:
        return [], [("spectra_*", "no spectra.csv (run `orthoreg evaluate`)")]
    drawn = []
    for dataset, model in _pairs(spectra):
        part = _rows(spectra, dataset, model)
        layer = _match_layer(list(dict.fromkeys(part["layer"])), layer_of.get((dataset, model)))
        part = part[part["layer"] == layer]
        styles = regularizer_styles(part["regularizer"])
        with paper_style():
            figure, axes = new_figure(1, 1)
            every = max(1, int(part["index"].max()) // 12)
            sns.lineplot(
                part,
                x="index",
                y="singular_value",
                ax=axes[0],
                errorbar="sd",
                markevery=every,
                **line_kwargs(styles),
            )
            axes[0].axhline(1.0, color="0.3", linewidth=0.8)
            axes[0].set_xlabel("index (descending)")
            axes[0].set_ylabel("singular value of W")
            axes[0].set_title(f"{dataset} / {model}: {layer}", fontsize=8)
            shared_legend(figure, axes)
        drawn.append(
            (
                f"spectra_{dataset}_{model}",
                f"Singular values of layer {layer} per regulariser on {dataset}/{model} (1 = orthogonal).",
                figure,
            )
        )
    return drawn, []


def eps_figures(data: RunData) -> tuple[Drawn, Skipped]:
    """Per (dataset, model): accuracy against eps (x 255), one panel per attack, clean at eps = 0."""
    adversarial = adversarial_per_seed(data)
    attacks = adversarial[adversarial["label"] != "clean"] if len(adversarial) else adversarial
    if attacks.empty:
        return [], [("robustness_eps_*", "no adversarial records in robustness.json")]
    drawn = []
    for dataset, model in _pairs(attacks):
        part = _rows(adversarial, dataset, model)
        labels = sorted(set(part["label"]) - {"clean"}, key=lambda l: (l != "FGSM", len(l), l))
        styles = regularizer_styles(part["regularizer"])
        with paper_style():
            figure, axes = new_figure(1, len(labels), sharey=True)
            for axis, label in zip(axes, labels, strict=True):
                curve = part[part["label"].isin([label, "clean"])].assign(eps_255=lambda f: 255.0 * f["eps"])
                sns.lineplot(
                    curve, x="eps_255", y="accuracy_pct", ax=axis, errorbar="sd", **line_kwargs(styles)
                )
                axis.set_xlabel("eps (x 1/255, L-inf)")
                axis.set_ylabel("accuracy (%)")
                axis.set_title(label)
            figure.suptitle(f"{dataset} / {model}")
            shared_legend(figure, axes)
        drawn.append(
            (
                f"robustness_eps_{dataset}_{model}",
                f"Accuracy against attack strength eps per regulariser on {dataset}/{model} "
                f"({', '.join(labels)}).",
                figure,
            )
        )
    return drawn, []


def severity_figures(data: RunData) -> tuple[Drawn, Skipped]:
    """Per (dataset, model): mean corruption accuracy against severity, official and generated apart."""
    per_seed = corruption_per_seed(data)
    per_seed = per_seed[per_seed["severity"] != "all"] if len(per_seed) else per_seed
    if per_seed.empty:
        return [], [("robustness_severity_*", "no corruption records in robustness.json")]
    per_seed = per_seed.assign(severity=per_seed["severity"].astype(int))
    drawn = []
    for dataset, model in _pairs(per_seed):
        part = _rows(per_seed, dataset, model)
        sources = [s for s in SOURCE_LABEL if s in set(part["source"])]
        styles = regularizer_styles(part["regularizer"])
        with paper_style():
            figure, axes = new_figure(1, len(sources), sharey=True)
            for axis, source in zip(axes, sources, strict=True):
                sns.lineplot(
                    part[part["source"] == source],
                    x="severity",
                    y="accuracy_pct",
                    ax=axis,
                    errorbar="sd",
                    **line_kwargs(styles),
                )
                axis.set_xticks(range(1, 6))
                axis.set_xlabel("corruption severity")
                axis.set_ylabel("mean accuracy over corruptions (%)")
                axis.set_title(SOURCE_LABEL[source])
            figure.suptitle(f"{dataset} / {model}")
            shared_legend(figure, axes)
        drawn.append(
            (
                f"robustness_severity_{dataset}_{model}",
                f"Corruption accuracy by severity per regulariser on {dataset}/{model} "
                f"({' and '.join(SOURCE_LABEL[s] for s in sources)}, kept apart).",
                figure,
            )
        )
    return drawn, []


def training_figures(data: RunData) -> tuple[Drawn, Skipped]:
    """Per (dataset, model): test accuracy and the (lambda-free) penalty value per epoch."""
    history = data.main(data.history) if len(data.history) else data.history
    if history.empty:
        return [], [("training_curves_*", "no history.csv")]
    drawn = []
    for dataset, model in _pairs(history):
        part = _rows(history, dataset, model)
        penalties = part[part["regularizer"] != REFERENCE]
        styles = regularizer_styles(part["regularizer"])
        with paper_style():
            figure, axes = new_figure(1, 2 if len(penalties) else 1)
            sns.lineplot(
                part, x="epoch", y="test_accuracy_pct", ax=axes[0], errorbar="sd", **line_kwargs(styles)
            )
            axes[0].set_ylabel("test accuracy (%)")
            for axis in axes:
                axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            if len(penalties):
                penalty_styles = {name: style for name, style in styles.items() if name != REFERENCE}
                sns.lineplot(
                    penalties,
                    x="epoch",
                    y="reg_value",
                    ax=axes[1],
                    errorbar="sd",
                    **line_kwargs(penalty_styles),
                )
                if (penalties["reg_value"] > 0).all():
                    axes[1].set_yscale("log")
                axes[1].set_ylabel("penalty value (reg_value)")
            figure.suptitle(f"{dataset} / {model}")
            shared_legend(figure, axes)
        drawn.append(
            (
                f"training_curves_{dataset}_{model}",
                f"Test accuracy and penalty value per epoch per regulariser on {dataset}/{model}.",
                figure,
            )
        )
    return drawn, []


def ablation_figures(data: RunData) -> tuple[Drawn, Skipped]:
    """Per (dataset, model): accuracy against the ablated value, one panel per parameter."""
    runs = data.runs[data.runs["ablation_param"].notna()] if len(data.runs) else data.runs
    if runs.empty:
        return [], [("ablation_*", "no ablation runs (run.json ablation is null everywhere)")]
    drawn = []
    for dataset, model in _pairs(runs):
        part = _rows(runs, dataset, model)
        params = sorted(set(part["ablation_param"]))
        styles = regularizer_styles(part["regularizer"])
        with paper_style():
            figure, axes = new_figure(1, len(params))
            for axis, param in zip(axes, params, strict=True):
                curve = part[part["ablation_param"] == param]
                sns.lineplot(
                    curve,
                    x="ablation_value",
                    y="test_accuracy_pct",
                    ax=axis,
                    errorbar="sd",
                    **line_kwargs(styles),
                )
                values = curve["ablation_value"]
                if (values > 0).all() and values.max() / values.min() >= 100:
                    axis.set_xscale("log")
                axis.set_xlabel(param)
                axis.set_ylabel("test accuracy (%)")
            figure.suptitle(f"{dataset} / {model}: ablations")
            shared_legend(figure, axes)
        drawn.append(
            (
                f"ablation_{dataset}_{model}",
                f"Test accuracy against {', '.join(params)} per regulariser on {dataset}/{model}.",
                figure,
            )
        )
    return drawn, []


def cost_figure(cost: pd.DataFrame | None) -> tuple[Drawn, Skipped]:
    """Bars of seconds-per-epoch ratio to `none`, hatched per regulariser."""
    if cost is None or cost.empty or cost["ratio_to_none"].isna().all():
        return [], [("cost", f"no seconds per epoch with a `{REFERENCE}` run to compare against")]
    part = cost[cost["ratio_to_none"].notna()].assign(setting=lambda f: f["dataset"] + "/" + f["model"])
    styles = regularizer_styles(part["regularizer"])
    with paper_style():
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
    return [("cost", "Training time per epoch relative to `none`, per regulariser.", figure)], []
