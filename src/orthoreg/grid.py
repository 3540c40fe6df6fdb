"""The experiment grid: which training runs a pipeline config asks for, and how each is invoked.

The Snakemake workflow holds no logic of its own; it asks this module for the runs of a config, their
directories and their `orthoreg train` arguments, so the grid is tested by pytest like any other code.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orthoreg.config import (
    ABLATION_PARAMS,
    FIELDS,
    RECIPE_ABLATIONS,
    RUNTIME_ONLY,
    TrainConfig,
    config_key,
    recipe_digest,
    regularizer_option_defaults,
    section_fields,
    to_arguments,
)
from orthoreg.data import available_datasets
from orthoreg.files import save_json
from orthoreg.models import available_models
from orthoreg.regularizers import available_regularizers, regularizer_options

# a training job's time limit where the config gives none (minutes)
RUNTIME_MINUTES = 60
# Top-level keys a pipeline config may hold; anything else is a typo and is refused by name.
CONFIG_KEYS = (
    "name",
    "data_dir",
    "results_dir",
    "tables_dir",
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
# the TrainConfig field of each common regularisation key (`lambda` is `lam`)
REGULARIZATION_FIELD_OF_KEY = {config_key(name): name for name in REGULARIZATION_FIELDS}


def regularization_keys() -> tuple[str, ...]:
    """The keys `regularization:` accepts (the regulariser options of plugins included)."""
    return (
        *REGULARIZATION_FIELD_OF_KEY,
        *sorted(regularizer_option_defaults()),
        "overrides",
    )


def regularizer_keys(regularizer: str) -> tuple[str, ...]:
    """The keys a run of `regularizer` takes, and so `regularization.overrides.<regularizer>` accepts:
    the common regularisation fields and that regulariser's own options."""
    return (*REGULARIZATION_FIELD_OF_KEY, *sorted(regularizer_options(regularizer)))


@dataclass(frozen=True)
class Run:
    """One training run of the grid; `ablation` is (param, value) for ablation runs, else None;
    `recipe` is the digest of its settings (`orthoreg.config.recipe_digest`), filled in by `planned`."""

    dataset: str
    model: str
    regularizer: str
    seed: int
    ablation: tuple[str, float | str] | None = None
    recipe: str = ""

    @property
    def path(self) -> str:
        """Directory of the run, relative to the results directory: its coordinates, then its recipe,
        so runs of two configs (or of one config before and after an edit) never share a folder."""
        if not self.recipe:
            raise ValueError(f"{self} has no recipe digest; plan it with orthoreg.grid.planned")
        if self.ablation is None:
            return f"runs/{self.dataset}/{self.model}/{self.regularizer}/{self.recipe}/seed{self.seed}"
        param, value = self.ablation
        return (
            f"ablations/{param}/{self.dataset}/{self.model}/{self.regularizer}/"
            f"{param}={_format_value(value)}/{self.recipe}/seed{self.seed}"
        )


def _format_value(value: float | str) -> str:
    return value if isinstance(value, str) else format(float(value), "g")


def _check_keys(
    section: Mapping[str, Any], allowed: Iterable[str], where: str, allowed_are: str = "allowed keys"
) -> None:
    allowed = tuple(allowed)
    for key in section:
        if key not in allowed:
            raise ValueError(f"unknown config key {where + key!r}; {allowed_are}: {', '.join(allowed)}")


def _check_names(values: Iterable[str], valid: Iterable[str], key: str) -> None:
    valid = sorted(valid)
    for value in values:
        if value not in valid:
            raise ValueError(f"config {key}: unknown name {value!r}; valid names: {', '.join(valid)}")


