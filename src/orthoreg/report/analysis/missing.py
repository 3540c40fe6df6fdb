"""Runs an expected grid names that are absent, unfinished, not evaluated or outside --runs, so a
partial report says what it lacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from orthoreg.report.analysis.collect import RunData

EXPECTED_KEYS = ("dataset", "model", "regularizer", "seed", "run_dir")
MISSING_COLUMNS = ["dataset", "model", "regularizer", "seed", "ablation", "run_dir", "status", "reason"]


def read_expected(expected: Path | str | list[dict]) -> list[dict[str, Any]]:
    """The expected-run records (a JSON file path or the list itself), validated before any work."""
    if isinstance(expected, (str, Path)):
        path = Path(expected)
        if not path.is_file():
            raise FileNotFoundError(f"--expected file {path} does not exist")
        try:
            records = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"--expected {path}: not valid JSON ({error})") from error
    else:
        records = expected
    if not isinstance(records, list):
        raise ValueError(
            f"expected runs must be a JSON list of {{{', '.join(EXPECTED_KEYS)}}}, "
            f"got {type(records).__name__}"
        )
    for position, record in enumerate(records):
        if not isinstance(record, dict) or set(EXPECTED_KEYS) - set(record):
            lacking = sorted(set(EXPECTED_KEYS) - set(record)) if isinstance(record, dict) else EXPECTED_KEYS
            raise ValueError(
                f"expected run #{position} {record!r} lacks {', '.join(lacking)}; each record "
                f"needs {', '.join(EXPECTED_KEYS)}"
            )
    return records


def _resolve(run_dir: str) -> Path:
    """run_dir as written by orthoreg.grid: absolute, or relative to the working directory."""
    return Path(run_dir).resolve()


def missing_runs(expected: list[dict[str, Any]], data: RunData) -> pd.DataFrame:
    """One row per expected run that is absent, unfinished, not evaluated or outside --runs."""
    loaded = {Path(run_dir).resolve() for run_dir in data.runs.get("run_dir", [])}
    unfinished = {Path(item["run_dir"]).resolve(): item["reason"] for item in data.incomplete}
    rows = []
    for record in expected:
        run_dir = _resolve(str(record["run_dir"]))
        if not (run_dir / "run.json").exists():
            status, reason = "absent", "no run.json (not trained)"
        elif run_dir in unfinished:
            status, reason = "incomplete", unfinished[run_dir]
        elif run_dir not in loaded:
            status, reason = "outside --runs", "run.json exists but is not under the --runs folder"
        elif not (run_dir / "eval.json").exists():
            status, reason = "incomplete", "no eval.json (run `orthoreg evaluate`)"
        else:
            continue
        ablation = record.get("ablation")
        rows.append(
            {
                "dataset": record["dataset"],
                "model": record["model"],
                "regularizer": record["regularizer"],
                "seed": record["seed"],
                "ablation": "" if not ablation else f"{ablation.get('param')}={ablation.get('value')}",
                "run_dir": str(record["run_dir"]),
                "status": status,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=MISSING_COLUMNS)
