"""Seconds per ``estimate(x, y)`` call at n = 5,000 on one thread, against the previous behaviour and
KSG, measured in the same run on the same samples.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_estimate_speed.py              # v1 suite
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_estimate_speed.py --tasks 'gauss-5x5*' 'spiral-*'

For every task of the suite (``--suite``, the task sets of ``studies/run_estimate.py``; ``--tasks``
patterns filter it) and sample seed, three timings on the same samples:

* ``default``: ``estimate(x, y, seed=seed)`` as shipped;
* ``before``: the behaviour before the race and the one-pass jackknife: ``race=False`` (the trained
  critic trains to its own early stop even where it cannot catch the copula candidate) and the naive
  delete-a-group jackknife (``mi_estimators.jackknife.naive_delete_group_values``, patched in for
  this variant only);
* ``in-turn``: the defaults, but the cross-fit's K refits trained one after the other
  (:meth:`Candidate.refit_folds <mi_estimators.estimation.candidates.base.Candidate.refit_folds>`
  patched in for the trained candidate) instead of as one stacked model: the same fits up to rounding,
  so the same estimates;
* ``concat-alone``: the defaults, but on data of at most ``AUTO_CONCAT_MAX_DIM`` columns in all
  the concat critic alone (``critic="concat"``), the behaviour before the separable critic was trained
  beside it (:mod:`mi_estimators.estimation.candidates.narrow`); on wider data the defaults;
* ``dense-copula``: the defaults, but the copula candidate's winner is not refitted on sparse
  directions (:func:`~mi_estimators.estimation.candidates.copula.sparse_rival` patched out): the
  behaviour before that step;
* ``ksg``: :func:`mi_estimators.ksg.ksg_mi` (k = 3).

The two ``estimate`` variants run in alternating order (task by task) after one warm-up call (the
first call of a process also imports ``torch._dynamo`` with the first optimiser: its cost is printed
separately). The summary gives the median and the maximum over (task, seed) of the wall and CPU
seconds (``time.process_time``: with one thread, this process's time on a core), the ratios
``before / default``, and the tasks within tolerance (|error| <= 0.1 nats or 10%) for each variant.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import statistics
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np

import mi_estimators as mie
from mi_estimators import fit
from mi_estimators.estimation.candidates import copula as copula_candidate
from mi_estimators.estimation.candidates.base import Candidate
from mi_estimators.estimation.candidates.trained import TrainedCandidate
from mi_estimators.estimation.options import AUTO_CONCAT_MAX_DIM
from mi_estimators.jackknife import naive_delete_group_values
from mi_estimators.ksg import ksg_mi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "studies"))
from run_estimate import suite_tasks, within  # noqa: E402


@contextlib.contextmanager
def naive_jackknife() -> Iterator[None]:
    """The held-out read-out with the naive delete-a-group jackknife (the behaviour before the fast paths)."""
    def variance(bound, scores, groups):
        loo = naive_delete_group_values(bound, scores, groups)
        return (groups - 1) / groups * float(((loo - loo.mean()) ** 2).sum())

    fast, fit.jackknife_variance = fit.jackknife_variance, variance
    try:
        yield
    finally:
        fit.jackknife_variance = fast


@contextlib.contextmanager
def refits_in_turn() -> Iterator[None]:
    """The trained candidate's cross-fit refits one after the other (the behaviour before stacking them)."""
    stacked, TrainedCandidate.refit_folds = TrainedCandidate.refit_folds, Candidate.refit_folds
    try:
        yield
    finally:
        TrainedCandidate.refit_folds = stacked


@contextlib.contextmanager
def dense_copula() -> Iterator[None]:
    """The copula candidate without the sparse-directions rival (the behaviour before it)."""
    rival, copula_candidate.sparse_rival = copula_candidate.sparse_rival, lambda best, *_: best
    try:
        yield
    finally:
        copula_candidate.sparse_rival = rival


