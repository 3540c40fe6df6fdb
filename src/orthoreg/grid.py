"""The experiment grid: which training runs a pipeline config asks for, and how each is invoked.

The Snakemake workflow holds no logic of its own; it asks this module for the runs of a config, their
directories and their `orthoreg train` arguments, so the grid is tested by pytest like any other code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orthoreg.config import (
    ABLATION_PARAMS,
    TrainConfig,
    config_key,
    regularizer_option_defaults,
    section_fields,
    to_arguments,
)
from orthoreg.data import available_datasets
from orthoreg.files import save_json
from orthoreg.models import available_models
from orthoreg.regularizers import available_regularizers, regularizer_options

# Top-level keys a pipeline config may hold; anything else is a typo and is refused by name.
CONFIG_KEYS = (
    "name",
    "data_dir",
    "results_dir",
    "figures_dir",
    "datasets",
    "models",
    "regularizers",
    "seeds",
    "gpu_resource",
    "threads",
    "retries",
    "train",
    "regularization",
    "evaluate",
    "robustness",
    "ablations",
    "resources",
)
# `train:` takes every recipe and runtime field of TrainConfig but `threads` (a top-level key, shared
# with the evaluate and robustness jobs); `regularization:` its regularisation fields by their config
# names, the options of the registered regularisers, and per-regulariser `overrides`.
TRAIN_KEYS = tuple(name for name in section_fields("recipe", "runtime") if name != "threads")
REGULARIZATION_FIELDS = tuple(name for name in section_fields("regularization") if name != "reg_options")
ABLATION_KEYS = ("model", "dataset", "seeds", *ABLATION_PARAMS)


def regularization_keys() -> tuple[str, ...]:
    """The keys `regularization:` accepts (the regulariser options of plugins included)."""
    return (
        *(config_key(name) for name in REGULARIZATION_FIELDS),
        *sorted(regularizer_option_defaults()),
        "overrides",
    )


@dataclass(frozen=True)
class Run:
    """One training run of the grid; `ablation` is (param, value) for ablation runs, else None."""

    dataset: str
    model: str
    regularizer: str
    seed: int
    ablation: tuple[str, float | str] | None = None

    @property
    def path(self) -> str:
        """Directory of the run, relative to the results directory."""
        if self.ablation is None:
            return f"runs/{self.dataset}/{self.model}/{self.regularizer}/seed{self.seed}"
        param, value = self.ablation
        return (
            f"ablations/{param}/{self.dataset}/{self.model}/{self.regularizer}/"
            f"{param}={_format_value(value)}/seed{self.seed}"
        )


def _format_value(value: float | str) -> str:
    return value if isinstance(value, str) else format(float(value), "g")


def _check_keys(section: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    allowed = tuple(allowed)
    for key in section:
        if key not in allowed:
            raise ValueError(f"unknown config key {where + key!r}; allowed keys: {', '.join(allowed)}")


def _check_names(values: Iterable[str], valid: Iterable[str], key: str) -> None:
    valid = sorted(valid)
    for value in values:
        if value not in valid:
            raise ValueError(f"config {key}: unknown name {value!r}; valid names: {', '.join(valid)}")


def check_config_keys(config: Mapping[str, Any]) -> None:
    """Refuse an unknown key, naming it and the allowed ones (run before the schema, whose message for
    an unexpected key does not list the allowed keys)."""
    _check_keys(config, CONFIG_KEYS, "")
    for section, allowed in (
        ("train", TRAIN_KEYS),
        ("regularization", regularization_keys()),
        ("ablations", ABLATION_KEYS),
    ):
        if isinstance(config.get(section), Mapping):
            _check_keys(config[section], allowed, f"{section}.")


def check_config_names(config: Mapping[str, Any]) -> None:
    """Refuse a dataset, model or regulariser name that no registry knows (after the schema checked
    types), so a newly registered one needs no schema change."""
    regularizers, models, datasets = available_regularizers(), available_models(), available_datasets()
    _check_names(config["datasets"], datasets, "datasets")
    _check_names(config["models"], models, "models")
    _check_names(config["regularizers"], regularizers, "regularizers")
    _check_names(config["regularization"].get("overrides", {}), regularizers, "regularization.overrides")
    ablations = config.get("ablations") or {}
    if ablations:
        _check_names([ablations["model"]], models, "ablations.model")
        _check_names([ablations["dataset"]], datasets, "ablations.dataset")
        for param in ABLATION_PARAMS:
            spec = ablations.get(param) or {}
            _check_names(spec.get("regularizers", []), regularizers, f"ablations.{param}.regularizers")


def main_runs(config: Mapping[str, Any]) -> list[Run]:
    """The main grid: every dataset x model x regulariser x seed."""
    return [
        Run(dataset, model, regularizer, int(seed))
        for dataset in config["datasets"]
        for model in config["models"]
        for regularizer in config["regularizers"]
        for seed in config["seeds"]
    ]


def ablation_runs(config: Mapping[str, Any], param: str) -> list[Run]:
    """Runs of one ablation (gamma, rho or lambda) on the ablation model and dataset."""
    if param not in ABLATION_PARAMS:
        raise ValueError(f"unknown ablation {param!r}; valid: {', '.join(ABLATION_PARAMS)}")
    ablations = config.get("ablations") or {}
    spec = ablations.get(param)
    if not spec:
        return []
    seeds = ablations.get("seeds", config["seeds"])
    return [
        Run(
            ablations["dataset"],
            ablations["model"],
            regularizer,
            int(seed),
            (param, value if isinstance(value, str) else float(value)),
        )
        for regularizer in spec["regularizers"]
        for value in spec["values"]
        for seed in seeds
    ]


def all_runs(config: Mapping[str, Any]) -> dict[str, Run]:
    """Every run of the config keyed by its directory (main grid first, then each ablation)."""
    runs = main_runs(config) + [run for param in ABLATION_PARAMS for run in ablation_runs(config, param)]
    return {run.path: run for run in runs}


def regularizer_settings(run: Run, config: Mapping[str, Any]) -> dict[str, Any]:
    """lambda, schedule and penalty options for a run: defaults, then per-regulariser overrides, then
    the ablated value. Options a penalty does not accept (gamma for `fro`, say) are left out."""
    regularization = dict(config.get("regularization", {}))
    overrides = regularization.pop("overrides", {}) or {}
    settings = {**regularization, **overrides.get(run.regularizer, {})}
    if run.ablation is not None:
        param, value = run.ablation
        settings[param] = value
    accepted = set(regularizer_options(run.regularizer))
    common = {config_key(name) for name in REGULARIZATION_FIELDS}
    return {key: value for key, value in settings.items() if key in common or key in accepted}


def train_config(run: Run, config: Mapping[str, Any]) -> TrainConfig:
    """The validated TrainConfig of one run: the config's `train:` recipe, its regularisation settings
    for the run's regulariser (`regularizer_settings`), the top-level `threads`, and the run's own
    fields. Snakemake builds these while planning, so a bad value stops the workflow before any job."""
    settings = regularizer_settings(run, config)
    names = {config_key(name): name for name in REGULARIZATION_FIELDS}
    run_config = TrainConfig(
        model=run.model,
        dataset=run.dataset,
        regularizer=run.regularizer,
        seed=run.seed,
        ablation=None if run.ablation is None else {"param": run.ablation[0], "value": run.ablation[1]},
        threads=config.get("threads"),
        reg_options={key: value for key, value in settings.items() if key not in names},
        **{names[key]: value for key, value in settings.items() if key in names},
        **dict(config.get("train") or {}),
    )
    run_config.validate()
    return run_config


def train_arguments(run: Run, config: Mapping[str, Any]) -> list[str]:
    """The `orthoreg train` arguments of a run, except --out and --data-dir: every setting the config
    gives is spelled out, so a job's command line shows its whole recipe."""
    train_config_ = train_config(run, config)
    names = {config_key(name): name for name in REGULARIZATION_FIELDS}
    given = [
        *(config.get("train") or {}),
        *(names[key] for key in regularizer_settings(run, config) if key in names),
    ]
    return to_arguments(train_config_, given=[*given, "reg_options", "threads"])


