"""A run's checkpoints in ``--out``: which one to read, how it is written, what is put back.

:class:`RunCheckpoints` is the trainer's one collaborator for its checkpoint file. A trainer's
checkpoint (:mod:`~mi_estimators.training.checkpoint` writes and verifies the file) holds the
``Step`` module's weights, the optimiser's and the schedule's state, the position (``step``,
``epoch``, ``batch_in_epoch``), the history, the epoch's sums so far (``meter``, for a mid-epoch
checkpoint), every rank's random-generator states (``rng``), ``world_size`` and the config.

* :meth:`RunCheckpoints.read`, before any other work: nothing for a new run (and an error if
  ``--out`` already holds one); for ``--resume``/``--eval-only`` the latest checkpoint, or the
  previous one when the latest is unreadable (a resumed run moves the unreadable file aside to
  ``*.unreadable``, so that its next save does not keep it as the previous one).
* :meth:`RunCheckpoints.save`: the random states of every rank gathered, written on rank 0, then a
  barrier, so that every rank goes on (or exits) with the checkpoint on disk.
* :meth:`RunCheckpoints.restore`: the weights, and to resume the optimiser, the schedule and the
  random streams; returns the position and the history (:class:`Restored`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch.distributed as dist

from mi_estimators.training.build import BuiltRun
from mi_estimators.training.checkpoint import capture_rng, load_latest, previous_path, restore_rng, save_checkpoint
from mi_estimators.training.distributed import DistInfo
from mi_estimators.training.rundir import OutDirError

__all__ = ["RunCheckpoints", "Restored", "model_weights"]


@dataclass(frozen=True)
class Restored:
    """Where a checkpoint left the run; ``meter``: the epoch's sums of a mid-epoch checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    meter: dict | None = None


class RunCheckpoints:
    """The checkpoint at ``path`` (``OUT/checkpoint.pt``) and its predecessor; ``log`` reports."""

    def __init__(self, path: Path, log: Callable[[str], None]) -> None:
        self.path = path
        self.log = log
        self.read_from = path  # the file :meth:`read` used (the previous one after a fallback)

    def read(self, dist_info: DistInfo, *, resume: bool, eval_only: bool) -> dict | None:
        """The state to resume or evaluate; ``None`` for a new run. Raises ``ValueError`` when a new
        run would overwrite one, ``FileNotFoundError`` when there is none to continue, and
        :class:`~mi_estimators.training.checkpoint.CheckpointError` when none is readable."""
        path = self.path
        exists = path.exists() or previous_path(path).exists()
        if not (resume or eval_only):
            if exists:
                raise ValueError(f"{path} exists: pass --resume to continue that run, or choose another --out")
            return None
        if not exists:
            raise FileNotFoundError(f"--resume/--eval-only: no checkpoint in {path.parent} (the run was stopped "
                                    "before its first epoch ended?); run without --resume to start it there")
        state, self.read_from, warning = load_latest(path)
        if warning:
            self.log(f"warning: {warning}")
            if resume and dist_info.is_main and path.exists():  # else the next save keeps it as .prev
                os.replace(path, path.with_name(path.name + ".unreadable"))
        return state

    def save(self, state: dict[str, Any], dist_info: DistInfo) -> None:
        """Write ``state`` with every rank's random states (collective: every rank calls it)."""
        rng = capture_rng()
        if dist_info.enabled:
            all_rng = [None] * dist_info.world_size
            dist.all_gather_object(all_rng, rng)
        else:
            all_rng = [rng]
        if dist_info.is_main:
            try:
                save_checkpoint({**state, "rng": all_rng, "world_size": dist_info.world_size}, self.path)
            except OSError as exc:
                raise OutDirError(f"could not write the checkpoint {self.path} ({exc.strerror or exc}); the "
                                  "earlier checkpoints are intact: free some disk space (or choose a writable "
                                  "--out) and continue with --resume") from exc
        if dist_info.enabled:
            dist.barrier()  # every rank goes on (or exits) with the checkpoint on disk

    def restore(self, state: dict, run: BuiltRun, dist_info: DistInfo, *, eval_only: bool) -> Restored:
        """Weights (and to resume: optimiser, schedule, random streams) of ``state`` into ``run``."""
        path = self.read_from
        run.module.load_state_dict(model_weights(path, state, run.module.state_dict(), eval_only=eval_only))
        if eval_only:
            self.log(f"loaded {path}: {state['epoch']} epochs trained ({state['step']} steps)")
            return Restored(state["step"], state["epoch"], 0, state["history"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        rng = state["rng"]
        if len(rng) == dist_info.world_size:
            restore_rng(rng[dist_info.rank])
        else:
            self.log(f"checkpoint written by {len(rng)} processes, resumed on {dist_info.world_size}: "
                     "random streams are reseeded, the data order is kept")
        return Restored(state["step"], state["epoch"], state["batch_in_epoch"], state["history"], state.get("meter"))

    def last_good(self, epoch: int) -> str:
        """What a diverged run keeps, for its error message."""
        if self.path.exists():
            return f"the last good checkpoint ({self.path}, end of epoch {epoch}) is kept"
        return "no checkpoint was written yet"


def model_weights(path: Path, state: dict, own: dict, *, eval_only: bool) -> dict:
    """The checkpoint's weights for a module whose own ``state_dict`` is ``own``.

    An online probe trained on other ``--probe-features`` (or switched off) is fine for
    ``--eval-only``, which only needs the objective: the module keeps its own probe weights. A
    resumed run would mix optimiser states, so it raises ``ValueError``.
    """
    model = state["model"]
    stale = [k for k in model if k.startswith("probe.") and (k not in own or own[k].shape != model[k].shape)]
    if not stale and any(k.startswith("probe.") for k in own) == any(k.startswith("probe.") for k in model):
        return model
    if not eval_only:
        raise ValueError(f"{path} was trained with other --probe-features / --online-probe "
                         f"settings ({state['config'].get('probe_features')!r}); resume with the same "
                         "ones, or use --eval-only to probe other features")
    model = {k: v for k, v in model.items() if not k.startswith("probe.")}
    model.update({k: v for k, v in own.items() if k.startswith("probe.")})
    return model
