"""Hard orthogonality: the kernels are constrained, not penalised.

Each constrained layer's weight (o, i, *k) is viewed as W in R^{o x n}, n = i * prod(k), through a
`torch.nn.utils.parametrize` parametrisation (`KernelMatrix`), and torch's own matrix
parametrisation acts on that view, never on the kh x kw slices a 4-D weight would otherwise be
batched into:
- `orthogonal`: `torch.nn.utils.parametrizations.orthogonal` on W: orthonormal rows when o <= n,
  orthonormal columns otherwise (a grouped convolution: each block of o/g filters on its own);
- `spectral`: `torch.nn.utils.parametrizations.spectral_norm` on W (sigma_max = 1 up to its power
  iteration, one step per training forward pass).
Their penalty is 0; their cost is the parametrisation inside every forward pass. A model must be
constrained before its optimiser is built (the weight becomes the parametrisation's `original`, which
`constrained_parameters` lists: give them no weight decay), and `plain_state_dict` folds the
parametrised weights back, so a saved model.pt loads into the bare network.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from orthoreg.regularizers.layers import Layer
from orthoreg.regularizers.registry import Group, register_regularizer

# torch's maps; `auto` is torch's choice (householder for non-square matrices), whose sign diagonal
# any weight decay on `original` rounds to 0 (a zero weight), so the default is cayley: safe under
# weight decay and, on a CPU, faster than householder at every ResNet kernel shape measured
ORTHOGONAL_MAPS = ("cayley", "matrix_exp", "householder", "auto")


class KernelMatrix(nn.Module):
    """The parametrisation that reads a weight as its filter matrices: [g, o/g, n] (g = groups, the
    group axis dropped when g = 1) in `original`, the weight's own shape outside."""

    def __init__(self, shape: torch.Size, groups: int) -> None:
        super().__init__()
        self.shape, self.groups = tuple(shape), groups

    def forward(self, matrix: torch.Tensor) -> torch.Tensor:
        # contiguous, as the plain network's saved weight is: a transposed view (householder's wide
        # matrices) would send the layer down another kernel with other round-off
        return matrix.reshape(self.shape).contiguous()

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        rows = weight.reshape(self.groups, weight.shape[0] // self.groups, -1)
        return rows[0] if self.groups == 1 else rows


def _refuse_constrained(layer: Layer) -> None:
    if parametrize.is_parametrized(layer.module, "weight"):
        raise ValueError(f"layer {layer.name!r} is already parametrised; constrain a model once")


def constrain_orthogonal(layer: Layer, orthogonal_map: str) -> None:
    """W (each block of a grouped layer) orthonormal by construction."""
    _refuse_constrained(layer)
    parametrize.register_parametrization(
        layer.module, "weight", KernelMatrix(layer.weight.shape, layer.groups)
    )
    chosen = None if orthogonal_map == "auto" else orthogonal_map
    weight_parametrizations = cast(nn.ModuleDict, layer.module.parametrizations)["weight"]
    parametrizations.orthogonal(weight_parametrizations, "original", orthogonal_map=chosen)


def constrain_spectral(layer: Layer, power_iterations: int) -> None:
    """W / sigma_max(W), sigma_max by torch's power iteration on the o x n view."""
    _refuse_constrained(layer)
    if layer.groups > 1:
        raise ValueError(
            f"spectral is defined here for ungrouped layers; {layer.name!r} has {layer.groups} groups: "
            "leave it out (exclude=...) or use orthogonal, which constrains each block"
        )
    parametrizations.spectral_norm(layer.module, n_power_iterations=power_iterations, dim=0)


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with every parametrised weight replaced by its value in eval mode (no
    power-iteration step, nothing in the model changed), as the unconstrained network stores it."""
    parametrised = {
        name: module
        for name, module in model.named_modules()
        if parametrize.is_parametrized(module, "weight")
    }
    if not parametrised:
        return model.state_dict()
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            values = {
                _key(name, "weight"): module.weight.detach().clone() for name, module in parametrised.items()
            }
    finally:
        for module, training in modes.items():
            module.training = training
    folded: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        owner = next((name for name in parametrised if key.startswith(_key(name, "parametrizations."))), None)
        if owner is None:
            folded[key] = value
        else:
            folded.setdefault(_key(owner, "weight"), values[_key(owner, "weight")])
    return folded


def _key(module_name: str, rest: str) -> str:
    return f"{module_name}.{rest}" if module_name else rest


def constrained_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters behind constrained weights (each parametrisation's `original`): their scale is
    fixed by the constraint, so the training engine gives them no weight decay."""
    return [parameter for name, parameter in model.named_parameters() if ".parametrizations." in f".{name}"]


def _no_penalty(group: Group, **options: Any) -> torch.Tensor:
    return group.matrices.new_zeros(group.matrices.shape[0])


def check_orthogonal(options: dict) -> None:
    if options["orthogonal_map"] not in ORTHOGONAL_MAPS:
        raise ValueError(
            f"orthogonal_map must be one of {', '.join(ORTHOGONAL_MAPS)}, got {options['orthogonal_map']!r}"
        )


def check_spectral(options: dict) -> None:
    value = options["power_iterations"]
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"power_iterations must be a positive integer, got {value!r}")


register_regularizer(
    "orthogonal",
    "hard: each kernel's o x n matrix orthonormal by construction (torch orthogonal parametrisation)",
    check=check_orthogonal,
    constrain=constrain_orthogonal,
    orthogonal_map="cayley",
)(_no_penalty)
register_regularizer(
    "spectral",
    "hard: each kernel's o x n matrix divided by its largest singular value (torch spectral_norm)",
    check=check_spectral,
    constrain=constrain_spectral,
    power_iterations=1,
)(_no_penalty)
