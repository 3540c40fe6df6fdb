"""Extension points, exercised from outside the package: a plugin module in a temporary folder
registers a regulariser, a model and a dataset, and is picked up by name by `orthoreg prepare-data`,
`orthoreg train` (through ORTHOREG_PLUGINS) and `model_penalty`."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from orthoreg.plugins import PLUGINS_VARIABLE, load_plugins, plugin_names

PLUGIN = "orthoreg_toy_plugin"
PLUGIN_SOURCE = '''
"""A toy orthoreg plugin: one regulariser, one model, one dataset."""
import torch
from torch import nn

from orthoreg.data import DatasetInfo, register_dataset
from orthoreg.models import register_model
from orthoreg.regularizers import Group, register_regularizer


@register_regularizer("toy_l2", "scale * squared Frobenius norm of W (toy)", scale=1.0)
def toy_l2(group: Group, scale: float) -> torch.Tensor:
    return scale * group.matrices.square().sum(dim=(1, 2))


class ToyCNN(nn.Module):
    def __init__(self, num_classes, in_channels, width=4):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward_features(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return x.mean(dim=(2, 3))

    def forward(self, x):
        return self.fc(self.forward_features(x))


@register_model("toy_cnn")
def toy_cnn(num_classes, in_channels=3, **kwargs):
    return ToyCNN(num_classes, in_channels, **kwargs)


def fetch_toy(directory):
    generator = torch.Generator().manual_seed(7)

    def draw(count):
        labels = torch.randint(3, (count,), generator=generator)
        images = torch.randint(0, 256, (count, 1, 32, 32), generator=generator, dtype=torch.uint8)
        return images, labels

    return draw(24), draw(12)


register_dataset(DatasetInfo("toy_noise", 3, 1, 32, (0.5,), (0.29,), 24, 12), fetch_toy)
'''


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugins")
    (folder / f"{PLUGIN}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    return folder


@pytest.fixture(scope="module")
def plugin(plugin_dir, module_registries):
    """The plugin imported into this process, into this module's isolated registries, so the toy
    names do not leak into the rest of the test session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(plugin_dir))
        try:
            (module,) = load_plugins(PLUGIN)
            yield module
        finally:
            sys.modules.pop(PLUGIN, None)


def orthoreg_cli(*args, plugin_dir, cwd, plugins=PLUGIN):
    env = {**os.environ, PLUGINS_VARIABLE: plugins}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "orthoreg", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_plugin_names_parse_the_variable(monkeypatch):
    assert plugin_names(" a, b.c ,,d ") == ["a", "b.c", "d"]
    monkeypatch.setenv(PLUGINS_VARIABLE, "x,y")
    assert plugin_names() == ["x", "y"]
    monkeypatch.delenv(PLUGINS_VARIABLE)
    assert plugin_names() == [] and load_plugins() == []


def test_unimportable_plugin_is_refused_before_any_import():
    with pytest.raises(ValueError, match="no_such_plugin_module"):
        load_plugins("json,no_such_plugin_module")


def test_plugin_regulariser_through_model_penalty(plugin):
    from orthoreg import available_models, available_regularizers, build_model, model_penalty

    assert "toy_l2" in available_regularizers() and "toy_cnn" in available_models()
    model = build_model("toy_cnn", num_classes=5, in_channels=3, width=3)
    expected = sum(
        m.weight.double().square().sum() for m in model.modules() if isinstance(m, torch.nn.Conv2d)
    )
    got = model_penalty("toy_l2", model, scale=0.5)
    assert torch.allclose(got.double(), 0.5 * expected, rtol=1e-6)
    with_linear = model_penalty("toy_l2", model, include_linear=True)
    assert torch.allclose(with_linear.double(), expected + model.fc.weight.double().square().sum(), rtol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        model_penalty("toy_l2", model, rho=0.5)


def test_plugin_dataset_prepared_by_the_cli(plugin, plugin_dir, tmp_path):
    from orthoreg.data import load_split

    result = orthoreg_cli(
        "prepare-data", "--dataset", "toy_noise", "--data-dir", "data", plugin_dir=plugin_dir, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    images, labels = load_split("toy_noise", tmp_path / "data", "test")
    assert images.shape == (12, 1, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (12,) and int(labels.max()) < 3


@pytest.mark.slow
def test_plugin_model_and_regulariser_trained_by_the_cli(plugin_dir, tmp_path):
    prepared = orthoreg_cli(
        "prepare-data", "--dataset", "synthetic", "--data-dir", "data", plugin_dir=plugin_dir, cwd=tmp_path
    )
    assert prepared.returncode == 0, prepared.stderr
    result = orthoreg_cli(
        "train",
        "--model",
        "toy_cnn",
        "--regularizer",
        "toy_l2",
        "--dataset",
        "synthetic",
        "--seed",
        "0",
        "--epochs",
        "1",
        "--limit-train",
        "64",
        "--limit-test",
        "32",
        "--batch-size",
        "32",
        "--lambda",
        "0.01",
        "--reg-option",
        "scale=2.0",
        "--model-option",
        "width=3",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        "run",
        plugin_dir=plugin_dir,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (record["model"], record["regularizer"], record["epochs_completed"]) == ("toy_cnn", "toy_l2", 1)
    assert record["reg_options"]["scale"] == 2.0
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert state["1.conv1.weight"].shape == (3, 3, 3, 3)


def test_cli_without_the_plugin_refuses_the_name(plugin_dir, tmp_path):
    result = orthoreg_cli(
        "prepare-data",
        "--dataset",
        "toy_noise",
        "--data-dir",
        "data",
        plugin_dir=plugin_dir,
        cwd=tmp_path,
        plugins="",
    )
    assert result.returncode != 0
    assert "toy_noise" in result.stderr
