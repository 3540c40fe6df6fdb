"""Failures reach the user as one line naming the file or value at fault: the CLI's error handling
(`orthoreg <command>: error: ...`, --debug and ORTHOREG_DEBUG for the traceback), a full disk or an
unreadable file as OSError, and damaged CIFAR-C files and downloads. The damaged dataset sources are in
test_data.py, beside the helpers that build them in their real formats."""

import errno
import hashlib
import http.client
import importlib
import io
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

import orthoreg.cli.prepare_data
from orthoreg.cli import main
from orthoreg.data import store
from orthoreg.robustness import install_archive, load_official

# the module (orthoreg.data.download is also the name of its function)
downloads = importlib.import_module("orthoreg.data.download")
DEBUG_HINT = "(rerun with --debug or ORTHOREG_DEBUG=1 for the traceback)"


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("ORTHOREG_DEBUG", raising=False)


def error_lines(capfd) -> list[str]:
    return capfd.readouterr().err.splitlines()


def prepare(root: Path, *extra: str) -> int:
    return main([*extra, "prepare-data", "--dataset", "synthetic", "--data-dir", str(root)])


# ---------------------------------------------------------------- OSError: the reason and the file


def disk_full(path, obj=None, *rest):
    """A write that finds the disk full, as Python's own I/O raises it."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_a_full_disk_is_one_line_with_the_path_and_nothing_prepared(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(store, "save_torch", lambda obj, path: disk_full(path))
    assert prepare(tmp_path) == 2
    target = tmp_path / "synthetic" / "train.pt"
    assert error_lines(capfd) == [f"orthoreg prepare-data: error: no space left on device: {target}"]
    assert not (tmp_path / "synthetic" / "prepared.json").exists()


@pytest.mark.parametrize(
    ("error", "words"),
    [
        # the atomic writer's own wording names the file already: not twice
        (
            OSError(errno.ENOSPC, "no space left on device while writing /x/model.pt", "/x/model.pt"),
            "no space left on device while writing /x/model.pt",
        ),
        (PermissionError(errno.EACCES, "Permission denied", "/x/run.json"), "permission denied: /x/run.json"),
        (
            OSError(errno.EXDEV, "Invalid cross-device link", "/x/.tmp", None, "/y/model.pt"),
            "invalid cross-device link: /x/.tmp -> /y/model.pt",
        ),
        (OSError(errno.EIO, "Input/output error"), "input/output error"),
        (
            FileNotFoundError("run.json not found in /x: not a run directory"),
            "run.json not found in /x: not a run directory",
        ),
    ],
)
def test_an_os_error_keeps_its_reason_and_file(tmp_path, monkeypatch, capfd, error, words):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(orthoreg.cli.prepare_data, "prepare_dataset", fail)
    assert prepare(tmp_path) == 2
    assert error_lines(capfd) == [f"orthoreg prepare-data: error: {words}"]


# ---------------------------------------------------------------- unexpected errors, --debug, Ctrl-C


class Surprise(Exception):
    """An exception type no command raises on purpose."""


def surprise(*args, **kwargs):
    raise Surprise("deep inside a library\nwith a second line of advice")


def test_an_unexpected_error_is_one_line_with_its_type_and_the_debug_hint(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(orthoreg.cli.prepare_data, "prepare_dataset", surprise)
    assert prepare(tmp_path) == 1
    assert error_lines(capfd) == [
        f"orthoreg prepare-data: error: Surprise: deep inside a library {DEBUG_HINT}"
    ]


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command_raises_for_the_traceback(tmp_path, monkeypatch, capfd, where):
    monkeypatch.setattr(orthoreg.cli.prepare_data, "prepare_dataset", surprise)
    arguments = ["prepare-data", "--dataset", "synthetic", "--data-dir", str(tmp_path)]
    with pytest.raises(Surprise):
        main(["--debug", *arguments] if where == "before" else [*arguments, "--debug"])
    assert capfd.readouterr().err == ""
    monkeypatch.setenv("ORTHOREG_DEBUG", "1")
    with pytest.raises(Surprise):
        prepare(tmp_path)
    monkeypatch.setenv("ORTHOREG_DEBUG", "0")
    assert prepare(tmp_path) == 1


def test_debug_changes_nothing_when_the_command_succeeds(tmp_path, capfd):
    assert prepare(tmp_path, "--debug") == 0
    assert main(["prepare-data", "--dataset", "synthetic", "--data-dir", str(tmp_path), "--debug"]) == 0
    assert capfd.readouterr().err == ""


def test_ctrl_c_is_one_line_and_status_130(tmp_path, monkeypatch, capfd):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(orthoreg.cli.prepare_data, "prepare_dataset", interrupted)
    assert prepare(tmp_path) == 130
    assert error_lines(capfd) == ["orthoreg prepare-data: interrupted"]


PLUGIN = """
from orthoreg.data import DatasetInfo, register_dataset


