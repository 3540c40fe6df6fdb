"""One definition of a run's settings: TrainConfig's fields drive the `orthoreg train` flags, the
grid's keys and the arguments of each pipeline job, and agree with the config schema."""

import argparse
import dataclasses
import re
import typing
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orthoreg import config as settings_module
from orthoreg import grid
from orthoreg.cli import build_parser
from orthoreg.config import FIELDS, TrainConfig, from_arguments, knob_of, to_arguments

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
PROBES = {
    int: [-2, -1, 0, 1, 2, 1000],
    float: [-1.0, 0.0, 1e-9, 0.2, 0.5, 0.999, 1.0, 2.5],  # finiteness: TrainConfig alone (YAML .inf)
    bool: [True, False],
}


def parse(arguments):
    return from_arguments(build_parser(["train"]).parse_args(["train", *arguments, "--out", "x"]))


def field_accepts(name, value) -> bool:
    """Whether TrainConfig.validate accepts `value` for field `name` (checks and choices only)."""
    declared = knob_of(name)
    if value is None:
        return type(None) in typing.get_args(settings_module.TYPES[name])
    if declared.choices is not None and value not in declared.choices():
        return False
    return declared.check is None or declared.check(value) is None


def probes(name):
    kind = settings_module._scalar_type(name)
    if knob_of(name).choices is not None:
        return [*knob_of(name).choices(), "bogus"]
    if typing.get_origin(settings_module.TYPES[name]) is tuple:
        return [[], [0.5], [0.3, 0.6], [0.0, 0.5], [0.5, 1.0]]
    values = list(PROBES.get(kind, []))
    return values + ([None] if type(None) in typing.get_args(settings_module.TYPES[name]) else [])


def test_every_train_key_of_the_schema_is_a_field_with_the_same_range():
    schema = SCHEMA["properties"]["train"]["properties"]
    assert set(schema) == set(grid.TRAIN_KEYS)
    for name in grid.TRAIN_KEYS:
        if name == "model_options":
            continue
        for value in probes(name):
            schema_accepts = jsonschema.Draft202012Validator(schema[name]).is_valid(value)
            assert schema_accepts == field_accepts(name, value), (name, value)


def test_every_regularization_key_of_the_schema_is_a_field_or_a_registered_option():
    schema = SCHEMA["properties"]["regularization"]["properties"]
    fields = {settings_module.config_key(name): name for name in grid.REGULARIZATION_FIELDS}
    assert set(schema) == set(grid.regularization_keys())
    for key, name in fields.items():
        for value in probes(name):
            assert jsonschema.Draft202012Validator(schema[key]).is_valid(value) == field_accepts(name, value)


def test_every_field_has_help_a_section_and_a_flag():
    parser = build_parser(["train"])
    flags = {
        option
        for action in parser._subparsers._group_actions[0].choices["train"]._actions
        for option in action.option_strings
    }
    for name in FIELDS:
        assert knob_of(name).help and knob_of(name).section in settings_module.SECTIONS
        if name not in ("reg_options", "model_options"):
            assert settings_module.flag(name) in flags, name
        if settings_module.TYPES[name] is bool:
            assert f"--no-{settings_module.flag(name)[2:]}" in flags, name


def test_flags_left_out_keep_the_defaults():
    assert parse(["--model", "resnet8", "--dataset", "synthetic", "--regularizer", "none"]) == TrainConfig(
        "resnet8", "synthetic", "none"
    )


configs = st.builds(
    TrainConfig,
    model=st.sampled_from(["resnet8", "resnet20"]),
    dataset=st.sampled_from(["synthetic", "cifar10"]),
    regularizer=st.sampled_from(["dn_relaxed", "srip", "fro"]),
    seed=st.integers(0, 10),
    epochs=st.integers(1, 300),
    lam=st.floats(0, 10, allow_nan=False),
    schedule=st.sampled_from(["constant", "step"]),
    lr=st.floats(1e-4, 1),
    lr_schedule=st.sampled_from(["step", "cosine"]),
    lr_milestones=st.lists(st.floats(0.01, 0.99), max_size=3).map(lambda values: tuple(sorted(set(values)))),
    warmup=st.floats(0, 0.5),
    nesterov=st.booleans(),
    augment=st.booleans(),
    label_smoothing=st.floats(0, 0.3),
    limit_train=st.none() | st.integers(1, 10**5),
    amp=st.sampled_from(["auto", "bf16", "off"]),
    channels_last=st.booleans(),
    threads=st.none() | st.integers(1, 8),
    model_options=st.sampled_from([{}, {"dropout": 0.3}]),
    ablation=st.none()
    | st.builds(lambda p, v: {"param": p, "value": v}, st.sampled_from(["rho", "gamma"]), st.floats(0.01, 1)),
)


@settings(max_examples=60, deadline=None)
@given(configs)
def test_arguments_round_trip_exactly(config):
    if config.regularizer == "dn_relaxed":
        config = dataclasses.replace(config, reg_options={"gamma": 0.5, "rho": 0.25})
    elif config.regularizer == "srip":
        config = dataclasses.replace(config, reg_options={"squared": True, "exact": False, "iters": 3})
    assert parse(to_arguments(config)) == config


def test_bad_values_are_refused_naming_the_value_and_the_rule():
    for change, message in (
        ({"warmup": 1.0}, "warmup must be a number in [0, 1), got 1.0"),
        ({"momentum": 1.5}, "momentum must be a number in [0, 1), got 1.5"),
        ({"lr_schedule": "linear"}, "unknown lr_schedule 'linear'; valid: cosine, step"),
        ({"amp": "fp16"}, "unknown amp 'fp16'; valid: auto, bf16, off"),
        ({"label_smoothing": -0.1}, "label_smoothing must be a number in [0, 1)"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            TrainConfig("resnet8", "synthetic", "none", **change).validate()


def test_a_bad_grid_value_stops_before_any_job():
    config = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    config["train"]["warmup"] = 1.5
    with pytest.raises(ValueError, match="warmup must be a number in"):
        grid.train_arguments(grid.Run("fashion_mnist", "resnet8", "none", 0), config)


def test_key_value_parses_numbers_booleans_and_text():
    assert settings_module.key_value("rho=0.25") == ("rho", 0.25)
    assert settings_module.key_value("iters=3") == ("iters", 3)
    assert settings_module.key_value("exact=false") == ("exact", False)
    assert settings_module.key_value("mode=fast") == ("mode", "fast")
    with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
        settings_module.key_value("rho")
