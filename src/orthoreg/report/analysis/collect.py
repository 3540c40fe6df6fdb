"""Read run directories into tidy pandas frames (one per kind of result file): a grid's runs, or
every run under a root.

A run is any folder holding run.json; the files beside it (history.csv, curve.csv, eval.json,
layers.csv, spectra.csv, gram.csv, robustness.json) are optional, so partial results still contribute
what they have. Malformed files raise ValueError naming the file, before any table is written.
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
FRAMES = ("history", "curve", "orthogonality", "layers", "spectra", "corruptions", "adversarial")
# the stages after training and the record whose provenance times each
STAGE_RECORDS = {"evaluate": "eval.json", "robustness": "robustness.json"}
# eval.json's feature measures, read beside its `orthogonality` summary
FEATURE_MEASURES = ("effective_rank", "mean_abs_channel_cosine")


@dataclass
class RunData:
    """Every run's results; each frame carries the run keys, the ablation columns and run_dir.

    `history` has one row per epoch (history.csv); `curve` the rows a run records within epochs
    (curve.csv, the same columns with `epoch` as the fraction of epochs trained), where it has them."""

    runs: pd.DataFrame
    history: pd.DataFrame
    curve: pd.DataFrame
    orthogonality: pd.DataFrame
    layers: pd.DataFrame
    spectra: pd.DataFrame
    corruptions: pd.DataFrame
    adversarial: pd.DataFrame
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    expected: list[dict[str, Any]] | None = None  # the grid's runs, when `--expected` names them

    def main(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows of the main grid (not ablations)."""
        if frame.empty:
            return frame
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
    """A setting's value: a number as float, a name (a relaxation rule, a shortcut option) or a flag
    as it is."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def run_settings(record: dict) -> dict[str, Any]:
    """Every setting a run can be matched on, as `setting_<name>` columns: the model's and the
    regulariser's options (as run.json records them, defaults included), lambda, its schedule, epochs,
    include_linear and skip_stem; each ablatable parameter is present (None where it does not apply)."""
    config = record.get("config") or {}
    values: dict[str, Any] = {param: None for param in ABLATION_PARAMS}
    values.update(record.get("model_options") or {})
    values.update(record.get("reg_options") or {})
    values.update(
        {
            "lambda": record.get("lambda"),
            "schedule": record.get("schedule"),
            "epochs": config.get("epochs"),
            "include_linear": config.get("include_linear"),
            "skip_stem": config.get("skip_stem"),
        }
    )
    return {
        f"setting_{name}": _setting(value)
        for name, value in values.items()
        if value is None or isinstance(value, (bool, int, float, str))
    }


def _tag(frame: pd.DataFrame, identity: dict, run_dir: Path) -> pd.DataFrame:
    frame = frame.copy()
    for key, value in identity.items():
        frame[key] = value
    frame["run_dir"] = str(run_dir)
    return frame


def _read_history(path: Path) -> pd.DataFrame | None:
    """history.csv or curve.csv (the same columns), accuracies checked, with test_accuracy_pct."""
    if not path.exists():
        return None
    history = _read_csv(path, HISTORY_REQUIRED)
    _check_fractions(history, "test_accuracy", path)
    return history.assign(test_accuracy_pct=100.0 * history["test_accuracy"])


def _best_epoch(history: pd.DataFrame | None) -> dict[str, Any]:
    """The epoch with the highest per-epoch test accuracy (the first of ties) and that accuracy."""
    if history is None or history.empty:
        return {"best_epoch": None, "best_epoch_accuracy_pct": None}
    best = history["test_accuracy_pct"].idxmax()
    return {
        "best_epoch": int(history.at[best, "epoch"]),
        "best_epoch_accuracy_pct": float(history.at[best, "test_accuracy_pct"]),
    }


def _read_eval(path: Path) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """eval.json's accuracy and n_test, and its near-orthogonality and feature measures as rows."""
    evaluation = _read_json(path)
    if "test_accuracy" not in evaluation:
        raise ValueError(f"{path}: lacks test_accuracy")
    orthogonality = evaluation.get("orthogonality") or {}
    if not isinstance(orthogonality, dict):
        raise ValueError(f"{path}: orthogonality must be an object of measure: value")
    extra = {key: evaluation[key] for key in FEATURE_MEASURES if key in evaluation}
    # measures are floats; integers (layer counts and the like) are bookkeeping, not measures
    rows = [
        {"measure": measure, "source": "eval.json", "value": float(value)}
        for measure, value in {**orthogonality, **extra}.items()
        if isinstance(value, float) and math.isfinite(value)
    ]
    accuracy = _fraction(evaluation["test_accuracy"], f"{path} test_accuracy")
    found = {
        "test_accuracy": accuracy,
        "n_test": evaluation.get("n_test"),
        **_stage_times(evaluation, "evaluate"),
    }
    return found, pd.DataFrame(rows) if rows else None


