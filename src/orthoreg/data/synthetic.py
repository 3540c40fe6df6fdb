"""A synthetic dataset for unit tests only, never for reported results: 10 classes of fixed random
low-frequency patterns plus noise, learnable in a few hundred steps, generated from a fixed seed."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from orthoreg.data.registry import DatasetInfo, Split, register_dataset

SEED = 1234


def fetch_synthetic(directory: Path) -> tuple[Split, Split]:
    generator = torch.Generator().manual_seed(SEED)
    prototypes = F.interpolate(torch.rand(10, 3, 4, 4, generator=generator), size=32, mode="bilinear")

    def draw(count: int) -> Split:
        labels = torch.randint(10, (count,), generator=generator)
        noise = 0.25 * torch.randn(count, 3, 32, 32, generator=generator)
        images = (prototypes[labels] + noise).clamp(0, 1)
        return (images * 255).round().to(torch.uint8), labels

    return draw(2048), draw(512)


# mean/std of the generated training images (tests recompute them)
register_dataset(
    DatasetInfo("synthetic", 10, 3, 32, (0.5300, 0.4832, 0.5109), (0.2964, 0.2859, 0.2901), 2048, 512),
    fetch_synthetic,
)
