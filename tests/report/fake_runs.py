"""Run directories with known numbers for the report's tests, written through the library's own
writers and lists: `orthoreg.files.save_json/save_csv`, `train.HISTORY_COLUMNS`, `TrainConfig` and
the resolved model and regulariser options for run.json, `metrics.layer_metrics`/`summarize` and
`evaluate.spectrum_rows` for eval.json, layers.csv and spectra.csv, and the robustness records'
own constructors. A changed column or key therefore fails here, and test_collect.py compares these
files with those of a real trained, evaluated and attacked run."""

from __future__ import annotations

from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from orthoreg.config import TrainConfig, recipe_digest
from orthoreg.evaluate import spectrum_rows
from orthoreg.files import save_csv, save_json
from orthoreg.metrics import layer_metrics, summarize
from orthoreg.models import model_options
from orthoreg.regularizers.registry import resolve_options
from orthoreg.robustness import AttackSpec
from orthoreg.robustness.suite import corruption_record
from orthoreg.train import HISTORY_COLUMNS

EPS = 8 / 255
PDF_MAGIC = b"%PDF-"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# eval.json near-orthogonality per regulariser: (mean max |cos| over layers, condition number)
# a hard constraint is orthogonal by construction: lower than any penalty on every measure
ORTHOGONALITY = {"none": (0.9, 12.0), "dn_strict": (0.2, 1.5), "fro": (0.4, 1.0), "orthogonal": (0.01, 1.0)}
EFFECTIVE_RANK = {"none": 30.0, "dn_strict": 40.0, "fro": 50.0}
# each layer's max |cos| relative to the run's mean over layers
LAYER_SPREAD = (0.9, 1.0, 1.1)


