"""The encoder contract shared by every trainer, and helpers to build and inspect encoders.

An encoder is a registry entry of kind ``encoders``: a factory (class or function)

    factory(in_channels: int, image_size: int, **options) -> nn.Module

whose module's ``forward(x)`` takes images ``(B, in_channels, image_size, image_size)`` and returns
a ``dict[str, Tensor]`` of named features:

* ``"global"`` (required): the representation, ``(B, D)``.
* any number of **local maps** ``(B, C, H, W)`` under names of the encoder's choosing (DIM's
  ``"local"``, AMDIM's ``"f5"``/``"f7"``); any further vectors ``(B, D')`` (e.g. ``"fc"``, ``"f1"``).

A trainer asks which scales exist with :func:`feature_shapes` (shapes without the batch dimension;
local maps are the 3-tuples). An encoder may also set the attributes ``default_local`` (the local
map a single-scale trainer uses) and ``default_probe`` (the keys a linear probe reads); both
optional. Register a third-party encoder with an entry point in the group
``mi_estimators.encoders`` or in-process with ``mi_estimators.register(name, factory,
kind="encoders")``; every trainer then accepts ``--encoder name``.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from mi_estimators import registry

__all__ = ["build_encoder", "feature_shapes", "local_maps", "check_features"]


def build_encoder(name: str, in_channels: int, image_size: int, **options) -> nn.Module:
    """The registered encoder ``name`` for images of ``in_channels`` x ``image_size`` x ``image_size``."""
    return registry.get(name, kind="encoders", in_channels=in_channels, image_size=image_size, **options)


def check_features(out: object, name: str = "encoder") -> Mapping[str, Tensor]:
    """Raise ``ValueError`` unless ``out`` follows the contract above; return it."""
    if not isinstance(out, Mapping):
        raise ValueError(f"{name} must return a dict of named features (with a 'global' (B, D) entry "
                         f"and local maps (B, C, H, W)), got {type(out).__name__}")
    if "global" not in out or out["global"].dim() != 2:
        raise ValueError(f"{name} must return a 'global' feature of shape (B, D); got keys {sorted(out)}")
    bad = {k: tuple(v.shape) for k, v in out.items() if v.dim() not in (2, 4)}
    if bad:
        raise ValueError(f"{name}: features must be (B, D) vectors or (B, C, H, W) maps, got {bad}")
    if not any(v.dim() == 4 for v in out.values()):
        raise ValueError(f"{name} returns no local map (B, C, H, W); got shapes "
                         f"{ {k: tuple(v.shape) for k, v in out.items()} }")
    return out


@torch.no_grad()
def feature_shapes(encoder: nn.Module, in_channels: int, image_size: int) -> dict[str, tuple[int, ...]]:
    """Shapes (without the batch dimension) of every feature the encoder returns, from a dummy pass."""
    param = next(encoder.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = encoder.training
    encoder.eval()
    try:
        out = encoder(torch.zeros(2, in_channels, image_size, image_size, device=device))
    finally:
        encoder.train(was_training)
    check_features(out, type(encoder).__name__)
    return {k: tuple(v.shape[1:]) for k, v in out.items()}


def local_maps(shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Names of the local maps (3-tuples ``(C, H, W)``) among :func:`feature_shapes`' result."""
    return [k for k, s in shapes.items() if len(s) == 3]
