"""How many of a layer's largest filter correlations `dn_relaxed` exempts (k), by a registered rule.

Both rules count exempt pairs the same way, k = P(o) - P(r), P(m) = m(m-1)/2: only r of the layer's
o filters are held to strict orthogonality. They differ in r (docs/method.md, "Relaxation rules"):
- `rho` (the default): r = n for an over-determined layer (o > n), else ceil(rho * o), from the shape;
- `rank`: r = rank*, the effective rank of the layer's input patches (the unfolded input X of the
  convolution, one row per output position) measured on a fixed calibration set at the start of
  training, capped by o and n. The effective rank is the smallest r whose r largest squared singular
  values of X hold ENERGY of their sum.
A grouped convolution is measured per group (each group's filters see their own input channels) and
takes its smallest group rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from orthoreg.registry import Registry
from orthoreg.regularizers.gram import pair_count
from orthoreg.regularizers.layers import Layer, filter_blocks

ENERGY = 0.99
MAX_PATCH_ROWS = 4096  # patch rows sampled per layer (a fixed generator picks them)
PATCH_SEED = 0


@dataclass(frozen=True)
class RelaxationRule:
    name: str
    description: str
    needs_data: bool


RELAXATION_RULES: Registry[RelaxationRule] = Registry("relaxation rule")


def register_relaxation(name: str, description: str, *, needs_data: bool) -> None:
    """A rule for dn_relaxed's r; one that `needs_data` is calibrated on the layer inputs."""
    RELAXATION_RULES.register(name, RelaxationRule(name, description, needs_data), description)


register_relaxation("rho", "r = n when o > n, else ceil(rho * o): from the layer's shape", needs_data=False)
register_relaxation(
    "rank",
    "r = min(rank*(X), o, n): the effective rank of the layer's input patches on calibration data",
    needs_data=True,
)


def relaxation_k(o: int, n: int, rho: float) -> int:
    """The `rho` rule: P(o) - P(n) for an over-determined layer (o > n: at most n filters can be
    orthogonal), P(o) - P(ceil(rho o)) otherwise."""
    if not 0 < rho <= 1:
        raise ValueError(f"rho must be in (0, 1], got {rho!r}")
    if o > n:
        return pair_count(o) - pair_count(n)
    return pair_count(o) - pair_count(math.ceil(rho * o))


def rank_k(o: int, n: int, rank: int) -> int:
    """The `rank` rule: P(o) - P(min(rank, o, n))."""
    if rank < 0:
        raise ValueError(f"a rank is a non-negative integer, got {rank!r}")
    return pair_count(o) - pair_count(min(rank, o, n))


def effective_rank(matrix: torch.Tensor, energy: float = ENERGY) -> int:
    """The smallest r whose r largest squared singular values hold `energy` of their sum (0 for a
    zero matrix), computed in float64."""
    if not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1], got {energy!r}")
    squared = torch.linalg.svdvals(matrix.detach().to(torch.float64)).square()
    total = float(squared.sum())
    if total == 0.0:
        return 0
    held = torch.cumsum(squared, 0) / total
    return int((held < energy - 1e-12).sum()) + 1