def merge_configs(*configs: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline config as Snakemake builds it from the Snakefile's config and each --configfile:
    every one merged over the one before, nested mappings updated, anything else replaced."""
    merged: dict[str, Any] = {}
    for config in configs:
        for key, value in config.items():
            both = isinstance(value, Mapping) and isinstance(merged.get(key), Mapping)
            merged[key] = merge_configs(merged[key], value) if both else value
    return merged


def check_config_keys(config: Mapping[str, Any]) -> None:
    """Refuse an unknown key, naming it and the allowed ones, down to each regulariser's overrides, and
    an empty list under `ablations:`, which would drop its runs silently (run before the schema, whose
    messages list neither the allowed keys nor how to switch an ablation off)."""
    _check_keys(config, CONFIG_KEYS, "")
    for section, allowed in (
        ("train", TRAIN_KEYS),
        ("regularization", regularization_keys()),
        ("ablations", ABLATION_KEYS),
    ):
        if isinstance(config.get(section), Mapping):
            _check_keys(config[section], allowed, f"{section}.")
    regularization = config.get("regularization")
    overrides = regularization.get("overrides") if isinstance(regularization, Mapping) else None
    if isinstance(overrides, Mapping):
        for name, settings in overrides.items():
            # an unregistered name is check_config_names's to refuse
            if name in available_regularizers() and isinstance(settings, Mapping):
                where = f"regularization.overrides.{name}."
                _check_keys(settings, regularizer_keys(name), where, f"keys regulariser {name!r} takes")
    if isinstance(config.get("ablations"), Mapping):
        _check_ablation_lists(config["ablations"])


def _check_ablation_lists(ablations: Mapping[str, Any]) -> None:
    if ablations.get("seeds") == []:
        raise ValueError(
            "config ablations.seeds is empty: list at least one seed, leave the key out to use the main "
            "grid's seeds, or set `ablations: null` to run no ablation"
        )
    for param in ABLATION_PARAMS:
        spec = ablations.get(param)
        for key in ("regularizers", "values"):
            if isinstance(spec, Mapping) and spec.get(key) == []:
                raise ValueError(
                    f"config ablations.{param}.{key} is empty: list at least one, or set "
                    f"`ablations.{param}: null` to skip the {param} ablation"
                )


def check_config_names(config: Mapping[str, Any]) -> None:
    """Refuse what the registries refuse (after the schema checked types), so a newly registered name
    or option needs no schema change: a dataset, model or regulariser name no registry knows, an
    ablation of a setting its regulariser does not take, and a regularisation value (`_check_values`)."""
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
            _check_ablated_setting(param, spec.get("regularizers", []), regularizers)
    _check_values(config)


def _check_ablated_setting(param: str, ablated: Iterable[str], regularizers: Iterable[str]) -> None:
    if param in RECIPE_ABLATIONS:  # every run has a recipe
        return
    for name in ablated:
        if param not in regularizer_keys(name):
            takers = [other for other in regularizers if param in regularizer_keys(other)]
            raise ValueError(
                f"config ablations.{param}.regularizers: {name!r} does not take {param}, so its runs "
                f"would not vary; regularisers that take it: {', '.join(takers)}"
            )


def _check_values(config: Mapping[str, Any]) -> None:
    """Refuse a regularisation value a run would refuse, naming its key path: each default under
    `regularization:` (an option for every regulariser the config trains that takes it; `overrides`,
    no run's key, is left to the next loop), every override, every ablated value. Each is checked on a
    run of the main grid's (or the ablation's) model and dataset by `_check_setting`."""
    model, dataset = config["models"][0], config["datasets"][0]
    ablations = config.get("ablations") or {}
    specs = {param: ablations.get(param) or {} for param in ABLATION_PARAMS}
    trained = dict.fromkeys(
        [*config["regularizers"], *(name for spec in specs.values() for name in spec.get("regularizers", []))]
    )
    for key, value in config["regularization"].items():
        takers = [name for name in trained if key in regularizer_keys(name)]
        if key in REGULARIZATION_FIELD_OF_KEY:
            _check_setting(model, dataset, takers[0], key, value, f"regularization.{key}")
            continue
        for name in takers:
            _check_setting(model, dataset, name, key, value, f"regularization.{key} for {name}")
    for name, settings in (config["regularization"].get("overrides") or {}).items():
        for key, value in settings.items():
            _check_setting(model, dataset, name, key, value, f"regularization.overrides.{name}.{key}")
    for param, spec in specs.items():
        for name in spec.get("regularizers", []):
            for index, value in enumerate(spec["values"]):
                where = f"ablations.{param}.values[{index}] for {name}"
                _check_setting(ablations["model"], ablations["dataset"], name, param, value, where)


def _check_setting(model: str, dataset: str, regularizer: str, key: str, value: Any, where: str) -> None:
    """Raise, naming `where`, unless a run of `regularizer` accepts `value` for its setting `key`: the
    run's TrainConfig with that one setting is validated (TrainConfig's checks, the regulariser's
    `check=`), and NaN is refused even where a plugin's check would let it through."""
    field = key if key in RECIPE_ABLATIONS else REGULARIZATION_FIELD_OF_KEY.get(key)
    setting = {"reg_options": {key: value}} if field is None else {field: _recipe_value(key, value)}
    try:
        TrainConfig(model=model, dataset=dataset, regularizer=regularizer, **setting).validate()
    except (TypeError, ValueError) as error:
        raise ValueError(f"config {where}: {error}") from None
    if isinstance(value, float) and math.isnan(value):
        raise ValueError(f"config {where}: got nan; give a number")


def _recipe_value(key: str, value: Any) -> Any:
    """An ablated recipe value as the recipe takes it: a whole number of epochs as an int."""
    whole = isinstance(value, float) and value.is_integer()
    return int(value) if key in RECIPE_ABLATIONS and whole else value


def main_runs(config: Mapping[str, Any]) -> list[Run]:
    """The main grid: every dataset x model x regulariser x seed."""
    return [
        planned(Run(dataset, model, regularizer, int(seed)), config)
        for dataset in config["datasets"]
        for model in config["models"]
        for regularizer in config["regularizers"]
        for seed in config["seeds"]
    ]


