"""Accuracy tables: the main table, the depth trend, significance against `none`, cost and ablations.

Each builder takes the collected frames and returns a TableBody, or None when its data do not exist
(the registry records why). Accuracies are printed in percent; gains in percentage points (pp). A cell
is marked best only among cells of at least MIN_N_FOR_A_VERDICT seeds, and only where two such cells
compete.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from orthoreg.report import stats
from orthoreg.report.collect import RunData
from orthoreg.report.format import (
    general_text,
    mark_best,
    mean_std_text,
    optional,
    pivot_display,
    signed_text,
)
from orthoreg.report.order import FAMILY_LABEL, REFERENCE, model_key, sort_frame
from orthoreg.report.registry import TableBody, register_table
from orthoreg.report.writers import Table

CELL = ["dataset", "model", "regularizer"]
ENOUGH = stats.MIN_N_FOR_A_VERDICT
BEST_RULE = (
    f"Bold (csv: best=True): the highest mean among cells with n >= {ENOUGH}, where two such cells compete."
)


def seed_summary(frame: pd.DataFrame, value: str, group: list[str]) -> pd.DataFrame:
    """Per group: n, mean and sample std (ddof=1, empty for one seed) of `value` over seeds."""
    rows = []
    for key, part in frame.groupby(group, sort=False, dropna=False):
        mean, std, n = stats.mean_std(part[value])
        rows.append({**dict(zip(group, key, strict=True)), "n": n, "mean": mean, "std": optional(std)})
    return pd.DataFrame(rows, columns=[*group, "n", "mean", "std"])


def n_range(counts: pd.Series) -> str:
    """'n = 3' or 'n = 2-3' for the seed counts of a table."""
    low, high = int(counts.min()), int(counts.max())
    return f"n = {low}" if low == high else f"n = {low}-{high}"


@register_table(
    "main_accuracy",
    "Test accuracy (%) mean ± std over seeds per dataset, model and regulariser; best per row marked.",
    skip="no finished main-grid run",
)
def main_accuracy(data: RunData, tables: Mapping[str, Table]) -> TableBody | None:
    runs = data.main(data.runs)
    if runs.empty:
        return None
    summary = sort_frame(seed_summary(runs, "test_accuracy_pct", CELL), CELL)
    summary["best"] = mark_best(
        summary, "mean", ["dataset", "model"], goal="max", eligible=summary["n"] >= ENOUGH
    )
    summary["cell"] = [mean_std_text(r.mean, r.std, r.n) for r in summary.itertuples()]
    display, bold = pivot_display(
        summary, ["dataset", "model"], "regularizer", "cell", column_kind="regularizer"
    )
    images = sorted(set(runs["n_test"].dropna().astype(int))) if "n_test" in runs else []
    on = f" on {', '.join(map(str, images))} test images" if images else ""
    return TableBody(
        f"Test accuracy (%){on}, mean ± sample std (ddof=1) over seeds, {n_range(summary['n'])} seeds per "
        f"cell. {BEST_RULE} '-': not run.",
        summary.drop(columns="cell").rename(columns={"mean": "mean_accuracy_pct", "std": "std_accuracy_pct"}),
        display,
        bold,
    )


def paired_accuracy(data: RunData) -> pd.DataFrame:
    runs = data.main(data.runs)
    if runs.empty or REFERENCE not in set(runs["regularizer"]):
        return pd.DataFrame(columns=[*CELL, "seed", "difference"])
    return stats.paired_differences(runs, "test_accuracy_pct", ["dataset", "model"], reference=REFERENCE)


@register_table(
    "depth_trend",
    "Accuracy gain over `none` (pp, paired by seed) per regulariser as ResNet depth and WRN size grow.",
    skip=f"no ResNet/WRN model run with `{REFERENCE}` and a regulariser on a shared seed",
)
def depth_trend(data: RunData, tables: Mapping[str, Table]) -> TableBody | None:
    paired = paired_accuracy(data)
    keys = paired["model"].map(model_key)
    paired = paired[[key.family != "other" for key in keys]]
    if paired.empty:
        return None
    gains = sort_frame(seed_summary(paired, "difference", CELL), CELL)
    model_keys = gains["model"].map(model_key)
    gains.insert(2, "family", [FAMILY_LABEL[key.family] for key in model_keys])
    gains.insert(3, "depth", [key.depth for key in model_keys])
    gains.insert(4, "width", [key.width for key in model_keys])
    gains["best"] = mark_best(gains, "mean", ["dataset", "model"], goal="max", eligible=gains["n"] >= ENOUGH)
    gains["cell"] = [f"{signed_text(r.mean)} (n={r.n})" for r in gains.itertuples()]
    display, bold = pivot_display(
        gains, ["dataset", "family", "model"], "regularizer", "cell", column_kind="regularizer"
    )
    return TableBody(
        "Gain in test accuracy over the unregularised model (percentage points): the mean over seeds of "
        f"acc(reg, seed) - acc(none, seed), n = seeds run by both ({n_range(gains['n'])}). "
        f"Bold: the largest gain of each model among cells with n >= {ENOUGH}. Table `claims` tests the "
        "trend.",
        gains.drop(columns="cell").rename(
            columns={"n": "n_pairs", "mean": "mean_gain_pp", "std": "std_gain_pp"}
        ),
        display,
        bold,
    )


def paired_test(differences: pd.Series) -> dict[str, float | str | int]:
    """The columns shared by significance and claims: n, mean, t-interval, t-test p, sign-flip p and the
    smallest p the sign-flip test could give at this n."""
    estimate = stats.mean_estimate(differences)
    low, high = estimate.interval
    sign_flip, method = stats.sign_flip_pvalue(differences.to_numpy())
    return {
        "n_pairs": estimate.n,
        "mean_difference": estimate.value,
        "ci95_low": low,
        "ci95_high": high,
        "p_t": estimate.p_value,
        "p_sign_flip": sign_flip,
        "sign_flip_method": method,
        "smallest_sign_flip_p": stats.smallest_sign_flip_p(estimate.n),
    }


def interval_text(low: float, high: float) -> str:
    return "-" if pd.isna(low) else f"[{signed_text(low)}, {signed_text(high)}]"


@register_table(
    "significance",
    "Each regulariser against `none`, paired by seed: mean difference, t-interval, t-test and sign-flip p.",
    skip=f"no regulariser run on a seed that `{REFERENCE}` was also run on",
)
def significance(data: RunData, tables: Mapping[str, Table]) -> TableBody | None:
    paired = paired_accuracy(data)
    if paired.empty:
        return None
    rows = [
        {**dict(zip(CELL, key, strict=True)), **paired_test(part["difference"])}
        for key, part in paired.groupby(CELL, sort=False)
    ]
    table = sort_frame(pd.DataFrame(rows), CELL).rename(
        columns={
            "mean_difference": "mean_difference_pp",
            "ci95_low": "ci95_low_pp",
            "ci95_high": "ci95_high_pp",
        }
    )
    table["significant"] = (table["n_pairs"] >= ENOUGH) & (table["p_t"] < 1 - stats.LEVEL)
    display = pd.DataFrame(
        {
            "dataset": table["dataset"],
            "model": table["model"],
            "regularizer": table["regularizer"],
            "Δ acc (pp)": table["mean_difference_pp"].map(signed_text),
            "95% t-interval (pp)": [interval_text(r.ci95_low_pp, r.ci95_high_pp) for r in table.itertuples()],
            "p (t-test)": table["p_t"].map(lambda p: "-" if pd.isna(p) else f"{p:.3g}"),
            "p (sign-flip)": [
                f"{r.p_sign_flip:.3g} (>= {r.smallest_sign_flip_p:.3g})" for r in table.itertuples()
            ],
            "n pairs": table["n_pairs"].astype(str),
        }
    )
    bold = pd.DataFrame(False, index=display.index, columns=display.columns)
    bold["Δ acc (pp)"] = table["significant"]
    return TableBody(
        f"Paired by seed: difference = acc(reg) - acc(none) in pp, {n_range(table['n_pairs'])} pairs. "
        f"95% t-interval and two-sided paired t-test (n - 1 degrees of freedom; valid for normal "
        "seed-to-seed differences at any n >= 2). p (sign-flip): exact permutation test over all 2^n sign "
        "patterns, assumption-free but never below 2/2^n (in brackets: 0.25 at n = 3, under 0.05 only from "
        f"n = 6). Bold (csv: significant=True): t-test p < 0.05 with n >= {ENOUGH}.",
        table,
        display,
        bold,
    )


@register_table(
    "cost",
    "Training time per epoch per regulariser and the ratio to `none` (same dataset, model and device).",
    skip="no run records seconds per epoch",
)
def cost(data: RunData, tables: Mapping[str, Table]) -> TableBody | None:
    """On the CPU the process CPU time is compared (jobs ran side by side there, so wall time is not
    comparable); on a GPU, where each job holds its own device, wall time."""
    runs = data.main(data.runs)
    if runs.empty:
        return None
    cpu = runs["device"].str.startswith("cpu") & runs["cpu_seconds_per_epoch"].notna()
    runs = runs.assign(
        cost_seconds=runs["cpu_seconds_per_epoch"].where(cpu, runs["seconds_per_epoch"]),
        measure=["CPU seconds (process)" if flag else "wall seconds" for flag in cpu],
    )
    runs = runs[runs["cost_seconds"].notna()]
    if runs.empty:
        return None
    summary = sort_frame(seed_summary(runs, "cost_seconds", [*CELL, "measure"]), CELL)
    reference = summary[summary["regularizer"] == REFERENCE][["dataset", "model", "measure", "mean"]]
    summary = summary.merge(
        reference.rename(columns={"mean": "_none"}), on=["dataset", "model", "measure"], how="left"
    )
    summary["ratio_to_none"] = summary["mean"] / summary["_none"]
    details = runs.groupby(CELL).agg(
        device=("device", lambda values: ", ".join(sorted(set(values)))),
        max_load=("load_average", "max"),
        wall_seconds_per_epoch=("seconds_per_epoch", "mean"),
    )
    summary = summary.drop(columns="_none").merge(details.reset_index(), on=CELL, how="left")
    summary = summary.rename(columns={"mean": "mean_seconds_per_epoch", "std": "std_seconds_per_epoch"})
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
    return TableBody(
        "Seconds per training epoch, mean ± std over seeds; × none: ratio of means to the unregularised run "
        "of the same dataset, model and measure ('-' when none was not run). On the CPU the training "
        "process's CPU time is compared, because pipeline jobs there run side by side and share the "
        "cores, which makes their wall times not comparable (wall time and the machine's 1-minute load "
        "average at the run's end are shown for reference); on a GPU each job holds its own device and "
        "wall time is compared. Compare only rows measured on the same device.",
        summary,
        display,
        None,
    )


def value_order(value: float | str) -> tuple[int, float | str]:
    """Numbers in increasing order; a rule name (relaxation) after them, alphabetically."""
    return (1, value) if isinstance(value, str) else (0, float(value))


def ablation_points(data: RunData) -> pd.DataFrame:
    """The ablation runs, plus the main-grid runs of the same dataset, model and regulariser at the
    value their own settings had (source 'main grid'), so each ablation curve shows the main runs' point."""
    runs = data.runs[data.runs["ablation_param"].notna()] if len(data.runs) else data.runs
    if runs.empty:
        return runs
    points = [runs.assign(source="ablation")]
    main = data.main(data.runs)
    for (param, dataset, model, regularizer), _ in runs.groupby(["ablation_param", *CELL], sort=False):
        matching = main[
            (main["dataset"] == dataset) & (main["model"] == model) & (main["regularizer"] == regularizer)
        ]
        setting = f"setting_{param}"
        if (
            len(matching)
            and setting in matching
            and matching[setting].notna().all()
            and matching[setting].nunique() == 1
        ):
            points.append(
                matching.assign(ablation_param=param, ablation_value=matching[setting], source="main grid")
            )
    return pd.concat(points, ignore_index=True)


