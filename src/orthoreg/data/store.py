"""Prepared datasets on disk: each is fetched and verified once (`orthoreg prepare-data`, the
pipeline's `data` rule) and stored as uint8 tensors in root/<name>/{train,test}.pt beside a
prepared.json marker holding their SHA-256s. Training jobs only read these files, so they never
download concurrently; the marker is written last, so a dataset is either prepared or absent, and
every read checks a split against its SHA-256 (what that costs: benchmarks/verification.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from orthoreg.data.registry import DatasetInfo, Split, get_dataset
from orthoreg.files import PathLike, file_digest, load_torch, save_json, save_torch

SPLITS = ("train", "test")
MARKER = "prepared.json"


def marker_path(root: PathLike, name: str) -> Path:
    return Path(root) / name / MARKER


def prepare_dataset(name: str, root: PathLike) -> Path:
    """Fetch, verify and store a dataset once; later calls check the stored files and return."""
    dataset = get_dataset(name)
    directory = Path(root) / name
    marker = marker_path(root, name)
    if marker.exists() and stored_files_match(directory, json.loads(marker.read_text())):
        return marker
    directory.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    splits = dataset.fetch(directory)
    record: dict[str, object] = {"info": asdict(dataset.info), "files": {}}
    for split, (images, labels) in zip(SPLITS, splits):
        check_split(dataset.info, split, images, labels)
        sha256 = save_torch(
            {"images": images.contiguous(), "labels": labels.contiguous()}, directory / f"{split}.pt"
        )
        record["files"][split] = {"sha256": sha256, "count": int(labels.numel())}  # type: ignore[index]
    save_json(record, marker)
    return marker


def check_split(info: DatasetInfo, split: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    shape = (info.in_channels, info.image_size, info.image_size)
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != shape or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{info.name} {split}: got images {tuple(images.shape)} {images.dtype} and {labels.shape[0]} labels,"
            f" expected uint8 [N, {shape[0]}, {shape[1]}, {shape[2]}] with one label each"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= info.num_classes):
        raise ValueError(f"{info.name} {split}: labels outside [0, {info.num_classes})")


def stored_files_match(directory: Path, record: dict) -> bool:
    files = record.get("files", {})
    return all(
        (directory / f"{split}.pt").exists()
        and file_digest(directory / f"{split}.pt") == files.get(split, {}).get("sha256")
        for split in SPLITS
    )


def check_prepared(name: str, root: PathLike) -> None:
    """FileNotFoundError naming the `orthoreg prepare-data` command unless `name` is prepared in root."""
    get_dataset(name)
    if not marker_path(root, name).is_file():
        raise FileNotFoundError(
            f"dataset {name!r} is not prepared under {str(root)!r} (no {marker_path(root, name)}); run "
            f"`orthoreg prepare-data --dataset {name} --data-dir {root}` first"
        )


def _recorded_digest(name: str, root: PathLike, split: str) -> str:
    marker = marker_path(root, name)
    try:
        return json.loads(marker.read_text())["files"][split]["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(
            f"{marker} is not a prepared-dataset record; run `orthoreg prepare-data --dataset {name} "
            f"--data-dir {root}`, which prepares it again"
        ) from None


def load_split(name: str, root: PathLike, split: str, limit: int | None = None) -> Split:
    """The stored (images uint8 [N,C,H,W], labels int64 [N]) of a prepared dataset, checked against
    the SHA-256 prepared.json recorded (a changed byte is refused); `limit` keeps the first N, the
    same for every run."""
    get_dataset(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    check_prepared(name, root)
    stored = load_torch(
        Path(root) / name / f"{split}.pt",
        sha256=_recorded_digest(name, root, split),
        remedy=f"run `orthoreg prepare-data --dataset {name} --data-dir {root}`, which prepares it again",
    )
    images, labels = stored["images"], stored["labels"]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels
