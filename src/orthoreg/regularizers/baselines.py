"""The holistic baselines of Bansal et al. (NeurIPS 2018): Frobenius, SO, DSO, MC."""

from __future__ import annotations

import torch

from orthoreg.regularizers.gram import identity_residual, residual, smaller_gram
from orthoreg.regularizers.registry import Group, register_regularizer


@register_regularizer("none", "no penalty (the vanilla baseline)")
def no_penalty(group: Group) -> torch.Tensor:
    return group.matrices.new_zeros(group.matrices.shape[0])


@register_regularizer("fro", "||W W^T - I||_F^2 on the filter side (holistic Frobenius)")
def frobenius(group: Group) -> torch.Tensor:
    o = group.matrices.shape[1]
    return identity_residual(smaller_gram(group.matrices), o)


@register_regularizer("so", "soft orthogonality ||G - I||_F^2 on the smaller Gram")
def soft_orthogonality(group: Group) -> torch.Tensor:
    small = smaller_gram(group.matrices)
    return identity_residual(small, small.shape[-1])


@register_regularizer("dso", "double soft orthogonality ||W W^T - I||_F^2 + ||W^T W - I||_F^2")
def double_soft_orthogonality(group: Group) -> torch.Tensor:
    o, n = group.shape
    small = smaller_gram(group.matrices)
    return identity_residual(small, o) + identity_residual(small, n)


@register_regularizer("mc", "mutual coherence max |(G - I)_jl| on the smaller Gram")
def mutual_coherence(group: Group) -> torch.Tensor:
    return residual(smaller_gram(group.matrices)).abs().amax(dim=(1, 2))
