"""Near-orthogonality figures: per-layer measures, the singular values of one layer, and the |cosine|
Gram of its filters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colormaps
from matplotlib.figure import Figure

from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.gram import cosine_grams
from orthoreg.report.analysis.order import ordered
from orthoreg.report.analysis.orthogonality import representative_layers
from orthoreg.report.figures.draw import draw_lines, finish, per_pair, seeds_note, titled
from orthoreg.report.figures.style import new_figure, regularizer_styles
from orthoreg.report.registry import Drawn, register_figure

MAX_LAYER_COLUMN_TOKENS = (("max", "cos"), ("coherence",))
RESIDUAL_COLUMN_TOKENS = (("holistic",), ("residual",))
GRAM_COLOURS = colormaps["cividis"].with_extremes(bad="0.85")  # the masked diagonal in grey


def _layer_columns(layers: pd.DataFrame) -> list[str]:
    """The first numeric column naming a max cosine (or coherence), and one naming a residual."""
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
    caption="Per-layer near-orthogonality ({columns}) on {dataset}/{model}, one line per regulariser.",
    skip="no layers.csv with a max-cosine or residual column (run `orthoreg evaluate`)",
    per_pair=True,
)
def layer_figures(data: RunData) -> list[Drawn]:
    layers = data.main(data.layers)
    columns = _layer_columns(layers) if len(layers) else []

    def draw(part: pd.DataFrame, dataset: str, model: str) -> tuple[dict, Figure]:
        styles = regularizer_styles(part["regularizer"])
        figure, axes = new_figure(1, len(columns))
        for axis, column in zip(axes, columns, strict=True):
            draw_lines(axis, part, "layer_index", column, styles)
            axis.set_xlabel("layer index (regularised layers, network order)")
            axis.set_ylabel(column.replace("_", " "))
        return {"columns": ", ".join(columns)}, finish(figure, axes, f"{dataset} / {model}", seeds_note(part))

    return per_pair(layers if columns else layers.iloc[:0], "orthogonality_layers", draw)


def _gram_figure(grams: dict[str, np.ndarray], title: str) -> Figure:
    """One heatmap per regulariser on one colour scale spanning the off-diagonal entries."""
    names = ordered(grams, "regularizer")
    off_diagonal = [gram[~np.eye(len(gram), dtype=bool)] for gram in grams.values() if len(gram) > 1]
    top = max((float(values.max()) for values in off_diagonal), default=1.0) or 1.0
    columns = min(len(names), 4)
    with sns.axes_style("white"):
        figure, axes = new_figure(-(-len(names) // columns), columns)
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
    note = (
        f"one seed per regulariser; colour scale 0 to {top:.3f} (largest off-diagonal |cos|); diagonal grey"
    )
    titled(figure, title, note)
    return figure


@register_figure(
    "cosine_gram",
    "|cosine| between the filters of the last 3x3 convolution per regulariser (lowest seed), the colour "
    "scale spanning the off-diagonal entries and the diagonal (always 1) greyed out.",
    caption="|cosine Gram| of {layer} per regulariser on {dataset}/{model} (lowest seed, off-diagonal colour scale).",
    skip="no gram.csv in any main-grid run (`orthoreg evaluate` writes it for the last 3x3 convolution)",
    per_pair=True,
)
def gram_figures(data: RunData) -> list[Drawn]:
    drawn = []
    for (dataset, model), (layer, grams) in sorted(cosine_grams(data).items()):
        figure = _gram_figure(grams, f"{dataset} / {model}: {layer}")
        facts = {"dataset": dataset, "model": model, "layer": layer}
        drawn.append(Drawn(f"cosine_gram_{dataset}_{model}", figure, facts))
    return drawn


def _match_layer(layers: list[str], preferred: str | None) -> str:
    """The spectra's layer that is `preferred` (names may differ by a prefix), else the last one."""
    if preferred is not None:
        for layer in layers:
            if layer == preferred or preferred.endswith("." + layer) or layer.endswith("." + preferred):
                return layer
    return layers[-1]


@register_figure(
    "spectra",
    "Singular values of one layer (the last 3x3 convolution) against their index, one line per "
    "regulariser; 1 is orthogonal.",
    caption="Singular values of layer {layer} per regulariser on {dataset}/{model} (1 = orthogonal).",
    skip="no spectra.csv (run `orthoreg evaluate`)",
    per_pair=True,
)
def spectra_figures(data: RunData) -> list[Drawn]:
    spectra = data.main(data.spectra)
    preferred = representative_layers(data)

    def draw(part: pd.DataFrame, dataset: str, model: str) -> tuple[dict, Figure]:
        layer = _match_layer(list(dict.fromkeys(part["layer"])), preferred.get((dataset, model)))
        part = part[part["layer"] == layer]
        figure, axes = new_figure(1, 1)
        draw_lines(axes[0], part, "index", "singular_value", regularizer_styles(part["regularizer"]))
        axes[0].axhline(1.0, color="0.3", linewidth=0.8)
        axes[0].set_xlabel("index (descending)")
        axes[0].set_ylabel("singular value of W")
        return {"layer": layer}, finish(figure, axes, f"{dataset} / {model}: {layer}", seeds_note(part))

    return per_pair(spectra, "spectra", draw)
