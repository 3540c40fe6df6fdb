"""What a user watches during training: the epoch line's ETA (read back from the printed line and
recomputed from history.csv) and the optional TensorBoard curves (read back from the event files with
TensorBoard's own reader)."""

import csv
import io
import re

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from orthoreg import tensorboard_log
from orthoreg.cli import main as orthoreg_main
from orthoreg.config import TrainConfig, recipe_digest
from orthoreg.progress import Progress, duration, time_left

EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+) .* (\d+\.\d)s, (?:ETA (.+) of (.+)|total (.+))$")


def row(epoch: int, seconds: float) -> dict:
    return {
        "epoch": epoch,
        "train_loss": 1.0,
        "reg_value": 0.0,
        "train_accuracy": 0.5,
        "test_accuracy": 0.5,
        "seconds": seconds,
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0s"), (42, "42s"), (59.6, "1m 00s"), (725, "12m 05s"), (3600, "1h 00m"), (11220, "3h 07m")],
)
def test_durations_read_as_people_write_them(seconds, text):
    assert duration(seconds) == text


def test_the_epoch_line_ends_with_the_time_left_and_the_total():
    stream = io.StringIO()
    progress = Progress(epochs=4, enabled=True, stream=stream)
    history = [row(1, 10.0), row(2, 20.0)]  # mean 15 s: 2 epochs left = 30 s, total 30 + 30 s
    progress.epoch_line(history)
    assert stream.getvalue() == (
        "epoch 2/4 loss 1.0000 reg 0 acc 0.5000 test 0.5000 20.0s, ETA 30s of 1m 00s\n"
    )
    history += [row(3, 90.0), row(4, 1.0)]
    assert time_left(history[:3], 4) == "ETA 40s of 2m 40s"  # mean 40 s, 120 s so far
    assert time_left(history, 4) == "total 2m 01s"


def test_a_resumed_run_counts_the_epochs_of_its_earlier_attempt():
    """After a resume the history holds the earlier epochs too, so the mean is over every epoch."""
    history = [row(epoch, 600.0) for epoch in range(1, 101)]
    assert time_left(history, 200) == "ETA 16h 40m of 33h 20m"


def read_history(run_dir):
    with open(run_dir / "history.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def test_a_real_training_prints_etas_and_logs_its_curves_for_tensorboard(tmp_path, capsys):
    data = tmp_path / "data"
    assert orthoreg_main(["prepare-data", "--dataset", "synthetic", "--data-dir", str(data)]) == 0
    out = tmp_path / "run"
    arguments = ["train", "--model", "resnet8", "--dataset", "synthetic", "--regularizer", "dn_strict"]
    arguments += ["--epochs", "3", "--limit-train", "128", "--limit-test", "64", "--batch-size", "32"]
    arguments += ["--device", "cpu", "--data-dir", str(data), "--out", str(out), "--tensorboard"]
    assert orthoreg_main(arguments) == 0
    printed = [EPOCH_LINE.match(line) for line in capsys.readouterr().err.splitlines()]
    lines = [match for match in printed if match]
    history = read_history(out)
    assert len(lines) == len(history) == 3
    # the ETA recomputed from history.csv (the printed seconds are rounded to 0.1 s)
    for number, line in enumerate(lines, start=1):
        assert float(line.group(3)) == pytest.approx(float(history[number - 1]["seconds"]), abs=0.051)
        expected = time_left([{**r, "epoch": int(r["epoch"])} for r in history[:number]], 3)
        shown = f"ETA {line.group(4)} of {line.group(5)}" if line.group(4) else f"total {line.group(6)}"
        assert shown == expected

    events = EventAccumulator(str(out / tensorboard_log.FOLDER))
    events.Reload()
    columns = [column for column in history[0] if column != "epoch"]
    assert sorted(events.Tags()["scalars"]) == sorted(tensorboard_log.scalar_tag(c) for c in columns)
    assert "train/loss" in events.Tags()["scalars"] and "test/accuracy" in events.Tags()["scalars"]
    for column in columns:
        scalars = events.Scalars(tensorboard_log.scalar_tag(column))
        assert [scalar.step for scalar in scalars] == [1, 2, 3]
        expected = [float(r[column]) for r in history]
        assert [scalar.value for scalar in scalars] == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_an_epoch_logged_again_hides_the_earlier_attempt(tmp_path):
    """A run killed after logging epoch 2 and resumed logs epoch 2 again: TensorBoard shows the new
    value only (the new writer's purge_step), and every earlier epoch stays."""
    for epoch, loss in ((1, 3.0), (2, 2.0), (2, 1.5), (3, 1.0)):
        tensorboard_log.log_epoch(tmp_path, {"epoch": epoch, "train_loss": loss})
    events = EventAccumulator(str(tmp_path / tensorboard_log.FOLDER))
    events.Reload()
    scalars = events.Scalars("train/loss")
    assert [(scalar.step, scalar.value) for scalar in scalars] == [(1, 3.0), (2, 1.5), (3, 1.0)]


def test_tensorboard_is_runtime_only_and_refused_without_the_package(monkeypatch):
    config = TrainConfig(model="resnet8", dataset="synthetic", regularizer="none")
    with_curves = TrainConfig(model="resnet8", dataset="synthetic", regularizer="none", tensorboard=True)
    assert recipe_digest(config) == recipe_digest(with_curves)
    with_curves.validate()
    monkeypatch.setattr(tensorboard_log.importlib.util, "find_spec", lambda name: None)
    config.validate()  # off: the package is not needed
    with pytest.raises(
        ValueError, match=r"tensorboard needs the tensorboard package, which is not installed"
    ):
        with_curves.validate()
