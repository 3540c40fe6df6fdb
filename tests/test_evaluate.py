"""Evaluation: ECE against hand-computed cases, accuracy/top-5/loss of a model whose logits are known,
and the eval.json, layers.csv and spectra.csv a run directory gets."""

import csv
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from orthoreg.evaluate import ECE_BINS, evaluate_model, expected_calibration_error, prediction_metrics


def reference_ece(confidences, correct, n_bins=ECE_BINS):
    """ECE by explicit bins (lower, upper], in float64 Python."""
    total = 0.0
    for b in range(n_bins):
        lower, upper = b / n_bins, (b + 1) / n_bins
        members = [i for i, c in enumerate(confidences) if lower < c <= upper or (b == 0 and c == 0)]
        if members:
            accuracy = sum(correct[i] for i in members) / len(members)
            confidence = sum(confidences[i] for i in members) / len(members)
            total += len(members) / len(confidences) * abs(accuracy - confidence)
    return total


def test_ece_of_a_hand_computed_case():
    # bins of width 1/15: 0.95 -> (14/15, 1], 0.55 -> (8/15, 9/15], 0.25 -> (3/15, 4/15], 0.05 -> (0, 1/15]
    confidences = torch.tensor([0.95, 0.95, 0.55, 0.25, 0.05])
    correct = torch.tensor([True, False, True, False, False])
    # 2/5 * |0.5 - 0.95| + 1/5 * |1 - 0.55| + 1/5 * |0 - 0.25| + 1/5 * |0 - 0.05|
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.18 + 0.09 + 0.05 + 0.01)


def test_ece_is_zero_when_confidence_matches_accuracy_in_every_bin():
    confidences = torch.tensor([0.75, 0.75, 0.75, 0.75, 1.0, 1.0])
    correct = torch.tensor([True, True, True, False, True, True])
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.0, abs=1e-12)


def test_ece_matches_explicit_bins_on_random_predictions():
    generator = torch.Generator().manual_seed(0)
    confidences = torch.rand(500, generator=generator, dtype=torch.float64)
    confidences[:3] = torch.tensor([0.0, 1.0, 2 / 15])  # the edges of the first, last and a middle bin
    correct = torch.rand(500, generator=generator) < confidences
    expected = reference_ece(confidences.tolist(), correct.tolist())
    assert expected_calibration_error(confidences, correct) == pytest.approx(expected, rel=1e-12)


