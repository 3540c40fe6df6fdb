"""Tests of `orthoreg report`: every table's numbers against hand computations on small run directories
written here in the contract's file formats (docs/architecture.md), and figures as real PDF/PNG files
only when their data exist."""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import re
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orthoreg.cli import report as report_cli
from orthoreg.report import build_report, claims, figures, stats
from orthoreg.report.collect import load_runs
from orthoreg.report.figures import representative_layer
from orthoreg.report.order import model_key, sort_frame
from orthoreg.report.published import published_vs_reproduced
from orthoreg.report.style import new_figure, regularizer_styles

PDF_MAGIC = b"%PDF-"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EPS = 8 / 255

# accuracies (fractions) per (model, regulariser) and seed: the hand-computed cases below use these
ACCURACY = {
    ("resnet20", "none"): {0: 0.90, 1: 0.92, 2: 0.91},
    ("resnet20", "dn_strict"): {0: 0.93, 1: 0.92, 2: 0.94},
    ("resnet20", "fro"): {0: 0.91, 1: 0.93},
    ("resnet56", "none"): {0: 0.80, 1: 0.82},
    ("resnet56", "dn_strict"): {0: 0.83, 1: 0.81},
}
SECONDS = {"none": 10.0, "dn_strict": 22.0, "fro": 15.0}
# eval.json orthogonality summaries per regulariser (seed-independent offsets added below)
ORTHOGONALITY = {"none": (0.9, 12.0), "dn_strict": (0.2, 1.5), "fro": (0.4, 1.0)}
EFFECTIVE_RANK = {"none": 30.0, "dn_strict": 40.0, "fro": 50.0}


def write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)


def make_run(
    root: Path,
    dataset: str,
    model: str,
    regularizer: str,
    seed: int,
    accuracy: float,
    *,
    ablation: dict | None = None,
    epochs: int = 3,
    epochs_completed: int | None = None,
    evaluate: bool = True,
    robustness: bool = True,
    seconds: float = 10.0,
    reg_options: dict | None = None,
    cpu_seconds: float | None = None,
) -> Path:
    """A run directory in the contract's layout and formats, with known numbers."""
    if ablation is None:
        run_dir = root / "runs" / dataset / model / regularizer / f"seed{seed}"
    else:
        run_dir = (
            root
            / "ablations"
            / ablation["param"]
            / dataset
            / model
            / regularizer
            / f"{ablation['param']}={ablation['value']:g}"
            / f"seed{seed}"
        )
    done = epochs if epochs_completed is None else epochs_completed
    write_json(
        run_dir / "run.json",
        {
            "model": model,
            "dataset": dataset,
            "regularizer": regularizer,
            "seed": seed,
            "lambda": 1e-4,
            "schedule": "constant",
            "reg_options": reg_options or {},
            "ablation": ablation,
            "config": {"epochs": epochs},
            "num_classes": 10,
            "in_channels": 3,
            "image_size": 32,
            "mean": [0.5] * 3,
            "std": [0.25] * 3,
            "test_accuracy": accuracy,
            "test_loss": 0.5,
            "train_accuracy": 0.99,
            "epochs_completed": done,
            "wall_seconds": seconds * done,
            "seconds_per_epoch": seconds,
            **({} if cpu_seconds is None else {"cpu_seconds_per_epoch": cpu_seconds, "load_average": 2.5}),
            "versions": {},
            "device": "cpu",
            "git_commit": "abc",
            "started": "2024-01-01T00:00:00",
            "finished": "2024-01-01T00:01:00",
        },
    )
    write_csv(
        run_dir / "history.csv",
        [
            "epoch",
            "lr",
            "lambda",
            "train_loss",
            "train_ce",
            "reg_value",
            "train_accuracy",
            "test_loss",
            "test_accuracy",
            "orth_residual",
            "orth_coherence",
            "seconds",
        ],
        [
            [
                e,
                0.1,
                1e-4,
                1.0 / e,
                1.0 / e,
                0.0 if regularizer == "none" else 5.0 / e,
                0.5,
                0.6,
                accuracy * e / epochs,
                2.0 / e,
                0.5,
                seconds,
            ]
            for e in range(1, done + 1)
        ],
    )
    if not evaluate:
        return run_dir
    max_cos, condition = ORTHOGONALITY.get(regularizer, (0.5, 2.0))
    write_json(
        run_dir / "eval.json",
        {
            "test_accuracy": accuracy,
            "top5_accuracy": 1.0,
            "test_loss": 0.5,
            "ece": 0.03,
            "n_test": 1000,
            "effective_rank": EFFECTIVE_RANK.get(regularizer, 10.0) + seed,
            "mean_abs_channel_cosine": 0.2,
            "orthogonality": {"max_cos": max_cos + 0.01 * seed, "condition_number": condition, "n_layers": 3},
        },
    )
    write_csv(
        run_dir / "layers.csv",
        ["layer", "out_channels", "fan_in", "holistic_residual", "diagonal_deviation", "max_cos"],
        [
            [name, 4, 27, (i + 1) * max_cos, 0.1 * (i + 1), max_cos * (1 + 0.1 * i)]
            for i, name in enumerate(["conv1", "layer1.0.conv1", "layer1.0.conv2"])
        ],
    )
    write_csv(
        run_dir / "spectra.csv",
        ["layer", "index", "singular_value"],
        [[name, k, 1.0 + max_cos * (1.5 - k)] for name in ["conv1", "layer1.0.conv2"] for k in range(4)],
    )
    if robustness:
        write_json(
            run_dir / "robustness.json",
            {
                "clean_accuracy": accuracy,
                "n": 100,
                "seed": 0,
                "corruptions": [
                    {
                        "source": "generated",
                        "corruption": corruption,
                        "severity": severity,
                        "n": 100,
                        "accuracy": accuracy - 0.1 * severity - (0.05 if corruption == "brightness" else 0.0),
                    }
                    for corruption in ("gaussian_noise", "brightness")
                    for severity in (1, 2, 3, 4, 5)
                ]
                + [
                    {"source": "official", "corruption": "fog", "severity": s, "n": 100, "accuracy": 0.5}
                    for s in (1, 2, 3, 4, 5)
                ],
                "adversarial": [
                    {
                        "attack": "fgsm",
                        "steps": 1,
                        "step_size": EPS,
                        "eps": EPS,
                        "accuracy": accuracy / 3,
                        "n": 100,
                        "random_start": False,
                    },
                    {
                        "attack": "pgd",
                        "steps": 10,
                        "step_size": 2 / 255,
                        "eps": EPS,
                        "accuracy": accuracy / 4,
                        "n": 100,
                        "random_start": True,
                    },
                    {
                        "attack": "pgd",
                        "steps": 10,
                        "step_size": 1 / 255,
                        "eps": 4 / 255,
                        "accuracy": accuracy / 2,
                        "n": 100,
                        "random_start": True,
                    },
                ],
            },
        )
    return run_dir


