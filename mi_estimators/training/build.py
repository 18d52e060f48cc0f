"""What a training run is made of, built in one place: :func:`build_run` -> :class:`BuiltRun`.

The order is the run's random streams, so it is fixed here and nowhere else: the global RNG is
seeded with ``seed``; the encoder, the plugin's objective and the online probe draw their initial
weights from it (:class:`Step` holds the objective and the probe in one module, so that one
``state_dict`` and one DDP wrapper cover both); then Adam over every trainable parameter, the
epochs' batches (:class:`~mi_estimators.training.data.EpochBatches`) and the learning-rate
schedule (:func:`lr_lambda`); last, the global RNG is reseeded with ``seed + 1 + rank``, the
stream of the augmentation (different on every rank).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from mi_estimators.training.config import TrainConfig
from mi_estimators.training.data import EpochBatches, ImageData
from mi_estimators.training.distributed import DistInfo
from mi_estimators.training.encoders import build_encoder, feature_shapes
from mi_estimators.training.probe import OnlineProbe

__all__ = ["BuiltRun", "Step", "build_run", "lr_lambda", "probe_keys", "select_features"]

Shapes = dict[str, tuple[int, ...]]


def lr_lambda(warmup: int, total: int, schedule: str) -> Callable[[int], float]:
    """Linear warm-up over ``warmup`` steps, then constant or cosine decay to 0 at ``total``:
    ``lr(t) / lr = (t + 1) / warmup`` for ``t < warmup``, else ``(1 + cos(pi * p)) / 2`` with
    ``p = (t - warmup) / (total - warmup)`` clipped to [0, 1] (Loshchilov & Hutter, SGDR, 2017)."""

    def f(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant" or total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def select_features(features: Tensor | Mapping[str, Tensor], keys: list[str]) -> Tensor:
    """Flatten and concatenate the named encoder outputs into ``(B, D)``."""
    if isinstance(features, Tensor):
        return features.flatten(1)
    missing = [k for k in keys if k not in features]
    if missing:
        raise ValueError(f"--probe-features {','.join(missing)}: the encoder returns only {sorted(features)}")
    return torch.cat([features[k].float().flatten(1) for k in keys], dim=1)


def probe_keys(config: TrainConfig, encoder: nn.Module, shapes: Shapes) -> list[str]:
    """The encoder outputs the probes read: ``--probe-features``, else the encoder's
    ``default_probe``, else ``global``; checked against the encoder's outputs."""
    keys = config.probe_features or ",".join(getattr(encoder, "default_probe", ("global",)))
    keys = [k.strip() for k in keys.split(",") if k.strip()]
    select_features({k: torch.zeros(1, *s) for k, s in shapes.items()}, keys)  # raises on an unknown key
    return keys


class Step(nn.Module):
    """Objective + online probe in one module, so DDP syncs both and one state_dict holds both.

    ``forward(inputs, labels) -> (loss, logs, n_correct)``: the objective's loss plus the probe's
    cross-entropy on the detached features; nothing is read back on the host.
    """

    def __init__(self, objective: nn.Module, probe: OnlineProbe | None, probe_keys: list[str]) -> None:
        super().__init__()
        self.objective = objective
        self.probe = probe
        self.probe_keys = probe_keys

    def forward(self, inputs: Any, labels: Tensor) -> tuple[Tensor, dict, Tensor]:
        out = self.objective(inputs)
        if not isinstance(out, Mapping) or "loss" not in out:
            raise ValueError("a trainer's objective must return a dict with 'loss' (and optionally 'logs', "
                             "'features')")
        loss = out["loss"]
        logs = {"loss": loss.detach(), **out.get("logs", {})}
        correct = torch.zeros((), dtype=torch.long, device=labels.device)
        if self.probe is not None and "features" in out:
            ce, correct = self.probe(select_features(out["features"], self.probe_keys), labels)
            logs["probe_ce"] = ce.detach()
            loss = loss + ce
        return loss, logs, correct


@dataclass(frozen=True)
class BuiltRun:
    """Everything a run trains and evaluates, made together by :func:`build_run`.

    ``module`` is the :class:`Step` (what checkpoints hold); ``model`` is the same module, wrapped
    in ``DistributedDataParallel`` under torchrun (what the step calls). ``batches`` is ``None``
    when there is nothing to train (``epochs == 0``).
    """

    train_data: ImageData
    test_data: ImageData
    encoder: nn.Module
    shapes: Shapes
    probe_keys: list[str]
    module: Step
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    batches: EpochBatches | None


def build_run(config: TrainConfig, data: tuple[ImageData, ImageData], build_objective: Callable[..., nn.Module],
              device: torch.device, dist: DistInfo, find_unused_parameters: bool = False) -> BuiltRun:
    """Model, optimiser, schedule and batches of a run on ``data = (train, test)``, in the order
    the module docstring gives; ``build_objective(encoder, shapes)`` is the plugin's."""
    cfg, (train, test) = config, data
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg.encoder, train.in_channels, train.image_size, **cfg.encoder_kwargs())
    shapes = feature_shapes(encoder, train.in_channels, train.image_size)
    keys = probe_keys(cfg, encoder, shapes)
    objective = build_objective(encoder, shapes)
    probe = None
    if cfg.online_probe:
        probe = OnlineProbe(sum(math.prod(shapes[k]) for k in keys), max(train.num_classes, test.num_classes))
    module = Step(objective, probe, keys).to(device)
    if device.type == "cuda":
        module.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=cfg.lr,
                                 weight_decay=cfg.weight_decay)
    batches = EpochBatches(len(train), cfg.batch_size, seed=cfg.seed, rank=dist.rank,
                           world_size=dist.world_size) if cfg.epochs > 0 else None
    total = cfg.epochs * len(batches) if batches else 0
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.warmup_steps, total, cfg.schedule))
    model = module
    if dist.enabled:
        model = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters)
    torch.manual_seed(cfg.seed + 1 + dist.rank)  # the augmentation's stream differs per rank
    return BuiltRun(train, test, encoder, shapes, keys, module, model, optimizer, scheduler, batches)
