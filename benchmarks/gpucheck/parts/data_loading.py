"""The data-loading part: the engine's device-resident loader (whole-batch augmentation on the device)
against a standard DataLoader + torchvision path, each feeding the engine's step."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from timing import best_seconds
from torchvision.transforms import v2

from gpucheck.harness import Context, Deadline, part
from gpucheck.rounding import rounded
from gpucheck.steps import Batch, engine_trainer, repeated
from orthoreg.train import Trainer

MODEL = "resnet18"  # the MFU target's ResNet-18: a step short enough for the input path to show


class AugmentedImages(torch.utils.data.Dataset):
    """The standard path's dataset: per-image torchvision transforms (4-px crop, flip) in the workers."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.transform = v2.Compose(
            [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def dataloader_batches(trainer: Trainer, workers: int) -> Iterator[Batch]:
    """Endless batches of the engine's training images through a torch DataLoader, copied to the device."""
    loader = torch.utils.data.DataLoader(
        AugmentedImages(trainer.loader.images.cpu(), trainer.loader.labels.cpu()),
        batch_size=trainer.config.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=trainer.device.type == "cuda",
        persistent_workers=workers > 0,
    )
    while True:
        for x, y in loader:
            x = x.to(trainer.device, non_blocking=True).contiguous(memory_format=trainer.memory_format)
            yield x, y.to(trainer.device, non_blocking=True)


def resident_batches(trainer: Trainer) -> Iterator[Batch]:
    """Endless batches from the engine's device-resident loader, a fresh epoch plan each epoch."""
    while True:
        yield from trainer.loader.batches(trainer.loader.plan_epoch(trainer.generator))


@part(
    "data_loading",
    "the engine's device-resident loader against a DataLoader + torchvision path",
    weight=15,
    quick_weight=3,
)
def data_loading(context: Context, record: dict, deadline: Deadline) -> None:
    model = context.plan.stand_in[MODEL]
    trainer = engine_trainer(context, model)
    sources = {
        "resident": resident_batches(trainer),
        "dataloader": dataloader_batches(trainer, context.plan.workers),
    }
    steps = context.plan.steps
    actions = {
        label: repeated(trainer.train_step, lambda source=source: next(source), steps)
        for label, source in sources.items()
    }
    best = best_seconds(actions, context.device, context.plan.rounds, context.plan.warmup)
    rates = {label: context.plan.batch * steps / seconds for label, seconds in best.items()}
    record.update(
        model=model,
        workers=context.plan.workers,
        resident_images_per_s=round(rates["resident"]),
        dataloader_images_per_s=round(rates["dataloader"]),
        resident_over_dataloader=rounded(rates["resident"] / rates["dataloader"]),
    )