def build_tree(root: Path, *, robustness: bool = True) -> None:
    """The small grid: cifar10, resnet20 and resnet56, three regularisers, 2-3 seeds, plus ablations."""
    for (model, regularizer), by_seed in ACCURACY.items():
        for seed, accuracy in by_seed.items():
            make_run(
                root,
                "cifar10",
                model,
                regularizer,
                seed,
                accuracy,
                robustness=robustness,
                seconds=SECONDS[regularizer] + (2.0 * seed if regularizer == "none" else 0.0),
            )
    for value, accuracies in {0.5: (0.90, 0.92), 1.0: (0.95, 0.93)}.items():
        for seed, accuracy in enumerate(accuracies):
            make_run(
                root,
                "cifar10",
                "resnet20",
                "dn_relaxed",
                seed,
                accuracy,
                evaluate=False,
                ablation={"param": "gamma", "value": value},
            )


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("report")
    build_tree(root / "results")
    summary = build_report(root / "results", root / "tables", root / "figures")
    return {"root": root, "summary": summary, "tables": root / "tables", "figures": root / "figures"}


def read_table(report: dict, name: str) -> pd.DataFrame:
    return pd.read_csv(report["tables"] / f"{name}.csv")


def row(frame: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= (frame[key] == value).to_numpy()
    assert mask.sum() == 1, f"expected one row for {where}, found {mask.sum()}"
    return frame[mask].iloc[0]


# ---- statistics ---------------------------------------------------------------------------------------


def test_sign_flip_pvalue_matches_hand_enumeration():
    # |(+-1 +-2 +-3)| >= 6 only for all-plus and all-minus: p = 2 / 8
    assert stats.sign_flip_pvalue(np.array([1.0, 2.0, 3.0])) == (0.25, "exact")
    # (1, -1): flipped means 0, 1, -1, 0 -> |.| >= 0 for all four
    assert stats.sign_flip_pvalue(np.array([1.0, -1.0]))[0] == 1.0
    values = np.array([0.7, -0.2, 1.3, 0.4, 0.9])
    observed = abs(values.mean())
    reference = (
        sum(
            abs(np.dot(signs, values)) / 5 >= observed - 1e-12
            for signs in itertools.product([-1, 1], repeat=5)
        )
        / 32
    )
    assert stats.sign_flip_pvalue(values)[0] == pytest.approx(reference)


def test_sign_flip_beyond_exact_limit_is_monte_carlo_and_small_for_a_clear_effect():
    p_value, method = stats.sign_flip_pvalue(np.full(25, 1.0))
    assert method == "monte-carlo"
    # exact value is 2 / 2^25; the estimate is (1 + hits) / (1 + draws), hits almost surely 0
    assert p_value <= 3 / (1 + stats.MONTE_CARLO_FLIPS)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.9995])
def test_t_quantile_matches_the_closed_forms(p):
    # df = 1 is the Cauchy distribution, df = 2 and df = 4 have closed-form quantiles
    assert stats.t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
    assert stats.t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    alpha = 4 * p * (1 - p)
    q = math.cos(math.acos(math.sqrt(alpha)) / 3) / math.sqrt(alpha)
    assert stats.t_quantile(p, 4) == pytest.approx(2 * math.sqrt(q - 1), rel=1e-9)
    assert stats.t_quantile(1 - p, 4) == pytest.approx(-stats.t_quantile(p, 4), rel=1e-12)
    # many degrees of freedom: the normal quantile
    assert stats.t_quantile(p, 1e7) == pytest.approx(statistics.NormalDist().inv_cdf(p), rel=1e-5)


def test_t_interval_and_test_of_a_mean_by_hand():
    estimate = stats.mean_estimate(np.array([3.0, 0.0, 3.0]))
    # mean 2, sd sqrt(3), se 1, 2 degrees of freedom: half-width t_0.975(2) = 4.30265...
    half = (2 * 0.975 - 1) / math.sqrt(2 * 0.975 * 0.025)
    assert estimate.interval == pytest.approx((2 - half, 2 + half), rel=1e-9)
    # P(T2 > 2) = (1 - 2 / sqrt(2^2 + 2)) / 2
    assert estimate.p_value == pytest.approx(1 - 2 / math.sqrt(6), rel=1e-9)
    assert estimate.verdict(+1) == "inconclusive at n = 3"
    assert stats.mean_estimate(np.array([1.0, 1.2, 0.9])).verdict(+1) == "supported"
    assert stats.mean_estimate(np.array([1.0, 1.2, 0.9])).verdict(-1) == "contradicted"
    assert stats.mean_estimate(np.array([1.0, 1.2])).verdict(+1) == "inconclusive at n = 2"
    single = stats.mean_estimate(np.array([4.0]))
    assert math.isnan(single.interval[0]) and single.verdict(+1) == "inconclusive at n = 1"


def test_slope_and_welch_difference_by_hand():
    x = np.log2([20, 20, 56, 56, 110, 110])
    y = np.array([3.1, 2.9, 1.2, 0.8, -0.9, -1.1])
    estimate = stats.slope_estimate(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    residuals = y - (slope * x + intercept)
    se = math.sqrt(residuals @ residuals / 4 / ((x - x.mean()) @ (x - x.mean())))
    assert (estimate.value, estimate.se, estimate.df) == pytest.approx((slope, se, 4), rel=1e-9)
    assert estimate.verdict(-1) == "supported"
    other = stats.slope_estimate(x, y[::-1])
    difference = stats.difference_estimate(other, estimate)
    welch_df = (other.se**2 + se**2) ** 2 / (other.se**4 / 4 + se**4 / 4)
    assert (difference.value, difference.df) == pytest.approx((other.value - slope, welch_df), rel=1e-9)
    with pytest.raises(ValueError, match="two distinct x"):
        stats.slope_estimate(np.array([1.0, 1.0]), np.array([0.0, 1.0]))


def test_mean_std_uses_sample_std():
    mean, std, n = stats.mean_std([90.0, 92.0, 91.0, 95.0])
    assert (mean, n) == (statistics.mean([90, 92, 91, 95]), 4)
    assert std == pytest.approx(statistics.stdev([90, 92, 91, 95]))
    assert stats.mean_std([3.0]) == (3.0, None, 1)


def test_model_axis_parsing_and_order():
    assert model_key("resnet110").family == "cifar_resnet"
    assert model_key("resnet18").family == "resnet"
    assert model_key("wrn28_10") == model_key("wrn-28-10") == model_key("wide_resnet28_10")
    frame = pd.DataFrame(
        {
            "model": ["wrn28_10", "resnet18", "resnet110", "resnet20", "wrn16_8"],
            "regularizer": ["dn_relaxed", "none", "fro", "dn_strict", "none"],
        }
    )
    assert list(sort_frame(frame, ["model"])["model"]) == [
        "resnet20",
        "resnet110",
        "resnet18",
        "wrn16_8",
        "wrn28_10",
    ]
    assert list(sort_frame(frame, ["regularizer"])["regularizer"]) == [
        "none",
        "none",
        "fro",
        "dn_strict",
        "dn_relaxed",
    ]


# ---- tables -------------------------------------------------------------------------------------------


def test_main_table_mean_std_n_and_best(report):
    table = read_table(report, "main_accuracy")
    for (model, regularizer), by_seed in ACCURACY.items():
        percent = [100 * value for value in by_seed.values()]
        line = row(table, model=model, regularizer=regularizer)
        assert line["n"] == len(percent)
        assert line["mean_accuracy_pct"] == pytest.approx(statistics.mean(percent), abs=1e-5)
        assert line["std_accuracy_pct"] == pytest.approx(statistics.stdev(percent), abs=1e-5)
    # best only among cells with n >= 3: resnet20's none and dn_strict compete, resnet56 (n = 2) has none
    best = table[table["best"]]
    assert sorted(zip(best["model"], best["regularizer"], strict=False)) == [("resnet20", "dn_strict")]
    markdown = (report["tables"] / "main_accuracy.md").read_text()
    assert "**93.00 ± 1.00 (n=3)**" in markdown
    assert (
        "| cifar10 | resnet20 | 91.00 ± 1.00 (n=3) | 92.00 ± 1.41 (n=2) | **93.00 ± 1.00 (n=3)** |"
        in markdown
    )
    assert "| cifar10 | resnet56 | 81.00 ± 1.41 (n=2) | - | 82.00 ± 1.41 (n=2) |" in markdown
    latex = (report["tables"] / "main_accuracy.tex").read_text()
    assert r"\textbf{93.00 $\pm$ 1.00 (n=3)}" in latex and r"\begin{tabular}{lllll}" in latex


def test_ties_for_best_are_all_marked(tmp_path):
    for regularizer in ("none", "fro"):
        for seed in range(3):
            make_run(tmp_path / "runs_root", "cifar10", "resnet20", regularizer, seed, 0.9, evaluate=False)
    build_report(tmp_path / "runs_root", tmp_path / "t", tmp_path / "f")
    assert pd.read_csv(tmp_path / "t" / "main_accuracy.csv")["best"].all()


def test_depth_trend_gains_are_paired_by_seed(report):
    table = read_table(report, "depth_trend")
    # resnet20: dn_strict - none per seed = 3, 0, 3 pp; fro on seeds 0, 1 = 1, 1 pp
    strict = row(table, model="resnet20", regularizer="dn_strict")
    assert (strict["n_pairs"], strict["depth"]) == (3, 20)
    assert strict["mean_gain_pp"] == pytest.approx(2.0, abs=1e-6)
    assert strict["std_gain_pp"] == pytest.approx(statistics.stdev([3, 0, 3]), abs=1e-5)
    assert row(table, model="resnet20", regularizer="fro")["mean_gain_pp"] == pytest.approx(1.0, abs=1e-6)
    assert row(table, model="resnet20", regularizer="fro")["n_pairs"] == 2
    # resnet56: 83 - 80 and 81 - 82 -> mean 1
    assert row(table, model="resnet56", regularizer="dn_strict")["mean_gain_pp"] == pytest.approx(
        1.0, abs=1e-6
    )
    assert "none" not in set(table["regularizer"])


def test_significance_table(report):
    table = read_table(report, "significance")
    strict = row(table, model="resnet20", regularizer="dn_strict")
    # differences (3, 0, 3): sign patterns give |sum| 6 in 4 of 8 cases -> p = 0.5, never below 2/8
    assert strict["p_sign_flip"] == pytest.approx(0.5)
    assert strict["sign_flip_method"] == "exact" and strict["smallest_sign_flip_p"] == pytest.approx(0.25)
    assert strict["n_pairs"] == 3
    assert strict["mean_difference_pp"] == pytest.approx(2.0, abs=1e-6)
    # mean 2, se 1, 2 degrees of freedom: 2 -+ t_0.975(2) and p = 1 - 2/sqrt(6)
    half = (2 * 0.975 - 1) / math.sqrt(2 * 0.975 * 0.025)
    assert (strict["ci95_low_pp"], strict["ci95_high_pp"]) == pytest.approx((2 - half, 2 + half), abs=1e-5)
    assert strict["p_t"] == pytest.approx(1 - 2 / math.sqrt(6), abs=1e-6)
    assert not strict["significant"]
    fro = row(table, model="resnet20", regularizer="fro")
    # differences (1, 1): the interval collapses on 1; sign-flip p = 2/4; n = 2 is never marked
    assert (fro["ci95_low_pp"], fro["ci95_high_pp"], fro["p_sign_flip"]) == pytest.approx(
        (1.0, 1.0, 0.5), abs=1e-6
    )
    assert not fro["significant"]
    markdown = (report["tables"] / "significance.md").read_text()
    assert "sign-flip" in markdown and "**" not in markdown.split("\n", 1)[1]
    assert "Student-t" in (report["tables"] / "README.md").read_text()


def test_cost_table_ratio_to_none(report):
    table = read_table(report, "cost")
    none = row(table, model="resnet20", regularizer="none")
    assert none["mean_seconds_per_epoch"] == pytest.approx(statistics.mean([10, 12, 14]))
    assert none["ratio_to_none"] == pytest.approx(1.0)
    assert row(table, model="resnet20", regularizer="dn_strict")["ratio_to_none"] == pytest.approx(22 / 12)
    assert row(table, model="resnet56", regularizer="dn_strict")["ratio_to_none"] == pytest.approx(22 / 11)


def test_orthogonality_best_per_measure(report):
    table = read_table(report, "orthogonality_best")
    winners = table[table["best"] & (table["model"] == "resnet20")]
    best = dict(zip(winners["measure"] + "|" + winners["source"], winners["regularizer"], strict=True))
    # fro has two seeds, so only none and dn_strict (three each) compete for best
    assert best["max_cos|eval.json"] == "dn_strict"  # lowest
    assert best["condition_number|eval.json"] == "dn_strict"  # lowest
    assert best["effective_rank|eval.json"] == "dn_strict"  # highest
    assert best["holistic_residual|layers.csv, mean over layers"] == "dn_strict"
    # layer mean of holistic_residual = max_cos * (1 + 2 + 3) / 3; seed-independent
    value = row(table, model="resnet20", regularizer="none", measure="holistic_residual")["mean"]
    assert value == pytest.approx(0.9 * 2.0, abs=1e-5)
    # effective rank mean over seeds 0, 1, 2 of (30 + seed)
    assert row(table, model="resnet20", regularizer="none", measure="effective_rank")[
        "mean"
    ] == pytest.approx(31)
    assert not {"out_channels", "fan_in", "n_layers"} & set(table["measure"])


def test_robustness_tables(report):
    corruptions = read_table(report, "robustness_corruptions")
    # generated, severity 2, none on resnet20: per seed mean(acc - .2, acc - .25) -> mean over seeds
    expected = statistics.mean(100 * (a - 0.225) for a in ACCURACY[("resnet20", "none")].values())
    line = row(corruptions, model="resnet20", regularizer="none", source="generated in code", severity="2")
    assert line["mean_accuracy_pct"] == pytest.approx(expected, abs=1e-4)
    overall = row(
        corruptions, model="resnet20", regularizer="none", source="generated in code", severity="all"
    )
    expected_all = statistics.mean(100 * (a - 0.3 - 0.025) for a in ACCURACY[("resnet20", "none")].values())
    assert overall["mean_accuracy_pct"] == pytest.approx(expected_all, abs=1e-4)
    official = row(
        corruptions, model="resnet20", regularizer="none", source="official CIFAR-C", severity="all"
    )
    assert official["mean_accuracy_pct"] == pytest.approx(50.0)
    adversarial = read_table(report, "robustness_adversarial")
    strict = ACCURACY[("resnet20", "dn_strict")].values()
    assert row(adversarial, model="resnet20", regularizer="dn_strict", attack="FGSM")[
        "mean_accuracy_pct"
    ] == pytest.approx(statistics.mean(100 * a / 3 for a in strict), abs=1e-4)
    # the eps = 4/255 PGD record is an eps-curve point, not part of the 8/255 table
    assert row(adversarial, model="resnet20", regularizer="dn_strict", attack="PGD-10")[
        "mean_accuracy_pct"
    ] == pytest.approx(statistics.mean(100 * a / 4 for a in strict), abs=1e-4)
    assert set(adversarial["attack"]) == {"clean", "FGSM", "PGD-10"}


def test_ablation_table(report):
    table = read_table(report, "ablation")
    assert row(table, ablation_value=1.0)["mean_accuracy_pct"] == pytest.approx(94.0)
    assert row(table, ablation_value=0.5)["std_accuracy_pct"] == pytest.approx(statistics.stdev([90, 92]))
    # two seeds per value: no best is marked
    assert not table["best"].any()
    # ablation runs stay out of the main table
    assert "dn_relaxed" not in set(read_table(report, "main_accuracy")["regularizer"])


def test_published_join_converts_error_and_marks_not_run():
    main = pd.DataFrame(
        [
            {
                "dataset": "cifar10",
                "model": "wrn_28_10",
                "regularizer": "none",
                "n": 3,
                "mean_accuracy_pct": 95.5,
                "std_accuracy_pct": 0.1,
            },
            {
                "dataset": "cifar10",
                "model": "resnet18",
                "regularizer": "none",
                "n": 2,
                "mean_accuracy_pct": 92.0,
                "std_accuracy_pct": 0.3,
            },
        ]
    )
    epochs = pd.DataFrame(
        [{"dataset": "cifar10", "model": "wrn_28_10", "regularizer": "none", "epochs_completed": 200}]
    )
    table = published_vs_reproduced(main, epochs).data
    zagoruyko = row(
        table, model="WRN-28-10", dataset="cifar10", regularizer="none", statistic="median of 5 runs"
    )
    assert zagoruyko["published_accuracy_low_pct"] == pytest.approx(96.0)
    assert zagoruyko["difference_pp"] == pytest.approx(-0.5)
    assert zagoruyko["reproduced_epochs"] == 200
    srip = row(table, model="WRN-28-10", dataset="cifar100", regularizer="srip")
    assert srip["published_accuracy_low_pct"] == pytest.approx(100 - 18.19)
    assert srip["status"] == "not run" and pd.isna(srip["difference_pp"])
    resnet18 = row(table, model="ResNet-18")
    assert resnet18["difference_pp"] == pytest.approx(-1.0)  # 92.0 below the 93.0-95.4 range
    he = row(table, model="ResNet-110", statistic="mean ± std of 5 runs")
    assert (he["published_accuracy_low_pct"], he["published_std_pct"]) == pytest.approx((93.39, 0.16))


def test_published_table_written_with_not_run(report):
    table = read_table(report, "published_vs_reproduced")
    assert set(table["status"]) == {"not run"}  # the small grid has no WRN/ResNet-110/ResNet-18
    assert "not run" in (report["tables"] / "published_vs_reproduced.md").read_text()


def test_every_table_in_three_formats_and_indexed(report):
    index = (report["tables"] / "index.md").read_text()
    assert set(report["summary"]["tables"]) == {
        "main_accuracy",
        "published_vs_reproduced",
        "depth_trend",
        "significance",
        "orthogonality_best",
        "robustness_corruptions",
        "robustness_adversarial",
        "cost",
        "ablation",
        "claims",
    }
    for name in report["summary"]["tables"]:
        for suffix in (".csv", ".md", ".tex", ".html"):
            assert (report["tables"] / f"{name}{suffix}").stat().st_size > 0
        assert f"`{name}`" in index
    for name in report["summary"]["figures"]:
        assert f"`{name}`" in index
    assert not list(report["tables"].glob(".*"))  # no temporary files left behind


# ---- figures ------------------------------------------------------------------------------------------


def test_figures_are_real_pdf_and_png(report):
    expected = {
        "depth_trend",
        "cost",
        "orthogonality_layers_cifar10_resnet20",
        "spectra_cifar10_resnet56",
        "robustness_eps_cifar10_resnet20",
        "robustness_severity_cifar10_resnet56",
        "training_curves_cifar10_resnet20",
        "ablation_cifar10_resnet20",
    }
    assert expected <= set(report["summary"]["figures"])
    for name in report["summary"]["figures"]:
        assert (report["figures"] / f"{name}.pdf").read_bytes().startswith(PDF_MAGIC)
        assert (report["figures"] / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    # no model.pt in this grid: the Gram heatmaps are skipped, not drawn empty
    assert not list(report["figures"].glob("cosine_gram_*"))
    assert "cosine_gram_*" in {item["name"] for item in report["summary"]["skipped"]}


@pytest.mark.slow
def test_figures_without_data_do_not_exist_and_stale_ones_go(report, tmp_path):
    root = tmp_path / "results"
    build_tree(root, robustness=False)
    figures = report["figures"].parent / "figures_partial"
    tables = report["figures"].parent / "tables_partial"
    build_report(report["root"] / "results", tables, figures)
    assert list(figures.glob("robustness_eps_*"))
    summary = build_report(root, tables, figures)  # same folders, now without robustness.json
    assert not list(figures.glob("robustness_*"))
    assert not (tables / "robustness_adversarial.csv").exists()
    skipped = {item["name"] for item in summary["skipped"]}
    assert {"robustness_eps_*", "robustness_severity_*", "robustness_adversarial"} <= skipped
    assert "robustness_corruptions" in (tables / "README.md").read_text()
    assert (tables / "main_accuracy.csv").exists()


def test_representative_layer_is_last_3x3_conv():
    torch = pytest.importorskip("torch")
    state = {
        "0.mean": torch.zeros(3),
        "1.conv1.weight": torch.zeros(4, 3, 3, 3),
        "1.layer1.0.conv2.weight": torch.zeros(4, 4, 3, 3),
        "1.layer1.0.shortcut.0.weight": torch.zeros(4, 4, 1, 1),
        "1.fc.weight": torch.zeros(10, 4),
    }
    assert representative_layer(state) == "1.layer1.0.conv2"
    assert representative_layer({"fc.weight": torch.zeros(2, 2)}) is None


def test_cosine_gram_heatmap_drawn_from_model_pt(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("orthoreg.metrics")
    generator = torch.Generator().manual_seed(0)
    for regularizer in ("none", "dn_strict"):
        run_dir = make_run(tmp_path / "results", "cifar10", "resnet20", regularizer, 0, 0.9, robustness=False)
        state = {
            "0.mean": torch.zeros(3),
            "1.conv1.weight": torch.randn(4, 3, 3, 3, generator=generator),
            "1.layer1.0.conv2.weight": torch.randn(6, 4, 3, 3, generator=generator),
            "1.fc.weight": torch.randn(10, 6, generator=generator),
        }
        torch.save(state, run_dir / "model.pt")
    summary = build_report(tmp_path / "results", tmp_path / "tables", tmp_path / "figures")
    assert "cosine_gram_cifar10_resnet20" in summary["figures"]
    assert (tmp_path / "figures" / "cosine_gram_cifar10_resnet20.pdf").read_bytes().startswith(PDF_MAGIC)
    assert (tmp_path / "figures" / "cosine_gram_cifar10_resnet20.png").read_bytes().startswith(PNG_MAGIC)


# ---- partial results, expected grid, bad input, CLI ----------------------------------------------------


def test_missing_runs_listed_from_expected(tmp_path):
    root = tmp_path / "results"
    done = make_run(root, "cifar10", "resnet20", "none", 0, 0.9)
    unevaluated = make_run(root, "cifar10", "resnet20", "none", 1, 0.9, evaluate=False)
    unfinished = make_run(root, "cifar10", "resnet20", "fro", 0, 0.5, epochs=10, epochs_completed=4)
    absent = root / "runs" / "cifar10" / "resnet20" / "fro" / "seed1"
    expected = [
        {
            "dataset": "cifar10",
            "model": "resnet20",
            "regularizer": reg,
            "seed": seed,
            "ablation": None,
            "run_dir": str(path),
        }
        for reg, seed, path in [
            ("none", 0, done),
            ("none", 1, unevaluated),
            ("fro", 0, unfinished),
            ("fro", 1, absent),
        ]
    ]
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(expected))
    summary = build_report(root, tmp_path / "tables", tmp_path / "figures", expected=grid)
    status = {(m["regularizer"], m["seed"]): m["status"] for m in summary["missing"]}
    assert status == {("none", 1): "incomplete", ("fro", 0): "incomplete", ("fro", 1): "absent"}
    listed = pd.read_csv(tmp_path / "tables" / "missing_runs.csv")
    assert sorted(zip(listed["regularizer"], listed["seed"], strict=False)) == [
        ("fro", 0),
        ("fro", 1),
        ("none", 1),
    ]
    assert "trained 4 of 10 epochs" in set(listed["reason"])
    # the unfinished run is left out of the accuracy table; the unevaluated one still counts
    main = pd.read_csv(tmp_path / "tables" / "main_accuracy.csv")
    assert list(zip(main["regularizer"], main["n"], strict=False)) == [("none", 2)]
    assert summary["incomplete"][0]["reason"] == "trained 4 of 10 epochs"


def test_tiny_grid_without_none_or_eval_still_reports(tmp_path):
    make_run(tmp_path / "r", "cifar10", "resnet20", "dn_strict", 0, 0.7, evaluate=False)
    summary = build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
    assert {"main_accuracy", "cost", "published_vs_reproduced"} == set(summary["tables"])
    skipped = {item["name"] for item in summary["skipped"]}
    assert {"depth_trend", "significance", "orthogonality_best", "cost"} <= skipped
    assert not (tmp_path / "f" / "depth_trend.pdf").exists()
    table = pd.read_csv(tmp_path / "t" / "main_accuracy.csv")
    assert math.isnan(table["std_accuracy_pct"].iloc[0])  # one seed: no std, an empty cell
    assert "70.00 (n=1)" in (tmp_path / "t" / "main_accuracy.md").read_text()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("test_accuracy", 93.1, "outside \\[0, 1\\]"),
        ("seed", "zero", "not an integer"),
        ("ablation", {"param": "gamma"}, "ablation"),
    ],
)
def test_bad_run_json_is_refused_by_name(tmp_path, field, value, message):
    run_dir = make_run(tmp_path / "r", "cifar10", "resnet20", "none", 0, 0.9, evaluate=False)
    record = json.loads((run_dir / "run.json").read_text())
    record[field] = value
    (run_dir / "run.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=message):
        build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
    assert not (tmp_path / "t").exists()


def test_bad_inputs_raise_before_work(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_runs(tmp_path / "nowhere")
    make_run(tmp_path / "r", "cifar10", "resnet20", "none", 0, 0.9, evaluate=False)
    (tmp_path / "bad.json").write_text(json.dumps([{"dataset": "cifar10", "seed": 0}]))
    with pytest.raises(ValueError, match="lacks model, regularizer, run_dir"):
        build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f", expected=tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="--expected"):
        build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f", expected=tmp_path / "absent.json")
    assert not (tmp_path / "t").exists()
    copy = make_run(tmp_path / "r" / "copy", "cifar10", "resnet20", "none", 0, 0.8, evaluate=False)
    with pytest.raises(ValueError, match="two runs share"):
        build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
    (copy / "history.csv").write_text("epoch,lr\n1,0.1\n")
    with pytest.raises(ValueError, match="missing columns test_accuracy, reg_value"):
        load_runs(copy.parent)


def report_parser() -> argparse.ArgumentParser:
    """Only the report sub-command, so this test does not depend on the other CLI modules."""
    parser = argparse.ArgumentParser(prog="orthoreg")
    report_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_report(tmp_path, capsys):
    make_run(tmp_path / "results", "cifar10", "resnet20", "none", 0, 0.9, robustness=False)
    make_run(tmp_path / "results", "cifar10", "resnet20", "dn_strict", 0, 0.95, robustness=False)
    # the grid names the two runs made above and an absent one; a run outside the grid is not read
    make_run(tmp_path / "results" / "other_config", "cifar10", "resnet20", "none", 0, 0.1, robustness=False)
    expected = [
        {
            "dataset": "cifar10",
            "model": "resnet20",
            "regularizer": regularizer,
            "seed": 0,
            "ablation": None,
            "run_dir": str(tmp_path / "results" / "runs" / "cifar10" / "resnet20" / regularizer / "seed0"),
        }
        for regularizer in ("none", "dn_strict", "fro")
    ]
    (tmp_path / "grid.json").write_text(json.dumps(expected))
    args = report_parser().parse_args(
        [
            "report",
            "--runs",
            str(tmp_path / "results"),
            "--tables",
            str(tmp_path / "tables"),
            "--figures",
            str(tmp_path / "figures"),
            "--expected",
            str(tmp_path / "grid.json"),
        ]
    )
    assert args.func(args) == 0
    assert "2 runs" in capsys.readouterr().out
    assert (tmp_path / "tables" / "significance.csv").exists()
    assert len(pd.read_csv(tmp_path / "tables" / "missing_runs.csv")) == 1
    assert (tmp_path / "figures" / "training_curves_cifar10_resnet20.png").read_bytes().startswith(PNG_MAGIC)
    args = report_parser().parse_args(["report", "--runs", str(tmp_path / "missing")])
    with pytest.raises(FileNotFoundError, match="not a directory"):
        args.func(args)


# ---- claims, figure honesty, ablation points, cost on the CPU ------------------------------------------

# gains over none by depth: dn_strict's fade, dn_relaxed's stay (pp, before the per-seed jitter)
CLAIM_GAINS = {
    "dn_strict": {"resnet20": 3.0, "resnet56": 1.0, "resnet110": -1.0},
    "dn_relaxed": {"resnet20": 3.0, "resnet56": 3.0, "resnet110": 2.8},
    "fro": {"resnet20": 1.0, "resnet56": 0.0, "resnet110": 0.0},
}
JITTER = {0: -0.2, 1: 0.1, 2: 0.15}


def claims_tree(root: Path) -> None:
    for model in ("resnet20", "resnet56", "resnet110"):
        for seed, jitter in JITTER.items():
            make_run(root, "cifar10", model, "none", seed, 0.90 + jitter / 100, robustness=False)
            for regularizer, gains in CLAIM_GAINS.items():
                accuracy = 0.90 + (gains[model] + jitter * (1 + 0.5 * seed)) / 100
                make_run(root, "cifar10", model, regularizer, seed, accuracy, robustness=False)


def test_claims_are_verdicts_computed_by_hand(tmp_path):
    claims_tree(tmp_path / "results")
    summary = build_report(tmp_path / "results", tmp_path / "tables", tmp_path / "figures")
    table = pd.read_csv(tmp_path / "tables" / "claims.csv")
    # claim 1: dn_strict's max_cos is 0.2 below fro's (the closest) and 0.7 below none's at every seed
    max_cos = row(table, claim=claims.CLAIM_1, scope="resnet20", quantity="max_cos")
    assert max_cos["comparison"].startswith("fro - dn_strict") and max_cos["estimate"] == pytest.approx(0.2)
    assert max_cos["verdict"] == "supported"
    # fro's condition number (1.0) beats dn_strict's (1.5): the claim is contradicted for that measure
    condition = row(table, claim=claims.CLAIM_1, scope="resnet20", quantity="condition_number")
    assert condition["estimate"] == pytest.approx(-0.5) and condition["verdict"] == "contradicted"
    # claim 2a: the least-squares slope of the seed-level strict gains against log2(depth)
    gains = [
        (math.log2(depth), CLAIM_GAINS["dn_strict"][f"resnet{depth}"] + jitter * (1 + 0.5 * seed) - jitter)
        for depth in (20, 56, 110)
        for seed, jitter in JITTER.items()
    ]
    x, y = np.array(gains).T
    slope = np.polyfit(x, y, 1)[0]
    strict = row(table, claim=claims.CLAIM_2A)
    assert strict["estimate"] == pytest.approx(slope, abs=1e-6) and strict["n"] == 9
    assert strict["verdict"] == "supported"
    assert row(table, claim=claims.CLAIM_2B)["verdict"] == "supported"
    assert row(table, claim=claims.CLAIM_2C)["verdict"] == "supported"
    assert "claims" in summary["figures"]
    assert "**supported**" in (tmp_path / "tables" / "claims.md").read_text()


def test_claims_with_two_seeds_stay_inconclusive(report):
    table = read_table(report, "claims")
    resnet56 = table[(table["claim"] == claims.CLAIM_1) & (table["scope"] == "resnet56")]
    assert len(resnet56) and set(resnet56["verdict"]) == {"inconclusive at n = 2"}


def test_identical_curves_are_drawn_once_and_named_together():
    frame = pd.DataFrame(
        {
            "regularizer": ["fro", "so", "none"] * 2,
            "seed": [0, 0, 0, 1, 1, 1],
            "x": [1] * 3 + [2] * 3,
            "y": [5.0, 5.0, 4.0, 6.0, 6.0, 7.0],
        }
    )
    groups = figures.merge_identical(figures.curves(frame, "x", "y"))
    assert [names for names, _ in groups] == [["none"], ["fro", "so"]]
    figure, axes = new_figure(1, 1)
    figures.draw_lines(axes[0], frame, "x", "y", regularizer_styles(frame["regularizer"]))
    assert [line.get_label() for line in axes[0].get_lines()] == ["none", "fro = so (identical)"]


def test_a_line_breaks_where_a_regulariser_was_not_measured():
    frame = pd.DataFrame(
        {
            "regularizer": ["a", "a", "b", "b", "b"],
            "seed": 0,
            "x": [1, 3, 1, 2, 3],
            "y": [1.0, 3.0, 1.0, 2.0, 4.0],
        }
    )
    figure, axes = new_figure(1, 1)
    figures.draw_lines(axes[0], frame, "x", "y", regularizer_styles(["a", "b"]))
    first = axes[0].get_lines()[0]
    assert first.get_label() == "a" and np.isnan(first.get_ydata()[1])


def test_cosine_gram_colour_scale_spans_the_off_diagonal_entries(tmp_path):
    torch = pytest.importorskip("torch")
    weight = (
        torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
        .reshape(3, 1, 1, 3)
        .expand(3, 1, 3, 3)
    )
    run_dir = make_run(tmp_path / "results", "cifar10", "resnet20", "none", 0, 0.9, robustness=False)
    torch.save({"1.layer.conv.weight": weight.clone()}, run_dir / "model.pt")
    (drawn,) = figures.gram_figures(load_runs(tmp_path / "results"), {})
    image = drawn.figure.axes[0].get_images()[0]
    assert image.get_clim() == pytest.approx((0.0, 0.6))  # not (0, 1): the diagonal is left out
    assert np.ma.getmaskarray(image.get_array())[0, 0]  # the NaN diagonal is masked: drawn grey


def test_ablation_curves_include_the_main_grid_value(tmp_path):
    for seed in range(3):
        make_run(tmp_path / "r", "cifar10", "resnet20", "dn_relaxed", seed, 0.91, reg_options={"rho": 0.5})
        for value in (0.25, 1.0):
            ablation = {"param": "rho", "value": value}
            make_run(
                tmp_path / "r",
                "cifar10",
                "resnet20",
                "dn_relaxed",
                seed,
                0.9,
                ablation=ablation,
                evaluate=False,
            )
    summary = build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
    table = pd.read_csv(tmp_path / "t" / "ablation.csv")
    main = row(table, ablation_value=0.5)
    assert main["source"] == "main grid" and main["mean_accuracy_pct"] == pytest.approx(91.0)
    assert "ablation_cifar10_resnet20" in summary["figures"]


def test_cost_on_the_cpu_compares_process_time(tmp_path):
    make_run(tmp_path / "r", "cifar10", "resnet20", "none", 0, 0.9, seconds=30.0, cpu_seconds=10.0)
    make_run(tmp_path / "r", "cifar10", "resnet20", "dn_strict", 0, 0.9, seconds=90.0, cpu_seconds=12.0)
    build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
    table = pd.read_csv(tmp_path / "t" / "cost.csv")
    strict = row(table, regularizer="dn_strict")
    assert strict["ratio_to_none"] == pytest.approx(1.2) and strict["measure"] == "CPU seconds (process)"
    assert "side by side" in (tmp_path / "t" / "cost.md").read_text()


def test_html_tables_show_the_grid_with_bold_best(report):
    page = (report["tables"] / "main_accuracy.html").read_text()
    assert page.startswith("<!doctype html>") and "<table>" in page
    assert "<b>93.00 ± 1.00 (n=3)</b>" in page


# ---- one registry: README, the Snakemake report captions and the outputs agree ----------------------


def test_the_readme_lists_exactly_the_registered_tables():
    from orthoreg.report.registry import TABLES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("The tables (") : readme.index("## Configuration")]
    listed = {
        name
        for line in re.findall(r"^- (.*?):", section, re.MULTILINE)
        for name in re.findall(r"`(\w+)`", line)
    }
    assert listed == set(TABLES)


class _Wildcards(dict):
    __getattr__ = dict.__getitem__


def render_caption(name: str, **wildcards: str) -> str:
    """A workflow/report caption rendered as Snakemake renders it (Jinja2, a `snakemake` object)."""
    import jinja2

    from orthoreg.report.registry import figure_captions, table_captions

    class Snakemake:
        params = _Wildcards(figure_captions=figure_captions(), table_captions=table_captions())
        config = {"name": "paper"}

    Snakemake.wildcards = _Wildcards(wildcards)
    template = (Path(__file__).resolve().parents[1] / "workflow" / "report" / name).read_text()
    return jinja2.Environment().from_string(template).render(snakemake=Snakemake)


def test_every_figure_and_table_gets_its_own_caption_in_the_snakemake_report():
    from orthoreg.report.registry import FIGURES, TABLES

    for stem, spec in FIGURES.items():
        name = f"{stem}_cifar10_resnet20" if spec.per_pair else stem
        caption = render_caption("figures.rst", figure=name)
        assert caption.startswith(spec.description), (name, caption)
        if spec.per_pair:
            assert "(cifar10 / resnet20)" in caption
    for name, spec in TABLES.items():
        assert render_caption("tables.rst", table=name).startswith(spec.description)
