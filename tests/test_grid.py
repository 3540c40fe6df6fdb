"""The experiment grid of the pipeline configs: runs, directories, arguments, validation."""

import dataclasses
import itertools
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

import orthoreg
from orthoreg import grid
from orthoreg.config import recipe_digest

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


def merged(*names):
    """Snakemake's merge of several config files."""
    return grid.merge_configs(*(load(name) for name in names))


def test_configs_merge_as_snakemake_merges_them():
    base = {"seeds": [0, 1, 2], "train": {"epochs": 200, "lr": 0.1}, "ablations": {"rho": {"values": [1]}}}
    over = {"seeds": [0], "train": {"epochs": 1}, "ablations": None}
    assert grid.merge_configs(base, over) == {
        "seeds": [0],
        "train": {"epochs": 1, "lr": 0.1},
        "ablations": None,
    }
    assert base["train"] == {"epochs": 200, "lr": 0.1} and over["train"] == {"epochs": 1}


def test_paper_grid_is_the_full_product_of_the_issue():
    config = load("config.yaml")
    runs = grid.main_runs(config)
    expected = set(
        itertools.product(
            ["cifar10", "cifar100"],
            ["resnet20", "resnet32", "resnet56", "resnet110", "resnet18", "resnet34", "wrn16_8", "wrn28_10"],
            ["none", "fro", "so", "dso", "mc", "srip", "ocnn", "dn_strict", "dn_relaxed"],
            [0, 1, 2],
        )
    )
    assert {(r.dataset, r.model, r.regularizer, r.seed) for r in runs} == expected
    assert len(runs) == 432


def test_ablation_runs_vary_one_parameter_on_one_model():
    config = load("config.yaml")
    gamma = grid.ablation_runs(config, "gamma")
    # 2 regularisers x 5 values x 3 seeds, less the gamma = 1 cells: the main grid's runs (gamma 1)
    assert len(gamma) == 2 * 4 * 3 and 1.0 not in {r.ablation[1] for r in gamma}
    assert {r.model for r in gamma} == {config["ablations"]["model"]}
    assert {r.ablation[0] for r in gamma} == {"gamma"}
    # rho 0.5 and lambda 0.1 are the main grid's too: 432 + 24 + 3 x 3 + 2 x 3 x 3 + 3
    assert len(set(grid.all_runs(config))) == 432 + 24 + 9 + 18 + 3
    relaxation = grid.ablation_runs(config, "relaxation")
    assert {run.path.split("/")[-3] for run in relaxation} == {"relaxation=rank"}


def test_run_paths_are_distinct_and_readable():
    run = grid.Run("cifar10", "resnet20", "dn_relaxed", 2, recipe="0123abcd")
    assert run.path == "runs/cifar10/resnet20/dn_relaxed/0123abcd/seed2"
    ablation = grid.Run("cifar100", "resnet56", "dn_relaxed", 0, ("rho", 0.25), "89abcdef")
    assert ablation.path == "ablations/rho/cifar100/resnet56/dn_relaxed/rho=0.25/89abcdef/seed0"
    with pytest.raises(ValueError, match="no recipe digest"):
        _ = grid.Run("cifar10", "resnet20", "dn_relaxed", 2).path


def test_a_run_folder_names_its_recipe_so_configs_never_share_one():
    """demo and ci train the same (dataset, model, regulariser, seed) with different recipes: their
    folders differ; seeds of one recipe share its digest; a runtime-only setting changes nothing."""
    demo, ci = load("demo.yaml"), load("ci.yaml")
    demo_run = next(run for run in grid.main_runs(demo) if run.regularizer == "none" and run.seed == 0)
    ci_run = next(run for run in grid.main_runs(ci) if run.regularizer == "none" and run.seed == 0)
    assert demo_run.path.rsplit("/", 2)[0] == ci_run.path.rsplit("/", 2)[0]
    assert demo_run.path != ci_run.path
    assert len({run.recipe for run in grid.main_runs(demo) if run.regularizer == "none"}) == 1
    assert demo_run.recipe == recipe_digest(grid.train_config(demo_run, demo))
    faster = {**demo, "threads": 2, "train": {**demo["train"], "device": "auto"}}
    assert grid.planned(demo_run, faster).recipe == demo_run.recipe
    changed = {**demo, "train": {**demo["train"], "lr": 0.1}}
    assert grid.planned(demo_run, changed).recipe != demo_run.recipe
    explicit_default = {**demo, "regularization": {**demo["regularization"], "eps": 1e-8}}
    relaxed = next(run for run in grid.main_runs(demo) if run.regularizer == "dn_relaxed")
    assert grid.planned(relaxed, explicit_default).recipe == relaxed.recipe


