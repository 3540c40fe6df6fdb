"""The training-loop object: a model's penalty scaled by the scheduled lambda, with SRIP's
power-iteration vectors kept between steps (and in checkpoints, so a resumed run is exact)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from orthoreg.regularizers.core import model_penalty
from orthoreg.regularizers.registry import get_spec, resolve_options
from orthoreg.regularizers.schedule import check_schedule, schedule_multiplier


class OrthogonalityRegularizer:
    """`reg(progress)` -> lambda(progress) * model_penalty(name, model, **options).

    `progress` is the fraction of training done (step / total steps). Where the scheduled lambda is
    0, or for `none`, nothing is computed. `last_penalty` holds the unscaled penalty of the last call
    as a detached tensor (no host sync)."""

    def __init__(
        self,
        model: nn.Module,
        name: str,
        lam: float,
        *,
        schedule: str = "constant",
        include_linear: bool = False,
        skip_stem: bool = False,
        **options: Any,
    ) -> None:
        get_spec(name)
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
            raise ValueError(f"lambda must be a finite number >= 0, got {lam!r}")
        check_schedule(schedule)
        resolve_options(name, options)
        self.model, self.name, self.lam, self.schedule = model, name, float(lam), schedule
        self.include_linear, self.skip_stem, self.options = include_linear, skip_stem, options
        self.state: dict[str, Any] = {}
        self.last_penalty: torch.Tensor | None = None

    def lambda_at(self, progress: float) -> float:
        return self.lam * schedule_multiplier(self.schedule, progress)

    def __call__(self, progress: float = 0.0) -> torch.Tensor:
        lam = self.lambda_at(progress)
        device = next(self.model.parameters()).device
        if lam == 0.0 or self.name == "none":
            self.last_penalty = torch.zeros((), device=device)
            return self.last_penalty
        value = model_penalty(
            self.name,
            self.model,
            include_linear=self.include_linear,
            skip_stem=self.skip_stem,
            state=self.state,
            check_finite=False,
            **self.options,
        )
        self.last_penalty = value.detach()
        return lam * value

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {group: dict(values) for group, values in self.state.items()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        self.state = {group: dict(values) for group, values in state.items()}
