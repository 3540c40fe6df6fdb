"""Accuracy tables: the main table, the depth trend, significance against `none`, cost and ablations.

Accuracies are printed in percent; gains in percentage points (pp). Bold marks a best cell only among
cells of at least MIN_N_FOR_A_VERDICT seeds, and only where two such cells compete.
"""

from __future__ import annotations

import pandas as pd

from orthoreg.report.analysis import accuracy
from orthoreg.report.analysis.budget import budget_summary
from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.order import REFERENCE
from orthoreg.report.analysis.summary import ENOUGH
from orthoreg.report.registry import TableBody, register_table
from orthoreg.report.tables.format import (
    bold_column,
    general_text,
    interval_text,
    mean_std_text,
    n_range,
    p_text,
    pivot_display,
    signed_text,
)

BEST_RULE = (
    f"Bold (csv: best=True): the highest mean among cells with n >= {ENOUGH}, where two such cells compete."
)


@register_table(
    "main_accuracy",
    "Test accuracy (%) mean ± std over seeds per dataset, model and regulariser; best per row marked.",
    caption="Test accuracy (%){on}, mean ± sample std (ddof=1) over seeds, {n} seeds per cell. "
    + BEST_RULE
    + " '-': not run. The csv adds each mean's 95% t-interval (ci95_low_pct, ci95_high_pct).",
    skip="no finished main-grid run",
)
def main_accuracy(data: RunData) -> TableBody | None:
    summary = accuracy.accuracy_summary(data)
    if summary.empty:
        return None
    cells = summary.assign(
        cell=[mean_std_text(r.mean_accuracy_pct, r.std_accuracy_pct, r.n) for r in summary.itertuples()]
    )
    display, bold = pivot_display(
        cells, ["dataset", "model"], "regularizer", "cell", column_kind="regularizer"
    )
    images = accuracy.evaluated_images(data.main(data.runs))
    on = f" on {', '.join(map(str, images))} test images" if images else ""
    return TableBody(summary, display, bold, {"on": on, "n": n_range(summary["n"])})


@register_table(
    "depth_trend",
    "Accuracy gain over `none` (pp, paired by seed) per regulariser as ResNet depth and WRN size grow.",
    caption="Gain in test accuracy over the unregularised model (percentage points): the mean over seeds "
    "of acc(reg, seed) - acc(none, seed), n = seeds run by both ({n}). Bold: the largest gain of each "
    f"model among cells with n >= {ENOUGH}. Table `claims` tests the trend.",
    skip=f"no ResNet/WRN model run with `{REFERENCE}` and a regulariser on a shared seed",
)
def depth_trend(data: RunData) -> TableBody | None:
    gains = accuracy.depth_gains(data)
    if gains.empty:
        return None
    cells = gains.assign(cell=[f"{signed_text(r.mean_gain_pp)} (n={r.n_pairs})" for r in gains.itertuples()])
    display, bold = pivot_display(
        cells, ["dataset", "family", "model"], "regularizer", "cell", column_kind="regularizer"
    )
    return TableBody(gains, display, bold, {"n": n_range(gains["n_pairs"])})


@register_table(
    "significance",
    "Each regulariser against `none`, paired by seed: mean difference, t-interval, t-test and sign-flip p.",
    caption="Paired by seed: difference = acc(reg) - acc(none) in pp, {n} pairs. 95% t-interval and "
    "two-sided paired t-test (n - 1 degrees of freedom; valid for normal seed-to-seed differences at any "
    "n >= 2). p (sign-flip): exact permutation test over all 2^n sign patterns, assumption-free but never "
    "below 2/2^n (in brackets: 0.25 at n = 3, under 0.05 only from n = 6). Bold (csv: significant=True): "
    f"t-test p < 0.05 with n >= {ENOUGH}.",
    skip=f"no regulariser run on a seed that `{REFERENCE}` was also run on",
)
def significance(data: RunData) -> TableBody | None:
    table = accuracy.significance_tests(data)
    if table.empty:
        return None
    display = pd.DataFrame(
        {
            "dataset": table["dataset"],
            "model": table["model"],
            "regularizer": table["regularizer"],
            "Δ acc (pp)": table["mean_difference_pp"].map(signed_text),
            "95% t-interval (pp)": [interval_text(r.ci95_low_pp, r.ci95_high_pp) for r in table.itertuples()],
            "p (t-test)": table["p_t"].map(p_text),
            "p (sign-flip)": [
                f"{r.p_sign_flip:.3g} (>= {r.smallest_sign_flip_p:.3g})" for r in table.itertuples()
            ],
            "n pairs": table["n_pairs"].astype(str),
        }
    )
    bold = bold_column(display, "Δ acc (pp)", table["significant"])
    return TableBody(table, display, bold, {"n": n_range(table["n_pairs"])})


