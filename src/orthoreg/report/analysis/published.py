"""Published CIFAR numbers, each with its source, statistic, architecture and training setting, and the
reproduced runs that compare with it like for like.

Errors are converted to accuracy (100 - error). A published number is compared only with runs of the
same architecture (matched on family, depth and width, so the join does not depend on how the model
registry spells names), dataset, regulariser and setting (dropout, shortcut option, the penalty's
options: each `setting_<name>` run.json records), and through the same statistic: the median of the
runs' final accuracies for a median of runs, the best of them for a best run, each run's best epoch
(history.csv) for a best epoch. A published range is compared by the distance to its nearest end (0
inside the range). A number whose architecture no model of ours builds is listed as not comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from orthoreg.report.analysis.order import ModelKey, model_key


@dataclass(frozen=True)
class Statistic:
    """How a published number summarises its runs, so the reproduced runs can be summarised alike:
    `best_epoch` takes each run's best epoch instead of its last, `over_runs` combines the runs."""

    label: str
    best_epoch: bool
    over_runs: str  # "mean", "median" or "max"


BEST_EPOCH_OF_ONE_RUN = Statistic("best epoch of one run", True, "mean")
MEDIAN_OF_5 = Statistic("median of 5 runs", False, "median")
MEAN_OF_5 = Statistic("mean ± std of 5 runs", False, "mean")
BEST_OF_5 = Statistic("best of 5 runs", False, "max")
RANGE = Statistic("range of public reports", False, "mean")
OVER_RUNS = {"mean": np.mean, "median": np.median, "max": np.max}

WRN_README = "Zagoruyko & Komodakis 2016, Wide Residual Networks (code README)"
BANSAL = "Bansal, Chen & Wang 2018 (NeurIPS), code README"
HE = "He et al. 2016, Deep Residual Learning"
PUBLIC_REPORTS = "public 200-epoch reports of the CIFAR ResNet-18"


@dataclass(frozen=True)
class Architecture:
    """What a source trained: its name, in words, and our model of it (None: no model of ours is it)."""

    label: str
    text: str
    model: ModelKey | None


WRN_BLOCKS = "pre-activation wide basic blocks, 1x1 projections where the shape changes"
WRN_28_10 = Architecture("WRN-28-10", f"WRN-28-10: {WRN_BLOCKS}", ModelKey("wrn", 28, 10))
WRN_16_8 = Architecture("WRN-16-8", f"WRN-16-8: {WRN_BLOCKS}", ModelKey("wrn", 16, 8))
RESNET_110 = Architecture(
    "ResNet-110",
    "ResNet-110 (CIFAR, basic blocks, option-A padded-identity shortcuts)",
    ModelKey("cifar_resnet", 110, None),
)
RESNET_18 = Architecture(
    "ResNet-18", "ResNet-18 (basic blocks, a 3x3 stem without max-pooling)", ModelKey("resnet", 18, None)
)
KERAS_RESNET_V2 = Architecture(
    "Keras ResNet v2 (110)",
    "Keras pre-activation bottleneck ResNet v2, n = 12 (110 layers), projection shortcuts; trained with "
    "Adam 1e-3, batch 32, the checkpoint chosen on the test set",
    None,
)
NO_DROPOUT = (("dropout", 0.0),)
DROPOUT = (("dropout", 0.3),)
# the setting of Bansal et al.'s WRN experiments with SRIP (the `bansal_wrn` preset)
BANSAL_SRIP = (
    *DROPOUT,
    ("squared", True),
    ("include_linear", True),
    ("skip_stem", False),
    ("lambda", 0.01),
    ("schedule", "step"),
)


@dataclass(frozen=True)
class Published:
    """One published number: accuracy in percent (low == high for a point value); `setting` the run
    settings it was trained with, which a reproduced run must have too."""

    architecture: Architecture
    dataset: str
    regularizer: str
    accuracy_low: float
    accuracy_high: float
    statistic: Statistic
    source: str
    setting: tuple[tuple[str, Any], ...] = ()
    std: float | None = None


def _error(architecture, dataset, regularizer, error, statistic, source, setting=(), std=None) -> Published:
    accuracy = 100.0 - error
    return Published(architecture, dataset, regularizer, accuracy, accuracy, statistic, source, setting, std)


