"""dn_relaxed's relaxation rules: the effective-rank estimator against float64 references on inputs of
known rank, the input patches against the convolution itself, the calibrated per-layer k, and the
refusals."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import orthoreg
from orthoreg.regularizers import RELAXATION_RULES, effective_rank, rank_k, relaxation_k
from orthoreg.regularizers.relaxation import ENERGY, input_patches


def pairs(m: int) -> int:
    return m * (m - 1) // 2


def known_spectrum(rows: int, columns: int, singular_values: list[float], seed: int = 0) -> torch.Tensor:
    """U diag(s) V^T with random orthonormal U and V: a matrix whose singular values are `s` exactly."""
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(columns, columns, generator=generator, dtype=torch.float64))
    s = torch.zeros(rows, columns, dtype=torch.float64)
    for index, value in enumerate(singular_values):
        s[index, index] = value
    return u @ s @ v.T


def energy_rank_numpy(matrix: np.ndarray, energy: float) -> int:
    """The estimator's definition written independently: the fewest leading squared singular values
    whose sum reaches `energy` of the total."""
    squared = np.linalg.svd(matrix, compute_uv=False) ** 2
    total = squared.sum()
    running = 0.0
    for count, value in enumerate(squared, start=1):
        running += value
        if running >= energy * total - 1e-12 * total:
            return count
    return len(squared)


@pytest.mark.parametrize("rank", [1, 3, 7])
def test_effective_rank_of_a_matrix_of_known_rank(rank):
    matrix = known_spectrum(40, 12, [1.0] * rank)
    assert effective_rank(matrix) == rank
    assert effective_rank(matrix.float()) == rank
    assert effective_rank(torch.zeros(5, 4)) == 0


@pytest.mark.parametrize("seed", range(5))
def test_effective_rank_is_the_energy_threshold_of_the_spectrum(seed):
    spectrum = sorted((np.random.default_rng(seed).random(10) ** 4).tolist(), reverse=True)
    matrix = known_spectrum(30, 10, spectrum, seed)
    for energy in (0.5, 0.9, ENERGY, 1.0):
        assert effective_rank(matrix, energy) == energy_rank_numpy(matrix.numpy(), energy)


def test_the_rules_count_exempt_pairs_from_the_held_filters():
    # rho rule: over-determined layers hold n filters, others ceil(rho o)
    assert relaxation_k(16, 9, 0.5) == pairs(16) - pairs(9)
    assert relaxation_k(64, 576, 0.5) == pairs(64) - pairs(32)
    # rank rule: rank* capped by o and n
    assert rank_k(64, 576, 20) == pairs(64) - pairs(20)
    assert rank_k(64, 576, 100) == 0
    assert rank_k(16, 9, 12) == pairs(16) - pairs(9)
    assert set(RELAXATION_RULES) == {"rho", "rank"} and RELAXATION_RULES.get("rank").needs_data


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (nn.Conv2d(6, 4, 3, stride=2, padding=1, groups=2, bias=False), (2, 6, 9, 9)),
        (nn.Conv1d(3, 5, 3, padding=2, dilation=2, bias=False), (2, 3, 11)),
        (nn.Conv3d(2, 4, (3, 1, 2), stride=(1, 2, 1), padding=(1, 0, 1), bias=False), (2, 2, 5, 6, 4)),
        (nn.Linear(7, 3, bias=False), (4, 5, 7)),
    ],
)
def test_input_patches_times_the_filters_is_the_layer_output(layer, shape):
    """The rows of X are what the layer multiplies its filters with: X W_g^T reproduces the output."""
    torch.manual_seed(0)
    inputs = torch.randn(*shape)
    patches = input_patches(layer, inputs)
    groups = getattr(layer, "groups", 1)
    filters = layer.weight.reshape(groups, layer.weight.shape[0] // groups, -1)
    products = torch.einsum("grn,gon->gro", patches, filters)
    output = layer(inputs)
    if isinstance(layer, nn.Linear):
        expected = output.reshape(1, -1, output.shape[-1])
    else:
        channels_last = output.movedim(1, -1)  # [N, *out, o]
        expected = channels_last.reshape(-1, groups, output.shape[1] // groups).transpose(0, 1)
    torch.testing.assert_close(products, expected, rtol=1e-5, atol=1e-5)


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(4, 12, 1, bias=False)
        self.second = nn.Conv2d(12, 6, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


def test_calibration_measures_the_rank_of_each_layers_input():
    """Inputs spanning 2 of the 4 channels: the first 1x1 layer sees rank 2, and k = P(12) - P(2)."""
    torch.manual_seed(0)
    basis = torch.randn(2, 4)
    inputs = torch.einsum("nchw,cd->ndhw", torch.randn(8, 2, 5, 5), basis)
    model = TwoLayers()
    reg = orthoreg.OrthogonalityRegularizer(model, "dn_relaxed", 1e-2, relaxation="rank")
    assert reg.needs_calibration
    with pytest.raises(ValueError, match="not calibrated yet"):
        reg(0.0)
    calibrated = reg.calibrate(inputs)
    k = {name: settings["k"] for name, settings in calibrated.items()}
    assert calibrated["first"]["rank"] == 2 and k["first"] == pairs(12) - pairs(2)
    second = reg.layer_settings()["layers"]["second"]
    assert (second["o"], second["n"], second["rank"]) == (6, 108, calibrated["second"]["rank"])
    assert second["k"] == rank_k(6, 108, second["rank"])
    # the calibrated k is what the penalty uses: the value equals dn_relaxed with each k given
    expected = sum(
        orthoreg.penalty("dn_relaxed", getattr(model, name).weight, k=value) for name, value in k.items()
    )
    assert reg(0.0).item() == pytest.approx(1e-2 * expected.item(), rel=1e-6)
    copy = orthoreg.OrthogonalityRegularizer(TwoLayers(), "dn_relaxed", 1e-2, relaxation="rank")
    copy.load_state_dict(reg.state_dict())
    assert copy.calibrated == calibrated and not copy.needs_calibration


def test_relaxation_options_are_checked_by_their_penalty():
    weight = torch.randn(6, 4)
    with pytest.raises(ValueError, match="unknown relaxation rule 'energy'; available: rank, rho"):
        orthoreg.penalty("dn_relaxed", weight, relaxation="energy")
    with pytest.raises(ValueError, match="needs each layer's k from calibration data"):
        orthoreg.penalty("dn_relaxed", weight, relaxation="rank")
    with pytest.raises(ValueError, match="k = 99 exceeds the 15 filter pairs"):
        orthoreg.penalty("dn_relaxed", weight, k=99)
    with pytest.raises(ValueError, match="dn_relaxed with options .* takes no calibration from data"):
        orthoreg.OrthogonalityRegularizer(TwoLayers(), "dn_relaxed", 1e-2).calibrate(torch.randn(1, 4, 3, 3))
    assert orthoreg.OrthogonalityRegularizer(TwoLayers(), "dn_strict", 1e-2).layer_settings() is None
    assert math.isfinite(orthoreg.penalty("dn_relaxed", weight, k=0).item())
