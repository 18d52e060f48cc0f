"""Which torch thread count is fastest for ``estimate()``'s small critics: 1, 2, or torch's default.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_estimate_threads.py --repeats 3

``estimate(threads=T)`` sets torch's intra-op threads for the call (``None`` leaves torch's default,
which is the number of cores unless OMP_NUM_THREADS says otherwise: run this benchmark *without*
``OMP_NUM_THREADS`` to see the default). Three workloads, each timed with every setting in an
interleaved, rotating order, ``--repeats`` times; the table gives the median seconds (wall and
CPU) and the ratio to one thread.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import mi_estimators as mie

WORKLOADS = {
    "trained separable critic (5x5 Student-t, copula off, 300 steps)":
        ("student-t-5x5-df2", dict(copula=False, steps=300, patience=1000)),
    "trained concat critic (1x1 additive noise, copula off, 300 steps)":
        ("uniform-eps0.75", dict(copula=False, steps=300, patience=1000)),
    "copula candidates only (25x25 Gaussian, 20 steps of the trained critic)":
        ("gauss-2pair-25x25", dict(steps=20)),
}


def time_one(task_id: str, options: dict, threads: int | None) -> tuple[float, float]:
    x, y = mie.get(task_id, kind="tasks").sample(5000, seed=1)
    wall, cpu = time.perf_counter(), time.process_time()
    mie.estimate(x, y, seed=0, threads=threads, **options)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    settings = [1, 2, None]
    print(f"torch default threads here: {torch.get_num_threads()}")
    print("| workload | threads | wall s (median) | CPU s (median) | wall / 1 thread |")
    print("|---|---|---|---|---|")
    for name, (task_id, options) in WORKLOADS.items():
        times: dict = {t: [] for t in settings}
        for r in range(a.repeats):
            for t in settings[r % 3:] + settings[:r % 3]:  # rotate the order
                times[t].append(time_one(task_id, options, t))
        base = statistics.median(w for w, _ in times[1])
        for t in settings:
            wall = statistics.median(w for w, _ in times[t])
            cpu = statistics.median(c for _, c in times[t])
            label = "torch default" if t is None else str(t)
            print(f"| {name} | {label} | {wall:.2f} | {cpu:.2f} | {wall / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
