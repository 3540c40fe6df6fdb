"""Atomic file writes and the random-number state a bit-exact resume needs.

Every file a run writes goes to a temporary file in the same folder and is then renamed over the
target, so a kill at any instant leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def save_torch(obj: Any, path: str | os.PathLike[str]) -> None:
    """torch.save, atomically."""
    _atomic_write(Path(path), lambda stream: torch.save(obj, stream))


def save_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """JSON with a trailing newline, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    _atomic_write(Path(path), lambda stream: stream.write(text.encode()))


def save_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], path: str | os.PathLike[str]) -> None:
    """A CSV with a header row, atomically; `rows` must hold every column."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: row[column] for column in columns})
    _atomic_write(Path(path), lambda stream: stream.write(buffer.getvalue().encode()))


def load_torch(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """torch.load with weights_only=True; a torn or foreign file becomes a ValueError naming it."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for a corrupt file
        raise ValueError(f"cannot read {path}: {error}") from error


def capture_rng_state() -> dict[str, Any]:
    """Every global random state training may draw from, in a form `weights_only` loading accepts."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put back what `capture_rng_state` saved."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