PUBLISHED: tuple[Published, ...] = (
    _error(WRN_28_10, "cifar10", "none", 4.00, MEDIAN_OF_5, WRN_README, NO_DROPOUT),
    _error(WRN_28_10, "cifar100", "none", 19.25, MEDIAN_OF_5, WRN_README, NO_DROPOUT),
    _error(WRN_28_10, "cifar10", "none", 3.89, MEDIAN_OF_5, WRN_README, DROPOUT),
    _error(WRN_28_10, "cifar100", "none", 18.85, MEDIAN_OF_5, WRN_README, DROPOUT),
    _error(WRN_28_10, "cifar10", "none", 4.16, BEST_EPOCH_OF_ONE_RUN, BANSAL, DROPOUT),
    _error(WRN_28_10, "cifar10", "srip", 3.60, BEST_EPOCH_OF_ONE_RUN, BANSAL, BANSAL_SRIP),
    _error(WRN_28_10, "cifar100", "none", 20.50, BEST_EPOCH_OF_ONE_RUN, BANSAL, DROPOUT),
    _error(WRN_28_10, "cifar100", "srip", 18.19, BEST_EPOCH_OF_ONE_RUN, BANSAL, BANSAL_SRIP),
    _error(WRN_16_8, "cifar10", "none", 4.27, MEDIAN_OF_5, WRN_README, NO_DROPOUT),
    _error(RESNET_110, "cifar10", "none", 6.43, BEST_OF_5, HE, (("shortcut", "A"),)),
    _error(RESNET_110, "cifar10", "none", 6.61, MEAN_OF_5, HE, (("shortcut", "A"),), std=0.16),
    Published(RESNET_18, "cifar10", "none", 93.0, 95.4, RANGE, PUBLIC_REPORTS),
    _error(KERAS_RESNET_V2, "cifar10", "none", 7.11, BEST_EPOCH_OF_ONE_RUN, BANSAL),
    _error(KERAS_RESNET_V2, "cifar10", "srip", 5.46, BEST_EPOCH_OF_ONE_RUN, BANSAL),
)


def setting_text(setting: tuple[tuple[str, Any], ...]) -> str:
    """'dropout = 0.3, squared = True, ...' ('-' for none)."""
    return ", ".join(f"{name} = {value}" for name, value in setting) or "-"


def _agrees(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, (bool, str)):
        return isinstance(value, (bool, np.bool_, str)) and value == wanted
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float)) or math.isnan(value):
        return False
    return math.isclose(float(value), float(wanted), rel_tol=1e-9, abs_tol=1e-12)


def _mismatches(runs: pd.DataFrame, entry: Published) -> list[str]:
    """The settings of `entry` the runs do not all have, as 'name: runs have ..., published ...'."""
    found = []
    for name, wanted in entry.setting:
        column = runs[f"setting_{name}"] if f"setting_{name}" in runs else pd.Series([None] * len(runs))
        if not all(_agrees(value, wanted) for value in column):
            values = ", ".join(sorted({str(value) for value in column}))
            found.append(f"{name}: runs have {values}, published {wanted}")
    return found


def _comparison(reproduced: float, entry: Published) -> float:
    if reproduced < entry.accuracy_low:
        return reproduced - entry.accuracy_low
    if reproduced > entry.accuracy_high:
        return reproduced - entry.accuracy_high
    return 0.0


