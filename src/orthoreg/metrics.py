"""Near-orthogonality of a model's filters and expressiveness of its features.

Rows are plain Python values (str, int, float, None) so a list of them is a pandas table. A measure
that does not exist for a layer (the ratio to a zero Welch bound, the convolution spectrum of a
strided or non-2-D layer) is None, never NaN. A grouped convolution is measured as the block-diagonal
matrix its groups form (orthoreg.regularizers.layers): filters of different groups share no input and
have cosine 0, and its singular values are those of its blocks.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from orthoreg.regularizers import welch_bound
from orthoreg.regularizers.layers import LayerSelection, block_diagonal, kernel_blocks

MEASURES = (
    "holistic_residual",
    "diag_deviation",
    "rms_cos",
    "max_cos",
    "welch_bound",
    "coherence_to_welch",
    "sigma_max",
    "sigma_min",
    "condition_number",
    "conv_sigma_max",
    "conv_sigma_min",
)


def _matrix(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    if weight.dim() not in (2, 3, 4, 5):
        raise ValueError(
            f"weight must have rank 2 (Linear) or 3-5 (Conv1d/2d/3d), got shape {tuple(weight.shape)}"
        )
    if not bool(torch.isfinite(weight).all()):
        raise ValueError(f"non-finite values (NaN or Inf) in the {tuple(weight.shape)} weight")
    return block_diagonal(weight.detach().to(torch.float64), groups)


def cosine_gram(weight: torch.Tensor, eps: float = 1e-8, groups: int = 1) -> torch.Tensor:
    """C = W~ W~^T: the cosines between filters (unit diagonal), float64 [o, o]."""
    matrix = _matrix(weight, groups)
    unit = matrix / matrix.norm(dim=1, keepdim=True).clamp_min(eps)
    return unit @ unit.T


def singular_values(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Singular values of W (o x n), descending, float64. A wide or tall W is first reduced to the
    square triangular factor of its QR decomposition (same singular values), which is many times
    faster than an SVD of, say, 512 x 4608."""
    matrix = _matrix(weight, groups)
    if matrix.shape[0] != matrix.shape[1]:
        tall = matrix.T if matrix.shape[0] < matrix.shape[1] else matrix
        matrix = torch.linalg.qr(tall, mode="r").R
    return torch.linalg.svdvals(matrix)


def conv_operator_singular_values(
    weight: torch.Tensor, input_size: tuple[int, int], groups: int = 1
) -> torch.Tensor:
    """All singular values of the stride-1 2-D convolution with circular padding on an H x W input
    (Sedghi, Gupta & Long, ICLR 2019): the 2-D DFT of the kernel, zero-padded to H x W, block-
    diagonalises the operator into H*W matrices of size o x i, whose singular values are the
    operator's (per group for a grouped convolution). Strided convolutions are not block-diagonalised
    this way."""
    height, width = input_size
    kernel = weight.detach().to(torch.float64)
    if kernel.dim() != 4:
        raise ValueError(
            f"a 2-D convolution weight (o, i, kh, kw) is needed, got shape {tuple(kernel.shape)}"
        )
    if kernel.shape[2] > height or kernel.shape[3] > width:
        raise ValueError(f"input size {input_size} is smaller than the kernel {tuple(kernel.shape[2:])}")
    transfer = torch.fft.fft2(kernel_blocks(kernel, groups), s=(height, width))  # [g, o/g, i/g, H, W]
    return torch.linalg.svdvals(transfer.permute(0, 3, 4, 1, 2)).flatten().sort(descending=True).values


