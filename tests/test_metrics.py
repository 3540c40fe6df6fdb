"""Near-orthogonality measures against float64 formulas written here, the convolution-operator
spectrum against an explicit dense matrix, the Welch bound against an equiangular tight frame, and
the feature measures against features built with known singular values."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from orthoreg.metrics import (
    MEASURES,
    conv_operator_singular_values,
    cosine_gram,
    feature_metrics,
    layer_metrics,
    singular_values,
    summarize,
    weight_metrics,
)


class SmallNet(nn.Module):
    """A stem, a wide 3x3, a strided 3x3, a tall 1x1 shortcut and a Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.down = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.shortcut = nn.Conv2d(6, 8, 1, stride=2)
        self.fc = nn.Linear(8, 3)


def expected_measures(weight):
    """The measures of docs/method.md, one float64 loop at a time."""
    W = weight.detach().double().reshape(weight.shape[0], -1)
    o, n = W.shape
    residual = W @ W.T - torch.eye(o, dtype=torch.float64)
    norms = [float(W[j].norm()) for j in range(o)]
    cosines = [float(W[j] @ W[l]) / (norms[j] * norms[l]) for j in range(o) for l in range(o) if j != l]
    sigma = torch.linalg.svdvals(W)
    welch = math.sqrt((o - n) / (n * (o - 1))) if o > n else 0.0
    max_cos = max(abs(c) for c in cosines)
    return {
        "o": o,
        "n": n,
        "holistic_residual": math.sqrt(float((residual**2).sum())),
        "diag_deviation": math.sqrt(sum((r**2 - 1) ** 2 for r in norms) / o),
        "rms_cos": math.sqrt(sum(c**2 for c in cosines) / len(cosines)),
        "max_cos": max_cos,
        "welch_bound": welch,
        "coherence_to_welch": max_cos / welch if welch > 0 else None,
        "sigma_max": float(sigma.max()),
        "sigma_min": float(sigma.min()),
        "condition_number": float(sigma.max() / sigma.min()),
    }


@pytest.fixture
def model():
    torch.manual_seed(0)
    return SmallNet()


def test_layer_rows_match_the_formulas(model):
    rows = layer_metrics(model, include_linear=True)
    modules = [("stem", model.stem), ("block.0", model.block[0]), ("down", model.down)]
    modules += [("shortcut", model.shortcut), ("fc", model.fc)]
    assert [row["layer"] for row in rows] == [name for name, _ in modules]
    for row, (name, module) in zip(rows, modules, strict=True):
        weight = module.weight
        assert row["kind"] == ("linear" if weight.dim() == 2 else "conv")
        assert (row["kh"], row["kw"]) == ((weight.shape[2], weight.shape[3]) if weight.dim() == 4 else (1, 1))
        assert row["stride"] == (module.stride[0] if isinstance(module, nn.Conv2d) else 1)
        for key, value in expected_measures(weight).items():
            if value is None:
                assert row[key] is None, (name, key)
            else:
                assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, key)
        assert row["conv_sigma_max"] is None and row["conv_sigma_min"] is None


def test_rows_hold_plain_python_values_and_no_nan(model):
    rows = layer_metrics(model, include_linear=True, conv_input_size=(8, 8))
    for row in rows:
        for key, value in row.items():
            assert value is None or type(value) in (str, int, float), (key, type(value))
            assert not (isinstance(value, float) and math.isnan(value)), key
    table = pd.DataFrame(rows)
    assert list(table["layer"]) == ["stem", "block.0", "down", "shortcut", "fc"]
    # operator spectrum only for stride-1 convolutions; the tall 1x1 shortcut has o > n: a Welch ratio
    assert table["conv_sigma_max"].notna().tolist() == [True, True, False, False, False]
    assert table["coherence_to_welch"].notna().tolist() == [False, False, False, True, False]


def test_layer_metrics_uses_the_regularised_layers_only(model):
    assert [row["layer"] for row in layer_metrics(model)] == ["stem", "block.0", "down", "shortcut"]


def circular_convolution_matrix(weight, height, width):
    """The dense (o*H*W) x (i*H*W) matrix of the stride-1 convolution with circular padding,
    column by column from basis images."""
    o, i, kh, kw = weight.shape
    columns = []
    for index in range(i * height * width):
        basis = torch.zeros(i * height * width, dtype=torch.float64)
        basis[index] = 1.0
        image = F.pad(
            basis.reshape(1, i, height, width), (kw // 2, kw // 2, kh // 2, kh // 2), mode="circular"
        )
        columns.append(F.conv2d(image, weight).reshape(-1))
    return torch.stack(columns, dim=1)


@pytest.mark.parametrize(
    ("shape", "size"), [((2, 3, 3, 3), (4, 5)), ((3, 2, 1, 1), (3, 3)), ((2, 2, 3, 3), (3, 3))]
)
def test_fft_operator_spectrum_equals_the_dense_matrix(shape, size):
    weight = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    dense = torch.linalg.svdvals(circular_convolution_matrix(weight, *size))
    fast = conv_operator_singular_values(weight, size)
    count = min(shape[0], shape[1]) * size[0] * size[1]
    assert fast.shape == (count,)
    torch.testing.assert_close(fast, dense[:count])
    row = weight_metrics(weight, (1, 1), size)
    assert row["conv_sigma_max"] == pytest.approx(float(dense[0]))
    assert row["conv_sigma_min"] == pytest.approx(float(dense[count - 1]))


def test_an_equiangular_tight_frame_reaches_the_welch_bound():
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
    frame = torch.stack([angles.cos(), angles.sin()], dim=1)  # 3 unit vectors in R^2 at 120 degrees
    row = weight_metrics(frame)
    assert row["welch_bound"] == pytest.approx(0.5)
    assert row["max_cos"] == pytest.approx(0.5)
    assert row["coherence_to_welch"] == pytest.approx(1.0)
    assert row["diag_deviation"] == pytest.approx(0.0, abs=1e-12)
    # a tight frame: W^T W = (3/2) I, so both singular values are sqrt(3/2)
    torch.testing.assert_close(singular_values(frame), torch.full((2,), math.sqrt(1.5), dtype=torch.float64))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 6), extra=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_the_welch_bound_is_a_lower_bound_on_coherence(n, extra, seed):
    weight = torch.randn(n + extra, n, generator=torch.Generator().manual_seed(seed))
    row = weight_metrics(weight)
    assert row["max_cos"] >= row["welch_bound"] - 1e-9
    assert row["coherence_to_welch"] >= 1.0 - 1e-9


