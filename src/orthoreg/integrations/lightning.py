"""PyTorch Lightning: `OrthogonalityCallback` regularises a LightningModule without touching its
training_step.

A callback cannot reach the loss, so it adds the penalty's gradient to the weights' `.grad` right
after each backward pass (`on_after_backward`), with the two factors Lightning puts on the loss before
its backward: 1 / accumulate_grad_batches, and the GradScaler's scale under fp16 mixed precision. The
optimiser step, gradient clipping and the scaler's inf check then see exactly the gradients of
`loss + reg(progress)`, micro-batch by micro-batch, as a hand-written loop computes them.

Importing this module imports lightning (the `orthoreg[lightning]` extra); `import orthoreg` does not.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from orthoreg.regularizers import OrthogonalityRegularizer
from orthoreg.regularizers.layers import SELECTION
from orthoreg.regularizers.registry import regularizer_spec, resolve_options
from orthoreg.regularizers.schedule import check_schedule

LOG_KEY = "orthoreg/penalty"


class OrthogonalityCallback(pl.Callback):
    """Adds `lam(progress) * penalty` of `name` to the training loss of a LightningModule, by gradient.

    `module`: the dotted name of the LightningModule's submodule to regularise (default: the whole
    LightningModule). `arguments` are `OrthogonalityRegularizer`'s (schedule, the layer selection, the
    penalty's options); it is built when fit starts (as `self.regularizer`). The name, schedule and
    options are checked now, lam and the selection against the model then. progress = trainer.global_step /
    trainer.estimated_stepping_batches. `calibration`: the inputs a data-driven relaxation
    (dn_relaxed with relaxation='rank') is calibrated on before the first step, through the
    regularised module. The unscaled penalty is logged as `log_key` (None: not logged). SRIP's vectors
    and the calibrated k go into Lightning's checkpoints, so a resumed fit continues exactly.

    Needs automatic optimisation (with manual optimisation, add `reg(progress)` to the loss given to
    manual_backward) and gradients kept in `.grad` (a single device or DDP, where every rank adds the
    same penalty gradient to the averaged data gradient)."""

    def __init__(
        self,
        name: str,
        lam: float,
        *,
        module: str | None = None,
        calibration: torch.Tensor | None = None,
        log_key: str | None = LOG_KEY,
        **arguments: Any,
    ) -> None:
        if regularizer_spec(name).constrain is not None:
            raise ValueError(
                f"{name} is a hard constraint, applied to the model before its optimiser is built: call "
                f"orthoreg.OrthogonalityRegularizer(model, {name!r}, 0.0) in the LightningModule's __init__ "
                "instead of this callback, which adds a penalty's gradient"
            )
        check_schedule(arguments.get("schedule", "constant"))
        resolve_options(name, {k: v for k, v in arguments.items() if k not in ("schedule", *SELECTION)})
        self.name, self.lam, self.module, self.arguments = name, lam, module, arguments
        self.calibration, self.log_key = calibration, log_key
        self.regularizer: OrthogonalityRegularizer | None = None
        self.total_steps: float = math.inf
        # a checkpoint's state that arrived before the regulariser was built (see load_state_dict)
        self.restored: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        """One checkpoint entry per (regulariser, module), so two such callbacks keep their own state."""
        return self._generate_state_key(name=self.name, module=self.module)

    def target(self, pl_module: pl.LightningModule) -> nn.Module:
        if self.module is None:
            return pl_module
        try:
            return pl_module.get_submodule(self.module)
        except AttributeError:
            children = ", ".join(name for name, _ in pl_module.named_children()) or "none"
            raise ValueError(
                f"module {self.module!r} is not a submodule of {type(pl_module).__name__}; its children: "
                f"{children}"
            ) from None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Build the regulariser on the model as fit will train it (after configure_model, on its
        device); a second fit of the same model keeps the one it has, with its state."""
        if not pl_module.automatic_optimization:
            raise ValueError(
                "OrthogonalityCallback adds the penalty's gradient under automatic optimisation; with "
                "automatic_optimization=False add reg(progress) to the loss you pass to manual_backward"
            )
        module = self.target(pl_module)
        if self.regularizer is None or self.regularizer.model is not module:
            self.regularizer = OrthogonalityRegularizer(module, self.name, self.lam, **self.arguments)
        if self.restored is not None:
            self.regularizer.load_state_dict(self.restored)
            self.restored = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Fix the training length, and calibrate here, where every strategy has loaded the checkpoint
        (a resumed fit keeps the k it was calibrated with)."""
        total = trainer.estimated_stepping_batches
        regularizer = self.built()
        if not math.isfinite(total) and regularizer.schedule != "constant":
            raise ValueError(
                f"schedule {regularizer.schedule!r} needs the training length, and this fit has none (max_steps "
                f"and max_epochs are -1): set one, or use schedule='constant'"
            )
        self.total_steps = total
        if regularizer.needs_calibration:
            if self.calibration is None:
                raise ValueError(
                    f"{self.name} with options {regularizer.resolved} is calibrated on data: pass "
                    "OrthogonalityCallback(..., calibration=inputs), a batch of model inputs"
                )
            regularizer.calibrate(self.calibration.to(pl_module.device))

    def progress(self, trainer: pl.Trainer) -> float:
        if not math.isfinite(self.total_steps):  # endless fit, constant schedule: progress is unused
            return 0.0
        # estimated_stepping_batches is an estimate: a dataloader whose length changes can overrun it
        return min(trainer.global_step / self.total_steps, 1.0)

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        regularizer = self.built()
        value = regularizer(self.progress(trainer)) / trainer.accumulate_grad_batches
        scaler = getattr(trainer.precision_plugin, "scaler", None)  # fp16 mixed precision only
        if scaler is not None:
            value = scaler.scale(value)
        add_gradient(value, [layer.weight for layer in regularizer.layers()])
        if self.log_key is not None:
            assert regularizer.last_penalty is not None  # set by the call above
            pl_module.log(self.log_key, regularizer.last_penalty, on_step=True, on_epoch=False)

    def built(self) -> OrthogonalityRegularizer:
        if self.regularizer is None:
            raise RuntimeError("OrthogonalityCallback is used before fit started: it has no regulariser yet")
        return self.regularizer

    def state_dict(self) -> dict[str, Any]:
        return {} if self.regularizer is None else self.regularizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning loads a checkpoint's callback states before on_fit_start on most strategies and
        after it on others (DeepSpeed): keep the state until the regulariser exists."""
        if self.regularizer is None:
            self.restored = state_dict
        else:
            self.regularizer.load_state_dict(state_dict)


def add_gradient(value: torch.Tensor, weights: list[torch.Tensor]) -> None:
    """Add d value / d weight to each trainable weight's `.grad`: what value.backward() would leave there,
    without firing the weights' gradient hooks (DDP's reducer) for a gradient that needs no all-reduce."""
    trainable = [weight for weight in weights if weight.requires_grad]
    if not value.requires_grad or not trainable:  # lambda is 0 now, or every regularised weight is frozen
        return
    for weight, gradient in zip(trainable, torch.autograd.grad(value, trainable)):
        weight.grad = gradient if weight.grad is None else weight.grad.add_(gradient)
