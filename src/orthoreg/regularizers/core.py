"""`penalty` for one weight and `model_penalty` for a whole model, batched by layer shape.

A model's regularised layers are grouped once by (weight shape, stride); each call stacks a group's
weights and evaluates the penalty on the whole stack, so a ResNet-110 costs a handful of batched
matmuls instead of 111 small ones. Penalties run in float32 with autocast off.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from orthoreg.regularizers.registry import Group, get_spec, resolve_options


def _as_kernel(weight: torch.Tensor) -> torch.Tensor:
    if weight.dim() == 4:
        return weight
    if weight.dim() == 2:
        return weight[:, :, None, None]
    raise ValueError(
        f"weight must have rank 4 (out, in, kh, kw) or 2 (out, in), got rank {weight.dim()} shape {tuple(weight.shape)}"
    )


def _check_finite(weight: torch.Tensor, where: str) -> None:
    if not bool(torch.isfinite(weight).all()):
        raise ValueError(f"non-finite values (NaN or Inf) in the weight of {where}")


def penalty(name: str, weight: torch.Tensor, **options: Any) -> torch.Tensor:
    """The penalty of one weight tensor (o, i, kh, kw) or (o, n), without lambda: a 0-dim tensor."""
    spec = get_spec(name)
    resolved = resolve_options(name, options)
    kernel = _as_kernel(weight)
    _check_finite(weight, f"the {tuple(weight.shape)} tensor")
    stride = resolved.get("stride") or 1
    stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
    with torch.autocast(weight.device.type, enabled=False):
        kernels = kernel.float().unsqueeze(0)
        group = Group(kernels.flatten(2), kernels, stride, None)
        return spec.function(group, **resolved)[0]


@dataclass(frozen=True)
class Layer:
    name: str
    module: nn.Conv2d | nn.Linear
    stride: tuple[int, int]


def regularized_layers(
    model: nn.Module, *, include_linear: bool = False, skip_stem: bool = False
) -> list[Layer]:
    """Every Conv2d (stem and 1x1 shortcuts included) and, optionally, every Linear, in module order;
    `skip_stem` drops the first Conv2d."""
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.groups != 1:
                raise ValueError(
                    f"layer {name!r} is a grouped convolution (groups={module.groups}); not supported"
                )
            layers.append(Layer(name, module, (int(module.stride[0]), int(module.stride[1]))))
        elif include_linear and isinstance(module, nn.Linear):
            layers.append(Layer(name, module, (1, 1)))
    if skip_stem:
        first_conv = next(
            (index for index, layer in enumerate(layers) if isinstance(layer.module, nn.Conv2d)), None
        )
        if first_conv is not None:
            layers.pop(first_conv)
    return layers


def group_layers(layers: Iterable[Layer]) -> list[list[Layer]]:
    """Layers with the same weight shape and stride, in order of first appearance."""
    groups: dict[tuple, list[Layer]] = {}
    for layer in layers:
        key = (tuple(_as_kernel(layer.module.weight).shape), layer.stride)
        groups.setdefault(key, []).append(layer)
    return list(groups.values())


_GROUP_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached_groups(model: nn.Module, include_linear: bool, skip_stem: bool) -> list[list[Layer]]:
    per_model = _GROUP_CACHE.setdefault(model, {})
    key = (include_linear, skip_stem)
    if key not in per_model:
        per_model[key] = group_layers(
            regularized_layers(model, include_linear=include_linear, skip_stem=skip_stem)
        )
    return per_model[key]


def model_penalty(
    name: str,
    model: nn.Module,
    *,
    include_linear: bool = False,
    skip_stem: bool = False,
    state: dict[str, Any] | None = None,
    check_finite: bool = True,
    **options: Any,
) -> torch.Tensor:
    """The sum of `penalty(name, layer.weight)` over the regularised layers, computed per shape group.
    `state` (kept by OrthogonalityRegularizer) carries SRIP's vectors between calls; with
    `check_finite` a non-finite total is traced to the layer and refused (one host sync per call)."""
    spec = get_spec(name)
    if "stride" in options:
        raise ValueError("model_penalty takes each layer's stride from its Conv2d; do not pass stride")
    resolved = resolve_options(name, options)
    groups = _cached_groups(model, include_linear, skip_stem)
    if not groups:
        raise ValueError(
            f"model {type(model).__name__} has no Conv2d{' or Linear' if include_linear else ''} layer to regularise"
        )
    device: torch.device = groups[0][0].module.weight.device
    total = torch.zeros((), device=device)
    with torch.autocast(device.type, enabled=False):
        for index, layers in enumerate(groups):
            kernels = torch.stack([_as_kernel(layer.module.weight) for layer in layers]).float()
            group_state = (
                None if state is None or not spec.stateful else state.setdefault(f"group{index}", {})
            )
            group = Group(kernels.flatten(2), kernels, layers[0].stride, group_state)
            total = total + spec.function(group, **resolved).sum()
    if check_finite and not bool(torch.isfinite(total)):
        for layers in groups:
            for layer in layers:
                _check_finite(layer.module.weight, f"layer {layer.name!r}")
        raise ValueError(f"penalty {name!r} is non-finite ({float(total)}) although every weight is finite")
    return total
