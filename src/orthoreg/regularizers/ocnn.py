"""OCNN (Wang et al., CVPR 2020): orthogonality of the convolution itself,
||conv2d(K, K, stride=S, padding=P) - I_r0||_F^2 with P = floor((k-1)/S)*S.

That padding puts the zero-shift product of every filter pair at the centre of the output for any
stride (the released code's padding=1 for every stride misses it at stride 2). Layers of one shape
and stride run as one grouped convolution. `ocnn_reference` is the same penalty on the layers the
released code regularises: each residual block's first convolution and the 1x1 shortcuts (not the
stem, the second convolutions or the classifier), so its runs compare with the published numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from orthoreg.regularizers.layers import LayerSelection
from orthoreg.regularizers.registry import Group, register_regularizer


def ocnn_padding(kernel: int, stride: int) -> int:
    return (kernel - 1) // stride * stride


def check_options(options: dict) -> None:
    """stride: None (each layer's own) or a positive integer or a pair of them."""
    stride = options["stride"]
    if stride is not None:
        strides = (stride, stride) if isinstance(stride, int) else tuple(stride)
        if len(strides) != 2 or not all(isinstance(s, int) and s >= 1 for s in strides):
            raise ValueError(f"stride must be a positive integer or a pair of them, got {stride!r}")


@register_regularizer(
    "ocnn",
    "convolutional orthogonality ||conv(K, K, stride S) - I_centre||_F^2",
    needs_kernel=True,
    check=check_options,
    stride=None,
)
def ocnn(group: Group, stride: int | tuple[int, int] | None) -> torch.Tensor:
    kernels = group.kernels
    count, o, i, kh, kw = kernels.shape
    if stride is None:
        sh, sw = group.stride
    else:
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = ocnn_padding(kh, sh), ocnn_padding(kw, sw)
    inputs = kernels.permute(1, 0, 2, 3, 4).reshape(o, count * i, kh, kw)
    output = F.conv2d(
        inputs, kernels.reshape(count * o, i, kh, kw), stride=(sh, sw), padding=(ph, pw), groups=count
    )
    rh, rw = output.shape[2], output.shape[3]
    output = output.reshape(o, count, o, rh, rw).permute(1, 0, 2, 3, 4)
    target = torch.zeros_like(output)
    centre = torch.arange(o, device=output.device)
    target[:, centre, centre, ph // sh, pw // sw] = 1.0
    return (output - target).square().sum(dim=(1, 2, 3, 4))


def block_entry_or_shortcut(name: str, module: nn.Module) -> bool:
    """A residual block's first convolution (`<block>.conv1`, not a top-level stem named conv1) or a
    1x1 shortcut (downsample) convolution."""
    entry = "." in name and name.rsplit(".", 1)[1] == "conv1"
    shortcut = isinstance(module, nn.Conv2d) and all(size == 1 for size in module.kernel_size)
    return entry or shortcut


register_regularizer(
    "ocnn_reference",
    "ocnn on each block's first conv and the 1x1 shortcuts only, as the released OCNN code",
    needs_kernel=True,
    check=check_options,
    layers=LayerSelection(select=block_entry_or_shortcut),
    stride=None,
)(ocnn)
