"""Accuracy over seeds: per cell, paired by seed against `none`, along the depth axis, per ablated
value, and the cost of each regulariser per epoch.

Accuracies are in percent, gains in percentage points (pp). Pairing by seed compares two regularisers
on the seeds both were run on (same data order and initialisation stream).
"""

from __future__ import annotations

import pandas as pd

from orthoreg.report.analysis import stats
from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.order import FAMILY_LABEL, REFERENCE, model_key, sort_frame
from orthoreg.report.analysis.summary import CELL, ENOUGH, mark_best, mean_interval, seed_summary


def accuracy_summary(data: RunData) -> pd.DataFrame:
    """Per cell of the main grid: n, mean and std of the final test accuracy (%), its t-interval and
    whether it is the best of its (dataset, model)."""
    runs = data.main(data.runs)
    if runs.empty:
        return pd.DataFrame(columns=[*CELL, "n", "mean_accuracy_pct", "std_accuracy_pct", "best"])
    summary = sort_frame(seed_summary(runs, "test_accuracy_pct", CELL), CELL)
    summary["best"] = mark_best(
        summary, "mean", ["dataset", "model"], goal="max", eligible=summary["n"] >= ENOUGH
    )
    intervals = [mean_interval(r.mean, r.std, r.n) for r in summary.itertuples()]
    summary["ci95_low_pct"] = [low for low, _ in intervals]
    summary["ci95_high_pct"] = [high for _, high in intervals]
    return summary.rename(columns={"mean": "mean_accuracy_pct", "std": "std_accuracy_pct"})


def evaluated_images(runs: pd.DataFrame) -> list[int]:
    """The distinct numbers of test images eval.json measured the runs' accuracy on."""
    if "n_test" not in runs:
        return []
    return sorted(set(runs["n_test"].dropna().astype(int)))


def paired_accuracy(data: RunData) -> pd.DataFrame:
    """Per main-grid run of a regulariser: its accuracy minus `none`'s on the same seed (pp)."""
    runs = data.main(data.runs)
    if runs.empty or REFERENCE not in set(runs["regularizer"]):
        return pd.DataFrame(columns=[*CELL, "seed", "difference"])
    return stats.paired_differences(runs, "test_accuracy_pct", ["dataset", "model"], reference=REFERENCE)


def depth_gains(data: RunData) -> pd.DataFrame:
    """Per cell on the ResNet/WRN axes: the mean, std and n of the paired gain over `none` (pp), with
    the model's family, depth and width, and the largest gain of each model marked."""
    paired = paired_accuracy(data)
    paired = paired[[model_key(model).family != "other" for model in paired["model"]]]
    if paired.empty:
        return pd.DataFrame(columns=[*CELL, "family", "n_pairs", "mean_gain_pp", "std_gain_pp"])
    gains = sort_frame(seed_summary(paired, "difference", CELL), CELL)
    keys = gains["model"].map(model_key)
    gains.insert(2, "family", [FAMILY_LABEL[key.family] for key in keys])
    gains.insert(3, "depth", [key.depth for key in keys])
    gains.insert(4, "width", [key.width for key in keys])
    gains["best"] = mark_best(gains, "mean", ["dataset", "model"], goal="max", eligible=gains["n"] >= ENOUGH)
    return gains.rename(columns={"n": "n_pairs", "mean": "mean_gain_pp", "std": "std_gain_pp"})


def paired_test(differences: pd.Series) -> dict[str, float | str | int]:
    """n, mean, t-interval, t-test p, sign-flip p and the smallest p the sign-flip test could give at
    this n, of paired differences."""
    estimate = stats.mean_estimate(differences)
    low, high = estimate.interval
    sign_flip, method = stats.sign_flip_pvalue(differences.to_numpy())
    return {
        "n_pairs": estimate.n,
        "mean_difference_pp": estimate.value,
        "ci95_low_pp": low,
        "ci95_high_pp": high,
        "p_t": estimate.p_value,
        "p_sign_flip": sign_flip,
        "sign_flip_method": method,
        "smallest_sign_flip_p": stats.smallest_sign_flip_p(estimate.n),
    }


