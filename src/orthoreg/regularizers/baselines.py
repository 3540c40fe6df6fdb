"""The holistic baselines of Bansal et al. (NeurIPS 2018): Frobenius, SO, DSO, MC.

All four are functions of the smaller Gram G_s alone (see `identity_residuals` for fro and dso on
tall or wide layers), so each runs as one `gram_penalty` node with a closed-form gradient.
"""

from __future__ import annotations

import torch

from orthoreg.regularizers.gram import attainable_side, gram_penalty, identity_residuals, residual
from orthoreg.regularizers.registry import Group, register_regularizer


@register_regularizer("none", "no penalty (the vanilla baseline)")
def no_penalty(group: Group) -> torch.Tensor:
    return group.matrices.new_zeros(group.matrices.shape[0])


@register_regularizer("fro", "||W W^T - I||_F^2 on the filter side (holistic Frobenius)")
def frobenius(group: Group) -> torch.Tensor:
    o, n = group.shape
    return gram_penalty(
        group.matrices, identity_residuals(1, o - min(o, n)), filter_side=attainable_side(group.matrices)
    )


@register_regularizer("so", "soft orthogonality ||G - I||_F^2 on the smaller Gram")
def soft_orthogonality(group: Group) -> torch.Tensor:
    return gram_penalty(group.matrices, identity_residuals(1, 0), filter_side=attainable_side(group.matrices))


@register_regularizer("dso", "double soft orthogonality ||W W^T - I||_F^2 + ||W^T W - I||_F^2")
def double_soft_orthogonality(group: Group) -> torch.Tensor:
    o, n = group.shape
    return gram_penalty(
        group.matrices, identity_residuals(2, abs(o - n)), filter_side=attainable_side(group.matrices)
    )


def _coherence(small: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """max |(S - I)_ab| and its gradient, shared equally by tied maxima (as autograd's amax does)."""
    difference = residual(small)
    magnitude = difference.abs()
    largest = magnitude.amax(dim=(1, 2))
    ties = (magnitude == largest[:, None, None]).to(small.dtype)
    return largest, difference.sign() * ties / ties.sum(dim=(1, 2), keepdim=True)


@register_regularizer("mc", "mutual coherence max |(G - I)_jl| on the smaller Gram", combine="max")
def mutual_coherence(group: Group) -> torch.Tensor:
    return gram_penalty(group.matrices, _coherence, filter_side=attainable_side(group.matrices))
