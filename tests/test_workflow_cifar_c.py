"""The command of the pipeline's `cifar_c` step, `orthoreg prepare-data --cifar-c`: the official
archive of a dataset (a stand-in tar with its own MD5, served from a file URL) is downloaded, checked
and extracted once into DATA_DIR/CIFAR-10-C; a folder already there is used as it is; a damaged
archive or a dataset without an official set is one line and leaves nothing behind."""

import hashlib
import tarfile

import numpy as np
import pytest

from orthoreg.cli import main
from orthoreg.robustness import cifar_c, load_official, official_folder


@pytest.fixture
def published(tmp_path, monkeypatch):
    """CIFAR-10-C's entry pointing at a stand-in archive: labels and one corruption, 10 images each
    severity; returns the archive's path."""
    source = tmp_path / "source" / "CIFAR-10-C"
    source.mkdir(parents=True)
    np.save(source / "labels.npy", np.arange(10, dtype=np.uint8).repeat(5))
    rows = np.arange(50, dtype=np.uint8)[:, None, None, None]  # each image filled with its row number
    np.save(source / "contrast.npy", np.broadcast_to(rows, (50, 32, 32, 3)).copy())
    archive = tmp_path / "CIFAR-10-C.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(source, arcname="CIFAR-10-C")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(cifar_c.ARCHIVES, "cifar10", cifar_c.Archive("CIFAR-10-C", archive.as_uri(), md5))
    return archive


def prepare(root, dataset="cifar10"):
    return main(["prepare-data", "--dataset", dataset, "--cifar-c", "--data-dir", str(root)])


def test_the_official_files_are_downloaded_checked_and_extracted_once(tmp_path, published, capsys):
    root = tmp_path / "cifar_c"
    assert prepare(root) == 0
    folder = root / "CIFAR-10-C"
    assert capsys.readouterr().out == f"cifar10: official corruptions in {folder}\n"
    assert official_folder(root, "cifar10") == folder
    images, labels = load_official(folder, "contrast", 3)
    assert labels.tolist() == [4] * 5 + [5] * 5 and images[:, 0, 0, 0].tolist() == list(range(20, 30))
    assert sorted(path.name for path in root.iterdir()) == ["CIFAR-10-C"]  # the archive is not kept
    published.unlink()  # a second call uses the folder and downloads nothing
    assert prepare(root) == 0


def test_a_damaged_archive_is_one_line_and_nothing_is_extracted(tmp_path, published, capfd):
    published.write_bytes(published.read_bytes()[:-1000])
    assert prepare(tmp_path / "cifar_c") == 2
    (line,) = capfd.readouterr().err.splitlines()
    assert line.startswith("orthoreg prepare-data: error: checksum mismatch for ")
    assert official_folder(tmp_path / "cifar_c", "cifar10") is None


def test_a_dataset_without_an_official_set_is_one_line(tmp_path, capfd):
    assert prepare(tmp_path / "cifar_c", "fashion_mnist") == 2
    assert capfd.readouterr().err.splitlines() == [
        "orthoreg prepare-data: error: no official corruption set for dataset 'fashion_mnist'; official:"
        " cifar10, cifar100"
    ]
    assert not (tmp_path / "cifar_c").exists()