def significance_tests(data: RunData) -> pd.DataFrame:
    """Each regulariser against `none`, paired by seed; `significant`: p_t < 1 - LEVEL with n >= ENOUGH."""
    paired = paired_accuracy(data)
    if paired.empty:
        return pd.DataFrame(columns=[*CELL, "n_pairs", "significant"])
    rows = [
        {**dict(zip(CELL, key, strict=True)), **paired_test(part["difference"])}
        for key, part in paired.groupby(CELL, sort=False)
    ]
    table = sort_frame(pd.DataFrame(rows), CELL)
    table["significant"] = (table["n_pairs"] >= ENOUGH) & (table["p_t"] < 1 - stats.LEVEL)
    return table


def cost_measured(runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's cost per epoch: process CPU seconds on the CPU (jobs there share the cores, so wall
    time is not comparable), wall seconds on a GPU (each job holds its own device)."""
    cpu = runs["device"].str.startswith("cpu") & runs["cpu_seconds_per_epoch"].notna()
    runs = runs.assign(
        cost_seconds=runs["cpu_seconds_per_epoch"].where(cpu, runs["seconds_per_epoch"]),
        measure=["CPU seconds (process)" if flag else "wall seconds" for flag in cpu],
    )
    return runs[runs["cost_seconds"].notna()]


def cost_summary(data: RunData) -> pd.DataFrame:
    """Per cell and measure: seconds per epoch over seeds, the ratio of means to `none`, the devices,
    the largest load average and the mean wall seconds."""
    runs = data.main(data.runs)
    runs = cost_measured(runs) if len(runs) else runs
    if runs.empty:
        return pd.DataFrame(columns=[*CELL, "measure", "ratio_to_none"])
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
    return summary.rename(columns={"mean": "mean_seconds_per_epoch", "std": "std_seconds_per_epoch"})


def value_order(value: float | str) -> tuple[int, float | str]:
    """Numbers in increasing order; a rule name (relaxation) after them, alphabetically."""
    return (1, value) if isinstance(value, str) else (0, float(value))


def _main_points(main: pd.DataFrame, param: str, cell: tuple) -> pd.DataFrame | None:
    """The main grid's runs of `cell` at the value their own `param` had, when they agree on one."""
    dataset, model, regularizer = cell
    matching = main[
        (main["dataset"] == dataset) & (main["model"] == model) & (main["regularizer"] == regularizer)
    ]
    setting = f"setting_{param}"
    if not len(matching) or setting not in matching or matching[setting].isna().any():
        return None
    if matching[setting].nunique() != 1:
        return None
    return matching.assign(ablation_param=param, ablation_value=matching[setting], source="main grid")


def ablation_points(data: RunData) -> pd.DataFrame:
    """The ablation runs, plus the main-grid runs of the same dataset, model and regulariser at the
    value their own settings had (source 'main grid'), so each ablation curve shows the main runs' point."""
    runs = data.runs[data.runs["ablation_param"].notna()] if len(data.runs) else data.runs
    if runs.empty:
        return runs
    points = [runs.assign(source="ablation")]
    main = data.main(data.runs)
    for (param, *cell), _ in runs.groupby(["ablation_param", *CELL], sort=False):
        found = _main_points(main, param, tuple(cell))
        if found is not None:
            points.append(found)
    return pd.concat(points, ignore_index=True)


def ablation_summary(data: RunData) -> pd.DataFrame:
    """Per ablated parameter, cell and value: accuracy over seeds, where the points came from, and
    the best value of each regulariser marked."""
    points = ablation_points(data)
    if points.empty:
        return points
    group = ["ablation_param", "dataset", "model", "regularizer", "ablation_value"]
    summary = seed_summary(points, "test_accuracy_pct", group)
    sources = (
        points.groupby(group, sort=False)["source"].agg(lambda s: " + ".join(sorted(set(s)))).reset_index()
    )
    summary = summary.merge(sources, on=group)
    summary["_value_order"] = summary["ablation_value"].map(value_order)
    summary = sort_frame(summary, [*group[:-1], "_value_order"]).drop(columns="_value_order")
    summary["best"] = mark_best(summary, "mean", group[:-1], eligible=summary["n"] >= ENOUGH)
    return summary.rename(columns={"mean": "mean_accuracy_pct", "std": "std_accuracy_pct"})
