"""The robustness evaluation of one model: clean accuracy, common corruptions and L-inf attacks, and the
robustness.json a run directory gets.

Every random draw (corruption noise, PGD starts) comes from a generator seeded from the run's seed and
the record's own identity (corruption and severity, or attack, steps and eps), so a record does not
change when other records are added or removed, and a rerun with the same seed is identical.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from orthoreg.data import evaluation_batches, load_split
from orthoreg.devices import resolve_device
from orthoreg.files import save_json
from orthoreg.precision import Autocast, autocast_dtype, dtype_name
from orthoreg.provenance import provenance
from orthoreg.robustness.attacks import AttackSpec, available_attacks, check_eps, get_attack
from orthoreg.robustness.cifar_c import (
    ARCHIVES,
    BENCHMARK_CORRUPTIONS,
    download_cifar_c,
    load_official,
    official_folder,
    present_corruptions,
)
from orthoreg.robustness.corruptions import GENERATED_CORRUPTIONS, SEVERITIES, corrupt
from orthoreg.runs import load_run, read_record

SOURCES = ("official", "generated")
EPS_TOLERANCE = 1e-6  # radii closer than this are the same radius (0.03137255 is 8/255)


@dataclass(frozen=True)
class RobustnessSettings:
    """What to measure. eps: the sweep's radii (FGSM and the shortest PGD at each); every PGD step
    count runs at reference_eps. corruptions None means all of the source in use."""

    eps: tuple[float, ...] = tuple(k / 255 for k in (0, 1, 2, 4, 8, 16))
    pgd_steps: tuple[int, ...] = (10, 20)
    step_size: float = 2 / 255
    reference_eps: float = 8 / 255
    severities: tuple[int, ...] = SEVERITIES
    corruptions: tuple[str, ...] | None = None
    seed: int = 0
    batch_size: int = 250

    def check(self) -> None:
        """ValueError naming the first bad setting."""
        for eps in (*self.eps, self.reference_eps):
            check_eps(eps)
        if not self.pgd_steps or any(steps < 1 for steps in self.pgd_steps):
            raise ValueError(f"pgd_steps must be one or more integers >= 1, got {list(self.pgd_steps)}")
        if not (math.isfinite(self.step_size) and self.step_size > 0):
            raise ValueError(f"step_size must be > 0, got {self.step_size!r}")
        bad = [s for s in self.severities if s not in SEVERITIES]
        if bad or not self.severities:
            raise ValueError(f"severities must be among {list(SEVERITIES)}, got {list(self.severities)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def attack_plan(settings: RobustnessSettings) -> list[AttackSpec]:
    """Every registered attack's specs at each radius of the sweep and reference_eps (radius by
    radius), then each attack's extra specs at reference_eps alone."""
    radii: list[float] = [settings.reference_eps]
    for eps in settings.eps:
        if all(abs(eps - seen) > EPS_TOLERANCE for seen in radii):
            radii.append(eps)
    attacks = [get_attack(name) for name in available_attacks()]
    plan = [spec for eps in sorted(radii) for attack in attacks for spec in attack.sweep(settings, eps)]
    return plan + [spec for attack in attacks for spec in attack.reference(settings)]


