"""The read-out's own floor on the v2 benchmark's tasks: the task's exact log density ratio as the
critic, read out exactly as ``estimate()`` reads its winner at n = 5,000.

``estimate()`` reads a cross-fitted winner on 5 folds of 1,000 rows (and a concat winner on the
1,000-row test split): the bound on each block's full 1,000 × 1,000 score matrix, averaged. Here
the critic is ``task.log_density_ratio`` itself (the optimal critic), on the same sample
``run_estimate.py`` draws (``task.sample(5000, seed=seed + 1)``), cut into 5 blocks of 1,000 rows.
What InfoNCE reads with it is the most any trained critic can read with InfoNCE at this n; DV and
NWJ (of 1 + log r, its optimum) show what another read-out of a perfect critic would give.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python studies/oracle_v2.py [TASK ...] [--seeds 0 1 2]

Any registered task with a log density ratio works; ``--block`` and ``--n`` set the read-out's block
and the sample (e.g. ``spiral-gauss-5x5-mi5 --block 4096 --n 16384 --seeds 2``: the floor of the
4,096-row test blocks ``estimate()`` reads out above 20,000 rows).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import mi_estimators as mie
from mi_estimators.tasks import BENCHMARK_V2

BLOCK = 1000


def exact_scores(task, x: np.ndarray, y: np.ndarray, chunk: int = 256) -> torch.Tensor:
    """``T(x_i, y_j) = log p(x_i, y_j) / p(x_i) p(y_j)``, −∞ (off the support) clamped to −10⁴;
    computed ``chunk`` rows of x at a time."""
    n = len(y)
    rows = [task.log_density_ratio(np.repeat(x[i:i + chunk], n, 0), np.tile(y, (len(x[i:i + chunk]), 1)))
            for i in range(0, len(x), chunk)]
    return torch.as_tensor(np.concatenate(rows).reshape(len(x), n)).clamp_min(-1e4)


def floors(task, seed: int, n: int = 5000, bounds=("infonce", "dv", "nwj"), block: int = BLOCK) -> dict[str, float]:
    """Each bound of the exact critic, averaged over the ``n // block`` blocks of the sample."""
    x, y = task.sample(n, seed=seed + 1)
    out = {b: [] for b in bounds}
    for k in range(n // block):
        t = exact_scores(task, x[k * block:(k + 1) * block], y[k * block:(k + 1) * block])
        for b in bounds:  # NWJ's optimal critic is 1 + log r
            out[b].append(float(mie.get(b)(t + 1 if b == "nwj" else t)))
    return {b: float(np.mean(v)) for b, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tasks", nargs="*", default=list(BENCHMARK_V2))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--block", type=int, default=BLOCK, help="rows per read-out block")
    p.add_argument("--n", type=int, default=5000, help="rows of each sample")
    a = p.parse_args()
    print("| task | true MI | seed | exact critic, InfoNCE | DV | NWJ(1 + log r) |\n|---|---|---|---|---|---|")
    for tid in a.tasks:
        task = mie.get(tid, kind="tasks")
        for seed in a.seeds:
            f = floors(task, seed, a.n, block=a.block)
            print(f"| {tid} | {task.mi:.3f} | {seed} | {f['infonce']:.3f} | {f['dv']:.3f} | {f['nwj']:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