def cli_flags(options: Mapping[str, Any]) -> list[str]:
    """Command-line flags of an evaluate or robustness options mapping: None is left out, True is
    `--key`, a list gives its items after the flag."""
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            args += [flag, *(str(item) for item in value)]
        else:
            args += [flag, str(value)]
    return args


def evaluate_arguments(config: Mapping[str, Any]) -> list[str]:
    """`orthoreg evaluate` options of the config (the run and data dir are added by the rule)."""
    return cli_flags(config.get("evaluate", {}))


def robustness_arguments(config: Mapping[str, Any]) -> list[str]:
    """`orthoreg robustness` options of the config (the run and data dir are added by the rule)."""
    return cli_flags(config.get("robustness", {}))


def expected_records(runs: Iterable[Run], results_dir: str) -> list[dict[str, Any]]:
    """The records `orthoreg report --expected` reads to list missing runs."""
    return [
        {
            "dataset": run.dataset,
            "model": run.model,
            "regularizer": run.regularizer,
            "seed": run.seed,
            "ablation": None
            if run.ablation is None
            else {"param": run.ablation[0], "value": run.ablation[1]},
            "run_dir": str(Path(results_dir) / run.path),
        }
        for run in runs
    ]


def write_expected(runs: Iterable[Run], results_dir: str, path: str) -> None:
    """Write the expected-runs JSON atomically."""
    save_json(expected_records(runs, results_dir), path)
