"""Which layers of a model are regularised, and how each weight is read as filter matrices.

A convolution (1-D, 2-D or 3-D) of weight (o, i/g, *k) with g groups is read as g blocks of o/g
filters, each filter a row of n = (i/g) * prod(k) entries: the filters of one block share their
inputs, filters of different blocks never do. Every penalty is applied to each block's Gram (the
layer's W is block-diagonal, so its Gram is too: for the Frobenius-type penalties the block sum is the
whole layer's value, for max-type ones the block maximum). A Linear layer is one block of o rows.

A depthwise convolution (one filter per block) is skipped: its filter has no partner that shares its
inputs, so there is no correlation to penalise, and penalising its norm alone would only be a weight
decay towards 1. Transposed convolutions are not regularised.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
# a layer selector: a name pattern (fnmatch), a module type, a predicate (name, module) -> bool, or a
# sequence of those (any match)
Selector = (
    str | type | Callable[[str, nn.Module], bool] | Sequence["str | type | Callable[[str, nn.Module], bool]"]
)


@dataclass(frozen=True)
class Layer:
    """A regularised layer: its qualified name, the module, its stride per spatial dimension (() for a
    Linear) and its number of groups."""

    name: str
    module: nn.Module
    stride: tuple[int, ...]
    groups: int

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight  # type: ignore[return-value]

    @property
    def kind(self) -> str:
        return type(self.module).__name__


def matches(selector: Selector | None, name: str, module: nn.Module) -> bool:
    """Whether `name`/`module` is picked by the selector (None picks nothing)."""
    if selector is None:
        return False
    if isinstance(selector, str):
        return fnmatch.fnmatchcase(name, selector)
    if isinstance(selector, type):
        return isinstance(module, selector)
    if callable(selector):
        return bool(selector(name, module))
    return any(matches(item, name, module) for item in selector)


def is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, CONVOLUTIONS) and module.groups > 1 and module.out_channels == module.groups


def candidate(module: nn.Module, include_linear: bool) -> bool:
    """A layer the selection may keep: a convolution that is not depthwise, or (asked for) a Linear."""
    if isinstance(module, CONVOLUTIONS):
        return not is_depthwise(module)
    return include_linear and isinstance(module, nn.Linear)


@dataclass(frozen=True)
class LayerSelection:
    """Which layers a penalty, a constraint or a measure sees, declared once: every Conv1d/2d/3d
    (depthwise ones excepted) and, with `include_linear`, every Linear; narrowed to those `select`
    picks (when given), without those `exclude` picks; `skip_stem` drops the first convolution,
    `skip_classifier` the last Linear. The public functions take these as keywords (`SELECTION`)."""

    include_linear: bool = False
    skip_stem: bool = False
    skip_classifier: bool = False
    select: Selector | None = None
    exclude: Selector | None = None

    def layers(self, model: nn.Module) -> list[Layer]:
        """The chosen layers of `model`, in module order."""
        layers = []
        for name, module in model.named_modules():
            if not candidate(module, self.include_linear) or getattr(module, "weight", None) is None:
                continue
            if (self.select is not None and not matches(self.select, name, module)) or matches(
                self.exclude, name, module
            ):
                continue
            if isinstance(module, nn.Linear):
                layers.append(Layer(name, module, (), 1))
            else:
                layers.append(Layer(name, module, tuple(int(s) for s in module.stride), int(module.groups)))
        convolutions = [index for index, layer in enumerate(layers) if isinstance(layer.module, CONVOLUTIONS)]
        linears = [index for index, layer in enumerate(layers) if isinstance(layer.module, nn.Linear)]
        dropped = {convolutions[0]} if self.skip_stem and convolutions else set()
        dropped |= {linears[-1]} if self.skip_classifier and linears else set()
        return [layer for index, layer in enumerate(layers) if index not in dropped]

    @property
    def key(self) -> tuple:
        """A hashable form (selectors given as lists become tuples), for caches."""
        return tuple(_hashable(getattr(self, name)) for name in SELECTION)


# the keywords that choose layers, shared by model_penalty, OrthogonalityRegularizer and layer_metrics
SELECTION = tuple(item.name for item in fields(LayerSelection))


def _hashable(value: object) -> object:
    return tuple(_hashable(item) for item in value) if isinstance(value, (list, tuple)) else value


def split_selection(settings: Mapping[str, Any]) -> tuple[LayerSelection, dict[str, Any]]:
    """Keywords as the public functions take them -> (the layer selection, the other keywords)."""
    chosen = {key: value for key, value in settings.items() if key in SELECTION}
    return LayerSelection(**chosen), {key: value for key, value in settings.items() if key not in SELECTION}


def regularized_layers(model: nn.Module, **selection: Any) -> list[Layer]:
    """The layers a penalty sees, in module order, chosen by `LayerSelection`'s keywords."""
    return LayerSelection(**selection).layers(model)


def kernel_blocks(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """A weight (o, i/g, *k) as its `groups` blocks of kernels: [g, o/g, i/g, *k] (a Linear's weight
    gets no spatial dimensions)."""
    if not 2 <= weight.dim() <= 5:
        raise ValueError(
            f"weight must have rank 2 (out, in) or 3-5 (out, in, *kernel), got rank {weight.dim()} "
            f"shape {tuple(weight.shape)}"
        )
    if weight.shape[0] % groups:
        raise ValueError(f"{weight.shape[0]} filters cannot be split into {groups} groups")
    return weight.reshape(groups, weight.shape[0] // groups, *weight.shape[1:])


def filter_blocks(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """The blocks as filter rows: [g, o/g, (i/g) * prod(k)]."""
    return kernel_blocks(weight, groups).flatten(2)


def block_diagonal(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """The layer's W as one matrix: its blocks on the diagonal, [o, i * prod(k)]."""
    blocks = filter_blocks(weight, groups)
    return torch.block_diag(*blocks) if groups > 1 else blocks[0]