def fetch(directory):
    raise LookupError("internal detail of a broken plugin\\nand a second line")


register_dataset(DatasetInfo("broken", 2, 1, 8, (0.5,), (0.25,), 4, 2), fetch)
"""


def run_cli(tmp_path: Path, *arguments: str, **variables: str) -> subprocess.CompletedProcess:
    """`python -m orthoreg` in a fresh process, with a plugin dataset whose fetch has a bug."""
    (tmp_path / "broken_plugin.py").write_text(textwrap.dedent(PLUGIN))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORTHOREG_")}
    search_path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    environment.update(ORTHOREG_PLUGINS="broken_plugin", PYTHONPATH=search_path, **variables)
    return subprocess.run(
        [sys.executable, "-m", "orthoreg", *arguments, "prepare-data", "--dataset", "broken"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_bug_prints_one_line_and_the_traceback_only_when_asked(tmp_path):
    plain = run_cli(tmp_path)
    assert plain.returncode == 1
    assert plain.stderr.splitlines() == [
        f"orthoreg prepare-data: error: LookupError: internal detail of a broken plugin {DEBUG_HINT}"
    ]
    for debugged in (run_cli(tmp_path, ORTHOREG_DEBUG="1"), run_cli(tmp_path, "--debug")):
        assert debugged.returncode == 1
        assert debugged.stderr.startswith("Traceback (most recent call last):")
        assert "broken_plugin.py" in debugged.stderr and "LookupError: internal detail" in debugged.stderr


# ---------------------------------------------------------------- CIFAR-C files and downloads


def official_folder(root: Path) -> Path:
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    np.save(folder / "labels.npy", np.arange(10, dtype=np.uint8).repeat(5))
    np.save(folder / "contrast.npy", np.zeros((50, 32, 32, 3), np.uint8))
    return folder


@pytest.mark.parametrize("damage", ["truncated", "empty", "not an array"])
def test_a_damaged_cifar_c_file_names_itself_and_no_unsafe_advice(tmp_path, damage):
    folder = official_folder(tmp_path)
    path = folder / "contrast.npy"
    content = {
        "truncated": path.read_bytes()[:-100],
        "empty": b"",
        "not an array": b"\x80\x04garbage" * 8,
    }[damage]
    path.write_bytes(content)
    with pytest.raises(ValueError) as raised:
        load_official(folder, "contrast", 1)
    assert str(raised.value) == (
        f"{path} is corrupt or truncated (not a readable .npy array); delete {folder} and rerun with"
        f" --cifar-c-dir {tmp_path} --download to fetch the official files again"
    )


def test_a_damaged_cifar_c_archive_names_itself_and_extracts_nothing(tmp_path):
    source = official_folder(tmp_path / "source")
    tar_path = tmp_path / "CIFAR-10-C.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(source, arcname="CIFAR-10-C")
    tar_path.write_bytes(tar_path.read_bytes()[:700])  # cut inside the first .npy member
    md5 = hashlib.md5(tar_path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=f"^{tar_path} is corrupt, truncated or not the official archive"):
        install_archive(tar_path, tmp_path / "root", "cifar10", md5=md5)
    assert list((tmp_path / "root").iterdir()) == []


class DroppedConnection(io.BytesIO):
    def read(self, size=-1):
        raise http.client.IncompleteRead(b"partial", 1000)


def test_a_download_cut_mid_transfer_names_the_url_and_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(downloads.urllib.request, "urlopen", lambda url: DroppedConnection())
    target = tmp_path / "archive.tar.gz"
    with pytest.raises(
        RuntimeError, match=f"could not download https://x/a.tar.gz: .*place the file at {target}"
    ):
        downloads.download("https://x/a.tar.gz", target)
    assert list(tmp_path.iterdir()) == []
