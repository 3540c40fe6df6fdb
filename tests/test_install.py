"""What installing orthoreg promises is true: the Makefile stops an older Python with one line naming
it (checked with stand-in interpreters that report a version), its minimum is pyproject's
requires-python, and the dependency bounds are the ones the features need."""

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def stand_in_python(folder: Path, reported: str) -> Path:
    """An executable that answers like `python --version` of the given version, whatever it is asked."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "python"
    path.write_text(f'#!/bin/sh\necho "Python {reported}"\n')
    path.chmod(0o755)
    return path


def make(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("target", ["demo", "test"])
def test_an_older_python_stops_make_with_one_line_naming_it(tmp_path, target):
    python = stand_in_python(tmp_path / "bin", "3.10.12")
    venv = tmp_path / "venv"
    result = make(target, f"PYTHON={python}", f"VENV={venv}")
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1, result.stderr
    line = result.stderr.strip()
    assert (
        f"orthoreg needs Python >= 3.11 (Snakemake 8+ and its SLURM plugin), but {python} is Python 3.10.12"
        in line
    )
    assert f"run make {target} PYTHON=python3.11" in line
    assert result.stdout == "" and not venv.exists()  # nothing ran


def test_an_old_venv_is_named_with_the_way_out(tmp_path):
    venv = tmp_path / "venv"
    stand_in_python(venv / "bin", "3.10.4")
    result = make("demo", f"PYTHON={stand_in_python(tmp_path / 'new', '3.12.1')}", f"VENV={venv}")
    assert result.returncode != 0 and len(result.stderr.splitlines()) == 1
    assert (
        f"{venv}/bin/python is Python 3.10.4; remove {venv} and run make demo PYTHON=python3.11"
        in result.stderr
    )


def test_a_missing_python_is_one_line_too(tmp_path):
    result = make("demo", f"PYTHON={tmp_path / 'no-python'}", f"VENV={tmp_path / 'venv'}")
    assert result.returncode != 0 and len(result.stderr.splitlines()) == 1
    assert f"{tmp_path / 'no-python'} was not found or is not Python" in result.stderr


@pytest.mark.parametrize("reported", ["3.11.0", "3.12.7", "3.13.1", "4.0.0"])
def test_a_recent_python_passes_the_check(tmp_path, reported):
    python = stand_in_python(tmp_path / "bin", reported)
    result = make("-n", "demo", f"PYTHON={python}", f"VENV={tmp_path / 'venv'}")  # -n: print, run nothing
    assert result.returncode == 0, result.stderr
    assert f"{python} -m venv {tmp_path / 'venv'}" in result.stdout


def test_the_makefile_minimum_is_requires_python():
    needed = re.search(r"^PYTHON_NEEDED := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    allowed = SpecifierSet(PROJECT["requires-python"])
    assert Version(needed) in allowed
    assert Version("3.10.99") not in allowed  # Snakemake 8+ and the SLURM plugin need 3.11
    assert f"Programming Language :: Python :: {needed}" in PROJECT["classifiers"]


def requirements(extra: str | None = None) -> dict[str, Requirement]:
    listed = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    return {Requirement(line).name: Requirement(line) for line in listed}


def test_torch_has_a_lower_bound_only():
    specifiers = list(requirements()["torch"].specifier)
    assert specifiers and all(spec.operator == ">=" for spec in specifiers)


def test_the_slurm_plugin_reads_the_profiles_status_command():
    """profiles/slurm sets `slurm-status-command`; the plugin parses it from 2.0.1 on."""
    assert "slurm-status-command:" in (ROOT / "profiles" / "slurm" / "config.yaml").read_text()
    plugin = requirements("workflow")["snakemake-executor-plugin-slurm"].specifier
    assert Version("2.0.0") not in plugin and Version("2.0.1") in plugin


def test_tensorboard_is_an_extra_the_tests_install():
    assert "tensorboard" in requirements("tensorboard")
    assert "tensorboard" in Requirement(PROJECT["optional-dependencies"]["dev"][0]).extras
    assert "tensorboard" not in requirements()  # off by default: the lean library never needs it
