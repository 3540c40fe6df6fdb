"""The regulariser registry. A regulariser is a function on a batch of same-shape layers (a `Group`)
returning one penalty per layer; a new one is one file with `@register_regularizer` and one import
line in orthoreg/regularizers/__init__.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Group:
    """Filter blocks of one shape and stride, stacked (a layer contributes one block per group):
    `matrices` [g, o, n] are the filters as rows, `kernels` [g, o, i, *k] the convolution weights
    (linear layers: a 1x1 kernel), `state` a dict the penalty may keep between calls (SRIP's
    power-iteration vectors), or None when stateless."""

    matrices: torch.Tensor
    kernels: torch.Tensor
    stride: tuple[int, ...] = (1, 1)
    state: dict[str, torch.Tensor] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrices.shape[1], self.matrices.shape[2]


PenaltyFunction = Callable[..., torch.Tensor]
OptionCheck = Callable[[dict[str, Any]], None]
Constrain = Callable[..., None]


@dataclass(frozen=True)
class RegularizerSpec:
    """A registered penalty: `function(group, **options) -> Tensor[g]`, the options it accepts with
    their defaults, the function that checks their values, whether it reads `group.kernels` (the 4-D
    weights and stride, not just the flattened filters), whether it keeps `group.state` between
    calls, how a grouped layer's block values combine into the layer's ("sum" for Frobenius-type
    penalties, "max" for maximum-type ones such as coherence and spectral norm), and, for a hard
    constraint, `constrain(layer, **options)`, which parametrises the layer once (its penalty is 0)."""

    name: str
    description: str
    function: PenaltyFunction
    defaults: dict[str, Any] = field(default_factory=dict)
    needs_kernel: bool = False
    stateful: bool = False
    check: OptionCheck | None = None
    combine: str = "sum"
    constrain: Constrain | None = None


_REGISTRY: dict[str, RegularizerSpec] = {}


def register_regularizer(
    name: str,
    description: str,
    *,
    needs_kernel: bool = False,
    stateful: bool = False,
    check: OptionCheck | None = None,
    combine: str = "sum",
    constrain: Constrain | None = None,
    **defaults: Any,
) -> Callable[[PenaltyFunction], PenaltyFunction]:
    """Register `function(group, **options) -> Tensor[g]`; `defaults` names every option it accepts
    and `check(options)` raises ValueError, naming the option and its value, for values it refuses.
    `needs_kernel`: it reads `group.kernels`/`group.stride`; `stateful`: it keeps `group.state`
    (otherwise `group.state` is always None); `combine`: "sum" or "max" over a grouped layer's blocks;
    `constrain(layer, **options)`: a hard constraint, applied to each layer by OrthogonalityRegularizer."""
    if combine not in ("sum", "max"):
        raise ValueError(f"combine must be 'sum' or 'max', got {combine!r}")

    def decorate(function: PenaltyFunction) -> PenaltyFunction:
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise ValueError(f"regulariser {name!r} is already registered")
        _REGISTRY[name] = RegularizerSpec(
            name, description, function, dict(defaults), needs_kernel, stateful, check, combine, constrain
        )
        return function

    return decorate


def available_regularizers() -> dict[str, str]:
    """Every registered name with its one-line description."""
    return {name: _REGISTRY[name].description for name in sorted(_REGISTRY)}


def regularizer_options(name: str) -> dict[str, Any]:
    """The options a regulariser accepts, with their defaults."""
    return dict(get_spec(name).defaults)


def regularizer_spec(name: str) -> RegularizerSpec:
    """Everything registered about `name`: description, options, needs_kernel, stateful."""
    return get_spec(name)


def get_spec(name: str) -> RegularizerSpec:
    if name not in _REGISTRY:
        raise ValueError(f"unknown regulariser {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def resolve_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with `options`, refusing options the regulariser does not take and values
    outside their range, with the value named."""
    spec = get_spec(name)
    unknown = sorted(set(options) - set(spec.defaults))
    if unknown:
        accepted = ", ".join(sorted(spec.defaults)) or "none"
        raise ValueError(
            f"regulariser {name!r} does not take option(s) {', '.join(unknown)}; accepted: {accepted}"
        )
    resolved = {**spec.defaults, **options}
    if spec.check is not None:
        spec.check(resolved)
    return resolved
