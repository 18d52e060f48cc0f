"""Are the critics ``estimate()`` trains at 10^5 and 10^6 rows different, once the read-out's own bias
is out of the way?

At 10^5 rows and more, ``estimate()`` reads its critic out with InfoNCE on 4,096-row blocks, whose
bias caps what any critic can show (``BENCHMARKS.md``: 4.88 for 5 nats on
``spiral-gauss-5x5-mi5``, for the exact log density ratio too). This script trains ``estimate()`` at
each ``--sizes`` n on ``task.sample(n, seed)``, then reads each returned critic out on the same fresh
rows (``task.sample(rows, seed + 100)``, mapped to normal scores by their own ranks, as ``estimate()``
maps its rows) with InfoNCE on blocks of ``--block`` rows, scored a chunk of rows at a time as
``estimate()`` scores a large test split (``readout.block_value``: the ``(block, block)`` matrix is
never held). Beside
them, the exact log density ratio on the same blocks: the read-out's floor; and per block, each
critic's difference from the first row's on the same rows (paired: the rows' own noise cancels).

    OMP_NUM_THREADS=1 .venv/bin/python studies/large_block_readout.py --sizes 100000 1000000 --block 16384
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

import mi_estimators as mie
from mi_estimators.arrays import marginal_transform
from mi_estimators.estimation.readout import block_value

def exact_critic(task):
    """The task's log density ratio as a critic: ``(rows, m)`` scores of rows of x against all of y
    (off the support, −∞, clamped to −10⁴)."""
    def scores(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        xs, ys = x.numpy(), y.numpy()
        t = task.log_density_ratio(np.repeat(xs, len(ys), 0), np.tile(ys, (len(xs), 1)))
        return torch.as_tensor(t.reshape(len(xs), len(ys)), dtype=torch.float32).clamp_min(-1e4)
    return scores


def read_blocks(critic, x: torch.Tensor, y: torch.Tensor, block: int) -> np.ndarray:
    """InfoNCE of ``critic`` on each of the ``len(x) // block`` disjoint blocks, as ``estimate()``
    reads a large test split (:func:`mi_estimators.estimation.readout.block_value`)."""
    nce = mie.get("infonce")
    return np.array([block_value(critic, nce, x[k * block:(k + 1) * block], y[k * block:(k + 1) * block])[0]
                     for k in range(len(x) // block)])


def mean_se(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="spiral-gauss-5x5-mi5")
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--block", type=int, default=16384)
    p.add_argument("--rows", type=int, default=65536, help="fresh rows read out")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-exact", dest="exact", action="store_false", help="skip the exact critic's row")
    a = p.parse_args()
    task = mie.get(a.task, kind="tasks")
    fx, fy = task.sample(a.rows, seed=a.seed + 100)
    every = np.arange(a.rows)
    zx, zy = (torch.as_tensor(marginal_transform(v, every, "rank"), dtype=torch.float32) for v in (fx, fy))
    print(f"| critic | InfoNCE on {a.block}-row blocks of {a.rows} fresh rows | stderr | paired difference from "
          "the first row, per block: mean ± stderr | estimate() | CPU s |")
    print("|---|---|---|---|---|---|")
    first = None
    if a.exact:
        first = read_blocks(exact_critic(task), torch.as_tensor(fx), torch.as_tensor(fy), a.block)
        print(f"| exact log density ratio (true {task.mi:.3f}) | {mean_se(first)[0]:.4f} | {mean_se(first)[1]:.4f} "
              "| | | |", flush=True)
    for n in a.sizes:
        x, y = task.sample(n, seed=a.seed)
        t = time.process_time()
        result = mie.estimate(x, y, seed=0, threads=1, progress=False)
        cpu = time.process_time() - t
        critic = result.critic.cpu().eval()
        values = read_blocks(critic, zx, zy, a.block)
        first = values if first is None else first
        diff = "{:+.4f} ± {:.4f}".format(*mean_se(values - first)) if values is not first else ""
        print(f"| estimate() at n = {n:,} ({result.settings.chosen_critic}) | {mean_se(values)[0]:.4f} | "
              f"{mean_se(values)[1]:.4f} | {diff} | {result.mi:.4f} ± {result.stderr:.4f} | {cpu:.0f} |", flush=True)


if __name__ == "__main__":
    main()
