"""The experiment grid: which training runs a pipeline config asks for, and how each is invoked.

The Snakemake workflow holds no logic of its own; it asks this module for the runs of a config, their
directories and their `orthoreg train` arguments, so the grid is tested by pytest like any other code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ABLATION_PARAMS = ("gamma", "rho", "lambda")

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
TRAIN_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "lr_milestones",
    "lr_decay",
    "momentum",
    "nesterov",
    "weight_decay",
    "augment",
    "limit_train",
    "limit_test",
    "device",
)
REGULARIZATION_KEYS = ("lambda", "schedule", "gamma", "rho", "include_linear", "skip_stem", "overrides")
ABLATION_KEYS = ("model", "dataset", "seeds", *ABLATION_PARAMS)


@dataclass(frozen=True)
class Run:
    """One training run of the grid; `ablation` is (param, value) for ablation runs, else None."""

    dataset: str
    model: str
    regularizer: str
    seed: int
    ablation: tuple[str, float] | None = None

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


def _format_value(value: float) -> str:
    return format(float(value), "g")


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
        ("regularization", REGULARIZATION_KEYS),
        ("ablations", ABLATION_KEYS),
    ):
        if isinstance(config.get(section), Mapping):
            _check_keys(config[section], allowed, f"{section}.")


def check_config_names(config: Mapping[str, Any]) -> None:
    """Refuse a dataset, model or regulariser name that no registry knows (after the schema checked
    types), so a newly registered one needs no schema change."""
    from orthoreg.data import available_datasets
    from orthoreg.models import available_models
    from orthoreg.regularizers import available_regularizers

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
        Run(ablations["dataset"], ablations["model"], regularizer, int(seed), (param, float(value)))
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
    from orthoreg.regularizers import regularizer_options

    regularization = dict(config.get("regularization", {}))
    overrides = regularization.pop("overrides", {}) or {}
    settings = {**regularization, **overrides.get(run.regularizer, {})}
    if run.ablation is not None:
        param, value = run.ablation
        settings[param] = value
    accepted = set(regularizer_options(run.regularizer))
    common = {"lambda", "schedule", "include_linear", "skip_stem"}
    return {key: value for key, value in settings.items() if key in common or key in accepted}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def cli_flags(options: Mapping[str, Any]) -> list[str]:
    """Command-line flags of an options mapping: None is left out, True is `--key`, False is `--no-key`,
    a list gives its items after the flag."""
    args: list[str] = []
    for key, value in options.items():
        if value is None:
            continue
        if isinstance(value, bool):
            args.append(_flag(key) if value else _flag(f"no_{key}"))
        elif isinstance(value, (list, tuple)):
            args += [_flag(key), *(str(item) for item in value)]
        else:
            args += [_flag(key), str(value)]
    return args


def train_arguments(run: Run, config: Mapping[str, Any]) -> list[str]:
    """The `orthoreg train` arguments of a run, except --out and --data-dir."""
    train = config.get("train", {})
    # the CLI's defaults are nesterov and augmentation on: only their negations are flags
    train = {key: value for key, value in train.items() if not (key in ("nesterov", "augment") and value)}
    settings = regularizer_settings(run, config)
    settings = {key: value for key, value in settings.items() if not isinstance(value, bool) or value}
    args = [
        "--model",
        run.model,
        "--dataset",
        run.dataset,
        "--regularizer",
        run.regularizer,
        "--seed",
        str(run.seed),
        *cli_flags(train),
        *cli_flags(settings),
    ]
    if run.ablation is not None:
        param, value = run.ablation
        args += ["--ablation", f"{param}={_format_value(value)}"]
    if config.get("threads"):
        args += ["--threads", str(config["threads"])]
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
    from orthoreg.checkpoint import save_json

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_json(expected_records(runs, results_dir), path)
