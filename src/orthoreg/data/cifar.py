"""CIFAR-10 and CIFAR-100 from the official python archives (torchvision's URLs and MD5s).

The archive is downloaded into root/<name>/ (or placed there by hand), MD5-verified, and its pickled
batches are read straight from the tar: nothing is extracted to disk. An archive that cannot be read
is a one-line ValueError naming it and how to replace it.
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from orthoreg.data.download import fetch_verified, prepare_command
from orthoreg.data.registry import DatasetInfo, Split, register_dataset


@dataclass(frozen=True)
class CifarSource:
    url: str
    archive: str  # its name in root/<name>/, where one may also be placed by hand
    md5: str
    folder: str  # the folder inside the archive
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: bytes


SOURCES = {
    "cifar10": CifarSource(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        "cifar-10-batches-py",
        tuple(f"data_batch_{k}" for k in range(1, 6)),
        ("test_batch",),
        b"labels",
    ),
    "cifar100": CifarSource(
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        "cifar-100-python",
        ("train",),
        ("test",),
        b"fine_labels",
    ),
}


def read_batches(
    archive: tarfile.TarFile, path: Path, source: CifarSource, members: tuple[str, ...]
) -> Split:
    """The pickled batches (dicts with b"data" uint8 [N, 3072], rows of 1024 R, G, B values, and the
    labels under `label_key`) read from the verified archive."""
    images, labels = [], []
    for member in members:
        name = f"{source.folder}/{member}"
        try:
            stream = archive.extractfile(name)
        except KeyError:
            stream = None
        if stream is None:
            raise ValueError(f"{path} has no file {name}; is it the official CIFAR python archive?")
        batch = pickle.load(stream, encoding="bytes")
        if not isinstance(batch, dict) or b"data" not in batch or source.label_key not in batch:
            raise ValueError(f"{path}: {name} lacks the keys b'data' and {source.label_key!r}")
        data = torch.as_tensor(batch[b"data"], dtype=torch.uint8)
        batch_labels = torch.as_tensor(batch[source.label_key], dtype=torch.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != batch_labels.numel():
            raise ValueError(
                f"{path}: {name} holds data {tuple(data.shape)} and {batch_labels.numel()} labels,"
                " expected [N, 3072] with one label each"
            )
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(batch_labels)
    return torch.cat(images), torch.cat(labels)


def fetch_cifar(name: str, directory: Path) -> tuple[Split, Split]:
    """The official archive in `directory` (downloaded there, or placed by hand), MD5-verified before a
    single member is read."""
    source = SOURCES[name]
    rerun = prepare_command(directory)
    path = fetch_verified(source.url, directory / source.archive, source.md5)
    try:
        with tarfile.open(path, "r:gz") as archive:
            return read_batches(archive, path, source, source.train), read_batches(
                archive, path, source, source.test
            )
    except (tarfile.TarError, EOFError, zlib.error, OSError, pickle.UnpicklingError) as error:
        raise ValueError(
            f"{path} is corrupt or truncated ({str(error) or type(error).__name__}): delete it and rerun {rerun}"
        ) from error


# mean/std: the standard per-channel statistics of the 50,000 training images
register_dataset(
    DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 50000, 10000),
    lambda directory: fetch_cifar("cifar10", directory),
)
register_dataset(
    DatasetInfo("cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 50000, 10000),
    lambda directory: fetch_cifar("cifar100", directory),
)