@register_table(
    "ablation",
    "Test accuracy (%) against each ablated hyper-parameter value, per regulariser (main-grid value included).",
    skip="no ablation runs (run.json ablation is null everywhere)",
)
def ablation(data: RunData, tables: Mapping[str, Table]) -> TableBody | None:
    points = ablation_points(data)
    if points.empty:
        return None
    group = ["ablation_param", "dataset", "model", "regularizer", "ablation_value"]
    summary = seed_summary(points, "test_accuracy_pct", group)
    sources = (
        points.groupby(group, sort=False)["source"].agg(lambda s: " + ".join(sorted(set(s)))).reset_index()
    )
    summary = summary.merge(sources, on=group)
    summary["_value_order"] = summary["ablation_value"].map(value_order)
    summary = sort_frame(summary, [*group[:-1], "_value_order"]).drop(columns="_value_order")
    summary["best"] = mark_best(
        summary,
        "mean",
        ["ablation_param", "dataset", "model", "regularizer"],
        eligible=summary["n"] >= ENOUGH,
    )
    summary["cell"] = [
        mean_std_text(r.mean, r.std, r.n) + (" *" if "main" in r.source else "") for r in summary.itertuples()
    ]
    summary["value"] = summary["ablation_value"].map(lambda v: v if isinstance(v, str) else general_text(v))
    display, bold = pivot_display(
        summary,
        ["ablation_param", "dataset", "model", "value"],
        "regularizer",
        "cell",
        column_kind="regularizer",
    )
    display = display.rename(columns={"ablation_param": "parameter"})
    bold = bold.rename(columns={"ablation_param": "parameter"})
    return TableBody(
        "Ablation runs: test accuracy (%) mean ± std over seeds (n) for each value of the ablated parameter, "
        "all other settings as in the main grid; * marks the main grid's own runs at their value. Bold: the "
        f"best value of each regulariser among values with n >= {ENOUGH}.",
        summary.drop(columns=["cell", "value"]).rename(
            columns={"mean": "mean_accuracy_pct", "std": "std_accuracy_pct"}
        ),
        display,
        bold,
    )
