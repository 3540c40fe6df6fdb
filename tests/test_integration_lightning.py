"""The Lightning callback trains exactly as a hand-written loop that adds reg(progress) to the loss
(with gradient accumulation, and under an fp16 GradScaler), resumes from a Lightning checkpoint with its
regulariser's state, refuses what it cannot do by name, and is never imported by `import orthoreg`."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins import MixedPrecision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import orthoreg
from orthoreg.integrations.lightning import LOG_KEY, OrthogonalityCallback

LR, MOMENTUM = 0.1, 0.9
BATCH, BATCHES = 4, 4  # one epoch: 4 batches of 4 images


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def dataset() -> TensorDataset:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(BATCH * BATCHES, 3, 8, 8, generator=generator)
    return TensorDataset(images, torch.randint(4, (BATCH * BATCHES,), generator=generator))


class Classifier(pl.LightningModule):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(self.net(images), labels)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=LR, momentum=MOMENTUM)


def fit(
    net: nn.Module,
    callbacks: list[pl.Callback],
    *,
    steps: int = -1,
    epochs: int | None = None,
    accumulate: int = 1,
    ckpt_path: Path | None = None,
    **trainer_options,
) -> pl.Trainer:
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        max_epochs=epochs,
        accumulate_grad_batches=accumulate,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_options,
    )
    loader = DataLoader(dataset(), batch_size=BATCH, shuffle=False)
    trainer.fit(Classifier(net), loader, ckpt_path=ckpt_path)
    return trainer


def micro_batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches in Lightning's order (no shuffling), epoch after epoch."""
    loader = DataLoader(dataset(), batch_size=BATCH, shuffle=False)
    while True:
        yield from loader


def hand_loop(
    net: nn.Module,
    reg: orthoreg.OrthogonalityRegularizer,
    steps: int,
    accumulate: int = 1,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """The loop the callback must reproduce: reg(progress) added to each micro-batch's loss."""
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    batches = micro_batches()
    for step in range(steps):
        for _ in range(accumulate):
            images, labels = next(batches)
            with torch.autocast("cpu", dtype=torch.float16, enabled=scaler is not None, cache_enabled=False):
                data_loss = F.cross_entropy(net(images), labels)
            loss = (data_loss + reg(step / steps)) / accumulate
            (loss if scaler is None else scaler.scale(loss)).backward()
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        optimizer.zero_grad()


def assert_same_weights(a: nn.Module, b: nn.Module, atol: float = 1e-6) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, atol=atol, rtol=1e-5, msg=f"weights of {name} differ")


@pytest.mark.parametrize(
    ("name", "options", "schedule", "module", "accumulate"),
    [
        ("dn_relaxed", {"rho": 0.5}, "constant", None, 1),
        ("dn_relaxed", {"rho": 0.5}, "constant", "net", 2),
        ("srip", {}, "step", "net", 2),  # stateful, and lambda reaches 0 (no gradient added) at the end
    ],
)
def test_callback_trains_as_the_loop_that_adds_the_penalty_to_the_loss(
    name, options, schedule, module, accumulate
):
    steps, lam = 4, 0.1
    net = tiny_cnn()
    expected, without = copy.deepcopy(net), copy.deepcopy(net)
    callback = OrthogonalityCallback(name, lam, schedule=schedule, module=module, **options)
    trainer = fit(net, [callback], steps=steps, accumulate=accumulate)

    hand_loop(
        expected,
        orthoreg.OrthogonalityRegularizer(expected, name, lam, schedule=schedule, **options),
        steps,
        accumulate,
    )
    assert_same_weights(net, expected)
    hand_loop(without, orthoreg.OrthogonalityRegularizer(without, name, 0.0), steps, accumulate)
    assert not torch.allclose(net[0].weight, without[0].weight, atol=1e-4)  # the penalty did move them
    logged = trainer.callback_metrics[LOG_KEY]
    assert torch.equal(logged, callback.regularizer.last_penalty) and torch.isfinite(logged)


