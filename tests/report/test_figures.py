"""Figures: real PDF and PNG files only where their data exist, lines through measured points only,
identical curves drawn once, heatmaps on an honest colour scale, and training curves that mean
something at every length (points within epochs where runs record them, one-point runs left out, the
per-epoch test set's size on the axis)."""

import numpy as np
import pandas as pd
import pytest
from fake_runs import PDF_MAGIC, PNG_MAGIC, build_tree, make_run

from orthoreg.files import save_csv
from orthoreg.report import build_report
from orthoreg.report.analysis.collect import load_runs
from orthoreg.report.analysis.curves import curves, merge_identical
from orthoreg.report.analysis.orthogonality import representative_layers
from orthoreg.report.figures.accuracy import training_figures
from orthoreg.report.figures.draw import draw_lines
from orthoreg.report.figures.orthogonality import gram_figures, spectra_figures
from orthoreg.report.figures.style import new_figure, regularizer_styles
from orthoreg.report.registry import FIGURES


def test_figures_are_real_pdf_and_png(report):
    expected = {
        "depth_trend",
        "cost",
        "orthogonality_layers_cifar10_resnet20",
        "spectra_cifar10_resnet56",
        "robustness_eps_cifar10_resnet20",
        "robustness_severity_cifar10_resnet56",
        "training_curves_cifar10_resnet20",
        "ablation_cifar10_resnet20",
    }
    assert expected <= set(report["summary"]["figures"])
    for name in report["summary"]["figures"]:
        assert (report["figures"] / f"{name}.pdf").read_bytes().startswith(PDF_MAGIC)
        assert (report["figures"] / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    # no gram.csv in this grid: the Gram heatmaps are skipped, not drawn empty
    assert not list(report["figures"].glob("cosine_gram_*"))
    assert "cosine_gram_*" in {item["name"] for item in report["summary"]["skipped"]}


@pytest.mark.slow
def test_figures_without_data_do_not_exist_and_stale_ones_go(report, tmp_path):
    root = tmp_path / "results"
    build_tree(root, robustness=False)
    figures = report["figures"].parent / "figures_partial"
    tables = report["figures"].parent / "tables_partial"
    build_report(report["root"] / "results", tables, figures)
    assert list(figures.glob("robustness_eps_*"))
    summary = build_report(root, tables, figures)  # same folders, now without robustness.json
    assert not list(figures.glob("robustness_*"))
    assert not (tables / "robustness_adversarial.csv").exists()
    skipped = {item["name"] for item in summary["skipped"]}
    assert {"robustness_eps_*", "robustness_severity_*", "robustness_adversarial"} <= skipped
    assert "robustness_corruptions" in (tables / "README.md").read_text()
    assert (tables / "main_accuracy.csv").exists()


def gram_net(generator):
    """A stem, a block's 3x3 convolution, a 1x1 shortcut and a classifier, with random weights."""
    torch = pytest.importorskip("torch")
    from torch import nn

    net = nn.Module()
    net.conv1 = nn.Conv2d(3, 4, 3)
    net.block = nn.Module()
    net.block.conv2 = nn.Conv2d(4, 6, 3)
    net.block.shortcut = nn.Conv2d(4, 6, 1)
    net.fc = nn.Linear(6, 10)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return net


def write_gram(run_dir, net) -> None:
    """gram.csv as `orthoreg evaluate` writes it."""
    from orthoreg.evaluate import GRAM_COLUMNS, gram_rows
    from orthoreg.metrics import layer_metrics

    save_csv(gram_rows(net, layer_metrics(net)), GRAM_COLUMNS, run_dir / "gram.csv")


def test_gram_csv_holds_the_last_3x3_convolution_pair_by_pair():
    torch = pytest.importorskip("torch")
    from orthoreg.evaluate import gram_rows
    from orthoreg.metrics import cosine_gram, layer_metrics

    net = gram_net(torch.Generator().manual_seed(1))
    rows = gram_rows(net, layer_metrics(net))
    assert {row["layer"] for row in rows} == {"block.conv2"} and len(rows) == 6 * 5 // 2
    expected = cosine_gram(net.block.conv2.weight.detach())
    assert all(row["row"] < row["column"] for row in rows)
    assert [row["cosine"] for row in rows] == pytest.approx(
        [float(expected[r["row"], r["column"]]) for r in rows]
    )


def test_cosine_gram_heatmap_drawn_from_gram_csv_without_model_pt(tmp_path):
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(0)
    for regularizer in ("none", "dn_strict"):
        run_dir = make_run(tmp_path / "results", "cifar10", "resnet20", regularizer, 0, 0.9, robustness=False)
        write_gram(run_dir, gram_net(generator))
    summary = build_report(tmp_path / "results", tmp_path / "tables", tmp_path / "figures")
    assert "cosine_gram_cifar10_resnet20" in summary["figures"]
    assert (tmp_path / "figures" / "cosine_gram_cifar10_resnet20.pdf").read_bytes().startswith(PDF_MAGIC)
    assert (tmp_path / "figures" / "cosine_gram_cifar10_resnet20.png").read_bytes().startswith(PNG_MAGIC)


def test_cosine_gram_colour_scale_spans_the_off_diagonal_entries(tmp_path):
    run_dir = make_run(tmp_path / "results", "cifar10", "resnet20", "none", 0, 0.9, robustness=False)
    pairs = [(0, 1, 0.6), (0, 2, 0.0), (1, 2, -0.0)]
    rows = [{"layer": "layer.conv", "row": r, "column": c, "cosine": value} for r, c, value in pairs]
    save_csv(rows, ["layer", "row", "column", "cosine"], run_dir / "gram.csv")
    (drawn,) = gram_figures(load_runs(tmp_path / "results"))
    image = drawn.figure.axes[0].get_images()[0]
    assert image.get_clim() == pytest.approx((0.0, 0.6))  # not (0, 1): the diagonal is left out
    assert np.ma.getmaskarray(image.get_array())[0, 0]  # the NaN diagonal is masked: drawn grey


def test_identical_curves_are_drawn_once_and_named_together():
    frame = pd.DataFrame(
        {
            "regularizer": ["fro", "so", "none"] * 2,
            "seed": [0, 0, 0, 1, 1, 1],
            "x": [1] * 3 + [2] * 3,
            "y": [5.0, 5.0, 4.0, 6.0, 6.0, 7.0],
        }
    )
    groups = merge_identical(curves(frame, "x", "y"))
    assert [names for names, _ in groups] == [["none"], ["fro", "so"]]
    figure, axes = new_figure(1, 1)
    draw_lines(axes[0], frame, "x", "y", regularizer_styles(frame["regularizer"]))
    assert [line.get_label() for line in axes[0].get_lines()] == ["none", "fro = so (identical)"]


def test_a_line_breaks_where_a_regulariser_was_not_measured():
    frame = pd.DataFrame(
        {
            "regularizer": ["a", "a", "b", "b", "b"],
            "seed": 0,
            "x": [1, 3, 1, 2, 3],
            "y": [1.0, 3.0, 1.0, 2.0, 4.0],
        }
    )
    figure, axes = new_figure(1, 1)
    draw_lines(axes[0], frame, "x", "y", regularizer_styles(["a", "b"]))
    first = axes[0].get_lines()[0]
    assert first.get_label() == "a" and np.isnan(first.get_ydata()[1])


def test_one_epoch_runs_draw_no_training_curve_and_say_why(tmp_path):
    for regularizer in ("none", "dn_strict"):
        make_run(tmp_path / "r", "cifar10", "resnet20", regularizer, 0, 0.9, epochs=1, robustness=False)
    assert training_figures(load_runs(tmp_path / "r")) == []
    summary = build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
    reason = {item["name"]: item["reason"] for item in summary["skipped"]}["training_curves_*"]
    assert reason == FIGURES.get("training_curves").skip and "curve.csv" in reason


def test_training_curves_use_the_points_within_epochs_and_name_the_test_set(tmp_path):
    for regularizer in ("none", "dn_strict"):
        for seed in (0, 1):
            make_run(
                tmp_path,
                "cifar10",
                "resnet20",
                regularizer,
                seed,
                0.9 if regularizer == "none" else 0.92,
                epochs=1,
                robustness=False,
                curve_points=4,
                limit_test=1000,
            )
    (drawn,) = training_figures(load_runs(tmp_path))
    accuracy = drawn.figure.axes[0]
    (none, strict) = accuracy.get_lines()
    assert none.get_xdata().tolist() == [0.25, 0.5, 0.75, 1.0]
    # the fake curve rises linearly to the final accuracy: 92 % x the fraction of the epoch trained
    assert strict.get_ydata() == pytest.approx([23.0, 46.0, 69.0, 92.0])
    assert accuracy.get_xlim()[1] - accuracy.get_xlim()[0] < 1.5
    assert "the first 1000 test images" in accuracy.get_ylabel()
    assert (
        drawn.facts["source"] == "curve.csv"
        and "tables: eval.json on 1000 test images" in drawn.figure.get_suptitle()
    )
    penalty = drawn.figure.axes[1]
    assert [line.get_label() for line in penalty.get_lines()] == ["dn_strict"]


def test_training_curves_per_epoch_on_all_test_images(tmp_path):
    make_run(tmp_path, "cifar10", "resnet20", "none", 0, 0.9, epochs=3, robustness=False)
    (drawn,) = training_figures(load_runs(tmp_path))
    axis = drawn.figure.axes[0]
    assert axis.get_lines()[0].get_xdata().tolist() == [1.0, 2.0, 3.0]
    assert "all test images" in axis.get_ylabel() and drawn.facts["source"] == "history.csv"


def test_spectra_show_the_last_3x3_convolution_of_layers_csv(tmp_path):
    run_dir = make_run(tmp_path, "cifar10", "resnet20", "none", 0, 0.9, robustness=False)
    layers = pd.read_csv(run_dir / "layers.csv").to_dict("records")
    classifier = {**layers[-1], "layer": "fc", "kind": "linear", "kh": 1, "kw": 1}
    save_csv([*layers, classifier], list(layers[0]), run_dir / "layers.csv")
    spectra = pd.read_csv(run_dir / "spectra.csv").to_dict("records")
    save_csv(
        [*spectra, {"layer": "fc", "index": 0, "singular_value": 3.0}],
        list(spectra[0]),
        run_dir / "spectra.csv",
    )
    data = load_runs(tmp_path)
    assert representative_layers(data) == {("cifar10", "resnet20"): "layer1.0.conv2"}
    (drawn,) = spectra_figures(data)
    assert drawn.facts["layer"] == "layer1.0.conv2"
