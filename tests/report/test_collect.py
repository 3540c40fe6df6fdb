"""Reading run directories: the fakes' files have exactly the columns and keys of a real trained,
evaluated and attacked run, every file the report reads lands in its frame (best epoch, settings,
points within epochs), and bad input is refused by name before any table is written."""

import json

import pandas as pd
import pytest
from fake_runs import make_run

from orthoreg.config import TrainConfig
from orthoreg.data import prepare_dataset
from orthoreg.evaluate import evaluate_run
from orthoreg.files import save_csv
from orthoreg.report import build_report
from orthoreg.report.analysis.collect import load_runs
from orthoreg.robustness import RobustnessSettings, run_robustness
from orthoreg.train import HISTORY_COLUMNS, train


def header(path) -> list[str]:
    return list(pd.read_csv(path, nrows=0).columns)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A real run of a few seconds: trained (2 epochs), evaluated and attacked on synthetic data."""
    root = tmp_path_factory.mktemp("real")
    config = TrainConfig(
        "resnet8",
        "synthetic",
        "none",
        epochs=2,
        batch_size=32,
        limit_train=64,
        limit_test=32,
        device="cpu",
        threads=1,
    )
    prepare_dataset("synthetic", root / "data")
    train(config, root / "run", root / "data", verbose=False)
    evaluate_run(root / "run", root / "data", limit_test=32, device="cpu")
    settings = RobustnessSettings(
        eps=(8 / 255,), pgd_steps=(1,), severities=(1,), corruptions=("gaussian_noise",)
    )
    run_robustness(root / "run", root / "data", settings, limit=16, device="cpu")
    return root / "run"


def test_fake_runs_have_the_real_files_columns_and_keys(real_run, tmp_path):
    fake = make_run(tmp_path, "cifar10", "resnet20", "none", 0, 0.9, curve_points=2)
    real_record, fake_record = (json.loads((d / "run.json").read_text()) for d in (real_run, fake))
    assert set(fake_record) <= set(real_record), sorted(set(fake_record) - set(real_record))
    assert set(fake_record["config"]) == set(real_record["config"])
    for name in ("history.csv", "layers.csv", "spectra.csv"):
        assert header(fake / name) == header(real_run / name), name
    assert header(fake / "curve.csv") == header(real_run / "history.csv")
    real_eval, fake_eval = (json.loads((d / "eval.json").read_text()) for d in (real_run, fake))
    assert set(fake_eval) <= set(real_eval), sorted(set(fake_eval) - set(real_eval))
    assert set(fake_eval["orthogonality"]) == set(real_eval["orthogonality"])
    real_robust, fake_robust = (json.loads((d / "robustness.json").read_text()) for d in (real_run, fake))
    assert set(fake_robust) <= set(real_robust)
    for key in ("corruptions", "adversarial"):
        assert set(fake_robust[key][0]) == set(real_robust[key][0]), key


def test_a_real_run_is_read_whole(real_run):
    data = load_runs(real_run.parent)
    (run,) = data.runs.to_dict("records")
    assert run["accuracy_source"] == "eval.json" and run["n_test"] == 32 and run["history_test_images"] == 32
    history = pd.read_csv(real_run / "history.csv")
    assert run["best_epoch_accuracy_pct"] == pytest.approx(100 * history["test_accuracy"].max())
    assert len(data.history) == 2 and len(data.layers) and len(data.spectra) and len(data.orthogonality)
    assert set(data.adversarial["attack"]) == {"clean", "fgsm", "pgd"} and len(data.corruptions) == 1
    assert (
        run["setting_shortcut"] == "A" and run["setting_epochs"] == 2.0 and run["setting_lambda"] is not None
    )


def test_best_epoch_settings_and_points_within_epochs_are_read(tmp_path):
    run_dir = make_run(
        tmp_path,
        "cifar10",
        "wrn28_10",
        "srip",
        0,
        0.9,
        epochs=4,
        curve_points=3,
        limit_test=500,
        model_options={"dropout": 0.3},
        reg_options={"squared": True},
        include_linear=True,
        lam=0.01,
    )
    history = pd.read_csv(run_dir / "history.csv").to_dict("records")
    history[1]["test_accuracy"] = 0.95
    save_csv(history, HISTORY_COLUMNS, run_dir / "history.csv")
    data = load_runs(tmp_path)
    (run,) = data.runs.to_dict("records")
    assert (run["best_epoch"], run["best_epoch_accuracy_pct"]) == (2, pytest.approx(95.0))
    assert run["test_accuracy_pct"] == pytest.approx(90.0) and run["history_test_images"] == 500
    assert (run["setting_dropout"], run["setting_squared"], run["setting_include_linear"]) == (
        0.3,
        True,
        True,
    )
    assert (run["setting_lambda"], run["setting_schedule"], run["setting_skip_stem"]) == (
        0.01,
        "constant",
        False,
    )
    assert run["setting_iters"] is None and run["setting_rho"] is None  # srip has no rho
    assert data.curve["epoch"].tolist() == pytest.approx([k / 3 for k in range(1, 13)])


def test_missing_runs_listed_from_expected(tmp_path):
    root = tmp_path / "results"
    done = make_run(root, "cifar10", "resnet20", "none", 0, 0.9)
    unevaluated = make_run(root, "cifar10", "resnet20", "none", 1, 0.9, evaluate=False)
    unfinished = make_run(root, "cifar10", "resnet20", "fro", 0, 0.5, epochs=10, epochs_completed=4)
    absent = root / "runs" / "cifar10" / "resnet20" / "fro" / "seed1"
    expected = [
        {
            "dataset": "cifar10",
            "model": "resnet20",
            "regularizer": reg,
            "seed": seed,
            "ablation": None,
            "run_dir": str(path),
        }
        for reg, seed, path in [
            ("none", 0, done),
            ("none", 1, unevaluated),
            ("fro", 0, unfinished),
            ("fro", 1, absent),
        ]
    ]
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(expected))
    summary = build_report(root, tmp_path / "tables", tmp_path / "figures", expected=grid)
    status = {(m["regularizer"], m["seed"]): m["status"] for m in summary["missing"]}
    assert status == {("none", 1): "incomplete", ("fro", 0): "incomplete", ("fro", 1): "absent"}
    listed = pd.read_csv(tmp_path / "tables" / "missing_runs.csv")
    assert sorted(zip(listed["regularizer"], listed["seed"], strict=False)) == [
        ("fro", 0),
        ("fro", 1),
        ("none", 1),
    ]
    assert "trained 4 of 10 epochs" in set(listed["reason"])
    # the unfinished run is left out of the accuracy table; the unevaluated one still counts
    main = pd.read_csv(tmp_path / "tables" / "main_accuracy.csv")
    assert list(zip(main["regularizer"], main["n"], strict=False)) == [("none", 2)]
    assert summary["incomplete"][0]["reason"] == "trained 4 of 10 epochs"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("test_accuracy", 93.1, "outside \\[0, 1\\]"),
        ("seed", "zero", "not an integer"),
        ("ablation", {"param": "gamma"}, "ablation"),
    ],
)
def test_bad_run_json_is_refused_by_name(tmp_path, field, value, message):
    run_dir = make_run(tmp_path / "r", "cifar10", "resnet20", "none", 0, 0.9, evaluate=False)
    record = json.loads((run_dir / "run.json").read_text())
    record[field] = value
    (run_dir / "run.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=message):
        build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
    assert not (tmp_path / "t").exists()


def test_bad_inputs_raise_before_work(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_runs(tmp_path / "nowhere")
    make_run(tmp_path / "r", "cifar10", "resnet20", "none", 0, 0.9, evaluate=False)
    (tmp_path / "bad.json").write_text(json.dumps([{"dataset": "cifar10", "seed": 0}]))
    with pytest.raises(ValueError, match="lacks model, regularizer, run_dir"):
        build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f", expected=tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="--expected"):
        build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f", expected=tmp_path / "absent.json")
    assert not (tmp_path / "t").exists()
    copy = make_run(tmp_path / "r" / "copy", "cifar10", "resnet20", "none", 0, 0.8, evaluate=False)
    with pytest.raises(ValueError, match="two runs share"):
        build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
    (copy / "history.csv").write_text("epoch,lr\n1,0.1\n")
    with pytest.raises(ValueError, match="missing columns test_accuracy, reg_value"):
        load_runs(copy.parent)
