"""Deep InfoMax's convolutional encoder for small images (28x28 and 32x32).

Hjelm et al., "Learning deep representations by mutual information estimation and maximization",
ICLR 2019, arXiv:1808.06670, appendix A.2 (the DCGAN-like encoder used for CIFAR10 and the
Tiny ImageNet-free small-image experiments): three 4x4 stride-2 convolutions with 64, 128 and 256
channels, a fully connected layer of 1024 units and a linear 64-d representation, with batch norm
and ReLU after every layer but the last. The local feature map is the output of the 128-channel
convolution: 7x7 for 28x28 inputs, 8x8 for 32x32.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["DIMConvEncoder"]


def _side(size: int) -> int:
    """Side after a 4x4, stride-2, padding-1 convolution."""
    return (size + 2 - 4) // 2 + 1


class DIMConvEncoder(nn.Module):
    """DIM's conv 64-128-256 -> FC 1024 -> 64 encoder (registered as encoder ``dim``).

    ``forward(x)`` returns the kit's feature mapping:

    * ``"global"`` ``(B, dim)``: the representation Y = E(x) (64-d by default);
    * ``"fc"`` ``(B, 1024)``: the hidden fully connected layer;
    * ``"local"`` ``(B, 128, M, M)``: the 128-channel map DIM's local objective reads (M = 7 for
      28x28 inputs, 8 for 32x32);
    * ``"conv"`` ``(B, 256, M', M')``: the last convolution's output (3x3 or 4x4).

    Made for 28x28 and 32x32 images; any side from 16 up works (the map sizes follow). Options:
    ``dim`` (representation size), ``batch_norm`` (off for exact multi-process comparisons: batch
    statistics are per process under DDP).

    >>> import torch
    >>> enc = DIMConvEncoder(1, 28)
    >>> {k: tuple(v.shape) for k, v in enc(torch.zeros(2, 1, 28, 28)).items()}
    {'global': (2, 64), 'fc': (2, 1024), 'local': (2, 128, 7, 7), 'conv': (2, 256, 3, 3)}
    """

    default_local = "local"
    default_probe = ("conv",)

    def __init__(self, in_channels: int, image_size: int, *, dim: int = 64, hidden: int = 1024,
                 batch_norm: bool = True) -> None:
        super().__init__()
        if image_size < 16:
            raise ValueError(f"the DIM encoder needs images of at least 16x16 (made for 28 and 32), got "
                             f"{image_size}; resize with --image-size 32")
        if in_channels < 1 or dim < 1:
            raise ValueError(f"in_channels and dim must be positive, got {in_channels} and {dim}")

        def block(cin: int, cout: int) -> nn.Sequential:
            layers = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            return nn.Sequential(*layers, nn.ReLU(inplace=True))

        self.conv1 = block(in_channels, 64)
        self.conv2 = block(64, 128)
        self.conv3 = block(128, 256)
        side = _side(_side(_side(image_size)))
        fc = [nn.Flatten(), nn.Linear(256 * side * side, hidden, bias=not batch_norm)]
        if batch_norm:
            fc.append(nn.BatchNorm1d(hidden))
        self.fc = nn.Sequential(*fc, nn.ReLU(inplace=True))
        self.head = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        local = self.conv2(self.conv1(x))  # (B, 128, M, M)
        conv = self.conv3(local)  # (B, 256, M', M')
        hidden = self.fc(conv)  # (B, 1024)
        return {"global": self.head(hidden), "fc": hidden, "local": local, "conv": conv}
