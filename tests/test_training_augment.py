"""Batched augmentation against naive per-image references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mi_estimators.training import Augment, two_views
from mi_estimators.training.augment import (colour_jitter, gaussian_noise, random_erasing, random_flip,
                                            random_grayscale, random_translate)


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


def test_brightness_and_contrast_jitter_1_channel_is_the_per_image_formula():
    """Per image: out = m' + c (b x - m') with m' = b mean(x), b and c in [1 - s, 1 + s]; recovered
    from each output and checked pixel by pixel (no clamping at these values)."""
    s = 0.3
    x = 0.25 + 0.5 * torch.rand(32, 1, 6, 6)
    out = Augment(brightness=s, contrast=s)(x, torch.Generator().manual_seed(0))
    factors = []
    for img, res in zip(x, out):
        b = float(res.mean() / img.mean())
        c = float((res - res.mean()).norm() / (b * (img - img.mean())).norm())
        expected = b * img.mean() + c * (b * img - b * img.mean())
        torch.testing.assert_close(res, expected, rtol=1e-5, atol=1e-5)
        assert 1 - s - 1e-5 <= b <= 1 + s + 1e-5 and 1 - s - 1e-5 <= c <= 1 + s + 1e-5
        factors.append((b, c))
    assert len({round(b, 4) for b, _ in factors}) == 32  # one draw per image
    assert torch.equal(Augment(brightness=0.0, contrast=0.0)(x), x)


def _rectangle(changed: torch.Tensor) -> tuple[int, int] | None:
    """(height, width) if the True entries of a 2-d mask form one filled axis-aligned rectangle."""
    if not changed.any():
        return None
    rows, cols = changed.any(dim=1).nonzero()[:, 0], changed.any(dim=0).nonzero()[:, 0]
    h, w = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
    assert len(rows) == h and len(cols) == w and int(changed.sum()) == h * w, "not one rectangle"
    return h, w


def test_random_erasing_fills_one_rectangle_with_the_image_mean():
    x = torch.rand(64, 2, 20, 20)
    out = random_erasing(x, 0.5, scale=(0.05, 0.3), ratio=(0.5, 2.0), generator=torch.Generator().manual_seed(0))
    erased = 0
    for img, res in zip(x, out):
        box = _rectangle((res != img).any(dim=0))
        if box is None:
            continue
        erased += 1
        h, w = box
        assert 0.05 * 400 * 0.5 <= h * w <= 0.3 * 400 * 2       # area after rounding to whole pixels
        assert 0.5 / 3 <= h / w <= 2.0 * 3
        changed = (res != img).any(dim=0)
        for ch in range(2):
            torch.testing.assert_close(res[ch][changed], img[ch].mean().expand(h * w))
    assert 16 < erased < 48
    assert torch.equal(random_erasing(x, 0.0), x)
    every = random_erasing(x, 1.0, generator=torch.Generator().manual_seed(1))
    assert all((e != i).any() for e, i in zip(every, x))


def test_gaussian_noise_is_independent_per_pixel_and_clamped():
    x = torch.full((256, 1, 8, 8), 0.5)
    out = gaussian_noise(x, 0.05, torch.Generator().manual_seed(0))
    noise = out - x
    assert abs(float(noise.mean())) < 0.002 and abs(float(noise.std()) - 0.05) < 0.002
    per_image = noise.flatten(1)
    assert abs(float(torch.corrcoef(per_image[:, :2].T)[0, 1])) < 0.2       # pixels independent
    bright = gaussian_noise(torch.ones(4, 1, 8, 8), 0.5, torch.Generator().manual_seed(1))
    assert bright.max() <= 1 and bright.min() >= 0 and (bright < 1).any()
    assert torch.equal(gaussian_noise(x, 0.0), x)


def test_one_channel_augmentations_are_on_and_validated():
    x = torch.rand(8, 1, 12, 12)
    aug = Augment(brightness=0.4, contrast=0.4, erase=0.5, noise=0.05)
    v1, v2 = two_views(x, aug, generator=torch.Generator().manual_seed(0))
    assert v1.shape == x.shape and not torch.equal(v1, v2) and v1.min() >= 0 and v1.max() <= 1
    for bad, message in (({"erase": 1.5}, "erase"), ({"noise": -0.1}, "noise"), ({"brightness": 1.0}, "brightness"),
                         ({"translate": -1}, "translate")):
        with pytest.raises(ValueError, match=message):
            Augment(**bad)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_every_augmentation_on_device(device):
    """Every operation runs batched on the batch's device with that device's generator, and is
    reproducible from the generator's seed."""
    x = torch.rand(16, 3, 20, 20, device=device)
    aug = Augment(translate=2, crop_scale=(0.3, 1.0), flip=True, colour=0.4, grayscale=0.5, brightness=0.3,
                  contrast=0.3, erase=0.5, noise=0.05)
    views = [two_views(x, aug, shared_flip=True, generator=torch.Generator(device=device).manual_seed(3))
             for _ in range(2)]
    for v in views[0]:
        assert v.device == x.device and v.shape == x.shape and v.min() >= 0 and v.max() <= 1
    assert not torch.equal(views[0][0], views[0][1])
    torch.testing.assert_close(views[0][0], views[1][0])
    gray = Augment(brightness=0.3, contrast=0.3, erase=1.0, noise=0.05)(x[:, :1])
    assert gray.device == x.device and not torch.equal(gray, x[:, :1])
