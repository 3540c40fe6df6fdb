"""benchmarks/gpu_check.py keeps working between the rare times a GPU is lent: its CPU quick form runs
every part, within a minute, into one JSON file; its parts run in their order; bad input is refused
before any work."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orthoreg.regularizers import available_regularizers, regularizer_spec

ROOT = Path(__file__).resolve().parents[1]
# the parts in the order they run: environment first (the peak every MFU divides by), compiled last
# (it gets the time the others leave unused)
PARTS = (
    "environment",
    "throughput",
    "regularizers",
    "projection",
    "data_loading",
    "fashion_mnist",
    "kill_resume",
    "gpu_lock",
    "pytest_cuda",
    "compiled",
)
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def gpu_check(*arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The command as the README runs it: benchmarks/gpu_check.py with src/ importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "benchmarks/gpu_check.py", *arguments]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_help_lists_the_parts_in_the_order_they_run():
    result = gpu_check("--help", timeout=120)
    assert result.returncode == 0, result.stderr
    listing = result.stdout.split("the parts, in the order they run:")[1]
    names = [line.split(":")[0].strip() for line in listing.strip().splitlines()]
    assert tuple(names) == PARTS


def test_a_budget_that_is_not_positive_is_refused_before_any_work(tmp_path):
    out = tmp_path / "x.json"
    result = gpu_check("--device", "cpu", "--quick", "--budget", "-3", "--out", str(out), timeout=120)
    assert result.returncode == 2
    assert "--budget must be a positive number of seconds, got -3" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_quick_cpu_check_accounts_for_every_part(tmp_path):
    """Every part measured, or cut/skipped with its reason (the script's own deadlines keep it within
    its budget; wall time is the benchmark's business, not a test's)."""
    out = tmp_path / "x.json"
    result = gpu_check("--device", "cpu", "--quick", "--out", str(out), "--fashion-mnist-dir", FASHION_MNIST)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert tuple(report["parts"]) == PARTS
    for name, part in report["parts"].items():
        assert part["status"] in ("measured", "cut", "skipped"), (name, part)
        if part["status"] != "measured":
            assert part["reason"], name
    assert report["parts"]["compiled"]["status"] == "skipped"
    has_data = Path(FASHION_MNIST, "train-images-idx3-ubyte.gz").is_file()
    fashion = report["parts"]["fashion_mnist"]
    assert fashion["status"] == ("measured" if has_data else "skipped"), fashion
    assert report["targets"] and all("ratio" in row and "met" in row for row in report["targets"])
    assert "== targets" in result.stdout
    check_every_regularizer_is_covered(report)


def check_every_regularizer_is_covered(report: dict) -> None:
    """Each registered regulariser has a step ratio and a penalty-overhead target per target model;
    each penalty (not a hard constraint, which has no penalty) its batched and looped timing."""
    names = set(available_regularizers()) - {"none"}
    penalties = {name for name in names if regularizer_spec(name).constrain is None}
    overhead_targets = [row for row in report["targets"] if "penalty overhead" in row["target"]]
    assert {row["target"].split()[0] for row in overhead_targets} == names
    assert len(overhead_targets) == 2 * len(names)  # a WRN-28-10 and a ResNet-110 target each
    regularizers = report["parts"]["regularizers"]
    if regularizers["status"] == "measured":
        for costs in regularizers["models"].values():
            assert set(costs["step_ratio"]) == names
            assert set(costs["batched_ms"]) == set(costs["loop_ms"]) == penalties
