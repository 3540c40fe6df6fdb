"""Every table's numbers against hand computations on small run directories written through the
library's own writers (fake_runs.py), and the four files each table is written as."""

import math
import statistics

import pandas as pd
import pytest
from fake_runs import ACCURACY, STAGE_SECONDS, make_run, read_table, row

from orthoreg.report import build_report


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
    best = {
        f"{measure}|{source}": ", ".join(part["regularizer"])
        for (measure, source), part in winners.groupby(["measure", "source"])
    }
    # fro has two seeds, so only none and dn_strict (three each) compete for best
    assert best["mean_max_cos|eval.json"] == "dn_strict"  # lowest
    assert best["mean_condition_number|eval.json"] == "dn_strict"  # lowest
    assert best["effective_rank|eval.json"] == "dn_strict"  # highest
    assert best["holistic_residual|layers.csv, mean over layers"] == "dn_strict"
    # layer mean of holistic_residual = max_cos * (1 + 2 + 3) / 3; seed-independent
    value = row(table, model="resnet20", regularizer="none", measure="holistic_residual")["mean"]
    assert value == pytest.approx(0.9 * 2.0, abs=1e-5)
    # effective rank mean over seeds 0, 1, 2 of (30 + seed)
    assert row(table, model="resnet20", regularizer="none", measure="effective_rank")[
        "mean"
    ] == pytest.approx(31)
    # integer bookkeeping (shapes, strides, the layer count) is not a measure
    bookkeeping = {"out_channels", "fan_in", "n_layers", "o", "n", "kh", "kw", "stride", "groups", "layers"}
    assert not bookkeeping & set(table["measure"])


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
        "budget",
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


def test_html_tables_show_the_grid_with_bold_best(report):
    page = (report["tables"] / "main_accuracy.html").read_text()
    assert page.startswith("<!doctype html>") and "<table>" in page
    assert "<b>93.00 ± 1.00 (n=3)</b>" in page


def test_cost_on_the_cpu_compares_process_time(tmp_path):
    make_run(tmp_path / "r", "cifar10", "resnet20", "none", 0, 0.9, seconds=30.0, cpu_seconds=10.0)
    make_run(tmp_path / "r", "cifar10", "resnet20", "dn_strict", 0, 0.9, seconds=90.0, cpu_seconds=12.0)
    build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
    table = pd.read_csv(tmp_path / "t" / "cost.csv")
    strict = row(table, regularizer="dn_strict")
    assert strict["ratio_to_none"] == pytest.approx(1.2) and strict["measure"] == "CPU seconds (process)"
    assert "side by side" in (tmp_path / "t" / "cost.md").read_text()


def test_budget_sums_each_stage_from_the_records(tmp_path):
    make_run(tmp_path / "r", "cifar10", "resnet20", "none", 0, 0.9, seconds=30.0, cpu_seconds=10.0)
    make_run(tmp_path / "r", "cifar10", "resnet20", "fro", 0, 0.9, seconds=60.0, cpu_seconds=20.0)
    make_run(tmp_path / "r", "cifar10", "resnet20", "fro", 1, 0.9, seconds=60.0, robustness=False)
    make_run(tmp_path / "r", "cifar10", "resnet20", "srip", 0, 0.9, epochs=2, evaluate=False)
    build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
    table = pd.read_csv(tmp_path / "t" / "budget.csv").set_index("stage")
    # training: 3 epochs of (30, 10), (60, 20), (60, 60) and 2 of (10, 10) seconds (wall, CPU)
    assert table.loc["train", "records"] == 4
    assert table.loc["train", "wall_hours"] == pytest.approx((3 * 150 + 20) / 3600)
    assert table.loc["train", "cpu_hours"] == pytest.approx((3 * 90 + 20) / 3600)
    (eval_wall, eval_cpu), (robust_wall, robust_cpu) = STAGE_SECONDS.values()
    assert table.loc["evaluate", "records"] == 3 and table.loc["robustness", "records"] == 2
    assert table.loc["evaluate", "cpu_hours"] == pytest.approx(3 * eval_cpu / 3600)
    assert table.loc["robustness", "wall_hours"] == pytest.approx(2 * robust_wall / 3600)
    total = table.loc["all stages"]
    assert total["records"] == 9
    assert total["cpu_hours"] == pytest.approx((3 * 90 + 20 + 3 * eval_cpu + 2 * robust_cpu) / 3600)
    assert total["wall_hours"] == pytest.approx(table.drop(index="all stages")["wall_hours"].sum())


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


def test_tiny_grid_without_none_or_eval_still_reports(tmp_path):
    make_run(tmp_path / "r", "cifar10", "resnet20", "dn_strict", 0, 0.7, evaluate=False)
    summary = build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
    assert {"main_accuracy", "cost", "budget", "published_vs_reproduced"} == set(summary["tables"])
    skipped = {item["name"] for item in summary["skipped"]}
    assert {"depth_trend", "significance", "orthogonality_best", "cost"} <= skipped
    assert not (tmp_path / "f" / "depth_trend.pdf").exists()
    table = pd.read_csv(tmp_path / "t" / "main_accuracy.csv")
    assert math.isnan(table["std_accuracy_pct"].iloc[0])  # one seed: no std, an empty cell
    assert "70.00 (n=1)" in (tmp_path / "t" / "main_accuracy.md").read_text()


def test_main_table_gives_each_mean_its_t_interval(report):
    table = read_table(report, "main_accuracy")
    line = row(table, model="resnet20", regularizer="none")
    # 90, 92, 91 %: mean 91, sd 1, se 1/sqrt(3) on 2 degrees of freedom
    half = (2 * 0.975 - 1) / math.sqrt(2 * 0.975 * 0.025) / math.sqrt(3)
    assert (line["ci95_low_pct"], line["ci95_high_pct"]) == pytest.approx((91 - half, 91 + half), abs=1e-5)
