"""Datasets in their real file formats (CIFAR pickled batches in a tar.gz, gzipped IDX files), their
checksums, the prepare/load cycle, the prepare-data command, and the augmenting loader."""

import dataclasses
import fcntl
import gzip
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from orthoreg import data, debian
from orthoreg.cli import main as orthoreg_main
from orthoreg.data import cifar, fashion_mnist

# ---------------------------------------------------------------- IDX and Fashion-MNIST


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format written independently: magic 0x00000800 + rank, big-endian uint32 dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_reads_dims_and_data():
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert torch.equal(fashion_mnist.parse_idx(idx_bytes(array), "cube.idx"), torch.from_numpy(array))
    labels = np.array([9, 0, 3], dtype=np.uint8)
    assert fashion_mnist.parse_idx(idx_bytes(labels), "labels.idx").tolist() == [9, 0, 3]
    # a big dimension read big-endian: 300 = 0x0000012c
    wide = np.zeros((1, 300), dtype=np.uint8)
    assert fashion_mnist.parse_idx(idx_bytes(wide), "wide.idx").shape == (1, 300)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "wide.idx is not an unsigned-byte IDX file: magic number missing"),
        (b"\x00\x00\x0d\x01" + bytes(8), "magic number 00000d01, expected 000008"),
        (b"\x01\x00\x08\x01" + bytes(8), "magic number 01000801"),
        (b"\x00\x00\x08\x00", "magic number 00000800"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "header of rank 3 needs 16 bytes, file has 8"),
        (
            idx_bytes(np.zeros((2, 3), dtype=np.uint8))[:-1],
            r"IDX header says dims \[2, 3\] \(18 bytes\), file has 17",
        ),
        (idx_bytes(np.zeros((2, 3), dtype=np.uint8)) + b"\x00", "file has 19"),
    ],
)
def test_parse_idx_refuses_malformed_files(content, message):
    with pytest.raises(ValueError, match=message):
        fashion_mnist.parse_idx(content, "wide.idx")


def write_fashion_mnist(directory: Path, rng: np.random.Generator, image_shape=(28, 28)) -> dict[str, str]:
    """A tiny Fashion-MNIST in the real layout (gzipped IDX files); returns their content SHA-256s."""
    directory.mkdir(parents=True)
    checksums = {}
    for prefix, count in {"train": 12, "t10k": 5}.items():
        for kind, array in (
            ("images-idx3-ubyte", rng.integers(0, 256, (count, *image_shape))),
            ("labels-idx1-ubyte", rng.integers(0, 10, (count,))),
        ):
            content = idx_bytes(array)
            (directory / f"{prefix}-{kind}.gz").write_bytes(gzip.compress(content))
            checksums[f"{prefix}-{kind}"] = hashlib.sha256(content).hexdigest()
    return checksums


def use_fashion_source(monkeypatch, source: Path, checksums: dict[str, str]) -> None:
    monkeypatch.setenv(fashion_mnist.VARIABLE, str(source))
    monkeypatch.setattr(fashion_mnist, "FILES", checksums)


def test_fashion_mnist_from_idx_files_is_padded_and_verified(tmp_path, monkeypatch):
    use_fashion_source(
        monkeypatch, tmp_path / "source", write_fashion_mnist(tmp_path / "source", np.random.default_rng(0))
    )
    data.prepare_dataset("fashion_mnist", tmp_path / "data")
    for split, prefix, count in (("train", "train", 12), ("test", "t10k", 5)):
        images, labels = data.load_split("fashion_mnist", tmp_path / "data", split)
        raw_images = gzip.decompress((tmp_path / "source" / f"{prefix}-images-idx3-ubyte.gz").read_bytes())
        raw_labels = gzip.decompress((tmp_path / "source" / f"{prefix}-labels-idx1-ubyte.gz").read_bytes())
        original = np.frombuffer(raw_images[16:], dtype=np.uint8).reshape(count, 28, 28)
        assert images.shape == (count, 1, 32, 32) and images.dtype == torch.uint8
        assert torch.equal(images[:, 0, 2:30, 2:30], torch.from_numpy(original.copy()))
        assert images[:, :, :2].sum() == 0 and images[:, :, 30:].sum() == 0
        assert images[:, :, :, :2].sum() == 0 and images[:, :, :, 30:].sum() == 0
        assert labels.dtype == torch.int64 and labels.tolist() == list(raw_labels[8:])


def test_corrupted_fashion_mnist_is_refused_and_nothing_prepared(tmp_path, monkeypatch):
    checksums = write_fashion_mnist(tmp_path / "source", np.random.default_rng(1))
    target = tmp_path / "source" / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(target.read_bytes()))
    content[-1] ^= 1
    target.write_bytes(gzip.compress(bytes(content)))
    use_fashion_source(monkeypatch, tmp_path / "source", checksums)
    expected, actual = checksums["t10k-labels-idx1-ubyte"], hashlib.sha256(content).hexdigest()
    with pytest.raises(
        ValueError, match=f"checksum mismatch for .*t10k-labels-idx1-ubyte.gz.*{actual}.*{expected}"
    ):
        data.prepare_dataset("fashion_mnist", tmp_path / "data")
    assert not (tmp_path / "data" / "fashion_mnist" / "prepared.json").exists()
    with pytest.raises(FileNotFoundError, match="orthoreg prepare-data --dataset fashion_mnist"):
        data.load_split("fashion_mnist", tmp_path / "data", "train")


