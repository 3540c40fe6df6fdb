"""Atomic file writes and file digests: every file orthoreg writes appears whole or not at all.

A writer fills a temporary file in the target's folder, flushes it to disk and renames it over the
target, so a kill at any instant leaves the old file or the new one, never a torn one. Everything
that writes a result, a checkpoint, a table, a figure or a download goes through `atomic_write`.
A temporary file (or folder: a CIFAR-C extraction) is named after its target and its writer
(`.model.pt.<pid>@<host>.<random>.tmp`), so the next write of the same target removes what a killed
writer left behind.
"""

from __future__ import annotations

import csv
import errno
import glob
import hashlib
import io
import json
import os
import pickle
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

PathLike = str | os.PathLike[str]
# mkstemp creates files readable by their owner only; written files get the usual umask permissions
_UMASK = os.umask(0)
os.umask(_UMASK)
# a temporary file of another machine (a shared file system) is stale once untouched this long
STALE_AFTER_S = 3600.0
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def atomic_write(path: PathLike, write: Callable[[Path], object]) -> Path:
    """Call `write(temporary)` on a temporary file beside `path`, then rename it over `path`; on any
    error (or a verification `write` raises) the temporary file is removed and `path` is untouched.
    A full disk is an OSError that says so and names `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
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
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.errno in DISK_FULL:
            words = f"no space left on device while writing {path} (left as it was); free space and run again"
            raise OSError(error.errno, words, str(path)) from error
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def temporary_prefix(path: Path) -> str:
    """How the name of a temporary file or folder for `path` begins: `.<name>.<pid>@<host>.`"""
    return f".{path.name}.{os.getpid()}@{socket.gethostname()}."


def remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files and folders a killed writer of `path` left: those of a process of
    this machine that no longer runs, and those of another machine untouched for an hour."""
    prefix, host = f".{path.name}.", socket.gethostname()
    for temporary in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        # the rest of the name is <pid>@<host>.<random>.tmp
        writer = temporary.name[len(prefix) :].removesuffix(".tmp").rpartition(".")[0]
        pid, _, writer_host = writer.partition("@")
        if not pid.isdigit():
            continue
        try:
            if writer_host == host:
                stale = not _process_runs(int(pid))
            else:
                stale = time.time() - temporary.stat().st_mtime > STALE_AFTER_S
            if stale and temporary.is_dir():
                shutil.rmtree(temporary)
            elif stale:
                temporary.unlink()
        except FileNotFoundError:  # its writer finished or removed it meanwhile
            continue


def _process_runs(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


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


def save_torch(obj: Any, path: PathLike) -> str:
    """torch.save `obj` to `path` and return the SHA-256 of the bytes written. The object is
    serialised in memory, so Python's own I/O writes it (a full disk is an OSError naming the file,
    where torch's writer says "unexpected pos") and the digest costs no second read."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    content = buffer.getvalue()
    save_bytes(content, path)
    return hashlib.sha256(content).hexdigest()


def load_torch(
    path: PathLike,
    map_location: str | torch.device = "cpu",
    *,
    sha256: str | None = None,
    remedy: str = "",
) -> Any:
    """torch.load with weights_only=True. `sha256`, recorded when the file was written, is checked
    first, so one changed byte is refused; a torn, corrupt or foreign file is a ValueError naming it
    and `remedy` (torch's own message advises loading unsafely)."""
    path = Path(path)
    tail = f"; {remedy}" if remedy else ""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist{tail}")
    content = path.read_bytes()
    if sha256 is not None and (actual := hashlib.sha256(content).hexdigest()) != sha256:
        raise ValueError(
            f"{path} has changed since it was written (SHA-256 {actual[:12]}..., recorded "
            f"{sha256[:12]}...){tail}"
        )
    try:
        return torch.load(io.BytesIO(content), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights_only" in str(error):
            raise ValueError(
                f"{path} holds objects other than tensors and plain values; orthoreg does "
                f"not load those, as loading them could run code{tail}"
            ) from None
        raise ValueError(f"{path} is corrupt (its contents cannot be unpickled){tail}") from None
    except Exception:  # torch raises RuntimeError, EOFError, ... for a torn file
        raise ValueError(f"{path} is truncated or corrupt (not a readable PyTorch file){tail}") from None


def file_digest(path: PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
