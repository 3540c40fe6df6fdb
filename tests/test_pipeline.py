"""The Snakemake pipeline, run for real: dry-run job counts of the paper grid, the reduced demo end to
end on real Fashion-MNIST, idempotence, and config validation."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snakemake(*args, cwd, timeout=900):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    command = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(cwd), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """Rule -> count from Snakemake's 'Job stats' table."""
    table = output[output.index("Job stats:") :]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)}


def test_paper_grid_dry_run_plans_every_job(tmp_path):
    result = snakemake("--dry-run", "--cores", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    main = 2 * 8 * 9 * 3
    runs = main + (2 * 5 + 1 * 4 + 2 * 4 + 1 * 1) * 3  # gamma, rho, lambda and relaxation ablations
    assert job_counts(result.stdout) == {
        "all": 1,
        "data": 2,
        "train": runs,
        "evaluate": runs,
        "robustness": main,  # ablations measure accuracy only
        "expected_runs": 1,
        "report": 1,
        "total": 1 + 2 + 2 * runs + main + 2,
    }


def test_a_bare_snakemake_call_uses_the_default_profile(tmp_path):
    """`snakemake --cores all --resources gpu=4`, as users type it, from the repository: Snakemake finds
    profiles/default itself, so keep-going and the rerun triggers are in effect."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    command = [
        str(BIN / "snakemake"),
        "-n",
        "--cores",
        "all",
        "--resources",
        "gpu=4",
        "--directory",
        str(tmp_path),
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Using workflow specific profile profiles/default" in result.stdout + result.stderr


def test_ablation_target_plans_only_its_runs(tmp_path):
    result = snakemake("--dry-run", "--cores", "4", "ablation_rho", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    counts = job_counts(result.stdout)
    assert counts["train"] == counts["evaluate"] == 1 * 4 * 3
    assert "robustness" not in counts and "report" not in counts


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("modles=[resnet20]", "unknown config key 'modles'; allowed keys:"),
        ("models=[resnet99]", "unknown name 'resnet99'; valid names:"),
        ("gpu_resource=maybe", "'maybe' is not of type 'boolean'"),
    ],
)
def test_bad_config_is_rejected_before_any_job(tmp_path, override, message):
    result = snakemake("--dry-run", "--cores", "1", "--config", override, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_reduced_demo_runs_end_to_end_and_leaves_tables_and_figures(tmp_path):
    config = str(ROOT / "config" / "ci.yaml")
    result = snakemake("--cores", "2", "--configfile", config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-5000:]
    tables = tmp_path / "results" / "tables" / "ci"
    figures = tmp_path / "figures" / "ci"
    assert (tables / "index.md").is_file()
    assert sorted(p.suffix for p in tables.iterdir()) and list(tables.glob("*.csv"))
    assert list(tables.glob("*.tex")) and list(tables.glob("*.md"))
    pngs = list(figures.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert all(p.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-" for p in pngs)
    (run,) = (tmp_path / "results" / "runs" / "fashion_mnist" / "resnet8" / "dn_strict").glob("*/seed1")
    assert json.loads((run / "run.json").read_text())["recipe"] == run.parent.name
    for name in ("model.pt", "history.csv", "run.json", "eval.json", "layers.csv", "robustness.json"):
        assert (run / name).is_file(), name

    again = snakemake("--dry-run", "--cores", "2", "--configfile", config, cwd=tmp_path)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr
