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
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

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


def _atomic_torch_save(value: object, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    torch.save(value, temporary)
    os.replace(temporary, path)


def _atomic_write_text(text: str, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)


def download(url: str, path: Path, md5: str) -> Path:
    """Fetch `url` to `path` unless a file with the right MD5 is already there; verify before use."""
    if not (path.exists() and file_digest(path) == md5):
        partial = path.with_name(path.name + ".part")
        try:
            with urllib.request.urlopen(url) as response, open(partial, "wb") as stream:
                shutil.copyfileobj(response, stream)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise RuntimeError(
                f"could not download {url}: {error}; place the file at {path} by hand and rerun"
            ) from error
        os.replace(partial, path)
    actual = file_digest(path)
    if actual != md5:
        raise ValueError(f"checksum mismatch for {path}: MD5 {actual}, expected {md5}; delete it and rerun")
    return path


# ---------------------------------------------------------------- CIFAR-10 / CIFAR-100

CIFAR_SOURCES: dict[str, dict[str, Any]] = {
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{k}" for k in range(1, 6)],
        "test": ["test_batch"],
        "label_key": b"labels",
    },
    "cifar100": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "label_key": b"fine_labels",
    },
}


def _read_cifar_batches(archive: tarfile.TarFile, folder: str, members: list[str], label_key: bytes) -> Split:
    images, labels = [], []
    for member in members:
        stream = archive.extractfile(f"{folder}/{member}")
        if stream is None:
            raise ValueError(f"{folder}/{member} is not a file in the CIFAR archive")
        batch = pickle.load(stream, encoding="bytes")
        images.append(torch.as_tensor(batch[b"data"], dtype=torch.uint8).reshape(-1, 3, 32, 32))
        labels.append(torch.as_tensor(batch[label_key], dtype=torch.int64))
    return torch.cat(images), torch.cat(labels)


def _fetch_cifar(name: str) -> Callable[[Path], tuple[Split, Split]]:
    def fetch(directory: Path) -> tuple[Split, Split]:
        source = CIFAR_SOURCES[name]
        path = download(source["url"], directory / source["url"].rsplit("/", 1)[1], source["md5"])
        with tarfile.open(path, "r:gz") as archive:
            return tuple(  # type: ignore[return-value]
                _read_cifar_batches(archive, source["folder"], source[split], source["label_key"])
                for split in SPLITS
            )

    return fetch


# ---------------------------------------------------------------- Fashion-MNIST

FASHION_MNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# SHA-256 of the DECOMPRESSED IDX files of the official release. Debian recompresses them, so the .gz
# bytes differ from upstream's while the content is identical; verifying the content covers both.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
IDX_DTYPES = {0x08: torch.uint8}


def parse_idx(content: bytes, source: str) -> torch.Tensor:
    """An IDX file (the MNIST format): zero, zero, a type byte, the rank, big-endian dims, the data."""
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] not in IDX_DTYPES:
        raise ValueError(f"{source} is not an unsigned-byte IDX file (header {content[:4].hex()})")
    rank = content[3]
    dims = [int.from_bytes(content[4 + 4 * k : 8 + 4 * k], "big") for k in range(rank)]
    offset = 4 + 4 * rank
    expected = offset + int(torch.tensor(dims).prod()) if dims else offset
    if len(content) != expected:
        raise ValueError(f"{source}: IDX header says dims {dims} ({expected} bytes), file has {len(content)}")
    return torch.frombuffer(bytearray(content[offset:]), dtype=torch.uint8).reshape(dims)


def _fashion_mnist_source() -> Path | None:
    source = Path(os.environ.get("ORTHOREG_FASHION_MNIST_DIR", FASHION_MNIST_DEBIAN_DIR))
    return source if source.is_dir() else None


def _read_fashion_mnist_file(directory: Path, stem: str, expected_sha256: str) -> torch.Tensor:
    candidates = [directory / f"{stem}.gz", directory / stem]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise FileNotFoundError(f"{stem}(.gz) not found in {directory}")
    content = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected_sha256:
        raise ValueError(
            f"checksum mismatch for {path}: content SHA-256 {actual}, expected {expected_sha256}"
        )
    return parse_idx(content, str(path))


def _fetch_fashion_mnist(directory: Path) -> tuple[Split, Split]:
    """From Debian's dataset-fashion-mnist (or ORTHOREG_FASHION_MNIST_DIR), else torchvision's download.
    28x28 grayscale images are zero-padded by 2 px to 1x32x32, so the CIFAR architectures keep their
    32 -> 16 -> 8 downsampling with in_channels=1."""
    source = _fashion_mnist_source()
    if source is None:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(directory / "torchvision"), download=True)
        source = directory / "torchvision" / "FashionMNIST" / "raw"
    splits = []
    for prefix in ("train", "t10k"):
        images = _read_fashion_mnist_file(
            source, f"{prefix}-images-idx3-ubyte", FASHION_MNIST_FILES[f"{prefix}-images-idx3-ubyte"]
        )
        labels = _read_fashion_mnist_file(
            source, f"{prefix}-labels-idx1-ubyte", FASHION_MNIST_FILES[f"{prefix}-labels-idx1-ubyte"]
        )
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


register_dataset(
    DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 50000, 10000),
    _fetch_cifar("cifar10"),
)
register_dataset(
    DatasetInfo("cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 50000, 10000),
    _fetch_cifar("cifar100"),
)
# mean/std of the 2-px padded 32x32 training images (tests recompute them)
register_dataset(
    DatasetInfo("fashion_mnist", 10, 1, 32, (0.2190,), (0.3318,), 60000, 10000), _fetch_fashion_mnist
)
register_dataset(
    DatasetInfo("synthetic", 10, 3, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 2048, 512), _fetch_synthetic
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
        _atomic_torch_save({"images": images.contiguous(), "labels": labels.contiguous()}, path)
        record["files"][split] = {"sha256": file_digest(path, "sha256"), "count": int(labels.numel())}  # type: ignore[index]
    _atomic_write_text(json.dumps(record, indent=1), marker)
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
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
            raise ValueError(
                f"need as many labels as images (and at least one), got {images.shape[0]} and {labels.shape[0]}"
            )
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.drop_last, self.pad, self.device = drop_last, pad, torch.device(device)

    def __len__(self) -> int:
        count = self.images.shape[0]
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def plan_epoch(self, generator: torch.Generator | None = None) -> EpochPlan:
        count = self.images.shape[0]
        order = torch.randperm(count, generator=generator) if self.shuffle else torch.arange(count)
        shifts = flips = None
        if self.augment:
            shifts = torch.randint(0, 2 * self.pad + 1, (count, 2), generator=generator)
            flips = torch.rand(count, generator=generator) < 0.5
        return EpochPlan(order, shifts, flips)

    def batches(self, plan: EpochPlan, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in range(start, len(self)):
            rows = plan.order[index * self.batch_size : (index + 1) * self.batch_size]
            rows_device = rows.to(self.device)
            images = self.images[rows_device].float().div_(255)
            if self.augment:
                assert plan.shifts is not None and plan.flips is not None
                images = self._augment(
                    images, plan.shifts[rows].to(self.device), plan.flips[rows].to(self.device)
                )
            yield images, self.labels[rows_device]

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
