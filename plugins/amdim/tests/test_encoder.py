"""Shapes of the AMDIM encoder's features for each supported input size, and its registration."""

from __future__ import annotations

import pytest
import torch

from mi_estimators import registry
from mi_estimators_amdim.encoder import AMDIMEncoder, feature_shapes


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3), (128, 3)])
def test_encoder_scales(size, channels):
    enc = AMDIMEncoder(channels, size, ndf=4, n_rkhs=24, n_depth=2, top_width=8)
    shapes = feature_shapes(enc, channels, size)
    assert shapes["f1"] == (24,)
    assert shapes["f7"][1:] == (7, 7) and shapes["f5"][1:] == (5, 5)
    assert shapes["f7"][0] == (16 if size <= 32 else 32) and shapes["f5"][0] == 32
    assert shapes["global"] == shapes["f1"] and shapes["local"] == shapes["f7"]


@pytest.mark.parametrize("size,f7,f5", [(28, 16, 16), (32, 16, 16), (64, 32, 32), (128, 32, 32)])
def test_default_widths_are_the_authors(size, f7, f5):
    """f5 and the blocks above keep f7's width (4ndf below 64 px, 8ndf from 64 px); no batch norm."""
    enc = AMDIMEncoder(3, size, ndf=4, n_rkhs=24, n_depth=2)
    shapes = feature_shapes(enc, 3, size)
    assert (shapes["f7"][0], shapes["f5"][0]) == (f7, f5) and enc.channels == {"f1": 24, "f5": f5, "f7": f7}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules())
    with_bn = AMDIMEncoder(3, size, ndf=4, n_rkhs=24, n_depth=2, use_bn=True)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in with_bn.modules())
    narrow, wide = (sum(p.numel() for p in e.parameters()) for e in (enc, AMDIMEncoder(3, size, ndf=4, n_rkhs=24,
                                                                                        n_depth=2, top_width=8)))
    assert narrow < wide if size <= 32 else narrow == wide


def test_registered_as_encoder_and_backpropagates():
    factory = registry.lookup("amdim", "encoders")
    enc = factory(3, 32, ndf=4, n_rkhs=8, n_depth=1)
    out = enc(torch.rand(3, 3, 32, 32))
    out["f1"].sum().backward()
    assert all(p.grad is not None for p in enc.to_f1.parameters())


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="image_size"):
        AMDIMEncoder(1, 16)
    with pytest.raises(ValueError, match="ndf"):
        AMDIMEncoder(1, 28, ndf=0)
    with pytest.raises(ValueError, match="top_width"):
        AMDIMEncoder(1, 28, ndf=4, top_width=0)
    with pytest.raises(ValueError, match="shape"):
        AMDIMEncoder(1, 28, ndf=4, n_rkhs=8)(torch.rand(2, 3, 28, 28))
