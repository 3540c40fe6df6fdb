"""Group orthogonality, GOR (Kurtz, Bar and Giryes, BMVC 2023): a layer's filters are split into
groups of consecutive filters, and each group is held to orthonormality on its own,
sum_g ||G_g - I||_F^2 with G_g the smaller Gram of group g (W_g W_g^T when the group has at most n
filters, W_g^T W_g otherwise), as the authors' public code computes it.

Their code splits a layer of o filters into min(num_groups, o // min_group_size) groups (defaults 32
and 4) and stops where that count does not divide o; here the largest count below it that divides o
is taken instead, so any model trains. `group_size` fixes the number of filters per group.
"""

from __future__ import annotations

import torch

from orthoreg.regularizers.gram import attainable_side, gram_penalty, identity_residuals
from orthoreg.regularizers.registry import Group, register_regularizer


def group_count(o: int, num_groups: int, min_group_size: int, group_size: int | None) -> int:
    """How many groups GOR splits o filters into: o / group_size when given (it must divide o), else
    the authors' min(num_groups, o // min_group_size), or the largest count below it that divides o
    where theirs does not (their code stops there: 240 filters in 32 groups, say)."""
    if group_size is not None:
        if o % group_size:
            raise ValueError(
                f"gor cannot split {o} filters into groups of group_size={group_size}; choose one that divides {o}"
            )
        return o // group_size
    count = min(num_groups, max(1, o // min_group_size))
    while o % count:
        count -= 1
    return count


def check_options(options: dict) -> None:
    """num_groups and min_group_size: positive integers; group_size: None or a positive integer."""
    for key in ("num_groups", "min_group_size", "group_size"):
        value = options[key]
        if value is None and key == "group_size":
            continue
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"{key} must be a positive integer, got {value!r}")


@register_regularizer(
    "gor",
    "group orthogonality: ||G_g - I||_F^2 within groups of filters (Kurtz et al. 2023)",
    check=check_options,
    num_groups=32,
    min_group_size=4,
    group_size=None,
)
def group_orthogonality(
    group: Group, num_groups: int, min_group_size: int, group_size: int | None
) -> torch.Tensor:
    layers, o, n = group.matrices.shape
    count = group_count(o, num_groups, min_group_size, group_size)
    blocks = group.matrices.reshape(layers * count, o // count, n)
    values = gram_penalty(blocks, identity_residuals(1, 0), filter_side=attainable_side(blocks))
    return values.reshape(layers, count).sum(dim=1)
