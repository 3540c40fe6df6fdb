"""`penalty` for one weight and `model_penalty` for a whole model, batched by block shape.

A model's regularised layers (orthoreg.regularizers.layers) are grouped once by (block shape, stride,
groups, per-layer options); each call stacks a group's filter blocks and evaluates the penalty on the
whole stack, so a ResNet-110 costs a handful of batched matmuls instead of 111 small ones, and a
ResNeXt's 32-group convolutions cost one. Penalties run in float32 with autocast off.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from orthoreg.regularizers.layers import Layer, LayerSelection, kernel_blocks, split_selection
from orthoreg.regularizers.registry import Group, RegularizerSpec, regularizer_spec, resolve_options

LayerOptions = Mapping[str, Mapping[str, Any]]


def _check_finite(weight: torch.Tensor, where: str) -> None:
    if not bool(torch.isfinite(weight).all()):
        raise ValueError(f"non-finite values (NaN or Inf) in the weight of {where}")


def _check_kernel_rank(spec: RegularizerSpec, weight: torch.Tensor, where: str) -> None:
    """Penalties that read the kernels (ocnn) are defined for 2-D convolutions (and a Linear as a 1x1)."""
    if spec.needs_kernel and weight.dim() not in (2, 4):
        kind = {3: "1-D", 5: "3-D"}.get(weight.dim(), f"rank-{weight.dim()}")
        raise ValueError(
            f"regulariser {spec.name!r} is defined for 2-D convolutions only; {where} is a {kind} convolution "
            f"(weight {tuple(weight.shape)}): leave it out (exclude=...) or choose another regulariser"
        )


def _group(weights: list[torch.Tensor], groups: int, stride: tuple[int, ...], state: dict | None) -> Group:
    """One copy of the group's blocks: the filter rows are a view of the stacked kernels."""
    kernels = torch.cat([kernel_blocks(weight, groups) for weight in weights]).float()
    matrices = kernels.flatten(2)
    if kernels.dim() == 3:  # a Linear is a 1x1 convolution to the kernel-reading penalties
        kernels = kernels[..., None, None]
    return Group(matrices, kernels, stride or (1, 1), state)


def _combine(spec: RegularizerSpec, values: torch.Tensor, layers: int) -> torch.Tensor:
    """Per-block values [layers * groups] -> per-layer values [layers] (sum, or max for max-type penalties)."""
    blocks = values.reshape(layers, -1)
    return blocks.amax(dim=1) if spec.combine == "max" else blocks.sum(dim=1)


def penalty(name: str, weight: torch.Tensor, *, groups: int = 1, **options: Any) -> torch.Tensor:
    """The penalty of one weight (o, i/g, *k) or (o, n), without lambda: a 0-dim tensor. `stride` (for
    ocnn) may be given among the options; `groups` splits the filters into blocks as a grouped
    convolution does."""
    spec = regularizer_spec(name)
    resolved = resolve_options(name, options)
    _check_kernel_rank(spec, weight, f"the {tuple(weight.shape)} weight")
    _check_finite(weight, f"the {tuple(weight.shape)} tensor")
    stride = resolved.get("stride") or 1
    stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
    with torch.autocast(weight.device.type, enabled=False):
        group = _group([weight], groups, stride, None)
        return _combine(spec, spec.function(group, **resolved), 1)[0]


def group_layers(layers: list[Layer], layer_options: LayerOptions) -> list[list[Layer]]:
    """Layers with the same block shape, stride, groups and per-layer options, in order of first appearance."""
    grouped: dict[tuple, list[Layer]] = {}
    for layer in layers:
        weight = layer.weight
        options = tuple(sorted(layer_options.get(layer.name, {}).items()))
        key = (tuple(kernel_blocks(weight, layer.groups).shape[1:]), layer.stride, layer.groups, options)
        grouped.setdefault(key, []).append(layer)
    return list(grouped.values())


_GROUP_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached_groups(
    model: nn.Module, selection: LayerSelection, layer_options: LayerOptions
) -> list[list[Layer]]:
    per_model = _GROUP_CACHE.setdefault(model, {})
    key = (
        selection.key,
        tuple((name, tuple(sorted(options.items()))) for name, options in sorted(layer_options.items())),
    )
    if key not in per_model:
        per_model[key] = group_layers(selection.layers(model), layer_options)
    return per_model[key]


def selected_groups(
    name: str, model: nn.Module, selection: LayerSelection, layer_options: LayerOptions | None = None
) -> list[list[Layer]]:
    """The model's regularised layers in groups of equal blocks, refusing an empty selection or a layer
    the penalty is not defined for, by name."""
    spec = regularizer_spec(name)
    groups = _cached_groups(model, selection, layer_options or {})
    if not groups:
        linear = ", Linear" if selection.include_linear else ""
        raise ValueError(
            f"model {type(model).__name__} has no layer to regularise (convolutions{linear}, depthwise ones "
            f"excepted, narrowed by select={selection.select!r} and exclude={selection.exclude!r})"
        )
    if spec.needs_kernel:
        for layers in groups:
            for layer in layers:
                _check_kernel_rank(spec, layer.weight, f"layer {layer.name!r}")
    return groups


def model_penalty(
    name: str,
    model: nn.Module,
    *,
    selection: LayerSelection | None = None,
    layer_options: LayerOptions | None = None,
    state: dict[str, Any] | None = None,
    check_finite: bool = True,
    **settings: Any,
) -> torch.Tensor:
    """The sum of `penalty(name, layer.weight, groups=layer.groups)` over the regularised layers,
    computed per group of equal blocks. `settings` are the penalty's options and the layer-selection
    keywords (`LayerSelection`: include_linear, skip_stem, skip_classifier, select, exclude), or pass
    `selection` whole. `layer_options` gives per-layer options by layer name (dn_relaxed's calibrated
    k); `state` (kept by OrthogonalityRegularizer) carries SRIP's vectors between calls; with
    `check_finite` a non-finite total is traced to the layer and refused (one host sync per call)."""
    spec = regularizer_spec(name)
    chosen, options = split_selection(settings)
    if selection is not None and chosen != LayerSelection():
        raise ValueError("give the layer selection either as `selection` or as keywords, not both")
    selection = spec.selection(selection or chosen)
    if "stride" in options:
        raise ValueError("model_penalty takes each layer's stride from its convolution; do not pass stride")
    resolved = resolve_options(name, options)
    groups = selected_groups(name, model, selection, layer_options)
    device: torch.device = groups[0][0].weight.device
    total = torch.zeros((), device=device)
    with torch.autocast(device.type, enabled=False):
        for index, layers in enumerate(groups):
            extra = dict((layer_options or {}).get(layers[0].name, {}))
            values = resolve_options(name, {**options, **extra}) if extra else resolved
            group_state = (
                None if state is None or not spec.stateful else state.setdefault(f"group{index}", {})
            )
            group = _group(
                [layer.weight for layer in layers], layers[0].groups, layers[0].stride, group_state
            )
            total = total + _combine(spec, spec.function(group, **values), len(layers)).sum()
    if check_finite and not bool(torch.isfinite(total)):
        for layers in groups:
            for layer in layers:
                _check_finite(layer.weight, f"layer {layer.name!r}")
        raise ValueError(f"penalty {name!r} is non-finite ({float(total)}) although every weight is finite")
    return total
