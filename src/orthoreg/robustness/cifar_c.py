"""The official CIFAR-10-C and CIFAR-100-C files (Hendrycks & Dietterich, 2019).

Each archive from Zenodo extracts to a folder holding `<corruption>.npy`, a uint8 array
(5 * n, 32, 32, 3): the n test images at severity 1, then severity 2, ... 5, and `labels.npy` with the
5 * n matching labels. The archive's MD5 is checked before anything is extracted; an archive or
.npy file that cannot be read is a one-line ValueError naming it and how to fetch it again.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from orthoreg.data.download import download, verify_md5
from orthoreg.files import remove_stale_temporaries, temporary_prefix
from orthoreg.robustness.corruptions import SEVERITIES


@dataclass(frozen=True)
class Archive:
    folder: str  # the folder the tar extracts to
    url: str
    md5: str


ARCHIVES = {
    "cifar10": Archive(
        "CIFAR-10-C",
        "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar?download=1",
        "56bf5dcef84df0e2308c6dcbcbbd8499",
    ),
    "cifar100": Archive(
        "CIFAR-100-C",
        "https://zenodo.org/records/3555552/files/CIFAR-100-C.tar?download=1",
        "11f0ed0f1191edbf9fa23466ae6021d3",
    ),
}

# the 15 corruptions of the benchmark, then the 4 held-out ones the archives also hold
BENCHMARK_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
OFFICIAL_CORRUPTIONS = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS


def official_folder(root: str | os.PathLike[str], dataset: str) -> Path | None:
    """root/CIFAR-10-C (or CIFAR-100-C) when it holds labels.npy; None for other datasets or when absent."""
    archive = ARCHIVES.get(dataset)
    if archive is None:
        return None
    folder = Path(root) / archive.folder
    return folder if (folder / "labels.npy").is_file() else None


def present_corruptions(folder: str | os.PathLike[str]) -> list[str]:
    """The official corruptions whose .npy file is in `folder`, in the benchmark's order."""
    return [name for name in OFFICIAL_CORRUPTIONS if (Path(folder) / f"{name}.npy").is_file()]


def _safe_extract(archive: tarfile.TarFile, destination: Path) -> None:
    """Extract refusing absolute paths, '..' and links out of the folder."""
    if hasattr(tarfile, "data_filter"):
        archive.extractall(destination, filter="data")
        return
    root = destination.resolve()
    for member in archive.getmembers():
        target = (destination / member.name).resolve()
        if (root not in target.parents and target != root) or member.issym() or member.islnk():
            raise ValueError(f"refusing archive member {member.name!r}: it points outside {destination}")
    archive.extractall(destination)


def install_archive(
    tar_path: str | os.PathLike[str], root: str | os.PathLike[str], dataset: str, md5: str | None = None
) -> Path:
    """Check the tar's MD5 (default: the published one), then extract its folder into root atomically."""
    archive = _archive(dataset)
    expected = md5 or archive.md5
    remedy = f"{tar_path} does not match the published {expected}; delete it and download again"
    verify_md5(Path(tar_path), expected, str(tar_path), remedy)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / archive.folder
    remove_stale_temporaries(target)  # what an extraction killed before left
    staging = Path(tempfile.mkdtemp(dir=root, prefix=temporary_prefix(target), suffix=".tmp"))
    try:
        _extract(Path(tar_path), staging)
        extracted = staging / archive.folder
        if not (extracted / "labels.npy").is_file():
            raise ValueError(f"{tar_path} holds no {archive.folder}/labels.npy; not a CIFAR-C archive")
        if target.exists():
            shutil.rmtree(target)
        os.replace(extracted, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract(tar_path: Path, staging: Path) -> None:
    """Extract the (verified) tar into `staging`, a folder of the root; a corrupt tar is a ValueError,
    a write that fails without naming a file (a full disk) an OSError naming the root."""
    try:
        with tarfile.open(tar_path) as tar:
            _safe_extract(tar, staging)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise ValueError(
            f"{tar_path} is corrupt, truncated or not the official archive"
            f" ({str(error) or type(error).__name__}); delete it and download it again"
        ) from error
    except OSError as error:
        if error.filename is not None or error.errno is None:
            raise
        raise OSError(
            error.errno, f"{error.strerror} while extracting {tar_path}", str(staging.parent)
        ) from error


def download_cifar_c(
    dataset: str, root: str | os.PathLike[str], *, url: str | None = None, md5: str | None = None
) -> Path:
    """Download, verify and extract the official archive of `dataset` under root (once)."""
    archive = _archive(dataset)
    present = official_folder(root, dataset)
    if present is not None:
        return present
    tar_path = download(url or archive.url, Path(root) / f"{archive.folder}.tar")
    try:
        return install_archive(tar_path, root, dataset, md5)
    finally:
        tar_path.unlink(missing_ok=True)


def _archive(dataset: str) -> Archive:
    if dataset not in ARCHIVES:
        raise ValueError(
            f"no official corruption set for dataset {dataset!r}; official: {', '.join(ARCHIVES)}"
        )
    return ARCHIVES[dataset]


def _open_npy(path: Path) -> np.ndarray:
    """`path` memory-mapped; a truncated or corrupt .npy is a ValueError naming it (numpy's own message
    advises loading unsafely, so it is left out)."""
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, EOFError) as error:
        raise ValueError(
            f"{path} is corrupt or truncated (not a readable .npy array); delete {path.parent} and rerun"
            f" with --cifar-c-dir {path.parent.parent} --download to fetch the official files again"
        ) from error


def load_official(
    folder: str | os.PathLike[str], corruption: str, severity: int, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `limit` images of one corruption at one severity: uint8 (N, C, H, W), int64 labels."""
    if corruption not in OFFICIAL_CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}; valid: {', '.join(OFFICIAL_CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    folder = Path(folder)
    path = folder / f"{corruption}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; present: {', '.join(present_corruptions(folder))}")
    images, labels = _open_npy(path), _open_npy(folder / "labels.npy")
    if (
        images.ndim != 4
        or images.dtype != np.uint8
        or images.shape[0] % len(SEVERITIES)
        or images.shape[3] not in (1, 3)
    ):
        raise ValueError(f"{path}: expected uint8 (5 * n, H, W, C), got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{folder / 'labels.npy'}: shape {labels.shape}, expected ({images.shape[0]},)")
    per_severity = images.shape[0] // len(SEVERITIES)
    count = per_severity if limit is None else min(limit, per_severity)
    start = (severity - 1) * per_severity
    block = np.array(images[start : start + count])  # a writable copy out of the memory map
    chosen = np.array(labels[start : start + count], dtype=np.int64)
    return torch.from_numpy(block).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(chosen)
