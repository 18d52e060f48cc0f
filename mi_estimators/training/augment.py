"""Batched image augmentation on tensors, on whatever device the batch lives on.

Every operation draws one random parameter per image and applies all images at once (no Python
loop over the batch). Randomness comes from torch's generator of the batch's device (seeded by the
trainer and saved in checkpoints), or from an explicit ``generator``.

>>> import torch
>>> aug = Augment(translate=2, flip=True)
>>> x = torch.rand(16, 1, 28, 28)
>>> v1, v2 = two_views(x, aug)
>>> v1.shape, bool((v1 != v2).any())
(torch.Size([16, 1, 28, 28]), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mi_estimators.options import integer, non_negative_float, unit_interval_float

__all__ = ["Augment", "two_views", "random_translate", "random_flip", "colour_jitter", "random_grayscale",
           "random_resized_crop", "random_erasing", "gaussian_noise"]

_LUMA = (0.299, 0.587, 0.114)


def _uniform(n: int, lo: float, hi: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, device=like.device, generator=generator, dtype=torch.float32).mul_(hi - lo).add_(lo)


def random_translate(x: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """Shift each image by an integer offset in ``[-pad, pad]`` on both axes; borders reflect.

    Equivalent to reflection-padding by ``pad`` and taking a random crop of the original size.
    """
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    if pad >= min(h, w):
        raise ValueError(f"translate={pad} must be smaller than the image side ({h}x{w})")
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    bidx = torch.arange(b, device=x.device)[:, None, None, None]
    cidx = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bidx, cidx, rows, cols]


def random_resized_crop(x: Tensor, scale: tuple[float, float], ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        generator: torch.Generator | None = None) -> Tensor:
    """Crop a random area fraction in ``scale`` with aspect ratio in ``ratio`` and resize it back
    to the input size (bilinear, reflection at the borders), one crop per image."""
    b = x.shape[0]
    area = _uniform(b, scale[0], scale[1], x, generator)
    log_r = _uniform(b, float(torch.log(torch.tensor(ratio[0]))), float(torch.log(torch.tensor(ratio[1]))), x,
                     generator)
    r = log_r.exp()
    sw = (area * r).sqrt().clamp(max=1.0)  # fraction of the width
    sh = (area / r).sqrt().clamp(max=1.0)
    cx = (torch.rand(b, device=x.device, generator=generator) * 2 - 1) * (1 - sw)
    cy = (torch.rand(b, device=x.device, generator=generator) * 2 - 1) * (1 - sh)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sw, cx, sh, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_flip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each image left-right with probability ``p``."""
    if p <= 0:
        return x
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _gray(x: Tensor) -> Tensor:
    w = torch.tensor(_LUMA, device=x.device, dtype=x.dtype)[None, :, None, None]
    return (x * w).sum(dim=1, keepdim=True)


def colour_jitter(x: Tensor, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                  generator: torch.Generator | None = None) -> Tensor:
    """Random brightness, contrast and saturation factors in ``[1 - s, 1 + s]`` per image
    (saturation only for 3-channel images); images are expected in [0, 1] and clamped back."""
    b = x.shape[0]
    if brightness > 0:
        x = x * _uniform(b, 1 - brightness, 1 + brightness, x, generator)[:, None, None, None]
    if contrast > 0:
        mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True) if x.shape[1] == 3 else x.mean(dim=(1, 2, 3), keepdim=True)
        f = _uniform(b, 1 - contrast, 1 + contrast, x, generator)[:, None, None, None]
        x = mean + f * (x - mean)
    if saturation > 0 and x.shape[1] == 3:
        f = _uniform(b, 1 - saturation, 1 + saturation, x, generator)[:, None, None, None]
        g = _gray(x)
        x = g + f * (x - g)
    return x.clamp(0, 1)


def random_grayscale(x: Tensor, p: float = 0.25, generator: torch.Generator | None = None) -> Tensor:
    """Replace a 3-channel image by its luma (repeated on 3 channels) with probability ``p``."""
    if p <= 0 or x.shape[1] != 3:
        return x
    pick = torch.rand(x.shape[0], device=x.device, generator=generator) < p
    return torch.where(pick[:, None, None, None], _gray(x).expand_as(x), x)


