"""Published CIFAR numbers (../shared/PAPER.md, "Published numbers") joined with reproduced means.

Errors are converted to accuracy (100 - error). Models are matched on (family, depth, width), so the
join does not depend on how the model registry spells names. A published range (ResNet-18) is compared
by the distance to its nearest end (0 inside the range).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from orthoreg.report.collect import RunData
from orthoreg.report.format import NOT_RUN, signed_text
from orthoreg.report.order import ModelKey, model_key
from orthoreg.report.registry import TableBody, register_table
from orthoreg.report.writers import Table

ZAGORUYKO = "Zagoruyko & Komodakis 2016, Wide Residual Networks"
BANSAL = "Bansal, Chen & Wang 2018 (NeurIPS), code README"
HE = "He et al. 2016, Deep Residual Learning"
PUBLIC_REPORTS = "public 200-epoch reports of the CIFAR ResNet-18"


@dataclass(frozen=True)
class Published:
    """One published number: accuracy in percent (low == high for a point value)."""

    model: ModelKey
    model_label: str
    dataset: str
    regularizer: str
    accuracy_low: float
    accuracy_high: float
    statistic: str
    source: str
    std: float | None = None
    shortcut: str | None = None  # He et al.'s option where the source states it


def _error(
    model, label, dataset, regularizer, error, statistic, source, std=None, shortcut=None
) -> Published:
    return Published(
        model, label, dataset, regularizer, 100.0 - error, 100.0 - error, statistic, source, std, shortcut
    )


WRN_28_10 = ModelKey("wrn", 28, 10)
WRN_16_8 = ModelKey("wrn", 16, 8)
RESNET_110 = ModelKey("cifar_resnet", 110, None)
RESNET_18 = ModelKey("resnet", 18, None)

PUBLISHED: tuple[Published, ...] = (
    _error(WRN_28_10, "WRN-28-10", "cifar10", "none", 4.00, "median of 5 runs", ZAGORUYKO),
    _error(WRN_28_10, "WRN-28-10", "cifar100", "none", 19.25, "median of 5 runs", ZAGORUYKO),
    _error(WRN_28_10, "WRN-28-10", "cifar10", "none", 3.89, "with dropout, median of 5 runs", ZAGORUYKO),
    _error(WRN_28_10, "WRN-28-10", "cifar100", "none", 18.85, "with dropout, median of 5 runs", ZAGORUYKO),
    _error(WRN_28_10, "WRN-28-10", "cifar10", "none", 4.16, "baseline", BANSAL),
    _error(WRN_28_10, "WRN-28-10", "cifar10", "srip", 3.60, "with SRIP", BANSAL),
    _error(WRN_28_10, "WRN-28-10", "cifar100", "none", 20.50, "baseline", BANSAL),
    _error(WRN_28_10, "WRN-28-10", "cifar100", "srip", 18.19, "with SRIP", BANSAL),
    _error(RESNET_110, "ResNet-110", "cifar10", "none", 6.43, "best run", HE, shortcut="A"),
    _error(
        RESNET_110, "ResNet-110", "cifar10", "none", 6.61, "mean ± std of 5 runs", HE, std=0.16, shortcut="A"
    ),
    _error(RESNET_110, "ResNet-110", "cifar10", "none", 7.11, "baseline", BANSAL),
    _error(RESNET_110, "ResNet-110", "cifar10", "srip", 5.46, "with SRIP", BANSAL),
    Published(RESNET_18, "ResNet-18", "cifar10", "none", 93.0, 95.4, "range", PUBLIC_REPORTS),
    _error(WRN_16_8, "WRN-16-8", "cifar10", "none", 4.27, "median of 5 runs", ZAGORUYKO),
)


def _comparison(reproduced: float, entry: Published) -> float:
    if reproduced < entry.accuracy_low:
        return reproduced - entry.accuracy_low
    if reproduced > entry.accuracy_high:
        return reproduced - entry.accuracy_high
    return 0.0


@register_table(
    "published_vs_reproduced",
    "Published CIFAR accuracies (PAPER.md) beside the reproduced means; 'not run' where absent.",
    skip="never skipped: every published number is listed, reproduced or not",
)
def published_table(data: RunData, tables: Mapping[str, Table]) -> TableBody:
    main = tables["main_accuracy"].data if "main_accuracy" in tables else None
    runs = data.main(data.runs) if len(data.runs) else None
    facts = (
        runs.groupby(["dataset", "model", "regularizer"])
        .agg(
            epochs_completed=("epochs_completed", "max"),
            shortcut=("shortcut", lambda s: "/".join(sorted({str(v) for v in s if v}))),
        )
        .reset_index()
        if runs is not None and len(runs)
        else None
    )
    return published_vs_reproduced(main, facts)


SHORTCUT_LABEL = {"A": "A (padded identity)", "B": "B (1x1 projection)"}


def published_vs_reproduced(main: pd.DataFrame | None, epochs: pd.DataFrame | None) -> TableBody:
    """Join PUBLISHED with the main table's long form (dataset, model, regularizer, n, mean, std in %).

    `epochs` gives the largest epochs_completed per (dataset, model, regularizer) so short reproductions
    are visibly short. Entries without a reproduced run read 'not run'.
    """
    reproduced: dict[tuple, dict] = {}
    if main is not None:
        for row in main.to_dict("records"):
            reproduced[(row["dataset"], model_key(row["model"]), row["regularizer"])] = row
    epoch_of, shortcut_of = {}, {}
    if epochs is not None:
        for r in epochs.to_dict("records"):
            key = (r["dataset"], r["model"], r["regularizer"])
            epoch_of[key] = r["epochs_completed"]
            shortcut_of[key] = r.get("shortcut") or None
    rows = []
    for entry in PUBLISHED:
        match = reproduced.get((entry.dataset, entry.model, entry.regularizer))
        published = (
            f"{entry.accuracy_low:.2f}"
            if entry.accuracy_low == entry.accuracy_high
            else f"{entry.accuracy_low:.1f}-{entry.accuracy_high:.1f}"
        )
        if entry.std is not None:
            published += f" ± {entry.std:.2f}"
        row = {
            "model": entry.model_label,
            "dataset": entry.dataset,
            "regularizer": entry.regularizer,
            "published_accuracy_low_pct": entry.accuracy_low,
            "published_accuracy_high_pct": entry.accuracy_high,
            "published_std_pct": entry.std,
            "statistic": entry.statistic,
            "source": entry.source,
            "published": published,
            "published_shortcut": entry.shortcut,
            "status": "not run" if match is None else "reproduced",
            "reproduced_model": None,
            "reproduced_n": None,
            "reproduced_mean_pct": None,
            "reproduced_std_pct": None,
            "reproduced_epochs": None,
            "reproduced_shortcut": None,
            "difference_pp": None,
        }
        if match is not None:
            row.update(
                {
                    "reproduced_model": match["model"],
                    "reproduced_n": match["n"],
                    "reproduced_mean_pct": match["mean_accuracy_pct"],
                    "reproduced_std_pct": match["std_accuracy_pct"],
                    "reproduced_epochs": epoch_of.get((entry.dataset, match["model"], entry.regularizer)),
                    "reproduced_shortcut": shortcut_of.get(
                        (entry.dataset, match["model"], entry.regularizer)
                    ),
                    "difference_pp": _comparison(match["mean_accuracy_pct"], entry),
                }
            )
        rows.append(row)
    table = pd.DataFrame(rows)
    display = pd.DataFrame(
        {
            "model": table["model"],
            "dataset": table["dataset"],
            "regularizer": table["regularizer"],
            "published (%)": table["published"],
            "statistic": table["statistic"],
            "source": table["source"],
            "reproduced (%)": [
                NOT_RUN
                if r.status == "not run"
                else (
                    f"{r.reproduced_mean_pct:.2f}"
                    + ("" if pd.isna(r.reproduced_std_pct) else f" ± {r.reproduced_std_pct:.2f}")
                    + f" (n={r.reproduced_n}, {r.reproduced_epochs} ep)"
                )
                for r in table.itertuples()
            ],
            "shortcuts (published / reproduced)": [
                f"{SHORTCUT_LABEL.get(r.published_shortcut, '-')} / {SHORTCUT_LABEL.get(r.reproduced_shortcut, '-')}"
                for r in table.itertuples()
            ],
            "difference (pp)": [
                "not run" if r.status == "not run" else signed_text(r.difference_pp)
                for r in table.itertuples()
            ],
        }
    )
    return TableBody(
        "Published numbers (error converted to accuracy = 100 - error) beside the reproduced mean ± std "
        "over seeds (n seeds, epochs trained). Difference = reproduced - published; for a published range "
        "the distance to its nearest end (0 inside). 'not run': that model/dataset/regulariser was not run. "
        "Shortcuts: He et al.'s option where a block changes shape (A: the input subsampled and zero-padded, "
        "as He et al.'s CIFAR ResNets; B: a 1x1 projection); the CIFAR ResNets here default to A.",
        table.drop(columns="published"),
        display,
        None,
    )
