"""The projection part: device-hours of a pipeline grid (`--grid`, default the paper grid `config/config.yaml`; with --quick the CI grid
merged over it), from the rates the earlier parts measured.

Training from the measured eager step rate (the config's compile setting is off) with each
regulariser's measured overhead over the steps that pay it, the per-epoch test pass at its measured
rate, and evaluation + robustness from counted image passes at the measured rates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from regularizer_cost import is_constraint

from gpucheck.harness import ROOT, Context, Deadline, Skip, part, release_memory
from gpucheck.rounding import rounded
from gpucheck.steps import throughput_row
from orthoreg.config import TrainConfig
from orthoreg.data import dataset_info
from orthoreg.grid import all_runs, main_runs, merge_configs, train_config
from orthoreg.regularizers import schedule_multiplier
from orthoreg.robustness.cifar_c import BENCHMARK_CORRUPTIONS
from orthoreg.robustness.suite import RobustnessSettings, attack_plan

METHOD = (
    "measured: eager engine step rate (batch as measured, 3x32x32, 10 classes) and fp32 test-pass "
    "rate per model; each regulariser's step overhead averaged over the models the regularisers part "
    "measured, over the steps its lambda is non-zero (a hard constraint's over every step). Estimated: "
    "evaluation and robustness as counted image passes (attacks' gradient passes at the training rate, "
    "forward passes at the test-pass rate, 15 corruptions); corruption synthesis and process start-up "
    "are not counted"
)


def merged_config(paths: Sequence[str]) -> dict[str, Any]:
    """The pipeline config as Snakemake builds it: each file merged over the one before."""
    return merge_configs(*(yaml.safe_load((ROOT / path).read_text()) for path in paths))


def overhead_fraction(config: TrainConfig) -> float:
    """The fraction of training steps that pay the regulariser's overhead: every step for a hard
    constraint (its parametrisation runs in each forward pass); for a penalty, the steps where the
    scheduled lambda is non-zero (OrthogonalityRegularizer skips it at 0; the step schedule is 0 from
    60 % of training on)."""
    if config.regularizer == "none":
        return 0.0
    if is_constraint(config.regularizer):
        return 1.0
    if config.lam == 0:
        return 0.0
    points = 1000
    active = sum(schedule_multiplier(config.schedule, (k + 0.5) / points) > 0 for k in range(points))
    return active / points


def robustness_passes(config: Mapping[str, Any], test_size: int) -> tuple[int, int]:
    """Image passes of one run's `orthoreg robustness`: (forward + input-gradient, forward-only), from
    the config's attacks (each spec's steps, then one scoring pass) and corruptions (the 15 official
    CIFAR-C ones at each severity, plus the clean pass)."""
    settings = config["robustness"]
    plan = attack_plan(
        RobustnessSettings(
            eps=tuple(settings["eps"]),
            pgd_steps=tuple(settings["pgd_steps"]),
            severities=tuple(settings["severities"]),
        )
    )
    images = settings.get("limit") or test_size
    gradient = images * sum(spec.steps for spec in plan)
    forward = images * (len(plan) + 1 + len(BENCHMARK_CORRUPTIONS) * len(settings["severities"]))
    return gradient, forward


def model_rates(context: Context, models: Sequence[str], deadline: Deadline) -> dict[str, dict[str, Any]]:
    """Eager training and test-pass rates (images/s) per model: the throughput part's rows, and a
    measurement here for a model it did not reach."""
    rows = {row["model"]: row for row in context.parts.get("throughput", {}).get("rows", [])}
    for model in models:
        if model not in rows:
            deadline.check(f"measuring {model} for the projection")
            rows[model] = throughput_row(context, model, compile=False)
            release_memory(context.device)
    return rows


def regularizer_overheads(context: Context) -> dict[str, float]:
    """Per regulariser, the extra step time it costs (ratio - 1), averaged over the models the
    regularisers part measured."""
    measured = context.parts.get("regularizers", {}).get("models", {})
    names = {name for costs in measured.values() for name in costs["step_ratio"]}
    return {
        name: sum(costs["step_ratio"][name] - 1 for costs in measured.values()) / len(measured)
        for name in names
    }


def run_seconds(
    config: Mapping[str, Any],
    run_config: TrainConfig,
    rate: Mapping[str, Any],
    overhead: float,
    robustness: bool,
) -> dict[str, float]:
    """Device-seconds of one run of the grid `config`: its training, its per-epoch test passes, its
    evaluation and (a main run's) robustness."""
    info = dataset_info(run_config.dataset)
    train_images = run_config.epochs * (run_config.limit_train or info.train_size)
    test_images = run_config.epochs * (run_config.limit_test or info.test_size)
    evaluate_images = config["evaluate"].get("limit_test") or info.test_size
    gradient, forward = robustness_passes(config, info.test_size) if robustness else (0, 0)
    slowdown = 1 + overhead * overhead_fraction(run_config)
    return {
        "training": train_images / rate["engine_images_per_s"] * slowdown,
        "test_passes": test_images / rate["test_images_per_s"],
        "evaluate_and_robustness": gradient / rate["engine_images_per_s"]
        + (forward + evaluate_images) / rate["test_images_per_s"],
    }


@part("projection", "device-hours of the paper grid from the measured rates", weight=25, quick_weight=1)
def projection(context: Context, record: dict, deadline: Deadline) -> None:
    config = merged_config(context.plan.grid)
    runs = all_runs(config)
    configs = {path: train_config(run, config) for path, run in runs.items()}
    if any(run_config.compile for run_config in configs.values()):
        raise Skip("the grid compiles its models; this projection uses eager rates")
    main = {run.path for run in main_runs(config)}
    rates = model_rates(context, sorted({run.model for run in runs.values()}), deadline)
    overheads = regularizer_overheads(context)
    hours: dict[str, float] = {"training": 0.0, "test_passes": 0.0, "evaluate_and_robustness": 0.0}
    per_model: dict[str, float] = {}
    for path, run in runs.items():
        overhead = overheads.get(run.regularizer, 0.0)
        seconds = run_seconds(config, configs[path], rates[run.model], overhead, path in main)
        for share, value in seconds.items():
            hours[share] += value / 3600
        per_model[run.model] = per_model.get(run.model, 0.0) + sum(seconds.values()) / 3600
    record.update(
        grid=" + ".join(context.plan.grid),
        runs=len(runs),
        device_hours=rounded(sum(hours.values())),
        hours={share: rounded(value) for share, value in hours.items()},
        hours_per_model={model: rounded(value) for model, value in sorted(per_model.items())},
        penalty_overhead={name: rounded(value) for name, value in sorted(overheads.items())},
        method=METHOD,
    )
