"""`orthoreg inspect`: per-layer near-orthogonality of a torchvision state dict, a registered model and a
run, checked against `orthoreg.metrics.layer_metrics` on the original model and float64 formulas."""

import csv
import json
import math
import subprocess
import sys

import pytest
import torch
import torchvision

from orthoreg.inspect import format_table, inspect_target, module_from_state_dict
from orthoreg.metrics import MEASURES, layer_metrics
from orthoreg.models import build_model


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    path = tmp_path_factory.mktemp("tv") / "resnet18.pt"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture(scope="module")
def resnet18_measured(resnet18_file):
    """(model, file, inspect_target's report, layer_metrics of the model itself), linear layers included;
    measured once because the SVDs of ResNet-18's 512 x 4608 layers dominate this file's run time."""
    model, path = resnet18_file
    return model, path, inspect_target(path, include_linear=True), layer_metrics(model, include_linear=True)


def orthoreg_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "orthoreg", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def assert_rows_match(got, expected, ignore=("stride",)):
    assert [row["layer"] for row in got] == [row["layer"] for row in expected]
    for mine, reference in zip(got, expected, strict=True):
        for key, value in reference.items():
            if key in ignore:
                continue
            if isinstance(value, float):
                assert mine[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (mine["layer"], key)
            else:
                assert mine[key] == value, (mine["layer"], key)


@pytest.mark.slow
def test_torchvision_state_dict_matches_the_model_itself(resnet18_measured):
    model, _, report, expected = resnet18_measured
    assert len(expected) == 21  # 20 convolutions (3 downsampling 1x1 included) + fc
    assert_rows_match(report.rows, expected)
    assert all(row["stride"] is None for row in report.rows)  # a state dict does not record strides
    # an independent float64 reference for one layer: ||W W^T - I||_F and the singular values
    weight = model.layer2[0].downsample[0].weight.detach().double().flatten(1)
    row = next(r for r in report.rows if r["layer"] == "layer2.0.downsample.0")
    assert row["holistic_residual"] == pytest.approx(
        float((weight @ weight.T - torch.eye(128)).norm()), rel=1e-9
    )
    reference = torch.linalg.svdvals(weight).numpy()
    assert report.spectra["layer2.0.downsample.0"] == pytest.approx(reference, rel=1e-9)
    assert row["sigma_max"] == pytest.approx(reference[0], rel=1e-9)


def test_linear_layers_only_on_request(resnet18_file):
    model, path = resnet18_file
    state = torch.load(path, weights_only=True)
    convs = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    without = module_from_state_dict(state)
    assert [name for name, m in without.named_modules() if isinstance(m, torch.nn.Conv2d)] == convs
    assert not any(isinstance(m, torch.nn.Linear) for m in without.modules())
    with_linear = module_from_state_dict(state, include_linear=True)
    assert torch.equal(with_linear.get_submodule("fc").weight, model.fc.weight)


def test_cli_writes_csv_equal_to_layer_metrics_and_a_figure(resnet18_file, tmp_path):
    # ResNet-18's first two stages: the same file format, without the 512 x 4608 SVDs of stage 4
    model, path = resnet18_file
    state = torch.load(path, weights_only=True)
    early = {
        key: value for key, value in state.items() if key.startswith(("conv1.", "bn1.", "layer1.", "layer2."))
    }
    torch.save(early, tmp_path / "early.pt")
    result = orthoreg_cli(
        "inspect", "early.pt", "--csv", "out/layers.csv", "--figure", "out/spectra.pdf", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "layer2.0.downsample.0" in result.stdout and "holistic_residual" in result.stdout
    with open(tmp_path / "out" / "layers.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    stages = torch.nn.Sequential()
    for name in ("conv1", "layer1", "layer2"):
        stages.add_module(name, getattr(model, name))
    expected = layer_metrics(stages)
    assert len(expected) == 1 + 4 + 5
    assert [row["layer"] for row in rows] == [row["layer"] for row in expected]
    for written, reference in zip(rows, expected, strict=True):
        assert set(written) == set(reference)
        for measure in MEASURES:
            if reference[measure] is None:
                assert written[measure] == "", measure
            else:
                assert float(written[measure]) == pytest.approx(reference[measure], rel=1e-12), measure
        assert written["stride"] == ""  # unknown for a bare state dict
        assert written["conv_sigma_max"] == ""  # None, not NaN, is written as an empty cell
    assert (tmp_path / "out" / "spectra.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.slow
def test_registered_model_with_operator_spectrum(tmp_path):
    result = orthoreg_cli(
        "inspect",
        "resnet8",
        "--num-classes",
        "5",
        "--in-channels",
        "1",
        "--conv-input-size",
        "8",
        "8",
        "--figure",
        "spectra.png",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "spectra.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    report = inspect_target("resnet8", num_classes=5, in_channels=1, conv_input_size=(8, 8))
    net = build_model("resnet8", 5, in_channels=1)
    convs = [name for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert [row["layer"] for row in report.rows] == convs
    stem = report.rows[0]
    assert (stem["n"], stem["stride"]) == (1 * 3 * 3, 1)
    for row in report.rows:  # the operator spectrum exists exactly for the stride-1 convolutions
        assert (row["conv_sigma_max"] is not None) == (row["stride"] == 1)


@pytest.mark.slow
def test_run_directory_and_its_model_pt(tmp_path):
    from orthoreg.runs import build_classifier

    class Info:
        num_classes, in_channels, mean, std = 10, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    model = build_classifier("resnet8", Info())
    run = tmp_path / "run"
    run.mkdir()
    torch.save(model.state_dict(), run / "model.pt")
    record = {
        "model": "resnet8",
        "regularizer": "fro",
        "seed": 0,
        "num_classes": 10,
        "in_channels": 3,
        "mean": list(Info.mean),
        "std": list(Info.std),
        "config": {"model_options": {}},
    }
    (run / "run.json").write_text(json.dumps(record))
    expected = layer_metrics(model[1])
    for target in (run, run / "model.pt"):
        report = inspect_target(target)
        assert report.strides_known and "resnet8" in report.source
        assert_rows_match(report.rows, expected, ignore=())
    # the same file away from its run.json is a bare state dict of Sequential(Normalize, net)
    loose = tmp_path / "loose.pt"
    loose.write_bytes((run / "model.pt").read_bytes())
    bare = inspect_target(loose)
    assert [row["layer"] for row in bare.rows] == ["1." + row["layer"] for row in expected]


def test_nested_checkpoint_layout_is_read(tmp_path):
    net = build_model("resnet8", 10)
    torch.save({"model": net.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pt")
    assert_rows_match(inspect_target(tmp_path / "checkpoint.pt").rows, layer_metrics(net))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a checkpoint", "weights_only"),
        (torch.randn(3), "not a state dict"),
        ({"bn.weight": torch.ones(4), "fc.weight": torch.ones(2, 4)}, "no convolution weights"),
        ({"conv.weight": torch.ones(2, 1, 3, 3, dtype=torch.int64)}, "floating-point"),
    ],
)
def test_bad_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ValueError, match=message):
        inspect_target(path)


def test_cli_errors_name_the_problem(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"\x00garbage")
    garbage = orthoreg_cli("inspect", "garbage.pt", cwd=tmp_path)
    assert garbage.returncode == 2 and "garbage.pt" in garbage.stderr and "weights_only" in garbage.stderr
    missing = orthoreg_cli("inspect", "no_such_model_or_file", cwd=tmp_path)
    assert missing.returncode == 2 and "resnet20" in missing.stderr  # lists the registered models
    figure = orthoreg_cli("inspect", "resnet8", "--figure", "spectra.jpg", cwd=tmp_path)
    assert figure.returncode == 2 and ".pdf" in figure.stderr and not (tmp_path / "spectra.jpg").exists()


def test_strides_unknown_refuses_operator_spectrum(tmp_path):
    path = tmp_path / "net.pt"
    torch.save(build_model("resnet8", 10).state_dict(), path)
    with pytest.raises(ValueError, match="strides"):
        inspect_target(path, conv_input_size=(8, 8))


def test_module_from_state_dict_keeps_names_and_values():
    state = {
        "a.weight": torch.randn(4, 2, 3, 3),
        "a.b.weight": torch.randn(3, 4, 1, 1),
        "head.weight": torch.randn(5, 3),
        "a.bias": torch.randn(4),
    }
    module = module_from_state_dict(state, include_linear=True)
    assert torch.equal(module.get_submodule("a").weight, state["a.weight"])
    assert torch.equal(module.get_submodule("a.b").weight, state["a.b.weight"])
    assert isinstance(module.get_submodule("head"), torch.nn.Linear)
    assert "head" not in dict(module_from_state_dict(state).named_modules())


def test_format_table_drops_empty_columns_and_prints_every_layer():
    rows = [
        {"layer": "x", "max_cos": 0.123456, "conv_sigma_max": None, "o": 4},
        {"layer": "y", "max_cos": math.nan, "conv_sigma_max": None, "o": 8},
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["layer", "max_cos", "o"]
    assert lines[1].split() == ["x", "0.1235", "4"] and lines[2].split() == ["y", "nan", "8"]


def test_a_relaxed_run_shows_each_layers_recorded_rank_and_k(tmp_path):
    from orthoreg.runs import build_classifier

    class Info:
        num_classes, in_channels, mean, std = 10, 1, (0.5,), (0.25,)

    model = build_classifier("resnet8", Info())
    run = tmp_path / "run"
    run.mkdir()
    torch.save(model.state_dict(), run / "model.pt")
    layers = {row["layer"]: {"rank": 3, "k": index} for index, row in enumerate(layer_metrics(model[1]))}
    record = {
        "model": "resnet8",
        "regularizer": "dn_relaxed",
        "seed": 0,
        "num_classes": 10,
        "in_channels": 1,
        "mean": [0.5],
        "std": [0.25],
        "config": {"model_options": {}},
        "relaxation": {"rule": "rank", "rho": 0.5, "layers": layers},
    }
    (run / "run.json").write_text(json.dumps(record))
    report = inspect_target(run)
    assert [(row["rank"], row["k"]) for row in report.rows] == [(3, k) for k in range(len(layers))]
    assert " k" in format_table(report.rows).splitlines()[0]


def test_the_rho_rule_k_for_any_model_and_torchvision_models_by_name():
    from orthoreg.regularizers import relaxation_k

    report = inspect_target("resnet8", rho=0.5)
    for row in report.rows:
        assert row["k"] == relaxation_k(row["o"] // row["groups"], row["n"], 0.5)
    grouped = inspect_target("torchvision:resnext50_32x4d", rho=0.5)
    assert {row["groups"] for row in grouped.rows} == {1, 32}
    assert "no weights" in grouped.source
    with pytest.raises(ValueError, match="torchvision has no model 'resnet9'"):
        inspect_target("torchvision:resnet9")
    with pytest.raises(ValueError, match=r"rho must be in \(0, 1\], got 2.0"):
        inspect_target("resnet8", rho=2.0)


def test_a_state_dict_of_1d_and_3d_convolutions_is_read(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 6, 3), torch.nn.Conv3d(6, 4, (1, 2, 2)))
    path = tmp_path / "mixed.pt"
    torch.save(model.state_dict(), path)
    report = inspect_target(path)
    assert [(row["layer"], row["kind"]) for row in report.rows] == [("0", "conv1d"), ("1", "conv3d")]
    assert_rows_match(report.rows, layer_metrics(model), ignore=("stride",))
