"""Datasets and the batch loader.

Each dataset is prepared once (`orthoreg prepare-data`, the pipeline's `data` rule): fetched or copied,
checksummed, and stored as uint8 tensors in `root/<name>/{train,test}.pt` with a `prepared.json`
marker. Training jobs only read those files, so they never download concurrently.

`TensorLoader` keeps the whole split as one tensor on the training device (the GPU when there is one)
and augments batches there; an epoch's permutation and augmentation are drawn at its start, so a
resumed epoch replays exactly.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import pickle
import shutil
import tarfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from orthoreg.checkpoint import save_json, save_torch

Split = tuple[torch.Tensor, torch.Tensor]
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_size: int
    test_size: int


@dataclass(frozen=True)
class _Dataset:
    info: DatasetInfo
    fetch: Callable[[Path], tuple[Split, Split]]  # root/<name> -> (train, test)


_DATASETS: dict[str, _Dataset] = {}


def register_dataset(info: DatasetInfo, fetch: Callable[[Path], tuple[Split, Split]]) -> None:
    """Register a dataset: `fetch(directory)` returns ((train images, labels), (test images, labels)),
    images uint8 [N, C, H, W], labels int64 [N], after verifying whatever it downloaded or read."""
    if len(info.mean) != info.in_channels or len(info.std) != info.in_channels or min(info.std) <= 0:
        raise ValueError(
            f"dataset {info.name!r}: need one mean and one std > 0 per channel ({info.in_channels}),"
            f" got mean {info.mean}, std {info.std}"
        )
    if info.num_classes < 1 or info.image_size < 1:
        raise ValueError(f"dataset {info.name!r}: num_classes and image_size must be positive, got {info}")
    _DATASETS[info.name] = _Dataset(info, fetch)


def available_datasets() -> list[str]:
    return sorted(_DATASETS)


def _get(name: str) -> _Dataset:
    if name not in _DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}")
    return _DATASETS[name]


def dataset_info(name: str) -> DatasetInfo:
    return _get(name).info


# ---------------------------------------------------------------- files, checksums, atomic writes


def file_digest(path: Path, algorithm: str = "md5") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, path: Path, md5: str) -> Path:
    """`path` verified against `md5`: a file already there (e.g. placed by hand) is checked and never
    overwritten; otherwise `url` is fetched to `path.part`, checked, and only then renamed to `path`, so
    `path` never holds a partial or unverified download."""
    if path.exists():
        actual = file_digest(path)
        if actual != md5:
            raise ValueError(
                f"checksum mismatch for {path}: MD5 {actual}, expected {md5}; the file is corrupt or"
                f" not the official one: delete it and rerun to download {url}"
            )
        return path
    partial = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url) as response, open(partial, "wb") as stream:
            shutil.copyfileobj(response, stream)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise RuntimeError(
            f"could not download {url}: {error}; place the file at {path} by hand and rerun"
        ) from error
    actual = file_digest(partial)
    if actual != md5:
        partial.unlink()
        raise ValueError(
            f"checksum mismatch for {path.name} downloaded from {url}: MD5 {actual}, expected {md5};"
            " nothing was kept, rerun to download again"
        )
    os.replace(partial, path)
    return path


# ---------------------------------------------------------------- CIFAR-10 / CIFAR-100

CIFAR_SOURCES: dict[str, dict[str, Any]] = {
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "archive": "cifar-10-python.tar.gz",  # its name in root/<name>/, where one may also be placed by hand
        "md5": "c58f30108f718f92721af3b95e74349a",
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{k}" for k in range(1, 6)],
        "test": ["test_batch"],
        "label_key": b"labels",
    },
    "cifar100": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "archive": "cifar-100-python.tar.gz",  # its name in root/<name>/, where one may also be placed by hand
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "label_key": b"fine_labels",
    },
}


def _read_cifar_batches(
    archive: tarfile.TarFile, path: Path, folder: str, members: list[str], label_key: bytes
) -> Split:
    """The pickled batches (dicts with b"data" uint8 [N, 3072], rows of 1024 R, G, B values, and the
    labels under `label_key`) read straight from the verified archive; nothing is extracted to disk."""
    images, labels = [], []
    for member in members:
        name = f"{folder}/{member}"
        try:
            stream = archive.extractfile(name)
        except KeyError:
            stream = None
        if stream is None:
            raise ValueError(f"{path} has no file {name}; is it the official CIFAR python archive?")
        batch = pickle.load(stream, encoding="bytes")
        if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
            raise ValueError(f"{path}: {name} lacks the keys b'data' and {label_key!r}")
        data = torch.as_tensor(batch[b"data"], dtype=torch.uint8)
        batch_labels = torch.as_tensor(batch[label_key], dtype=torch.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != batch_labels.numel():
            raise ValueError(
                f"{path}: {name} holds data {tuple(data.shape)} and {batch_labels.numel()} labels,"
                " expected [N, 3072] with one label each"
            )
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(batch_labels)
    return torch.cat(images), torch.cat(labels)


def _fetch_cifar(name: str) -> Callable[[Path], tuple[Split, Split]]:
    def fetch(directory: Path) -> tuple[Split, Split]:
        """The official archive in `directory` (downloaded there, or placed by hand), MD5-verified
        before a single member is read."""
        source = CIFAR_SOURCES[name]
        path = download(source["url"], directory / source["archive"], source["md5"])
        with tarfile.open(path, "r:gz") as archive:
            train, test = (
                _read_cifar_batches(archive, path, source["folder"], source[split], source["label_key"])
                for split in SPLITS
            )
        return train, test

    return fetch


# ---------------------------------------------------------------- Fashion-MNIST

FASHION_MNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_SOURCE_VARIABLE = "ORTHOREG_FASHION_MNIST_DIR"
# SHA-256 of the DECOMPRESSED IDX files of the official release (the content of upstream's
# train-images-idx3-ubyte.gz etc.), measured on Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1.
# Debian recompresses the files, so its .gz bytes differ from upstream's (train-images: MD5 cf8536b0...
# against upstream's 8d4fb7e6...) while the content is the same; checking the content covers both.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
IDX_UBYTE = 0x08
# the magic number's rank byte and the per-sample shape of each Fashion-MNIST file
FASHION_MNIST_SHAPES = {"images": (28, 28), "labels": ()}


def parse_idx(content: bytes, source: str) -> torch.Tensor:
    """An unsigned-byte IDX file (the MNIST format): the magic number (two zero bytes, type 0x08, the
    rank), one big-endian uint32 per dimension, then the data in C order."""
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] != IDX_UBYTE or content[3] == 0:
        raise ValueError(
            f"{source} is not an unsigned-byte IDX file: magic number {content[:4].hex() or 'missing'},"
            f" expected 000008 followed by the rank (>= 1)"
        )
    rank = content[3]
    offset = 4 + 4 * rank
    if len(content) < offset:
        raise ValueError(f"{source}: IDX header of rank {rank} needs {offset} bytes, file has {len(content)}")
    dims = [int.from_bytes(content[4 + 4 * k : 8 + 4 * k], "big") for k in range(rank)]
    expected = offset + math.prod(dims)
    if len(content) != expected:
        raise ValueError(f"{source}: IDX header says dims {dims} ({expected} bytes), file has {len(content)}")
    return torch.frombuffer(bytearray(content[offset:]), dtype=torch.uint8).reshape(dims)


def _fashion_mnist_source() -> Path | None:
    """The directory named by ORTHOREG_FASHION_MNIST_DIR (which must exist), else Debian's when
    installed, else None (download with torchvision)."""
    chosen = os.environ.get(FASHION_MNIST_SOURCE_VARIABLE)
    if chosen:
        if not Path(chosen).is_dir():
            raise FileNotFoundError(f"{FASHION_MNIST_SOURCE_VARIABLE}={chosen} is not a directory")
        return Path(chosen)
    debian = Path(FASHION_MNIST_DEBIAN_DIR)
    return debian if debian.is_dir() else None


def _read_fashion_mnist_file(directory: Path, stem: str, kind: str) -> torch.Tensor:
    """One IDX file (gzipped or not), its decompressed content checked against the official SHA-256."""
    candidates = [directory / f"{stem}.gz", directory / stem]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise FileNotFoundError(f"{stem}.gz (or {stem}) not found in {directory}")
    try:
        content = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path} is not a readable gzip file: {error}") from error
    actual, expected = hashlib.sha256(content).hexdigest(), FASHION_MNIST_FILES[stem]
    if actual != expected:
        raise ValueError(
            f"checksum mismatch for {path}: decompressed content SHA-256 {actual}, expected {expected}"
        )
    array = parse_idx(content, str(path))
    if tuple(array.shape[1:]) != FASHION_MNIST_SHAPES[kind]:
        raise ValueError(
            f"{path}: IDX dims {list(array.shape)}, expected [N{''.join(f', {d}' for d in FASHION_MNIST_SHAPES[kind])}]"
        )
    return array


def _fetch_fashion_mnist(directory: Path) -> tuple[Split, Split]:
    """From ORTHOREG_FASHION_MNIST_DIR or Debian's dataset-fashion-mnist, else torchvision's download.
    The 28x28 grayscale images are zero-padded by 2 px on every side to 1x32x32 (the background is
    already 0), so the CIFAR architectures keep their 32 -> 16 -> 8 downsampling with in_channels=1."""
    source = _fashion_mnist_source()
    if source is None:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(directory / "torchvision"), download=True)
        source = directory / "torchvision" / "FashionMNIST" / "raw"
    splits = []
    for prefix in ("train", "t10k"):
        images = _read_fashion_mnist_file(source, f"{prefix}-images-idx3-ubyte", "images")
        labels = _read_fashion_mnist_file(source, f"{prefix}-labels-idx1-ubyte", "labels")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{source}: {images.shape[0]} {prefix} images but {labels.shape[0]} labels")
        splits.append((F.pad(images.unsqueeze(1), (2, 2, 2, 2)), labels.to(torch.int64)))
    return splits[0], splits[1]


# ---------------------------------------------------------------- synthetic (unit tests only)

SYNTHETIC_SEED = 1234


def _fetch_synthetic(directory: Path) -> tuple[Split, Split]:
    """10 classes of fixed random low-frequency patterns plus noise: learnable in a few hundred steps,
    generated from a fixed seed. For unit tests only, never for reported results."""
    generator = torch.Generator().manual_seed(SYNTHETIC_SEED)
    prototypes = F.interpolate(torch.rand(10, 3, 4, 4, generator=generator), size=32, mode="bilinear")

    def draw(count: int) -> Split:
        labels = torch.randint(10, (count,), generator=generator)
        noise = 0.25 * torch.randn(count, 3, 32, 32, generator=generator)
        images = (prototypes[labels] + noise).clamp(0, 1)
        return (images * 255).round().to(torch.uint8), labels

    return draw(2048), draw(512)


# CIFAR mean/std: the standard per-channel statistics of the 50,000 training images
register_dataset(
    DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 50000, 10000),
    _fetch_cifar("cifar10"),
)
register_dataset(
    DatasetInfo("cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 50000, 10000),
    _fetch_cifar("cifar100"),
)
# mean/std of the 2-px padded 32x32 training images (the unpadded 28x28 ones: 0.2860, 0.3530, as
# published); tests recompute both
register_dataset(
    DatasetInfo("fashion_mnist", 10, 1, 32, (0.2190,), (0.3318,), 60000, 10000), _fetch_fashion_mnist
)
# mean/std of the generated training images (tests recompute them)
register_dataset(
    DatasetInfo("synthetic", 10, 3, 32, (0.5300, 0.4832, 0.5109), (0.2964, 0.2859, 0.2901), 2048, 512),
    _fetch_synthetic,
)


# ---------------------------------------------------------------- prepare / load


def _marker(root: Path, name: str) -> Path:
    return Path(root) / name / "prepared.json"


def prepare_dataset(name: str, root: str | Path) -> Path:
    """Fetch, verify and store a dataset once; later calls check the stored files and return."""
    dataset = _get(name)
    directory = Path(root) / name
    marker = _marker(Path(root), name)
    if marker.exists() and _stored_files_match(directory, json.loads(marker.read_text())):
        return marker
    directory.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    splits = dataset.fetch(directory)
    record: dict[str, object] = {"info": asdict(dataset.info), "files": {}}
    for split, (images, labels) in zip(SPLITS, splits):
        _check_split(dataset.info, split, images, labels)
        path = directory / f"{split}.pt"
        save_torch({"images": images.contiguous(), "labels": labels.contiguous()}, path)
        record["files"][split] = {"sha256": file_digest(path, "sha256"), "count": int(labels.numel())}  # type: ignore[index]
    save_json(record, marker)
    return marker


def _check_split(info: DatasetInfo, split: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    shape = (info.in_channels, info.image_size, info.image_size)
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != shape or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{info.name} {split}: got images {tuple(images.shape)} {images.dtype} and {labels.shape[0]} labels,"
            f" expected uint8 [N, {shape[0]}, {shape[1]}, {shape[2]}] with one label each"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= info.num_classes):
        raise ValueError(f"{info.name} {split}: labels outside [0, {info.num_classes})")


def _stored_files_match(directory: Path, record: dict) -> bool:
    files = record.get("files", {})
    return all(
        (directory / f"{split}.pt").exists()
        and file_digest(directory / f"{split}.pt", "sha256") == files.get(split, {}).get("sha256")
        for split in SPLITS
    )


def load_split(name: str, root: str | Path, split: str, limit: int | None = None) -> Split:
    """The stored (images uint8 [N,C,H,W], labels int64 [N]) of a prepared dataset; `limit` keeps the
    first N, the same for every run."""
    _get(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    marker = _marker(Path(root), name)
    if not marker.exists():
        raise FileNotFoundError(
            f"dataset {name!r} is not prepared under {root}; run `orthoreg prepare-data --dataset {name}"
            f" --data-dir {root}` first"
        )
    stored = torch.load(Path(root) / name / f"{split}.pt", weights_only=True)
    images, labels = stored["images"], stored["labels"]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


# ---------------------------------------------------------------- the loader


@dataclass(frozen=True)
class EpochPlan:
    """Everything random about one epoch, drawn at its start."""

    order: torch.Tensor  # sample indices
    shifts: torch.Tensor | None  # [N, 2] crop offsets in [0, 2 * pad]
    flips: torch.Tensor | None  # [N] bool


class TensorLoader:
    """Batches of float [0, 1] images from a uint8 tensor held on `device`, with random crop
    (`pad`-pixel zero padding) and horizontal flip done on whole batches."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        augment: bool,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
        pad: int = 4,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0] or images.shape[0] == 0:
            raise ValueError(
                f"need one label per image (and at least one image), got labels {tuple(labels.shape)}"
                f" for {images.shape[0]} images"
            )
        if drop_last and images.shape[0] < batch_size:
            raise ValueError(
                f"drop_last with {images.shape[0]} images and batch_size {batch_size} leaves no batch"
            )
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.images = images.to(device)
        self.labels = labels.to(device=device, dtype=torch.int64)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.drop_last, self.pad, self.device = drop_last, pad, torch.device(device)

    def __len__(self) -> int:
        count = self.images.shape[0]
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def plan_epoch(self, generator: torch.Generator) -> EpochPlan:
        """The epoch's order, crop offsets and flips, drawn on the CPU from `generator` alone, so the
        same generator state gives the same epoch on any device."""
        count = self.images.shape[0]
        order = torch.randperm(count, generator=generator) if self.shuffle else torch.arange(count)
        shifts = flips = None
        if self.augment:
            shifts = torch.randint(0, 2 * self.pad + 1, (count, 2), generator=generator)
            flips = torch.rand(count, generator=generator) < 0.5
        return EpochPlan(order, shifts, flips)

    def batches(self, plan: EpochPlan, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches `start`, `start + 1`, ... of the epoch `plan` describes: float32 images in [0, 1]
        and int64 labels on the loader's device. The plan is checked here, before the first batch."""
        if plan.order.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"plan covers {plan.order.shape[0]} samples, the loader holds {self.images.shape[0]}"
            )
        if self.augment and (plan.shifts is None or plan.flips is None):
            raise ValueError("this loader augments, but the plan has no crop offsets and flips")
        if not 0 <= start <= len(self):
            raise ValueError(f"start must be a batch index in [0, {len(self)}], got {start}")
        return self._generate(plan, start)

    def _generate(self, plan: EpochPlan, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # the whole plan goes to the device once per epoch, not once per batch
        order = plan.order.to(self.device)
        shifts = None if plan.shifts is None else plan.shifts.to(self.device)
        flips = None if plan.flips is None else plan.flips.to(self.device)
        for index in range(start, len(self)):
            rows = order[index * self.batch_size : (index + 1) * self.batch_size]
            images = self.images[rows].float().div_(255)
            if self.augment and shifts is not None and flips is not None:
                images = self._augment(images, shifts[rows], flips[rows])
            yield images, self.labels[rows]

    def _augment(self, images: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """Random crops as one gather over the padded batch, then flips by index reversal."""
        count, _, height, width = images.shape
        padded = F.pad(images, (self.pad,) * 4)
        rows = (shifts[:, 0, None] + torch.arange(height, device=images.device)).view(count, 1, height, 1)
        cols = torch.arange(width, device=images.device).view(1, width)
        cols = torch.where(flips.view(count, 1), width - 1 - cols, cols) + shifts[:, 1, None]
        cols = cols.view(count, 1, 1, width)
        channels = images.shape[1]
        gathered = padded.gather(2, rows.expand(count, channels, height, padded.shape[3]))
        return gathered.gather(3, cols.expand(count, channels, height, width))
