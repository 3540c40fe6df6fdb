"""CIFAR ResNets (He et al. 2016) and the CIFAR variant of ResNet-18/34.

Where a block changes shape, its shortcut is He et al.'s option A (the default of the CIFAR ResNets,
as in their CIFAR experiments and the published numbers the report quotes: the input subsampled by
the stride and its new channels zero-padded, no parameters) or option B (a 1x1 convolution and
BatchNorm, the default of ResNet-18/34 as in torchvision). Option B's 1x1 convolutions are
regularised like every other convolution; option A adds no layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from orthoreg.models.registry import register_model


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


SHORTCUTS = ("A", "B")


class PaddedIdentity(nn.Module):
    """Option A: the input subsampled by the stride, its new channels zero-padded on both sides."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual; where the shape changes the shortcut is option A (padded
    identity) or B (1x1 projection)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str = "B") -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if (stride != 1 or in_channels != out_channels) and shortcut == "A":
            self.shortcut = PaddedIdentity(in_channels, out_channels, stride)
        elif stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A 3x3 stem without max-pooling, stages of BasicBlocks, global average pooling and `fc`."""

    def __init__(
        self, widths: list[int], blocks: list[int], num_classes: int, in_channels: int, shortcut: str = "B"
    ) -> None:
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(
                f"shortcut must be one of {', '.join(SHORTCUTS)} (He et al.'s options), got {shortcut!r}"
            )
        self.stem = nn.Sequential(
            conv3x3(in_channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        layers: list[nn.Module] = []
        channels = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks)):
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                layers.append(BasicBlock(channels, width, stride, shortcut))
                channels = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.layers(self.stem(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def init_weights(model: nn.Module) -> None:
    """Kaiming (fan_out) convolutions, unit BatchNorm, as torchvision's ResNets."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def cifar_resnet(depth: int, num_classes: int, in_channels: int, shortcut: str = "A") -> ResNet:
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    return ResNet([16, 32, 64], [n, n, n], num_classes, in_channels, shortcut)


@register_model("resnet8")
def resnet8(num_classes: int, in_channels: int = 3, shortcut: str = "A") -> ResNet:
    return cifar_resnet(8, num_classes, in_channels, shortcut)


@register_model("resnet14")
def resnet14(num_classes: int, in_channels: int = 3, shortcut: str = "A") -> ResNet:
    return cifar_resnet(14, num_classes, in_channels, shortcut)


@register_model("resnet20")
def resnet20(num_classes: int, in_channels: int = 3, shortcut: str = "A") -> ResNet:
    return cifar_resnet(20, num_classes, in_channels, shortcut)


@register_model("resnet32")
def resnet32(num_classes: int, in_channels: int = 3, shortcut: str = "A") -> ResNet:
    return cifar_resnet(32, num_classes, in_channels, shortcut)


@register_model("resnet56")
def resnet56(num_classes: int, in_channels: int = 3, shortcut: str = "A") -> ResNet:
    return cifar_resnet(56, num_classes, in_channels, shortcut)


@register_model("resnet110")
def resnet110(num_classes: int, in_channels: int = 3, shortcut: str = "A") -> ResNet:
    return cifar_resnet(110, num_classes, in_channels, shortcut)


@register_model("resnet18")
def resnet18(num_classes: int, in_channels: int = 3, shortcut: str = "B") -> ResNet:
    return ResNet([64, 128, 256, 512], [2, 2, 2, 2], num_classes, in_channels, shortcut)


@register_model("resnet34")
def resnet34(num_classes: int, in_channels: int = 3, shortcut: str = "B") -> ResNet:
    return ResNet([64, 128, 256, 512], [3, 4, 6, 3], num_classes, in_channels, shortcut)