def random_erasing(x: Tensor, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.33),
                   ratio: tuple[float, float] = (0.3, 3.3), generator: torch.Generator | None = None) -> Tensor:
    """Random erasing (Zhong et al., AAAI 2020, arXiv:1708.04896): with probability ``p`` per image,
    one axis-aligned rectangle of area fraction in ``scale`` and aspect ratio (height / width) in
    ``ratio`` (log-uniform), clipped to the image, is filled with the image's mean per channel."""
    b, _, h, w = x.shape
    if p <= 0:
        return x
    area = _uniform(b, scale[0], scale[1], x, generator) * (h * w)
    r = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), x, generator).exp()
    eh = (area * r).sqrt().round().clamp(1, h).long()
    ew = (area / r).sqrt().round().clamp(1, w).long()
    y0 = (torch.rand(b, device=x.device, generator=generator) * (h - eh + 1)).long()
    x0 = (torch.rand(b, device=x.device, generator=generator) * (w - ew + 1)).long()
    apply = torch.rand(b, device=x.device, generator=generator) < p
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    inside_r = (rows[None] >= y0[:, None]) & (rows[None] < (y0 + eh)[:, None])       # (B, H)
    inside_c = (cols[None] >= x0[:, None]) & (cols[None] < (x0 + ew)[:, None])       # (B, W)
    mask = (inside_r[:, :, None] & inside_c[:, None, :] & apply[:, None, None])[:, None]  # (B, 1, H, W)
    return torch.where(mask, x.mean(dim=(2, 3), keepdim=True), x)


def gaussian_noise(x: Tensor, std: float, generator: torch.Generator | None = None) -> Tensor:
    """Add independent ``N(0, std²)`` noise to every pixel, then clamp back to [0, 1]."""
    if std <= 0:
        return x
    noise = torch.randn(x.shape, device=x.device, generator=generator, dtype=x.dtype)
    return x.add(noise, alpha=std).clamp_(0, 1)


@dataclass
class Augment:
    """A random augmentation applied to a batch ``(B, C, H, W)`` of floats in [0, 1].

    Order: random resized crop (when ``crop_scale`` is set), random translation with reflection
    padding (``translate`` pixels), horizontal flip, colour jitter and random grayscale (these
    two only where there is colour, i.e. 3 channels; ``colour`` is the jitter strength), then the
    ones for any number of channels, 1-channel images included: brightness and contrast jitter
    (factors in ``[1 - s, 1 + s]``), random erasing (probability ``erase`` per image) and Gaussian
    noise (standard deviation ``noise``).
    """

    translate: int = 0
    crop_scale: tuple[float, float] | None = None
    flip: bool = False
    colour: float = 0.0
    grayscale: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    erase: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        integer("translate", self.translate, 0, " pixels")
        if self.crop_scale is not None and not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        unit_interval_float("grayscale", self.grayscale, " (a probability)")
        unit_interval_float("erase", self.erase, " (a probability)")
        for name in ("colour", "brightness", "contrast"):
            unit_interval_float(name, getattr(self, name), " (jitter strength s: factors in [1 - s, 1 + s])",
                                open_right=True)
        non_negative_float("noise", self.noise, " (standard deviation, on the [0, 1] scale)")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None, *, flip: bool | None = None) -> Tensor:
        flip = self.flip if flip is None else flip
        if self.crop_scale is not None:
            x = random_resized_crop(x, self.crop_scale, generator=generator)
        x = random_translate(x, self.translate, generator)
        if flip:
            x = random_flip(x, 0.5, generator)
        if self.colour > 0 and x.shape[1] == 3:
            x = colour_jitter(x, self.colour, self.colour, self.colour, generator)
        x = random_grayscale(x, self.grayscale, generator)
        if self.brightness > 0 or self.contrast > 0:
            x = colour_jitter(x, self.brightness, self.contrast, 0.0, generator)
        x = random_erasing(x, self.erase, generator=generator)
        return gaussian_noise(x, self.noise, generator)


def two_views(x: Tensor, augment: Augment, *, shared_flip: bool = False,
              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two independently augmented views of each image in the batch.

    ``shared_flip=True`` (AMDIM): one random horizontal flip is applied to the image *before* the
    two views are made, so both views share it; the per-view flip is then switched off.
    """
    if shared_flip:
        x = random_flip(x, 0.5, generator)
        return augment(x, generator, flip=False), augment(x, generator, flip=False)
    return augment(x, generator), augment(x, generator)
