"""The batch loader every pass over a split uses: training epochs, the trainer's test pass,
`orthoreg evaluate` and `orthoreg robustness`.

`TensorLoader` keeps the whole split as one uint8 tensor on the device (the GPU when there is one)
and augments batches there; an epoch's permutation and augmentation are drawn at its start, so a
resumed epoch replays exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class EpochPlan:
    """Everything random about one epoch, drawn at its start."""

    order: torch.Tensor  # sample indices
    shifts: torch.Tensor | None  # [N, 2] crop offsets in [0, 2 * pad]
    flips: torch.Tensor | None  # [N] bool


class TensorLoader:
    """Batches of float [0, 1] images in `memory_format` from a uint8 tensor held on `device`, with
    random crop (`pad`-pixel zero padding) and horizontal flip done on whole batches."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        augment: bool,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
        pad: int = 4,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0] or images.shape[0] == 0:
            raise ValueError(
                f"need one label per image (and at least one image), got labels {tuple(labels.shape)}"
                f" for {images.shape[0]} images"
            )
        if drop_last and images.shape[0] < batch_size:
            raise ValueError(
                f"drop_last with {images.shape[0]} images and batch_size {batch_size} leaves no batch"
            )
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.images = images.to(device)
        self.labels = labels.to(device=device, dtype=torch.int64)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.drop_last, self.pad, self.device = drop_last, pad, torch.device(device)
        self.memory_format = memory_format

    def __len__(self) -> int:
        count = self.images.shape[0]
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def plan_epoch(self, generator: torch.Generator) -> EpochPlan:
        """The epoch's order, crop offsets and flips, drawn on the CPU from `generator` alone, so the
        same generator state gives the same epoch on any device."""
        count = self.images.shape[0]
        order = torch.randperm(count, generator=generator) if self.shuffle else torch.arange(count)
        shifts = flips = None
        if self.augment:
            shifts = torch.randint(0, 2 * self.pad + 1, (count, 2), generator=generator)
            flips = torch.rand(count, generator=generator) < 0.5
        return EpochPlan(order, shifts, flips)

    def batches(self, plan: EpochPlan, start: int = 0) -> Batches:
        """Batches `start`, `start + 1`, ... of the epoch `plan` describes: float32 images in [0, 1]
        and int64 labels on the loader's device. The plan is checked here, before the first batch."""
        if plan.order.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"plan covers {plan.order.shape[0]} samples, the loader holds {self.images.shape[0]}"
            )
        if self.augment and (plan.shifts is None or plan.flips is None):
            raise ValueError("this loader augments, but the plan has no crop offsets and flips")
        if not 0 <= start <= len(self):
            raise ValueError(f"start must be a batch index in [0, {len(self)}], got {start}")
        return self._generate(plan, start)

    def _generate(self, plan: EpochPlan, start: int) -> Batches:
        # the whole plan goes to the device once per epoch, not once per batch
        order = plan.order.to(self.device)
        shifts = None if plan.shifts is None else plan.shifts.to(self.device)
        flips = None if plan.flips is None else plan.flips.to(self.device)
        for index in range(start, len(self)):
            rows = order[index * self.batch_size : (index + 1) * self.batch_size]
            images = self.images[rows].float().div_(255)
            if self.augment and shifts is not None and flips is not None:
                images = self._augment(images, shifts[rows], flips[rows])
            yield images.contiguous(memory_format=self.memory_format), self.labels[rows]

    def in_order(self) -> Batches:
        """Every batch in stored order and without augmentation: an evaluation pass."""
        return self._generate(EpochPlan(torch.arange(self.images.shape[0]), None, None), 0)

    def _augment(self, images: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """Random crops as one gather over the padded batch, then flips by index reversal."""
        count, _, height, width = images.shape
        padded = F.pad(images, (self.pad,) * 4)
        rows = (shifts[:, 0, None] + torch.arange(height, device=images.device)).view(count, 1, height, 1)
        cols = torch.arange(width, device=images.device).view(1, width)
        cols = torch.where(flips.view(count, 1), width - 1 - cols, cols) + shifts[:, 1, None]
        cols = cols.view(count, 1, 1, width)
        channels = images.shape[1]
        gathered = padded.gather(2, rows.expand(count, channels, height, padded.shape[3]))
        return gathered.gather(3, cols.expand(count, channels, height, width))


def evaluation_batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, device: str | torch.device
) -> Batches:
    """An evaluation pass (`orthoreg evaluate`, `orthoreg robustness`) over uint8 images in stored
    order: float [0, 1] channels-last batches on `device`, the layout convolutions run fastest in."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            f"expected non-empty uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels shape {tuple(labels.shape)} does not match {images.shape[0]} images")
    loader = TensorLoader(
        images,
        labels,
        batch_size,
        shuffle=False,
        augment=False,
        device=device,
        memory_format=torch.channels_last,
    )
    return loader.in_order()
