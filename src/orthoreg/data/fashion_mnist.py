"""Fashion-MNIST from its original IDX files, which the demo must find or fetch on a bare machine.

The files are looked for, then fetched, in this order, the first that works winning, each step
announced on stderr:
1. an existing copy: the folder named by $ORTHOREG_FASHION_MNIST_DIR, Debian's
   /usr/share/datasets/fashion-mnist, or an earlier download under data/fashion_mnist/download/;
2. the upstream files torchvision downloads, MD5-checked;
3. Debian's package `dataset-fashion-mnist`, installed (or reinstalled when its folder was removed)
   with apt-get as root, or through password-less sudo only when $ORTHOREG_ALLOW_SUDO is 1: nothing
   changes the system unless the user runs as root or asked for it.
When all fail, one error names every remedy with its command. Whatever the source, the content of
each decompressed file is checked against the official SHA-256 before it is parsed (Debian recompresses
the .gz files, so their bytes differ from upstream's while the content is the same). A corrupt,
truncated or unreadable file is a one-line ValueError naming it, what is wrong and how to restore it.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import sys
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F

from orthoreg.data.download import fetch_verified, prepare_command
from orthoreg.data.registry import DatasetInfo, Split, register_dataset
from orthoreg.debian import SUDO_VARIABLE, install_package

VARIABLE = "ORTHOREG_FASHION_MNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DOWNLOAD_FOLDER = "download"
# torchvision's mirror and the MD5s of the upstream .gz files (a test checks them against torchvision)
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
UPSTREAM_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# the MD5s of Debian's recompressed .gz files, as dpkg records them for dataset-fashion-mnist
# 0.0~git20200523.55506a9-1; named in the error for a .gz that does not decompress
DEBIAN_MD5 = {
    "train-images-idx3-ubyte.gz": "cf8536b0aa1a6ac5fa3f23001093305c",
    "train-labels-idx1-ubyte.gz": "10bea18fdb374794d4bb42e356e600c9",
    "t10k-images-idx3-ubyte.gz": "f78720b4224f21cce2f2ccf2d7a94c9a",
    "t10k-labels-idx1-ubyte.gz": "0d30e22e447f3c33dab9ed536400ac01",
}
# SHA-256 of the DECOMPRESSED IDX files of the official release, measured on Debian's
# dataset-fashion-mnist 0.0~git20200523.55506a9-1 (the content of upstream's .gz files).
FILES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
IDX_UBYTE = 0x08
# the per-sample shape of each kind of file
SAMPLE_SHAPES = {"images": (28, 28), "labels": ()}


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


def holds_files(folder: Path) -> bool:
    """Whether `folder` has each of the four IDX files, gzipped or not."""
    return all((folder / f"{stem}.gz").is_file() or (folder / stem).is_file() for stem in FILES)


def announce(step: str) -> None:
    print(f"orthoreg: Fashion-MNIST: {step}", file=sys.stderr, flush=True)


def install_debian_package() -> str | None:
    """Install Debian's package where allowed (`orthoreg.debian`); None when its files are there
    afterwards, else why not."""
    return install_package(
        DEBIAN_PACKAGE, lambda: holds_files(DEBIAN_DIR), f"{DEBIAN_DIR} still lacks the files", announce
    )


def download_upstream(folder: Path) -> Path:
    """The four upstream .gz files in `folder` (root/fashion_mnist/download), each MD5-checked before
    it appears there."""
    for name, md5 in UPSTREAM_MD5.items():
        fetch_verified(MIRROR + name, folder / name, md5, rerun=prepare_command(folder.parent))
    return folder


def remedies(directory: Path) -> str:
    names = ", ".join(f"{stem}.gz" for stem in FILES)
    urls = " ".join(f"-O {MIRROR}{name}" for name in UPSTREAM_MD5)
    return (
        "Any one of these fixes it, then rerun the same command:\n"
        f"  - install Debian's package:    sudo apt-get install {DEBIAN_PACKAGE}\n"
        f"    (installed, but its folder was removed: sudo apt-get install --reinstall {DEBIAN_PACKAGE})\n"
        f"    or let orthoreg run that through password-less sudo:\n"
        f"        export {SUDO_VARIABLE}=1\n"
        f"  - use a copy of the files ({names}) in a folder of your own:\n"
        f"        export {VARIABLE}=/path/to/that/folder\n"
        f"  - download them where there is internet and copy them to {directory / DOWNLOAD_FOLDER}:\n"
        f"        curl {urls}"
    )


def locate_files(directory: Path) -> Path:
    """The folder holding the IDX files, found or fetched in the module's order (see its docstring)."""
    chosen = os.environ.get(VARIABLE)
    if chosen:
        if not Path(chosen).is_dir():
            raise FileNotFoundError(f"{VARIABLE}={chosen} is not a directory")
        return Path(chosen)
    downloaded = directory / DOWNLOAD_FOLDER
    for folder in (DEBIAN_DIR, downloaded):
        if holds_files(folder):
            return folder
    announce(f"no copy ({VARIABLE} is not set; none in {DEBIAN_DIR} or {downloaded})")
    tried = [f"{VARIABLE} is not set", f"{DEBIAN_DIR} does not hold the files"]
    try:
        announce(f"downloading the upstream files from {MIRROR} into {downloaded}, MD5-checked")
        return download_upstream(downloaded)
    except (RuntimeError, ValueError) as error:
        announce(f"the download failed: {error}")
        tried.append(f"download: {error}")
        if downloaded.is_dir() and not any(downloaded.iterdir()):
            downloaded.rmdir()
    reason = install_debian_package()
    if reason is None:
        return DEBIAN_DIR
    tried.append(f"apt-get: {reason}")
    raise RuntimeError(
        "Fashion-MNIST was not found and could not be fetched. Tried:\n"
        + "".join(f"  - {line}\n" for line in tried)
        + remedies(directory)
    )


