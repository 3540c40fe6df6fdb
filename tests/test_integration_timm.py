"""The timm train.py recipe of docs/api.md ("Drop-in integrations"): the regulariser built right after
create_model, one term added to the loss in train_one_epoch. timm models created without pretrained
weights (nothing is downloaded) train a few steps on random data as timm's loop runs them, and their
batched penalty is the sum of the per-layer penalties."""

from __future__ import annotations

import copy
import math

import pytest
import timm
import torch
from timm.loss import LabelSmoothingCrossEntropy
from timm.optim import create_optimizer_v2
from torch import nn

import orthoreg
from orthoreg.regularizers import regularized_layers

MODELS = ("resnet10t", "mobilenetv3_small_050")  # plain convolutions; with depthwise ones (skipped)


def create_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=10)


def random_loader(batches: int, batch_size: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (
            torch.rand(batch_size, 3, 32, 32, generator=generator),
            torch.randint(10, (batch_size,), generator=generator),
        )
        for _ in range(batches)
    ]


def train_one_epoch(
    model: nn.Module,
    loader: list[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    reg: orthoreg.OrthogonalityRegularizer,
    epoch: int,
    num_updates_total: int,
    accum_steps: int,
) -> None:
    """timm's train.py train_one_epoch (without AMP, EMA, mixup, clipping and logging), its own
    accumulation included (a short last window, the loss divided by the window), with the recipe's term."""
    model.train()
    last_accum_steps = len(loader) % accum_steps
    updates_per_epoch = (len(loader) + accum_steps - 1) // accum_steps
    num_updates = epoch * updates_per_epoch
    last_batch_idx = len(loader) - 1
    last_batch_idx_to_accum = len(loader) - last_accum_steps
    optimizer.zero_grad()
    for batch_idx, (input, target) in enumerate(loader):
        last_batch = batch_idx == last_batch_idx
        need_update = last_batch or (batch_idx + 1) % accum_steps == 0
        if batch_idx >= last_batch_idx_to_accum:
            accum_steps = last_accum_steps
        output = model(input)
        loss = loss_fn(output, target) + reg(num_updates / num_updates_total)  # the recipe's one line
        if accum_steps > 1:
            loss /= accum_steps
        loss.backward()
        if need_update:
            optimizer.step()
            num_updates += 1
            optimizer.zero_grad()


def train(
    model: nn.Module, lam: float, epochs: int = 2, accum_steps: int = 2
) -> orthoreg.OrthogonalityRegularizer:
    reg = orthoreg.OrthogonalityRegularizer(model, "dn_relaxed", lam, rho=0.5)  # right after create_model
    optimizer = create_optimizer_v2(model, "sgd", lr=0.05, momentum=0.9, weight_decay=0.0)
    loader = random_loader(batches=3)  # 3 batches, windows of 2: a short last window of 1
    updates_per_epoch = math.ceil(len(loader) / accum_steps)
    for epoch in range(epochs):
        train_one_epoch(
            model,
            loader,
            optimizer,
            LabelSmoothingCrossEntropy(0.1),
            reg,
            epoch,
            epochs * updates_per_epoch,
            accum_steps,
        )
    return reg


def per_layer_sum(name: str, model: nn.Module, **options) -> torch.Tensor:
    return sum(
        orthoreg.penalty(name, layer.weight, groups=layer.groups, **options)
        for layer in regularized_layers(model)
    )


@pytest.mark.parametrize("model_name", MODELS)
def test_timm_model_penalty_is_the_per_layer_sum(model_name):
    model = create_model(model_name)
    convolutions = [module for module in model.modules() if isinstance(module, nn.Conv2d)]
    depthwise = [module for module in convolutions if module.groups == module.out_channels > 1]
    assert len(regularized_layers(model)) == len(convolutions) - len(depthwise)
    for name, options in (("dn_relaxed", {"rho": 0.5}), ("so", {}), ("mc", {})):
        batched = orthoreg.model_penalty(name, model, **options)
        torch.testing.assert_close(batched, per_layer_sum(name, model, **options), rtol=1e-5, atol=1e-6)


def test_timm_loop_with_the_recipe_trains_with_the_penalty():
    model = create_model("mobilenetv3_small_050")  # the smaller of the two: seconds on a CPU
    plain = copy.deepcopy(model)
    reg = train(model, lam=0.1)
    train(plain, lam=0.0)
    assert torch.isfinite(reg.last_penalty) and float(reg.last_penalty) > 0
    layer = regularized_layers(model)[1]
    assert not torch.allclose(layer.weight, plain.get_submodule(layer.name).weight, atol=1e-5)
    torch.testing.assert_close(
        orthoreg.model_penalty("dn_relaxed", model, rho=0.5),
        per_layer_sum("dn_relaxed", model, rho=0.5),
        rtol=1e-5,
        atol=1e-6,
    )
