"""The lean install, for real: the wheel built from this checkout, installed with no index into a fresh
venv that holds torch, torchvision and their own dependencies and nothing else of the dev environment,
imports no extra, answers `orthoreg --version`, and trains torchvision networks and a tiny CNN with
every registered regulariser. It also prints the install footprint against `orthoreg[workflow]`.

Installing torch into the fresh venv would download or copy several GB, so its packages are linked
from this environment's site-packages instead: only those the dependency metadata of torch and
torchvision names (markers and extras evaluated), with their dist-info folders, so pip sees them as
installed and installs the wheel without looking anything up."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import orthoreg
from orthoreg.regularizers import regularizer_spec

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])  # this (dev) environment's site-packages
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LINKED = ("torch", "torchvision")
NEVER_IMPORTED = ("pandas", "matplotlib", "seaborn", "lightning", "snakemake", "transformers", "timm", "PIL")
CONSTRAINED = {
    name for name in orthoreg.available_regularizers() if regularizer_spec(name).constrain is not None
}
NEVER_INSTALLED = {"pandas", "matplotlib", "seaborn", "lightning", "snakemake", "transformers", "timm"}

TRAIN = """
import json
import torch
import torchvision
import orthoreg
from orthoreg.regularizers import regularizer_spec

def train(model, inputs, steps=2, **regularizer):
    torch.manual_seed(0)
    labels = torch.randint(10, (inputs.shape[0],))
    reg = orthoreg.OrthogonalityRegularizer(model, lam=1e-2, **regularizer)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    start = [parameter.detach().clone() for parameter in model.parameters()]
    for step in range(steps):
        loss = torch.nn.functional.cross_entropy(model(inputs), labels) + reg(step / steps)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    moved = any(not torch.equal(a, b) for a, b in zip(start, model.parameters()))
    return {"loss": float(loss), "penalty": float(reg.last_penalty), "moved": moved}

class TinyCNN(torch.nn.Module):
    # a stem and one residual block: block.conv1 and the 1x1 shortcut are what ocnn_reference takes
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.block = torch.nn.ModuleDict({
            "conv1": torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
            "shortcut": torch.nn.Conv2d(8, 16, 1, stride=2),
        })
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.block["conv1"](x) + self.block["shortcut"](x))
        return self.head(x.mean(dim=(2, 3)))

def tiny_cnn():
    return TinyCNN()

images = torch.rand(2, 3, 64, 64)
results = {
    "convnext_tiny": train(
        torchvision.models.convnext_tiny(weights=None, num_classes=10), images, name="dn_relaxed",
        include_linear=True,
    ),
    "mobilenet_v3_small": train(
        torchvision.models.mobilenet_v3_small(weights=None, num_classes=10), images, name="dn_relaxed"
    ),
}
for name in orthoreg.available_regularizers():
    results[f"tiny_cnn/{name}"] = train(tiny_cnn(), torch.rand(4, 3, 16, 16), name=name)