def ablation_runs(config: Mapping[str, Any], param: str) -> list[Run]:
    """Runs of one ablation on the ablation model and dataset, except the cells that are a main-grid
    run (the ablated value is the main grid's): those are not trained twice, and the report reads the
    main run as that point of the curve."""
    if param not in ABLATION_PARAMS:
        raise ValueError(f"unknown ablation {param!r}; valid: {', '.join(ABLATION_PARAMS)}")
    ablations = config.get("ablations") or {}
    spec = ablations.get(param)
    if not spec:
        return []
    seeds = ablations.get("seeds", config["seeds"])
    cells = [
        planned(
            Run(
                ablations["dataset"],
                ablations["model"],
                regularizer,
                int(seed),
                (param, value if isinstance(value, str) else float(value)),
            ),
            config,
        )
        for regularizer in spec["regularizers"]
        for value in spec["values"]
        for seed in seeds
    ]
    return [cell for cell in cells if not is_main_run(cell, config)]


def is_main_run(cell: Run, config: Mapping[str, Any]) -> bool:
    """Whether an ablation cell's settings are those of a run in the main grid."""
    main = Run(cell.dataset, cell.model, cell.regularizer, cell.seed)
    in_grid = (
        main.dataset in config["datasets"]
        and main.model in config["models"]
        and main.regularizer in config["regularizers"]
        and main.seed in [int(seed) for seed in config["seeds"]]
    )
    if not in_grid:
        return False
    unlabelled = dataclasses.replace(train_config(cell, config), ablation=None)
    return recipe_digest(unlabelled) == recipe_digest(train_config(main, config))


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
    if run.ablation is not None and run.ablation[0] not in RECIPE_ABLATIONS:
        param, value = run.ablation
        settings[param] = value
    accepted = set(regularizer_options(run.regularizer))
    return {
        key: value for key, value in settings.items() if key in REGULARIZATION_FIELD_OF_KEY or key in accepted
    }


def train_config(run: Run, config: Mapping[str, Any]) -> TrainConfig:
    """The validated TrainConfig of one run: the config's `train:` recipe, its regularisation settings
    for the run's regulariser (`regularizer_settings`), the top-level `threads`, and the run's own
    fields. Snakemake builds these while planning, so a bad value stops the workflow before any job."""
    settings = regularizer_settings(run, config)
    names = REGULARIZATION_FIELD_OF_KEY
    run_config = TrainConfig(
        model=run.model,
        dataset=run.dataset,
        regularizer=run.regularizer,
        seed=run.seed,
        ablation=None if run.ablation is None else {"param": run.ablation[0], "value": run.ablation[1]},
        threads=config.get("threads"),
        reg_options={key: value for key, value in settings.items() if key not in names},
        **{names[key]: value for key, value in settings.items() if key in names},
        **_recipe(run, config),
    )
    run_config.validate()
    return run_config


def _recipe(run: Run, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's `train:` recipe, with the run's ablated value when it ablates a recipe setting."""
    recipe = dict(config.get("train") or {})
    if run.ablation is not None and run.ablation[0] in RECIPE_ABLATIONS:
        param, value = run.ablation
        recipe[param] = _recipe_value(param, value)
    return recipe


def planned(run: Run, config: Mapping[str, Any]) -> Run:
    """`run` with its recipe digest, from its TrainConfig (validated on the way)."""
    return dataclasses.replace(run, recipe=recipe_digest(train_config(run, config)))


def train_arguments(run: Run, config: Mapping[str, Any], *, runtime: bool = False) -> list[str]:
    """The `orthoreg train` arguments of a run, except --out and --data-dir: every setting the config
    gives is spelled out, so a job's command line shows its whole recipe. `runtime=True` gives the
    runtime-only ones instead (device, threads, ...): the train rule keeps those out of its params,
    so changing them never reruns a finished run."""
    train_config_ = train_config(run, config)
    names = REGULARIZATION_FIELD_OF_KEY
    given = [
        *(config.get("train") or {}),
        *(names[key] for key in regularizer_settings(run, config) if key in names),
    ]
    fields = [name for name in FIELDS if (name in RUNTIME_ONLY) == runtime]
    return to_arguments(train_config_, given=[*given, "reg_options", "threads"], fields=fields)


def run_resource(config: Mapping[str, Any], name: str, model: str, default: int) -> int:
    """A training job's limit `name` (`runtime` in minutes, `mem_mb`) for `model`: the config's
    `resources.<name>` entry for the model, else its `default`, else `default`."""
    table = (config.get("resources") or {}).get(name) or {}
    return int(table.get(model, table.get("default", default)))


def training_hours_bound(config: Mapping[str, Any]) -> float:
    """The most device-hours the grid's training jobs may take on their first attempt: the sum of every
    run's time limit (`resources.runtime`), which the scheduler enforces. A retried job gets attempt
    x its limit; evaluation and robustness come on top."""
    return (
        sum(run_resource(config, "runtime", run.model, RUNTIME_MINUTES) for run in all_runs(config).values())
        / 60
    )


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
            "recipe": run.recipe,
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
