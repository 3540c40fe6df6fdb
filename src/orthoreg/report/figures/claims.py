"""The claims figure: dn_strict's advantage in each near-orthogonality measure over its closest
competitor (claim 1), and the accuracy gains over `none` against depth (claim 2), with 95%
t-intervals and the verdicts of the claims table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from orthoreg.report.analysis import stats
from orthoreg.report.analysis.claims import CLAIM_1, RELAXED, STRICT, claims_frame, gains_by_depth
from orthoreg.report.analysis.collect import RunData
from orthoreg.report.figures.draw import titled
from orthoreg.report.figures.style import new_figure, regularizer_styles
from orthoreg.report.registry import Drawn, register_figure


def _claim_one_panel(axis: Axes, first: pd.DataFrame) -> None:
    """Per measure: the advantage over the closest competitor in % of its mean, with its interval."""
    labels = [f"{r.dataset}/{r.scope}: {r.quantity}" for r in first.itertuples()]
    for position, row in enumerate(first.itertuples()):
        value = 100.0 * row.estimate / row.competitor_mean
        low, high = (value, value)
        if not pd.isna(row.ci95_low):
            low, high = (
                100.0 * row.ci95_low / row.competitor_mean,
                100.0 * row.ci95_high / row.competitor_mean,
            )
        axis.errorbar(
            [value], [position], xerr=[[value - low], [high - value]], fmt="o", color="0.2", capsize=3
        )
        axis.annotate(
            row.verdict, (value, position), textcoords="offset points", xytext=(0, 5), fontsize=6, ha="center"
        )
    axis.axvline(0.0, color="0.3", linewidth=0.8)
    axis.set_yticks(range(len(labels)), labels, fontsize=6)
    axis.set_ylim(-0.7, len(labels) - 0.3)
    axis.set_xlabel("advantage over the closest competitor (%)")
    axis.set_title("claim 1: dn_strict most orthogonal (> 0 supports)", fontsize=8)


def _means_by_depth(points: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Depths, mean gains and their t-interval ends (the mean where an interval does not exist)."""
    depths = np.array(sorted(points["depth"].unique()), dtype=float)
    estimates = [stats.mean_estimate(points[points["depth"] == depth]["difference"]) for depth in depths]
    means = np.array([estimate.value for estimate in estimates])
    ends = [[e.value if math.isnan(end) else end for end in e.interval] for e in estimates]
    return depths, means, np.array([low for low, _ in ends]), np.array([high for _, high in ends])


def _claim_two_panel(axis: Axes, gains: pd.DataFrame) -> None:
    """Per regulariser: the mean gain over `none` at each depth with its interval, seeds faint."""
    styles = regularizer_styles([STRICT, RELAXED])
    for regularizer in (STRICT, RELAXED):
        points = gains[gains["regularizer"] == regularizer]
        if points.empty:
            continue
        style = styles[regularizer]
        depths, means, lows, highs = _means_by_depth(points)
        axis.errorbar(
            depths,
            means,
            yerr=[means - lows, highs - means],
            color=style["color"],
            marker=style["marker"],
            capsize=3,
            label=f"{regularizer}: mean, 95% t-interval",
        )
        axis.plot(
            points["depth"],
            points["difference"],
            linestyle="none",
            marker=style["marker"],
            color=style["color"],
            alpha=0.3,
            markersize=3,
        )
    axis.axhline(0.0, color="0.3", linewidth=0.8)
    axis.set_xscale("log", base=2)
    depths_present = sorted(gains["depth"].unique())
    axis.set_xticks(depths_present, [str(int(depth)) for depth in depths_present])
    axis.minorticks_off()
    axis.set_xlabel("depth (log scale; faint: single seeds)")
    axis.set_ylabel("accuracy gain over none (pp)")
    axis.set_title("claim 2: gains against depth", fontsize=8)
    axis.legend(fontsize=6)


def verdict_note(figure: Figure, table: pd.DataFrame) -> None:
    """The title: how many rows have each verdict, and the smallest n."""
    counts = table["verdict"].map(lambda verdict: verdict.split(" at ")[0]).value_counts()
    summary = ", ".join(f"{count} {verdict}" for verdict, count in counts.items())
    note = f"verdicts: {summary} (smallest n = {int(table['n'].min())}; 95% t-intervals)"
    titled(figure, "The paper's claims on these runs", note)


@register_figure(
    "claims",
    "The paper's claims on these runs: dn_strict's advantage in each near-orthogonality measure over its "
    "closest competitor, and the accuracy gains over none against depth, with 95% t-intervals and verdicts.",
    caption="The paper's claims as verdicts on these runs (see table claims).",
    skip="no claim can be tested on these runs (the claims table has no rows)",
)
def claims_figure(data: RunData) -> list[Drawn]:
    table = claims_frame(data)
    if table.empty:
        return []
    first = table[table["claim"] == CLAIM_1]
    gains = gains_by_depth(data)
    depth_panel = bool(len(gains)) and gains["depth"].nunique() >= 2
    panels = int(bool(len(first))) + int(depth_panel)
    if panels == 0:
        return []
    figure, axes = new_figure(1, panels)
    figure.set_size_inches(4.2 * panels, max(3.0, 0.4 * len(first) + 1.6))
    if len(first):
        _claim_one_panel(axes[0], first)
    if depth_panel:
        _claim_two_panel(axes[-1], gains)
    verdict_note(figure, table)
    return [Drawn("claims", figure)]
