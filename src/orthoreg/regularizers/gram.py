"""Shared pieces of the Gram-based penalties, batched over layers of one shape."""

from __future__ import annotations

import torch


def gram(matrices: torch.Tensor) -> torch.Tensor:
    """W W^T for each layer: [g, o, n] -> [g, o, o]."""
    return matrices @ matrices.transpose(1, 2)


def smaller_gram(matrices: torch.Tensor) -> torch.Tensor:
    """W W^T when o <= n, else W^T W: the side on which orthogonality is attainable."""
    o, n = matrices.shape[1], matrices.shape[2]
    return gram(matrices) if o <= n else matrices.transpose(1, 2) @ matrices


def residual(matrix: torch.Tensor) -> torch.Tensor:
    """G - I for a batch of square matrices."""
    identity = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    return matrix - identity


def squared_frobenius(matrix: torch.Tensor) -> torch.Tensor:
    return matrix.square().sum(dim=(1, 2))


def identity_residual(small: torch.Tensor, dim: int) -> torch.Tensor:
    """||M - I_dim||_F^2 for M = W W^T (dim = o) or W^T W (dim = n), from the smaller Gram S alone:
    both Grams share their nonzero spectrum, so ||M - I||^2 = ||S||^2 - 2 tr(S) + dim. The large
    (say 576 x 576) Gram is never formed."""
    if small.shape[-1] == dim:
        return squared_frobenius(residual(small))
    trace = small.diagonal(dim1=1, dim2=2).sum(dim=1)
    return squared_frobenius(small) - 2.0 * trace + dim


def cosines_from_gram(filter_gram: torch.Tensor, eps: float) -> torch.Tensor:
    """C = W~ W~^T from G = W W^T: G_jl / (max(r_j, eps) max(r_l, eps)), r_j^2 = G_jj."""
    norms = filter_gram.diagonal(dim1=1, dim2=2).sqrt().clamp_min(eps)
    return filter_gram / (norms.unsqueeze(2) * norms.unsqueeze(1))


def cosines(matrices: torch.Tensor, eps: float) -> torch.Tensor:
    """C = W~ W~^T with rows normalised by max(||w_j||, eps): cosines, unit diagonal."""
    return cosines_from_gram(gram(matrices), eps)


def pair_count(m: int) -> int:
    """P(m) = m(m-1)/2, the number of filter pairs."""
    return m * (m - 1) // 2
