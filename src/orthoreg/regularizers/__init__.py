"""Orthogonality regularisers. Add one: a file with `@register_regularizer` and one import below."""

from orthoreg.regularizers import baselines, disentangled, ocnn, srip  # noqa: F401  (registers them)
from orthoreg.regularizers.core import model_penalty, penalty, regularized_layers
from orthoreg.regularizers.disentangled import relaxation_k, welch_bound
from orthoreg.regularizers.registry import (
    Group,
    RegularizerSpec,
    available_regularizers,
    register_regularizer,
    regularizer_options,
    regularizer_spec,
)
from orthoreg.regularizers.regularizer import OrthogonalityRegularizer
from orthoreg.regularizers.schedule import SCHEDULES, schedule_multiplier

__all__ = [
    "SCHEDULES",
    "Group",
    "OrthogonalityRegularizer",
    "RegularizerSpec",
    "available_regularizers",
    "model_penalty",
    "penalty",
    "register_regularizer",
    "regularized_layers",
    "regularizer_options",
    "regularizer_spec",
    "relaxation_k",
    "schedule_multiplier",
    "welch_bound",
]
