"""The experiment grid of the pipeline configs: runs, directories, arguments, validation."""

import itertools
import json
from pathlib import Path

import pytest
import yaml

from orthoreg import grid

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


def merged(*names):
    """Snakemake's merge of several config files: nested dicts update, everything else replaces."""

    def update(base, new):
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                update(base[key], value)
            else:
                base[key] = value
        return base

    config = {}
    for name in names:
        update(config, load(name))
    return config


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
    assert len(gamma) == 2 * 5 * 3
    assert {r.model for r in gamma} == {config["ablations"]["model"]}
    assert {r.ablation[0] for r in gamma} == {"gamma"}
    assert len(set(grid.all_runs(config))) == 432 + 30 + 12 + 24 + 3
    relaxation = grid.ablation_runs(config, "relaxation")
    assert {run.path.split("/")[-2] for run in relaxation} == {"relaxation=rank"}


def test_run_paths_are_distinct_and_readable():
    run = grid.Run("cifar10", "resnet20", "dn_relaxed", 2)
    assert run.path == "runs/cifar10/resnet20/dn_relaxed/seed2"
    ablation = grid.Run("cifar100", "resnet56", "dn_relaxed", 0, ("rho", 0.25))
    assert ablation.path == "ablations/rho/cifar100/resnet56/dn_relaxed/rho=0.25/seed0"


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


def test_expected_runs_file_lists_every_run(tmp_path):
    config = load("demo.yaml")
    runs = list(grid.all_runs(config).values())
    target = tmp_path / "grids" / "demo.json"
    grid.write_expected(runs, "results", str(target))
    records = json.loads(target.read_text())
    assert len(records) == len(runs)
    assert records[0]["run_dir"] == "results/runs/fashion_mnist/resnet8/none/seed0"
    assert [path.name for path in target.parent.iterdir()] == ["demo.json"]
