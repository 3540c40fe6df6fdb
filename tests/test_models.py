"""The model registry: published parameter counts, shapes, the features/fc contract, bad input."""

import pytest
import torch
from torch import nn

from orthoreg.models import Normalize, available_models, build_model

# Published sizes: He et al. 2016 (ResNet-20 0.27M, ResNet-110 1.7M), the CIFAR ResNet-18 11.2M,
# Zagoruyko & Komodakis 2016 (WRN-16-8 11.0M, WRN-28-10 36.5M).
PUBLISHED_MILLIONS = {
    "resnet20": 0.27,
    "resnet32": 0.46,
    "resnet56": 0.85,
    "resnet110": 1.7,
    "resnet18": 11.2,
    "wrn16_8": 11.0,
    "wrn28_10": 36.5,
}


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.mark.parametrize(("name", "millions"), PUBLISHED_MILLIONS.items())
def test_parameter_counts_match_the_published_sizes(name, millions):
    # 1x1 projection shortcuts add ~2% over the papers' parameter-free option A shortcuts
    assert parameter_count(build_model(name, num_classes=10)) / 1e6 == pytest.approx(millions, rel=0.04)


def test_cifar_resnet_depth_counts_the_weighted_layers():
    for depth in (8, 20, 32, 56, 110):
        model = build_model(f"resnet{depth}", num_classes=10)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        three_by_three = [m for m in convs if m.kernel_size == (3, 3)]
        shortcuts = [m for m in convs if m.kernel_size == (1, 1)]
        assert len(three_by_three) + 1 == depth  # + the final fc
        assert len(shortcuts) == 2  # at the two stage transitions


@pytest.mark.parametrize("name", ["resnet8", "resnet18", "wrn16_8"])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_output_shape_and_features_contract(name, in_channels):
    model = build_model(name, num_classes=7, in_channels=in_channels).eval()
    x = torch.rand(2, in_channels, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 7)
    assert isinstance(model.fc, nn.Linear)
    torch.testing.assert_close(model.fc(model.forward_features(x)), logits)


def test_every_registered_model_builds_and_runs_channels_last():
    for name in ("resnet8", "resnet20"):
        model = build_model(name, num_classes=3).to(memory_format=torch.channels_last).eval()
        x = torch.rand(2, 3, 32, 32).to(memory_format=torch.channels_last)
        assert model(x).shape == (2, 3)
    assert {
        "resnet8",
        "resnet20",
        "resnet32",
        "resnet56",
        "resnet110",
        "resnet18",
        "resnet34",
        "wrn16_8",
        "wrn28_10",
    } <= set(available_models())


def test_wide_resnet_dropout_is_active_only_in_training():
    model = build_model("wrn16_8", num_classes=10, dropout=0.3)
    x = torch.rand(2, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    with pytest.raises(ValueError, match="dropout must be in"):
        build_model("wrn16_8", num_classes=10, dropout=1.5)


def test_normalize_is_per_channel():
    layer = Normalize((0.5, 0.25), (0.5, 0.25))
    x = torch.tensor([0.5, 0.75]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    torch.testing.assert_close(layer(x), torch.tensor([0.0, 2.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2))
    with pytest.raises(ValueError, match="std > 0"):
        Normalize((0.5,), (0.0,))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "resnet99", "num_classes": 10}, "unknown model 'resnet99'; available: resnet110"),
        ({"name": "resnet8", "num_classes": 0}, "num_classes must be a positive integer, got 0"),
        ({"name": "resnet8", "num_classes": 10, "in_channels": -1}, "in_channels must be a positive integer"),
    ],
)
def test_bad_input_names_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(**kwargs)
