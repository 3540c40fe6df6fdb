"""The settings of one training run, each declared once.

Every knob of a run is a field of `TrainConfig` with its default, type, range and help text. From
these fields come the `orthoreg train` flags (booleans as `--x/--no-x`), the validation, the keys the
pipeline config accepts under `train:` and `regularization:` (`orthoreg.grid`), and the arguments
each pipeline job is started with (`to_arguments`, which `from_arguments` reads back exactly). The
config schema (workflow/schemas/config.schema.yaml) is checked against these fields by a test. A new
knob is one field here, plus its line in the schema.

Regulariser options (gamma, rho, ...) are not fields: each penalty declares and checks its own
(`orthoreg.regularizers.register_regularizer`), and they travel in `reg_options`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orthoreg.data import available_datasets
from orthoreg.devices import DEVICES
from orthoreg.models import available_models, model_options
from orthoreg.precision import AMP_MODES
from orthoreg.regularizers import SCHEDULES, available_regularizers, regularizer_options
from orthoreg.regularizers.registry import resolve_options
from orthoreg.tensorboard_log import tensorboard_available

SECTIONS = ("run", "regularization", "recipe", "runtime")
# settings an ablation may vary: numbers, except `relaxation` (a rule name); `epochs`, a recipe
# setting, is the learning curve (the final accuracy of whole schedules of each length)
ABLATION_PARAMS = ("gamma", "rho", "lambda", "relaxation", "epochs")
RECIPE_ABLATIONS = ("epochs",)
LR_SCHEDULES = ("step", "cosine")
# Fields that change how fast a run goes, not what it computes; a resume may change them.
RUNTIME_ONLY = ("device", "threads", "compile", "nan_check_every", "tensorboard", "curve_points")


# ---------------------------------------------------------------- checks: None when fine, else why not


def positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return None if ok else "must be a positive integer"


def non_negative_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "must be a non-negative integer"


def positive_number(value: Any) -> str | None:
    ok = _is_number(value) and math.isfinite(value) and value > 0
    return None if ok else "must be a positive finite number"


def non_negative_number(value: Any) -> str | None:
    ok = _is_number(value) and math.isfinite(value) and value >= 0
    return None if ok else "must be a non-negative finite number"


def fraction_below_one(value: Any) -> str | None:
    ok = _is_number(value) and 0 <= value < 1
    return None if ok else "must be a number in [0, 1)"


def increasing_fractions(value: Any) -> str | None:
    values = list(value)
    ok = all(_is_number(v) and 0 < v < 1 for v in values) and values == sorted(values)
    return None if ok else "must be increasing fractions of training in (0, 1)"


def ablation_label(value: Any) -> str | None:
    ok = value is None or (
        isinstance(value, Mapping) and set(value) == {"param", "value"} and value["param"] in ABLATION_PARAMS
    )
    return None if ok else f"must be {{param, value}} with param in {', '.join(ABLATION_PARAMS)}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------- the fields


@dataclass(frozen=True)
class Knob:
    """What a TrainConfig field declares besides its default and type."""

    help: str
    section: str
    check: Callable[[Any], str | None] | None = None
    choices: Callable[[], Iterable[str]] | None = None
    name: str | None = None  # its name in messages, flags and the pipeline config, when not the field's
    required: bool = False


def knob(default: Any, help: str, section: str, **declared: Any) -> Any:
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}; valid: {', '.join(SECTIONS)}")
    metadata = {"knob": Knob(help, section, **declared)}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _required(help: str, choices: Callable[[], Iterable[str]]) -> Any:
    return field(metadata={"knob": Knob(help, "run", choices=choices, required=True)})


@dataclass
class TrainConfig:
    """Every knob of a run. Defaults are Bansal et al.'s CIFAR WRN recipe (SGD Nesterov, lr 0.1 x0.2 at
    30/60/80 % of training, batch 128, weight decay 5e-4)."""

    model: str = _required("registered model name, e.g. resnet20", available_models)
    dataset: str = _required("registered dataset name, e.g. cifar10", available_datasets)
    regularizer: str = _required("registered regulariser, e.g. dn_relaxed", lambda: available_regularizers())
    seed: int = knob(
        0, "seed of the initialisation, data order and augmentation", "run", check=non_negative_int
    )
    ablation: dict[str, Any] | None = knob(
        None, "ablation label PARAM=VALUE recorded in run.json", "run", check=ablation_label
    )
    # regularisation
    lam: float = knob(1e-4, "penalty coefficient", "regularization", check=non_negative_number, name="lambda")
    schedule: str = knob("constant", "lambda schedule", "regularization", choices=lambda: SCHEDULES)
    reg_options: dict[str, Any] = knob({}, "options of the regulariser (gamma, rho, ...)", "regularization")
    include_linear: bool = knob(False, "regularise linear layers too", "regularization")
    skip_stem: bool = knob(False, "leave the first convolution alone", "regularization")
    calibration_images: int = knob(
        512,
        "first training images whose layer inputs set dn_relaxed's per-layer k under relaxation=rank",
        "regularization",
        check=positive_int,
    )
    # recipe
    epochs: int = knob(200, "training epochs", "recipe", check=positive_int)
    batch_size: int = knob(128, "training batch size", "recipe", check=positive_int)
    lr: float = knob(0.1, "peak learning rate", "recipe", check=positive_number)
    lr_schedule: str = knob(
        "step",
        "step: lr x lr_decay at each milestone; cosine: cosine decay to 0",
        "recipe",
        choices=lambda: LR_SCHEDULES,
    )
    lr_milestones: tuple[float, ...] = knob(
        (0.3, 0.6, 0.8),
        "fractions of training where the step schedule decays",
        "recipe",
        check=increasing_fractions,
    )
    lr_decay: float = knob(
        0.2, "lr factor at each milestone (step schedule)", "recipe", check=positive_number
    )
    warmup: float = knob(
        0.0,
        "fraction of training with a linear lr warm-up from 0 (either schedule)",
        "recipe",
        check=fraction_below_one,
    )
    momentum: float = knob(0.9, "SGD momentum", "recipe", check=fraction_below_one)
    nesterov: bool = knob(True, "Nesterov momentum", "recipe")
    weight_decay: float = knob(5e-4, "L2 weight decay of SGD", "recipe", check=non_negative_number)
    label_smoothing: float = knob(
        0.0, "label smoothing of the cross-entropy", "recipe", check=fraction_below_one
    )
    augment: bool = knob(True, "random crop (4-px zero padding) and horizontal flip", "recipe")
    limit_train: int | None = knob(None, "use the first N training images", "recipe", check=positive_int)
    limit_test: int | None = knob(
        None, "use the first N test images for the per-epoch test", "recipe", check=positive_int
    )
    eval_batch_size: int = knob(500, "batch size of the per-epoch test pass", "recipe", check=positive_int)
    model_options: dict[str, Any] = knob({}, "keywords passed to build_model, e.g. dropout=0.3", "recipe")
    # runtime
    device: str = knob("auto", "auto picks CUDA when present", "runtime", choices=lambda: DEVICES)
    amp: str = knob(
        "auto",
        "bf16 autocast of the forward pass: auto = on CUDA, and on a CPU with native bf16 (AMX or "
        "AVX512-BF16); the penalty always runs in fp32",
        "runtime",
        choices=lambda: AMP_MODES,
    )
    channels_last: bool = knob(True, "channels-last memory format (CPU and CUDA)", "runtime")
    compile: bool = knob(False, "torch.compile the model", "runtime")
    threads: int | None = knob(None, "CPU threads (torch.set_num_threads)", "runtime", check=positive_int)
    nan_check_every: int = knob(
        50, "steps between finiteness checks on CUDA (every step on CPU)", "runtime", check=positive_int
    )
    curve_points: int = knob(
        8,
        "points of the training curve (curve.csv) for a run of fewer epochs: it also tests at evenly "
        "spaced steps inside its epochs (0: once per epoch only)",
        "runtime",
        check=non_negative_int,
    )
    tensorboard: bool = knob(
        False,
        "write the training curves under <out>/tensorboard/ for `tensorboard --logdir` (orthoreg[tensorboard])",
        "runtime",
        check=tensorboard_available,
    )

    def __post_init__(self) -> None:
        self.lr_milestones = tuple(self.lr_milestones)  # a YAML or JSON list reads back as a tuple

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON values (tuples become lists), as stored in run.json."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def validate(self) -> None:
        """Refuse a bad config before any work, naming the bad value and what is accepted."""
        for item in dataclasses.fields(self):
            declared: Knob = item.metadata["knob"]
            value = getattr(self, item.name)
            label = declared.name or item.name
            if declared.choices is not None:
                valid = sorted(declared.choices())
                if value not in valid:
                    raise ValueError(f"unknown {label} {value!r}; valid: {', '.join(valid)}")
            if declared.check is not None and value is not None:
                problem = declared.check(value)
                if problem is not None:
                    raise ValueError(f"{label} {problem}, got {value!r}")
        resolve_options(self.regularizer, self.reg_options)


FIELDS = {item.name: item for item in dataclasses.fields(TrainConfig)}
TYPES = typing.get_type_hints(TrainConfig)


def knob_of(name: str) -> Knob:
    return FIELDS[name].metadata["knob"]


def config_key(name: str) -> str:
    """A field's name in messages, flags and the pipeline config (`lam` is `lambda`)."""
    return knob_of(name).name or name