def _spread(values: pd.Series) -> tuple[float, float | None]:
    values = values.astype(float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None


def _images_text(limit: Any) -> str:
    """The per-epoch test pass's images: the first `limit_test`, or all of them."""
    return "all" if limit is None or (isinstance(limit, float) and math.isnan(limit)) else str(int(limit))


def _best_epochs(runs: pd.DataFrame) -> dict[str, Any]:
    """Each run's best epoch over seeds, and the per-epoch test pass's images; empty values where a
    run lacks history.csv (a best epoch cannot be compared then)."""
    if runs["best_epoch_accuracy_pct"].isna().any():
        return {"reproduced_best_epoch_mean_pct": None, "reproduced_best_epoch_std_pct": None}
    mean, std = _spread(runs["best_epoch_accuracy_pct"])
    images = sorted({_images_text(value) for value in runs["history_test_images"]})
    return {
        "reproduced_best_epoch_mean_pct": mean,
        "reproduced_best_epoch_std_pct": std,
        "best_epoch_test_images": "/".join(images),
    }


def reproduced(runs: pd.DataFrame, entry: Published) -> dict[str, Any]:
    """The reproduced columns of `entry` from its matching runs: final-epoch accuracy over seeds, each
    run's best epoch where the published number is a best epoch, and the like-for-like value."""
    statistic = entry.statistic
    final_mean, final_std = _spread(runs["test_accuracy_pct"])
    values = runs["best_epoch_accuracy_pct" if statistic.best_epoch else "test_accuracy_pct"].astype(float)
    compared = None if values.isna().any() else float(OVER_RUNS[statistic.over_runs](values))
    per_run = "best epoch (history.csv)" if statistic.best_epoch else "final accuracy"
    return {
        "reproduced_model": "/".join(sorted(set(runs["model"]))),
        "reproduced_n": len(runs),
        "reproduced_mean_pct": final_mean,
        "reproduced_std_pct": final_std,
        **(_best_epochs(runs) if statistic.best_epoch else {}),
        "reproduced_epochs": int(runs["epochs_completed"].max()),
        "reproduced_compared_pct": compared,
        "compared_as": f"{statistic.over_runs} over runs of each run's {per_run}",
        "difference_pp": None if compared is None else _comparison(compared, entry),
    }


def _published_columns(entry: Published) -> dict[str, Any]:
    return {
        "model": entry.architecture.label,
        "architecture": entry.architecture.text,
        "dataset": entry.dataset,
        "regularizer": entry.regularizer,
        "setting": setting_text(entry.setting),
        "published_accuracy_low_pct": entry.accuracy_low,
        "published_accuracy_high_pct": entry.accuracy_high,
        "published_std_pct": entry.std,
        "statistic": entry.statistic.label,
        "best_epoch": entry.statistic.best_epoch,
        "source": entry.source,
    }


def _cell(runs: pd.DataFrame, entry: Published) -> pd.DataFrame:
    """The runs of the published number's architecture, dataset and regulariser, in any setting."""
    if runs.empty:
        return runs
    key = entry.architecture.model
    same_model = np.array([model_key(model) == key for model in runs["model"]], dtype=bool)
    return runs[same_model & (runs["dataset"] == entry.dataset) & (runs["regularizer"] == entry.regularizer)]


def status_of(runs: pd.DataFrame, entry: Published) -> tuple[str, str, pd.DataFrame]:
    """(status, why, matching runs): 'not comparable' (no model of ours has the architecture), 'not
    run', 'other setting' (runs of the cell exist, none in the published setting) or 'reproduced'."""
    if entry.architecture.model is None:
        return "not comparable", "no model of ours has this architecture", runs.iloc[:0]
    cell = _cell(runs, entry)
    if cell.empty:
        return "not run", "", cell
    matching = cell[[not _mismatches(cell.loc[[index]], entry) for index in cell.index]]
    if matching.empty:
        return "other setting", "; ".join(_mismatches(cell, entry)), matching
    return "reproduced", "", matching


def published_comparison(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per published number: its source, statistic, architecture and setting, and the
    reproduced runs of the same setting summarised by the same statistic ('not run' and the like
    where there are none)."""
    rows = []
    for entry in PUBLISHED:
        status, why, matching = status_of(runs, entry)
        row = {**_published_columns(entry), "status": status, "why": why}
        rows.append({**row, **(reproduced(matching, entry) if len(matching) else {})})
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


COLUMNS = [
    "model",
    "architecture",
    "dataset",
    "regularizer",
    "setting",
    "published_accuracy_low_pct",
    "published_accuracy_high_pct",
    "published_std_pct",
    "statistic",
    "best_epoch",
    "source",
    "status",
    "why",
    "reproduced_model",
    "reproduced_n",
    "reproduced_mean_pct",
    "reproduced_std_pct",
    "reproduced_best_epoch_mean_pct",
    "reproduced_best_epoch_std_pct",
    "best_epoch_test_images",
    "reproduced_epochs",
    "reproduced_compared_pct",
    "compared_as",
    "difference_pp",
]