@settings(max_examples=20, deadline=None)
@given(o=st.integers(1, 7), n=st.integers(1, 7), seed=st.integers(0, 10_000))
def test_cosine_gram_is_a_symmetric_unit_diagonal_cosine_matrix(o, n, seed):
    weight = torch.randn(o, n, generator=torch.Generator().manual_seed(seed))
    cos = cosine_gram(weight)
    assert cos.dtype == torch.float64 and cos.shape == (o, o)
    torch.testing.assert_close(cos, cos.T)
    torch.testing.assert_close(cos.diagonal(), torch.ones(o, dtype=torch.float64))
    assert float(cos.abs().max()) <= 1.0 + 1e-12
    row = weight_metrics(weight)
    assert 0.0 <= row["rms_cos"] <= row["max_cos"] + 1e-12


def test_orthonormal_filters_measure_as_orthogonal():
    q, _ = torch.linalg.qr(
        torch.randn(18, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    )
    weight = q.T.reshape(6, 2, 3, 3)
    row = weight_metrics(weight)
    for key in ("holistic_residual", "diag_deviation", "rms_cos", "max_cos"):
        assert row[key] == pytest.approx(0.0, abs=1e-12), key
    assert row["sigma_max"] == pytest.approx(1.0) and row["condition_number"] == pytest.approx(1.0)


def test_singular_values_are_descending_float64():
    weight = torch.randn(5, 2, 3, 3, generator=torch.Generator().manual_seed(3))
    values = singular_values(weight)
    expected = torch.linalg.svdvals(weight.double().reshape(5, -1))
    torch.testing.assert_close(values, expected)
    assert bool((values[:-1] >= values[1:]).all())


def test_summarize_aggregates_over_layers(model):
    rows = layer_metrics(model, include_linear=True)
    summary = summarize(rows)
    assert summary["layers"] == len(rows)
    for measure in MEASURES:
        present = [row[measure] for row in rows if row[measure] is not None]
        expected = sum(present) / len(present) if present else None
        assert summary[f"mean_{measure}"] == pytest.approx(expected), measure
    assert summary["max_max_cos"] == max(row["max_cos"] for row in rows)
    assert summary["max_condition_number"] == max(row["condition_number"] for row in rows)


def centred_orthonormal_columns(samples, features, seed):
    """`features` orthonormal columns, each orthogonal to the all-ones vector (already centred)."""
    generator = torch.Generator().manual_seed(seed)
    basis = torch.cat([torch.ones(samples, 1), torch.randn(samples, features, generator=generator)], dim=1)
    q, _ = torch.linalg.qr(basis.double())
    return q[:, 1:]


def test_feature_metrics_of_features_with_known_singular_values():
    sigma = torch.tensor([4.0, 2.0, 1.0, 1.0], dtype=torch.float64)
    features = centred_orthonormal_columns(50, 4, seed=4) * sigma + 3.0  # an offset the centring removes
    p = sigma / sigma.sum()
    result = feature_metrics(features)
    assert result["effective_rank"] == pytest.approx(math.exp(-float((p * p.log()).sum())))
    assert result["mean_abs_channel_cosine"] == pytest.approx(0.0, abs=1e-10)


def test_feature_metrics_of_redundant_channels():
    column = centred_orthonormal_columns(40, 1, seed=5)
    result = feature_metrics(torch.cat([column, -2 * column, 3 * column], dim=1))
    assert result["effective_rank"] == pytest.approx(1.0)
    assert result["mean_abs_channel_cosine"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: feature_metrics(torch.randn(10)), r"features must be \[N >= 2, F\], got shape \(10,\)"),
        (lambda: feature_metrics(torch.randn(1, 4)), r"got shape \(1, 4\)"),
        (
            lambda: singular_values(torch.randn(2, 3, 4, 1, 1, 1)),
            r"rank 2 \(Linear\) or 3-5 \(Conv1d/2d/3d\), got shape \(2, 3, 4, 1, 1, 1\)",
        ),
        (lambda: conv_operator_singular_values(torch.randn(3, 4), (4, 4)), r"got shape \(3, 4\)"),
        (lambda: conv_operator_singular_values(torch.randn(2, 2, 5, 5), (4, 4)), r"input size \(4, 4\)"),
        (lambda: weight_metrics(torch.full((3, 4), float("nan"))), "non-finite values"),
        (lambda: summarize([]), "no layer rows"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_layer_metrics_names_a_layer_with_non_finite_weights(model):
    with torch.no_grad():
        model.down.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="layer 'down'"):
        layer_metrics(model)
