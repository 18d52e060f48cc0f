"""``mi-estimators validate``: every registered bound against closed-form MI.

Two suites, both run for every bound in the registry (third-party plugins included):

* the **staircase** of Poole et al. 2019 (arXiv:1905.06922, Figure 2) — see
  :mod:`mi_estimators.validation.staircase`;
* the **task grid** — every bound on closed-form tasks (Gaussian, transformed, Student-t,
  additive uniform; :mod:`mi_estimators.tasks`) — see :mod:`mi_estimators.validation.grid`.

All bounds train together: one stacked critic with a copy per bound
(:func:`mi_estimators.fit.train_stacked`). The command prints a table and writes ``report.md``,
``results.json`` and PNG figures into ``--out``. What runs is one :class:`ValidationConfig`: its
defaults are the full-size run (whose committed report lives in the repository's ``studies/``
folder), :meth:`ValidationConfig.quick` (``--quick``, the run of ``make demo``) a short run of the
same suites (a few minutes on two CPU cores).

>>> from mi_estimators.validation import ValidationConfig, run_validation
>>> config = ValidationConfig(bounds=("infonce",), tasks=("gauss-1x1-mi0.5",), steps_per_level=20, task_steps=20)
>>> sorted(run_validation(config, out=None))
['settings', 'staircase', 'tasks']
"""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path
from typing import Any, Sequence

from mi_estimators import registry
from mi_estimators.device import resolve_device
from mi_estimators.fit import threads as torch_threads
from mi_estimators.validation.config import ValidationConfig
from mi_estimators.validation.consistency import ConsistencyConfig, run_consistency
from mi_estimators.validation.grid import TaskResult, TaskSettings, run_task
from mi_estimators.validation.report import write_report
from mi_estimators.validation.selection import BoundSet, resolve_bounds
from mi_estimators.validation.staircase import StaircaseResult, StaircaseSettings, run_staircase, staircase_table

__all__ = ["BoundSet", "ConsistencyConfig", "StaircaseResult", "StaircaseSettings", "TaskResult", "TaskSettings",
           "ValidationConfig", "resolve_bounds", "run_consistency", "run_staircase", "run_task", "run_validation",
           "staircase_table"]

def _select_tasks(patterns: Sequence[str]) -> list[str]:
    names = registry.available("tasks")
    chosen = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    missing = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if missing:
        raise ValueError(f"no registered task matches {missing}; available: {', '.join(names)}")
    # keep the order the patterns were given in
    order = {n: min(i for i, p in enumerate(patterns) if fnmatch.fnmatchcase(n, p)) for n in chosen}
    return sorted(chosen, key=lambda n: (order[n], names.index(n)))


def run_validation(config: ValidationConfig | None = None, *, out: str | Path | None = None,
                   command: str | None = None) -> dict[str, Any]:
    """Run the staircase (for each of ``config.critics``, MLPs of ``staircase_layers`` hidden layers of
    256; none if ``steps_per_level`` is 0) and the task grid (``config.tasks``; none if empty) for
    every bound matching ``config.bounds``, with ``config.threads`` torch CPU threads (the caller's
    count is restored after). Writes ``report.md``, ``results.json`` and PNGs to ``out`` (unless
    None; ``command`` is quoted in the report) and returns the results as a dict of plain rows.
    ``config`` defaults to the full-size run, :meth:`ValidationConfig.full`."""
    from tqdm.auto import tqdm

    c = ValidationConfig.full() if config is None else config
    dev = resolve_device(c.device)
    bound_set = resolve_bounds(list(c.bounds) or None)
    if not bound_set.names:
        raise ValueError(f"every selected bound failed its smoke test: {bound_set.errors}")
    task_names = _select_tasks(list(c.tasks)) if c.tasks else []
    critics = c.critics if c.steps_per_level > 0 else ()
    total = len(critics) * c.steps_per_level * len(c.levels) + len(task_names) * c.task_steps
    show = sys.stderr.isatty() if c.progress is None else c.progress  # the trainer's convention: None = auto
    bar = tqdm(total=total, desc="validate", disable=not show, dynamic_ncols=True)
    with torch_threads(c.threads):
        stair_results = [run_staircase(bound_set, StaircaseSettings.from_config(c, critic), device=dev, progress=bar)
                         for critic in critics]
        task_results = [run_task(registry.get(name, kind="tasks"), bound_set, TaskSettings.from_config(c), device=dev,
                                 progress=bar)
                        for name in task_names]
    bar.close()
    report = dict(
        settings=dict(bounds=bound_set.names, failed=bound_set.errors, critics=list(c.critics),
                      staircase_steps_per_level=c.steps_per_level, levels=list(c.levels), tasks=task_names,
                      task_steps=c.task_steps, task_hidden=c.task_hidden, eval_batches=c.eval_batches, seed=c.seed,
                      device=str(dev), command=command),
        staircase=[dict(critic=r.critic, seconds=r.seconds, errors=r.errors, settings=r.settings,
                        table=staircase_table(r)) for r in stair_results],
        tasks=[dict(task=r.task, mi=r.true_mi, seconds=r.seconds, errors=r.errors, settings=r.settings,
                    rows=r.rows()) for r in task_results],
    )
    if out is not None:
        write_report(report, stair_results, task_results, Path(out))
    return report
