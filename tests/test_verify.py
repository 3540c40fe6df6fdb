"""`orthoreg verify` re-runs committed runs: an untouched run agrees exactly, a changed value is
found and named, and a machine that differs from the record says why exact agreement is not expected."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from orthoreg.cli import main
from orthoreg.config import TrainConfig
from orthoreg.data import prepare_dataset
from orthoreg.evaluate import evaluate_run
from orthoreg.train import train
from orthoreg.verify import choose_runs, committed_runs, verify

SMALL = {
    "model": "resnet8",
    "dataset": "synthetic",
    "regularizer": "dn_strict",
    "lam": 1e-2,
    "epochs": 1,
    "batch_size": 32,
    "limit_train": 96,
    "limit_test": 64,
    "device": "cpu",
    "threads": 1,
}


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> tuple[Path, Path]:
    """Two committed runs (records without model.pt, as the study commits them) and the data folder."""
    root, data = tmp_path_factory.mktemp("committed"), tmp_path_factory.mktemp("data")
    prepare_dataset("synthetic", data)
    for seed in (0, 1):
        run_dir = root / "runs" / f"seed{seed}"
        train(TrainConfig(seed=seed, **SMALL), run_dir, data, verbose=False)
        evaluate_run(run_dir, data, limit_test=64, batch_size=32, device="cpu")
        for name in ("model.pt", "checkpoint.pt"):
            (run_dir / name).unlink()
    return root, data


def test_an_untouched_run_agrees_exactly(committed):
    root, data = committed
    (verdict,) = verify(root, data, named=[root / "runs" / "seed1"])
    assert verdict.expected_exact and verdict.exact and verdict.compared > 20


def test_a_changed_value_is_found_and_the_command_fails(committed, tmp_path, capsys):
    root, data = committed
    copy = tmp_path / "seed0"
    shutil.copytree(root / "runs" / "seed0", copy)
    evaluation = json.loads((copy / "eval.json").read_text())
    evaluation["test_accuracy"] += 1 / 64
    (copy / "eval.json").write_text(json.dumps(evaluation))
    code = main(["verify", "--run", str(copy), "--data-dir", str(data)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "1 of" in out and "eval.test_accuracy: committed" in out and "difference -0.0156" in out
    assert "1 of 1 runs differ where they must agree exactly" in err


def test_another_machine_is_told_why_exact_agreement_is_not_expected(committed, tmp_path):
    root, data = committed
    copy = tmp_path / "seed0"
    shutil.copytree(root / "runs" / "seed0", copy)
    evaluation = json.loads((copy / "eval.json").read_text())
    evaluation["provenance"]["versions"]["torch"] = "1.0.0"
    evaluation["test_loss"] += 0.5
    (copy / "eval.json").write_text(json.dumps(evaluation))
    (verdict,) = verify(root, data, named=[copy])
    assert not verdict.expected_exact and verdict.reasons == [
        f"torch: recorded 1.0.0, here {torch.__version__}"
    ]
    assert [name for name, _, _ in verdict.differences] == ["eval.test_loss"]


def test_the_sample_is_drawn_from_the_committed_runs_by_seed(committed):
    root, _ = committed
    assert committed_runs(root) == [root / "runs" / "seed0", root / "runs" / "seed1"]
    assert choose_runs(root, 1, [], seed=3) == choose_runs(root, 1, [], seed=3)
    with pytest.raises(ValueError, match="sample must be between 1 and the 2 runs"):
        choose_runs(root, 5, [], seed=0)
    with pytest.raises(ValueError, match="not a finished, evaluated run"):
        choose_runs(root, 1, [root / "nothing"], seed=0)