def section_fields(*sections: str) -> list[str]:
    return [name for name in FIELDS if knob_of(name).section in sections]


def default_of(name: str) -> Any:
    item = FIELDS[name]
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return dataclasses.MISSING


def recipe_digest(config: TrainConfig) -> str:
    """Eight hex digits naming everything that decides a run's result except its seed: its settings
    with the model's and the regulariser's defaults filled in, runtime-only fields left out. A run's
    folder ends in it, so a changed setting is a new run beside the finished one, never over it."""
    settings = {key: value for key, value in config.to_dict().items() if key not in (*RUNTIME_ONLY, "seed")}
    settings["reg_options"] = resolve_options(config.regularizer, dict(config.reg_options))
    settings["model_options"] = model_options(config.model, config.model_options)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def config_differences(stored: Mapping[str, Any], config: TrainConfig) -> list[str]:
    """Fields (runtime-only ones excepted) whose stored value differs from `config`."""
    current = config.to_dict()
    keys = sorted((set(stored) | set(current)) - set(RUNTIME_ONLY))
    return [key for key in keys if stored.get(key) != current.get(key)]


# ---------------------------------------------------------------- the command line


def flag(name: str) -> str:
    return "--" + config_key(name).replace("_", "-")


def key_value(text: str) -> tuple[str, Any]:
    """Parse KEY=VALUE; the value is a number when it reads as one, a bool for true/false."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return key.strip(), lowered == "true"
    for kind in (int, float):
        try:
            return key.strip(), kind(raw)
        except ValueError:
            continue
    return key.strip(), raw


def _scalar_type(name: str) -> type:
    kind = TYPES[name]
    options = [t for t in typing.get_args(kind) if t is not type(None)] or [kind]
    return options[0]


def _help(name: str) -> str:
    default = default_of(name)
    shown = "" if default is dataclasses.MISSING else f" (default: {default!r})"
    return knob_of(name).help + shown


def regularizer_option_defaults() -> dict[str, tuple[Any, list[str]]]:
    """Every option any registered regulariser takes: a default showing its type, and who takes it."""
    options: dict[str, tuple[Any, list[str]]] = {}
    for name in available_regularizers():
        for key, default in regularizer_options(name).items():
            known, users = options.get(key, (None, []))
            options[key] = (default if known is None else known, [*users, name])
    return options


def _add_regularizer_options(group: argparse._ArgumentGroup) -> None:
    """One flag per regulariser option (`--gamma 2`, `--squared/--no-squared`, ...); options left out
    keep the regulariser's default."""
    for key, (default, users) in sorted(regularizer_option_defaults().items()):
        described = f"option of {', '.join(users)} (default {default!r})"
        kind = type(default) if isinstance(default, (int, float, str)) else int
        try:
            if isinstance(default, bool):
                group.add_argument(
                    f"--{key.replace('_', '-')}",
                    dest=f"reg_{key}",
                    action=argparse.BooleanOptionalAction,
                    default=None,
                    help=described,
                )
            else:
                group.add_argument(
                    f"--{key.replace('_', '-')}", dest=f"reg_{key}", type=kind, default=None, help=described
                )
        except argparse.ArgumentError:  # a plugin option named like a recipe flag: use --reg-option
            continue


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every TrainConfig field as a flag, grouped by section; a flag left out keeps the default."""
    groups = {section: parser.add_argument_group(section) for section in SECTIONS}
    for name in FIELDS:
        group, kind = groups[knob_of(name).section], _scalar_type(name)
        if name == "reg_options":
            _add_regularizer_options(group)
            group.add_argument(
                "--reg-option",
                dest="reg_options",
                type=key_value,
                action="append",
                default=[],
                metavar="KEY=VALUE",
                help="any other option of the regulariser (repeatable)",
            )
        elif name == "model_options":
            group.add_argument(
                "--model-option",
                dest=name,
                type=key_value,
                action="append",
                default=[],
                metavar="KEY=VALUE",
                help=_help(name),
            )
        elif name == "ablation":
            group.add_argument(
                flag(name), dest=name, type=key_value, default=None, metavar="PARAM=VALUE", help=_help(name)
            )
        elif kind is bool:
            group.add_argument(
                flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None, help=_help(name)
            )
        elif typing.get_origin(TYPES[name]) is tuple:
            group.add_argument(flag(name), dest=name, type=float, nargs="*", default=None, help=_help(name))
        else:
            choices = knob_of(name).choices
            group.add_argument(
                flag(name),
                dest=name,
                type=kind,
                default=None,
                required=knob_of(name).required,
                help=_help(name)
                if choices is None or knob_of(name).required
                else f"{_help(name)}; one of {', '.join(choices())}",
            )


def from_arguments(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig parsed arguments describe; fields left out keep their defaults."""
    given: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(args, name, None)
        if name == "reg_options":
            options = dict(value or [])
            for key, option in vars(args).items():
                if key.startswith("reg_") and key != "reg_options" and option is not None:
                    options[key[len("reg_") :]] = option
            given[name] = options
        elif name == "model_options":
            given[name] = dict(value or [])
        elif name == "ablation" and value is not None:
            given[name] = {"param": value[0], "value": value[1]}
        elif value is not None:
            given[name] = tuple(value) if isinstance(value, list) else value
    return TrainConfig(**given)


