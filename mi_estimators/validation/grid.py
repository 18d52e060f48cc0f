"""Every bound on closed-form tasks: train on fresh samples, test on fresh held-out batches.

For each task, one stacked separable critic (a copy per bound) is trained for ``steps`` steps on
batches drawn fresh from the task (inputs standardised with a pilot sample's mean and standard
deviation — MI is unchanged by affine maps); then every bound is evaluated on ``eval_batches``
fresh batches of the same size. The table reports the mean of those estimates, its bias from
the true MI, and their standard deviation — the bound's behaviour at that batch size with a
trained critic, as in Poole et al. 2019 (arXiv:1905.06922) and Czyż et al. 2023
(arXiv:2306.11078).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mi_estimators import options as check
from mi_estimators.critics import SeparableCritic
from mi_estimators.tasks import Task
from mi_estimators.fit import seeded, train_stacked
from mi_estimators.validation.config import ValidationConfig
from mi_estimators.validation.selection import BoundSet

__all__ = ["TaskResult", "TaskSettings", "run_task"]


@dataclass
class TaskResult:
    task: str
    true_mi: float
    names: list[str]
    estimates: np.ndarray  # (K, eval_batches)
    curve: np.ndarray  # (K, steps) training-batch estimates
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for k, name in enumerate(self.names):
            e = self.estimates[k][np.isfinite(self.estimates[k])]
            mean = float(e.mean()) if e.size else float("nan")
            out.append(dict(task=self.task, mi=self.true_mi, bound=name, estimate=mean,
                            bias=mean - self.true_mi, sd=float(e.std(ddof=1)) if e.size > 1 else float("nan")))
        return out


@dataclass(frozen=True)
class TaskSettings:
    """How :func:`run_task` trains and evaluates: the critic (a stacked :class:`SeparableCritic` of
    ``layers`` hidden layers of ``hidden`` units into ``embed_dim``), Adam with ``lr`` for ``steps``
    steps of batch ``batch_size``, then ``eval_batches`` held-out batches; ``seed`` seeds the
    critic's weights and the samples."""

    steps: int = 2000
    batch_size: int = 128
    lr: float = 5e-4
    hidden: int = 128
    layers: int = 2
    embed_dim: int = 32
    eval_batches: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "seed"):
            check.integer(name, getattr(self, name), 0)
        for name in ("batch_size", "hidden", "layers", "embed_dim", "eval_batches"):
            check.positive_int(name, getattr(self, name))
        check.positive_float("lr", self.lr)

    @classmethod
    def from_config(cls, config: ValidationConfig) -> "TaskSettings":
        """The task grid of ``mi-estimators validate``: ``task_steps``, ``task_hidden``,
        ``eval_batches`` and ``seed`` of ``config``, the other fields at their defaults."""
        return cls(steps=config.task_steps, hidden=config.task_hidden, eval_batches=config.eval_batches,
                   seed=config.seed)


def run_task(task: Task, bounds: BoundSet, settings: TaskSettings = TaskSettings(), *,
             device: str | torch.device = "cpu", progress=None) -> TaskResult:
    """Train every bound of ``bounds`` on ``task`` (one stacked critic) and evaluate it on fresh
    held-out batches, as ``settings`` say; ``progress``: a tqdm bar advanced once per step."""
    s = settings
    dev = torch.device(device)
    rng = np.random.default_rng(s.seed)
    px, py = task.sample(10000, rng)
    mx, sx, my, sy = px.mean(0), px.std(0), py.mean(0), py.std(0)

    def draw(n: int):
        x, y = task.sample(n, rng)
        return (torch.as_tensor((x - mx) / sx, dtype=torch.float32, device=dev),
                torch.as_tensor((y - my) / sy, dtype=torch.float32, device=dev))

    k = len(bounds.names)
    with seeded(s.seed):
        model = SeparableCritic(task.x_dim, task.y_dim, hidden=s.hidden, layers=s.layers,
                                embed_dim=s.embed_dim, n_models=k).to(dev)
    instances = [b.to(dev) if isinstance(b, torch.nn.Module) else b for b in bounds.instances()]
    errors = dict(bounds.errors)
    t0 = time.perf_counter()
    curve = train_stacked(model, instances, lambda step: draw(s.batch_size), s.steps, s.lr, progress, errors,
                          bounds.names)
    est = np.full((k, s.eval_batches), np.nan)
    with torch.no_grad():
        for b in range(s.eval_batches):
            scores = model(*draw(s.batch_size))
            for i, bound in enumerate(instances):
                if bounds.names[i] in errors and bounds.names[i] not in bounds.errors:
                    continue  # dropped during training
                try:
                    est[i, b] = float(bound(scores[i]))
                except ValueError:
                    pass
    return TaskResult(task.id, float(task.mi), list(bounds.names), est, curve, time.perf_counter() - t0,
                      dict(dataclasses.asdict(s), device=str(dev)), errors)
