"""Datasets in their real file formats (CIFAR pickled batches in a tar.gz, IDX files, gzipped), their
checksums, and the augmenting loader."""

import gzip
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from orthoreg import data

DEBIAN = Path(data.FASHION_MNIST_DEBIAN_DIR)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_reads_dims_and_data():
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    parsed = data.parse_idx(idx_bytes(array), "test")
    assert torch.equal(parsed, torch.from_numpy(array))
    with pytest.raises(ValueError, match="IDX header says dims"):
        data.parse_idx(idx_bytes(array)[:-1], "short.idx")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        data.parse_idx(b"\x00\x00\x0d\x01" + bytes(8), "float.idx")


def write_fashion_mnist(directory: Path, rng: np.random.Generator) -> dict[str, str]:
    """A tiny Fashion-MNIST in the real layout; returns the content checksums."""
    directory.mkdir(parents=True)
    sizes = {"train": 12, "t10k": 5}
    checksums = {}
    for prefix, count in sizes.items():
        for kind, array in (
            ("images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28))),
            ("labels-idx1-ubyte", rng.integers(0, 10, (count,))),
        ):
            content = idx_bytes(array)
            (directory / f"{prefix}-{kind}.gz").write_bytes(gzip.compress(content))
            checksums[f"{prefix}-{kind}"] = hashlib.sha256(content).hexdigest()
    return checksums


def test_fashion_mnist_from_idx_files_is_padded_and_verified(tmp_path, monkeypatch):
    checksums = write_fashion_mnist(tmp_path / "source", np.random.default_rng(0))
    monkeypatch.setenv("ORTHOREG_FASHION_MNIST_DIR", str(tmp_path / "source"))
    monkeypatch.setattr(data, "FASHION_MNIST_FILES", checksums)
    data.prepare_dataset("fashion_mnist", tmp_path / "data")
    images, labels = data.load_split("fashion_mnist", tmp_path / "data", "train")
    raw = gzip.decompress((tmp_path / "source" / "train-images-idx3-ubyte.gz").read_bytes())
    original = data.parse_idx(raw, "raw")
    assert images.shape == (12, 1, 32, 32) and labels.dtype == torch.int64
    assert torch.equal(images[:, 0, 2:30, 2:30], original)
    assert images[:, :, :2].sum() == 0 and images[:, :, :, 30:].sum() == 0


def test_corrupted_fashion_mnist_is_refused_and_nothing_prepared(tmp_path, monkeypatch):
    checksums = write_fashion_mnist(tmp_path / "source", np.random.default_rng(1))
    target = tmp_path / "source" / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(target.read_bytes()))
    content[-1] ^= 1
    target.write_bytes(gzip.compress(bytes(content)))
    monkeypatch.setenv("ORTHOREG_FASHION_MNIST_DIR", str(tmp_path / "source"))
    monkeypatch.setattr(data, "FASHION_MNIST_FILES", checksums)
    with pytest.raises(ValueError, match="checksum mismatch for .*t10k-labels-idx1-ubyte.gz"):
        data.prepare_dataset("fashion_mnist", tmp_path / "data")
    assert not (tmp_path / "data" / "fashion_mnist" / "prepared.json").exists()
    with pytest.raises(FileNotFoundError, match="orthoreg prepare-data --dataset fashion_mnist"):
        data.load_split("fashion_mnist", tmp_path / "data", "train")


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_content_and_normalisation_constants(tmp_path):
    data.prepare_dataset("fashion_mnist", tmp_path)
    images, labels = data.load_split("fashion_mnist", tmp_path, "train")
    assert images.shape == (60000, 1, 32, 32)
    assert torch.equal(torch.bincount(labels), torch.full((10,), 6000))
    pixels = images.double() / 255
    info = data.dataset_info("fashion_mnist")
    assert pixels.mean().item() == pytest.approx(info.mean[0], abs=1e-4)
    assert pixels.std().item() == pytest.approx(info.std[0], abs=1e-4)


