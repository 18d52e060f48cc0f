"""The AMDIM encoder: a residual convnet that exposes features at three scales.

After Bachman, Hjelm & Buchwalter (2019), "Learning Representations by Maximizing Mutual
Information Across Views", arXiv:1906.00910, Algorithm "ImageNet Encoder Architecture"::

    ReLU(Conv2d(3, ndf, 5, 2, 2))
    ReLU(Conv2d(ndf, ndf, 3, 1, 0))
    ResBlock(1*ndf, 2*ndf, 4, 2, ndepth)
    ResBlock(2*ndf, 4*ndf, 4, 2, ndepth)
    ResBlock(4*ndf, 8*ndf, 2, 2, ndepth)   -> f7
    ResBlock(8*ndf, 8*ndf, 3, 1, ndepth)   -> f5
    ResBlock(8*ndf, 8*ndf, 3, 1, ndepth)
    ResBlock(8*ndf, nrkhs, 3, 1, 1)        -> f1

``ResBlock(n_in, n_out, k, s, depth)`` is one residual unit with a ``k×k`` stride-``s`` convolution
followed by ``depth - 1`` residual units of 1×1 convolutions (the spatial size only changes in the
first one). Each unit is ``conv k×k -> ReLU -> conv 1×1 -> ReLU -> conv 1×1`` plus a shortcut that
average-pools the input with the same window and stride and projects its channels with a 1×1
convolution when they change. Batch norm is optional (``use_bn``, off by default as in the
authors' code).

Scales by input size (``image_size``):

=========================  ======================  ==========  ==========  ========
input                      stem                    f7          f5          f1
=========================  ======================  ==========  ==========  ========
128×128 (ImageNet, paper)  5×5 stride 2, 3×3       7×7, 8ndf   5×5, 8ndf   n_rkhs
64×64                      5×5 stride 1, 3×3       7×7, 8ndf   5×5, 8ndf   n_rkhs
28×28, 32×32 (small)       3×3 padded to 30×30     7×7, 4ndf   5×5, 4ndf   n_rkhs
=========================  ======================  ==========  ==========  ========

For small inputs one stride-2 stage is dropped (a 32×32 image has no room for three), so the
7×7 map comes out of the 2ndf→4ndf block; the spatial sizes are exactly the paper's 7, 5 and 1.
f5 and the blocks above it keep the width of f7 by default, as in the authors' code for 32×32
inputs (``top_width=8`` widens them to 8ndf, 2.3× the parameters at the same depth; see the
plugin's README for what that costs and buys). Other sizes work too: large inputs use stride
``image_size // 64`` in the stem, small ones (<= 48) pad or crop the stem to 30×30; f7/f5 are
then the maps at the same depth (not necessarily 7×7/5×5) and f1 is always average-pooled to a
vector.

The encoder returns a dict of named features, following the trainer kit's convention:
``"global"`` (= ``"f1"``, shape ``(B, n_rkhs)``), ``"local"`` (= ``"f7"``, the finest local map)
and ``"f5"``/``"f7"`` (``(B, C, H, W)``).

>>> import torch
>>> enc = AMDIMEncoder(1, 28, ndf=8, n_rkhs=32, n_depth=1)
>>> feats = enc(torch.randn(2, 1, 28, 28))
>>> tuple(feats["f1"].shape), tuple(feats["f5"].shape), tuple(feats["f7"].shape)
((2, 32), (2, 32, 5, 5), (2, 32, 7, 7))
"""

from __future__ import annotations

from torch import Tensor, nn

from mi_estimators.options import integer, optional, positive_int
from mi_estimators.training.encoders import feature_shapes  # re-exported: the kit's one copy

__all__ = ["AMDIMEncoder", "ResBlock", "ResUnit", "feature_shapes"]

SMALL_MAX = 48  # inputs up to this size get the small-image stem


class ResUnit(nn.Module):
    """``conv k×k (stride s) -> ReLU -> conv 1×1 -> ReLU -> conv 1×1`` plus a pooled shortcut."""

    def __init__(self, n_in: int, n_out: int, kernel: int, stride: int, use_bn: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_in, n_out, kernel, stride, 0, bias=not use_bn),
            nn.BatchNorm2d(n_out) if use_bn else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_out, n_out, 1, bias=not use_bn),
            nn.BatchNorm2d(n_out) if use_bn else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_out, n_out, 1),
        )
        pool = nn.Identity() if kernel == 1 and stride == 1 else nn.AvgPool2d(kernel, stride)
        proj = nn.Identity() if n_in == n_out else nn.Conv2d(n_in, n_out, 1, bias=False)
        self.shortcut = nn.Sequential(pool, proj)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class ResBlock(nn.Sequential):
    """One ``kernel×kernel`` stride-``stride`` unit, then ``depth - 1`` 1×1 units, ReLU between."""

    def __init__(self, n_in: int, n_out: int, kernel: int, stride: int, depth: int,
                 use_bn: bool = False):
        if depth < 1:
            raise ValueError(f"a ResBlock needs depth >= 1, got {depth}")
        units: list[nn.Module] = [ResUnit(n_in, n_out, kernel, stride, use_bn)]
        for _ in range(depth - 1):
            units += [nn.ReLU(), ResUnit(n_out, n_out, 1, 1, use_bn)]
        super().__init__(*units)