def derived_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed from the run seed and a record's identity, stable across runs and platforms."""
    digest = hashlib.sha256("/".join(str(part) for part in (seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    device: torch.device,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Top-1 accuracy on uint8 images, each batch passed through `transform` (in [0, 1]) first."""
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with torch.no_grad():
        for x, y in evaluation_batches(images, labels, batch_size, device):
            if transform is not None:
                x = transform(x)
            correct += (model(x).argmax(1) == y).sum()
    return int(correct) / images.shape[0]


def adversarial_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    spec: AttackSpec,
    *,
    batch_size: int,
    device: torch.device,
    seed: int,
) -> float:
    """Accuracy on the adversarial examples of `spec`, crafted batch by batch."""
    generator = torch.Generator().manual_seed(seed)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    craft = get_attack(spec.attack).craft
    for x, y in evaluation_batches(images, labels, batch_size, device):
        adversarial = craft(model, x, y, spec, generator)
        with torch.no_grad():
            correct += (model(adversarial).argmax(1) == y).sum()
    return int(correct) / images.shape[0]


def corruption_names(requested: Sequence[str] | None, official: Path | None = None) -> list[str]:
    """The corruptions to evaluate: the requested ones (default: all), checked against what the source
    offers: the files in the `official` folder, else the corruptions generated in code."""
    if official is not None:
        valid = present_corruptions(official)
        default = [name for name in BENCHMARK_CORRUPTIONS if name in valid]
    else:
        valid = default = list(GENERATED_CORRUPTIONS)
    if requested is None:
        return default
    unknown = [name for name in requested if name not in valid]
    if unknown:
        where = "generated in code" if official is None else f"files in {official}"
        raise ValueError(
            f"unknown corruption(s) {', '.join(map(repr, unknown))}; valid ({where}): {', '.join(valid)}"
        )
    return list(dict.fromkeys(requested))


def generated_records(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    names: Sequence[str],
    settings: RobustnessSettings,
    device: torch.device,
) -> list[dict[str, Any]]:
    records = []
    for name in names:
        for severity in settings.severities:
            generator = torch.Generator().manual_seed(
                derived_seed(settings.seed, "corruption", name, severity)
            )
            value = accuracy(
                model,
                images,
                labels,
                batch_size=settings.batch_size,
                device=device,
                transform=partial(corrupt, name=name, severity=severity, generator=generator),
            )
            records.append(corruption_record("generated", name, severity, value, int(images.shape[0])))
    return records


def corruption_record(source: str, name: str, severity: int, value: float, n: int) -> dict[str, Any]:
    """One robustness.json corruption record (docs/architecture.md)."""
    return {"source": source, "corruption": name, "severity": severity, "accuracy": value, "n": n}


def official_records(
    model: nn.Module,
    folder: Path,
    names: Sequence[str],
    settings: RobustnessSettings,
    limit: int | None,
    device: torch.device,
) -> list[dict[str, Any]]:
    records = []
    for name in names:
        for severity in settings.severities:
            images, labels = load_official(folder, name, severity, limit)
            value = accuracy(model, images, labels, batch_size=settings.batch_size, device=device)
            records.append(corruption_record("official", name, severity, value, int(images.shape[0])))
    return records


def adversarial_records(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: RobustnessSettings,
    device: torch.device,
) -> list[dict[str, Any]]:
    records = []
    for spec in attack_plan(settings):
        seed = derived_seed(settings.seed, spec.attack, spec.steps, f"{spec.eps:.9f}")
        value = adversarial_accuracy(
            model, images, labels, spec, batch_size=settings.batch_size, device=device, seed=seed
        )
        records.append({**asdict(spec), "accuracy": value, "n": int(images.shape[0])})
    return records


def robustness_report(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: RobustnessSettings,
    *,
    device: str | torch.device = "cpu",
    official: Path | None = None,
    official_limit: int | None = None,
    amp: str = "off",
) -> dict[str, Any]:
    """clean_accuracy, n, seed, forward_dtype, corruptions[] and adversarial[] (the robustness.json of a
    run) for a pixel-space model on uint8 test images. With `official` (an extracted CIFAR-C folder) the
    corruption records come from its files (first `official_limit` images per severity), else they are
    generated. `amp` as in training (off: fp32; the attacks' input gradients are fp32 either way)."""
    settings.check()
    device = torch.device(device)
    names = corruption_names(settings.corruptions, official)
    model.eval()
    dtype = autocast_dtype(amp, device)
    if dtype is not None:
        model = Autocast(model, dtype, device).eval()
    clean = accuracy(model, images, labels, batch_size=settings.batch_size, device=device)
    if official is not None:
        corruptions = official_records(model, official, names, settings, official_limit, device)
    else:
        corruptions = generated_records(model, images, labels, names, settings, device)
    return {
        "clean_accuracy": clean,
        "n": int(images.shape[0]),
        "seed": settings.seed,
        "forward_dtype": dtype_name(dtype),
        "corruptions": corruptions,
        "adversarial": adversarial_records(model, images, labels, settings, device),
    }


def mean_corruption_accuracy(records: Sequence[dict[str, Any]]) -> dict[str, dict[Any, float]]:
    """Per source, the mean accuracy over corruptions at each severity and over all records ("all").
    Official and generated records are never pooled: they are different images."""
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record["source"] not in SOURCES:
            raise ValueError(f"corruption source {record['source']!r} is not one of {', '.join(SOURCES)}")
        by_source[record["source"]].append(record)
    means: dict[str, dict[Any, float]] = {}
    for source, group in by_source.items():
        by_severity: dict[int, list[float]] = defaultdict(list)
        for record in group:
            by_severity[int(record["severity"])].append(float(record["accuracy"]))
        means[source] = {severity: sum(v) / len(v) for severity, v in sorted(by_severity.items())}
        means[source]["all"] = sum(float(r["accuracy"]) for r in group) / len(group)
    return means


def _official_source(dataset: str, cifar_c_dir: Path | None, download: bool) -> Path | None:
    """The extracted official folder to use, downloading it when asked; None means generate."""
    if download and cifar_c_dir is None:
        raise ValueError("--download needs --cifar-c-dir, the folder to put the official files in")
    if download and dataset not in ARCHIVES:
        raise ValueError(
            f"no official corruption files exist for dataset {dataset!r} (only for "
            f"{', '.join(ARCHIVES)}); leave out --download to use generated corruptions"
        )
    if cifar_c_dir is None:
        return None
    folder = official_folder(cifar_c_dir, dataset)
    if folder is None and download:
        folder = download_cifar_c(dataset, cifar_c_dir)
    return folder


def run_robustness(
    run_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    settings: RobustnessSettings,
    *,
    limit: int | None = None,
    cifar_c_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    device: str = "auto",
    amp: str = "off",
) -> dict[str, Any]:
    """Measure the run in run_dir on its dataset's test split (first `limit` images) and write
    robustness.json there atomically; returns what was written."""
    settings.check()
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None (all test images), got {limit}")
    started = (time.monotonic(), time.process_time())
    dataset = read_record(run_dir)["dataset"]
    official = _official_source(dataset, None if cifar_c_dir is None else Path(cifar_c_dir), download)
    corruption_names(settings.corruptions, official)
    torch_device = resolve_device(device)
    model, _ = load_run(run_dir, torch_device)
    model = model.to(memory_format=torch.channels_last)
    images, labels = load_split(dataset, Path(data_dir), "test", limit=limit)
    result = robustness_report(
        model, images, labels, settings, device=torch_device, official=official, official_limit=limit, amp=amp
    )
    result["provenance"] = provenance(
        torch_device, time.monotonic() - started[0], time.process_time() - started[1]
    )
    save_json(result, Path(run_dir) / "robustness.json")
    return result
