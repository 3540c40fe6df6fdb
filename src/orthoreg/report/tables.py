"""Accuracy tables: the main table, the depth trend, significance against `none`, cost and ablations.

Each builder takes the collected frames and returns a Table, or None when its data do not exist
(the caller records why). Accuracies are printed in percent; gains in percentage points (pp).
"""

from __future__ import annotations

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
from orthoreg.report.writers import Table

CELL = ["dataset", "model", "regularizer"]


def seed_summary(frame: pd.DataFrame, value: str, group: list[str]) -> pd.DataFrame:
    """Per group: n, mean and sample std (ddof=1, empty for one seed) of `value` over seeds."""
    rows = []
    for key, part in frame.groupby(group, sort=False, dropna=False):
        mean, std, n = stats.mean_std(part[value])
        rows.append({**dict(zip(group, key, strict=True)), "n": n, "mean": mean, "std": optional(std)})
    return pd.DataFrame(rows, columns=[*group, "n", "mean", "std"])


def main_accuracy(data: RunData) -> Table | None:
    """Test accuracy mean ± std over seeds per (dataset, model, regulariser); best per (dataset, model)."""
    runs = data.main(data.runs)
    if runs.empty:
        return None
    summary = sort_frame(seed_summary(runs, "test_accuracy_pct", CELL), CELL)
    summary["best"] = mark_best(summary, "mean", ["dataset", "model"], goal="max")
    summary["cell"] = [mean_std_text(r.mean, r.std, r.n) for r in summary.itertuples()]
    display, bold = pivot_display(
        summary, ["dataset", "model"], "regularizer", "cell", column_kind="regularizer"
    )
    data_frame = summary.drop(columns="cell").rename(
        columns={"mean": "mean_accuracy_pct", "std": "std_accuracy_pct"}
    )
    return Table(
        "main_accuracy",
        "Test accuracy (%) mean ± std over seeds per dataset, model and regulariser; best per row marked.",
        "Test accuracy (%), mean ± sample std (ddof=1) over seeds, n = number of seeds. "
        "Bold (csv: best=True): the highest mean of each dataset/model row; '-': not run.",
        data_frame,
        display,
        bold,
    )


def _paired(data: RunData) -> pd.DataFrame:
    runs = data.main(data.runs)
    if runs.empty or REFERENCE not in set(runs["regularizer"]):
        return pd.DataFrame(columns=[*CELL, "seed", "difference"])
    return stats.paired_differences(runs, "test_accuracy_pct", ["dataset", "model"], reference=REFERENCE)


def depth_trend(data: RunData) -> Table | None:
    """Gain over `none` (pp, paired by seed) per regulariser along ResNet depth and WRN depth/width."""
    paired = _paired(data)
    keys = paired["model"].map(model_key)
    paired = paired[[key.family != "other" for key in keys]]
    if paired.empty:
        return None
    gains = sort_frame(seed_summary(paired, "difference", CELL), CELL)
    model_keys = gains["model"].map(model_key)
    gains.insert(2, "family", [FAMILY_LABEL[key.family] for key in model_keys])
    gains.insert(3, "depth", [key.depth for key in model_keys])
    gains.insert(4, "width", [key.width for key in model_keys])
    gains["best"] = mark_best(gains, "mean", ["dataset", "model"], goal="max")
    gains["cell"] = [f"{signed_text(r.mean)} (n={r.n})" for r in gains.itertuples()]
    display, bold = pivot_display(
        gains, ["dataset", "family", "model"], "regularizer", "cell", column_kind="regularizer"
    )
    data_frame = gains.drop(columns="cell").rename(
        columns={"n": "n_pairs", "mean": "mean_gain_pp", "std": "std_gain_pp"}
    )
    return Table(
        "depth_trend",
        "Accuracy gain over `none` (pp, paired by seed) per regulariser as ResNet depth and WRN size grow.",
        "Gain in test accuracy over the unregularised model (percentage points): the mean over seeds of "
        "acc(reg, seed) - acc(none, seed), n = seeds run by both. Bold: the largest gain of each model.",
        data_frame,
        display,
        bold,
    )


