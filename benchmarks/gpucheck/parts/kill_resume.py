"""The kill-and-resume part: SIGKILL `orthoreg train` after its first epoch's checkpoint, rerun it to
the end, and compare the final weights with an uninterrupted run; a second uninterrupted run gives the
device's run-to-run difference (nonzero where kernels are not deterministic). The engine has no switch
for torch.use_deterministic_algorithms, so none is set: the difference is what a user's resume gets."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from gpucheck.harness import Context, Deadline, children, finish_cleanly, part, spawn
from orthoreg.config import TrainConfig, to_arguments

RUNS = ("reference", "resumed", "again")  # the killed and resumed run is "resumed"


def train_command(config: TrainConfig, out: Path, data: Path) -> list[str]:
    arguments = [*to_arguments(config), "--out", str(out), "--data-dir", str(data), "--quiet"]
    return [sys.executable, "-m", "orthoreg", "train", *arguments]


def kill_at_first_checkpoint(
    started: list[subprocess.Popen],
    command: Sequence[str],
    out: Path,
    env: Mapping[str, str],
    deadline: Deadline,
) -> dict[str, Any]:
    """Start `command`, SIGKILL it as soon as its first checkpoint appears in `out`, and return where
    that checkpoint stands (its epoch and batch)."""
    victim = spawn(started, command, env)
    checkpoint = out / "checkpoint.pt"
    while not checkpoint.exists():
        if victim.poll() is not None:
            raise RuntimeError(f"the run to be killed exited first: {victim.communicate()[1][-2000:]}")
        deadline.check("the first checkpoint appeared")
        time.sleep(0.002)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    if (out / "run.json").exists():
        raise RuntimeError("the run finished before it could be killed; give it more epochs")
    return torch.load(checkpoint, map_location="cpu", weights_only=True)


def max_abs_difference(first: Path, second: Path) -> float:
    """The largest |a - b| over every tensor of two model.pt state dicts."""
    a, b = (torch.load(path / "model.pt", weights_only=True) for path in (first, second))
    if a.keys() != b.keys():
        raise ValueError(f"{first} and {second} hold different tensors")
    return max(float((a[key].double() - b[key].double()).abs().max()) for key in a if a[key].numel())


@part(
    "kill_resume",
    "SIGKILL orthoreg train after its first checkpoint, resume it, compare with an uninterrupted run",
    weight=45,
    quick_weight=12,
)
def kill_resume(context: Context, record: dict, deadline: Deadline) -> None:
    config = TrainConfig(
        dataset="synthetic", regularizer="dn_relaxed", device=context.device.type, **context.plan.resume
    )
    config.validate()
    runs = {label: context.work / "resume" / label for label in RUNS}
    commands = {label: train_command(config, out, context.data) for label, out in runs.items()}
    env = context.child_env
    with children() as started:
        processes = {"reference": spawn(started, commands["reference"], env)}
        state = kill_at_first_checkpoint(started, commands["resumed"], runs["resumed"], env, deadline)
        record.update(killed_at_epoch=state["epoch"], killed_at_batch=state["batch"], epochs=config.epochs)
        processes.update({label: spawn(started, commands[label], env) for label in ("resumed", "again")})
        for label in RUNS:
            finish_cleanly(processes[label], deadline, f"the {label} run")
    resume_difference = max_abs_difference(runs["reference"], runs["resumed"])
    record.update(
        model=config.model,
        regularizer=config.regularizer,
        deterministic_algorithms=False,
        resume_max_abs_difference=resume_difference,
        run_to_run_max_abs_difference=max_abs_difference(runs["reference"], runs["again"]),
        bit_exact=resume_difference == 0.0,
        test_accuracy={
            label: json.loads((out / "run.json").read_text())["test_accuracy"] for label, out in runs.items()
        },
    )
