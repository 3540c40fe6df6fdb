"""SRIP (Bansal et al. 2018): the spectral norm of G - I, G the smaller Gram.

On the smaller Gram the floor is 0 wherever orthogonality is attainable (the public code's W^T W on
wide layers has an unreachable floor of 1). sigma_max comes from power iteration on the symmetric
G - I; with a persistent vector (the training-loop object keeps it) two steps per call track it,
stateless calls run `STATELESS_ITERS` from a fixed start. `exact=True` uses the eigenvalues.
"""

from __future__ import annotations

import torch

from orthoreg.regularizers.gram import residual, smaller_gram
from orthoreg.regularizers.registry import Group, register_regularizer

STATELESS_ITERS = 100
STATEFUL_ITERS = 2
START_SEED = 0


def _start_vectors(count: int, size: int, like: torch.Tensor) -> torch.Tensor:
    generator = torch.Generator().manual_seed(START_SEED)
    vectors = torch.randn(count, size, generator=generator, dtype=torch.float64)
    return (vectors / vectors.norm(dim=1, keepdim=True)).to(dtype=like.dtype, device=like.device)


def power_iteration_sigma(matrix: torch.Tensor, state: dict | None, iters: int | None) -> torch.Tensor:
    """|largest-magnitude eigenvalue| of each symmetric matrix, differentiable through v^T A v."""
    count, size = matrix.shape[0], matrix.shape[1]
    stored = None if state is None else state.get("srip")
    warm = stored is not None and stored.shape == (count, size)
    vectors = stored if stored is not None and warm else _start_vectors(count, size, matrix)
    steps = iters if iters is not None else (STATEFUL_ITERS if warm else STATELESS_ITERS)
    with torch.no_grad():
        detached = matrix.detach()
        for _ in range(steps):
            vectors = (detached @ vectors.unsqueeze(2)).squeeze(2)
            vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(torch.finfo(vectors.dtype).tiny)
    if state is not None:
        state["srip"] = vectors
    rayleigh = (vectors.unsqueeze(1) @ matrix @ vectors.unsqueeze(2)).reshape(count)
    return rayleigh.abs()


@register_regularizer(
    "srip",
    "spectral restricted isometry: sigma_max(G - I) on the smaller Gram (power iteration or exact)",
    squared=False,
    exact=False,
    iters=None,
)
def srip(group: Group, squared: bool, exact: bool, iters: int | None) -> torch.Tensor:
    matrix = residual(smaller_gram(group.matrices))
    if exact:
        sigma = torch.linalg.eigvalsh(matrix).abs().amax(dim=1)
    else:
        sigma = power_iteration_sigma(matrix, group.state, iters)
    return sigma.square() if squared else sigma
