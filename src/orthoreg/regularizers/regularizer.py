"""The training-loop object: a model's penalty scaled by the scheduled lambda, with what the penalty
keeps between steps (SRIP's power-iteration vectors, settings calibrated on data) held here and in
checkpoints, so a resumed run is exact. It names no regulariser: what is particular to one (a hard
constraint, a calibration, how it describes its per-layer settings) is in its registered spec."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from orthoreg.regularizers.core import model_penalty, selected_groups
from orthoreg.regularizers.layers import Layer, split_selection
from orthoreg.regularizers.registry import regularizer_spec, resolve_options
from orthoreg.regularizers.schedule import check_schedule, schedule_multiplier


class OrthogonalityRegularizer:
    """`reg(progress)` -> lambda(progress) * model_penalty(name, model, **options).

    `progress` is the fraction of training done (step / total steps). Where the scheduled lambda is
    0, for `none` and for a hard constraint, nothing is computed. `last_penalty` holds the unscaled
    penalty of the last call as a detached tensor (no host sync). `settings` are the penalty's
    options and the layer-selection keywords (`LayerSelection`: include_linear, skip_stem,
    skip_classifier, select, exclude). A penalty calibrated on data (dn_relaxed under the `rank`
    rule) must be calibrated once, before training, with `calibrate(inputs)`. A hard constraint
    (`orthogonal`, `spectral`) parametrises the chosen layers here, so build the optimiser after
    this object."""

    def __init__(
        self, model: nn.Module, name: str, lam: float, *, schedule: str = "constant", **settings: Any
    ) -> None:
        self.spec = regularizer_spec(name)
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
            raise ValueError(f"lambda must be a finite number >= 0, got {lam!r}")
        check_schedule(schedule)
        chosen, self.options = split_selection(settings)
        self.selection = self.spec.selection(chosen)
        self.resolved = resolve_options(name, self.options)
        self.model, self.name, self.lam, self.schedule = model, name, float(lam), schedule
        self.state: dict[str, Any] = {}
        self.calibrated: dict[str, dict[str, Any]] = {}
        self.last_penalty: torch.Tensor | None = None
        if name != "none":  # refuse an empty selection or a layer the penalty is not defined for, now
            selected_groups(name, model, self.selection)
        # found once, as model_penalty's groups are: a callback reading them every step walks no modules
        self._layers = self.selection.layers(model)
        self.constrained = self.spec.constrain is not None
        if self.spec.constrain is not None:
            for layer in self._layers:
                self.spec.constrain(layer, **self.resolved)

    def layers(self) -> list[Layer]:
        """The regularised layers, in module order."""
        return list(self._layers)

    @property
    def needs_calibration(self) -> bool:
        calibration = self.spec.calibration
        return calibration is not None and calibration.needed(self.resolved) and not self.calibrated

    def calibrate(
        self, inputs: torch.Tensor, forward: Callable[[torch.Tensor], object] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Measure each layer's settings on `inputs` (one pass through `forward`, default the
        regularised model, in eval mode and without gradients) and keep them for every later call;
        returns them by layer name (dn_relaxed under `rank`: each layer's rank* and k)."""
        calibration = self.spec.calibration
        if calibration is None or not calibration.needed(self.resolved):
            raise ValueError(f"{self.name} with options {self.resolved} takes no calibration from data")
        was_training = self.model.training
        self.model.eval()
        try:
            self.calibrated = calibration.measure(self.layers(), forward or self.model, inputs, self.resolved)
        finally:
            self.model.train(was_training)
        return {layer: dict(settings) for layer, settings in self.calibrated.items()}

    def layer_options(self) -> dict[str, dict[str, Any]]:
        """The calibrated settings the penalty takes as options, by layer (dn_relaxed's k)."""
        return {
            layer: {key: value for key, value in settings.items() if key in self.spec.defaults}
            for layer, settings in self.calibrated.items()
        }

    def layer_settings(self) -> dict[str, Any] | None:
        """What the regulariser describes of its per-layer settings (dn_relaxed: the rule and each
        layer's o, n, rank*, k), as run.json (`relaxation`) and `orthoreg inspect` show it; None
        for a regulariser that describes none."""
        if self.spec.describe is None:
            return None
        return self.spec.describe(self.layers(), self.resolved, self.calibrated)

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
                f"{self.name} with options {self.resolved} is not calibrated yet: call calibrate(inputs) first"
            )
        value = model_penalty(
            self.name,
            self.model,
            selection=self.selection,
            layer_options=self.layer_options(),
            state=self.state,
            check_finite=False,
            **self.options,
        )
        self.last_penalty = value.detach()
        return lam * value

    def state_dict(self) -> dict[str, Any]:
        """SRIP's vectors per layer group and the settings calibrated on data, per layer."""
        return {
            "power_iteration": {group: dict(values) for group, values in self.state.items()},
            "calibrated": {layer: dict(settings) for layer, settings in self.calibrated.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = {group: dict(values) for group, values in state["power_iteration"].items()}
        self.calibrated = {layer: dict(settings) for layer, settings in state["calibrated"].items()}