def restore(folder: Path, directory: Path) -> str:
    """How to get back an intact copy of a file found in `folder` (see locate_files)."""
    if os.environ.get(VARIABLE):
        return f"put an intact copy there, or unset {VARIABLE}"
    if folder == DEBIAN_DIR:
        return f"restore Debian's copy: sudo apt-get install --reinstall {DEBIAN_PACKAGE}"
    return f"delete it and rerun {prepare_command(directory)} to download it again"


def idx_content(path: Path, remedy: str) -> bytes:
    """The IDX bytes of `path`, decompressed when it is a .gz; a file that cannot be read or
    decompressed is a ValueError naming it, the MD5s a .gz should have and `remedy`."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}; {remedy}") from error
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(
            f"checksum mismatch for {path}: MD5 {hashlib.md5(raw).hexdigest()}, expected"
            f" {UPSTREAM_MD5[path.name]} (upstream's file) or {DEBIAN_MD5[path.name]} (Debian's);"
            f" the file is corrupt or truncated ({error}); {remedy}"
        ) from error


def read_file(folder: Path, stem: str, kind: str, remedy: str) -> torch.Tensor:
    """One IDX file (gzipped or not), its decompressed content checked against the official SHA-256
    before it is parsed."""
    path = next((p for p in (folder / f"{stem}.gz", folder / stem) if p.exists()), None)
    if path is None:
        raise FileNotFoundError(f"{stem}.gz (or {stem}) not found in {folder}")
    content = idx_content(path, remedy)
    actual, expected = hashlib.sha256(content).hexdigest(), FILES[stem]
    if actual != expected:
        raise ValueError(
            f"checksum mismatch for {path}: decompressed content SHA-256 {actual}, expected {expected};"
            f" {remedy}"
        )
    array = parse_idx(content, str(path))
    if tuple(array.shape[1:]) != SAMPLE_SHAPES[kind]:
        dims = "".join(f", {d}" for d in SAMPLE_SHAPES[kind])
        raise ValueError(f"{path}: IDX dims {list(array.shape)}, expected [N{dims}]")
    return array


def fetch_fashion_mnist(directory: Path) -> tuple[Split, Split]:
    """The 28x28 grayscale images, zero-padded by 2 px on every side to 1x32x32 (the background is
    already 0), so the CIFAR architectures keep their 32 -> 16 -> 8 downsampling with in_channels=1."""
    folder = locate_files(directory)
    remedy = restore(folder, directory)
    splits = []
    for prefix in ("train", "t10k"):
        images = read_file(folder, f"{prefix}-images-idx3-ubyte", "images", remedy)
        labels = read_file(folder, f"{prefix}-labels-idx1-ubyte", "labels", remedy)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{folder}: {images.shape[0]} {prefix} images but {labels.shape[0]} labels")
        splits.append((F.pad(images.unsqueeze(1), (2, 2, 2, 2)), labels.to(torch.int64)))
    print(f"orthoreg: Fashion-MNIST from {folder}", file=sys.stderr, flush=True)
    return splits[0], splits[1]


# mean/std of the 2-px padded 32x32 training images (the unpadded 28x28 ones: 0.2860, 0.3530, as
# published); tests recompute both
register_dataset(
    DatasetInfo("fashion_mnist", 10, 1, 32, (0.2190,), (0.3318,), 60000, 10000), fetch_fashion_mnist
)
