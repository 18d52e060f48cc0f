"""Embedding heads of the encode-and-dot-product critics that DIM and AMDIM share.

Both trainers score a pair of features by embedding each side into a common space and taking the
dot product (DIM: Hjelm et al. 2019, appendix A.2; AMDIM: Bachman et al. 2019, eq. 16, where the
heads make the critic linear in a learned RKHS). The embedding is a residual two-layer MLP,

    phi(x) = W2 ReLU(W1 x) + P x,

on vectors, or the same applied at every location of a feature map with 1x1 convolutions.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["EmbedHead"]


class EmbedHead(nn.Module):
    """``phi(x) = W2 ReLU(W1 x) + P x``.

    ``spatial=False``: on vectors, ``(B, ...) -> (B, n_out)`` (the input is flattened, so a whole
    feature map can be embedded as one vector). ``spatial=True``: 1x1 convolutions at every
    location, ``(B, n_in, H, W) -> (B, n_out, H, W)``. ``hidden`` defaults to ``n_out``.

    >>> import torch
    >>> EmbedHead(8, 4)(torch.randn(2, 8)).shape
    torch.Size([2, 4])
    >>> EmbedHead(8, 4, spatial=True)(torch.randn(2, 8, 5, 5)).shape
    torch.Size([2, 4, 5, 5])
    """

    def __init__(self, n_in: int, n_out: int, hidden: int | None = None, *, spatial: bool = False) -> None:
        super().__init__()
        hidden = hidden or n_out
        self.spatial = spatial

        def layer(i: int, o: int, bias: bool = True) -> nn.Module:
            return nn.Conv2d(i, o, 1, bias=bias) if spatial else nn.Linear(i, o, bias=bias)

        self.mlp = nn.Sequential(layer(n_in, hidden), nn.ReLU(inplace=True), layer(hidden, n_out))
        self.proj = layer(n_in, n_out, bias=False)  # the MLP's last bias already offsets the sum

    def forward(self, x: Tensor) -> Tensor:
        if not self.spatial:
            x = x.flatten(1)
        return self.mlp(x) + self.proj(x)
