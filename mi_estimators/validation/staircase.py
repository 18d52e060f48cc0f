"""Poole et al.'s staircase: every bound tracks a stepwise-increasing MI on 20-d Gaussians.

Poole, Ozair, van den Oord, Alemi & Tucker 2019, "On Variational Bounds of Mutual Information",
arXiv:1905.06922, Figure 2: X, Y in ℝ^20 are 20 independent pairs of correlation ρ, with ρ set
from the MI level m by ρ = sqrt(1 − e^{−2m/20}); the level steps through 2, 4, 6, 8, 10 nats,
4,000 training steps each, batch 64 drawn fresh every step, Adam with learning rate 5e-4; the
critic is separable (two MLPs, 2 hidden layers of 256, 32-d embedding) or concat (an MLP on
[x, y], 2 hidden layers of 256). The estimate plotted is each step's training-batch estimate;
the statistics are taken over the second half of every level (the first half is adaptation).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mi_estimators import options as check
from mi_estimators.critics import ConcatCritic, SeparableCritic
from mi_estimators.tasks import rho_for_mi
from mi_estimators.fit import seeded, train_stacked
from mi_estimators.validation.config import CRITICS, ValidationConfig
from mi_estimators.validation.selection import BoundSet

__all__ = ["StaircaseResult", "StaircaseSettings", "run_staircase", "staircase_table"]


@dataclass
class StaircaseResult:
    critic: str
    names: list[str]
    levels: list[float]
    steps_per_level: int
    batch_size: int
    estimates: np.ndarray  # (K, levels * steps_per_level)
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def true_mi(self) -> np.ndarray:
        return np.repeat(np.asarray(self.levels, dtype=float), self.steps_per_level)


def make_critic(kind: str, d: int, n_models: int, hidden: int = 256, layers: int = 2, embed_dim: int = 32):
    if kind == "separable":
        return SeparableCritic(d, d, hidden=hidden, layers=layers, embed_dim=embed_dim, n_models=n_models)
    if kind == "concat":
        return ConcatCritic(d, d, hidden=hidden, layers=layers, n_models=n_models)
    raise ValueError(f"critic must be 'separable' or 'concat', got {kind!r}")


@dataclass(frozen=True)
class StaircaseSettings:
    """One staircase run of :func:`run_staircase`; the defaults are Poole et al.'s setting.

    ``critic``: ``"separable"`` (two MLPs of ``layers`` hidden layers of ``hidden`` units into
    ``embed_dim``) or ``"concat"`` (one MLP on ``[x, y]``); ``d``: dimension of X and of Y;
    ``levels``: the MI levels in nats, ``steps_per_level`` Adam steps (learning rate ``lr``) of
    fresh batches of ``batch_size`` each; ``seed`` seeds the critic's weights and the samples.
    """

    critic: str = "separable"
    d: int = 20
    levels: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 10.0)
    steps_per_level: int = 4000
    batch_size: int = 64
    lr: float = 5e-4
    hidden: int = 256
    layers: int = 2
    embed_dim: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.critic not in CRITICS:
            raise ValueError(f"critic must be 'separable' or 'concat', got {self.critic!r}")
        levels = (self.levels,) if isinstance(self.levels, (int, float)) else tuple(self.levels)
        object.__setattr__(self, "levels", tuple(check.positive_float("levels", v) for v in levels))
        for name in ("steps_per_level", "seed"):
            check.integer(name, getattr(self, name), 0)
        for name in ("d", "batch_size", "hidden", "layers", "embed_dim"):
            check.positive_int(name, getattr(self, name))
        check.positive_float("lr", self.lr)

    @classmethod
    def from_config(cls, config: ValidationConfig, critic: str) -> "StaircaseSettings":
        """The staircase of ``mi-estimators validate`` with ``critic``: ``levels``,
        ``steps_per_level``, ``staircase_layers`` and ``seed`` of ``config``, the rest Poole et al.'s."""
        return cls(critic=critic, levels=config.levels, steps_per_level=config.steps_per_level,
                   layers=config.staircase_layers, seed=config.seed)


def run_staircase(bounds: BoundSet, settings: StaircaseSettings = StaircaseSettings(), *,
                  device: str | torch.device = "cpu", progress=None) -> StaircaseResult:
    """Train every bound of ``bounds`` through the staircase in one pass (one stacked critic);
    ``progress``: a tqdm bar advanced once per step."""
    s = settings
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(s.seed)
    k = len(bounds.names)
    with seeded(s.seed):
        model = make_critic(s.critic, s.d, k, s.hidden, s.layers, s.embed_dim).to(dev)
    instances = [b.to(dev) if isinstance(b, torch.nn.Module) else b for b in bounds.instances()]
    rhos = [rho_for_mi(m, s.d) for m in s.levels]

    def sample(step: int):
        rho = rhos[step // s.steps_per_level]
        x = torch.randn(s.batch_size, s.d, generator=gen, device=dev)
        noise = torch.randn(s.batch_size, s.d, generator=gen, device=dev)
        return x, rho * x + math.sqrt(1 - rho * rho) * noise

    errors = dict(bounds.errors)
    t0 = time.perf_counter()
    est = train_stacked(model, instances, sample, s.steps_per_level * len(s.levels), s.lr, progress, errors,
                        bounds.names)
    seconds = time.perf_counter() - t0
    recorded = dict(d=s.d, lr=s.lr, hidden=s.hidden, layers=s.layers,
                    embed_dim=s.embed_dim if s.critic == "separable" else None, seed=s.seed, device=str(dev),
                    optimizer="Adam")
    return StaircaseResult(s.critic, list(bounds.names), list(s.levels), s.steps_per_level, s.batch_size, est,
                           seconds, recorded, errors)


def staircase_table(result: StaircaseResult) -> list[dict[str, Any]]:
    """Bias, sd and MSE per bound per level over the second half of each level."""
    rows = []
    spl = result.steps_per_level
    for k, name in enumerate(result.names):
        for i, level in enumerate(result.levels):
            tail = result.estimates[k, i * spl + spl // 2:(i + 1) * spl]
            tail = tail[np.isfinite(tail)]
            if tail.size == 0:
                rows.append(dict(critic=result.critic, bound=name, mi=level, mean=np.nan, bias=np.nan,
                                 sd=np.nan, mse=np.nan))
                continue
            bias = float(tail.mean() - level)
            sd = float(tail.std(ddof=1)) if tail.size > 1 else 0.0
            rows.append(dict(critic=result.critic, bound=name, mi=level, mean=float(tail.mean()), bias=bias,
                             sd=sd, mse=float(((tail - level) ** 2).mean())))
    return rows