def test_callback_scales_the_penalty_gradient_with_the_fp16_grad_scaler():
    """Lightning scales the loss before backward and unscales before the step: the penalty's gradient
    must carry the same scale, or it would be divided by it."""
    steps, lam, accumulate = 4, 0.1, 2
    net = tiny_cnn()
    expected = copy.deepcopy(net)
    precision = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**10))
    fit(
        net,
        [OrthogonalityCallback("dn_strict", lam, module="net")],
        steps=steps,
        accumulate=accumulate,
        plugins=[precision],
    )

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    hand_loop(
        expected, orthoreg.OrthogonalityRegularizer(expected, "dn_strict", lam), steps, accumulate, scaler
    )
    assert_same_weights(net, expected, atol=1e-5)


def test_fit_resumed_from_a_lightning_checkpoint_equals_the_uninterrupted_fit(tmp_path):
    """Two callbacks (SRIP's vectors; dn_relaxed calibrated by rank) keep their own state in the
    checkpoint: the resumed fit gets no calibration inputs, so it must have the calibrated k back.
    Checkpointed at an epoch's end, where Lightning itself resumes exactly (after a max_steps stop
    inside an epoch it replays a batch)."""
    calibration = dataset().tensors[0][:8]

    def callbacks(calibrate: bool) -> list[pl.Callback]:
        return [
            OrthogonalityCallback("srip", 0.1, module="net", log_key="srip"),
            OrthogonalityCallback(
                "dn_relaxed",
                0.1,
                module="net",
                relaxation="rank",
                calibration=calibration if calibrate else None,
            ),
        ]

    uninterrupted, first, resumed = tiny_cnn(), tiny_cnn(), tiny_cnn()
    straight = callbacks(calibrate=True)
    fit(uninterrupted, straight, epochs=2)
    trainer = fit(first, callbacks(calibrate=True), epochs=1)
    trainer.save_checkpoint(tmp_path / "epoch1.ckpt")
    torch.nn.init.zeros_(resumed[0].weight)  # the checkpoint, not the initialisation, must decide
    again = callbacks(calibrate=False)
    fit(resumed, again, epochs=2, ckpt_path=tmp_path / "epoch1.ckpt")

    assert_same_weights(resumed, uninterrupted)
    for before, after in zip(straight, again):
        saved, loaded = before.state_dict(), after.state_dict()
        assert loaded["calibrated"] == saved["calibrated"]
        for group, values in saved["power_iteration"].items():
            torch.testing.assert_close(loaded["power_iteration"][group]["srip"], values["srip"])
    assert again[1].state_dict()["calibrated"] and again[0].state_dict()["power_iteration"]


class ManualClassifier(Classifier):
    def __init__(self, net: nn.Module) -> None:
        super().__init__(net)
        self.automatic_optimization = False


def test_refusals_name_the_bad_value():
    with pytest.raises(ValueError, match="unknown regulariser 'dn_relaxd'"):
        OrthogonalityCallback("dn_relaxd", 0.1)
    with pytest.raises(ValueError, match="does not take option"):
        OrthogonalityCallback("fro", 0.1, rho=0.5)
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        OrthogonalityCallback("fro", 0.1, schedule="cosine")
    with pytest.raises(ValueError, match="'backbone' is not a submodule of Classifier; its children: net"):
        fit(tiny_cnn(), [OrthogonalityCallback("fro", 0.1, module="backbone")], steps=1)
    with pytest.raises(ValueError, match="calibration=inputs"):
        fit(tiny_cnn(), [OrthogonalityCallback("dn_relaxed", 0.1, relaxation="rank")], steps=1)
    with pytest.raises(ValueError, match="automatic_optimization=False"):
        pl.Trainer(
            accelerator="cpu", max_steps=1, callbacks=[OrthogonalityCallback("fro", 0.1)], logger=False
        ).fit(ManualClassifier(tiny_cnn()), DataLoader(dataset(), batch_size=BATCH))


def test_import_orthoreg_imports_no_lightning():
    code = (
        "import sys, orthoreg, orthoreg.integrations; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'lightning_fabric', 'pytorch_lightning')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
