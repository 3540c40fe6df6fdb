"""What a run without a shared file system needs from the machine (orthoreg.storage_provider): the `fs`
storage provider's rsync, installed from Debian's package where this user may (a stand-in apt-get on
PATH), else one line naming the remedy, through Snakemake too; and a missing storage plugin, which is
Snakemake's own one-line error naming the package."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orthoreg import debian
from orthoreg.storage_provider import require_programs

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

FAKE_APT = """#!/bin/sh
echo "$@" >> "{calls}"
if [ "$1" = install ] && [ -e "{fail_once}" ]; then /bin/rm "{fail_once}"; exit 100; fi
if [ "$1" = install ] && [ "{installs}" = yes ]; then
    printf '#!/bin/sh\\n' > "{installed}/rsync" && /bin/chmod +x "{installed}/rsync"
fi
"""


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A PATH that holds neither rsync nor apt-get until the test puts a stand-in there: `tools` for
    apt-get, `installed` for what it installs."""
    tools, installed = tmp_path / "tools", tmp_path / "installed"
    tools.mkdir()
    installed.mkdir()
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{installed}")
    return tools, installed


def fake_apt(tmp_path, tools, installed, *, installs=True, stale_lists=False):
    calls, fail_once = tmp_path / "apt-calls", tmp_path / "fail-once"
    if stale_lists:
        fail_once.touch()
    script = FAKE_APT.format(
        calls=calls, fail_once=fail_once, installs="yes" if installs else "no", installed=installed
    )
    (tools / "apt-get").write_text(script)
    (tools / "apt-get").chmod(0o755)
    return calls


@pytest.mark.parametrize("stale_lists", [False, True])
def test_missing_rsync_is_installed_with_apt_and_announced(
    tmp_path, machine, monkeypatch, capfd, stale_lists
):
    """As root (or with password-less sudo): announced on stderr first, retried once after `apt-get
    update` when the first install fails, and rsync is on PATH afterwards."""
    tools, installed = machine
    calls = fake_apt(tmp_path, tools, installed, stale_lists=stale_lists)
    monkeypatch.setattr(debian, "apt_access", lambda: ([], "as root"))
    require_programs("fs")
    assert (
        "installing Debian's package rsync as root: apt-get install -o DPkg::Lock::Timeout=600 -y -q rsync"
        in (capfd.readouterr().err)
    )
    expected = ["install -o DPkg::Lock::Timeout=600 -y -q rsync"]
    if stale_lists:
        expected = [expected[0], "update -o DPkg::Lock::Timeout=600 -q", expected[0]]
    assert calls.read_text().splitlines() == expected
    assert (installed / "rsync").is_file()


def test_rsync_already_there_touches_nothing(machine, monkeypatch):
    _, installed = machine
    (installed / "rsync").write_text("#!/bin/sh\n")
    (installed / "rsync").chmod(0o755)
    monkeypatch.setattr(debian, "apt_access", pytest.fail)
    require_programs("fs")


@pytest.mark.parametrize("provider", [None, "none", "s3", "gcs"])
def test_providers_that_run_no_program_of_their_own_need_nothing(machine, monkeypatch, provider):
    monkeypatch.setattr(debian, "apt_access", pytest.fail)
    require_programs(provider)


def test_missing_rsync_without_rights_to_install_is_one_line_naming_the_remedy(machine, monkeypatch):
    monkeypatch.setattr(
        debian, "apt_access", lambda: (None, "not root, and sudo is used only when ORTHOREG_ALLOW_SUDO=1")
    )
    with pytest.raises(RuntimeError) as raised:
        require_programs("fs")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("the fs storage provider copies files with rsync, which is not installed")
    assert "not root, and sudo is used only when ORTHOREG_ALLOW_SUDO=1" in message
    assert "`sudo apt-get install rsync`" in message


def test_an_apt_run_that_installs_nothing_is_named_in_the_error(tmp_path, machine, monkeypatch):
    tools, installed = machine
    fake_apt(tmp_path, tools, installed, installs=False)
    monkeypatch.setattr(debian, "apt_access", lambda: ([], "as root"))
    with pytest.raises(
        RuntimeError,
        match="`apt-get install -o DPkg::Lock::Timeout=600 --reinstall -y -q rsync` succeeded but rsync is still not on PATH",
    ):
        require_programs("fs")


def snakemake_without(tmp_path, *hidden_plugins, path):
    """The reduced demo's dry run with the fs storage provider, Snakemake started in a Python that does
    not see `hidden_plugins` (as if they were not installed) and with PATH = `path`."""
    hide = (
        "import pkgutil, runpy, sys\n"
        "found = pkgutil.iter_modules\n"
        f"hidden = {hidden_plugins!r}\n"
        "pkgutil.iter_modules = lambda *a, **k: (m for m in found(*a, **k) if m.name not in hidden)\n"
        "sys.argv[0] = 'snakemake'\n"
        "runpy.run_module('snakemake', run_name='__main__')\n"
    )
    command = [
        sys.executable,
        "-c",
        hide,
        *("-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path / "work")),
        *("--dry-run", "--cores", "1", "--configfile", str(ROOT / "config" / "ci.yaml")),
        *("--default-storage-provider", "fs", "--default-storage-prefix", str(tmp_path / "bucket")),
        *("--shared-fs-usage", "none"),
    ]
    environment = {**os.environ, "PATH": path}
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)


def error_lines(result):
    output = result.stdout + result.stderr
    return [line for line in output.splitlines() if "rror" in line]


def without_programs(folder: Path, *names: str) -> str:
    """A PATH with this environment's commands and the system's but `names`: links in `folder`."""
    folder.mkdir()
    for system in ("/usr/bin", "/bin"):
        for program in Path(system).iterdir():
            if program.name not in names and not (folder / program.name).exists():
                (folder / program.name).symlink_to(program)
    return f"{BIN}{os.pathsep}{folder}"


def test_snakemake_without_rsync_stops_before_any_job_with_one_line(tmp_path):
    """No rsync and no apt-get on PATH (so no way to install it): the workflow stops while it is parsed,
    before any job, with the one line that names the remedy."""
    result = snakemake_without(tmp_path, path=without_programs(tmp_path / "system", "rsync", "apt-get"))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    (line,) = [line for line in output.splitlines() if "copies files with rsync" in line]
    assert line.startswith("the fs storage provider copies files with rsync, which is not installed")
    assert "`sudo apt-get install rsync`" in line
    assert not (tmp_path / "bucket").exists()


def test_a_missing_storage_plugin_is_snakemakes_one_line_naming_the_package(tmp_path):
    result = snakemake_without(tmp_path, "snakemake_storage_plugin_fs", path=os.environ["PATH"])
    assert result.returncode != 0
    assert error_lines(result) == [
        "Error: Error loading Snakemake plugin fs: The package snakemake-storage-plugin-fs is not installed."
    ]