print(json.dumps(results))
"""


def installed_distributions(site: Path) -> dict[str, importlib.metadata.Distribution]:
    distributions: dict[str, importlib.metadata.Distribution] = {}
    for distribution in importlib.metadata.distributions(path=[str(site)]):
        distributions.setdefault(canonicalize_name(distribution.metadata["Name"]), distribution)
    return distributions


def requirement_closure(requirements: Iterable[str], installed: dict) -> set[str]:
    """The installed distributions `requirements` need, transitively, with environment markers and
    requested extras evaluated as pip evaluates them on this interpreter."""
    pending = [Requirement(requirement) for requirement in requirements]
    done: set[tuple[str, str]] = set()  # (distribution, extra or "" for its base requirements)
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        assert name in installed, f"{requirement} is needed but not installed in {SITE}"
        for extra in {"", *requirement.extras} - {key[1] for key in done if key[0] == name}:
            done.add((name, extra))
            for line in installed[name].requires or ():
                needed = Requirement(line)
                if needed.marker.evaluate({"extra": extra}) if needed.marker else extra == "":
                    pending.append(needed)
    return {name for name, _ in done}


def project_requirements(extra: str | None) -> list[str]:
    """pyproject.toml's requirements of the base install plus `extra`, the project's own extras expanded."""
    optional = PROJECT["optional-dependencies"]
    found, pending = list(PROJECT["dependencies"]), [extra] if extra else []
    while pending:
        for line in optional[pending.pop()]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == PROJECT["name"]:
                pending.extend(requirement.extras)
            else:
                found.append(line)
    return found


def link_distributions(names: set[str], installed: dict, target: Path) -> None:
    """Symlink into `target` the files of the distributions `names` (from SITE): a whole folder where
    no other distribution has files under it, else folder by folder (namespace packages such as
    nvidia/ shared with distributions left out)."""
    owners: dict[tuple[str, ...], set[str]] = defaultdict(set)
    children: dict[tuple[str, ...], set[tuple[str, ...]]] = defaultdict(set)
    for name, distribution in installed.items():
        for file in distribution.files or ():
            parts = Path(file).parts
            if parts[0] == "..":  # console scripts outside site-packages: not needed here
                continue
            for depth in range(1, len(parts) + 1):
                owners[parts[:depth]].add(name)
                children[parts[: depth - 1]].add(parts[:depth])

    def link(prefix: tuple[str, ...]) -> None:
        destination = target.joinpath(*prefix)
        if owners[prefix] <= names:
            destination.symlink_to(SITE.joinpath(*prefix))
            return
        destination.mkdir()
        for child in children[prefix]:
            if owners[child] & names:
                link(child)

    for top in children[()]:
        if owners[top] & names:
            link(top)


def footprint(names: Iterable[str], installed: dict, site: Path) -> tuple[int, float]:
    """(packages, MB) of the distributions `names`: the sizes of the files their RECORDs list."""
    names = list(names)
    total = 0
    for name in names:
        for file in installed[name].files or ():
            path = site / file
            if path.is_file():
                total += path.stat().st_size  # follows the links to the real files
    return len(names), total / 1e6


def run(*command: str | Path, **options) -> str:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))
    }
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=900,
        env={**environment, "PYTHONNOUSERSITE": "1"},
        **options,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def lean(tmp_path_factory) -> dict:
    """A fresh venv with torch, torchvision (linked) and the wheel of this checkout (installed)."""
    work = tmp_path_factory.mktemp("lean")
    source = work / "source"  # a copy, so the build leaves no build/ or egg-info in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # no isolation: an isolated build would fetch setuptools from the index; this one is installed
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", work / "dist", source)
    (wheel,) = (work / "dist").glob("orthoreg-*.whl")

    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)  # pip runs from outside it (--python)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    installed = installed_distributions(SITE)
    torch_closure = requirement_closure(LINKED, installed)
    link_distributions(torch_closure, installed, site)
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--no-cache-dir", wheel)
    return {"python": python, "venv": venv, "site": site, "torch_closure": torch_closure, "dev": installed}


def test_lean_venv_holds_torch_torchvision_and_orthoreg_only(lean):
    listed = json.loads(run(sys.executable, "-m", "pip", "--python", lean["python"], "list", "--format=json"))
    names = {canonicalize_name(package["name"]) for package in listed}
    assert names == lean["torch_closure"] | {"orthoreg"}
    assert not names & NEVER_INSTALLED
    # numpy only because torchvision needs it; torch alone does not
    assert ("numpy" in names) == ("numpy" in lean["torch_closure"])
    assert "numpy" not in requirement_closure(["torch"], lean["dev"])


def test_import_orthoreg_imports_no_extra(lean):
    code = f"import sys, orthoreg; print([m for m in {NEVER_IMPORTED!r} if m in sys.modules])"
    assert run(lean["python"], "-c", code).strip() == "[]"


def test_orthoreg_command_prints_the_version(lean):
    assert run(lean["venv"] / "bin" / "orthoreg", "--version").strip() == f"orthoreg {PROJECT['version']}"


def test_lean_install_trains_torchvision_networks_and_every_regularizer(lean, tmp_path):
    results = json.loads(run(lean["python"], "-c", TRAIN, cwd=tmp_path).splitlines()[-1])
    registered = {f"tiny_cnn/{name}" for name in orthoreg.available_regularizers()}
    assert set(results) == {"convnext_tiny", "mobilenet_v3_small"} | registered
    for case, result in results.items():
        assert result["moved"] and math.isfinite(result["loss"]) and math.isfinite(result["penalty"]), case
        # a hard constraint has no penalty: the parametrisation does its work inside the forward pass
        penalised = case != "tiny_cnn/none" and case.split("/")[-1] not in CONSTRAINED
        assert (result["penalty"] > 0) == penalised, (case, result)


def test_footprint_lean_versus_workflow(lean):
    """Printed (run with -s to see it): packages and MB of site-packages, from the RECORD files, in all
    and beyond torch's own dependencies. The workflow's is computed from this (dev) environment, which
    has every package it needs, instead of installing it."""
    fresh = installed_distributions(lean["site"])
    torch_alone = footprint(requirement_closure(["torch"], lean["dev"]), lean["dev"], SITE)
    orthoreg_alone = footprint(["orthoreg"], fresh, lean["site"])
    workflow_names = requirement_closure(project_requirements("workflow"), lean["dev"])
    workflow = footprint(workflow_names, lean["dev"], SITE)
    rows = [  # label, (packages, MB), whether torch's own share is taken off too
        ("torch and its dependencies", torch_alone, False),
        ("orthoreg (the wheel)", orthoreg_alone, False),
        ("lean venv: orthoreg + torch + torchvision", footprint(fresh, fresh, lean["site"]), True),
        ("orthoreg[workflow]", (workflow[0] + 1, workflow[1] + orthoreg_alone[1]), True),
    ]
    print("\ninstall footprint: packages, MB of site-packages (in all; beyond torch's)")
    for label, (packages, megabytes), beyond in rows:
        more = (
            f"; {packages - torch_alone[0]:3d} packages {megabytes - torch_alone[1]:8.1f} MB"
            if beyond
            else ""
        )
        print(f"  {label:44s} {packages:3d} packages {megabytes:8.1f} MB{more}")
    extra = sorted(workflow_names - lean["torch_closure"])
    print(f"  orthoreg[workflow] adds to torch's: {', '.join(extra)}")
    assert workflow_names > {"pandas", "matplotlib", "seaborn", "snakemake", "numpy"}
