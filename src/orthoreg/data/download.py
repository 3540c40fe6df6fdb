"""The one way orthoreg downloads a file and checks it: datasets (CIFAR, Fashion-MNIST) and the
official CIFAR-C archives all come through here.

A download streams into a temporary file beside its target and is renamed into place only after its
checksum matched, so the target never holds a partial or unverified file; a file already at the
target (placed there by hand) is verified and used, never overwritten.
"""

from __future__ import annotations

import http.client
import urllib.request
from pathlib import Path
from typing import BinaryIO

from orthoreg.files import atomic_write, file_digest

BLOCK = 1 << 20


def verify_md5(path: Path, md5: str, origin: str, remedy: str) -> None:
    """ValueError naming the file (`origin`), both digests and the `remedy` unless `path` has MD5 `md5`."""
    actual = file_digest(path, "md5")
    if actual != md5:
        raise ValueError(f"checksum mismatch for {origin}: MD5 {actual}, expected {md5}; {remedy}")


def download(url: str, path: Path, *, md5: str | None = None) -> Path:
    """Fetch `url` to `path` atomically, checking `md5` (when given) before the file appears. A
    network failure is a RuntimeError naming the URL; a local one (a full disk) an OSError naming
    `path`."""

    def fetch(temporary: Path) -> None:
        with _open_url(url, path) as response, open(temporary, "wb") as stream:
            while block := _read(response, url, path):
                stream.write(block)
        if md5 is not None:
            verify_md5(
                temporary,
                md5,
                f"{path.name} downloaded from {url}",
                "nothing was kept, rerun to download again",
            )

    return atomic_write(path, fetch)


def _unreachable(url: str, path: Path, error: Exception) -> RuntimeError:
    return RuntimeError(f"could not download {url}: {error}; place the file at {path} by hand and rerun")


def _open_url(url: str, path: Path) -> BinaryIO:
    try:
        return urllib.request.urlopen(url)
    except (OSError, http.client.HTTPException) as error:
        raise _unreachable(url, path, error) from error


def _read(response: BinaryIO, url: str, path: Path) -> bytes:
    try:
        return response.read(BLOCK)
    except (OSError, http.client.HTTPException) as error:  # the connection dropped mid-transfer
        raise _unreachable(url, path, error) from error


def prepare_command(directory: Path) -> str:
    """The command that fetches again the dataset whose files are in `directory` (root/<name>)."""
    return f"`orthoreg prepare-data --dataset {directory.name} --data-dir {directory.parent}`"


def fetch_verified(url: str, path: Path, md5: str, *, rerun: str | None = None) -> Path:
    """`path` verified against `md5`: a file already there is checked (a mismatch names it and says to
    delete it and `rerun`, by default the prepare-data command of the dataset folder holding it),
    otherwise `url` is downloaded to it."""
    rerun = rerun or prepare_command(path.parent)
    if path.exists():
        remedy = (
            f"the file is corrupt, truncated or not the official one: delete it and rerun {rerun} to"
            f" download it again from {url}"
        )
        verify_md5(path, md5, str(path), remedy)
        return path
    return download(url, path, md5=md5)
