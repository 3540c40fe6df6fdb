"""Orthogonality regularisers. Add one: a file with `@register_regularizer` and one import below."""

from orthoreg.regularizers import (  # noqa: F401  (registers them)
    baselines,
    constraints,
    disentangled,
    group,
    ocnn,
    srip,
)
from orthoreg.regularizers.constraints import constrained_parameters, plain_state_dict
from orthoreg.regularizers.core import model_penalty, penalty
from orthoreg.regularizers.disentangled import welch_bound
from orthoreg.regularizers.layers import SELECTION, Layer, LayerSelection, Selector, regularized_layers
from orthoreg.regularizers.registry import (
    REGULARIZERS,
    Calibration,
    Group,
    RegularizerSpec,
    available_regularizers,
    register_regularizer,
    regularizer_options,
    regularizer_spec,
)
from orthoreg.regularizers.regularizer import OrthogonalityRegularizer
from orthoreg.regularizers.relaxation import (
    RELAXATION_RULES,
    effective_rank,
    rank_k,
    register_relaxation,
    relaxation_k,
)
from orthoreg.regularizers.schedule import SCHEDULES, schedule_multiplier

__all__ = [
    "REGULARIZERS",
    "RELAXATION_RULES",
    "SCHEDULES",
    "SELECTION",
    "Calibration",
    "Group",
    "Layer",
    "LayerSelection",
    "OrthogonalityRegularizer",
    "RegularizerSpec",
    "Selector",
    "available_regularizers",
    "constrained_parameters",
    "effective_rank",
    "model_penalty",
    "penalty",
    "plain_state_dict",
    "rank_k",
    "register_regularizer",
    "register_relaxation",
    "regularized_layers",
    "regularizer_options",
    "regularizer_spec",
    "relaxation_k",
    "schedule_multiplier",
    "welch_bound",
]
