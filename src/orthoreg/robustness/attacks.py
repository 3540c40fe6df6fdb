"""L-inf adversarial attacks in [0, 1] pixel space, in a registry: FGSM and PGD with a random start.

The model takes pixel-space images (its normalisation is inside), so the eps ball and the [0, 1] box
are both enforced on the images themselves. The model must be in eval mode: BatchNorm in training mode
would both change the function under attack and update its running statistics.

An attack is registered once with `register_attack`: how it crafts examples, the label tables and
figures print, and which (eps, steps) it runs at for given settings; the robustness suite, the
report's validation and its tables and figures all read this registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from orthoreg.registry import Registry


@dataclass(frozen=True)
class AttackSpec:
    """One attack setting of robustness.json: the attack, its radius, steps, step size, random start."""

    attack: str
    eps: float
    steps: int
    step_size: float
    random_start: bool

    def __post_init__(self) -> None:
        get_attack(self.attack)

    @property
    def label(self) -> str:
        return get_attack(self.attack).label(self.steps)


# craft(model, x, y, spec, generator) -> adversarial x
Craft = Callable[[nn.Module, torch.Tensor, torch.Tensor, AttackSpec, "torch.Generator | None"], torch.Tensor]


@dataclass(frozen=True)
class Attack:
    """A registered attack: `craft` makes the examples; `sweep(settings, eps)` gives its specs at one
    radius of the eps sweep, `reference(settings)` the extra specs it runs at the reference radius
    only; `label(steps)` is its name in tables and figures."""

    name: str
    craft: Craft
    label: Callable[[int], str]
    sweep: Callable[[Any, float], list[AttackSpec]]
    reference: Callable[[Any], list[AttackSpec]]


ATTACKS: Registry[Attack] = Registry("attack")


def register_attack(
    name: str,
    *,
    label: Callable[[int], str],
    sweep: Callable[[Any, float], list[AttackSpec]],
    reference: Callable[[Any], list[AttackSpec]] = lambda settings: [],
) -> Callable[[Craft], Craft]:
    def decorate(craft: Craft) -> Craft:
        ATTACKS.register(name, Attack(name, craft, label, sweep, reference))
        return craft

    return decorate


def available_attacks() -> list[str]:
    """Registered attack names, in registration order (the order of tables and figures)."""
    return [attack.name for attack in ATTACKS.in_order()]


def get_attack(name: str) -> Attack:
    return ATTACKS.get(name)


def check_eps(eps: float) -> None:
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0 (pixel units in [0, 1]), got {eps!r}")


def _check_eval(model: nn.Module) -> None:
    if model.training:
        raise ValueError("the model is in training mode; call model.eval() before attacking it")


def _input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at x and the gradient of the summed cross-entropy with respect to x."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x)
    return logits.detach(), grad


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of size eps (Goodfellow et al., 2015), clipped to [0, 1]."""
    check_eps(eps)
    _check_eval(model)
    _, grad = _input_gradient(model, x, y)
    return (x + eps * grad.sign()).clamp(0.0, 1.0).detach()


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    step_size: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient ascent on the cross-entropy in the L-inf eps ball around x intersected with
    [0, 1] (Madry et al., 2018), from a uniform random start in the ball when `random_start`.

    An example counts as broken if any iterate fooled the model: its first fooling iterate is returned,
    the last iterate otherwise. The start noise comes from `generator` (on its own device), so the
    attack is deterministic for a seed on CPU and GPU alike.
    """
    check_eps(eps)
    _check_eval(model)
    if steps < 1:
        raise ValueError(f"PGD needs steps >= 1, got {steps}")
    if not step_size > 0:
        raise ValueError(f"PGD needs step_size > 0, got {step_size}")
    x = x.detach()
    lower, upper = (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)
    adversarial = x.clone()
    if random_start:
        device = generator.device if generator is not None else x.device
        noise = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
        adversarial = torch.clamp(x + (2 * noise - 1) * eps, lower, upper)
    best = adversarial.clone()
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(steps):
        logits, grad = _input_gradient(model, adversarial, y)
        newly_fooled = (logits.argmax(1) != y) & ~fooled
        best[newly_fooled] = adversarial[newly_fooled]
        fooled |= newly_fooled
        adversarial = torch.clamp(adversarial + step_size * grad.sign(), lower, upper)
    best[~fooled] = adversarial[~fooled]
    return best


@register_attack(
    "fgsm", label=lambda steps: "FGSM", sweep=lambda settings, eps: [AttackSpec("fgsm", eps, 1, eps, False)]
)
def craft_fgsm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, generator: torch.Generator | None
) -> torch.Tensor:
    return fgsm(model, x, y, spec.eps)


def pgd_sweep(settings: Any, eps: float) -> list[AttackSpec]:
    """The shortest PGD at every radius of the sweep."""
    return [AttackSpec("pgd", eps, min(settings.pgd_steps), settings.step_size, True)]


def pgd_reference(settings: Any) -> list[AttackSpec]:
    """The longer PGDs at the reference radius only (the table's radius)."""
    longer = sorted(set(settings.pgd_steps) - {min(settings.pgd_steps)})
    return [AttackSpec("pgd", settings.reference_eps, steps, settings.step_size, True) for steps in longer]


@register_attack("pgd", label=lambda steps: f"PGD-{int(steps)}", sweep=pgd_sweep, reference=pgd_reference)
def craft_pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, generator: torch.Generator | None
) -> torch.Tensor:
    return pgd(
        model,
        x,
        y,
        spec.eps,
        step_size=spec.step_size,
        steps=spec.steps,
        random_start=spec.random_start,
        generator=generator,
    )
