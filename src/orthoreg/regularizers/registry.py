"""The regulariser registry. A regulariser is a function on a batch of same-shape layers (a `Group`)
returning one penalty per layer; a new one is one file with `@register_regularizer` and one import
line in orthoreg/regularizers/__init__.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from orthoreg.registry import Registry
from orthoreg.regularizers.layers import Layer, LayerSelection


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


# layers, forward, inputs, options -> {layer name: settings}
Measure = Callable[..., dict[str, dict[str, Any]]]
# layers, options, calibrated settings -> what run.json and `orthoreg inspect` show of each layer
Describe = Callable[
    [Sequence[Layer], dict[str, Any], Mapping[str, Mapping[str, Any]]], "dict[str, Any] | None"
]


@dataclass(frozen=True)
class Calibration:
    """How a penalty fixes per-layer settings from data, once, before training: `needed(options)`
    says whether these options need it (dn_relaxed under the `rank` rule); `measure(layers, forward,
    inputs, options)` returns each layer's settings. Those the penalty takes as options (its `k`) are
    passed to it layer by layer; the others (the measured rank) are only recorded."""

    needed: Callable[[dict[str, Any]], bool]
    measure: Measure


@dataclass(frozen=True)
class RegularizerSpec:
    """A registered penalty: `function(group, **options) -> Tensor[g]`, the options it accepts with
    their defaults, the function that checks their values, whether it reads `group.kernels` (the 4-D
    weights and stride, not just the flattened filters), whether it keeps `group.state` between
    calls, how a grouped layer's block values combine into the layer's ("sum" for Frobenius-type
    penalties, "max" for maximum-type ones such as coherence and spectral norm), and what is
    particular to it: `constrain(layer, **options)` for a hard constraint, which parametrises each
    layer once (its penalty is 0); `calibration` for settings measured on data; `describe` for the
    per-layer settings a run records; `layers`, the layers it regularises when the caller chooses
    none (a reference preset's, such as the released OCNN code's)."""

    name: str
    description: str
    function: PenaltyFunction
    defaults: dict[str, Any] = field(default_factory=dict)
    needs_kernel: bool = False
    stateful: bool = False
    check: OptionCheck | None = None
    combine: str = "sum"
    constrain: Constrain | None = None
    calibration: Calibration | None = None
    describe: Describe | None = None
    layers: LayerSelection | None = None

    def selection(self, chosen: LayerSelection) -> LayerSelection:
        """The caller's choice of layers, or this penalty's own where the caller left the default."""
        return self.layers if self.layers is not None and chosen == LayerSelection() else chosen


REGULARIZERS: Registry[RegularizerSpec] = Registry("regulariser")


def register_regularizer(
    name: str,
    description: str,
    *,
    needs_kernel: bool = False,
    stateful: bool = False,
    check: OptionCheck | None = None,
    combine: str = "sum",
    constrain: Constrain | None = None,
    calibration: Calibration | None = None,
    describe: Describe | None = None,
    layers: LayerSelection | None = None,
    **defaults: Any,
) -> Callable[[PenaltyFunction], PenaltyFunction]:
    """Register `function(group, **options) -> Tensor[g]`; `defaults` names every option it accepts
    and `check(options)` raises ValueError, naming the option and its value, for values it refuses.
    `needs_kernel`: it reads `group.kernels`/`group.stride`; `stateful`: it keeps `group.state`
    (otherwise `group.state` is always None); `combine`: "sum" or "max" over a grouped layer's blocks;
    `constrain`, `calibration`, `describe`, `layers`: see `RegularizerSpec`."""
    if combine not in ("sum", "max"):
        raise ValueError(f"combine must be 'sum' or 'max', got {combine!r}")

    def decorate(function: PenaltyFunction) -> PenaltyFunction:
        spec = RegularizerSpec(
            name,
            description,
            function,
            dict(defaults),
            needs_kernel,
            stateful,
            check,
            combine,
            constrain,
            calibration,
            describe,
            layers,
        )
        REGULARIZERS.register(name, spec, description)
        return function

    return decorate


def available_regularizers() -> dict[str, str]:
    """Every registered name with its one-line description."""
    return REGULARIZERS.describe()


def regularizer_spec(name: str) -> RegularizerSpec:
    """Everything registered about `name`; an unknown name is refused with the available ones."""
    return REGULARIZERS.get(name)


def regularizer_options(name: str) -> dict[str, Any]:
    """The options a regulariser accepts, with their defaults."""
    return dict(regularizer_spec(name).defaults)


def resolve_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with `options`, refusing options the regulariser does not take and values
    outside their range, with the value named."""
    spec = regularizer_spec(name)
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
