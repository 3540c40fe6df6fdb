"""The disentangled norm of the paper (docs/paper.md, docs/method.md): filter norms and correlations are
penalised separately, D(W) = sum_j (r_j^2 - 1)^2 and R(W) = sum_{j != l} c_jl^2 on cosines, so the
optimiser cannot lower the correlation term by shrinking norms.

dn_strict = D + gamma R; dn_relaxed exempts the k largest |c_jl| (recomputed every call), k from a
relaxation rule (orthoreg.regularizers.relaxation); dn_welch only penalises coherence above the Welch
bound.

All three are functions of G = W W^T. With s_j = 1 / max(r_j, eps) and C = G * s s^T, a correlation
term R = sum_{j != l} f(c_jl) has dR/dG_jl = f'(c_jl) s_j s_l off the diagonal and
dR/dG_jj = -s_j^2 sum_{l != j} f'(c_jl) c_jl on it (zero where r_j <= eps, the clamp's flat side);
`gram_penalty` turns that into the weight gradient with one matmul.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from orthoreg.regularizers.gram import gram_penalty, inverse_norms, pair_count
from orthoreg.regularizers.registry import Calibration, Group, register_regularizer
from orthoreg.regularizers.relaxation import (
    RELAXATION_RULES,
    calibrate_relaxation,
    describe_relaxation,
    needs_data,
    relaxation_k,
)

# cosines C [g, o, o] -> (R [g], dR/dC [g, o, o] with a zero diagonal)
Correlation = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def welch_bound(o: int, n: int) -> float:
    """The least mutual coherence o unit vectors in R^n can have: sqrt((o-n)/(n(o-1))) for o > n."""
    return math.sqrt((o - n) / (n * (o - 1))) if o > n else 0.0


def off_diagonal_mask(o: int, like: torch.Tensor) -> torch.Tensor:
    """1 off the diagonal, 0 on it: [o, o]."""
    return 1.0 - torch.eye(o, dtype=like.dtype, device=like.device)


def disentangled(gamma: float, eps: float, correlation: Correlation) -> Callable:
    """D + gamma R as a function of G = W W^T, with its closed-form gradient."""

    def value_and_gradient(filter_gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        squared_norms = filter_gram.diagonal(dim1=1, dim2=2)
        scale, unclamped = inverse_norms(filter_gram, eps)
        outer = scale.unsqueeze(2) * scale.unsqueeze(1)
        cosine = filter_gram * outer
        correlations, d_cosine = correlation(cosine)
        values = (squared_norms - 1.0).square().sum(dim=1) + gamma * correlations
        gradient = (gamma * d_cosine) * outer
        through_norms = torch.where(unclamped, scale.square() * (d_cosine * cosine).sum(dim=2), 0.0)
        gradient.diagonal(dim1=1, dim2=2).copy_(2.0 * (squared_norms - 1.0) - gamma * through_norms)
        return values, gradient

    return value_and_gradient


def squared_correlations(cosine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """R = sum_{j != l} c_jl^2."""
    off = cosine * off_diagonal_mask(cosine.shape[1], cosine)
    return off.square().sum(dim=(1, 2)), 2.0 * off


def kept_correlations(k: int) -> Correlation:
    """R_k = 2 * sum of c_jl^2 over the pairs j > l outside the k largest |c_jl|: the penalised pairs
    are marked in a symmetric 0/1 mask, so R_k is a sum of squares, never negative by round-off."""

    def correlation(cosine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count, o = cosine.shape[0], cosine.shape[1]
        rows, cols = torch.tril_indices(o, o, offset=-1, device=cosine.device)
        magnitudes = cosine[:, rows, cols].abs()
        remaining = pair_count(o) - k
        if remaining <= k:  # mark the few kept pairs (the smallest |c|)
            kept = magnitudes.new_zeros(magnitudes.shape)
            if remaining > 0:
                smallest = magnitudes.topk(remaining, dim=1, largest=False, sorted=False).indices
                kept.scatter_(1, smallest, 1.0)
        else:  # unmark the few exempt pairs (the largest |c|)
            largest = magnitudes.topk(k, dim=1, sorted=False).indices
            kept = magnitudes.new_ones(magnitudes.shape).scatter_(1, largest, 0.0)
        mask = cosine.new_zeros(count, o, o)
        mask[:, rows, cols] = kept
        mask = mask + mask.transpose(1, 2)
        masked = cosine * mask
        return (masked * cosine).sum(dim=(1, 2)), 2.0 * masked

    return correlation


def excess_correlations(bound: float) -> Correlation:
    """R = sum_{j != l} relu(|c_jl| - bound)^2."""

    def correlation(cosine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        excess = torch.relu(cosine.abs() - bound) * off_diagonal_mask(cosine.shape[1], cosine)
        return excess.square().sum(dim=(1, 2)), 2.0 * excess * cosine.sign()

    return correlation


def check_options(options: dict) -> None:
    """gamma: a finite number >= 0; eps: > 0; dn_relaxed's rho: in (0, 1], relaxation: a registered
    rule, k: None (from the rule) or a count of pairs >= 0."""
    if not 0 <= options["gamma"] < math.inf:
        raise ValueError(f"gamma must be a finite number >= 0, got {options['gamma']!r}")
    if not options["eps"] > 0:
        raise ValueError(f"eps must be > 0, got {options['eps']!r}")
    if "rho" in options and not 0 < options["rho"] <= 1:
        raise ValueError(f"rho must be in (0, 1], got {options['rho']!r}")
    if "relaxation" in options:
        RELAXATION_RULES.get(options["relaxation"])
    k = options.get("k")
    if k is not None and not (isinstance(k, int) and not isinstance(k, bool) and k >= 0):
        raise ValueError(f"k must be None or a non-negative integer, got {k!r}")


@register_regularizer(
    "dn_strict",
    "disentangled norm D + gamma R (strict orthogonality)",
    check=check_options,
    gamma=1.0,
    eps=1e-8,
)
def dn_strict(group: Group, gamma: float, eps: float) -> torch.Tensor:
    return gram_penalty(group.matrices, disentangled(gamma, eps, squared_correlations), filter_side=True)


@register_regularizer(
    "dn_relaxed",
    "disentangled norm with the k largest correlations exempt (relaxed orthogonality)",
    check=check_options,
    calibration=Calibration(needed=needs_data, measure=calibrate_relaxation),
    describe=describe_relaxation,
    gamma=1.0,
    rho=0.5,
    eps=1e-8,
    relaxation="rho",
    k=None,
)
def dn_relaxed(
    group: Group, gamma: float, rho: float, eps: float, relaxation: str, k: int | None
) -> torch.Tensor:
    """k from the `rho` rule, or given per layer (the `rank` rule's calibrated k; see relaxation.py)."""
    o, n = group.shape
    if k is None:
        if RELAXATION_RULES.get(relaxation).needs_data:
            raise ValueError(
                f"relaxation {relaxation!r} needs each layer's k from calibration data: call "
                "OrthogonalityRegularizer(...).calibrate(inputs) first (orthoreg train does)"
            )
        k = relaxation_k(o, n, rho)
    if k > pair_count(o):
        raise ValueError(f"k = {k} exceeds the {pair_count(o)} filter pairs of a {o}-filter block")
    if k == 0:
        return dn_strict(group, gamma, eps)
    return gram_penalty(group.matrices, disentangled(gamma, eps, kept_correlations(k)), filter_side=True)


@register_regularizer(
    "dn_welch",
    "disentangled norm penalising only coherence above the Welch bound",
    check=check_options,
    gamma=1.0,
    eps=1e-8,
)
def dn_welch(group: Group, gamma: float, eps: float) -> torch.Tensor:
    o, n = group.shape
    return gram_penalty(
        group.matrices, disentangled(gamma, eps, excess_correlations(welch_bound(o, n))), filter_side=True
    )
