"""SRIP (Bansal et al. 2018): the spectral norm of A = G_s - I, G_s the smaller Gram.

On the smaller Gram the floor is 0 wherever orthogonality is attainable (the public code's W^T W on
wide layers has an unreachable floor of 1). A is symmetric, so sigma_max(A) is its largest
|eigenvalue|; power iteration on the detached A gives a unit vector v and the penalty is ||A v||,
with gradient (A v) v^T / ||A v|| (symmetrised): at an eigenvector that is sign(lambda) v v^T, the
gradient of u^T A u with u detached. ||A v|| rather than |v^T A v| because A's spectrum reaches
both sides of 0 (it lies in [-1, inf)): when +sigma and -sigma are both eigenvalues the iterate
stays a mixture of the two eigenvectors, whose Rayleigh quotient can be anything in [-sigma, sigma]
while ||A v|| is sigma. With a persistent vector (kept by the training-loop object) two steps per
call track it; a stateless call runs `STATELESS_ITERS` from a fixed seeded start. `exact=True` uses
the eigendecomposition.
"""

from __future__ import annotations

import torch

from orthoreg.regularizers.gram import ValueAndGradient, attainable_side, gram_penalty, residual
from orthoreg.regularizers.registry import Group, register_regularizer

STATELESS_ITERS = 500
STATEFUL_ITERS = 2
START_SEED = 0


def start_vectors(count: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """The same unit vectors on every call and device: drawn in float64 on the CPU from a fixed seed."""
    generator = torch.Generator().manual_seed(START_SEED)
    vectors = torch.randn(count, size, generator=generator, dtype=torch.float64)
    return (vectors / vectors.norm(dim=1, keepdim=True)).to(dtype=like.dtype, device=like.device)


def power_iteration(
    matrix: torch.Tensor, state: dict[str, torch.Tensor] | None, iters: int | None
) -> torch.Tensor:
    """Unit vectors [g, s] near the top |eigenvalue| eigenspace of each symmetric matrix, continuing
    from `state["srip"]` when it holds vectors of the right shape, and stored back there."""
    count, size = matrix.shape[0], matrix.shape[1]
    stored = None if state is None else state.get("srip")
    warm = stored is not None and stored.shape == (count, size)
    vectors = stored if stored is not None and warm else start_vectors(count, size, matrix)
    steps = iters if iters is not None else (STATEFUL_ITERS if warm else STATELESS_ITERS)
    tiny = torch.finfo(matrix.dtype).tiny
    for _ in range(steps):
        vectors = (matrix @ vectors.unsqueeze(2)).squeeze(2)
        vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(tiny)
    if state is not None:
        state["srip"] = vectors
    return vectors


def top_eigenvectors(matrix: torch.Tensor) -> torch.Tensor:
    """The eigenvector of the largest |eigenvalue| of each symmetric matrix: [g, s]."""
    values, vectors = torch.linalg.eigh(matrix)
    index = values.abs().argmax(dim=1)
    return vectors[torch.arange(matrix.shape[0], device=matrix.device), :, index]


def spectral_norm(
    state: dict[str, torch.Tensor] | None, iters: int | None, exact: bool, squared: bool
) -> ValueAndGradient:
    """sigma_max(G_s - I) (or its square) and its gradient, from `state`'s vectors when given."""

    def value_and_gradient(small: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        matrix = residual(small)
        vectors = top_eigenvectors(matrix) if exact else power_iteration(matrix, state, iters)
        image = (matrix @ vectors.unsqueeze(2)).squeeze(2)
        sigma = image.norm(dim=1)
        if squared:
            return sigma.square(), 2.0 * image.unsqueeze(2) * vectors.unsqueeze(1)
        direction = image / sigma.clamp_min(torch.finfo(sigma.dtype).tiny).unsqueeze(1)
        return sigma, direction.unsqueeze(2) * vectors.unsqueeze(1)

    return value_and_gradient


def check_options(options: dict) -> None:
    """iters: None (the default counts) or a positive integer."""
    iters = options["iters"]
    if iters is not None and not (isinstance(iters, int) and not isinstance(iters, bool) and iters >= 1):
        raise ValueError(f"iters must be a positive integer, got {iters!r}")


@register_regularizer(
    "srip",
    "spectral restricted isometry: sigma_max(G - I) on the smaller Gram (power iteration or exact)",
    stateful=True,
    check=check_options,
    combine="max",
    squared=False,
    exact=False,
    iters=None,
)
def srip(group: Group, squared: bool, exact: bool, iters: int | None) -> torch.Tensor:
    return gram_penalty(
        group.matrices,
        spectral_norm(group.state, iters, exact, squared),
        filter_side=attainable_side(group.matrices),
    )
