"""The model registry: parameter counts (closed forms, torchvision, the published sizes), layer counts,
shapes, the features/fc contract, initialisation, channels_last and bf16 autocast, bad input."""

import functools

import pytest
import torch
import torchvision
from torch import nn

from orthoreg.models import Normalize, available_models, build_model, register_model

ALL_MODELS = [
    "resnet8",
    "resnet20",
    "resnet32",
    "resnet56",
    "resnet110",
    "resnet18",
    "resnet34",
    "wrn16_8",
    "wrn28_10",
]

# Published sizes in millions: He et al. 2016 Table 6 (ResNet-20/32/56/110: 0.27/0.46/0.85/1.7, with
# parameter-free option A shortcuts, the CIFAR ResNets' default here), the CIFAR ResNet-18/34
# (11.17/21.28), Zagoruyko & Komodakis 2016 Table 1 (WRN-16-8 11.0, WRN-28-10 36.5).
PUBLISHED_MILLIONS = {
    "resnet20": 0.27,
    "resnet32": 0.46,
    "resnet56": 0.85,
    "resnet110": 1.7,
    "resnet18": 11.17,
    "resnet34": 21.28,
    "wrn16_8": 11.0,
    "wrn28_10": 36.5,
}
PUBLISHED_TOLERANCE = 0.025  # relative

# (3x3 convolutions, 1x1 shortcut convolutions, BatchNorms) counted by hand from the architectures:
# CIFAR ResNet-(6n+2): stem + 2 per block * 3n blocks = 6n+1 3x3, option A shortcuts (no layer), one BN
# after each conv. ResNet-18: stem + 2 * 8 blocks = 17, 3 projections (64->128->256->512).
# WRN-(6n+4): stem + 2 * 3n = 6n+1 3x3, 3 projections (16->16k is a change too), 2 BN per block + final BN.
LAYER_COUNTS = {
    "resnet8": (7, 0, 7),
    "resnet20": (19, 0, 19),
    "resnet32": (31, 0, 31),
    "resnet56": (55, 0, 55),
    "resnet110": (109, 0, 109),
    "resnet18": (17, 3, 20),
    "resnet34": (33, 3, 36),
    "wrn16_8": (13, 3, 13),
    "wrn28_10": (25, 3, 25),
}


@functools.cache
def built(name: str, in_channels: int = 3, num_classes: int = 10) -> nn.Module:
    """One shared instance per configuration, in eval mode (tests only read it)."""
    torch.manual_seed(0)
    return build_model(name, num_classes=num_classes, in_channels=in_channels).eval()


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def cifar_resnet_parameters(n: int, in_channels: int, num_classes: int, shortcut: str = "A") -> int:
    """Closed form for He et al.'s CIFAR ResNet: option A shortcuts add nothing, option B a 1x1 conv
    and a BatchNorm at each of the two stage changes."""
    total, channels = in_channels * 16 * 9 + 2 * 16, 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += channels * width * 9 + width * width * 9 + 4 * width
            if channels != width and shortcut == "B":
                total += channels * width + 2 * width
            channels = width
    return total + channels * num_classes + num_classes


def wide_resnet_parameters(n: int, k: int, in_channels: int, num_classes: int) -> int:
    """Closed form for the pre-activation WRN: BN-conv-BN-conv blocks, bias-free 1x1 shortcut convs."""
    total, channels = in_channels * 16 * 9, 16
    for width in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += 2 * channels + channels * width * 9 + 2 * width + width * width * 9
            if channels != width:
                total += channels * width
            channels = width
    return total + 2 * channels + channels * num_classes + num_classes


@pytest.mark.parametrize(("name", "n"), [("resnet8", 1), ("resnet20", 3), ("resnet56", 9), ("resnet110", 18)])
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_cifar_resnet_parameters_match_the_closed_form(name, n, in_channels, shortcut):
    model = build_model(name, num_classes=100, in_channels=in_channels, shortcut=shortcut)
    assert parameter_count(model) == cifar_resnet_parameters(n, in_channels, 100, shortcut)


def test_option_a_shortcut_is_the_subsampled_input_zero_padded():
    from orthoreg.models.resnet import PaddedIdentity

    x = torch.randn(2, 16, 8, 8)
    out = PaddedIdentity(16, 32, 2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0
    with pytest.raises(ValueError, match="shortcut must be one of A, B"):
        build_model("resnet20", 10, shortcut="C")


@pytest.mark.parametrize(("name", "n", "k"), [("wrn16_8", 2, 8), ("wrn28_10", 4, 10)])
def test_wide_resnet_parameters_match_the_closed_form(name, n, k):
    assert parameter_count(built(name)) == wide_resnet_parameters(n, k, 3, 10)


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_cifar_resnet18_34_are_torchvision_with_a_3x3_stem(name):
    """The same parameter tensors as torchvision's ImageNet net, except the 7x7 stem becomes 3x3."""
    reference = getattr(torchvision.models, name)(num_classes=10)
    expected = sorted(tuple(p.shape) for p in reference.parameters())
    expected[expected.index((64, 3, 7, 7))] = (64, 3, 3, 3)
    assert sorted(tuple(p.shape) for p in built(name).parameters()) == sorted(expected)
    assert not any(isinstance(m, nn.MaxPool2d) for m in built(name).modules())


@pytest.mark.parametrize(("name", "millions"), PUBLISHED_MILLIONS.items())
def test_parameter_counts_match_the_published_sizes(name, millions):
    assert parameter_count(built(name)) / 1e6 == pytest.approx(millions, rel=PUBLISHED_TOLERANCE)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_layer_counts(name):
    model = built(name)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    three, one, norms = LAYER_COUNTS[name]
    assert sum(m.kernel_size == (3, 3) for m in convs) == three
    assert sum(m.kernel_size == (1, 1) for m in convs) == one
    assert len(convs) == three + one
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == norms
    assert [m for m in model.modules() if isinstance(m, nn.Linear)] == [model.fc]
    if name.startswith("resnet") and name not in ("resnet18", "resnet34"):
        assert three + 1 == int(name[len("resnet") :])  # He et al.'s depth: 3x3 convs + fc


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_output_shape_and_features_contract(name, in_channels):
    model = built(name, in_channels, num_classes=7)
    x = torch.rand(2, in_channels, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features, logits = model.forward_features(x), model(x)
    assert logits.shape == (2, 7)
    assert features.shape == (2, model.fc.in_features)
    torch.testing.assert_close(model.fc(features), logits, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["resnet8", "resnet18", "wrn16_8"])
def test_initialisation_is_kaiming_fan_out_with_unit_batchnorm(name):
    model = build_model(name, num_classes=10)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.equal(module.weight, torch.ones_like(module.weight))
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
    largest = max((m for m in model.modules() if isinstance(m, nn.Conv2d)), key=lambda m: m.weight.numel())
    out_channels, _, kh, kw = largest.weight.shape
    expected_std = (2.0 / (out_channels * kh * kw)) ** 0.5  # He init, fan_out, gain sqrt(2)
    assert largest.weight.std().item() == pytest.approx(expected_std, rel=0.03)
    assert abs(largest.weight.mean().item()) < 0.05 * expected_std


@pytest.mark.parametrize("name", ["resnet8", "wrn16_8"])
def test_channels_last_gives_the_same_outputs(name):
    model = build_model(name, num_classes=10).eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet8", "wrn16_8"])
def test_bf16_autocast_forward_and_backward(name):
    model = build_model(name, num_classes=10).to(memory_format=torch.channels_last)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.tensor([0, 1, 2, 3])
    reference = model(x).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.dtype == torch.bfloat16
    relative = (logits.float() - reference).norm() / reference.norm()
    assert relative < 0.05
    nn.functional.cross_entropy(logits.float(), y).backward()
    for parameter in model.parameters():
        assert parameter.dtype == torch.float32 and parameter.grad is not None
        assert torch.isfinite(parameter.grad).all()


def test_wide_resnet_dropout_is_active_only_in_training():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        dropped = build_model("wrn16_8", num_classes=10, dropout=0.3).train()
        assert not torch.equal(dropped(x), dropped(x))
        dropped.eval()
        assert torch.equal(dropped(x), dropped(x))
        plain = build_model("wrn16_8", num_classes=10).train()  # default dropout 0.0
        assert torch.equal(plain(x), plain(x))


def test_normalize_is_per_channel_and_stored_as_buffers():
    layer = Normalize((0.5, 0.25), (0.5, 0.25))
    x = torch.tensor([0.5, 0.75]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    torch.testing.assert_close(layer(x), torch.tensor([0.0, 2.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2))
    assert set(layer.state_dict()) == {"mean", "std"} and not list(layer.parameters())
    with pytest.raises(ValueError, match="std > 0"):
        Normalize((0.5,), (0.0,))
    with pytest.raises(ValueError, match="one entry per channel"):
        Normalize((0.5, 0.5), (0.2,))


def test_registry_lists_every_model_and_refuses_a_second_factory_under_a_name(isolated_registries):
    assert set(ALL_MODELS) <= set(available_models())
    with pytest.raises(ValueError, match="model 'resnet8' is already registered"):
        register_model("resnet8")(lambda num_classes, in_channels=3: nn.Linear(in_channels, num_classes))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"name": "resnet99", "num_classes": 10},
            "unknown model 'resnet99'; available: resnet110, resnet14, resnet18",
        ),
        ({"name": "resnet8", "num_classes": 0}, "num_classes must be a positive integer, got 0"),
        ({"name": "resnet8", "num_classes": True}, "num_classes must be a positive integer, got True"),
        ({"name": "resnet8", "num_classes": 10, "in_channels": -1}, "in_channels must be a positive integer"),
        (
            {"name": "resnet8", "num_classes": 10, "dropout": 0.1},
            "does not accept option.* dropout; accepted: shortcut",
        ),
        (
            {"name": "wrn16_8", "num_classes": 10, "drop": 0.1},
            "does not accept option.* drop; accepted: dropout",
        ),
        (
            {"name": "wrn16_8", "num_classes": 10, "dropout": 1.5},
            r"dropout must be a number in \[0, 1\), got 1.5",
        ),
        ({"name": "wrn16_8", "num_classes": 10, "dropout": "0.3"}, "dropout must be a number"),
    ],
)
def test_bad_input_names_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(**kwargs)
