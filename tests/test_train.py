"""The training engine: determinism, kill-and-resume equality, refusals, run files, GPU claiming."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from orthoreg import devices as devices_module
from orthoreg import train as train_module
from orthoreg.checkpoint import TrainingInterrupted, capture_rng_state, restore_rng_state
from orthoreg.cli import build_parser
from orthoreg.config import TrainConfig
from orthoreg.config import from_arguments as config_from_args
from orthoreg.devices import claim_gpu
from orthoreg.progress import Progress
from orthoreg.runs import load_run
from orthoreg.train import HISTORY_COLUMNS, learning_rate, train

RUN_JSON_KEYS = {
    "model",
    "dataset",
    "regularizer",
    "seed",
    "lambda",
    "schedule",
    "reg_options",
    "ablation",
    "recipe",
    "config",
    "num_classes",
    "in_channels",
    "image_size",
    "mean",
    "std",
    "test_accuracy",
    "test_loss",
    "train_accuracy",
    "epochs_completed",
    "wall_seconds",
    "seconds_per_epoch",
    "versions",
    "device",
    "fast_path",
    "relaxation",
    "model_options",
    "cpu_seconds_per_epoch",
    "load_average",
    "git_commit",
    "git_dirty",
    "cpu",
    "started",
    "finished",
    "model_sha256",
}
# a run small enough for seconds on 2 cores: 8 steps per epoch, 4 epochs
SMALL = {
    "model": "resnet8",
    "dataset": "synthetic",
    "regularizer": "dn_relaxed",
    "seed": 3,
    "epochs": 4,
    "lam": 1e-2,
    "reg_options": {"gamma": 1.0, "rho": 0.5},
    "batch_size": 32,
    "limit_train": 256,
    "limit_test": 64,
    "device": "cpu",
    "threads": 1,
}
CLI_ARGS = [
    "--model",
    "resnet8",
    "--dataset",
    "synthetic",
    "--regularizer",
    "dn_relaxed",
    "--seed",
    "3",
    "--epochs",
    "4",
    "--lambda",
    "0.01",
    "--gamma",
    "1.0",
    "--rho",
    "0.5",
    "--batch-size",
    "32",
    "--limit-train",
    "256",
    "--limit-test",
    "64",
    "--device",
    "cpu",
    "--threads",
    "1",
]


def small_config(**changes) -> TrainConfig:
    return TrainConfig(**{**SMALL, **changes})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from orthoreg.data import prepare_dataset

    root = tmp_path_factory.mktemp("data")
    prepare_dataset("synthetic", root)
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir) -> Path:
    """An uninterrupted run of SMALL; the resumed runs must end identical to it."""
    out = tmp_path_factory.mktemp("reference") / "run"
    train(small_config(), out, data_dir, verbose=False)
    return out


def state_of(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", weights_only=True)


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = state_of(a), state_of(b)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def history_without_time(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as stream:
        return [
            {k: v for k, v in row.items() if k not in ("seconds", "cpu_seconds")}
            for row in csv.DictReader(stream)
        ]


def curve_without_time(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "curve.csv", newline="") as stream:
        return [
            {k: v for k, v in row.items() if k not in ("seconds", "cpu_seconds")}
            for row in csv.DictReader(stream)
        ]


def cli(out: Path, data_dir: Path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "orthoreg",
        "train",
        *CLI_ARGS,
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
        *extra,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.002)


# --- configuration and bad input -------------------------------------------------------------------


def test_defaults_follow_the_paper_recipe():
    config = TrainConfig("resnet20", "cifar10", "none")
    assert (config.lr, config.momentum, config.nesterov, config.weight_decay) == (0.1, 0.9, True, 5e-4)
    assert (config.batch_size, config.lr_decay, config.lr_milestones) == (128, 0.2, (0.3, 0.6, 0.8))
    assert config.augment and config.epochs == 200


def test_learning_rate_decays_by_lr_decay_at_each_milestone():
    config = TrainConfig("resnet20", "cifar10", "none")
    # 200 epochs of 391 steps: the recipe's epochs 60, 120, 160 begin exactly at the fractions
    steps = 391 * 200
    expected = {0: 0.1, 60 * 391 - 1: 0.1, 60 * 391: 0.02, 120 * 391: 0.004, 160 * 391: 0.0008}
    for step, lr in expected.items():
        assert math.isclose(learning_rate(config, step / steps), lr, rel_tol=1e-12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "resnet9000"}, "unknown model 'resnet9000'; valid: .*resnet8"),
        ({"dataset": "imagenet"}, "unknown dataset 'imagenet'; valid: .*synthetic"),
        ({"regularizer": "l2"}, "unknown regularizer 'l2'; valid: .*dn_relaxed"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"epochs": -3}, "epochs must be a positive integer, got -3"),
        ({"lr": 0.0}, "lr must be a positive finite number, got 0.0"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"lam": -1.0}, "lambda must be a non-negative finite number, got -1.0"),
        ({"lam": float("nan")}, "lambda must be a non-negative finite number, got nan"),
        ({"schedule": "cosine"}, "unknown schedule 'cosine'; valid: constant, step"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"lr_milestones": (0.6, 0.3)}, "lr_milestones must be increasing"),
        ({"reg_options": {"rho": 1.5}}, "rho"),
        ({"reg_options": {"gamma": -1.0}}, "gamma"),
        ({"ablation": {"param": "depth", "value": 3}}, "ablation must be"),
    ],
)
def test_bad_config_is_refused_before_anything_is_written(tmp_path, data_dir, change, message):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train(small_config(**change), out, data_dir, verbose=False)
    assert not out.exists()


def test_unwritable_output_directory_is_refused(tmp_path, data_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="not writable"):
        train(small_config(), blocker / "run", data_dir, verbose=False)
    assert blocker.read_text() == "not a directory"


def test_unprepared_dataset_names_the_prepare_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="orthoreg prepare-data"):
        train(small_config(), tmp_path / "run", tmp_path / "empty", verbose=False)
    assert not (tmp_path / "run").exists()


def test_cli_arguments_map_onto_the_config(tmp_path):
    args = build_parser().parse_args(
        [
            "train",
            *CLI_ARGS,
            "--out",
            str(tmp_path),
            "--lr-milestones",
            "0.5",
            "--no-nesterov",
            "--no-augment",
            "--reg-option",
            "eps=1e-6",
            "--ablation",
            "rho=0.5",
        ]
    )
    config = config_from_args(args)
    assert config == small_config(
        lr_milestones=(0.5,),
        nesterov=False,
        augment=False,
        reg_options={"gamma": 1.0, "rho": 0.5, "eps": 1e-6},
        ablation={"param": "rho", "value": 0.5},
    )


def test_cli_accepts_the_pipeline_grid_arguments(tmp_path):
    from orthoreg import grid

    config = {
        "train": {
            "epochs": 2,
            "batch_size": 64,
            "lr_milestones": [0.5],
            "nesterov": False,
            "augment": True,
            "limit_train": 100,
            "device": "cpu",
        },
        "regularization": {
            "lambda": 0.1,
            "schedule": "step",
            "gamma": 2.0,
            "rho": 0.25,
            "include_linear": True,
            "skip_stem": False,
        },
        "threads": 2,
    }
    run = grid.Run("synthetic", "resnet8", "dn_relaxed", 1, ("rho", 0.25))
    arguments = [*grid.train_arguments(run, config), *grid.train_arguments(run, config, runtime=True)]
    assert grid.train_arguments(run, config, runtime=True) == ["--device", "cpu", "--threads", "2"]
    args = build_parser().parse_args(["train", *arguments, "--out", str(tmp_path)])
    parsed = config_from_args(args)
    assert (parsed.epochs, parsed.batch_size, parsed.lr_milestones) == (2, 64, (0.5,))
    assert not parsed.nesterov and parsed.augment
    assert (parsed.lam, parsed.schedule, parsed.include_linear, parsed.skip_stem) == (
        0.1,
        "step",
        True,
        False,
    )
    assert parsed.reg_options == {"gamma": 2.0, "rho": 0.25}
    assert parsed.ablation == {"param": "rho", "value": 0.25} and parsed.threads == 2

    # per-regulariser overrides become that regulariser's flags
    config["regularization"]["overrides"] = {"srip": {"squared": True, "exact": False, "iters": 3}}
    run = grid.Run("synthetic", "resnet8", "srip", 0)
    args = build_parser().parse_args(["train", *grid.train_arguments(run, config), "--out", str(tmp_path)])
    parsed = config_from_args(args)
    # booleans travel both ways (--squared / --no-exact), so the override arrives exactly as written
    assert parsed.reg_options == {"squared": True, "exact": False, "iters": 3}
    parsed.validate()


# --- the run files -----------------------------------------------------------------------------------


def test_run_files_follow_the_contract(reference, data_dir):
    record = json.loads((reference / "run.json").read_text())
    assert set(record) == RUN_JSON_KEYS
    assert record["config"] == json.loads(json.dumps(dataclasses.asdict(small_config())))
    assert set(record["config"]) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert record["lambda"] == 1e-2
    assert record["reg_options"] == {"gamma": 1.0, "rho": 0.5, "eps": 1e-8, "relaxation": "rho", "k": None}
    assert record["epochs_completed"] == 4 and record["ablation"] is None
    assert set(record["versions"]) == {"python", "torch", "torchvision", "orthoreg"}
    assert record["git_commit"] is None or len(record["git_commit"]) == 40

    with open(reference / "history.csv", newline="") as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames) == HISTORY_COLUMNS
        rows = [{key: float(value) for key, value in row.items()} for row in reader]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    for row in rows:
        assert 0 <= row["train_accuracy"] <= 1 and 0 <= row["test_accuracy"] <= 1
        assert math.isclose(row["train_loss"], row["train_ce"] + row["reg_value"], rel_tol=1e-6)
        assert row["reg_value"] > 0 and row["orth_residual"] > 0 and 0 < row["orth_coherence"] <= 1 + 1e-6
        assert row["lambda"] == 1e-2
    # epochs start at progress 0, 0.25, 0.5, 0.75: past 0 milestones, 0, 1 (0.3), 2 (0.3, 0.6)
    assert [row["lr"] for row in rows] == [0.1, 0.1, 0.1 * 0.2, 0.1 * 0.2**2]
    assert record["test_accuracy"] == rows[-1]["test_accuracy"]
    assert record["seconds_per_epoch"] == pytest.approx(sum(row["seconds"] for row in rows) / 4)


def test_load_run_round_trip_reproduces_the_recorded_accuracy(reference, data_dir):
    from orthoreg.data import load_split

    model, record = load_run(reference)
    assert not model.training
    images, labels = load_split("synthetic", data_dir, "test", limit=64)
    with torch.no_grad():
        logits = model(images.float() / 255)
    accuracy = (logits.argmax(1) == labels).double().mean().item()
    loss = torch.nn.functional.cross_entropy(logits.double(), labels).item()
    assert accuracy == record["test_accuracy"]
    assert loss == pytest.approx(record["test_loss"], rel=1e-5)


def test_load_run_errors_name_the_file(tmp_path, reference):
    with pytest.raises(FileNotFoundError, match="run.json"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text((reference / "run.json").read_text())
    with pytest.raises(FileNotFoundError, match="model.pt"):
        load_run(tmp_path)
    (tmp_path / "model.pt").write_bytes((reference / "model.pt").read_bytes()[:200])
    with pytest.raises(ValueError, match="model.pt"):
        load_run(tmp_path)


# --- determinism and resume --------------------------------------------------------------------------


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tmp_path, reference, data_dir):
    train(small_config(), tmp_path / "again", data_dir, verbose=False)
    assert_same_weights(reference, tmp_path / "again")
    assert history_without_time(reference) == history_without_time(tmp_path / "again")
    train(small_config(seed=4, epochs=1), tmp_path / "other", data_dir, verbose=False)
    first = state_of(tmp_path / "other")
    assert any(not torch.equal(first[k], v) for k, v in state_of(reference).items() if v.is_floating_point())


def test_finished_run_is_not_retrained(reference, data_dir):
    before = {name: (reference / name).stat().st_mtime_ns for name in ("model.pt", "run.json", "history.csv")}
    record = train(small_config(), reference, data_dir, verbose=False)
    assert record == json.loads((reference / "run.json").read_text())
    assert before == {name: (reference / name).stat().st_mtime_ns for name in before}


def test_finished_run_with_another_config_is_refused(reference, data_dir):
    before = (reference / "run.json").read_bytes()
    with pytest.raises(ValueError, match="differing: lr, seed"):
        train(small_config(lr=0.05, seed=9), reference, data_dir, verbose=False)
    assert (reference / "run.json").read_bytes() == before


@pytest.mark.slow
def test_sigkill_after_an_epoch_then_rerun_ends_identical(tmp_path, reference, data_dir):
    out = tmp_path / "run"
    process = cli(out, data_dir)
    wait_for(out / "checkpoint.pt", process)
    process.kill()
    process.wait()
    assert not (out / "run.json").exists(), "the run finished before it could be killed"
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert 1 <= checkpoint["epoch"] < 4
    resumed = cli(out, data_dir)
    _, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert "resuming" in stderr
    assert_same_weights(reference, out)
    assert history_without_time(reference) == history_without_time(out)
    assert curve_without_time(reference) == curve_without_time(out)
    assert (
        json.loads((out / "run.json").read_text())["test_accuracy"]
        == json.loads((reference / "run.json").read_text())["test_accuracy"]
    )


@pytest.mark.slow
def test_sigterm_mid_epoch_checkpoints_exits_143_and_resumes_identical(tmp_path, reference, data_dir, capsys):
    """SLURM preemption: SIGTERM (SIGUSR1 takes the same path, tested in-process below)."""
    signum = signal.SIGTERM
    out = tmp_path / "run"
    process = cli(out, data_dir)
    wait_for(out / "checkpoint.pt", process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["batch"] > 0, "the checkpoint should sit inside an epoch"
    assert not (out / "run.json").exists()

    # a different config in a copy of the folder sets the checkpoint aside, by name, and trains
    saved = (out / "checkpoint.pt").read_bytes()
    other = tmp_path / "other"
    shutil.copytree(out, other)
    train(small_config(batch_size=64, epochs=1), other, data_dir, verbose=False)
    (aside,) = other.glob("checkpoint.set-aside-*.pt")
    assert aside.read_bytes() == saved
    assert "differing: batch_size, epochs" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == saved

    record = train(small_config(), out, data_dir, verbose=False)
    assert_same_weights(reference, out)
    assert history_without_time(reference) == history_without_time(out)
    assert curve_without_time(reference) == curve_without_time(out)
    assert record["test_accuracy"] == json.loads((reference / "run.json").read_text())["test_accuracy"]


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path, data_dir, monkeypatch):
    from orthoreg.regularizers import OrthogonalityRegularizer

    class Exploding(OrthogonalityRegularizer):
        def __call__(self, progress):
            value = super().__call__(progress)
            return value * float("inf") if progress >= 0.5 else value

    monkeypatch.setattr(train_module, "OrthogonalityRegularizer", Exploding)
    out = tmp_path / "run"
    # 8 steps per epoch, 4 epochs: progress 0.5 is step 16, the first of epoch 3
    with pytest.raises(RuntimeError, match=r"step 16 \(epoch 3, batch 0\).*regulariser value inf"):
        train(small_config(), out, data_dir, verbose=False)
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["batch"] == 0
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point())
    assert not (out / "model.pt").exists() and not (out / "run.json").exists()


def test_interrupt_flag_checkpoints_at_the_next_step(tmp_path, data_dir, monkeypatch):
    """In-process: a SIGUSR1 delivered during training raises TrainingInterrupted after a checkpoint."""
    from orthoreg.regularizers import OrthogonalityRegularizer

    class SignalsOnce(OrthogonalityRegularizer):
        def __call__(self, progress):
            if progress == 0.25 + 3 / 32:
                os.kill(os.getpid(), signal.SIGUSR1)
            return super().__call__(progress)

    monkeypatch.setattr(train_module, "OrthogonalityRegularizer", SignalsOnce)
    with pytest.raises(TrainingInterrupted) as raised:
        train(small_config(), tmp_path / "run", data_dir, verbose=False)
    assert raised.value.exit_code == 128 + signal.SIGUSR1
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["batch"]) == (1, 4)
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_rank_relaxation_records_each_layers_k_and_resumes_exactly(tmp_path, data_dir, monkeypatch):
    """`--relaxation rank`: each layer's rank* and k are measured once, recorded in run.json and the
    checkpoint, and an interrupted run resumes (without measuring again) to the same weights."""
    rank = small_config(reg_options={"gamma": 1.0, "rho": 0.5, "relaxation": "rank"})
    reference = tmp_path / "reference"
    record = train(rank, reference, data_dir, verbose=False)
    layers = record["relaxation"]["layers"]
    assert record["relaxation"]["rule"] == "rank" and len(layers) == 7  # resnet8: 7 convolutions
    for layer in layers.values():
        assert 0 <= layer["rank"] <= min(layer["o"], layer["n"])
        assert layer["k"] == layer["pairs"] - layer["rank"] * (layer["rank"] - 1) // 2

    from orthoreg.regularizers import OrthogonalityRegularizer

    class SignalsOnce(OrthogonalityRegularizer):
        def __call__(self, progress):
            if progress == 0.5:
                os.kill(os.getpid(), signal.SIGUSR1)
            return super().__call__(progress)

    monkeypatch.setattr(train_module, "OrthogonalityRegularizer", SignalsOnce)
    with pytest.raises(TrainingInterrupted):
        train(rank, tmp_path / "resumed", data_dir, verbose=False)
    checkpoint = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    calibrated = checkpoint["regularizer"]["calibrated"]
    assert {name: settings["k"] for name, settings in calibrated.items()} == {
        name: layer["k"] for name, layer in layers.items()
    }
    monkeypatch.undo()
    monkeypatch.setattr(
        OrthogonalityRegularizer, "calibrate", lambda *args, **kwargs: pytest.fail("calibrated again")
    )
    train(rank, tmp_path / "resumed", data_dir, verbose=False)
    assert_same_weights(reference, tmp_path / "resumed")


def test_rng_state_round_trip():
    state = capture_rng_state()
    drawn = (random.random(), np.random.rand(), torch.rand(3))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restore_rng_state(torch.load(buffer, weights_only=True))
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert drawn[:2] == again[:2] and torch.equal(drawn[2], again[2])


# --- GPU claiming ------------------------------------------------------------------------------------

# loads devices.py by path, not through the package, so each claimant starts without importing torch
CLAIM = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('devices', sys.argv[4])\n"
    "devices = importlib.util.module_from_spec(spec); spec.loader.exec_module(devices)\n"
    "print(devices.claim_gpu(int(sys.argv[1]), sys.argv[2], timeout=float(sys.argv[3])), flush=True)\n"
    "sys.stdin.read()\n"
)


def test_claim_gpu_gives_each_process_its_own_device(tmp_path):
    def claimant(timeout: float = 0.0) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", CLAIM, "3", str(tmp_path), str(timeout), devices_module.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # three simulated GPUs, whatever this machine's CUDA_VISIBLE_DEVICES lists
            env={key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"},
        )

    holders = [claimant() for _ in range(3)]
    try:
        claimed = [int(holder.stdout.readline()) for holder in holders]
        assert sorted(claimed) == [0, 1, 2]
        extra = claimant()
        _, stderr = extra.communicate(input="", timeout=60)
        assert extra.returncode != 0 and "all 3 GPUs are claimed" in stderr
        # a holder that dies (even by SIGKILL) frees its device for the next job
        holders[1].kill()
        holders[1].wait()
        waiting = claimant(timeout=30.0)
        freed = int(waiting.stdout.readline())
        assert freed == claimed[1]
        holders.append(waiting)
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


def test_claim_gpu_refuses_no_devices(tmp_path):
    with pytest.raises(ValueError, match="n_devices must be at least 1, got 0"):
        claim_gpu(0, tmp_path)


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_draws_a_bar_only_on_a_terminal(tty):
    stream = _Stream(tty)
    progress = Progress(epochs=2, enabled=True, stream=stream)
    progress.update(0, 4, 4, torch.tensor(8.0), 4)
    row = {
        "epoch": 1,
        "train_loss": 2.0,
        "reg_value": 0.5,
        "train_accuracy": 0.25,
        "test_accuracy": 0.5,
        "seconds": 1.25,
    }
    progress.epoch_line([row])
    lines = stream.getvalue()
    assert ("[" + "#" * 30 + "] 4/4 loss 2.0000" in lines) == tty
    assert lines.endswith("epoch 1/2 loss 2.0000 reg 0.5 acc 0.2500 test 0.5000 1.2s, ETA 1s of 2s\n")


def test_a_short_run_records_its_curve_inside_epochs_without_changing_training(tmp_path, reference, data_dir):
    """SMALL: 4 epochs of 8 steps, so the default 8 curve points take 2 per epoch: after step 4 of
    each epoch and at its end. The extra test passes change no weight, and a resumed run writes the
    same curve."""
    assert train_module.curve_steps(8, 4, 8) == {3, 11, 19, 27}
    assert (
        train_module.curve_steps(8, 1, 10) == {0, 1, 2, 4, 5, 6, 7}
        and train_module.curve_steps(0, 1, 10) == set()
    )
    assert train_module.curve_steps(8, 8, 10) == set()
    with open(reference / "curve.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [float(row["epoch"]) for row in rows] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    history = {row["epoch"]: row for row in history_without_time(reference)}
    for row in rows[1::2]:  # the epoch ends are history.csv's passes
        epoch = str(int(float(row["epoch"])))
        assert row["test_accuracy"] == history[epoch]["test_accuracy"]
    plain = tmp_path / "plain"
    train(small_config(curve_points=0), plain, data_dir, verbose=False)
    with open(plain / "curve.csv", newline="") as stream:  # the epoch ends alone
        assert [float(row["epoch"]) for row in csv.DictReader(stream)] == [1.0, 2.0, 3.0, 4.0]
    assert_same_weights(reference, plain)
    assert history_without_time(reference) == history_without_time(plain)
