"""One visual identity per regulariser, fixed across every figure and legible in greyscale: a
colour-blind-safe colour plus a distinct marker, dash pattern and bar hatch."""

from __future__ import annotations

from contextlib import contextmanager

import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from orthoreg.report.analysis.order import ordered

# style slots in order of importance: the paper's methods and the baseline get the most distinct looks
STYLE_PRIORITY = ("none", "dn_strict", "dn_relaxed", "fro", "srip", "so", "dso", "mc", "ocnn", "dn_welch")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "*")
DASHES = (
    (1, 0),
    (4, 1.5),
    (1, 1),
    (3, 1, 1, 1),
    (6, 2),
    (2, 2),
    (5, 1, 1, 1, 1, 1),
    (1, 2),
    (8, 2, 2, 2),
    (3, 3),
    (2, 1),
    (6, 1, 2, 1),
)
HATCHES = ("", "//", "\\\\", "xx", "..", "oo", "--", "++", "**", "||", "/.", "x.")
PANEL_WIDTH = 3.4
PANEL_HEIGHT = 2.7


def regularizer_styles(names) -> dict[str, dict]:
    """name -> {color, marker, dashes, hatch}; a regulariser's style depends on its name only, so it
    is the same in every figure."""
    names = ordered(names, "regularizer")
    palette = sns.color_palette("colorblind", len(MARKERS))
    unknown = [name for name in names if name not in STYLE_PRIORITY]
    styles = {}
    for name in names:
        if name in STYLE_PRIORITY:
            slot = STYLE_PRIORITY.index(name) % len(MARKERS)
        else:
            slot = (len(STYLE_PRIORITY) + unknown.index(name)) % len(MARKERS)
        styles[name] = {
            "color": palette[slot],
            "marker": MARKERS[slot],
            "dashes": DASHES[slot],
            "hatch": HATCHES[slot],
        }
    return styles


@contextmanager
def paper_style():
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
        yield


def new_figure(rows: int, columns: int, *, sharey: bool = False) -> tuple[Figure, list]:
    """A Figure (no pyplot state) with a rows x columns grid of axes, returned flat."""
    figure = Figure(figsize=(PANEL_WIDTH * columns, PANEL_HEIGHT * rows), layout="constrained")
    axes = figure.subplots(rows, columns, sharey=sharey, squeeze=False)
    return figure, [axis for line in axes for axis in line]


def style_legend(figure: Figure, styles: dict[str, dict]) -> None:
    """A legend of filled, hatched patches (for bar charts), one per regulariser, below the figure."""
    handles = [
        Patch(facecolor=style["color"], hatch=style["hatch"], edgecolor="0.2", label=name)
        for name, style in styles.items()
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), frameon=False)


def shared_legend(figure: Figure, axes: list) -> None:
    """Drop per-panel legends and put one legend (of the first panel's handles) below the figure."""
    handles, labels = [], []
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            if label not in labels and label != "regularizer":
                handles.append(handle)
                labels.append(label)
        if axis.get_legend() is not None:
            axis.get_legend().remove()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5), frameon=False)