def test_ece_rejects_bad_input():
    with pytest.raises(ValueError, match="equal 1-D"):
        expected_calibration_error(torch.rand(3), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error(torch.tensor([1.5]), torch.ones(1, dtype=torch.bool))


class Halve(nn.Module):
    """A normalisation the lookup net must see: [0, 1] -> [-1, 1]."""

    def forward(self, x):
        return (x - 0.5) / 0.5


class LookupNet(nn.Module):
    """Image i carries its index in pixel (0, 0, 0); its logits are row i of a table. Only correct if the
    normalisation ran first."""

    def __init__(self, table):
        super().__init__()
        self.fc = nn.Linear(table.shape[0], table.shape[1], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(table.T)

    def forward_features(self, x):
        index = torch.round((x[:, 0, 0, 0] * 0.5 + 0.5) * 255).long()
        return F.one_hot(index, self.fc.in_features).float()

    def forward(self, x):
        return self.fc(self.forward_features(x))


def lookup_case(n=40, classes=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    table = 3 * torch.randn(n, classes, generator=generator)
    labels = torch.randint(0, classes, (n,), generator=generator)
    images = torch.randint(0, 256, (n, 3, 4, 4), generator=generator, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    return nn.Sequential(Halve(), LookupNet(table)).eval(), images, labels, table.double()


def test_prediction_metrics_of_a_model_with_known_logits():
    model, images, labels, table = lookup_case()
    result = prediction_metrics(model, images, labels, batch_size=16)
    probabilities = table.softmax(1)
    top5 = table.topk(5, dim=1).indices
    assert result["n_test"] == 40
    assert result["test_accuracy"] == pytest.approx((table.argmax(1) == labels).double().mean().item())
    assert result["top5_accuracy"] == pytest.approx((top5 == labels[:, None]).any(1).double().mean().item())
    assert result["test_loss"] == pytest.approx(F.cross_entropy(table, labels).item(), rel=1e-6)
    confidences = probabilities.max(1).values.tolist()
    correct = (table.argmax(1) == labels).tolist()
    assert result["ece"] == pytest.approx(reference_ece(confidences, correct), rel=1e-5)
    assert result["top5_accuracy"] >= result["test_accuracy"]


def test_penultimate_features_are_taken_after_the_normalisation():
    from orthoreg.metrics import feature_metrics

    model, images, labels, _ = lookup_case(n=30)
    result = prediction_metrics(model, images, labels, batch_size=7)
    expected = feature_metrics(F.one_hot(torch.arange(30), 30).float())
    assert result["effective_rank"] == pytest.approx(float(expected["effective_rank"]))
    assert result["mean_abs_channel_cosine"] == pytest.approx(float(expected["mean_abs_channel_cosine"]))


def test_top5_is_none_under_five_classes_and_batches_do_not_matter():
    model, images, labels, _ = lookup_case(classes=4)
    whole = prediction_metrics(model, images, labels, batch_size=100)
    assert whole["top5_accuracy"] is None
    pieces = prediction_metrics(model, images, labels, batch_size=3)
    assert pieces.pop("top5_accuracy") is None and whole.pop("top5_accuracy") is None
    assert pieces.pop("forward_dtype") == whole.pop("forward_dtype") == "fp32"
    assert pieces == pytest.approx(whole, rel=1e-6)


def test_evaluate_model_adds_the_orthogonality_summary():
    from orthoreg.metrics import layer_metrics, summarize

    model, images, labels, _ = lookup_case()
    result = evaluate_model(model, images, labels, batch_size=16, include_linear=True)
    assert result["orthogonality"] == pytest.approx(summarize(layer_metrics(model[1], include_linear=True)))
    assert set(result) == {
        "test_accuracy",
        "top5_accuracy",
        "test_loss",
        "ece",
        "n_test",
        "effective_rank",
        "mean_abs_channel_cosine",
        "forward_dtype",
        "orthogonality",
    }


def test_prediction_metrics_rejects_bad_input():
    model, images, labels, _ = lookup_case()
    with pytest.raises(ValueError, match="uint8"):
        prediction_metrics(model, images.float(), labels)
    with pytest.raises(ValueError, match="labels shape"):
        prediction_metrics(model, images, labels[:-1])
    with pytest.raises(ValueError, match="batch_size"):
        prediction_metrics(model, images, labels, batch_size=0)
    with pytest.raises(ValueError, match="Sequential"):
        prediction_metrics(model[1], images, labels)


def read_csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_cli_writes_eval_layers_and_spectra(tmp_path, untrained_run):
    from orthoreg.cli import main
    from orthoreg.data import load_split
    from orthoreg.metrics import layer_metrics

    run_dir, data_dir = tmp_path / "run", tmp_path / "data"
    model = untrained_run(run_dir, data_dir)
    code = main(
        [
            "evaluate",
            "--run",
            str(run_dir),
            "--data-dir",
            str(data_dir),
            "--limit-test",
            "64",
            "--batch-size",
            "25",
            "--device",
            "cpu",
        ]
    )
    assert code == 0

    evaluation = json.loads((run_dir / "eval.json").read_text())
    images, labels = load_split("synthetic", data_dir, "test", limit=64)
    expected = evaluate_model(model, images, labels, batch_size=64)
    assert evaluation.pop("settings") == {"limit_test": 64, "batch_size": 25, "amp": "off"}
    provenance = evaluation.pop("provenance")
    assert provenance["threads"] == torch.get_num_threads() and provenance["cpu"]["capability"]
    assert provenance["wall_seconds"] > 0 and provenance["cpu_seconds"] > 0
    orthogonality, expected_orthogonality = evaluation.pop("orthogonality"), expected.pop("orthogonality")
    assert evaluation.pop("forward_dtype") == expected.pop("forward_dtype") == "fp32"
    assert evaluation == pytest.approx(expected, rel=1e-5)
    assert evaluation["n_test"] == 64 and 0 <= evaluation["ece"] <= 1
    assert orthogonality.keys() == expected_orthogonality.keys()
    for measure, value in orthogonality.items():
        if value is None:  # a measure that needs options evaluate does not set (conv operator spectra)
            assert expected_orthogonality[measure] is None
        else:
            assert math.isfinite(value) and value == pytest.approx(expected_orthogonality[measure], rel=1e-6)

    expected_layers = layer_metrics(model[1])
    layers = read_csv(run_dir / "layers.csv")
    assert [row["layer"] for row in layers] == [row["layer"] for row in expected_layers]
    assert set(layers[0]) == set(expected_layers[0])

    spectra = read_csv(run_dir / "spectra.csv")
    assert list(spectra[0]) == ["layer", "index", "singular_value"]
    for row in expected_layers:
        weight = model[1].get_submodule(row["layer"]).weight.detach().double()
        reference = torch.linalg.svdvals(weight.reshape(weight.shape[0], -1)).numpy()
        values = [float(r["singular_value"]) for r in spectra if r["layer"] == row["layer"]]
        assert [int(r["index"]) for r in spectra if r["layer"] == row["layer"]] == list(range(len(values)))
        np.testing.assert_allclose(sorted(values, reverse=True), reference, rtol=1e-4, atol=1e-6)
    assert not list(run_dir.glob(".*.tmp"))


def test_cli_refuses_a_missing_run_and_bad_limits(tmp_path, capsys):
    from orthoreg.cli import main

    assert main(["evaluate", "--run", str(tmp_path / "nowhere"), "--device", "cpu"]) == 2
    assert "run.json" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path), "--limit-test", "0", "--device", "cpu"]) == 2
    assert "limit_test" in capsys.readouterr().err