def significance(data: RunData) -> Table | None:
    """Each regulariser against `none`: mean paired difference, bootstrap 95% CI, sign-flip p-value."""
    paired = _paired(data)
    if paired.empty:
        return None
    rows = []
    for key, part in paired.groupby(CELL, sort=False):
        differences = part["difference"].to_numpy()
        low, high = stats.bootstrap_ci(differences)
        p_value, method = stats.sign_flip_pvalue(differences)
        rows.append(
            {
                **dict(zip(CELL, key, strict=True)),
                "n_pairs": len(differences),
                "mean_difference_pp": float(differences.mean()),
                "ci95_low_pp": low,
                "ci95_high_pp": high,
                "p_value": p_value,
                "p_method": method,
            }
        )
    table = sort_frame(pd.DataFrame(rows), CELL)
    table["ci_excludes_zero"] = (table["ci95_low_pp"] > 0) | (table["ci95_high_pp"] < 0)
    display = pd.DataFrame(
        {
            "dataset": table["dataset"],
            "model": table["model"],
            "regularizer": table["regularizer"],
            "Δ acc (pp)": table["mean_difference_pp"].map(signed_text),
            "95% CI (pp)": [
                f"[{signed_text(r.ci95_low_pp)}, {signed_text(r.ci95_high_pp)}]" for r in table.itertuples()
            ],
            "p (sign-flip)": table["p_value"].map(lambda p: f"{p:.3g}"),
            "n pairs": table["n_pairs"].astype(str),
        }
    )
    bold = pd.DataFrame(False, index=display.index, columns=display.columns)
    bold["95% CI (pp)"] = table["ci_excludes_zero"]
    return Table(
        "significance",
        "Each regulariser against `none`, paired by seed: mean difference, bootstrap 95% CI, sign-flip p.",
        f"Paired by seed: difference = acc(reg) - acc(none) in pp. 95% CI: percentile bootstrap over seeds "
        f"({stats.BOOTSTRAP_RESAMPLES} resamples, numpy seed {stats.BOOTSTRAP_SEED}). p: two-sided sign-flip "
        f"permutation test of the mean difference, exact over all 2^n sign patterns (n <= "
        f"{stats.EXACT_SIGN_FLIP_MAX_N}); with n seeds the smallest attainable p is 2/2^n. "
        "Bold: CI excludes 0.",
        table,
        display,
        bold,
    )


def cost(data: RunData) -> Table | None:
    """Seconds per epoch per regulariser and the ratio to `none` on the same dataset and model."""
    runs = data.main(data.runs)
    if runs.empty:
        return None
    runs = runs[runs["seconds_per_epoch"].notna()]
    if runs.empty:
        return None
    summary = sort_frame(seed_summary(runs, "seconds_per_epoch", CELL), CELL)
    reference = summary[summary["regularizer"] == REFERENCE][["dataset", "model", "mean"]]
    summary = summary.merge(reference.rename(columns={"mean": "_none"}), on=["dataset", "model"], how="left")
    summary["ratio_to_none"] = summary["mean"] / summary["_none"]
    devices = runs.groupby(CELL)["device"].agg(lambda values: ", ".join(sorted(set(values)))).reset_index()
    summary = summary.drop(columns="_none").merge(devices, on=CELL, how="left")
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
            "× none": summary["ratio_to_none"].map(lambda ratio: "-" if pd.isna(ratio) else f"{ratio:.2f}"),
            "device": summary["device"],
        }
    )
    return Table(
        "cost",
        "Seconds per training epoch per regulariser and the ratio to `none` (same dataset, model).",
        "Wall-clock seconds per training epoch (run.json seconds_per_epoch, else the mean of history.csv "
        "seconds), mean ± std over seeds; × none: ratio of means to the unregularised run of the same "
        "dataset and model ('-' when none was not run). Compare only rows measured on the same device.",
        summary,
        display,
        None,
    )


def ablation(data: RunData) -> Table | None:
    """Accuracy against each ablated hyper-parameter value (gamma, rho, lambda), per regulariser."""
    runs = data.runs[data.runs["ablation_param"].notna()] if len(data.runs) else data.runs
    if runs.empty:
        return None
    group = ["ablation_param", "dataset", "model", "regularizer", "ablation_value"]
    summary = sort_frame(seed_summary(runs, "test_accuracy_pct", group), group)
    summary["best"] = mark_best(summary, "mean", ["ablation_param", "dataset", "model", "regularizer"])
    summary["cell"] = [mean_std_text(r.mean, r.std, r.n) for r in summary.itertuples()]
    summary["value"] = summary["ablation_value"].map(general_text)
    display, bold = pivot_display(
        summary,
        ["ablation_param", "dataset", "model", "value"],
        "regularizer",
        "cell",
        column_kind="regularizer",
    )
    display = display.rename(columns={"ablation_param": "parameter"})
    bold = bold.rename(columns={"ablation_param": "parameter"})
    data_frame = summary.drop(columns=["cell", "value"]).rename(
        columns={"mean": "mean_accuracy_pct", "std": "std_accuracy_pct"}
    )
    return Table(
        "ablation",
        "Test accuracy (%) against each ablated hyper-parameter value, per regulariser.",
        "Ablation runs: test accuracy (%) mean ± std over seeds for each value of the ablated parameter "
        "(all other settings as in the main grid). Bold: the best value of each regulariser.",
        data_frame,
        display,
        bold,
    )
