"""One epoch's running sums, kept on the device between the loop's sync points: :class:`Meter`.

The loop never waits for the device inside a step: the loss, the logged values and the online
probe's hits are summed on the device (:meth:`Meter.add`). At a sync point :meth:`Meter.sync`
reads, in one transfer (one all-reduce under torchrun), whether the summed loss is still finite,
whether any rank was asked to stop, and the running mean loss. At the end of an epoch
:meth:`Meter.record` makes the epoch's line of the history (and of ``metrics.json``): the means of
the sums, the images seen and their rate, and the online probe's training accuracy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.distributed as dist
from torch import Tensor

from mi_estimators.training.distributed import DistInfo

__all__ = ["Meter", "SyncPoint"]


@dataclass(frozen=True)
class SyncPoint:
    """What the host learnt at a sync point: ``diverged`` (the loss sum as text when it is NaN or
    infinite on some rank, else ``None``), ``stopping`` (a rank was asked to stop), the running
    mean ``loss`` over ranks and steps, and the images per second since the epoch (re)started."""

    diverged: str | None
    stopping: bool
    loss: float
    images_per_s: float


class Meter:
    """One epoch's running sums, on the device until a sync point reads them.

    ``total`` sums the optimised loss (objective + online probe): it is finite exactly when every
    step's loss was. Logged values that an objective already gives as Python numbers are summed
    on the host. ``saved`` is :meth:`read`'s dict from a mid-epoch checkpoint, to continue the
    epoch's sums after a resume.
    """

    def __init__(self, device: torch.device, dist_info: DistInfo, saved: Mapping[str, Any] | None = None) -> None:
        saved = saved or {}
        self.dist = dist_info
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.tensor(saved.get("correct", 0), dtype=torch.long, device=device)
        self.sums: dict[str, Tensor | float] = dict(saved.get("sums", {}))
        self.steps, self.seen = saved.get("steps", 0), saved.get("seen", 0)
        self.wall_s, self.seen_before = saved.get("wall_s", 0.0), self.seen  # (before a resume)
        self.t0 = time.perf_counter()

    def add(self, loss: Tensor, logs: Mapping[str, Any], correct: Tensor, images: int) -> None:
        """One step of ``images`` images on this rank; nothing is read on the host."""
        self.total += loss.detach()
        for k, v in logs.items():
            v = v.detach().double() if isinstance(v, Tensor) else float(v)
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.correct += correct
        self.steps += 1
        self.seen += images * self.dist.world_size

    def sync(self, stop: bool) -> SyncPoint:
        """The host reads the device (all ranks together); ``stop``: this rank was asked to stop."""
        flag = torch.tensor(float(stop), dtype=torch.float64, device=self.total.device)
        status = torch.stack([(~torch.isfinite(self.total)).double(), flag, self.sums["loss"]])
        if self.dist.enabled:
            dist.all_reduce(status)
        bad, stopping, loss_sum = status.tolist()
        diverged = None
        if bad > 0:
            total = float(self.total)
            diverged = str(total) if not math.isfinite(total) else "not finite on another rank"
        rate = (self.seen - self.seen_before) / max(time.perf_counter() - self.t0, 1e-9)
        return SyncPoint(diverged, stopping > 0, loss_sum / self.dist.world_size / self.steps, rate)

    def read(self) -> dict[str, Any]:
        """The host's copy (one sync): sums, counts and wall time of the epoch so far."""
        keys = list(self.sums)
        values = torch.stack([torch.as_tensor(self.sums[k], dtype=torch.float64, device=self.total.device)
                              for k in keys] + [self.correct.double()]).tolist()
        return {"sums": dict(zip(keys, values[:-1])), "correct": int(values[-1]), "steps": self.steps,
                "seen": self.seen, "wall_s": self.wall_s + time.perf_counter() - self.t0}

    def record(self, epoch: int, step: int, online_probe: bool) -> dict[str, Any]:
        """The history line of the finished epoch ``epoch`` (from 1) that ended at ``step``."""
        state = self.read()
        n = max(state["steps"], 1)
        record = {"epoch": epoch, "steps": step, "wall_s": round(state["wall_s"], 2), "images": state["seen"],
                  "images_per_s": round(state["seen"] / state["wall_s"], 1) if state["wall_s"] > 0 else None}
        record.update({k: v / n for k, v in state["sums"].items()})
        if online_probe:
            record["online_probe_train_acc"] = state["correct"] / max(state["seen"] / self.dist.world_size, 1)
        return record