def timed(call) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = call()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run_variant(name: str, x: np.ndarray, y: np.ndarray, seed: int) -> tuple[object, float, float]:
    if name == "ksg":
        return timed(lambda: ksg_mi(x, y))
    if name == "in-turn":
        with refits_in_turn():
            return timed(lambda: mie.estimate(x, y, seed=seed))
    if name == "concat-alone":
        critic = "concat" if x.shape[1] + y.shape[1] <= AUTO_CONCAT_MAX_DIM else "auto"
        return timed(lambda: mie.estimate(x, y, seed=seed, critic=critic))
    if name == "dense-copula":
        with dense_copula():
            return timed(lambda: mie.estimate(x, y, seed=seed))
    if name == "before":
        with naive_jackknife():
            return timed(lambda: mie.estimate(x, y, seed=seed, race=False))
    return timed(lambda: mie.estimate(x, y, seed=seed))


def summarise(rows: list[dict], variants: list[str]) -> None:
    print("\n| variant | median wall s | max wall s | median CPU s | max CPU s | within tolerance |")
    print("|---|---|---|---|---|---|")
    for v in variants:
        wall, cpu = [r[v][1] for r in rows], [r[v][2] for r in rows]
        ok = sum(r[v][3] for r in rows)
        print(f"| {v} | {statistics.median(wall):.2f} | {max(wall):.2f} | {statistics.median(cpu):.2f} | "
              f"{max(cpu):.2f} | {ok}/{len(rows)} |")
    baselines = ("before", "in-turn", "concat-alone", "dense-copula")
    for base in (v for v in baselines if v in variants and "default" in variants):
        ratio = [r[base][2] / r["default"][2] for r in rows]
        med = statistics.median(r[base][2] for r in rows) / statistics.median(r["default"][2] for r in rows)
        top = max(r[base][2] for r in rows) / max(r["default"][2] for r in rows)
        print(f"\nCPU {base} / default: per call median {statistics.median(ratio):.2f} (min {min(ratio):.2f}, "
              f"max {max(ratio):.2f}); ratio of the medians {med:.2f}, of the maxima {top:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=["v1", "v2", "all"], default="v1")
    p.add_argument("--tasks", nargs="*", default=["*"], help="task ids or fnmatch patterns")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--variants", nargs="+", default=["default", "before", "ksg"],
                   choices=["default", "before", "in-turn", "concat-alone", "dense-copula", "ksg"])
    a = p.parse_args()
    tasks = [t for t in suite_tasks(a.suite) if any(fnmatch.fnmatch(t, pat) for pat in a.tasks)]
    if not tasks:
        raise SystemExit(f"no task of suite {a.suite} matches {a.tasks}")
    x, y = mie.get(tasks[0], kind="tasks").sample(a.n, seed=1)
    _, wall, cpu = timed(lambda: mie.estimate(x, y, seed=0))
    print(f"warm-up (first call of the process, {tasks[0]}): {wall:.2f} s wall, {cpu:.2f} s CPU")
    print("\n| task | seed | " + " | ".join(f"{v} s (CPU)" for v in a.variants)
          + " | chosen | mi: " + " / ".join(v for v in a.variants if v != "ksg") + " |")
    print("|---|---|" + "---|" * len(a.variants) + "---|---|")
    rows = []
    for i, task_id in enumerate(tasks):
        task = mie.get(task_id, kind="tasks")
        for seed in a.seeds:
            x, y = task.sample(a.n, seed=seed + 1)
            order = a.variants if i % 2 == 0 else a.variants[::-1]  # alternate which variant runs first
            row = {}
            for v in order:
                out, wall, cpu = run_variant(v, x, y, seed)
                value = out if v == "ksg" else out.mi
                row[v] = (out, wall, cpu, within(value, task.mi))
            rows.append(row)
            mis = " / ".join(f"{row[v][0].mi:.3f}" for v in a.variants if v != "ksg")
            chosen = row["default"][0].settings.chosen_critic if "default" in row else ""
            print(f"| {task_id} | {seed} | " + " | ".join(f"{row[v][1]:.2f} ({row[v][2]:.2f})" for v in a.variants)
                  + f" | {chosen} | {mis} (true {task.mi:.3f}) |", flush=True)
    summarise(rows, a.variants)


if __name__ == "__main__":
    main()