def test_train_arguments_carry_the_recipe_and_only_accepted_options():
    config = load("config.yaml")
    fro = grid.train_arguments(grid.Run("cifar10", "resnet20", "fro", 1), config)
    assert fro[:8] == ["--model", "resnet20", "--dataset", "cifar10", "--regularizer", "fro", "--seed", "1"]
    assert "--gamma" not in fro and "--rho" not in fro
    assert fro[fro.index("--lr-milestones") + 1 : fro.index("--lr-milestones") + 4] == ["0.3", "0.6", "0.8"]
    assert "--no-nesterov" not in fro and "--no-augment" not in fro
    relaxed = grid.train_arguments(grid.Run("cifar10", "resnet20", "dn_relaxed", 0, ("rho", 0.25)), config)
    assert relaxed[relaxed.index("--rho") + 1] == "0.25"
    assert relaxed[relaxed.index("--ablation") + 1] == "rho=0.25"
    assert relaxed[relaxed.index("--gamma") + 1] == "1.0"


def test_overrides_apply_to_one_regulariser():
    config = load("config.yaml")
    config["regularization"]["overrides"] = {"srip": {"lambda": 0.01}}
    srip = grid.regularizer_settings(grid.Run("cifar10", "resnet20", "srip", 0), config)
    fro = grid.regularizer_settings(grid.Run("cifar10", "resnet20", "fro", 0), config)
    assert srip["lambda"] == 0.01 and fro["lambda"] == config["regularization"]["lambda"]


def test_demo_config_merged_over_paper_config_keeps_its_own_ablations():
    config = merged("config.yaml", "demo.yaml")
    grid.check_config_keys(config)
    grid.check_config_names(config)
    runs = grid.all_runs(config)
    assert len(runs) == 1 * 1 * 5 * 3 + 2 * 3  # the main grid, and the rho ablation (two values, three seeds)
    assert {run.ablation[0] for run in runs.values() if run.ablation} == {"rho"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modles": ["resnet20"]}, "unknown config key 'modles'; allowed keys: name, data_dir"),
        ({"train": {"epochs": 1, "lr_milestone": [0.5]}}, "unknown config key 'train.lr_milestone'"),
        ({"models": ["resnet99"]}, "unknown name 'resnet99'; valid names:"),
        ({"regularizers": ["dn_strictt"]}, "unknown name 'dn_strictt'; valid names:"),
    ],
)
def test_bad_config_names_the_key_and_what_is_accepted(change, message):
    config = load("config.yaml")
    config.update(change)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        grid.check_config_keys(config)
        grid.check_config_names(config)


def _overrides(settings):
    return {"regularization": {"overrides": settings}}


