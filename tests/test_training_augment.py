"""Batched augmentation against naive per-image references."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mi_estimators.training import Augment, two_views
from mi_estimators.training.augment import colour_jitter, random_flip, random_grayscale, random_translate


def _naive_crops(img: torch.Tensor, pad: int) -> list[torch.Tensor]:
    padded = F.pad(img[None], (pad,) * 4, mode="reflect")[0]
    h, w = img.shape[-2:]
    return [padded[:, i:i + h, j:j + w] for i in range(2 * pad + 1) for j in range(2 * pad + 1)]


def test_translate_is_a_reflection_padded_crop():
    x = torch.rand(12, 2, 7, 9)
    out = random_translate(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for img, res in zip(x, out):
        assert any(torch.equal(res, c) for c in _naive_crops(img, 2))
    assert not torch.equal(out, x)


def test_flip_mirrors_some_images_only():
    x = torch.rand(64, 1, 5, 5)
    out = random_flip(x, 0.5, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f or s for f, s in zip(flipped, same)) and 10 < sum(flipped) < 54


def test_two_views_share_the_flip_when_asked():
    x = torch.rand(64, 1, 6, 6)
    aug = Augment(flip=True)
    g = torch.Generator().manual_seed(1)
    v1, v2 = two_views(x, aug, shared_flip=True, generator=g)
    assert torch.equal(v1, v2)  # the only randomness is the shared flip
    assert any(torch.equal(a, b.flip(-1)) for a, b in zip(v1, x))
    v1, v2 = two_views(x, aug, generator=g)
    assert not torch.equal(v1, v2)  # independent flips


def test_colour_only_where_there_is_colour():
    gray = torch.rand(8, 1, 4, 4)
    assert torch.equal(random_grayscale(gray, 1.0), gray)
    rgb = torch.rand(8, 3, 4, 4)
    g = random_grayscale(rgb, 1.0)
    assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 1], g[:, 2])
    expected = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    torch.testing.assert_close(g[:, 0], expected)
    j = colour_jitter(rgb, 0.4, 0.4, 0.4, torch.Generator().manual_seed(0))
    assert j.shape == rgb.shape and j.min() >= 0 and j.max() <= 1 and not torch.equal(j, rgb)
    aug = Augment(colour=0.4, grayscale=0.5)
    assert torch.equal(aug(gray), gray)


def test_resized_crop_keeps_shape():
    x = torch.rand(4, 3, 8, 8)
    small = Augment(crop_scale=(0.2, 0.3))(x, torch.Generator().manual_seed(0))
    assert small.shape == x.shape and not torch.allclose(small, x)
