"""``check_encoder``: the encoder contract of the trainer kit, checked with hypothesis.

An encoder is built as ``factory(in_channels, image_size, **options)`` and maps images
``(B, in_channels, image_size, image_size)`` to a dict with ``"global"`` ``(B, D)`` and at least one
local map ``(B, C, H, W)`` (:mod:`mi_estimators.training.encoders`). The properties
(``ENCODER_PROPERTIES``):

* **features follow the contract**: for every ``in_channels``, batch size, train and eval mode and
  device: the dict and its shapes (each feature's shape without the batch axis the same at every
  batch size and in both modes), finite floating-point features on the input's device, the
  input unchanged, and ``default_local`` / ``default_probe`` (when set) naming features that exist.
  Batch size 1 is checked in eval mode only (batch norm cannot train on one image).
* **eval features are per-sample**: in eval mode a sample's features do not depend on the rest
  of the batch (no batch statistics leak into evaluation).
* **gradients reach every parameter**: a weighted sum of every feature gives every parameter a
  finite gradient (a parameter without one also breaks DDP).
* **same features on every device** (with more than one device, e.g. CUDA present): the encoder
  moved to each device gives the CPU's eval features, to TF32 accuracy.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, Iterable, Sequence

import torch
from hypothesis import settings as Settings
from hypothesis import strategies as st
from torch import Tensor

from mi_estimators.testing._core import Subject, require, run, selected

__all__ = ["ENCODER_PROPERTIES", "HINTS", "check_encoder"]

ENCODER_PROPERTIES = (
    "features follow the contract",
    "eval features are per-sample",
    "gradients reach every parameter",
    "same features on every device",
)

#: one line per property on what to fix, shown with its failures
HINTS = {
    "features follow the contract": "return {'global': (B, D), <local name>: (B, C, H, W), ...}, finite, on the "
                                    "input's device, without changing the input",
    "eval features are per-sample": "use running statistics in eval mode (BatchNorm does after .eval()); no "
                                    "statistics of the batch",
    "gradients reach every parameter": "use every parameter in some feature, or freeze it (requires_grad_(False))",
    "same features on every device": "avoid device-dependent code paths and float64/float32 mixes",
}


class _Encoders:
    """One encoder per (in_channels, device), built from a fixed seed, with its feature shapes."""

    def __init__(self, subject: Subject, image_size: int):
        from mi_estimators.training.encoders import feature_shapes  # the trainer kit, on first use

        self.subject, self.image_size, self._shapes = subject, image_size, feature_shapes
        self._built: dict[tuple[int, str], tuple[Any, dict[str, tuple[int, ...]]]] = {}

    def get(self, channels: int, device: str) -> tuple[Any, dict[str, tuple[int, ...]]]:
        key = (channels, device)
        if key not in self._built:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                encoder = self.subject.make(in_channels=channels, image_size=self.image_size)
            encoder = encoder.to(device)
            self._built[key] = encoder, self._shapes(encoder, channels, self.image_size)
        return self._built[key]

    def images(self, batch: int, channels: int, seed: int, device: str = "cpu") -> Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.rand(batch, channels, self.image_size, self.image_size, generator=g).to(device)


def check_encoder(encoder: Any, /, *, in_channels: Sequence[int] = (1, 3), image_size: int = 32,
                  batch_sizes: Sequence[int] = (1, 2, 5), devices: Sequence[str] | None = None,
                  settings: Settings | None = None, skip: Iterable[str] = (), **options: Any) -> None:
    """Check every property of ``ENCODER_PROPERTIES``; raise :class:`ConformanceError` at the first
    that fails.

    ``encoder`` is a registered name (``"dim"``) or a factory called as
    ``factory(in_channels=c, image_size=image_size, **options)`` for each ``c`` in ``in_channels``.
    ``devices``: default the CPU, and ``"cuda"`` when CUDA is available. ``settings`` and ``skip`` as
    in :func:`~mi_estimators.testing.check_bound`.
    """
    subject = Subject(encoder, "encoders", options)
    devices = list(devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    kit = _Encoders(subject, image_size)
    channels, seed = st.sampled_from(list(in_channels)), st.integers(0, 2**32 - 1)
    trainable = [b for b in batch_sizes if b >= 2] or [2]
    for name in selected(ENCODER_PROPERTIES, skip):
        if name == "features follow the contract":
            modes = [(b, t, d) for d in devices for b in batch_sizes for t in (False, True) if b >= 2 or not t]
            run(subject, name, lambda **d: _contract(kit, **d), examples=3, settings=settings, hint=HINTS[name],
                explicit=[{"channels": c, "mode": m, "seed": 0} for c, m in itertools.product(in_channels, modes)],
                channels=channels, mode=st.sampled_from(modes), seed=seed)
        elif name == "eval features are per-sample":
            run(subject, name, lambda **d: _per_sample(kit, devices[0], **d), examples=3, settings=settings,
                hint=HINTS[name], channels=channels, batch=st.sampled_from(trainable), seed=seed, data=st.data())
        elif name == "gradients reach every parameter":
            run(subject, name, lambda **d: _gradients(kit, devices[0], max(trainable), **d), examples=2,
                settings=settings, hint=HINTS[name], channels=channels, seed=seed)
        elif name == "same features on every device" and len(devices) > 1:
            run(subject, name, lambda **d: _devices(kit, devices, **d), examples=2, settings=settings, hint=HINTS[name],
                channels=channels, seed=seed)


def _contract(kit: _Encoders, channels: int, mode: tuple[int, bool, str], seed: int) -> None:
    from mi_estimators.training.encoders import check_features

    batch, train, device = mode
    encoder, shapes = kit.get(channels, device)
    x = kit.images(batch, channels, seed, device)
    before = x.clone()
    with torch.no_grad():
        out = check_features(encoder.train(train)(x), type(encoder).__name__)
    where = f"(in_channels={channels}, batch {batch}, {'train' if train else 'eval'} mode, {device})"
    require(set(out) == set(shapes), f"{where}: features {sorted(out)}, but {sorted(shapes)} in eval mode at batch 2")
    for key, value in out.items():
        require(tuple(value.shape) == (batch, *shapes[key]),
                f"{where}: feature {key!r} has shape {tuple(value.shape)}, expected {(batch, *shapes[key])}")
        require(value.is_floating_point() and bool(torch.isfinite(value).all()),
                f"{where}: feature {key!r} is not finite floating point")
        require(value.device == x.device, f"{where}: feature {key!r} is on {value.device}, the input on {x.device}")
    require(torch.equal(x, before), f"{where}: the encoder changed its input in place")
    local = getattr(encoder, "default_local", None)
    require(local is None or len(shapes.get(local, ())) == 3,
            f"default_local = {local!r} is not one of the local maps {[k for k, s in shapes.items() if len(s) == 3]}")
    probe = getattr(encoder, "default_probe", None) or ()
    require(set(probe) <= set(shapes), f"default_probe = {probe!r} names features that do not exist ({sorted(shapes)})")


def _per_sample(kit: _Encoders, device: str, channels: int, batch: int, seed: int, data: st.DataObject) -> None:
    encoder, _ = kit.get(channels, device)
    x = kit.images(batch, channels, seed, device)
    keep = sorted(data.draw(st.lists(st.integers(0, batch - 1), min_size=1, max_size=batch - 1, unique=True),
                            label="samples kept"))
    with torch.no_grad():
        full, part = encoder.eval()(x), encoder(x[keep])
    for key, value in full.items():
        scale = 1.0 + float(value.abs().max())
        diff = float((part[key] - value[keep]).abs().max())
        require(diff <= 1e-4 * scale, f"in eval mode, feature {key!r} of samples {keep} changes by {diff:.3g} "
                                      f"when the other samples of the batch of {batch} are left out")


def _gradients(kit: _Encoders, device: str, batch: int, channels: int, seed: int) -> None:
    encoder, _ = kit.get(channels, device)
    encoder = copy.deepcopy(encoder).train()
    out = encoder(kit.images(batch, channels, seed, device))
    g = torch.Generator().manual_seed(seed)
    sum(((v * torch.randn(v.shape, generator=g).to(v.device)).sum() for v in out.values())).backward()
    params = [(name, p) for name, p in encoder.named_parameters() if p.requires_grad]
    missing = [name for name, p in params if p.grad is None]
    require(not missing, f"no gradient reaches the parameters {missing} from any feature")
    bad = [name for name, p in params if not bool(torch.isfinite(p.grad).all())]
    require(not bad, f"non-finite gradients in {bad}")


def _devices(kit: _Encoders, devices: Sequence[str], channels: int, seed: int) -> None:
    reference, _ = kit.get(channels, devices[0])
    x = kit.images(2, channels, seed)
    with torch.no_grad():
        expected = reference.eval()(x.to(devices[0]))
        for device in devices[1:]:
            out = copy.deepcopy(reference).to(device).eval()(x.to(device))
            for key, value in expected.items():
                diff = float((out[key].cpu().float() - value.cpu().float()).abs().max())
                scale = 1.0 + float(value.abs().max())
                require(diff <= 1e-2 * scale, f"feature {key!r} on {device} differs from {devices[0]} by {diff:.3g}")