def _read_results(run_dir: Path, identity: dict, parts: dict[str, list]) -> dict[str, Any]:
    """Read eval.json, layers.csv, spectra.csv and robustness.json into `parts`; return eval.json's
    accuracy and n_test, and the wall and CPU seconds each of the two records' provenance keeps."""
    found: dict[str, Any] = {}
    if (run_dir / "eval.json").exists():
        found, measures = _read_eval(run_dir / "eval.json")
        if measures is not None:
            parts["orthogonality"].append(_tag(measures, identity, run_dir))
    if (run_dir / "layers.csv").exists():
        layers = _read_csv(run_dir / "layers.csv", ())
        parts["layers"].append(_tag(layers.assign(layer_index=range(len(layers))), identity, run_dir))
    if (run_dir / "spectra.csv").exists():
        parts["spectra"].append(_tag(_read_csv(run_dir / "spectra.csv", SPECTRA_REQUIRED), identity, run_dir))
    if (run_dir / "robustness.json").exists():
        found.update(_read_robustness(run_dir / "robustness.json", identity, parts))
    return found


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _stage_times(record: dict, stage: str) -> dict[str, float | None]:
    """The wall and CPU seconds a stage's record keeps in its provenance (None where it predates it)."""
    provenance = record.get("provenance")
    provenance = provenance if isinstance(provenance, dict) else {}
    return {
        f"{stage}_wall_seconds": _seconds(provenance.get("wall_seconds")),
        f"{stage}_cpu_seconds": _seconds(provenance.get("cpu_seconds")),
    }


def _train_times(record: dict) -> dict[str, float | None]:
    """Training's wall seconds and CPU seconds (per epoch times epochs), from run.json."""
    cpu_per_epoch, epochs = _seconds(record.get("cpu_seconds_per_epoch")), record.get("epochs_completed")
    return {
        "train_wall_seconds": _seconds(record.get("wall_seconds")),
        "train_cpu_seconds": None if cpu_per_epoch is None or not epochs else cpu_per_epoch * epochs,
    }


def _read_run(run_dir: Path, identity: dict, record: dict, parts: dict[str, list]) -> dict[str, Any]:
    """Read the optional files of one finished run into `parts`; return its row of the runs frame."""
    history = _read_history(run_dir / "history.csv")
    curve = _read_history(run_dir / "curve.csv")
    for name, frame in (("history", history), ("curve", curve)):
        if frame is not None:
            parts[name].append(_tag(frame, identity, run_dir))
    evaluation = _read_results(run_dir, identity, parts)
    evaluated = "test_accuracy" in evaluation
    accuracy = evaluation.get("test_accuracy")
    if accuracy is None:
        accuracy = _fraction(record["test_accuracy"], f"{run_dir / 'run.json'} test_accuracy")
    return {
        **identity,
        "run_dir": str(run_dir),
        "test_accuracy": accuracy,
        "test_accuracy_pct": 100.0 * accuracy,
        "accuracy_source": "eval.json" if evaluated else "run.json",
        "n_test": evaluation.get("n_test"),
        # the per-epoch test pass (history.csv) uses the first limit_test images, None: all of them
        "history_test_images": (record.get("config") or {}).get("limit_test"),
        **_best_epoch(history),
        "seconds_per_epoch": _per_epoch(record, history, "seconds_per_epoch", "seconds"),
        "cpu_seconds_per_epoch": _per_epoch(record, history, "cpu_seconds_per_epoch", "cpu_seconds"),
        "load_average": record.get("load_average"),
        "epochs_completed": record.get("epochs_completed"),
        "device": str(record.get("device", "unknown")),
        **run_settings(record),
        **_train_times(record),
        **{
            f"{stage}_{kind}_seconds": evaluation.get(f"{stage}_{kind}_seconds")
            for stage in STAGE_RECORDS
            for kind in ("wall", "cpu")
        },
        "has_eval": evaluated,
        "has_robustness": (run_dir / "robustness.json").exists(),
    }


def _records(robustness: dict, key: str, required: tuple[str, ...], path: Path) -> pd.DataFrame:
    frame = pd.DataFrame(robustness.get(key) or [])
    if len(frame):
        missing = [column for column in required if column not in frame.columns]
        if missing:
            raise ValueError(f"{path}: {key} records lack {', '.join(missing)}")
        _check_fractions(frame, "accuracy", path)
    return frame


def _read_robustness(path: Path, identity: dict, parts: dict[str, list]) -> dict[str, float | None]:
    robustness = _read_json(path)
    corruptions = _records(robustness, "corruptions", CORRUPTION_REQUIRED, path)
    if len(corruptions):
        bad = sorted(set(corruptions["source"]) - set(CORRUPTION_SOURCES))
        if bad:
            raise ValueError(f"{path}: corruption source {bad} not one of {', '.join(CORRUPTION_SOURCES)}")
        if not corruptions["severity"].isin(SEVERITIES).all():
            raise ValueError(
                f"{path}: corruption severities {sorted(set(corruptions['severity']))}; need {SEVERITIES}"
            )
        parts["corruptions"].append(_tag(corruptions, identity, path.parent))
    adversarial = _records(robustness, "adversarial", ADVERSARIAL_REQUIRED, path)
    if len(adversarial):
        bad = sorted(set(adversarial["attack"]) - set(available_attacks()))
        if bad:
            raise ValueError(f"{path}: attack {bad} not one of {', '.join(available_attacks())}")
        clean = robustness.get("clean_accuracy")
        if clean is not None:
            row = {"attack": "clean", "steps": 0, "eps": 0.0, "accuracy": _fraction(clean, f"{path} clean")}
            adversarial = pd.concat([pd.DataFrame([row]), adversarial], ignore_index=True)
        parts["adversarial"].append(_tag(adversarial, identity, path.parent))
    return _stage_times(robustness, "robustness")


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
    parts: dict[str, list] = {name: [] for name in FRAMES}
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
