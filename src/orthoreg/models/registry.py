"""The model registry: a new architecture is one file with `@register_model("name")` on its factory
and one import line in orthoreg/models/__init__.py."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a factory `f(num_classes, in_channels=3, **kwargs) -> nn.Module` under `name`."""

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS and _MODELS[name] is not factory:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = factory
        return factory

    return decorate


def available_models() -> list[str]:
    return sorted(_MODELS)


def build_model(name: str, num_classes: int, in_channels: int = 3, **kwargs: object) -> nn.Module:
    """A freshly initialised network with `forward_features` and a final `fc` layer."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
    return _MODELS[name](num_classes=num_classes, in_channels=in_channels, **kwargs)