def weight_metrics(
    weight: torch.Tensor,
    stride: tuple[int, ...] = (1, 1),
    conv_input_size: tuple[int, int] | None = None,
    groups: int = 1,
) -> dict[str, Any]:
    """Every near-orthogonality measure of one weight tensor (its blocks on the diagonal when grouped;
    `n` and the Welch bound are then per block: a filter's length and the bound among its block)."""
    matrix = _matrix(weight, groups)
    o = matrix.shape[0]
    n = matrix.shape[1] // groups
    filter_gram = matrix @ matrix.T
    squared_norms = filter_gram.diagonal()
    cosines = cosine_gram(weight, groups=groups)
    same_block = torch.block_diag(*[torch.ones(o // groups, o // groups, dtype=torch.bool)] * groups)
    off_diagonal = cosines[same_block & ~torch.eye(o, dtype=torch.bool)].abs()
    sigma = singular_values(weight, groups)
    bound = welch_bound(o // groups, n)
    max_cos = float(off_diagonal.max()) if off_diagonal.numel() else 0.0
    row: dict[str, Any] = {
        "o": o,
        "n": n,
        "holistic_residual": float((filter_gram - torch.eye(o, dtype=torch.float64)).norm()),
        "diag_deviation": float((squared_norms - 1).square().mean().sqrt()),
        "rms_cos": float(off_diagonal.square().mean().sqrt()) if off_diagonal.numel() else 0.0,
        "max_cos": max_cos,
        "welch_bound": bound,
        "coherence_to_welch": max_cos / bound if bound > 0 else None,
        "sigma_max": float(sigma[0]),
        "sigma_min": float(sigma[-1]),
        "condition_number": float(sigma[0] / sigma[-1]) if sigma[-1] > 0 else None,
        "conv_sigma_max": None,
        "conv_sigma_min": None,
    }
    if conv_input_size is not None and weight.dim() == 4 and tuple(stride) == (1, 1):
        operator = conv_operator_singular_values(weight, conv_input_size, groups)
        row["conv_sigma_max"], row["conv_sigma_min"] = float(operator[0]), float(operator[-1])
    return row


def layer_metrics(
    model: nn.Module, *, conv_input_size: tuple[int, int] | None = None, **selection: Any
) -> list[dict[str, Any]]:
    """One row per regularised layer (the layers `model_penalty` sees with the same selection keywords,
    `orthoreg.regularizers.LayerSelection`), in module order.

    With `conv_input_size=(H, W)`, `conv_sigma_max`/`conv_sigma_min` are the extreme singular values
    of each stride-1 2-D convolution as an operator on H x W inputs with circular padding. They stay
    None for strided convolutions (the DFT does not block-diagonalise a strided operator into
    per-frequency o x i blocks, so Sedghi et al.'s method does not apply) and for other layers."""
    rows = []
    layers = LayerSelection(**selection).layers(model)
    for layer in layers:
        weight: torch.Tensor = layer.weight
        if not bool(torch.isfinite(weight).all()):
            raise ValueError(f"non-finite values (NaN or Inf) in the weight of layer {layer.name!r}")
        kernel = tuple(weight.shape[2:])
        row = {
            "layer": layer.name,
            "kind": "linear"
            if weight.dim() == 2
            else "conv"
            if weight.dim() == 4
            else f"conv{weight.dim() - 2}d",
            "kh": kernel[0] if kernel else 1,
            "kw": kernel[-1] if kernel else 1,
            "stride": layer.stride[0] if layer.stride else 1,
            "groups": layer.groups,
        }
        row.update(weight_metrics(weight, layer.stride, conv_input_size, layer.groups))
        rows.append(row)
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Model-level aggregates: the mean over layers of each measure, the worst coherence and
    condition number, and the layer count."""
    if not rows:
        raise ValueError("no layer rows to summarise")
    summary: dict[str, Any] = {"layers": len(rows)}
    for measure in MEASURES:
        values = [
            row[measure] for row in rows if row.get(measure) is not None and math.isfinite(row[measure])
        ]
        summary[f"mean_{measure}"] = sum(values) / len(values) if values else None
    summary["max_max_cos"] = max(row["max_cos"] for row in rows)
    conditions = [row["condition_number"] for row in rows if row["condition_number"] is not None]
    summary["max_condition_number"] = max(conditions) if conditions else None
    return summary


def feature_metrics(features: torch.Tensor) -> dict[str, float]:
    """Expressiveness of penultimate features [N, F]: the effective rank (Roy & Vetterli 2007: exp of
    the entropy of the normalised singular values of the centred features) and the mean |cos|
    between distinct feature channels (columns)."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, F], got shape {tuple(features.shape)}")
    centred = features.detach().to(torch.float64)
    centred = centred - centred.mean(dim=0, keepdim=True)
    sigma = torch.linalg.svdvals(centred)
    total = sigma.sum()
    if total <= 0:
        effective_rank = 0.0
    else:
        p = sigma / total
        p = p[p > 0]
        effective_rank = float(torch.exp(-(p * p.log()).sum()))
    columns = centred / centred.norm(dim=0, keepdim=True).clamp_min(1e-12)
    cos = columns.T @ columns
    channels = cos.shape[0]
    mean_abs = float(cos[~torch.eye(channels, dtype=torch.bool)].abs().mean()) if channels > 1 else 0.0
    return {"effective_rank": effective_rank, "mean_abs_channel_cosine": mean_abs}