@register_table(
    "cost",
    "Training time per epoch per regulariser and the ratio to `none` (same dataset, model and device).",
    caption="Seconds per training epoch, mean ± std over seeds; × none: ratio of means to the "
    "unregularised run of the same dataset, model and measure ('-' when none was not run). On the CPU "
    "the training process's CPU time is compared, because pipeline jobs there run side by side and "
    "share the cores, which makes their wall times not comparable (wall time and the machine's 1-minute "
    "load average at the run's end are shown for reference); on a GPU each job holds its own device and "
    "wall time is compared. Compare only rows measured on the same device.",
    skip="no run records seconds per epoch",
)
def cost(data: RunData) -> TableBody | None:
    summary = accuracy.cost_summary(data)
    if summary.empty:
        return None
    display = pd.DataFrame(
        {
            "dataset": summary["dataset"],
            "model": summary["model"],
            "regularizer": summary["regularizer"],
            "s / epoch": [
                mean_std_text(r.mean_seconds_per_epoch, r.std_seconds_per_epoch, r.n, digits=3)
                for r in summary.itertuples()
            ],
            "measured as": summary["measure"],
            "× none": summary["ratio_to_none"].map(lambda ratio: "-" if pd.isna(ratio) else f"{ratio:.2f}"),
            "wall s / epoch": summary["wall_seconds_per_epoch"].map(lambda s: f"{s:.3g}"),
            "machine load": summary["max_load"].map(lambda load: "-" if pd.isna(load) else f"{load:.1f}"),
            "device": summary["device"],
        }
    )
    return TableBody(summary, display)


@register_table(
    "budget",
    "What the runs cost: per stage, the records that timed it and their summed CPU and wall hours.",
    caption="Per stage, the runs whose record times it (run.json for training, the provenance of "
    "eval.json and robustness.json) and the sum of their CPU and wall hours, ablations included. Each "
    "job's wall time is its own: jobs that ran side by side overlap, so the machine's elapsed time is "
    "the wall sum over the number of jobs run at once; CPU time does not depend on it.",
    skip="no record times its stage",
)
def budget(data: RunData) -> TableBody | None:
    summary = budget_summary(data)
    if summary.empty:
        return None
    display = pd.DataFrame(
        {
            "stage": summary["stage"],
            "records": summary["records"].astype(str),
            "CPU hours": summary["cpu_hours"].map(lambda hours: "-" if pd.isna(hours) else f"{hours:.3g}"),
            "wall hours": summary["wall_hours"].map(lambda hours: f"{hours:.3g}"),
        }
    )
    return TableBody(summary, display)


@register_table(
    "ablation",
    "Test accuracy (%) against each ablated hyper-parameter value, per regulariser (main-grid value included).",
    caption="Ablation runs: test accuracy (%) mean ± std over seeds (n) for each value of the ablated "
    "parameter, all other settings as in the main grid; * marks the main grid's own runs at their value. "
    f"Bold: the best value of each regulariser among values with n >= {ENOUGH}.",
    skip="no ablation runs (run.json ablation is null everywhere)",
)
def ablation(data: RunData) -> TableBody | None:
    summary = accuracy.ablation_summary(data)
    if summary.empty:
        return None
    cells = summary.assign(
        cell=[
            mean_std_text(r.mean_accuracy_pct, r.std_accuracy_pct, r.n) + (" *" if "main" in r.source else "")
            for r in summary.itertuples()
        ],
        value=summary["ablation_value"].map(lambda v: v if isinstance(v, str) else general_text(v)),
    )
    rows = ["ablation_param", "dataset", "model", "value"]
    display, bold = pivot_display(cells, rows, "regularizer", "cell", column_kind="regularizer")
    names = {"ablation_param": "parameter"}
    return TableBody(summary, display.rename(columns=names), bold.rename(columns=names))
