"""The published-versus-reproduced table: every published CIFAR number with its source, statistic,
architecture and setting, beside the reproduced runs of the same setting."""

from __future__ import annotations

import pandas as pd

from orthoreg.report.analysis.collect import RunData
from orthoreg.report.analysis.published import published_comparison
from orthoreg.report.registry import TableBody, register_table
from orthoreg.report.tables.format import NOT_RUN, mean_std_text, signed_text


def published_text(row) -> str:
    """'96.00', '93.4 ± 0.16' or a range '93.0-95.4'."""
    low, high = row.published_accuracy_low_pct, row.published_accuracy_high_pct
    text = f"{low:.2f}" if low == high else f"{low:.1f}-{high:.1f}"
    return text if pd.isna(row.published_std_pct) else f"{text} ± {row.published_std_pct:.2f}"


def final_text(row) -> str:
    """The reproduced final-epoch accuracy, or why there is none."""
    if row.status == "not run":
        return "not run"
    if row.status != "reproduced":
        return f"{row.status}: {row.why}"
    std = None if pd.isna(row.reproduced_std_pct) else row.reproduced_std_pct
    text = mean_std_text(row.reproduced_mean_pct, std)
    return f"{text} (n={int(row.reproduced_n)}, {int(row.reproduced_epochs)} ep)"


def best_epoch_text(row) -> str:
    """Each run's best epoch over seeds, where the published number is a best epoch."""
    if row.status != "reproduced" or not row.best_epoch:
        return NOT_RUN
    if pd.isna(row.reproduced_best_epoch_mean_pct):
        return "no history.csv"
    std = None if pd.isna(row.reproduced_best_epoch_std_pct) else row.reproduced_best_epoch_std_pct
    images = row.best_epoch_test_images
    on = "all test images" if images == "all" else f"the first {images} test images"
    return f"{mean_std_text(row.reproduced_best_epoch_mean_pct, std)} (per-epoch test on {on})"


@register_table(
    "published_vs_reproduced",
    "Published CIFAR accuracies with their source, statistic, architecture and setting beside the "
    "reproduced runs of the same setting; 'not run' where absent.",
    caption="Published numbers (error converted to accuracy = 100 - error), each with its source, the "
    "statistic it is (best epoch of one run, median or mean of runs, best of runs, a range of reports), "
    "the architecture and the setting it was trained with. Reproduced: the runs of the same architecture, "
    "dataset, regulariser and setting; final epoch: mean ± std over seeds (n seeds, epochs trained); "
    "best epoch (only where the published number is one): each run's highest per-epoch test accuracy "
    "(history.csv), mean ± std over seeds. Difference = reproduced - published, the reproduced runs "
    "summarised by the published statistic (csv: compared_as); for a range the distance to its nearest "
    "end (0 inside). 'not run': no run of that architecture, dataset and regulariser; 'other setting': "
    "runs exist, none in the published setting; 'not comparable': no model here has the architecture.",
    skip="never skipped: every published number is listed, reproduced or not",
)
def published_table(data: RunData) -> TableBody:
    table = published_comparison(data.main(data.runs))
    display = pd.DataFrame(
        {
            "model": table["model"],
            "architecture": table["architecture"],
            "dataset": table["dataset"],
            "regularizer": table["regularizer"],
            "setting": table["setting"],
            "published (%)": [published_text(row) for row in table.itertuples()],
            "statistic": table["statistic"],
            "source": table["source"],
            "reproduced, final epoch (%)": [final_text(row) for row in table.itertuples()],
            "reproduced, best epoch (%)": [best_epoch_text(row) for row in table.itertuples()],
            "difference (pp)": [
                NOT_RUN if pd.isna(row.difference_pp) else signed_text(row.difference_pp)
                for row in table.itertuples()
            ],
        }
    )
    return TableBody(table, display)
