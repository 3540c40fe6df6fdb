"""The paper's claims as verdicts: slopes, intervals and verdicts computed by hand on runs whose
gains over `none` are known, and no verdict but 'inconclusive' at small n."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_runs import make_run, read_table, row

from orthoreg.report import build_report
from orthoreg.report.analysis import claims

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
    max_cos = row(table, claim=claims.CLAIM_1, scope="resnet20", quantity="mean_max_cos")
    assert max_cos["comparison"].startswith("fro - dn_strict") and max_cos["estimate"] == pytest.approx(0.2)
    assert max_cos["verdict"] == "supported"
    # fro's condition number (1.0) beats dn_strict's (1.5): the claim is contradicted for that measure
    condition = row(table, claim=claims.CLAIM_1, scope="resnet20", quantity="mean_condition_number")
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


def test_a_hard_constraint_is_not_a_competitor_of_claim_one(tmp_path):
    claims_tree(tmp_path / "results")
    for seed in JITTER:  # orthogonal by construction: far below dn_strict on every measure
        make_run(tmp_path / "results", "cifar10", "resnet20", "orthogonal", seed, 0.9, robustness=False)
    build_report(tmp_path / "results", tmp_path / "tables", tmp_path / "figures")
    table = pd.read_csv(tmp_path / "tables" / "claims.csv")
    max_cos = row(table, claim=claims.CLAIM_1, scope="resnet20", quantity="mean_max_cos")
    assert max_cos["comparison"] == "fro - dn_strict (closest of 3)" and max_cos["verdict"] == "supported"
    assert claims.hard_constraints() == {"orthogonal", "spectral"}
    best = pd.read_csv(tmp_path / "tables" / "orthogonality_best.csv")
    max_cos_best = best[(best["measure"] == "mean_max_cos") & (best["model"] == "resnet20") & best["best"]]
    assert list(max_cos_best["regularizer"]) == ["orthogonal"]  # where it stands: orthogonality_best


def test_claims_with_two_seeds_stay_inconclusive(report):
    table = read_table(report, "claims")
    resnet56 = table[(table["claim"] == claims.CLAIM_1) & (table["scope"] == "resnet56")]
    assert len(resnet56) and set(resnet56["verdict"]) == {"inconclusive at n = 2"}