def cifar_archive(path: Path, name: str, rng: np.random.Generator) -> str:
    """A CIFAR archive in the exact real layout with a few images per batch; returns its MD5."""
    source = data.CIFAR_SOURCES[name]
    label_key = source["label_key"]
    with tarfile.open(path, "w:gz") as archive:
        for member in source["train"] + source["test"]:
            batch = {
                b"data": rng.integers(0, 256, (4, 3072)).astype(np.uint8),
                label_key: [int(v) for v in rng.integers(0, 10, 4)],
                b"batch_label": member.encode(),
            }
            payload = pickle.dumps(batch)
            info = tarfile.TarInfo(f"{source['folder']}/{member}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_download_checksum_and_batches(tmp_path, monkeypatch, name):
    served = tmp_path / "served.tar.gz"
    md5 = cifar_archive(served, name, np.random.default_rng(2))
    source = dict(data.CIFAR_SOURCES[name], url=served.as_uri(), md5=md5)
    monkeypatch.setitem(data.CIFAR_SOURCES, name, source)
    data.prepare_dataset(name, tmp_path / "data")
    images, labels = data.load_split(name, tmp_path / "data", "train")
    train_batches = len(source["train"])
    assert images.shape == (4 * train_batches, 3, 32, 32) and labels.shape == (4 * train_batches,)
    with tarfile.open(served) as archive:
        first = pickle.load(archive.extractfile(f"{source['folder']}/{source['train'][0]}"), encoding="bytes")
    # CIFAR rows are 1024 red, then green, then blue values, row-major
    assert torch.equal(images[0, 1, 0], torch.from_numpy(first[b"data"][0, 1024:1056]))
    assert data.load_split(name, tmp_path / "data", "test", limit=3)[0].shape[0] == 3


def test_corrupted_cifar_archive_gives_a_clear_error_and_no_dataset(tmp_path, monkeypatch):
    served = tmp_path / "served.tar.gz"
    md5 = cifar_archive(served, "cifar10", np.random.default_rng(3))
    content = bytearray(served.read_bytes())
    content[len(content) // 2] ^= 0xFF
    served.write_bytes(bytes(content))
    monkeypatch.setitem(
        data.CIFAR_SOURCES, "cifar10", dict(data.CIFAR_SOURCES["cifar10"], url=served.as_uri(), md5=md5)
    )
    with pytest.raises(ValueError, match=f"checksum mismatch .* expected {md5}"):
        data.prepare_dataset("cifar10", tmp_path / "data")
    assert not (tmp_path / "data" / "cifar10" / "prepared.json").exists()
    assert not (tmp_path / "data" / "cifar10" / "train.pt").exists()


def test_unreachable_download_names_the_url_and_where_to_put_the_file(tmp_path, monkeypatch):
    missing = (tmp_path / "nowhere.tar.gz").as_uri()
    monkeypatch.setitem(data.CIFAR_SOURCES, "cifar10", dict(data.CIFAR_SOURCES["cifar10"], url=missing))
    with pytest.raises(RuntimeError, match="could not download .*nowhere.tar.gz.*place the file at"):
        data.prepare_dataset("cifar10", tmp_path / "data")


def test_prepare_is_idempotent_and_unknown_names_are_listed(tmp_path):
    marker = data.prepare_dataset("synthetic", tmp_path)
    stamp = marker.stat().st_mtime_ns
    assert data.prepare_dataset("synthetic", tmp_path) == marker and marker.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; available: cifar10, cifar100"):
        data.dataset_info("mnist")
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        data.load_split("synthetic", tmp_path, "train", limit=0)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        data.load_split("synthetic", tmp_path, "val")


def make_loader(count=10, batch=4, augment=True):
    images = torch.randint(0, 256, (count, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(count)
    return data.TensorLoader(images, labels, batch, shuffle=True, augment=augment, pad=2)


def test_loader_augmentation_is_a_shifted_window_of_the_padded_image_then_a_flip():
    loader = make_loader()
    plan = loader.plan_epoch(torch.Generator().manual_seed(0))
    assert plan.flips is not None and plan.flips.any() and not plan.flips.all()
    seen = 0
    for x, y in loader.batches(plan):
        for image, label in zip(x, y):
            dy, dx = plan.shifts[label].tolist()
            window = F.pad(loader.images[label].float() / 255, (2, 2, 2, 2))[:, dy : dy + 8, dx : dx + 8]
            expected = window.flip(-1) if plan.flips[label] else window
            torch.testing.assert_close(image, expected, rtol=0, atol=0)
            seen += 1
    assert seen == 10 and len(loader) == 3


def test_loader_replays_from_a_batch_index_and_is_deterministic():
    loader = make_loader()
    first = list(loader.batches(loader.plan_epoch(torch.Generator().manual_seed(5))))
    plan = loader.plan_epoch(torch.Generator().manual_seed(5))
    tail = list(loader.batches(plan, start=1))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first[1:], tail))
    plain = make_loader(augment=False)
    x, _ = next(plain.batches(plain.plan_epoch(torch.Generator().manual_seed(0))))
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.dtype == torch.float32
    drop = data.TensorLoader(plain.images, plain.labels, 4, shuffle=False, augment=False, drop_last=True)
    assert len(drop) == 2
