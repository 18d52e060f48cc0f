"""``mi-estimators validate``: every registered bound against closed-form MI.

Two suites, both run for every bound in the registry (third-party plugins included):

* the **staircase** of Poole et al. 2019 (arXiv:1905.06922, Figure 2) — see
  :mod:`mi_estimators.validation.staircase`;
* the **task grid** — every bound on closed-form tasks (Gaussian, transformed, Student-t,
  additive uniform; :mod:`mi_estimators.tasks`) — see :mod:`mi_estimators.validation.grid`.

All bounds train together: one stacked critic with a copy per bound
(:func:`mi_estimators.fit.train_stacked`). The command prints a table and writes ``report.md``,
``results.json`` and PNG figures into ``--out``. ``--quick`` (the default of ``make demo``) is a
short run of the same suites (a few minutes on two CPU cores); the full-size run and its
committed report live in the repository's ``validation/`` folder.

>>> from mi_estimators.validation import run_validation
>>> report = run_validation(bounds=["infonce"], tasks=["gauss-1x1-mi0.5"], staircase_steps=20,
...                         task_steps=20, out=None)
>>> sorted(report)
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
from mi_estimators.validation.grid import TaskResult, run_task
from mi_estimators.validation.report import write_report
from mi_estimators.validation.selection import BoundSet, resolve_bounds
from mi_estimators.validation.staircase import StaircaseResult, run_staircase, staircase_table

__all__ = ["BoundSet", "QUICK", "FULL", "StaircaseResult", "TaskResult", "resolve_bounds", "run_staircase",
           "run_task", "run_validation", "staircase_table"]

#: the quick grid: a short staircase (separable critic) and four tasks, one per family
QUICK = dict(critics=("separable",), staircase_steps=200, task_steps=400, task_hidden=64, eval_batches=10,
             tasks=("gauss-5x5-mi2", "cubic-gauss-1x1-mi0.5", "student-t-2x2-df2", "uniform-eps0.1"))
#: the full-size grid: Poole et al.'s staircase with both critics, every registered task
FULL = dict(critics=("separable", "concat"), staircase_steps=4000, task_steps=3000, task_hidden=128,
            eval_batches=20, tasks=("*",))


def _select_tasks(patterns: Sequence[str]) -> list[str]:
    names = registry.available("tasks")
    chosen = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    missing = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if missing:
        raise ValueError(f"no registered task matches {missing}; available: {', '.join(names)}")
    # keep the order the patterns were given in
    order = {n: min(i for i, p in enumerate(patterns) if fnmatch.fnmatchcase(n, p)) for n in chosen}
    return sorted(chosen, key=lambda n: (order[n], names.index(n)))


def run_validation(bounds: Sequence[str] | None = None, tasks: Sequence[str] = QUICK["tasks"],
                   critics: Sequence[str] = ("separable",), staircase_steps: int = 300, staircase_layers: int = 2,
                   task_steps: int = 400,
                   task_hidden: int = 64, eval_batches: int = 10, levels: Sequence[float] = (2, 4, 6, 8, 10),
                   seed: int = 0, device: str = "auto", out: str | Path | None = None,
                   progress: bool | None = None, command: str | None = None, threads: int | None = 1) -> dict[str, Any]:
    """Run the staircase (for each of ``critics``, MLPs of ``staircase_layers`` hidden layers of 256;
    none if ``staircase_steps`` is 0) and the
    task grid (``tasks``: registered task names or fnmatch patterns; none if empty) for every
    bound matching ``bounds``, with ``threads`` torch CPU threads (the caller's count is restored
    after). Writes ``report.md``, ``results.json`` and PNGs to ``out`` (unless None) and returns the
    results as a dict of plain rows."""
    from tqdm.auto import tqdm

    dev = resolve_device(device)
    bound_set = resolve_bounds(list(bounds) if bounds else None)
    if not bound_set.names:
        raise ValueError(f"every selected bound failed its smoke test: {bound_set.errors}")
    task_names = _select_tasks(list(tasks)) if tasks else []
    total = len(critics) * staircase_steps * len(levels) + len(task_names) * task_steps
    bar = tqdm(total=total, desc="validate", disable=not (sys.stderr.isatty() if progress is None else progress),
               dynamic_ncols=True)
    with torch_threads(threads):
        stair_results = [run_staircase(bound_set, critic, levels=tuple(levels), steps_per_level=staircase_steps,
                                       layers=staircase_layers, seed=seed, device=dev, progress=bar)
                         for critic in (critics if staircase_steps > 0 else ())]
        task_results = [run_task(registry.get(name, kind="tasks"), bound_set, steps=task_steps, hidden=task_hidden,
                                 eval_batches=eval_batches, seed=seed, device=dev, progress=bar)
                        for name in task_names]
    bar.close()
    report = dict(
        settings=dict(bounds=bound_set.names, failed=bound_set.errors, critics=list(critics),
                      staircase_steps_per_level=staircase_steps, levels=list(levels), tasks=task_names,
                      task_steps=task_steps, task_hidden=task_hidden, eval_batches=eval_batches, seed=seed,
                      device=str(dev), command=command),
        staircase=[dict(critic=r.critic, seconds=r.seconds, errors=r.errors, settings=r.settings,
                        table=staircase_table(r)) for r in stair_results],
        tasks=[dict(task=r.task, mi=r.true_mi, seconds=r.seconds, errors=r.errors, settings=r.settings,
                    rows=r.rows()) for r in task_results],
    )
    if out is not None:
        write_report(report, stair_results, task_results, Path(out))
    return report
