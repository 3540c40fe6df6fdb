"""Model registry. Add an architecture: one file with `@register_model` and one import line below."""

from orthoreg.models import resnet, wide_resnet  # noqa: F401  (registers the models)
from orthoreg.models.normalize import Normalize
from orthoreg.models.registry import available_models, build_model, model_options, register_model

__all__ = ["Normalize", "available_models", "build_model", "model_options", "register_model"]
