"""The hard constraints (`orthogonal`, `spectral`) against independent references: after real
training steps, W W^T = I (or W^T W = I) in float64 for every constrained layer, sigma_max(W) = 1;
the saved model.pt is the plain network's state dict; a run saves, loads, evaluates and resumes
bit-exactly with them."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

import orthoreg
from orthoreg import train as train_module
from orthoreg.checkpoint import TrainingInterrupted
from orthoreg.config import TrainConfig
from orthoreg.evaluate import evaluate_run
from orthoreg.regularizers import OrthogonalityRegularizer, plain_state_dict
from orthoreg.runs import load_run
from orthoreg.train import train


class Mixed(nn.Module):
    """Wide, tall and square kernels, a grouped convolution, a stride and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)  # 16 x 9: tall
        self.wide = nn.Conv2d(16, 8, 3, padding=1)  # 8 x 144: wide
        self.grouped = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2)  # 2 blocks of 4 x 36
        self.square = nn.Conv2d(8, 8, 1)  # 8 x 8
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.grouped(torch.relu(self.wide(x))))
        return self.fc(self.square(x).mean(dim=(2, 3)))


def trained(name: str, steps: int = 30, **options) -> tuple[Mixed, OrthogonalityRegularizer]:
    """A model constrained by `name` after `steps` SGD steps on random data (the optimiser built after
    the regulariser, as the docs say)."""
    torch.manual_seed(0)
    model = Mixed()
    exclude = "grouped" if name == "spectral" else None
    reg = OrthogonalityRegularizer(model, name, lam=0.0, include_linear=True, exclude=exclude, **options)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(1)
    for step in range(steps):
        x = torch.rand(16, 1, 8, 8, generator=generator)
        y = torch.randint(5, (16,), generator=generator)
        loss = nn.functional.cross_entropy(model(x), y) + reg(step / steps)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, reg


def blocks(layer) -> list[torch.Tensor]:
    """A layer's filter matrices in float64, one per group."""
    weight = layer.weight.detach().double()
    return list(weight.reshape(layer.groups, weight.shape[0] // layer.groups, -1))


def test_orthogonal_rows_or_columns_after_training():
    model, reg = trained("orthogonal")
    assert [layer.name for layer in reg.layers()] == ["stem", "wide", "grouped", "square", "fc"]
    for layer in reg.layers():
        for W in blocks(layer):
            o, n = W.shape
            gram = W @ W.T if o <= n else W.T @ W
            torch.testing.assert_close(gram, torch.eye(min(o, n), dtype=torch.float64), atol=2e-6, rtol=0)
    assert float(reg.last_penalty) == 0.0


@pytest.mark.parametrize(("power_iterations", "tolerance"), [(1, 1e-4), (20, 1e-4)])
def test_spectral_norm_is_one_after_training(power_iterations, tolerance):
    model, reg = trained("spectral", power_iterations=power_iterations)
    model.eval()
    for layer in reg.layers():
        (W,) = blocks(layer)
        assert float(torch.linalg.matrix_norm(W, ord=2)) == pytest.approx(1.0, abs=tolerance), layer.name


def test_spectral_refuses_a_grouped_layer_by_name():
    with pytest.raises(
        ValueError, match="spectral is defined here for ungrouped layers; 'grouped' has 2 groups"
    ):
        OrthogonalityRegularizer(Mixed(), "spectral", lam=0.0)


def test_a_model_is_constrained_once():
    model = Mixed()
    OrthogonalityRegularizer(model, "orthogonal", lam=0.0)
    with pytest.raises(ValueError, match="layer 'stem' is already parametrised"):
        OrthogonalityRegularizer(model, "orthogonal", lam=0.0)


@pytest.mark.parametrize("name", ["orthogonal", "spectral"])
def test_plain_state_dict_loads_into_the_bare_network_and_leaves_the_model_alone(name):
    model, _ = trained(name, steps=3)
    model.eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model(x)
    state = plain_state_dict(model)
    bare = Mixed()
    bare.load_state_dict(state)
    assert set(state) == set(bare.state_dict())
    with torch.no_grad():
        assert torch.equal(bare.eval()(x), before)
        assert torch.equal(model(x), before)  # the constrained model still works, unchanged


def test_orthogonal_map_is_an_option_with_a_checked_value():
    assert orthoreg.regularizer_options("orthogonal") == {"orthogonal_map": "cayley"}
    with pytest.raises(
        ValueError, match="orthogonal_map must be one of cayley, matrix_exp, householder, auto"
    ):
        OrthogonalityRegularizer(Mixed(), "orthogonal", lam=0.0, orthogonal_map="qr")
    with pytest.raises(ValueError, match="power_iterations must be a positive integer, got 0"):
        OrthogonalityRegularizer(Mixed(), "spectral", lam=0.0, power_iterations=0)


# --- through the training engine -----------------------------------------------------------------

SMALL = {
    "model": "resnet8",
    "dataset": "synthetic",
    "seed": 2,
    "epochs": 2,
    "batch_size": 32,
    "limit_train": 128,
    "limit_test": 64,
    "device": "cpu",
    "threads": 1,
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from orthoreg.data import prepare_dataset

    root = tmp_path_factory.mktemp("data")
    prepare_dataset("synthetic", root)
    return root


@pytest.mark.parametrize("name", ["orthogonal", "spectral"])
def test_a_constrained_run_saves_loads_evaluates_and_resumes_bit_exactly(
    name, tmp_path, data_dir, monkeypatch
):
    config = TrainConfig(regularizer=name, **SMALL)
    record = train(config, tmp_path / "reference", data_dir, verbose=False)
    model, _ = load_run(tmp_path / "reference")  # model.pt is the plain network's
    evaluated = evaluate_run(tmp_path / "reference", data_dir, limit_test=64, batch_size=500, device="cpu")
    assert evaluated["test_accuracy"] == record["test_accuracy"]
    if name == "orthogonal":
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                W = module.weight.detach().double().reshape(module.out_channels, -1)
                gram = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
                torch.testing.assert_close(
                    gram, torch.eye(min(W.shape), dtype=torch.float64), atol=2e-6, rtol=0
                )

    class SignalsOnce(OrthogonalityRegularizer):
        def __call__(self, progress):
            if progress == 0.75:  # mid-way through the second epoch
                os.kill(os.getpid(), signal.SIGUSR1)
            return super().__call__(progress)

    monkeypatch.setattr(train_module, "OrthogonalityRegularizer", SignalsOnce)
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "resumed", data_dir, verbose=False)
    monkeypatch.undo()
    train(config, tmp_path / "resumed", data_dir, verbose=False)
    first = torch.load(tmp_path / "reference" / "model.pt", weights_only=True)
    second = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_the_engine_gives_constrained_weights_no_weight_decay():
    """Weight decay on an orthogonal `original` is no decay of the weight; with torch's householder
    map it would round the sign diagonal to 0 and zero the weight."""
    model = Mixed()
    assert train_module.parameter_groups(model) == [{"params": list(model.parameters())}]
    OrthogonalityRegularizer(model, "orthogonal", lam=0.0)
    free, held = train_module.parameter_groups(model)
    assert held["weight_decay"] == 0.0 and "weight_decay" not in free
    originals = {
        id(module.parametrizations.weight.parametrizations.original.original)
        for module in (model.stem, model.wide, model.grouped, model.square)
    }
    assert {id(parameter) for parameter in held["params"]} == originals
    assert len(free["params"]) + len(held["params"]) == len(list(model.parameters()))
