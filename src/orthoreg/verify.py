"""Anyone can audit a committed run: retrain it from its run.json's config in a scratch folder,
evaluate it as its eval.json says it was evaluated, and compare every measured value.

What to expect: training and evaluation on the CPU are bit-exact for the same torch version, the
same vector instruction set torch dispatches to (`torch.backends.cpu.get_cpu_capability()`, e.g.
AVX512) and the same thread count, all three recorded in the run's provenance, so on such a machine
every value must agree exactly. Where one of them differs, other kernels or another summation order
may change the last bits and, through training, the weights: the values are still compared and each
difference reported, with the reason exact agreement was not expected.
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from orthoreg.config import TrainConfig
from orthoreg.data import prepare_dataset
from orthoreg.evaluate import evaluate_run
from orthoreg.provenance import cpu_description
from orthoreg.runs import read_record
from orthoreg.train import train

# what a run's record holds that is not a measurement of the model (when and where it was computed)
NOT_MEASURED = ("provenance", "settings")
RECORD_MEASURES = ("test_accuracy", "test_loss", "train_accuracy")


@dataclass
class Verdict:
    """One re-run: whether every measured value agreed exactly, whether it was expected to, why not,
    and each value that differs as (name, committed, re-run)."""

    run_dir: Path
    compared: int
    expected_exact: bool
    reasons: list[str] = field(default_factory=list)
    differences: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not self.differences


def committed_runs(root: Path) -> list[Path]:
    """Every run folder under `root` with a run.json and an eval.json, in path order."""
    return sorted(path.parent for path in root.rglob("run.json") if (path.parent / "eval.json").is_file())


def choose_runs(root: Path, sample: int, named: list[Path], seed: int) -> list[Path]:
    """The named runs, or `sample` runs drawn at random (with `seed`) from those under `root`."""
    if named:
        missing = [
            str(path)
            for path in named
            if not (path / "run.json").is_file() or not (path / "eval.json").is_file()
        ]
        if missing:
            raise ValueError(f"not a finished, evaluated run (run.json and eval.json): {', '.join(missing)}")
        return named
    runs = committed_runs(root)
    if not runs:
        raise ValueError(f"no evaluated run (run.json with eval.json) under {root}")
    if not 1 <= sample <= len(runs):
        raise ValueError(f"sample must be between 1 and the {len(runs)} runs under {root}, got {sample}")
    return sorted(random.Random(seed).sample(runs, sample))


def reasons_to_differ(provenance: dict[str, Any]) -> list[str]:
    """Why this machine may not reproduce the recorded values bit for bit (none: it must)."""
    here = {
        "torch": torch.__version__,
        "CPU instruction set": torch.backends.cpu.get_cpu_capability(),
        "threads": provenance.get("threads"),
    }
    recorded = {
        "torch": provenance.get("versions", {}).get("torch"),
        "CPU instruction set": provenance.get("cpu", {}).get("capability"),
        "threads": provenance.get("threads"),
    }
    if not str(provenance.get("device", "cpu")).startswith("cpu"):
        return [f"recorded on {provenance.get('device')}, re-run on the CPU"]
    return [
        f"{name}: recorded {recorded[name]}, here {value}"
        for name, value in here.items()
        if recorded[name] != value
    ]


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested measurements as dotted names (orthogonality.mean_holistic_residual, ...)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def measured(record: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, Any]:
    """The values a re-run must reproduce: eval.json's measurements and run.json's accuracies."""
    values = flatten({key: value for key, value in evaluation.items() if key not in NOT_MEASURED}, "eval.")
    values.update({f"run.{key}": record.get(key) for key in RECORD_MEASURES})
    return values


def verify_run(run_dir: Path, data_dir: Path, scratch: Path) -> Verdict:
    """Retrain and re-evaluate one committed run in `scratch`, and compare."""
    record = read_record(run_dir)
    evaluation = json.loads((run_dir / "eval.json").read_text())
    config = TrainConfig(**record["config"])
    provenance = evaluation.get("provenance") or {}
    prepare_dataset(config.dataset, data_dir)
    rerun = scratch / run_dir.name
    retrained = train(config, rerun, data_dir, verbose=False)
    if provenance.get("threads"):
        torch.set_num_threads(int(provenance["threads"]))
    settings = evaluation.get("settings") or {}
    fresh = evaluate_run(rerun, data_dir, device="cpu", **settings)
    committed, again = measured(record, evaluation), measured(retrained, fresh)
    differences = [
        (name, value, again.get(name)) for name, value in committed.items() if again.get(name) != value
    ]
    reasons = reasons_to_differ(provenance)
    return Verdict(run_dir, len(committed), not reasons, reasons, differences)


def verify(
    root: Path, data_dir: Path, *, sample: int = 3, named: list[Path] | None = None, seed: int = 0
) -> list[Verdict]:
    """Re-run the chosen runs, each in its own scratch folder that is removed afterwards."""
    verdicts = []
    for run_dir in choose_runs(root, sample, list(named or []), seed):
        with tempfile.TemporaryDirectory(prefix="orthoreg-verify-") as scratch:
            verdicts.append(verify_run(run_dir, data_dir, Path(scratch)))
    return verdicts


def machine_line() -> str:
    cpu = cpu_description()
    return f"this machine: torch {torch.__version__}, {cpu['model']} ({cpu['capability']}), {torch.get_num_threads()} threads"
