"""The disentangled norm of the paper (shared PAPER.md): filter norms and filter correlations are
penalised separately, D(W) = sum_j (r_j^2 - 1)^2 and R(W) = sum_{j != l} c_jl^2 on cosines, so the
optimiser cannot lower the correlation term by shrinking norms.

dn_strict = D + gamma R; dn_relaxed exempts the k largest |c_jl| (recomputed every call), k from the
layer's shape and rho; dn_welch only penalises coherence above the Welch bound.
"""

from __future__ import annotations

import math

import torch

from orthoreg.regularizers.gram import cosines_from_gram, gram, pair_count
from orthoreg.regularizers.registry import Group, register_regularizer


def diagonal_term(filter_gram: torch.Tensor) -> torch.Tensor:
    """D = sum_j (r_j^2 - 1)^2, read off the diagonal of W W^T."""
    return (filter_gram.diagonal(dim1=1, dim2=2) - 1.0).square().sum(dim=1)


def lower_cosines(filter_gram: torch.Tensor, eps: float) -> torch.Tensor:
    """The o(o-1)/2 cosines c_jl, j > l, of each layer: [g, P(o)]."""
    o = filter_gram.shape[1]
    rows, cols = torch.tril_indices(o, o, offset=-1, device=filter_gram.device)
    return cosines_from_gram(filter_gram, eps)[:, rows, cols]


def relaxation_k(o: int, n: int, rho: float) -> int:
    """How many of the largest correlations dn_relaxed exempts: P(o) - P(n) for an over-determined
    layer (o > n: at most n filters can be orthogonal), P(o) - P(ceil(rho o)) otherwise."""
    if not 0 < rho <= 1:
        raise ValueError(f"rho must be in (0, 1], got {rho!r}")
    if o > n:
        return pair_count(o) - pair_count(n)
    return pair_count(o) - pair_count(math.ceil(rho * o))


def welch_bound(o: int, n: int) -> float:
    """The least mutual coherence o unit vectors in R^n can have: sqrt((o-n)/(n(o-1))) for o > n."""
    return math.sqrt((o - n) / (n * (o - 1))) if o > n else 0.0


def off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """The matrix with its diagonal zeroed (the j != l entries)."""
    return matrix * (1.0 - torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device))


@register_regularizer(
    "dn_strict", "disentangled norm D + gamma R (strict orthogonality)", gamma=1.0, eps=1e-8
)
def dn_strict(group: Group, gamma: float, eps: float) -> torch.Tensor:
    filter_gram = gram(group.matrices)
    correlation = off_diagonal(cosines_from_gram(filter_gram, eps)).square().sum(dim=(1, 2))
    return diagonal_term(filter_gram) + gamma * correlation


@register_regularizer(
    "dn_relaxed",
    "disentangled norm with the k largest correlations exempt (relaxed orthogonality)",
    gamma=1.0,
    rho=0.5,
    eps=1e-8,
)
def dn_relaxed(group: Group, gamma: float, rho: float, eps: float) -> torch.Tensor:
    o, n = group.shape
    k = relaxation_k(o, n, rho)
    if k == 0:
        return dn_strict(group, gamma, eps)
    filter_gram = gram(group.matrices)
    remaining = pair_count(o) - k
    if remaining <= 0:
        kept = filter_gram.new_zeros(filter_gram.shape[0])
    else:  # the smallest P(o) - k squares: exact, never a negative round-off
        squares = lower_cosines(filter_gram, eps).square()
        kept = squares.topk(remaining, dim=1, largest=False, sorted=False).values.sum(dim=1)
    return diagonal_term(filter_gram) + gamma * 2.0 * kept


@register_regularizer(
    "dn_welch", "disentangled norm penalising only coherence above the Welch bound", gamma=1.0, eps=1e-8
)
def dn_welch(group: Group, gamma: float, eps: float) -> torch.Tensor:
    o, n = group.shape
    filter_gram = gram(group.matrices)
    excess = off_diagonal(torch.relu(cosines_from_gram(filter_gram, eps).abs() - welch_bound(o, n)))
    return diagonal_term(filter_gram) + gamma * excess.square().sum(dim=(1, 2))