def test_fashion_mnist_wrong_dims_or_missing_source_are_clear_errors(tmp_path, monkeypatch):
    checksums = write_fashion_mnist(tmp_path / "source", np.random.default_rng(2), image_shape=(27, 28))
    use_fashion_source(monkeypatch, tmp_path / "source", checksums)
    with pytest.raises(ValueError, match=r"IDX dims \[12, 27, 28\], expected \[N, 28, 28\]"):
        data.prepare_dataset("fashion_mnist", tmp_path / "data")
    (tmp_path / "source" / "t10k-images-idx3-ubyte.gz").unlink()
    monkeypatch.setattr(
        fashion_mnist, "FILES", write_fashion_mnist(tmp_path / "ok", np.random.default_rng(3))
    )
    (tmp_path / "ok" / "t10k-images-idx3-ubyte.gz").unlink()
    monkeypatch.setenv(fashion_mnist.VARIABLE, str(tmp_path / "ok"))
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz .* not found in .*ok"):
        data.prepare_dataset("fashion_mnist", tmp_path / "data")
    monkeypatch.setenv(fashion_mnist.VARIABLE, str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="ORTHOREG_FASHION_MNIST_DIR=.*absent is not a directory"):
        data.prepare_dataset("fashion_mnist", tmp_path / "data")


@pytest.mark.slow
def test_real_fashion_mnist_content_and_normalisation_constants(tmp_path, monkeypatch):
    """Through the whole acquisition chain: on a bare machine this installs Debian's package (as root)
    or downloads the files, as `make demo` does."""
    monkeypatch.delenv(fashion_mnist.VARIABLE, raising=False)
    data.prepare_dataset("fashion_mnist", tmp_path)  # verifies the four content SHA-256s
    images, labels = data.load_split("fashion_mnist", tmp_path, "train")
    info = data.dataset_info("fashion_mnist")
    assert images.shape == (info.train_size, 1, 32, 32)
    assert data.load_split("fashion_mnist", tmp_path, "test")[0].shape[0] == info.test_size
    assert torch.equal(torch.bincount(labels), torch.full((10,), 6000))
    pixels = images.double() / 255
    assert pixels.mean().item() == pytest.approx(info.mean[0], abs=1e-4)
    assert pixels.std().item() == pytest.approx(info.std[0], abs=1e-4)
    # the unpadded statistics are the published Fashion-MNIST ones (0.2860, 0.3530)
    assert pixels[:, :, 2:30, 2:30].mean().item() == pytest.approx(0.2860, abs=1e-4)
    assert pixels[:, :, 2:30, 2:30].std().item() == pytest.approx(0.3530, abs=1e-4)


# ---------------------------------------------------------------- how Fashion-MNIST is found or fetched


def test_upstream_mirror_and_md5s_are_torchvisions():
    from torchvision.datasets import FashionMNIST

    assert fashion_mnist.MIRROR in FashionMNIST.mirrors
    assert dict(FashionMNIST.resources) == fashion_mnist.UPSTREAM_MD5
    assert [name.removesuffix(".gz") for name in fashion_mnist.UPSTREAM_MD5] == list(fashion_mnist.FILES)


@pytest.fixture
def bare_machine(tmp_path, monkeypatch):
    """No ORTHOREG_FASHION_MNIST_DIR, no Debian copy, a user who is not root and has not set
    ORTHOREG_ALLOW_SUDO (so apt-get may not run), a mirror serving nothing; the tiny dataset's files
    wait in tmp_path/files for a test to offer them through one of the routes."""
    files = tmp_path / "files"
    monkeypatch.setattr(fashion_mnist, "FILES", write_fashion_mnist(files, np.random.default_rng(7)))
    monkeypatch.delenv(fashion_mnist.VARIABLE, raising=False)
    monkeypatch.delenv(fashion_mnist.SUDO_VARIABLE, raising=False)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "debian" / "fashion-mnist")
    monkeypatch.setattr(debian.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(debian.os, "geteuid", lambda: 1000)
    (tmp_path / "mirror").mkdir()
    monkeypatch.setattr(fashion_mnist, "MIRROR", (tmp_path / "mirror").as_uri() + "/")
    return files


def prepared_images(root: Path) -> torch.Tensor:
    return data.load_split("fashion_mnist", root, "test")[0]


def test_nothing_found_names_every_remedy_and_leaves_nothing_behind(tmp_path, bare_machine, capfd):
    with pytest.raises(RuntimeError) as raised:
        data.prepare_dataset("fashion_mnist", tmp_path / "data")
    message = str(raised.value)
    tried = [line.strip() for line in message.splitlines() if line.startswith("  - ")][:4]
    assert tried[0] == "- ORTHOREG_FASHION_MNIST_DIR is not set"
    assert tried[2].startswith("- download: could not download")
    assert tried[3] == "- apt-get: not root, and sudo is used only when ORTHOREG_ALLOW_SUDO=1"
    for remedy in (
        "sudo apt-get install dataset-fashion-mnist",
        "export ORTHOREG_ALLOW_SUDO=1",
        "export ORTHOREG_FASHION_MNIST_DIR=/path/to/that/folder",
        f"curl -O {fashion_mnist.MIRROR}train-images-idx3-ubyte.gz",
    ):
        assert remedy in message
    assert list((tmp_path / "data" / "fashion_mnist").iterdir()) == []
    # each step said on screen, in the order taken
    said = capfd.readouterr().err.splitlines()
    steps = [line.removeprefix("orthoreg: Fashion-MNIST: ") for line in said if "Fashion-MNIST: " in line]
    for step, start in zip(
        steps,
        [
            "no copy",
            "downloading the upstream files",
            "the download failed",
            "not installing Debian's package",
        ],
        strict=True,
    ):
        assert step.startswith(start), steps
    assert steps[3].endswith("not root, and sudo is used only when ORTHOREG_ALLOW_SUDO=1")


def test_password_less_sudo_is_not_used_without_the_opt_in(tmp_path, bare_machine, monkeypatch):
    """A GPU VM whose user has password-less sudo: nothing runs through sudo unless ORTHOREG_ALLOW_SUDO=1."""
    calls = []

    def run(command, **_):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(debian.subprocess, "run", run)
    with pytest.raises(
        RuntimeError, match="apt-get: not root, and sudo is used only when ORTHOREG_ALLOW_SUDO=1"
    ):
        data.prepare_dataset("fashion_mnist", tmp_path / "data")
    assert calls == []


def test_the_download_comes_before_any_system_change(tmp_path, bare_machine, monkeypatch):
    """Where the download works, apt-get is never considered, even when it would be allowed."""
    mirror = Path(fashion_mnist.MIRROR.removeprefix("file://"))
    for path in bare_machine.iterdir():
        shutil.copy(path, mirror / path.name)
    md5 = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in bare_machine.iterdir()}
    monkeypatch.setattr(fashion_mnist, "UPSTREAM_MD5", md5)

    def forbidden():
        raise AssertionError("apt-get must not be considered when the download works")

    monkeypatch.setattr(debian, "apt_access", forbidden)
    data.prepare_dataset("fashion_mnist", tmp_path / "data")
    assert prepared_images(tmp_path / "data").shape == (5, 1, 32, 32)


