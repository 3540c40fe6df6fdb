"""Read run directories into tidy pandas frames (one per kind of result file): a grid's runs, or
every run under a root.

A run is any folder holding run.json; the files beside it (history.csv, eval.json, layers.csv,
spectra.csv, robustness.json, model.pt) are optional, so partial results still contribute what they
have. Malformed files raise ValueError naming the file, before any table is written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from orthoreg.config import ABLATION_PARAMS
from orthoreg.robustness import SEVERITIES, available_attacks

KEYS = ["dataset", "model", "regularizer", "seed"]
ABLATION_KEYS = ["ablation_param", "ablation_value"]
RUN_JSON_REQUIRED = ("model", "dataset", "regularizer", "seed")
HISTORY_REQUIRED = ("epoch", "test_accuracy", "reg_value")
SPECTRA_REQUIRED = ("layer", "index", "singular_value")
CORRUPTION_REQUIRED = ("source", "corruption", "severity", "accuracy")
ADVERSARIAL_REQUIRED = ("attack", "steps", "eps", "accuracy")
CORRUPTION_SOURCES = ("official", "generated")


@dataclass
class RunData:
    """Every run's results; each frame carries the run keys, the ablation columns and run_dir."""

    runs: pd.DataFrame
    history: pd.DataFrame
    orthogonality: pd.DataFrame
    layers: pd.DataFrame
    spectra: pd.DataFrame
    corruptions: pd.DataFrame
    adversarial: pd.DataFrame
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    expected: list[dict[str, Any]] | None = None  # the grid's runs, when `--expected` names them

    def main(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows of the main grid (not ablations)."""
        return frame[frame["ablation_param"].isna()].reset_index(drop=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except pd.errors.ParserError as error:
        raise ValueError(f"{path}: not a valid CSV file ({error})") from error
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"{path}: empty file; expected columns {', '.join(required)}") from error
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(missing)}; has {', '.join(frame.columns)}")
    return frame


def _fraction(value: Any, where: str) -> float:
    """An accuracy read from a file: a finite fraction in [0, 1] (percentages are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: accuracy {value!r} is not a finite number")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{where}: accuracy {value!r} outside [0, 1]; files store fractions, not percent")
    return float(value)


def _check_fractions(frame: pd.DataFrame, column: str, path: Path) -> None:
    for value in frame[column]:
        _fraction(value, f"{path} column {column}")


def discover_runs(runs_root: Path, expected: list[dict[str, Any]] | None = None) -> list[Path]:
    """The run directories to read, in a stable order: with `expected` (a grid), its runs under
    runs_root that hold a run.json, so runs of other configs or recipes in the same folder stay out;
    without it, every directory under runs_root that holds a run.json."""
    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        raise FileNotFoundError(f"runs root {runs_root} is not a directory; pass the results folder")
    if expected is None:
        return sorted(path.parent for path in runs_root.rglob("run.json"))
    root = runs_root.resolve()
    directories = (Path(record["run_dir"]) for record in expected)
    return sorted(
        directory
        for directory in directories
        if directory.resolve().is_relative_to(root) and (directory / "run.json").is_file()
    )


def _run_identity(record: dict, path: Path) -> dict[str, Any]:
    missing = [key for key in RUN_JSON_REQUIRED if key not in record]
    if missing:
        raise ValueError(f"{path}: run.json lacks {', '.join(missing)}")
    seed = record["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{path}: seed {seed!r} is not an integer")
    ablation = record.get("ablation")
    if ablation is not None and (not isinstance(ablation, dict) or {"param", "value"} - set(ablation)):
        raise ValueError(f"{path}: ablation {ablation!r} must be null or {{param, value}}")
    return {
        "dataset": str(record["dataset"]),
        "model": str(record["model"]),
        "regularizer": str(record["regularizer"]),
        "seed": seed,
        "ablation_param": None if ablation is None else str(ablation["param"]),
        "ablation_value": None if ablation is None else _setting(ablation["value"]),
    }


def _completion(record: dict) -> str | None:
    """Why a run cannot count as finished (None when it can)."""
    if record.get("test_accuracy") is None:
        return "run.json has no test_accuracy (training not finished)"
    planned = (record.get("config") or {}).get("epochs")
    done = record.get("epochs_completed")
    if planned is not None and done is not None and done < planned:
        return f"trained {done} of {planned} epochs"
    return None


def _per_epoch(record: dict, history: pd.DataFrame | None, key: str, column: str) -> float | None:
    """run.json's `key` when it is a positive number, else the mean of history.csv's `column`."""
    value = record.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if history is not None and column in history.columns and len(history):
        return float(history[column].mean())
    return None


def _setting(value: Any) -> Any:
    """An ablated value: a number as float, a rule name (relaxation) as it is."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _settings(record: dict) -> dict[str, Any]:
    """The value each ablatable setting had in this run (`setting_rho`, ...), None where it does not apply."""
    options = record.get("reg_options") or {}
    values = {param: options.get(param) for param in ABLATION_PARAMS}
    values["lambda"] = record.get("lambda")
    return {f"setting_{param}": _setting(value) for param, value in values.items()}


def _tag(frame: pd.DataFrame, identity: dict, run_dir: Path) -> pd.DataFrame:
    frame = frame.copy()
    for key, value in identity.items():
        frame[key] = value
    frame["run_dir"] = str(run_dir)
    return frame


def _read_run(run_dir: Path, identity: dict, record: dict, parts: dict[str, list]) -> dict[str, Any]:
    """Read the optional files of one finished run into `parts`; return its row of the runs frame."""
    history = None
    if (run_dir / "history.csv").exists():
        history = _read_csv(run_dir / "history.csv", HISTORY_REQUIRED)
        _check_fractions(history, "test_accuracy", run_dir / "history.csv")
        history = history.assign(test_accuracy_pct=100.0 * history["test_accuracy"])
        parts["history"].append(_tag(history, identity, run_dir))

    accuracy = _fraction(record["test_accuracy"], f"{run_dir / 'run.json'} test_accuracy")
    accuracy_source, n_test = "run.json", None
    eval_path = run_dir / "eval.json"
    if eval_path.exists():
        evaluation = _read_json(eval_path)
        if "test_accuracy" not in evaluation:
            raise ValueError(f"{eval_path}: lacks test_accuracy")
        accuracy = _fraction(evaluation["test_accuracy"], f"{eval_path} test_accuracy")
        accuracy_source = "eval.json"
        n_test = evaluation.get("n_test")
        orthogonality = evaluation.get("orthogonality") or {}
        if not isinstance(orthogonality, dict):
            raise ValueError(f"{eval_path}: orthogonality must be an object of measure: value")
        # measures are floats; integers (layer counts and the like) are bookkeeping, not measures
        extra = {
            key: evaluation[key] for key in ("effective_rank", "mean_abs_channel_cosine") if key in evaluation
        }
        rows = [
            {"measure": measure, "source": "eval.json", "value": float(value)}
            for measure, value in {**orthogonality, **extra}.items()
            if isinstance(value, float) and math.isfinite(value)
        ]
        if rows:
            parts["orthogonality"].append(_tag(pd.DataFrame(rows), identity, run_dir))

    if (run_dir / "layers.csv").exists():
        layers = _read_csv(run_dir / "layers.csv", ())
        layers = layers.assign(layer_index=range(len(layers)))
        parts["layers"].append(_tag(layers, identity, run_dir))

    if (run_dir / "spectra.csv").exists():
        spectra = _read_csv(run_dir / "spectra.csv", SPECTRA_REQUIRED)
        parts["spectra"].append(_tag(spectra, identity, run_dir))

    robustness_path = run_dir / "robustness.json"
    if robustness_path.exists():
        _read_robustness(robustness_path, identity, parts)

    return {
        **identity,
        "run_dir": str(run_dir),
        "test_accuracy": accuracy,
        "test_accuracy_pct": 100.0 * accuracy,
        "accuracy_source": accuracy_source,
        "n_test": n_test,
        "seconds_per_epoch": _per_epoch(record, history, "seconds_per_epoch", "seconds"),
        "cpu_seconds_per_epoch": _per_epoch(record, history, "cpu_seconds_per_epoch", "cpu_seconds"),
        "load_average": record.get("load_average"),
        "shortcut": (record.get("model_options") or {}).get("shortcut"),
        "epochs_completed": record.get("epochs_completed"),
        "device": str(record.get("device", "unknown")),
        **_settings(record),
        "has_eval": eval_path.exists(),
        "has_robustness": robustness_path.exists(),
        "has_model": (run_dir / "model.pt").exists(),
    }


def _read_robustness(path: Path, identity: dict, parts: dict[str, list]) -> None:
    robustness = _read_json(path)
    corruptions = pd.DataFrame(robustness.get("corruptions") or [])
    if len(corruptions):
        missing = [column for column in CORRUPTION_REQUIRED if column not in corruptions.columns]
        if missing:
            raise ValueError(f"{path}: corruption records lack {', '.join(missing)}")
        bad = sorted(set(corruptions["source"]) - set(CORRUPTION_SOURCES))
        if bad:
            raise ValueError(f"{path}: corruption source {bad} not one of {', '.join(CORRUPTION_SOURCES)}")
        if not corruptions["severity"].isin(SEVERITIES).all():
            raise ValueError(
                f"{path}: corruption severities {sorted(set(corruptions['severity']))}; need {SEVERITIES}"
            )
        _check_fractions(corruptions, "accuracy", path)
        parts["corruptions"].append(_tag(corruptions, identity, path.parent))
    adversarial = pd.DataFrame(robustness.get("adversarial") or [])
    if len(adversarial):
        missing = [column for column in ADVERSARIAL_REQUIRED if column not in adversarial.columns]
        if missing:
            raise ValueError(f"{path}: adversarial records lack {', '.join(missing)}")
        bad = sorted(set(adversarial["attack"]) - set(available_attacks()))
        if bad:
            raise ValueError(f"{path}: attack {bad} not one of {', '.join(available_attacks())}")
        _check_fractions(adversarial, "accuracy", path)
        clean = robustness.get("clean_accuracy")
        if clean is not None:
            row = {"attack": "clean", "steps": 0, "eps": 0.0, "accuracy": _fraction(clean, f"{path} clean")}
            adversarial = pd.concat([pd.DataFrame([row]), adversarial], ignore_index=True)
        parts["adversarial"].append(_tag(adversarial, identity, path.parent))


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    columns = [*KEYS, *ABLATION_KEYS, "run_dir"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def _check_duplicates(rows: list[dict]) -> None:
    seen: dict[tuple, str] = {}
    for row in rows:
        key = tuple(row[column] for column in [*KEYS, *ABLATION_KEYS])
        if key in seen:
            raise ValueError(
                f"two runs share dataset/model/regularizer/seed/ablation {key}: {seen[key]} and "
                f"{row['run_dir']}; point --runs at one set of results"
            )
        seen[key] = row["run_dir"]


def load_runs(runs_root: Path, expected: list[dict[str, Any]] | None = None) -> RunData:
    """Read the runs under runs_root (only the grid's, when `expected` names them); unfinished runs
    are kept aside in `incomplete`, not averaged. `expected` is kept for the missing-runs table."""
    parts: dict[str, list] = {
        name: [] for name in ("history", "orthogonality", "layers", "spectra", "corruptions", "adversarial")
    }
    rows, incomplete = [], []
    for run_dir in discover_runs(runs_root, expected):
        record = _read_json(run_dir / "run.json")
        if not isinstance(record, dict):
            raise ValueError(f"{run_dir / 'run.json'}: expected a JSON object")
        identity = _run_identity(record, run_dir)
        reason = _completion(record)
        if reason is not None:
            incomplete.append({**identity, "run_dir": str(run_dir), "reason": reason})
            continue
        rows.append(_read_run(run_dir, identity, record, parts))
    _check_duplicates(rows)
    runs = pd.DataFrame(rows) if rows else pd.DataFrame(columns=[*KEYS, *ABLATION_KEYS, "run_dir"])
    return RunData(
        runs=runs,
        incomplete=incomplete,
        expected=expected,
        **{name: _concat(frames) for name, frames in parts.items()},
    )
