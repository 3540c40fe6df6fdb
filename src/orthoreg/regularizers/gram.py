"""Shared pieces of the Gram-based penalties, batched over layers of one shape.

Every Gram-based penalty depends on W only through one Gram matrix G (W W^T, or the smaller of
W W^T and W^T W). `gram_penalty` runs such a penalty as one autograd node: the forward pass computes
the values and dP/dG in closed form, the backward pass is a single batched matmul,
dP/dW = (dP/dG + dP/dG^T) W (or W (dP/dG + dP/dG^T) for G = W^T W). Autograd through the element-wise
chain and the Gram product would take two matmuls and keep every intermediate alive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.function import once_differentiable

# gram [g, s, s] -> (values [g], dP/dG [g, s, s]), the derivative taking each entry as independent
ValueAndGradient = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class _GramPenalty(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, matrices: torch.Tensor, filter_side: bool, value_and_gradient: ValueAndGradient
    ) -> torch.Tensor:
        transposed = matrices.transpose(1, 2)
        gram_matrix = matrices @ transposed if filter_side else transposed @ matrices
        values, gradient = value_and_gradient(gram_matrix)
        ctx.filter_side = filter_side
        ctx.save_for_backward(matrices, gradient)
        return values

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_values: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        matrices, gradient = ctx.saved_tensors
        # a backward called inside the caller's autocast region would otherwise run this matmul in bf16
        with torch.autocast(matrices.device.type, enabled=False):
            symmetric = (gradient + gradient.transpose(1, 2)) * grad_values[:, None, None]
            grad = symmetric @ matrices if ctx.filter_side else matrices @ symmetric
        return grad, None, None


def gram_penalty(
    matrices: torch.Tensor, value_and_gradient: ValueAndGradient, *, filter_side: bool
) -> torch.Tensor:
    """Penalties [g] of a function of G = W W^T (`filter_side`) or G = W^T W, with the analytic backward."""
    return _GramPenalty.apply(matrices, filter_side, value_and_gradient)


def attainable_side(matrices: torch.Tensor) -> bool:
    """True when the smaller Gram G_s is W W^T (o <= n), False when it is W^T W."""
    return matrices.shape[1] <= matrices.shape[2]


def gram(matrices: torch.Tensor) -> torch.Tensor:
    """W W^T for each layer: [g, o, n] -> [g, o, o]."""
    return matrices @ matrices.transpose(1, 2)


def residual(matrix: torch.Tensor) -> torch.Tensor:
    """G - I for a batch of square matrices."""
    identity = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    return matrix - identity


def identity_residuals(copies: int, extra: int) -> ValueAndGradient:
    """copies * ||S - I||_F^2 + extra on the smaller Gram S. ||M - I_d||_F^2 for the larger Gram M
    (d x d) is ||S - I||_F^2 + d - s: both Grams share their nonzero spectrum, so the large
    (say 576 x 576) Gram is never formed."""

    def value_and_gradient(small: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        difference = residual(small)
        values = copies * difference.square().sum(dim=(1, 2)) + extra
        return values, (2.0 * copies) * difference

    return value_and_gradient


def inverse_norms(filter_gram: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 / max(r_j, eps), whether r_j > eps) with r_j^2 = G_jj: [g, o] each."""
    norms = filter_gram.diagonal(dim1=1, dim2=2).sqrt()
    return 1.0 / norms.clamp_min(eps), norms > eps


def cosines_from_gram(filter_gram: torch.Tensor, eps: float) -> torch.Tensor:
    """C = W~ W~^T from G = W W^T: G_jl / (max(r_j, eps) max(r_l, eps)), r_j^2 = G_jj."""
    scale, _ = inverse_norms(filter_gram, eps)
    return filter_gram * scale.unsqueeze(2) * scale.unsqueeze(1)


def pair_count(m: int) -> int:
    """P(m) = m(m-1)/2, the number of filter pairs."""
    return m * (m - 1) // 2
