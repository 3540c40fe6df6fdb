"""benchmarks/gpu_check.py keeps working between the rare times a GPU is lent: its CPU quick form runs
every part, within a minute, into one JSON file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = {
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
}
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@pytest.mark.slow
def test_quick_cpu_check_accounts_for_every_part(tmp_path):
    """Every part measured, or cut/skipped with its reason (the script's own deadlines keep it within
    its budget; wall time is the benchmark's business, not a test's)."""
    out = tmp_path / "x.json"
    command = [
        sys.executable,
        "benchmarks/gpu_check.py",
        "--device",
        "cpu",
        "--quick",
        "--out",
        str(out),
        "--fashion-mnist-dir",
        FASHION_MNIST,
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["parts"]) == PARTS
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