def test_download_is_verified_kept_and_reused(tmp_path, bare_machine, monkeypatch):
    mirror = Path(fashion_mnist.MIRROR.removeprefix("file://"))
    for path in bare_machine.iterdir():
        shutil.copy(path, mirror / path.name)
    md5 = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in bare_machine.iterdir()}
    monkeypatch.setattr(fashion_mnist, "UPSTREAM_MD5", md5)
    data.prepare_dataset("fashion_mnist", tmp_path / "data")
    downloaded = tmp_path / "data" / "fashion_mnist" / "download"
    assert sorted(p.name for p in downloaded.iterdir()) == sorted(md5)
    assert prepared_images(tmp_path / "data").shape == (5, 1, 32, 32)
    # a second preparation elsewhere finds the earlier download: nothing is fetched again
    for path in mirror.iterdir():
        path.unlink()
    (tmp_path / "data" / "fashion_mnist" / "prepared.json").unlink()
    data.prepare_dataset("fashion_mnist", tmp_path / "data")


def test_a_corrupt_download_is_refused_and_not_kept(tmp_path, bare_machine, monkeypatch):
    mirror = Path(fashion_mnist.MIRROR.removeprefix("file://"))
    for path in bare_machine.iterdir():
        shutil.copy(path, mirror / path.name)
    monkeypatch.setattr(fashion_mnist, "UPSTREAM_MD5", dict.fromkeys(fashion_mnist.UPSTREAM_MD5, "0" * 32))
    with pytest.raises(RuntimeError, match="download: checksum mismatch for train-images-idx3-ubyte.gz"):
        data.prepare_dataset("fashion_mnist", tmp_path / "data")
    assert list((tmp_path / "data" / "fashion_mnist").iterdir()) == []


FAKE_APT = """#!/bin/sh
echo "$@" >> "{calls}"
if [ "$1" = install ] && [ -e "{fail_once}" ]; then rm "{fail_once}"; exit 100; fi
if [ "$1" = install ]; then mkdir -p "{debian}" && cp "{files}"/* "{debian}"; fi
"""


