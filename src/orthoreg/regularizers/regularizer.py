"""The training-loop object: a model's penalty scaled by the scheduled lambda, with SRIP's
power-iteration vectors and dn_relaxed's calibrated per-layer k kept between steps (and in
checkpoints, so a resumed run is exact)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from orthoreg.regularizers.core import model_penalty, selected_groups
from orthoreg.regularizers.gram import pair_count
from orthoreg.regularizers.layers import Layer, Selector, filter_blocks, regularized_layers
from orthoreg.regularizers.registry import get_spec, resolve_options
from orthoreg.regularizers.relaxation import RULES, measure_ranks, rank_k, relaxation_k
from orthoreg.regularizers.schedule import check_schedule, schedule_multiplier

RELAXED = "dn_relaxed"


class OrthogonalityRegularizer:
    """`reg(progress)` -> lambda(progress) * model_penalty(name, model, **options).

    `progress` is the fraction of training done (step / total steps). Where the scheduled lambda is
    0, or for `none`, nothing is computed. `last_penalty` holds the unscaled penalty of the last call
    as a detached tensor (no host sync). Layers are chosen as `regularized_layers` does (include_linear,
    skip_stem, skip_classifier, select, exclude). A `dn_relaxed` whose relaxation rule needs data
    (`rank`) must be calibrated once, before training, with `calibrate(inputs)`. A hard constraint
    (`orthogonal`, `spectral`) parametrises the chosen layers here, so build the optimiser after
    this object; its penalty is 0."""

    def __init__(
        self,
        model: nn.Module,
        name: str,
        lam: float,
        *,
        schedule: str = "constant",
        include_linear: bool = False,
        skip_stem: bool = False,
        skip_classifier: bool = False,
        select: Selector | None = None,
        exclude: Selector | None = None,
        **options: Any,
    ) -> None:
        spec = get_spec(name)
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
            raise ValueError(f"lambda must be a finite number >= 0, got {lam!r}")
        check_schedule(schedule)
        self.resolved = resolve_options(name, options)
        self.model, self.name, self.lam, self.schedule = model, name, float(lam), schedule
        self.selection: dict[str, Any] = {
            "include_linear": include_linear,
            "skip_stem": skip_stem,
            "skip_classifier": skip_classifier,
            "select": select,
            "exclude": exclude,
        }
        self.options = options
        self.state: dict[str, Any] = {}
        self.layer_k: dict[str, int] = {}
        self.layer_rank: dict[str, int] = {}
        self.last_penalty: torch.Tensor | None = None
        if name != "none":  # refuse an empty selection or a layer the penalty is not defined for, now
            selected_groups(name, model, self.selection)
        # found once, as model_penalty's groups are: a callback reading them every step walks no modules
        self._layers = regularized_layers(model, **self.selection)
        self.constrained = spec.constrain is not None
        if spec.constrain is not None:
            for layer in self._layers:
                spec.constrain(layer, **self.resolved)

    def layers(self) -> list[Layer]:
        """The regularised layers, in module order."""
        return list(self._layers)

    @property
    def needs_calibration(self) -> bool:
        return self.name == RELAXED and RULES[self.resolved["relaxation"]].needs_data and not self.layer_k

    def calibrate(
        self, inputs: torch.Tensor, forward: Callable[[torch.Tensor], object] | None = None
    ) -> dict[str, int]:
        """Measure each layer's rank* on `inputs` (one forward pass through `forward`, default the
        regularised model, in eval mode and without gradients) and fix each layer's k = P(o) - P(rank*).
        Only `dn_relaxed` with relaxation='rank' uses it; returns the layers' k."""
        if not (self.name == RELAXED and RULES[self.resolved["relaxation"]].needs_data):
            raise ValueError(
                f"only {RELAXED} with a data-driven relaxation (rank) is calibrated; this is {self.name!r}"
                f" with {self.resolved.get('relaxation')!r}"
            )
        was_training = self.model.training
        self.model.eval()
        try:
            ranks = measure_ranks(forward or self.model, inputs, self.layers())
        finally:
            self.model.train(was_training)
        self.layer_rank = ranks
        self.layer_k = {}
        for layer in self.layers():
            o, n = filter_blocks(layer.weight, layer.groups).shape[1:]
            self.layer_k[layer.name] = rank_k(o, n, ranks[layer.name])
        return dict(self.layer_k)

    def relaxation(self) -> dict[str, Any] | None:
        """For dn_relaxed: the rule and each layer's o, n, groups, rank* (None for `rho`) and k, as run.json
        and `orthoreg inspect` show them; None for the other regularisers."""
        if self.name != RELAXED:
            return None
        rule = self.resolved["relaxation"]
        layers = {}
        for layer in self.layers():
            o, n = filter_blocks(layer.weight, layer.groups).shape[1:]
            k = self.layer_k.get(layer.name)
            if k is None and not RULES[rule].needs_data:
                k = (
                    relaxation_k(o, n, self.resolved["rho"])
                    if self.resolved["k"] is None
                    else self.resolved["k"]
                )
            layers[layer.name] = {
                "o": o,
                "n": n,
                "groups": layer.groups,
                "rank": self.layer_rank.get(layer.name),
                "k": k,
                "pairs": pair_count(o),
            }
        return {"rule": rule, "rho": self.resolved["rho"], "layers": layers}

    def lambda_at(self, progress: float) -> float:
        return self.lam * schedule_multiplier(self.schedule, progress)

    def __call__(self, progress: float = 0.0) -> torch.Tensor:
        lam = self.lambda_at(progress)
        device = next(self.model.parameters()).device
        if lam == 0.0 or self.name == "none" or self.constrained:
            self.last_penalty = torch.zeros((), device=device)
            return self.last_penalty
        if self.needs_calibration:
            raise ValueError(
                "dn_relaxed with relaxation='rank' is not calibrated yet: call calibrate(inputs) first"
            )
        value = model_penalty(
            self.name,
            self.model,
            **self.selection,
            layer_options={name: {"k": k} for name, k in self.layer_k.items()},
            state=self.state,
            check_finite=False,
            **self.options,
        )
        self.last_penalty = value.detach()
        return lam * value

    def state_dict(self) -> dict[str, Any]:
        """SRIP's vectors per layer group and the calibrated per-layer rank* and k."""
        return {
            "power_iteration": {group: dict(values) for group, values in self.state.items()},
            "layer_rank": dict(self.layer_rank),
            "layer_k": dict(self.layer_k),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = {group: dict(values) for group, values in state["power_iteration"].items()}
        self.layer_rank = dict(state["layer_rank"])
        self.layer_k = dict(state["layer_k"])
