"""The one way orthoreg downloads a file and checks it: datasets (CIFAR, Fashion-MNIST) and the
official CIFAR-C archives all come through here.

A download streams into a temporary file beside its target and is renamed into place only after its
checksum matched, so the target never holds a partial or unverified file; a file already at the
target (placed there by hand) is verified and used, never overwritten.
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

from orthoreg.files import atomic_write, file_digest

BLOCK = 1 << 20


def verify_md5(path: Path, md5: str, origin: str, remedy: str) -> None:
    """ValueError naming the file (`origin`), both digests and the `remedy` unless `path` has MD5 `md5`."""
    actual = file_digest(path, "md5")
    if actual != md5:
        raise ValueError(f"checksum mismatch for {origin}: MD5 {actual}, expected {md5}; {remedy}")


def download(url: str, path: Path, *, md5: str | None = None) -> Path:
    """Fetch `url` to `path` atomically, checking `md5` (when given) before the file appears."""

    def fetch(temporary: Path) -> None:
        try:
            with urllib.request.urlopen(url) as response, open(temporary, "wb") as stream:
                shutil.copyfileobj(response, stream, length=BLOCK)
        except OSError as error:
            raise RuntimeError(
                f"could not download {url}: {error}; place the file at {path} by hand and rerun"
            ) from error
        if md5 is not None:
            verify_md5(
                temporary,
                md5,
                f"{path.name} downloaded from {url}",
                "nothing was kept, rerun to download again",
            )

    return atomic_write(path, fetch)


def fetch_verified(url: str, path: Path, md5: str) -> Path:
    """`path` verified against `md5`: a file already there is checked (a mismatch names it and says to
    delete it), otherwise `url` is downloaded to it."""
    if path.exists():
        remedy = f"the file is corrupt or not the official one: delete it and rerun to download {url}"
        verify_md5(path, md5, str(path), remedy)
        return path
    return download(url, path, md5=md5)