def input_patches(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The rows the layer multiplies its filters with, per group: [groups, rows, n]. A convolution's
    input is zero-padded, then each spatial dimension unfolded (dilation and stride included); a
    Linear's rows are its input vectors."""
    if isinstance(module, nn.Linear):
        return inputs.reshape(1, -1, inputs.shape[-1])
    if not isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) or isinstance(module.padding, str):
        raise ValueError(
            f"input patches are defined for Linear and Conv1d/2d/3d with numeric padding, got {module}"
        )
    dims = inputs.dim() - 2
    padding = [amount for p in reversed(module.padding) for amount in (p, p)]
    patches = F.pad(
        inputs, padding, mode="constant" if module.padding_mode == "zeros" else module.padding_mode
    )
    for axis in range(dims):
        size, dilation = module.kernel_size[axis], module.dilation[axis]
        patches = patches.unfold(2 + axis, (size - 1) * dilation + 1, module.stride[axis])
        patches = patches[..., ::dilation]
    # [N, C, *out, *k] -> [g, N * prod(out), (C/g) * prod(k)], columns in the weight's flattening order
    count, channels, groups = patches.shape[0], patches.shape[1], module.groups
    patches = patches.reshape(count, groups, channels // groups, *patches.shape[2:])
    order = [1, 0, *range(3, 3 + dims), 2, *range(3 + dims, 3 + 2 * dims)]
    return patches.permute(order).reshape(groups, -1, (channels // groups) * math.prod(module.kernel_size))


def layer_rank(layer: Layer, inputs: torch.Tensor, generator: torch.Generator) -> int:
    """rank* of one layer: the smallest effective rank over its groups' patch matrices (at most
    MAX_PATCH_ROWS rows each), capped by the filters per group (o) and their length (n)."""
    patches = input_patches(layer.module, inputs)
    rows = patches.shape[1]
    if rows > MAX_PATCH_ROWS:
        chosen = torch.randperm(rows, generator=generator)[:MAX_PATCH_ROWS].to(patches.device)
        patches = patches[:, chosen]
    o, n = filter_blocks(layer.weight, layer.groups).shape[1:]
    return min(min(effective_rank(block) for block in patches), o, n)


def measure_ranks(
    forward: Callable[[torch.Tensor], object], inputs: torch.Tensor, layers: Sequence[Layer]
) -> dict[str, int]:
    """rank* of every layer from one forward pass over `inputs` (no gradients; the caller puts the
    model in the mode it wants), with the row sample drawn from a fixed seed."""
    captured: dict[str, torch.Tensor] = {}

    def capture(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            # returns None: a hook that returned a value would replace the layer's output
            captured.setdefault(name, args[0].detach())

        return hook

    hooks = [layer.module.register_forward_hook(capture(layer.name)) for layer in layers]
    try:
        with torch.no_grad():
            forward(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    generator = torch.Generator().manual_seed(PATCH_SEED)
    return {layer.name: layer_rank(layer, captured[layer.name].float(), generator) for layer in layers}


def needs_data(options: Mapping[str, Any]) -> bool:
    """Whether dn_relaxed's options name a rule measured on data (and no fixed k)."""
    return options["k"] is None and RELAXATION_RULES.get(options["relaxation"]).needs_data


def calibrate_relaxation(
    layers: Sequence[Layer], forward: Callable[[torch.Tensor], object], inputs: torch.Tensor, options: Any
) -> dict[str, dict[str, int]]:
    """dn_relaxed's calibration: each layer's rank* on `inputs` and its k = P(o) - P(rank*)."""
    ranks = measure_ranks(forward, inputs, layers)
    settings = {}
    for layer in layers:
        o, n = filter_blocks(layer.weight, layer.groups).shape[1:]
        settings[layer.name] = {"rank": ranks[layer.name], "k": rank_k(o, n, ranks[layer.name])}
    return settings


def describe_relaxation(
    layers: Sequence[Layer], options: Mapping[str, Any], calibrated: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The rule and each layer's o, n, groups, rank* (None under `rho`), k and pair count, as run.json
    (its `relaxation`) and `orthoreg inspect` show them."""
    described = {}
    for layer in layers:
        o, n = filter_blocks(layer.weight, layer.groups).shape[1:]
        measured = calibrated.get(layer.name, {})
        k = measured.get("k", options["k"])
        if k is None and not RELAXATION_RULES.get(options["relaxation"]).needs_data:
            k = relaxation_k(o, n, options["rho"])
        described[layer.name] = {
            "o": o,
            "n": n,
            "groups": layer.groups,
            "rank": measured.get("rank"),
            "k": k,
            "pairs": pair_count(o),
        }
    return {"rule": options["relaxation"], "rho": options["rho"], "layers": described}
