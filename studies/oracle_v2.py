"""The read-out's own floor on the v2 benchmark's tasks: the task's exact log density ratio as the
critic, read out exactly as ``estimate()`` reads its winner at n = 5,000.

``estimate()`` reads a cross-fitted winner on 5 folds of 1,000 rows (and a concat winner on the
1,000-row test split): the bound on each block's full 1,000 × 1,000 score matrix, averaged. Here
the critic is ``task.log_density_ratio`` itself (the optimal critic), on the same sample
``run_estimate.py`` draws (``task.sample(5000, seed=seed + 1)``), cut into 5 blocks of 1,000 rows.
What InfoNCE reads with it is the most any trained critic can read with InfoNCE at this n; DV and
NWJ (of 1 + log r, its optimum) show what another read-out of a perfect critic would give.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python studies/oracle_v2.py [TASK ...] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import mi_estimators as mie
from mi_estimators.tasks import BENCHMARK_V2

BLOCK = 1000


def exact_scores(task, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
    """``T(x_i, y_j) = log p(x_i, y_j) / p(x_i) p(y_j)``, −∞ (off the support) clamped to −10⁴."""
    n = len(x)
    t = task.log_density_ratio(np.repeat(x, n, 0), np.tile(y, (n, 1))).reshape(n, n)
    return torch.as_tensor(t).clamp_min(-1e4)


def floors(task, seed: int, n: int = 5000, bounds=("infonce", "dv", "nwj")) -> dict[str, float]:
    """Each bound of the exact critic, averaged over the ``n // BLOCK`` blocks of the sample."""
    x, y = task.sample(n, seed=seed + 1)
    out = {b: [] for b in bounds}
    for k in range(n // BLOCK):
        t = exact_scores(task, x[k * BLOCK:(k + 1) * BLOCK], y[k * BLOCK:(k + 1) * BLOCK])
        for b in bounds:  # NWJ's optimal critic is 1 + log r
            out[b].append(float(mie.get(b)(t + 1 if b == "nwj" else t)))
    return {b: float(np.mean(v)) for b, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tasks", nargs="*", default=list(BENCHMARK_V2))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    a = p.parse_args()
    print("| task | true MI | seed | exact critic, InfoNCE | DV | NWJ(1 + log r) |\n|---|---|---|---|---|---|")
    for tid in a.tasks:
        task = mie.get(tid, kind="tasks")
        for seed in a.seeds:
            f = floors(task, seed)
            print(f"| {tid} | {task.mi:.3f} | {seed} | {f['infonce']:.3f} | {f['dv']:.3f} | {f['nwj']:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