def to_arguments(
    config: TrainConfig, given: Iterable[str] = (), fields: Iterable[str] = tuple(FIELDS)
) -> list[str]:
    """The `orthoreg train` arguments that reproduce `config`'s `fields`: the run's fields, the fields
    named in `given` (those a pipeline config sets), and any other field that differs from its default."""
    given = set(given)
    option_flags = regularizer_option_defaults()
    args: list[str] = []
    for name in fields:
        value = getattr(config, name)
        shown = knob_of(name).section == "run" or name in given or value != default_of(name)
        if value is None or not shown:
            continue
        if name == "reg_options":
            for key, option in value.items():
                if key in option_flags and isinstance(option, bool):
                    args.append(f"--{'' if option else 'no-'}{key.replace('_', '-')}")
                elif key in option_flags and option is not None:
                    args += [f"--{key.replace('_', '-')}", str(option)]
                else:
                    args += ["--reg-option", f"{key}={option}"]
        elif name == "model_options":
            for key, option in value.items():
                args += ["--model-option", f"{key}={option}"]
        elif name == "ablation":
            args += [flag(name), f"{value['param']}={value['value']}"]
        elif isinstance(value, bool):
            args.append(flag(name) if value else f"--no-{flag(name)[2:]}")
        elif isinstance(value, tuple):
            args += [flag(name), *(str(item) for item in value)]
        elif value is not None:
            args += [flag(name), str(value)]
    return args
