"""Every convolution people use: grouped convolutions against their block-diagonal matrix, depthwise
ones skipped, 1-D and 3-D convolutions on their flattened filters, layer selection, and torchvision's
own models trained with every regulariser (no weights downloaded)."""

import copy

import pytest
import torch
from torch import nn

import orthoreg
from orthoreg.regularizers import LayerSelection, regularized_layers, regularizer_spec
from orthoreg.regularizers.layers import block_diagonal, filter_blocks

REGULARIZERS = sorted(orthoreg.available_regularizers())
# penalties that read each kernel as a 2-D convolution (ocnn and its reference preset)
KERNEL_READERS = {name for name in REGULARIZERS if regularizer_spec(name).needs_kernel}
EXACT = {"srip": {"exact": True}}  # power iteration converges; the exact value is the reference


def seeded(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 0.3


def dense_equivalent(name: str, blocks: torch.Tensor) -> torch.Tensor:
    """The penalty of a grouped layer from its blocks one at a time, in float64: the sum over blocks for
    Frobenius-type penalties, the maximum for coherence and spectral norm."""
    values = torch.stack([orthoreg.penalty(name, block.double(), **EXACT.get(name, {})) for block in blocks])
    return values.max() if name in ("mc", "srip") else values.sum()


@pytest.mark.parametrize("name", [n for n in REGULARIZERS if n not in KERNEL_READERS])
def test_a_grouped_convolution_is_its_blocks(name):
    weight = seeded(12, 2, 3, 3)  # 4 groups of 3 filters, each seeing 2 input channels
    value = orthoreg.penalty(name, weight, groups=4, **EXACT.get(name, {}))
    blocks = filter_blocks(weight, 4)
    assert value.item() == pytest.approx(dense_equivalent(name, blocks).item(), rel=1e-4, abs=1e-6)


def test_the_block_diagonal_matrix_gives_the_same_frobenius_residual():
    """||W W^T - I||^2 of the block-diagonal W (cross-group products are structurally 0) equals the
    grouped penalty: nothing is lost by reading a grouped layer block by block."""
    weight = seeded(8, 3, 2, 2, seed=1)
    full = block_diagonal(weight.double(), 2)
    assert full.shape == (8, 2 * 3 * 4)
    expected = ((full @ full.T - torch.eye(8, dtype=torch.float64)) ** 2).sum()
    assert orthoreg.penalty("fro", weight, groups=2).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("name", [n for n in REGULARIZERS if n not in KERNEL_READERS])
@pytest.mark.parametrize("shape", [(6, 4, 5), (6, 2, 3, 2, 2)])
def test_1d_and_3d_convolutions_are_regularised_on_their_flattened_filters(name, shape):
    weight = seeded(*shape, seed=2)
    as_matrix = weight.reshape(shape[0], -1)
    options = EXACT.get(name, {})
    assert orthoreg.penalty(name, weight, **options).item() == pytest.approx(
        orthoreg.penalty(name, as_matrix, **options).item(), rel=1e-5, abs=1e-7
    )


def test_ocnn_refuses_other_than_2d_convolutions_by_name():
    model = nn.Sequential(nn.Conv1d(3, 8, 3), nn.ReLU(), nn.Conv1d(8, 8, 3))
    with pytest.raises(ValueError, match=r"'ocnn' is defined for 2-D convolutions only; layer '0' is a 1-D"):
        orthoreg.OrthogonalityRegularizer(model, "ocnn", 1e-3)
    with pytest.raises(ValueError, match="3-D convolution"):
        orthoreg.penalty("ocnn", seeded(4, 2, 3, 3, 3))


class Mixed(nn.Module):
    """A stem, a grouped and a depthwise convolution, a 1-D convolution and two linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.grouped = nn.Conv2d(8, 8, 3, groups=2)
        self.depthwise = nn.Conv2d(8, 8, 3, groups=8)
        self.temporal = nn.Conv1d(8, 4, 3)
        self.head = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 2))


def names(**selection):
    return [layer.name for layer in regularized_layers(Mixed(), **selection)]


def test_layer_selection_by_pattern_type_predicate_and_the_named_options():
    assert names() == ["stem", "grouped", "temporal"]  # depthwise skipped, linear layers off
    assert names(include_linear=True) == ["stem", "grouped", "temporal", "head.0", "head.1"]
    assert names(include_linear=True, skip_stem=True, skip_classifier=True) == [
        "grouped",
        "temporal",
        "head.0",
    ]
    assert names(select="g*") == ["grouped"]
    assert names(select=nn.Conv1d) == ["temporal"]
    assert names(select=lambda name, module: module.out_channels == 8) == ["stem", "grouped"]
    assert names(exclude=["stem", nn.Conv1d]) == ["grouped"]
    assert names(include_linear=True, select="head.*", exclude="*.1") == ["head.0"]
    assert [layer.groups for layer in regularized_layers(Mixed())] == [1, 2, 1]


def test_an_empty_selection_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"no layer to regularise .*select='nothing\*'"):
        orthoreg.OrthogonalityRegularizer(Mixed(), "dn_strict", 1e-3, select="nothing*")


@pytest.mark.parametrize("name", REGULARIZERS)
def test_model_penalty_of_a_mixed_model_is_the_sum_of_its_layers(name):
    model = Mixed()
    if name in KERNEL_READERS:
        expected = sum(
            orthoreg.penalty(name, layer.weight, groups=layer.groups, stride=layer.stride)
            for layer in regularized_layers(model, exclude=nn.Conv1d)
        )
        assert orthoreg.model_penalty(name, model, exclude=nn.Conv1d).item() == pytest.approx(
            expected.item(), rel=1e-5
        )
        return
    layers = regularized_layers(model, include_linear=True)
    options = EXACT.get(name, {})
    expected = sum(orthoreg.penalty(name, layer.weight, groups=layer.groups, **options) for layer in layers)
    value = orthoreg.model_penalty(name, model, include_linear=True, **options)
    assert value.detach().item() == pytest.approx(float(expected), rel=1e-5, abs=1e-7)


TORCHVISION_MODELS = [
    "resnet50",
    "resnext50_32x4d",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "regnet_y_400mf",
    "convnext_tiny",
]


# the hard constraints train on the small models: a parametrisation's forward pass on every layer of
# the large ones takes minutes on a CPU and tests nothing the small ones (grouped, depthwise,
# squeeze-excitation, linear layers) do not
CONSTRAINED_MODELS = ("mobilenet_v3_small", "efficientnet_b0", "regnet_y_400mf")


@pytest.fixture(scope="module")
def torchvision_models():
    models = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    return {name: models.get_model(name, weights=None, num_classes=10) for name in TORCHVISION_MODELS}


@pytest.mark.slow
@pytest.mark.parametrize("model_name", TORCHVISION_MODELS)
def test_torchvision_models_train_with_every_regulariser(torchvision_models, model_name):
    """Each model (built without weights: nothing is downloaded) gets a batched penalty equal to the sum
    of its layers' penalties, and two SGD steps with every regulariser keep the loss finite and move
    the weights. ConvNeXt's pointwise layers are Linear, so linear layers are included everywhere."""
    model = torchvision_models[model_name]
    images, labels = torch.rand(2, 3, 64, 64), torch.tensor([1, 7])
    layers = regularized_layers(model, include_linear=True)
    assert any(layer.groups > 1 for layer in layers) == (model_name in ("resnext50_32x4d", "regnet_y_400mf"))
    for name in REGULARIZERS:
        if name == "ocnn_reference":  # a preset of residual networks' layers, tested on its own
            continue
        spec = regularizer_spec(name)
        if spec.constrain is not None and model_name not in CONSTRAINED_MODELS:
            continue
        selection = {"include_linear": not spec.needs_kernel}
        if name == "spectral":  # defined for ungrouped layers
            selection["exclude"] = lambda _, module: getattr(module, "groups", 1) > 1
        options = EXACT.get(name, {})
        with torch.no_grad():
            chosen = spec.selection(LayerSelection(**selection)).layers(model)
            expected = sum(
                float(
                    orthoreg.penalty(
                        name,
                        layer.weight,
                        groups=layer.groups,
                        **options,
                        **({"stride": layer.stride} if spec.needs_kernel else {}),
                    )
                )
                for layer in chosen
            )
            batched = float(orthoreg.model_penalty(name, model, **selection, **options))
        assert batched == pytest.approx(expected, rel=2e-4), name
        # a hard constraint parametrises its model: it trains a copy, the penalties the model itself
        trained = copy.deepcopy(model) if spec.constrain is not None else model
        reg = orthoreg.OrthogonalityRegularizer(trained, name, 1e-4, **selection)
        optimizer = torch.optim.SGD(trained.parameters(), lr=1e-3)
        before = next(trained.parameters()).detach().clone()
        trained.train()
        for step in range(2):
            loss = nn.functional.cross_entropy(trained(images), labels) + reg(step / 2)
            assert torch.isfinite(loss), name
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert not torch.equal(before, next(trained.parameters()).detach()), name
