"""The README path of a new user, from `git clone` on: the demo's first job obtains Fashion-MNIST with
no step by hand. On a bare machine (CI's) the first test that prepares Fashion-MNIST installs Debian's
package with apt-get as root, exactly as `make demo` would; elsewhere the data come from the copy
found or downloaded (orthoreg.data.fashion_mnist)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_a_fresh_clone_prepares_the_demo_data_by_itself(tmp_path):
    clone = tmp_path / "orthoreg"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = {key: value for key, value in os.environ.items() if key != "ORTHOREG_FASHION_MNIST_DIR"}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", "--configfile", "config/demo.yaml", "--until", "data"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Using workflow specific profile profiles/default" in output
    assert "orthoreg: Fashion-MNIST from /" in output  # the job says where the files came from
    record = json.loads((clone / "data" / "fashion_mnist" / "prepared.json").read_text())
    assert {split: entry["count"] for split, entry in record["files"].items()} == {
        "train": 60000,
        "test": 10000,
    }
    assert sorted(path.name for path in (clone / "data" / "fashion_mnist").iterdir()) == [
        "prepared.json",
        "test.pt",
        "train.pt",
    ]
