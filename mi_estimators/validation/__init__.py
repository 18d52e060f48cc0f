"""``mi-estimators validate``: every registered bound against closed-form MI.

Two suites, both run for every bound in the registry (third-party plugins included):

* the **staircase** of Poole et al. 2019 (arXiv:1905.06922, Figure 2) — see
  :mod:`mi_estimators.validation.staircase`;
* the **task grid** — every bound on closed-form tasks (Gaussian, transformed, Student-t,
  additive uniform; :mod:`mi_estimators.tasks`) — see :mod:`mi_estimators.validation.grid`.

All bounds train together: one stacked critic with a copy per bound
(:mod:`mi_estimators.validation.engine`). The command prints a table and writes ``report.md``,
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

import argparse
import fnmatch
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mi_estimators import registry
from mi_estimators.device import resolve_device
from mi_estimators.validation.engine import BoundSet, resolve_bounds, train_stacked
from mi_estimators.validation.grid import TaskResult, run_task
from mi_estimators.validation.report import markdown_table, plot_staircase, plot_tasks, text_table
from mi_estimators.validation.staircase import StaircaseResult, run_staircase, staircase_table

__all__ = ["BoundSet", "QUICK", "FULL", "StaircaseResult", "TaskResult", "add_arguments", "main",
           "resolve_bounds", "run_staircase", "run_task", "run_validation", "staircase_table", "train_stacked"]

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
                   critics: Sequence[str] = ("separable",), staircase_steps: int = 300, task_steps: int = 400,
                   task_hidden: int = 64, eval_batches: int = 10, levels: Sequence[float] = (2, 4, 6, 8, 10),
                   seed: int = 0, device: str = "auto", out: str | Path | None = None,
                   progress: bool | None = None, command: str | None = None) -> dict[str, Any]:
    """Run the staircase (for each of ``critics``; none if ``staircase_steps`` is 0) and the
    task grid (``tasks``: registered task names or fnmatch patterns; none if empty) for every
    bound matching ``bounds``. Writes ``report.md``, ``results.json`` and PNGs to ``out``
    (unless None) and returns the results as a dict of plain rows."""
    from tqdm.auto import tqdm

    dev = resolve_device(device)
    bound_set = resolve_bounds(list(bounds) if bounds else None)
    if not bound_set.names:
        raise ValueError(f"every selected bound failed its smoke test: {bound_set.errors}")
    task_names = _select_tasks(list(tasks)) if tasks else []
    total = len(critics) * staircase_steps * len(levels) + len(task_names) * task_steps
    bar = tqdm(total=total, desc="validate", disable=not (sys.stderr.isatty() if progress is None else progress),
               dynamic_ncols=True)
    stair_results: list[StaircaseResult] = []
    if staircase_steps > 0:
        for critic in critics:
            bar.set_postfix_str(f"staircase/{critic}")
            stair_results.append(run_staircase(bound_set, critic, levels=tuple(levels),
                                               steps_per_level=staircase_steps, seed=seed, device=dev,
                                               progress=bar))
    task_results: list[TaskResult] = []
    for name in task_names:
        bar.set_postfix_str(name)
        task = registry.get(name, kind="tasks")
        task_results.append(run_task(task, bound_set, steps=task_steps, hidden=task_hidden,
                                     eval_batches=eval_batches, seed=seed, device=dev, progress=bar))
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


def _pm(mean: float, sd: float, signed: bool = False) -> str:
    """``mean ± sd``; diverged values (|x| >= 1e4) in scientific notation so tables stay narrow."""
    def one(v: float, sign: bool) -> str:
        if v != v:
            return "nan"
        if abs(v) >= 1e4:
            return f"{v:+.1e}" if sign else f"{v:.1e}"
        return f"{v:+.2f}" if sign else f"{v:.2f}"

    return f"{one(mean, signed)} ± {one(sd, False)}"


def _staircase_wide(table: list[dict[str, Any]], levels: Sequence[float]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for r in table:
        row = rows.setdefault(r["bound"], {"bound": r["bound"]})
        row[f"I={r['mi']:g}"] = _pm(r["bias"], r["sd"], signed=True)
    return list(rows.values())


def _tasks_wide(task_reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for t in task_reports:
        for r in t["rows"]:
            row = rows.setdefault(r["bound"], {"bound": r["bound"]})
            row[f"{t['task']} ({t['mi']:.2f})"] = _pm(r["estimate"], r["sd"])
    return list(rows.values())


def summary_text(report: dict[str, Any]) -> str:
    parts = []
    levels = report["settings"]["levels"]
    for s in report["staircase"]:
        wide = _staircase_wide(s["table"], levels)
        parts.append(f"Staircase, {s['critic']} critic ({report['settings']['staircase_steps_per_level']} steps "
                     f"per level, {s['seconds']:.0f} s): bias ± sd over the second half of each level\n"
                     + text_table(wide, ["bound"] + [f"I={m:g}" for m in levels]))
    if report["tasks"]:
        cols = ["bound"] + [f"{t['task']} ({t['mi']:.2f})" for t in report["tasks"]]
        parts.append("Closed-form tasks: held-out estimate ± sd (true MI in the header)\n"
                     + text_table(_tasks_wide(report["tasks"]), cols))
    if report["settings"]["failed"]:
        parts.append("Failed bounds: " + "; ".join(f"{k}: {v}" for k, v in report["settings"]["failed"].items()))
    return "\n\n".join(parts)


def write_report(report: dict[str, Any], stair_results: list[StaircaseResult], task_results: list[TaskResult],
                 out: Path) -> Path:
    """``report.md``, ``results.json``, ``staircase_<critic>.png`` and ``tasks.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    s = report["settings"]
    lines = ["# Validation report", ""]
    if s.get("command"):
        lines += [f"Command: `{s['command']}`", ""]
    lines += [f"Bounds: {', '.join(s['bounds'])}. Device: {s['device']}. Seed: {s['seed']}.", ""]
    for res, entry in zip(stair_results, report["staircase"]):
        png = plot_staircase(res, out / f"staircase_{res.critic}.png")
        np.savez_compressed(out / f"staircase_{res.critic}.npz", estimates=res.estimates.astype(np.float32),
                            names=np.array(res.names), levels=np.array(res.levels, dtype=float),
                            steps_per_level=res.steps_per_level, batch_size=res.batch_size)
        lines += [f"## Staircase, {res.critic} critic", "",
                  f"Poole et al. 2019 (arXiv:1905.06922) Figure 2 setting: d = {res.settings['d']}, levels "
                  f"{', '.join(f'{m:g}' for m in res.levels)} nats, {res.steps_per_level} steps per level, batch "
                  f"{res.batch_size} drawn fresh each step, Adam lr {res.settings['lr']}, hidden "
                  f"{res.settings['hidden']}×{res.settings['layers']}"
                  + (f", embedding {res.settings['embed_dim']}" if res.settings.get("embed_dim") else "")
                  + f". All bounds trained in one pass: {res.seconds:.0f} s.", "",
                  f"![staircase]({png.name})", "",
                  "Bias ± sd over the second half of each level:", "",
                  markdown_table(_staircase_wide(entry["table"], res.levels),
                                 ["bound"] + [f"I={m:g}" for m in res.levels]),
                  "Per bound and level (second half of each level):", "",
                  markdown_table(entry["table"], ["bound", "mi", "mean", "bias", "sd", "mse"]), ""]
        if res.errors:
            lines += ["Failed: " + "; ".join(f"`{k}`: {v}" for k, v in res.errors.items()), ""]
    if task_results:
        png = plot_tasks(task_results, out / "tasks.png")
        t0 = task_results[0].settings
        lines += ["## Closed-form tasks", "",
                  f"Separable critic (hidden {t0['hidden']}×{t0['layers']}, embedding {t0['embed_dim']}), "
                  f"{t0['steps']} steps of batch {t0['batch_size']} drawn fresh from each task, Adam lr {t0['lr']}; "
                  f"estimate = mean over {t0['eval_batches']} fresh held-out batches of {t0['batch_size']}, "
                  "± their sd.", "", f"![tasks]({png.name})", "",
                  markdown_table(_tasks_wide(report["tasks"]),
                                 ["bound"] + [f"{t['task']} ({t['mi']:.2f})" for t in report["tasks"]]),
                  "Long form:", "",
                  markdown_table([r for t in report["tasks"] for r in t["rows"]],
                                 ["task", "mi", "bound", "estimate", "bias", "sd"]), ""]
    if s["failed"]:
        lines += ["Bounds that failed the smoke test: " + "; ".join(f"`{k}`: {v}" for k, v in s["failed"].items()), ""]
    (out / "report.md").write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps(report, indent=1, default=float))
    return out / "report.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="a short grid (a few minutes on 2 CPU cores): staircase with 200 steps per level, 4 tasks")
    parser.add_argument("--bounds", nargs="+", metavar="NAME",
                        help="bounds to validate (names or fnmatch patterns; default: every registered bound)")
    parser.add_argument("--tasks", nargs="*", metavar="TASK",
                        help="registered tasks (names or patterns; `mi-estimators list tasks`); none to skip")
    parser.add_argument("--critics", nargs="*", choices=("separable", "concat"),
                        help="critics for the staircase (default: separable; full run: both)")
    parser.add_argument("--steps-per-level", type=int, help="staircase steps per MI level (0 skips the staircase)")
    parser.add_argument("--task-steps", type=int, help="training steps per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, ...")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: the critics are small, and extra threads only "
                             "wait on each other on a busy machine)")
    parser.add_argument("--out", default="out/validation", help="folder for report.md, results.json and PNGs")


def main(args: argparse.Namespace) -> int:
    import torch

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    cfg = dict(QUICK if args.quick else FULL)
    if args.tasks is not None:
        cfg["tasks"] = tuple(args.tasks)
    if args.critics is not None:
        cfg["critics"] = tuple(args.critics)
    if args.steps_per_level is not None:
        cfg["staircase_steps"] = args.steps_per_level
    if args.task_steps is not None:
        cfg["task_steps"] = args.task_steps
    command = "mi-estimators validate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "mi-estimators validate"
    t0 = time.perf_counter()
    report = run_validation(bounds=args.bounds, seed=args.seed, device=args.device, out=args.out,
                            command=command, **cfg)
    print(summary_text(report))
    print(f"\nwrote {Path(args.out) / 'report.md'} ({time.perf_counter() - t0:.0f} s)")
    return 0
