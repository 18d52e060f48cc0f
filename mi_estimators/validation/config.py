"""What ``mi-estimators validate`` runs: one frozen config, with the full-size and the quick grid as presets.

The field defaults are the full-size run (Poole et al.'s staircase with both critics, every
registered task); :meth:`ValidationConfig.quick` is the short run of ``make demo``. The command
line is generated from the fields (:mod:`mi_estimators.argparsing`); ``--quick`` picks the quick
preset, and any flag given replaces the preset's value.

>>> ValidationConfig.quick().steps_per_level, ValidationConfig.full().steps_per_level
(200, 4000)
>>> ValidationConfig(critics=("separabel",))
Traceback (most recent call last):
...
ValueError: critics must name separable or concat, got 'separabel'; did you mean 'separable'?
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from mi_estimators import options as check

__all__ = ["ValidationConfig"]

CRITICS = ("separable", "concat")


@dataclass(frozen=True)
class ValidationConfig:
    """The options of :func:`mi_estimators.validation.run_validation`; the defaults are the full-size run."""

    #: bounds to validate: registered names or fnmatch patterns (none: every registered bound)
    bounds: tuple[str, ...] = ()
    #: registered tasks: names or fnmatch patterns (`mi-estimators list tasks`); none skips the task grid
    tasks: tuple[str, ...] = ("*",)
    #: critics of the staircase
    critics: tuple[Literal["separable", "concat"], ...] = CRITICS
    #: staircase training steps per MI level (0 skips the staircase)
    steps_per_level: int = 4000
    #: the staircase's MI levels, in nats
    levels: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 10.0)
    #: hidden layers (of 256 units) of the staircase critics
    staircase_layers: int = 2
    #: training steps per task of the grid
    task_steps: int = 3000
    #: hidden units of the task grid's critic
    task_hidden: int = 128
    #: fresh held-out batches each task's estimates are averaged over
    eval_batches: int = 20
    #: seed of the critics' weights and of the samples
    seed: int = 0
    #: auto (CUDA if present), cpu, cuda, cuda:1, ...
    device: str = "auto"
    #: torch CPU threads (the caller's count is restored after; none keeps it); 1 is fastest for
    #: these small critics on a busy machine
    threads: int | None = 1
    #: tqdm progress bars (none: when stderr is a terminal)
    progress: bool | None = None

    def __post_init__(self) -> None:
        for name in ("bounds", "tasks", "critics", "levels"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, (str, int, float)) else tuple(value))
        for critic in self.critics:
            if critic not in CRITICS:
                raise ValueError(f"critics must name {' or '.join(CRITICS)}, got {critic!r}"
                                 f"{check.did_you_mean(critic, CRITICS)}")
        for name in ("steps_per_level", "task_steps", "seed"):
            check.integer(name, getattr(self, name), 0)
        for name in ("staircase_layers", "task_hidden", "eval_batches"):
            check.positive_int(name, getattr(self, name))
        check.optional(check.positive_int, "threads", self.threads)
        object.__setattr__(self, "levels", tuple(check.positive_float("levels", v) for v in self.levels))
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"progress must be True, False or None (when stderr is a terminal), got {self.progress!r}")

    @classmethod
    def full(cls, **changes) -> "ValidationConfig":
        """The full-size grid: Poole et al.'s staircase with both critics, every registered task."""
        return cls(**changes)

    @classmethod
    def quick(cls, **changes) -> "ValidationConfig":
        """A short grid (a few minutes on two CPU cores): a short staircase (separable critic) and four
        tasks, one per family."""
        preset = dict(critics=("separable",), steps_per_level=200, task_steps=400, task_hidden=64, eval_batches=10,
                      tasks=("gauss-5x5-mi2", "cubic-gauss-1x1-mi0.5", "student-t-2x2-df2", "uniform-eps0.1"))
        return cls(**{**preset, **changes})

    def changes_from(self, other: "ValidationConfig") -> dict:
        """The fields whose value differs from ``other``'s (e.g. what ``--quick`` changes)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(other, f.name)}