def _ablation(param, regularizers, values):
    return {"ablations": {param: {"regularizers": regularizers, "values": values}}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            _overrides({"dn_relaxed": {"rhoo": 0.3}}),
            "unknown config key 'regularization.overrides.dn_relaxed.rhoo'; keys regulariser 'dn_relaxed' "
            "takes: lambda, schedule, include_linear, skip_stem, calibration_images, eps, gamma, k, "
            "relaxation, rho",
            id="override-key-typo",
        ),
        pytest.param(
            _overrides({"dn_strict": {"rho": 0.3}}),
            "unknown config key 'regularization.overrides.dn_strict.rho'; keys regulariser 'dn_strict' takes: "
            "lambda, schedule, include_linear, skip_stem, calibration_images, eps, gamma",
            id="override-key-of-another-regulariser",
        ),
        pytest.param(
            _overrides({"dn_relaxed": {"lambda": -1}}),
            "config regularization.overrides.dn_relaxed.lambda: lambda must be a non-negative finite number, "
            "got -1",
            id="override-lambda-negative",
        ),
        pytest.param(
            _overrides({"dn_relaxed": {"rho": float("nan")}}),
            "config regularization.overrides.dn_relaxed.rho: rho must be in (0, 1], got nan",
            id="override-rho-nan",
        ),
        pytest.param(
            {"regularization": {"rho": float("nan")}},
            "config regularization.rho for dn_relaxed: rho must be in (0, 1], got nan",
            id="default-rho-nan",
        ),
        pytest.param(
            _ablation("rho", ["dn_relaxed"], [0.25, 0]),
            "config ablations.rho.values[1] for dn_relaxed: rho must be in (0, 1], got 0",
            id="ablation-rho-0",
        ),
        pytest.param(
            _ablation("rho", ["dn_relaxed"], [2]),
            "config ablations.rho.values[0] for dn_relaxed: rho must be in (0, 1], got 2",
            id="ablation-rho-2",
        ),
        pytest.param(
            _ablation("lambda", ["dn_strict"], [float("nan")]),
            "config ablations.lambda.values[0] for dn_strict: lambda must be a non-negative finite number, "
            "got nan",
            id="ablation-lambda-nan",
        ),
        pytest.param(
            _ablation("relaxation", ["dn_relaxed"], ["rank", "bogus"]),
            "config ablations.relaxation.values[1] for dn_relaxed: unknown relaxation rule 'bogus'; available: rank, rho",
            id="ablation-relaxation-unknown",
        ),
        pytest.param(
            _ablation("gamma", ["dn_strict", "fro"], [1.0]),
            "config ablations.gamma.regularizers: 'fro' does not take gamma, so its runs would not vary; "
            "regularisers that take it: dn_relaxed, dn_strict, dn_welch",
            id="ablation-gamma-on-fro",
        ),
        pytest.param(
            {"ablations": {"seeds": []}},
            "config ablations.seeds is empty: list at least one seed, leave the key out to use the main "
            "grid's seeds, or set `ablations: null` to run no ablation",
            id="ablation-seeds-empty",
        ),
        pytest.param(
            _ablation("rho", ["dn_relaxed"], []),
            "config ablations.rho.values is empty: list at least one, or set `ablations.rho: null` to skip "
            "the rho ablation",
            id="ablation-values-empty",
        ),
        pytest.param(
            _ablation("rho", [], [0.25]),
            "config ablations.rho.regularizers is empty: list at least one, or set `ablations.rho: null` to "
            "skip the rho ablation",
            id="ablation-regularizers-empty",
        ),
    ],
)
def test_bad_override_or_ablation_names_its_key_path_and_what_is_accepted(change, message):
    config = grid.merge_configs(merged("config.yaml", "ci.yaml"), change)
    with pytest.raises(ValueError, match=re.escape(message)):
        grid.check_config_keys(config)
        grid.check_config_names(config)


def test_schema_types_each_override_as_the_regularization_defaults_and_refuses_empty_ablation_seeds():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    config = merged("config.yaml", "ci.yaml")
    good = grid.merge_configs(
        merged("config.yaml", "ci.yaml"), _overrides({"dn_relaxed": {"rho": 0.3, "lambda": 0.01}})
    )
    assert validator.is_valid(config) and validator.is_valid(good)
    grid.check_config_keys(good)
    grid.check_config_names(good)
    for change in [
        _overrides({"dn_relaxed": {"include_linear": "yes"}}),
        _overrides({"srip": {"squared": "no"}}),
        _overrides({"dn_relaxed": {"lambda": -1}}),
        _overrides({"dn_relaxed": 0.3}),
        {"ablations": {"seeds": []}},
    ]:
        bad = grid.merge_configs(merged("config.yaml", "ci.yaml"), change)
        assert not validator.is_valid(bad), change


def test_expected_runs_file_lists_every_run(tmp_path):
    config = load("demo.yaml")
    runs = list(grid.all_runs(config).values())
    target = tmp_path / "grids" / "demo.json"
    grid.write_expected(runs, "results", str(target))
    records = json.loads(target.read_text())
    assert len(records) == len(runs)
    assert records[0]["run_dir"] == f"results/runs/fashion_mnist/resnet8/none/{runs[0].recipe}/seed0"
    assert records[0]["recipe"] == runs[0].recipe
    assert [path.name for path in target.parent.iterdir()] == ["demo.json"]


