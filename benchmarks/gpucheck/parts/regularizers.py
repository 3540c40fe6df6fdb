"""The regularizers part: what every registered regulariser costs, on the models the penalty-overhead
targets name.

First the engine's training step with each regulariser over the step with `none`, all interleaved;
each step is its own Trainer's, built as `orthoreg train` builds it, so a hard constraint's cost (the
parametrisation of the kernels, applied when its OrthogonalityRegularizer is built) is inside its
step. Then, for each penalty, value + backward of the batched `model_penalty` against a per-layer loop
of `penalty` (fp32, as the engine runs penalties); a hard constraint has no penalty to time.
"""

from __future__ import annotations

import math
from typing import Any

from regularizer_cost import is_constraint, penalty_actions
from timing import best_seconds

from gpucheck.harness import Context, Deadline, part, release_memory
from gpucheck.printing import regularizer_lines
from gpucheck.rounding import rounded
from gpucheck.steps import engine_trainer, first_batch, step_seconds
from gpucheck.targets import PENALTY_OVERHEAD
from orthoreg.models import build_model
from orthoreg.regularizers import available_regularizers


def regularizer_steps(context: Context, model: str, costs: dict[str, dict], deadline: Deadline) -> None:
    """Milliseconds of the engine's step with each regulariser on one model, and the ratio to `none`,
    into `costs[model]` after each interleaved round (the best so far), so a cut keeps the rounds before
    it."""
    names = ["none", *(name for name in available_regularizers() if name != "none")]
    trainers = {}
    for name in names:
        deadline.check(f"building the {model} step with {name}")
        trainers[name] = engine_trainer(context, model, regularizer=name)
    steps = {name: trainer.train_step for name, trainer in trainers.items()}
    batch = first_batch(trainers["none"])
    best = dict.fromkeys(names, math.inf)
    for round_ in range(context.plan.rounds):
        deadline.check(f"round {round_ + 1} of the {model} regulariser steps")
        warmup = context.plan.warmup if round_ == 0 else 0
        seconds = step_seconds(context, steps, batch, 1, warmup)
        best = {name: min(best[name], seconds[name]) for name in names}
        costs[model] = {
            "step_ms": {name: rounded(value * 1e3) for name, value in best.items()},
            "step_ratio": {name: rounded(best[name] / best["none"]) for name in names[1:]},
        }


def penalty_costs(context: Context, model: str, costs: dict[str, Any], deadline: Deadline) -> None:
    """Per penalty, value + backward batched and looped into `costs`, kept as each one finishes."""
    net = build_model(model, num_classes=10).to(context.device)
    costs["batched_ms"], costs["loop_ms"], costs["loop_over_batched"] = {}, {}, {}
    for name in available_regularizers():
        if name == "none" or is_constraint(name):
            continue
        deadline.check(f"the {model} {name} penalty timing")
        actions = penalty_actions(net, name)
        best = best_seconds(actions, context.device, context.plan.rounds, context.plan.warmup)
        costs["batched_ms"][name] = rounded(best["batched"] * 1e3)
        costs["loop_ms"][name] = rounded(best["loop"] * 1e3)
        costs["loop_over_batched"][name] = rounded(best["loop"] / best["batched"])


@part(
    "regularizers",
    "every registered regulariser's step over the step with none; each penalty batched against a loop",
    weight=60,
    quick_weight=5,
    lines=regularizer_lines,
)
def regularizers(context: Context, record: dict, deadline: Deadline) -> None:
    models = list(dict.fromkeys(context.plan.stand_in[target_model] for target_model in PENALTY_OVERHEAD))
    record["models"] = {}
    for model in models:
        regularizer_steps(context, model, record["models"], deadline)
        release_memory(context.device)
    for model in models:
        penalty_costs(context, model, record["models"][model], deadline)
        release_memory(context.device)
