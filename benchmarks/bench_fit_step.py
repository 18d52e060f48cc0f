"""Seconds per training step of ``estimate()``'s separable critic, against a plain loop in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fit_step.py --repeats 5

Workloads (one thread, batch 256 of 3,500 training rows, the default critic: 4 SiLU layers of 64
on inputs with their norm feature, 32-d embedding):

* **plain**: the step as one writes it (scores, ``-(diag - logsumexp).mean()``, backward, Adam);
* **fit_critic**: :func:`mi_estimators.fit.fit_critic` without a monitor (InfoNCE through the
  registry's bound, the step's value read back), without and with the moving average (``ema``);
* each on ``spiral-gauss-2pair-5x5`` (1 nat) and on ``uniform-3x3-eps0.1`` (5.1 nats), where a sharp
  critic's soft-max makes denormal floats, with and without :func:`mi_estimators.fit.flush_denormals`.

Methods alternate in rotating order within each repeat; the table gives medians and the ratio to
the plain loop of the same workload.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import mi_estimators as mie
from mi_estimators.arrays import marginal_transform
from mi_estimators.critics import SeparableCritic
from mi_estimators.fit import FitConfig, fit_critic, flush_denormals, make_adam


def data(task_id: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = mie.get(task_id, kind="tasks").sample(5000, seed=1)
    rows = np.arange(3500)
    return tuple(torch.as_tensor(marginal_transform(a, rows)[rows], dtype=torch.float32) for a in (x, y))


def critic(dx: int, dy: int) -> SeparableCritic:
    torch.manual_seed(0)
    return SeparableCritic(dx, dy, hidden=64, layers=4, embed_dim=32, activation="silu", norm_feature=True)


def plain(x, y, steps: int) -> None:
    c = critic(x.shape[1], y.shape[1])
    opt = make_adam(c.parameters(), 2e-3)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        idx = torch.as_tensor(rng.choice(len(x), 256, replace=False))
        s = c(x[idx], y[idx])
        loss = -(s.diag() - torch.logsumexp(s, 1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def library(x, y, steps: int, ema: float | None) -> None:
    fit_critic(critic(x.shape[1], y.shape[1]), mie.get("infonce"), (x, y), None,
               FitConfig(steps=steps, batch=256, lr=2e-3, ema=ema), rng=np.random.default_rng(0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=400)
    a = p.parse_args()
    torch.set_num_threads(1)
    methods = {"plain": lambda x, y: plain(x, y, a.steps),
               "fit_critic": lambda x, y: library(x, y, a.steps, None),
               "fit_critic, ema=0.99": lambda x, y: library(x, y, a.steps, 0.99)}
    print("| task | denormals | method | ms / step (median) | / plain |")
    print("|---|---|---|---|---|")
    for task_id in ("spiral-gauss-2pair-5x5", "uniform-3x3-eps0.1"):
        x, y = data(task_id)
        for flush in (False, True):
            times: dict[str, list[float]] = {m: [] for m in methods}
            names = list(methods)
            for r in range(a.repeats + 1):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    t = time.process_time()
                    if flush:
                        with flush_denormals():
                            methods[name](x, y)
                    else:
                        methods[name](x, y)
                    if r:  # the first round warms up
                        times[name].append((time.process_time() - t) / a.steps * 1e3)
            base = statistics.median(times["plain"])
            for name in names:
                ms = statistics.median(times[name])
                print(f"| {task_id} | {'flushed' if flush else 'kept'} | {name} | {ms:.2f} | {ms / base:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