@pytest.mark.parametrize("stale_lists", [False, True])
def test_apt_installs_debians_package_when_allowed_and_says_so(
    tmp_path, bare_machine, monkeypatch, capfd, stale_lists
):
    """A stand-in apt-get on PATH (as root, or with password-less sudo): announced on stderr first,
    and retried once after `apt-get update` when the first install fails (package lists too old)."""
    tools, calls, fail_once = tmp_path / "bin", tmp_path / "apt-calls", tmp_path / "fail-once"
    tools.mkdir()
    if stale_lists:
        fail_once.touch()
    script = FAKE_APT.format(
        calls=calls, fail_once=fail_once, debian=fashion_mnist.DEBIAN_DIR, files=bare_machine
    )
    (tools / "apt-get").write_text(script)
    (tools / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(debian, "apt_access", lambda: ([], "as root"))
    data.prepare_dataset("fashion_mnist", tmp_path / "data")
    said = capfd.readouterr().err
    # the download was tried (and failed: the mirror serves nothing) before the system was changed
    assert said.index("Fashion-MNIST: the download failed") < said.index(
        "Fashion-MNIST: installing Debian's package dataset-fashion-mnist as root: apt-get install -o DPkg::Lock::Timeout=600 -y -q dataset-fashion-mnist"
    )
    expected = ["install -o DPkg::Lock::Timeout=600 -y -q dataset-fashion-mnist"]
    if stale_lists:
        expected = [expected[0], "update -o DPkg::Lock::Timeout=600 -q", expected[0]]
    assert calls.read_text().splitlines() == expected
    assert prepared_images(tmp_path / "data").shape == (5, 1, 32, 32)


FAKE_APT_INSTALLED = """#!/bin/sh
echo "$@" >> "{calls}"
if [ "$4" = --reinstall ]; then mkdir -p "{debian}" && cp "{files}"/* "{debian}"; fi
"""


def test_an_installed_package_whose_folder_was_removed_is_reinstalled(tmp_path, bare_machine, monkeypatch):
    """The package is installed but its folder was deleted or moved aside: a plain install exits 0 and
    restores nothing (apt: "already the newest version"), so the package is reinstalled."""
    tools, calls = tmp_path / "bin", tmp_path / "apt-calls"
    tools.mkdir()
    script = FAKE_APT_INSTALLED.format(calls=calls, debian=fashion_mnist.DEBIAN_DIR, files=bare_machine)
    (tools / "apt-get").write_text(script)
    (tools / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(debian, "apt_access", lambda: ([], "as root"))
    data.prepare_dataset("fashion_mnist", tmp_path / "data")
    assert calls.read_text().splitlines() == [
        "install -o DPkg::Lock::Timeout=600 -y -q dataset-fashion-mnist",
        "install -o DPkg::Lock::Timeout=600 --reinstall -y -q dataset-fashion-mnist",
    ]
    assert prepared_images(tmp_path / "data").shape == (5, 1, 32, 32)


def test_apt_that_restores_nothing_is_named_in_the_error(tmp_path, bare_machine, monkeypatch):
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "apt-get").write_text("#!/bin/sh\nexit 0\n")
    (tools / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(debian, "apt_access", lambda: ([], "as root"))
    with pytest.raises(RuntimeError) as raised:
        data.prepare_dataset("fashion_mnist", tmp_path / "data")
    message = str(raised.value)
    assert (
        "apt-get: `apt-get install -o DPkg::Lock::Timeout=600 --reinstall -y -q dataset-fashion-mnist` succeeded but "
        f"{fashion_mnist.DEBIAN_DIR} still lacks the files"
    ) in message
    assert "sudo apt-get install --reinstall dataset-fashion-mnist" in message


def test_an_existing_copy_wins_and_nothing_is_fetched(tmp_path, bare_machine, monkeypatch):
    def forbidden(*_):
        raise AssertionError("nothing may be fetched when a copy exists")

    monkeypatch.setattr(debian, "apt_access", forbidden)
    monkeypatch.setattr(fashion_mnist, "download_upstream", forbidden)
    shutil.copytree(bare_machine, fashion_mnist.DEBIAN_DIR)
    data.prepare_dataset("fashion_mnist", tmp_path / "debian-data")
    monkeypatch.setenv(fashion_mnist.VARIABLE, str(bare_machine))
    shutil.rmtree(fashion_mnist.DEBIAN_DIR)
    data.prepare_dataset("fashion_mnist", tmp_path / "variable-data")
    assert torch.equal(prepared_images(tmp_path / "debian-data"), prepared_images(tmp_path / "variable-data"))


# ---------------------------------------------------------------- a damaged source file: one line naming it


def flip_a_bit(path: Path) -> None:
    """Flip one bit of the first deflate byte (right after gzip's 10-byte header): its block type."""
    content = bytearray(path.read_bytes())
    content[10] ^= 0b10
    path.write_bytes(bytes(content))


def refusal(path: Path) -> str:
    """What gzip says about `path`, which must not decompress."""
    with pytest.raises((zlib.error, EOFError, OSError)) as raised:
        gzip.decompress(path.read_bytes())
    return str(raised.value)


def prepare_error(name: str, root: Path, capfd) -> str:
    """The one line `orthoreg prepare-data` prints on stderr for a failure (exit status 2)."""
    assert orthoreg_main(["prepare-data", "--dataset", name, "--data-dir", str(root)]) == 2
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def checksum_line(damaged: Path, gzip_says: str, remedy: str) -> str:
    name = damaged.name
    return (
        f"orthoreg prepare-data: error: checksum mismatch for {damaged}: MD5"
        f" {hashlib.md5(damaged.read_bytes()).hexdigest()}, expected {fashion_mnist.UPSTREAM_MD5[name]}"
        f" (upstream's file) or {fashion_mnist.DEBIAN_MD5[name]} (Debian's); the file is corrupt or"
        f" truncated ({gzip_says}); {remedy}"
    )


@pytest.mark.parametrize("damage", ["flipped bit", "truncated"])
@pytest.mark.parametrize("where", ["variable", "debian", "download"])
def test_a_damaged_source_gz_is_one_line_naming_it_and_its_remedy(
    tmp_path, bare_machine, monkeypatch, capfd, where, damage
):
    root = tmp_path / "data"
    folder = {
        "variable": tmp_path / "mine",
        "debian": fashion_mnist.DEBIAN_DIR,
        "download": root / "fashion_mnist" / "download",
    }[where]
    shutil.copytree(bare_machine, folder)
    if where == "variable":
        monkeypatch.setenv(fashion_mnist.VARIABLE, str(folder))
    damaged = folder / "train-labels-idx1-ubyte.gz"
    if damage == "flipped bit":
        flip_a_bit(damaged)
    else:
        damaged.write_bytes(damaged.read_bytes()[:-20])
    remedy = {
        "variable": "put an intact copy there, or unset ORTHOREG_FASHION_MNIST_DIR",
        "debian": "restore Debian's copy: sudo apt-get install --reinstall dataset-fashion-mnist",
        "download": "delete it and rerun"
        f" `orthoreg prepare-data --dataset fashion_mnist --data-dir {root}` to download it again",
    }[where]
    assert prepare_error("fashion_mnist", root, capfd) == checksum_line(damaged, refusal(damaged), remedy)
    left = sorted(p.name for p in (root / "fashion_mnist").iterdir())
    assert left == (["download"] if where == "download" else [])


def test_a_flipped_bit_in_the_real_files_is_one_line_and_no_traceback(tmp_path, monkeypatch):
    """On the real files, found or fetched as `orthoreg prepare-data` does (on a bare machine without
    internet, as CI's root, this installs Debian's package), so the test runs wherever the suite does."""
    monkeypatch.delenv(fashion_mnist.VARIABLE, raising=False)
    real = fashion_mnist.locate_files(tmp_path / "fetched")
    known = fashion_mnist.DEBIAN_MD5 if real == fashion_mnist.DEBIAN_DIR else fashion_mnist.UPSTREAM_MD5
    for name, md5 in known.items():  # Debian recompressed them: not upstream's bytes
        assert hashlib.md5((real / name).read_bytes()).hexdigest() == md5
        assert fashion_mnist.DEBIAN_MD5[name] != fashion_mnist.UPSTREAM_MD5[name]
    source = tmp_path / "source"
    shutil.copytree(real, source)
    damaged = source / "t10k-labels-idx1-ubyte.gz"
    flip_a_bit(damaged)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORTHOREG_")}
    result = subprocess.run(
        [sys.executable, "-m", "orthoreg", "prepare-data", "--dataset", "fashion_mnist"],
        cwd=tmp_path,
        env={**environment, fashion_mnist.VARIABLE: str(source)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    remedy = "put an intact copy there, or unset ORTHOREG_FASHION_MNIST_DIR"
    expected = checksum_line(damaged, "Error -3 while decompressing data: invalid block type", remedy)
    assert result.stderr.splitlines() == [expected]
    assert list((tmp_path / "data" / "fashion_mnist").iterdir()) == []


def test_apt_access_is_root_or_sudo_by_opt_in_only(monkeypatch):
    monkeypatch.setattr(debian.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.delenv(debian.SUDO_VARIABLE, raising=False)
    monkeypatch.setattr(debian.os, "geteuid", lambda: 0)
    assert debian.apt_access() == ([], "as root")
    monkeypatch.setattr(debian.os, "geteuid", lambda: 1000)
    probes = []

    def sudo(status):
        def run(command, **_):
            probes.append(command)
            return subprocess.CompletedProcess(command, status)

        return run

    monkeypatch.setattr(debian.subprocess, "run", sudo(0))
    assert debian.apt_access() == (None, "not root, and sudo is used only when ORTHOREG_ALLOW_SUDO=1")
    assert probes == []  # without the opt-in, sudo is not even asked
    for value in ("0", "yes"):
        monkeypatch.setenv(debian.SUDO_VARIABLE, value)
        assert debian.apt_access()[0] is None
    monkeypatch.setenv(debian.SUDO_VARIABLE, "1")
    assert debian.apt_access() == (["sudo", "-n"], "with sudo (ORTHOREG_ALLOW_SUDO=1)")
    assert probes == [["sudo", "-n", "true"]]
    monkeypatch.setattr(debian.subprocess, "run", sudo(1))
    assert debian.apt_access() == (None, "ORTHOREG_ALLOW_SUDO=1 but sudo asks for a password")
    monkeypatch.setattr(debian.shutil, "which", lambda name: None)
    assert debian.apt_access() == (None, "there is no apt-get on this machine")


def newest_installed_package() -> str | None:
    """A package this machine has installed at its newest version, so installing it changes nothing."""
    for package in ("apt", "dpkg", "bash", "coreutils"):
        simulated = subprocess.run(["apt-get", "-s", "install", package], capture_output=True, text=True)
        if f"{package} is already the newest version" in simulated.stdout:
            return package
    return None


@pytest.mark.skipif(
    shutil.which("apt-get") is None or os.geteuid() != 0, reason="holds dpkg's real lock: root with apt-get"
)
def test_an_install_waits_for_the_lock_another_apt_holds(monkeypatch):
    """Another apt (a second job preparing data, a test worker, an unattended upgrade) holds dpkg's
    frontend lock for 3 s: the install waits for it and succeeds on its first call, with no retry."""
    package = newest_installed_package()
    if package is None:
        pytest.skip("no installed package is at its newest version here")
    run, calls = subprocess.run, []

    def recording(command, *args, **kwargs):
        calls.append(command)
        return run(command, *args, **kwargs)

    monkeypatch.setattr(debian.subprocess, "run", recording)
    monkeypatch.setattr(debian, "apt_access", lambda: ([], "as root"))
    with open("/var/lib/dpkg/lock-frontend", "w") as lock:
        fcntl.lockf(lock, fcntl.LOCK_EX)
        release = threading.Timer(3.0, lambda: fcntl.lockf(lock, fcntl.LOCK_UN))
        release.start()
        started = time.monotonic()
        reason = debian.install_package(package, lambda: True, "nothing", lambda line: None)
        waited = time.monotonic() - started
        release.join()
    assert reason is None
    assert calls == [["apt-get", "install", *debian.WAIT_FOR_LOCK, "-y", "-q", package]]
    assert waited >= 3.0, f"apt-get returned after {waited:.1f} s, before the lock was released"


# ---------------------------------------------------------------- CIFAR


def cifar_archive(path: Path, name: str, rng: np.random.Generator, skip: str | None = None) -> str:
    """A CIFAR archive in the exact real layout (a folder of pickled dict batches with bytes keys) with
    a few images per batch; returns its MD5."""
    source = cifar.SOURCES[name]
    label_key = source.label_key
    with tarfile.open(path, "w:gz") as archive:
        folder = tarfile.TarInfo(source.folder)
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for member in source.train + source.test:
            if member == skip:
                continue
            batch = {
                b"batch_label": member.encode(),
                label_key: [int(v) for v in rng.integers(0, 10, 4)],
                b"data": rng.integers(0, 256, (4, 3072)).astype(np.uint8),
                b"filenames": [f"img{k}.png".encode() for k in range(4)],
            }
            payload = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"{source.folder}/{member}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


def serve(monkeypatch, name: str, archive: Path, md5: str) -> cifar.CifarSource:
    source = dataclasses.replace(cifar.SOURCES[name], url=archive.as_uri(), md5=md5)
    monkeypatch.setitem(cifar.SOURCES, name, source)
    return source


def read_batches(archive: Path, source: cifar.CifarSource, split: str) -> list[dict]:
    with tarfile.open(archive) as tar:
        return [
            pickle.load(tar.extractfile(f"{source.folder}/{member}"), encoding="bytes")
            for member in getattr(source, split)
        ]


def test_cifar_sources_are_torchvisions():
    from torchvision.datasets import CIFAR10, CIFAR100

    for name, reference in (("cifar10", CIFAR10), ("cifar100", CIFAR100)):
        source = cifar.SOURCES[name]
        assert (source.url, source.md5, source.archive, source.folder) == (
            reference.url,
            reference.tgz_md5,
            reference.filename,
            reference.base_folder,
        )
        assert list(source.train) == [member for member, _ in reference.train_list]
        assert list(source.test) == [member for member, _ in reference.test_list]


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_download_checksum_and_batches(tmp_path, monkeypatch, name):
    served = tmp_path / "served.tar.gz"
    source = serve(monkeypatch, name, served, cifar_archive(served, name, np.random.default_rng(2)))
    data.prepare_dataset(name, tmp_path / "data")
    assert (tmp_path / "data" / name / source.archive).exists()
    for split in ("train", "test"):
        images, labels = data.load_split(name, tmp_path / "data", split)
        batches = read_batches(served, source, split)
        rows = np.concatenate([batch[b"data"] for batch in batches])
        # a CIFAR row is 1024 red, then 1024 green, then 1024 blue values, each a row-major 32x32 plane
        expected = np.stack(
            [rows[:, 1024 * c : 1024 * (c + 1)].reshape(-1, 32, 32) for c in range(3)], axis=1
        )
        assert torch.equal(images, torch.from_numpy(expected))
        assert labels.tolist() == [v for batch in batches for v in batch[source.label_key]]
    limited = data.load_split(name, tmp_path / "data", "test", limit=3)
    assert torch.equal(limited[0], data.load_split(name, tmp_path / "data", "test")[0][:3])


def test_a_placed_archive_is_used_without_download(tmp_path, monkeypatch):
    placed = tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz"
    placed.parent.mkdir(parents=True)
    md5 = cifar_archive(placed, "cifar10", np.random.default_rng(4))
    serve(monkeypatch, "cifar10", tmp_path / "unreachable.tar.gz", md5)
    data.prepare_dataset("cifar10", tmp_path / "data")
    assert data.load_split("cifar10", tmp_path / "data", "train")[0].shape == (20, 3, 32, 32)


def test_corrupted_download_gives_a_clear_error_and_no_dataset(tmp_path, monkeypatch):
    served = tmp_path / "served.tar.gz"
    md5 = cifar_archive(served, "cifar10", np.random.default_rng(3))
    content = bytearray(served.read_bytes())
    content[len(content) // 2] ^= 0xFF
    served.write_bytes(bytes(content))
    actual = hashlib.md5(content).hexdigest()
    serve(monkeypatch, "cifar10", served, md5)
    with pytest.raises(
        ValueError, match=f"checksum mismatch for cifar-10-python.tar.gz .*MD5 {actual}, expected {md5}"
    ):
        data.prepare_dataset("cifar10", tmp_path / "data")
    assert sorted(p.name for p in (tmp_path / "data" / "cifar10").iterdir()) == []
    with pytest.raises(FileNotFoundError, match="not prepared"):
        data.load_split("cifar10", tmp_path / "data", "train")
    # through the command line: exit status 2 and the message, still nothing prepared
    assert orthoreg_main(["prepare-data", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data")]) == 2
    assert not (tmp_path / "data" / "cifar10" / "prepared.json").exists()


def test_corrupted_placed_archive_is_reported_and_kept(tmp_path, monkeypatch):
    placed = tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz"
    placed.parent.mkdir(parents=True)
    md5 = cifar_archive(placed, "cifar10", np.random.default_rng(5))
    placed.write_bytes(placed.read_bytes()[:-10])
    truncated = placed.read_bytes()
    serve(monkeypatch, "cifar10", tmp_path / "served.tar.gz", md5)
    actual = hashlib.md5(truncated).hexdigest()
    with pytest.raises(
        ValueError, match=f"checksum mismatch for {placed}: MD5 {actual}, expected {md5}.*delete it"
    ):
        data.prepare_dataset("cifar10", tmp_path / "data")
    assert placed.read_bytes() == truncated
    assert not (tmp_path / "data" / "cifar10" / "train.pt").exists()


def test_a_truncated_archive_is_one_line_naming_it_and_the_command(tmp_path, monkeypatch, capfd):
    placed = tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz"
    placed.parent.mkdir(parents=True)
    md5 = cifar_archive(placed, "cifar10", np.random.default_rng(8))
    placed.write_bytes(placed.read_bytes()[: placed.stat().st_size // 2])
    source = serve(monkeypatch, "cifar10", tmp_path / "served.tar.gz", md5)
    assert prepare_error("cifar10", tmp_path / "data", capfd) == (
        f"orthoreg prepare-data: error: checksum mismatch for {placed}: MD5"
        f" {hashlib.md5(placed.read_bytes()).hexdigest()}, expected {md5}; the file is corrupt, truncated or"
        f" not the official one: delete it and rerun `orthoreg prepare-data --dataset cifar10 --data-dir"
        f" {tmp_path / 'data'}` to download it again from {source.url}"
    )
    assert [p.name for p in placed.parent.iterdir()] == [placed.name]


def test_an_unreadable_archive_with_the_expected_md5_is_one_line(tmp_path, monkeypatch, capfd):
    served = tmp_path / "served.tar.gz"
    cifar_archive(served, "cifar10", np.random.default_rng(9))
    served.write_bytes(
        served.read_bytes()[: served.stat().st_size // 2]
    )  # the registry holds this cut file's MD5
    serve(monkeypatch, "cifar10", served, hashlib.md5(served.read_bytes()).hexdigest())
    archive = tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz"
    assert prepare_error("cifar10", tmp_path / "data", capfd) == (
        f"orthoreg prepare-data: error: {archive} is corrupt or truncated (Compressed file ended before the"
        " end-of-stream marker was reached): delete it and rerun"
        f" `orthoreg prepare-data --dataset cifar10 --data-dir {tmp_path / 'data'}`"
    )
    assert not (tmp_path / "data" / "cifar10" / "prepared.json").exists()


def test_archive_without_a_batch_names_the_member(tmp_path, monkeypatch):
    served = tmp_path / "served.tar.gz"
    serve(
        monkeypatch,
        "cifar10",
        served,
        cifar_archive(served, "cifar10", np.random.default_rng(6), skip="data_batch_3"),
    )
    with pytest.raises(ValueError, match="has no file cifar-10-batches-py/data_batch_3"):
        data.prepare_dataset("cifar10", tmp_path / "data")
    assert not (tmp_path / "data" / "cifar10" / "prepared.json").exists()


def test_unreachable_download_names_the_url_and_where_to_put_the_file(tmp_path, monkeypatch):
    serve(monkeypatch, "cifar10", tmp_path / "nowhere.tar.gz", cifar.SOURCES["cifar10"].md5)
    with pytest.raises(RuntimeError, match="could not download .*nowhere.tar.gz.*place the file at"):
        data.prepare_dataset("cifar10", tmp_path / "data")
    assert list((tmp_path / "data" / "cifar10").iterdir()) == []


# ---------------------------------------------------------------- synthetic, prepare/load, CLI


def test_synthetic_is_learnable_and_its_constants_are_measured(tmp_path):
    data.prepare_dataset("synthetic", tmp_path)
    train_images, train_labels = data.load_split("synthetic", tmp_path, "train")
    test_images, test_labels = data.load_split("synthetic", tmp_path, "test")
    info = data.dataset_info("synthetic")
    assert (train_images.shape[0], test_images.shape[0]) == (info.train_size, info.test_size)
    assert torch.bincount(train_labels, minlength=10).min() > info.train_size / 20
    # a nearest-class-mean classifier fit on train separates test: the classes carry signal
    means = torch.stack([train_images[train_labels == k].double().mean(0) for k in range(10)]).flatten(1)
    predicted = torch.cdist(test_images.double().flatten(1), means).argmin(1)
    assert (predicted == test_labels).double().mean() > 0.9
    pixels = train_images.double() / 255
    assert pixels.mean((0, 2, 3)).tolist() == pytest.approx(info.mean, abs=1e-4)
    assert pixels.std((0, 2, 3)).tolist() == pytest.approx(info.std, abs=1e-4)


def test_prepare_is_idempotent_and_repairs_tampered_files(tmp_path):
    marker = data.prepare_dataset("synthetic", tmp_path)
    stamp = marker.stat().st_mtime_ns
    assert data.prepare_dataset("synthetic", tmp_path) == marker and marker.stat().st_mtime_ns == stamp
    reference = data.load_split("synthetic", tmp_path, "test")
    stored = tmp_path / "synthetic" / "test.pt"
    stored.write_bytes(stored.read_bytes()[:-1])
    data.prepare_dataset("synthetic", tmp_path)  # the digest no longer matches: prepared again
    again = data.load_split("synthetic", tmp_path, "test")
    assert torch.equal(again[0], reference[0]) and torch.equal(again[1], reference[1])
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == [
        "prepared.json",
        "test.pt",
        "train.pt",
    ]


def test_unknown_names_and_bad_limits_are_refused(tmp_path):
    with pytest.raises(
        ValueError, match="unknown dataset 'mnist'; available: cifar10, cifar100, fashion_mnist, synthetic"
    ):
        data.dataset_info("mnist")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.prepare_dataset("mnist", tmp_path)
    assert not (tmp_path / "mnist").exists()
    data.prepare_dataset("synthetic", tmp_path)
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        data.load_split("synthetic", tmp_path, "train", limit=0)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        data.load_split("synthetic", tmp_path, "val")
    with pytest.raises(ValueError, match="one mean and one std > 0 per channel"):
        data.register_dataset(data.DatasetInfo("bad", 10, 3, 32, (0.5,), (0.2,), 1, 1), lambda d: None)
    assert "bad" not in data.available_datasets()


def test_prepare_data_command(tmp_path, capsys):
    assert orthoreg_main(["prepare-data", "--dataset", "synthetic", "--data-dir", str(tmp_path)]) == 0
    assert "synthetic: prepared and verified" in capsys.readouterr().out
    assert data.load_split("synthetic", tmp_path, "train", limit=5)[0].shape == (5, 3, 32, 32)
    assert orthoreg_main(["prepare-data", "--dataset", "nope", "--data-dir", str(tmp_path)]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------- the loader


def make_loader(count=10, batch=4, augment=True, pad=2, size=8, **options):
    generator = torch.Generator().manual_seed(count)
    images = torch.randint(1, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)
    return data.TensorLoader(
        images, torch.arange(count), batch, shuffle=True, augment=augment, pad=pad, **options
    )


@pytest.mark.parametrize(("pad", "size"), [(2, 8), (4, 32)])
def test_augmentation_is_a_window_of_the_zero_padded_image_then_a_flip(pad, size):
    loader = make_loader(count=64, batch=16, pad=pad, size=size)
    plan = loader.plan_epoch(torch.Generator().manual_seed(0))
    assert plan.flips.any() and not plan.flips.all()
    assert set(plan.shifts.flatten().tolist()) == set(range(2 * pad + 1))
    seen = []
    for x, y in loader.batches(plan):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.min() >= 0.0 and x.max() <= 1.0
        for image, label in zip(x, y):
            dy, dx = plan.shifts[label].tolist()
            padded = F.pad(loader.images[label].float() / 255, (pad, pad, pad, pad))
            window = padded[:, dy : dy + size, dx : dx + size]
            expected = torch.flip(window, dims=[-1]) if plan.flips[label] else window
            torch.testing.assert_close(image, expected, rtol=0, atol=0)
            seen.append(int(label))
    assert seen == plan.order.tolist()


def test_without_augmentation_batches_are_the_scaled_images_in_plan_order():
    loader = make_loader(augment=False)
    plan = loader.plan_epoch(torch.Generator().manual_seed(1))
    x = torch.cat([x for x, _ in loader.batches(plan)])
    assert torch.equal(x, loader.images[plan.order].float() / 255)
    ordered = data.TensorLoader(loader.images, loader.labels, 3, shuffle=False, augment=False)
    assert torch.cat([y for _, y in ordered.batches(ordered.plan_epoch(torch.Generator()))]).tolist() == list(
        range(10)
    )


def test_loader_is_deterministic_and_replays_from_a_batch_index():
    loader = make_loader()
    first = list(loader.batches(loader.plan_epoch(torch.Generator().manual_seed(5))))
    again = list(loader.batches(loader.plan_epoch(torch.Generator().manual_seed(5))))
    assert len(first) == len(loader) == 3 and [len(y) for _, y in first] == [4, 4, 2]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    tail = list(loader.batches(loader.plan_epoch(torch.Generator().manual_seed(5)), start=1))
    assert len(tail) == 2
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first[1:], tail))
    other = list(loader.batches(loader.plan_epoch(torch.Generator().manual_seed(6))))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))


def test_drop_last_and_bad_loader_input():
    images, labels = make_loader().images, torch.arange(10)
    assert len(data.TensorLoader(images, labels, 4, shuffle=False, augment=False, drop_last=True)) == 2
    cases = [
        ((images, labels, 0), {}, "batch_size must be a positive integer, got 0"),
        ((images.float(), labels, 4), {}, "images must be uint8"),
        ((images, labels[:9], 4), {}, r"one label per image .* labels \(9,\) for 10 images"),
        (
            (images, labels, 11),
            {"drop_last": True},
            "drop_last with 10 images and batch_size 11 leaves no batch",
        ),
    ]
    for args, options, message in cases:
        with pytest.raises(ValueError, match=message):
            data.TensorLoader(*args, shuffle=True, augment=True, **options)
    loader = make_loader()
    plan = loader.plan_epoch(torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"start must be a batch index in \[0, 3\], got 4"):
        loader.batches(plan, start=4)
    with pytest.raises(ValueError, match="plan covers 9 samples, the loader holds 10"):
        make_loader(count=10).batches(make_loader(count=9).plan_epoch(torch.Generator()))
    with pytest.raises(ValueError, match="plan has no crop offsets"):
        loader.batches(make_loader(augment=False).plan_epoch(torch.Generator()))
