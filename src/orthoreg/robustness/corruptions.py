"""Common corruptions generated in code, with the per-severity constants of CIFAR-10-C.

Hendrycks & Dietterich (2019) made CIFAR-10-C with numpy, scikit-image, OpenCV and ImageMagick
(`make_cifar_c.py` of hendrycks/robustness). These are torch re-implementations (Pillow for JPEG and
pixelation) of the corruptions that need no external image assets, with the same constants. They take
float images in [0, 1] shaped (N, C, H, W) with C = 1 or 3, draw randomness only from the
torch.Generator they are given, and round their output to the 8-bit grid like the stored uint8 files.
They are not the official files: their records always say source="generated".
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SEVERITIES = (1, 2, 3, 4, 5)

# per severity 1..5, as in make_cifar_c.py
GAUSSIAN_NOISE_STD = (0.04, 0.06, 0.08, 0.09, 0.10)
SHOT_NOISE_PHOTONS = (500, 250, 100, 75, 50)
IMPULSE_NOISE_AMOUNT = (0.01, 0.02, 0.03, 0.05, 0.07)
SPECKLE_NOISE_STD = (0.06, 0.10, 0.12, 0.16, 0.20)
GAUSSIAN_BLUR_SIGMA = (0.4, 0.6, 0.7, 0.8, 1.0)
DEFOCUS_BLUR_RADIUS_ALIAS = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))
BRIGHTNESS_SHIFT = (0.05, 0.10, 0.15, 0.20, 0.30)
CONTRAST_FACTOR = (0.75, 0.50, 0.40, 0.30, 0.15)
PIXELATE_FACTOR = (0.95, 0.90, 0.85, 0.75, 0.65)
JPEG_QUALITY = (80, 65, 58, 50, 40)

GAUSSIAN_TRUNCATE = 4.0  # scipy.ndimage's default, behind skimage.filters.gaussian
DEFOCUS_HALF_WIDTH = 8  # make_cifar_c's disk kernel spans -8..8 for radii up to 8


def _noise_like(x: torch.Tensor, generator: torch.Generator, draw: str) -> torch.Tensor:
    """Standard normal or uniform [0, 1) noise shaped like x, drawn on the generator's device."""
    sample = torch.randn if draw == "normal" else torch.rand
    return sample(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    return x + std * _noise_like(x, generator, "normal")


def shot_noise(x: torch.Tensor, photons: float, generator: torch.Generator) -> torch.Tensor:
    rates = (x * photons).to(generator.device)
    return torch.poisson(rates, generator=generator).to(x.device, x.dtype) / photons


def impulse_noise(x: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Salt and pepper: each value is replaced with probability `amount`, by 1 or 0 equally often
    (skimage.util.random_noise, mode='s&p')."""
    flipped = _noise_like(x, generator, "uniform") < amount
    salt = _noise_like(x, generator, "uniform") < 0.5
    return torch.where(flipped, salt.to(x.dtype), x)


def speckle_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    return x + x * std * _noise_like(x, generator, "normal")


def _filter_separable(x: torch.Tensor, kernel: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """Convolve every channel with the outer product of a symmetric 1-D kernel."""
    radius = (kernel.numel() - 1) // 2
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode=padding_mode)
    kernel = kernel.to(x.device, x.dtype)
    flat = F.conv2d(flat, kernel.view(1, 1, 1, -1))
    flat = F.conv2d(flat, kernel.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def gaussian_kernel_1d(sigma: float, radius: int) -> torch.Tensor:
    """Normalised samples of exp(-t^2 / (2 sigma^2)) at t = -radius..radius, in float64."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (t / sigma) ** 2)
    return weights / weights.sum()


def gaussian_blur(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter per channel: radius int(4 sigma + 0.5), edges repeated."""
    radius = int(GAUSSIAN_TRUNCATE * sigma + 0.5)
    return _filter_separable(x, gaussian_kernel_1d(sigma, radius), "replicate")


def defocus_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """make_cifar_c's `disk`: a normalised aliased disk on a 17 x 17 grid, smoothed by a 3 x 3 Gaussian
    of sigma `alias_blur` with mirrored edges (cv2.GaussianBlur's BORDER_REFLECT_101)."""
    t = torch.arange(-DEFOCUS_HALF_WIDTH, DEFOCUS_HALF_WIDTH + 1, dtype=torch.float64)
    disk = ((t[None, :] ** 2 + t[:, None] ** 2) <= radius**2).to(torch.float64)
    disk = disk / disk.sum()
    smooth = gaussian_kernel_1d(alias_blur, 1)
    return _filter_separable(disk[None, None], smooth, "reflect")[0, 0]


def defocus_blur(
    x: torch.Tensor, radius_alias: tuple[float, float], generator: torch.Generator
) -> torch.Tensor:
    """cv2.filter2D with the defocus kernel per channel, mirrored edges (BORDER_REFLECT_101)."""
    kernel = defocus_kernel(*radius_alias).to(x.device, x.dtype)
    n, c, h, w = x.shape
    if min(h, w) <= DEFOCUS_HALF_WIDTH:
        raise ValueError(f"defocus_blur needs images larger than {DEFOCUS_HALF_WIDTH} pixels, got {h}x{w}")
    flat = F.pad(x.reshape(n * c, 1, h, w), (DEFOCUS_HALF_WIDTH,) * 4, mode="reflect")
    return F.conv2d(flat, kernel[None, None]).reshape(n, c, h, w)


def brightness(x: torch.Tensor, shift: float, generator: torch.Generator) -> torch.Tensor:
    """Add `shift` to the HSV value channel. Hue and saturation fixed means every channel scales by
    V'/V; a black pixel (V = 0, saturation 0 by convention) becomes grey V'."""
    value = x.amax(dim=1, keepdim=True)
    shifted = (value + shift).clamp(0.0, 1.0)
    scaled = x * (shifted / value.clamp_min(torch.finfo(x.dtype).tiny))
    return torch.where(value > 0, scaled, shifted.expand_as(x))


def contrast(x: torch.Tensor, factor: float, generator: torch.Generator) -> torch.Tensor:
    """Pull each channel toward its own mean over the image."""
    means = x.mean(dim=(2, 3), keepdim=True)
    return (x - means) * factor + means


def _through_pil(x: torch.Tensor, operation: Callable[[Image.Image], Image.Image]) -> torch.Tensor:
    """Apply a Pillow operation image by image on the 8-bit version of x."""
    pixels = (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = np.empty_like(pixels)
    for index, image in enumerate(pixels):
        # a 2-D uint8 array opens as mode L, an H x W x 3 one as RGB
        result = np.asarray(operation(Image.fromarray(image.squeeze(-1) if x.shape[1] == 1 else image)))
        out[index] = result.reshape(image.shape)
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255


def pixelate(x: torch.Tensor, factor: float, generator: torch.Generator) -> torch.Tensor:
    """Box-downsample to int(size * factor) and box-upsample back (PIL.Image.Resampling.BOX both ways)."""
    height, width = x.shape[2:]
    small = (int(width * factor), int(height * factor))
    return _through_pil(
        x, lambda im: im.resize(small, Image.Resampling.BOX).resize((width, height), Image.Resampling.BOX)
    )


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert(image.mode)


def jpeg_compression(x: torch.Tensor, quality: int, generator: torch.Generator) -> torch.Tensor:
    return _through_pil(x, lambda im: _jpeg(im, quality))


# name -> (function(x, constant, generator), constants for severities 1..5)
GENERATED_CORRUPTIONS: dict[str, tuple[Callable[..., torch.Tensor], tuple[Any, ...]]] = {
    "gaussian_noise": (gaussian_noise, GAUSSIAN_NOISE_STD),
    "shot_noise": (shot_noise, SHOT_NOISE_PHOTONS),
    "impulse_noise": (impulse_noise, IMPULSE_NOISE_AMOUNT),
    "speckle_noise": (speckle_noise, SPECKLE_NOISE_STD),
    "gaussian_blur": (gaussian_blur, GAUSSIAN_BLUR_SIGMA),
    "defocus_blur": (defocus_blur, DEFOCUS_BLUR_RADIUS_ALIAS),
    "brightness": (brightness, BRIGHTNESS_SHIFT),
    "contrast": (contrast, CONTRAST_FACTOR),
    "pixelate": (pixelate, PIXELATE_FACTOR),
    "jpeg_compression": (jpeg_compression, JPEG_QUALITY),
}


def available_corruptions() -> list[str]:
    """Names of the corruptions generated in code."""
    return list(GENERATED_CORRUPTIONS)


def check_corruption(name: str, severity: int) -> None:
    """ValueError naming the valid choices when the corruption or severity is unknown."""
    if name not in GENERATED_CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; valid: {', '.join(GENERATED_CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")


def corrupt(x: torch.Tensor, name: str, severity: int, generator: torch.Generator) -> torch.Tensor:
    """The corruption `name` at `severity` (1..5) of float images x in [0, 1], shaped (N, 1|3, H, W)."""
    check_corruption(name, severity)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point():
        raise ValueError(f"expected float images shaped (N, 1 or 3, H, W), got {x.dtype} {tuple(x.shape)}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"images must lie in [0, 1], got values in [{x.min():.3g}, {x.max():.3g}]")
    function, constants = GENERATED_CORRUPTIONS[name]
    out = function(x, constants[severity - 1], generator)
    return (out.clamp(0.0, 1.0) * 255).round() / 255
