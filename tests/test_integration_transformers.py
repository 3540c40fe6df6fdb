"""The Hugging Face Trainer recipe of docs/api.md ("Drop-in integrations"): a Trainer whose compute_loss
adds reg(progress) puts exactly lam * the penalty's gradient into the step, gradient accumulation
included, and logs the unscaled penalty. A tiny torch model and random tensors: nothing is downloaded."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from torch.utils.data import Dataset

import orthoreg

LR, LAM = 0.1, 0.1


class OrthogonalTrainer(transformers.Trainer):
    """The recipe: transformers.Trainer with the orthogonality penalty in the training loss."""

    def __init__(self, *args: Any, regularizer: orthoreg.OrthogonalityRegularizer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.regularizer = regularizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if model.training:  # evaluation calls compute_loss too
            loss = loss + self.regularizer(self.state.global_step / self.state.max_steps)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:  # start_time, by version
        if "loss" in logs and self.regularizer.last_penalty is not None:  # the training logs
            logs["orthoreg_penalty"] = float(self.regularizer.last_penalty)
        super().log(logs, *args, **kwargs)


class TinyImageClassifier(nn.Module):
    """A Hugging Face style model: forward(pixel_values, labels) -> {"loss", "logits"}."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU()
        )
        self.classifier = nn.Linear(16, 4)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.classifier(self.features(pixel_values).mean(dim=(2, 3)))
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}


class RandomImages(Dataset):
    def __init__(self, size: int = 16) -> None:
        generator = torch.Generator().manual_seed(1)
        self.images = torch.rand(size, 3, 8, 8, generator=generator)
        self.labels = torch.randint(4, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.images[index], "labels": self.labels[index]}


def train(model: nn.Module, lam: float, out: Path, steps: int, accumulate: int = 1) -> OrthogonalTrainer:
    """Plain SGD at a constant rate without clipping, so one step moves the weights by -LR * gradient."""
    arguments = transformers.TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=accumulate,
        learning_rate=LR,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    regularizer = orthoreg.OrthogonalityRegularizer(model, "dn_relaxed", lam, rho=0.5)
    trainer = OrthogonalTrainer(
        model=model, args=arguments, train_dataset=RandomImages(), regularizer=regularizer
    )
    trainer.train()
    return trainer


@pytest.mark.parametrize("accumulate", [1, 2])
def test_one_step_adds_exactly_lambda_times_the_penalty_gradient(tmp_path, accumulate):
    """Same data, same start: the two runs differ by -LR * lam * grad(penalty) at the start weights,
    once per optimiser step whatever the accumulation (the Trainer divides the loss by it)."""
    with_penalty, without = TinyImageClassifier(), TinyImageClassifier()
    start = copy.deepcopy(with_penalty)
    orthoreg.OrthogonalityRegularizer(start, "dn_relaxed", LAM, rho=0.5)(0.0).backward()
    train(with_penalty, LAM, tmp_path / "with", steps=1, accumulate=accumulate)
    train(without, 0.0, tmp_path / "without", steps=1, accumulate=accumulate)
    parameters = zip(with_penalty.named_parameters(), without.parameters(), start.parameters())
    for (name, trained), plain, initial in parameters:
        expected = plain - LR * initial.grad if initial.grad is not None else plain
        torch.testing.assert_close(trained, expected, atol=1e-6, rtol=1e-5, msg=f"{name} differs")
    assert not torch.allclose(with_penalty.features[0].weight, without.features[0].weight)


def test_a_few_steps_log_the_unscaled_penalty(tmp_path):
    trainer = train(TinyImageClassifier(), LAM, tmp_path, steps=3)
    logged = [entry["orthoreg_penalty"] for entry in trainer.state.log_history if "orthoreg_penalty" in entry]
    assert len(logged) == 3 and all(math.isfinite(value) and value > 0 for value in logged)
    assert logged[-1] == pytest.approx(float(trainer.regularizer.last_penalty))