def test_an_ablation_cell_that_is_a_main_run_is_not_trained_twice():
    """Issue: the ablations retrained runs identical to main-grid runs. A cell is reused exactly when its
    settings, the ablation label aside, are a main run's: off the main grid's model it is trained."""
    config = load("config.yaml")
    main = {run.path for run in grid.main_runs(config)}
    cells = [
        grid.planned(grid.Run("cifar100", "resnet56", "dn_strict", seed, ("gamma", value)), config)
        for seed in (0, 1, 2)
        for value in (1.0, 3.0)
    ]
    assert [grid.is_main_run(cell, config) for cell in cells] == [True, False] * 3
    reused = dataclasses.replace(cells[0], ablation=None)
    assert grid.planned(reused, config).path in main
    elsewhere = {**config, "models": ["resnet20"]}
    assert len(grid.ablation_runs(elsewhere, "gamma")) == 2 * 5 * 3


def test_reference_presets_reproduce_the_public_code_settings():
    """bansal_wrn: WRN-28-10 with dropout 0.3, SRIP squared on every weight (the classifier too),
    lambda 0.01 with the step decay, the WRN recipe; ocnn_reference: the released OCNN layer choice."""
    bansal = merged("config.yaml", "bansal_wrn.yaml")
    runs = {
        run.regularizer: run for run in grid.main_runs(bansal) if run.dataset == "cifar10" and run.seed == 0
    }
    srip = grid.train_config(runs["srip"], bansal)
    assert (srip.model, srip.model_options, srip.epochs, srip.batch_size) == (
        "wrn28_10",
        {"dropout": 0.3},
        200,
        128,
    )
    assert (srip.lam, srip.schedule, srip.include_linear, srip.reg_options) == (
        0.01,
        "step",
        True,
        {"squared": True},
    )
    assert (srip.lr, srip.lr_milestones, srip.lr_decay, srip.nesterov, srip.weight_decay) == (
        0.1,
        (0.3, 0.6, 0.8),
        0.2,
        True,
        5e-4,
    )
    assert grid.train_config(runs["none"], bansal).model_options == {"dropout": 0.3}
    assert len(grid.all_runs(bansal)) == 2 * 2 * 3  # no ablations
    ocnn = merged("config.yaml", "ocnn_reference.yaml")
    assert {run.regularizer for run in grid.main_runs(ocnn)} == {"none", "ocnn", "ocnn_reference"}
    assert grid.train_config(grid.main_runs(ocnn)[-1], ocnn).lam == 0.1


def test_the_study_covers_every_method_at_three_depths_with_six_seeds():
    """Issue: every registered method (those left out say why in the config), >= 3 depths, >= 6
    seeds, all of Fashion-MNIST; the learning curve's 1-epoch point is the main run, not retrained."""
    study = merged("config.yaml", "study.yaml")
    text = (ROOT / "config" / "study.yaml").read_text()
    left_out = set(orthoreg.available_regularizers()) - set(study["regularizers"])
    assert left_out == {"so", "ocnn_reference"} and all(f"`{name}`" in text for name in left_out)
    assert len(study["models"]) >= 3 and len(study["seeds"]) >= 6
    assert study["train"]["limit_train"] is None and study["evaluate"]["limit_test"] is None
    runs = grid.all_runs(study)
    assert len(runs) == 12 * 3 * 6 + 2  # the learning curve adds 2 and 4 epochs
    curve = grid.ablation_runs(study, "epochs")
    assert sorted(run.ablation[1] for run in curve) == [2.0, 4.0]
    cifar = merged("config.yaml", "study.yaml", "study_cifar.yaml")
    cifar_runs = grid.main_runs(cifar)
    assert {run.dataset for run in cifar_runs} == {"cifar10", "cifar100"} and len(cifar_runs) == 2 * 216
    assert grid.train_config(cifar_runs[0], cifar).device == "auto"


def test_the_readme_states_the_paper_grids_bound_from_its_time_limits():
    """Each training job is killed at its time limit, so the limits bound the grid's training cost."""
    paper = load("config.yaml")
    assert grid.run_resource(paper, "runtime", "wrn28_10", 1) == 240
    assert grid.run_resource(paper, "runtime", "resnet20", 1) == 60
    assert grid.run_resource({}, "runtime", "resnet20", 7) == 7
    bound = grid.training_hours_bound(paper)
    assert (
        bound
        == sum(grid.run_resource(paper, "runtime", run.model, 60) for run in grid.all_runs(paper).values())
        / 60
    )
    readme = (ROOT / "README.md").read_text()
    assert f"at most **{bound:,.0f} GPU-hours**" in readme