class TinyNet(nn.Module):
    """Three 3x3 convolutions named like a CIFAR ResNet's first layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        block = nn.Module()
        block.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        block.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.layer1 = nn.Sequential(block)


@cache
def templates() -> tuple[tuple[dict, ...], tuple[dict, ...]]:
    """layers.csv and spectra.csv rows of TinyNet as evaluate computes them (their columns and layers)."""
    torch.manual_seed(0)
    net = TinyNet()
    layers = layer_metrics(net)
    return tuple(layers), tuple(spectrum_rows(net, layers))


def layer_rows(max_cos: float, residual: float, condition: float) -> list[dict[str, Any]]:
    """The template's rows with known measures: max |cos| spread around `max_cos` (so its mean over
    layers is `max_cos`), holistic residual (i + 1) * residual, a constant condition number."""
    rows = []
    for index, template in enumerate(templates()[0]):
        row = dict(template)
        row.update(
            max_cos=max_cos * LAYER_SPREAD[index],
            holistic_residual=(index + 1) * residual,
            diag_deviation=0.1 * (index + 1),
            condition_number=condition,
        )
        rows.append(row)
    return rows


def run_dir_of(
    root: Path, dataset: str, model: str, regularizer: str, seed: int, ablation: dict | None
) -> Path:
    if ablation is None:
        return root / "runs" / dataset / model / regularizer / f"seed{seed}"
    param, value = ablation["param"], ablation["value"]
    return root / "ablations" / param / dataset / model / regularizer / f"{param}={value:g}" / f"seed{seed}"


def history_rows(
    accuracy: float,
    regularizer: str,
    done: int,
    epochs: int,
    seconds: float,
    cpu_seconds: float,
    points: int = 1,
) -> list[dict[str, Any]]:
    """Rows of history.csv (points=1, at each epoch's end) or curve.csv (`points` per epoch, `epoch`
    the fraction of epochs trained): test accuracy rising linearly to `accuracy` at `epochs`."""
    rows = []
    for step in range(1, done * points + 1):
        e = step / points
        row = {
            "epoch": e if points > 1 else step,
            "lr": 0.1,
            "lambda": 1e-4,
            "train_loss": 1.0 / e,
            "train_ce": 1.0 / e,
            "reg_value": 0.0 if regularizer == "none" else 5.0 / e,
            "train_accuracy": 0.5,
            "test_loss": 0.6,
            "test_accuracy": accuracy * e / epochs,
            "orth_residual": 2.0 / e,
            "orth_coherence": 0.5,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
        }
        assert set(row) == set(HISTORY_COLUMNS), sorted(set(row) ^ set(HISTORY_COLUMNS))
        rows.append(row)
    return rows


def run_record(config: TrainConfig, accuracy: float, done: int, seconds: float, cpu_seconds: float) -> dict:
    """run.json as the engine writes it (train.py's finish), with known numbers."""
    return {
        "model": config.model,
        "dataset": config.dataset,
        "regularizer": config.regularizer,
        "seed": config.seed,
        "lambda": config.lam,
        "schedule": config.schedule,
        "reg_options": resolve_options(config.regularizer, dict(config.reg_options)),
        "relaxation": None,
        "model_options": model_options(config.model, config.model_options),
        "ablation": config.ablation,
        "recipe": recipe_digest(config),
        "config": config.to_dict(),
        "num_classes": 10,
        "in_channels": 3,
        "image_size": 32,
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
        "test_accuracy": accuracy,
        "test_loss": 0.5,
        "train_accuracy": 0.99,
        "epochs_completed": done,
        "wall_seconds": seconds * done,
        "seconds_per_epoch": seconds,
        "cpu_seconds_per_epoch": cpu_seconds,
        "load_average": 2.5,
        "versions": {},
        "device": "cpu",
        "git_commit": "abc",
        "started": "2024-01-01T00:00:00",
        "finished": "2024-01-01T00:01:00",
    }


# (wall, CPU) seconds the provenance of every fake eval.json and robustness.json records
STAGE_SECONDS = {"evaluate": (2.0, 1.5), "robustness": (4.0, 3.0)}


def write_evaluation(run_dir: Path, regularizer: str, seed: int, accuracy: float) -> None:
    """eval.json, layers.csv and spectra.csv as evaluate writes them, with known measures."""
    max_cos, condition = ORTHOGONALITY.get(regularizer, (0.5, 2.0))
    layers = layer_rows(max_cos + 0.01 * seed, max_cos, condition)
    spectra = [{**row, "singular_value": 1.0 + max_cos * (1.5 - row["index"])} for row in templates()[1]]
    save_csv(layers, list(layers[0]), run_dir / "layers.csv")
    save_csv(spectra, list(spectra[0]), run_dir / "spectra.csv")
    prediction = {
        "test_accuracy": accuracy,
        "top5_accuracy": 1.0,
        "test_loss": 0.5,
        "ece": 0.03,
        "n_test": 1000,
        "effective_rank": EFFECTIVE_RANK.get(regularizer, 10.0) + seed,
        "mean_abs_channel_cosine": 0.2,
        "forward_dtype": "fp32",
    }
    provenance = dict(zip(("wall_seconds", "cpu_seconds"), STAGE_SECONDS["evaluate"], strict=True))
    record = {**prediction, "orthogonality": summarize(layers), "provenance": provenance}
    save_json(record, run_dir / "eval.json")


def attack_record(attack: str, steps: int, step_size: float, eps: float, accuracy: float) -> dict:
    spec = AttackSpec(attack, eps, steps, step_size, random_start=attack != "fgsm")
    return {**asdict(spec), "accuracy": accuracy, "n": 100}


def write_robustness(run_dir: Path, accuracy: float) -> None:
    """robustness.json: generated corruptions (brightness 5 points below gaussian noise), an official
    one (fog, 50%), FGSM and PGD-10 at 8/255 and PGD-10 at 4/255."""
    generated = [
        corruption_record(
            "generated",
            corruption,
            severity,
            accuracy - 0.1 * severity - (0.05 if corruption == "brightness" else 0.0),
            100,
        )
        for corruption in ("gaussian_noise", "brightness")
        for severity in (1, 2, 3, 4, 5)
    ]
    official = [corruption_record("official", "fog", severity, 0.5, 100) for severity in (1, 2, 3, 4, 5)]
    adversarial = [
        attack_record("fgsm", 1, EPS, EPS, accuracy / 3),
        attack_record("pgd", 10, 2 / 255, EPS, accuracy / 4),
        attack_record("pgd", 10, 1 / 255, 4 / 255, accuracy / 2),
    ]
    record = {
        "clean_accuracy": accuracy,
        "n": 100,
        "seed": 0,
        "forward_dtype": "fp32",
        "corruptions": generated + official,
        "adversarial": adversarial,
        "provenance": dict(zip(("wall_seconds", "cpu_seconds"), STAGE_SECONDS["robustness"], strict=True)),
    }
    save_json(record, run_dir / "robustness.json")


def make_run(
    root: Path,
    dataset: str,
    model: str,
    regularizer: str,
    seed: int,
    accuracy: float,
    *,
    ablation: dict | None = None,
    epochs: int = 3,
    epochs_completed: int | None = None,
    evaluate: bool = True,
    robustness: bool = True,
    seconds: float = 10.0,
    cpu_seconds: float | None = None,
    curve_points: int | None = None,
    **settings: Any,
) -> Path:
    """A run directory in the contract's layout and formats, with known numbers; `settings` are
    TrainConfig fields (reg_options, model_options, lam, limit_test, ...)."""
    run_dir = run_dir_of(root, dataset, model, regularizer, seed, ablation)
    done = epochs if epochs_completed is None else epochs_completed
    cpu = seconds if cpu_seconds is None else cpu_seconds
    config = TrainConfig(model, dataset, regularizer, seed=seed, epochs=epochs, ablation=ablation, **settings)
    save_json(run_record(config, accuracy, done, seconds, cpu), run_dir / "run.json")
    save_csv(
        history_rows(accuracy, regularizer, done, epochs, seconds, cpu),
        HISTORY_COLUMNS,
        run_dir / "history.csv",
    )
    if curve_points is not None:
        rows = history_rows(accuracy, regularizer, done, epochs, seconds, cpu, curve_points)
        save_csv(rows, HISTORY_COLUMNS, run_dir / "curve.csv")
    if evaluate:
        write_evaluation(run_dir, regularizer, seed, accuracy)
        if robustness:
            write_robustness(run_dir, accuracy)
    return run_dir


# accuracies (fractions) per (model, regulariser) and seed: the hand-computed cases use these
ACCURACY = {
    ("resnet20", "none"): {0: 0.90, 1: 0.92, 2: 0.91},
    ("resnet20", "dn_strict"): {0: 0.93, 1: 0.92, 2: 0.94},
    ("resnet20", "fro"): {0: 0.91, 1: 0.93},
    ("resnet56", "none"): {0: 0.80, 1: 0.82},
    ("resnet56", "dn_strict"): {0: 0.83, 1: 0.81},
}
SECONDS = {"none": 10.0, "dn_strict": 22.0, "fro": 15.0}


def build_tree(root: Path, *, robustness: bool = True) -> None:
    """The small grid: cifar10, resnet20 and resnet56, three regularisers, 2-3 seeds, plus ablations."""
    for (model, regularizer), by_seed in ACCURACY.items():
        for seed, accuracy in by_seed.items():
            seconds = SECONDS[regularizer] + (2.0 * seed if regularizer == "none" else 0.0)
            make_run(
                root, "cifar10", model, regularizer, seed, accuracy, robustness=robustness, seconds=seconds
            )
    for value, accuracies in {0.5: (0.90, 0.92), 1.0: (0.95, 0.93)}.items():
        for seed, accuracy in enumerate(accuracies):
            ablation = {"param": "gamma", "value": value}
            make_run(
                root, "cifar10", "resnet20", "dn_relaxed", seed, accuracy, evaluate=False, ablation=ablation
            )


def row(frame: pd.DataFrame, **where) -> pd.Series:
    """The one row of `frame` matching every column = value of `where`."""
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= (frame[key] == value).to_numpy()
    assert mask.sum() == 1, f"expected one row for {where}, found {mask.sum()}"
    return frame[mask].iloc[0]


def read_table(report: dict, name: str) -> pd.DataFrame:
    """A written table's CSV, from the `report` fixture's folder."""
    return pd.read_csv(Path(report["tables"]) / f"{name}.csv")
