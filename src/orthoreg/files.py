"""Atomic file writes and file digests: every file orthoreg writes appears whole or not at all.

A writer fills a temporary file in the target's folder, flushes it to disk and renames it over the
target, so a kill at any instant leaves the old file or the new one, never a torn one. Everything
that writes a result, a checkpoint, a table, a figure or a download goes through `atomic_write`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

PathLike = str | os.PathLike[str]
# mkstemp creates files readable by their owner only; written files get the usual umask permissions
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: PathLike, write: Callable[[Path], object]) -> Path:
    """Call `write(temporary)` on a temporary file beside `path`, then rename it over `path`; on any
    error (or a verification `write` raises) the temporary file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_UMASK)
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def save_bytes(content: bytes, path: PathLike) -> Path:
    return atomic_write(path, lambda temporary: temporary.write_bytes(content))


def save_text(text: str, path: PathLike) -> Path:
    return save_bytes(text.encode(), path)


def save_json(obj: Any, path: PathLike) -> Path:
    """JSON with a trailing newline; NaN and infinity are refused (they are not JSON)."""
    return save_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", path)


def save_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], path: PathLike) -> Path:
    """A CSV with a header row; `rows` must hold every column."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: row[column] for column in columns})
    return save_text(buffer.getvalue(), path)


def save_torch(obj: Any, path: PathLike) -> Path:
    return atomic_write(path, lambda temporary: torch.save(obj, temporary))


def load_torch(path: PathLike, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with weights_only=True; a torn or foreign file becomes a ValueError naming it."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for a corrupt file
        raise ValueError(f"cannot read {path}: {error}") from error


def file_digest(path: PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
