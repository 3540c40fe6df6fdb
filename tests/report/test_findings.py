"""The findings block: generated from the written tables alone, its numbers are the tables' numbers,
and `check_findings` accepts a README that quotes it exactly and names the first line that differs."""

import pytest
from fake_runs import make_run, read_table

from orthoreg.report import build_report
from orthoreg.report.findings import (
    FINDINGS_END,
    FINDINGS_START,
    check_findings,
    findings_markdown,
    read_tables,
)


def block_lines(report: dict) -> list[str]:
    return findings_markdown(read_tables(report["tables"])).splitlines()


def test_findings_md_is_the_block_between_its_markers(report):
    written = (report["tables"] / "findings.md").read_text()
    assert written == f"{FINDINGS_START}\n{findings_markdown(read_tables(report['tables']))}{FINDINGS_END}\n"
    assert "`findings.md`" in (report["tables"] / "index.md").read_text()


def test_accuracy_at_each_depth_with_interval_and_n_is_the_tables(report):
    main = read_table(report, "main_accuracy")
    lines = block_lines(report)
    none = next(line for line in lines if line.startswith("| none |") and "[" in line)
    resnet20 = main[(main["model"] == "resnet20") & (main["regularizer"] == "none")].iloc[0]
    resnet56 = main[(main["model"] == "resnet56") & (main["regularizer"] == "none")].iloc[0]
    cells = [
        f"{r.mean_accuracy_pct:.2f} [{r.ci95_low_pct:.2f}, {r.ci95_high_pct:.2f}] (n={r.n})"
        for r in (resnet20, resnet56)
    ]
    assert none == f"| none | {cells[0]} | {cells[1]} |"
    assert "| method | resnet20 | resnet56 |" in lines
    assert "| fro | 92.00 [79.29, 104.71] (n=2) | - |" in lines


def test_each_claim_with_verdict_estimate_interval_p_and_n(report):
    claims = read_table(report, "claims")
    lines = [line for line in block_lines(report) if line.startswith("| 1: ") or line.startswith("| 2")]
    assert len(lines) == len(claims)
    for line, claim in zip(lines, claims.itertuples(), strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == claim.claim and cells[3] == claim.quantity and cells[-1] == claim.verdict
        assert cells[-2] == str(claim.n) and cells[5] == f"{claim.estimate:.4g} {claim.unit}"
        assert cells[6] == f"[{claim.ci95_low:.4g}, {claim.ci95_high:.4g}]" and cells[7] == f"{claim.p_t:.3g}"


def test_cost_relative_to_none_is_the_cost_table(report):
    cost = read_table(report, "cost")
    strict = cost[(cost["regularizer"] == "dn_strict")].set_index("model")["ratio_to_none"]
    expected = f"| dn_strict | {strict['resnet20']:.2f}× | {strict['resnet56']:.2f}× |"
    assert expected == "| dn_strict | 1.83× | 2.00× |" and expected in block_lines(report)


def test_what_the_runs_cost_is_the_budget_table(report):
    budget = read_table(report, "budget").set_index("stage")
    lines = block_lines(report)
    total = budget.loc["all stages"]
    expected = f"| all stages | {int(total.records)} | {total.cpu_hours:.4g} | {total.wall_hours:.4g} |"
    assert expected in lines and lines[-1] == expected


def test_a_readme_quoting_the_block_exactly_passes_and_any_change_fails(report):
    section = (report["tables"] / "findings.md").read_text()
    readme = f"# Study\n\nWords of the author.\n\n{section}\nMore words.\n"
    check_findings(readme, report["tables"])
    with pytest.raises(ValueError, match="findings line .* reads .*91.01.*; the tables give .*91.00"):
        check_findings(readme.replace("| none | 91.00", "| none | 91.01", 1), report["tables"])
    with pytest.raises(ValueError, match="exactly once"):
        check_findings(readme.replace(FINDINGS_END, ""), report["tables"])
    with pytest.raises(ValueError, match="exactly once"):
        check_findings(readme + section, report["tables"])
    last = section.splitlines()[-2]
    with pytest.raises(ValueError, match="lines; the tables give"):
        check_findings(readme.replace(f"{last}\n", ""), report["tables"])


def test_findings_without_claims_or_cost_say_so(tmp_path):
    make_run(tmp_path / "r", "cifar10", "resnet20", "dn_strict", 0, 0.7, evaluate=False)
    build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
    tables = read_tables(tmp_path / "t")
    assert set(tables) == {"main_accuracy", "cost", "budget"}
    text = findings_markdown({"main_accuracy": tables["main_accuracy"]})
    assert "No claim could be tested on these runs" in text and "No run recorded its time" in text
    assert "| dn_strict | 70.00 (n=1) |" in text
    with pytest.raises(FileNotFoundError, match="run `orthoreg report` first"):
        read_tables(tmp_path / "absent")
