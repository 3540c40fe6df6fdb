"""The model registry: a new architecture is one file with `@register_model("name")` on its factory
and one import line in orthoreg/models/__init__.py."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from orthoreg.registry import Registry

Factory = Callable[..., nn.Module]
MODELS: Registry[Factory] = Registry("model")


def register_model(name: str, description: str = "") -> Callable[[Factory], Factory]:
    """Register a factory `f(num_classes, in_channels=3, **kwargs) -> nn.Module` under `name`."""
    return MODELS.decorator(name, description)


def available_models() -> list[str]:
    return MODELS.names()


def _check_options(name: str, factory: Callable[..., nn.Module], options: dict[str, object]) -> None:
    """Unknown keyword options are a ValueError naming the accepted ones, not a TypeError deep inside."""
    parameters = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [p for p in parameters if p not in ("num_classes", "in_channels")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"model {name!r} does not accept option(s) {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}"
        )


def model_options(name: str, options: dict[str, object] | None = None) -> dict[str, object]:
    """Every keyword option of a registered model with its value for this build: the factory's
    defaults overlaid with `options` (what run.json records, so a run says which variant it is)."""
    factory = MODELS.get(name)
    _check_options(name, factory, dict(options or {}))
    defaults = {
        key: parameter.default
        for key, parameter in inspect.signature(factory).parameters.items()
        if key not in ("num_classes", "in_channels") and parameter.default is not inspect.Parameter.empty
    }
    return {**defaults, **dict(options or {})}


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def build_model(name: str, num_classes: int, in_channels: int = 3, **kwargs: object) -> nn.Module:
    """A freshly initialised network with `forward_features` and a final `fc` layer."""
    factory = MODELS.get(name)
    if not _is_positive_int(num_classes):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not _is_positive_int(in_channels):
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
    _check_options(name, factory, kwargs)
    return factory(num_classes=num_classes, in_channels=in_channels, **kwargs)