class AMDIMEncoder(nn.Module):
    """AMDIM's multiscale encoder (Bachman et al. 2019, arXiv:1906.00910); see the module docstring.

    Parameters
    ----------
    in_channels, image_size:
        Input images are ``(B, in_channels, image_size, image_size)``; ``image_size >= 28``.
    ndf:
        Base width; the blocks widen ndf → 2ndf → 4ndf (→ 8ndf) (paper: 128 on CIFAR, 192/320
        on ImageNet; 16–32 runs on a CPU).
    n_rkhs:
        Width of f1, the global representation (paper: 1024–2560).
    n_depth:
        Units per ResBlock (paper: 3–8 on ImageNet, 10 on CIFAR).
    use_bn:
        Batch norm inside the units (off by default, as in the authors' code; on, it costs
        about a fifth of the step's speed on the CPU).
    top_width:
        Width of f5 and of the blocks above it, in multiples of ``ndf``. None: the authors' (4
        for small inputs, the width of f7; 8 for 64 px and more).
    """

    def __init__(self, in_channels: int, image_size: int, *, ndf: int = 64, n_rkhs: int = 512,
                 n_depth: int = 3, use_bn: bool = False, top_width: int | None = None):
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("image_size", image_size, 28),
                                 ("ndf", ndf, 1), ("n_rkhs", n_rkhs, 1), ("n_depth", n_depth, 1)):
            integer(name, value, low, " (AMDIMEncoder)")
        optional(positive_int, "top_width", top_width, " (a multiple of ndf), or None for the authors' width")
        self.in_channels, self.image_size = in_channels, image_size
        self.ndf, self.n_rkhs, self.n_depth = ndf, n_rkhs, n_depth
        self.small = image_size <= SMALL_MAX
        f7 = (4 if self.small else 8) * ndf
        top = top_width * ndf if top_width is not None else f7
        self.stem, self.to_f7 = self._lower(in_channels, image_size, ndf, n_depth, use_bn)
        self.to_f5 = ResBlock(f7, top, 3, 1, n_depth, use_bn)
        self.to_f1 = nn.Sequential(nn.ReLU(), ResBlock(top, top, 3, 1, n_depth, use_bn),
                                   nn.ReLU(), ResBlock(top, n_rkhs, 3, 1, 1, use_bn),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.relu = nn.ReLU()
        self.channels = {"f1": n_rkhs, "f5": top, "f7": f7}
        self.default_local = "f7"  # the map a single-scale trainer (DIM) uses

    def _lower(self, in_channels: int, image_size: int, ndf: int, n_depth: int, use_bn: bool):
        """The stem and the stride-2 blocks up to f7."""
        if self.small:
            # 3×3 conv padded (or cropped) so that the map entering the residual stages is 30×30.
            pad = 32 - image_size
            stem = nn.Sequential(nn.ZeroPad2d((pad // 2, pad - pad // 2, pad // 2, pad - pad // 2)),
                                 nn.Conv2d(in_channels, ndf, 3, 1, 0), nn.ReLU(inplace=True))
            return stem, nn.Sequential(ResBlock(ndf, 2 * ndf, 4, 2, n_depth, use_bn),
                                       ResBlock(2 * ndf, 4 * ndf, 2, 2, n_depth, use_bn))
        stem = nn.Sequential(nn.Conv2d(in_channels, ndf, 5, max(1, image_size // 64), 2), nn.ReLU(inplace=True),
                             nn.Conv2d(ndf, ndf, 3, 1, 0), nn.ReLU(inplace=True))
        return stem, nn.Sequential(ResBlock(ndf, 2 * ndf, 4, 2, n_depth, use_bn),
                                   ResBlock(2 * ndf, 4 * ndf, 4, 2, n_depth, use_bn),
                                   ResBlock(4 * ndf, 8 * ndf, 2, 2, n_depth, use_bn))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (B, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        f7 = self.to_f7(self.stem(x))
        f5 = self.to_f5(self.relu(f7))
        f1 = self.to_f1(f5)
        return {"global": f1, "local": f7, "f1": f1, "f5": f5, "f7": f7}
