"""What fixed critics read on 1,000 fresh rows: the floors behind two of ``estimate()``'s misses.

* ``spiral-gauss-5x5-mi5`` (5 nats): the task's exact log density ratio read out by InfoNCE, DV and
  NWJ on all pairs of 1,000 rows (the size of a cross-fitting fold at n = 5,000): InfoNCE's own
  bias at this MI. With ``--trained``, also ``estimate(folds=1)``'s trained critic on fresh rows,
  read out by InfoNCE, by InfoNCE without the positive in the log-sum, and by DV.
* ``uniform-3x3-eps0.1`` (5.13 nats): the exact ratio (a box of width 2ε in each coordinate) against
  band critics of the raw coordinates, −Σ(y_i − x_i)²/2σ² (σ = ε/√3 is the noise's standard
  deviation) and −3Σ(|y_i − x_i|/ε)⁸, read out by InfoNCE.

    OMP_NUM_THREADS=1 .venv/bin/python studies/readout_floors.py [--trained]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import mi_estimators as mie
from mi_estimators.arrays import marginal_transform

N = 1000


def exact_scores(task, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
    """``T(x_i, y_j)`` of the task's log density ratio, −∞ (off the support) clamped to −10⁴."""
    n = len(x)
    t = task.log_density_ratio(np.repeat(x, n, 0), np.tile(y, (n, 1))).reshape(n, n)
    return torch.as_tensor(t).clamp_min(-1e4)


def spiral(trained: bool) -> None:
    task = mie.get("spiral-gauss-5x5-mi5", kind="tasks")
    for seed in (0, 1):
        x, y = task.sample(N, seed=100 + seed)
        t = exact_scores(task, x, y)
        values = ", ".join(f"{b} {float(mie.get(b)(t)):.3f}" for b in ("infonce", "dv", "nwj"))
        print(f"{task.id} (true {task.mi:.3f}) rows seed {100 + seed}: exact critic: {values}")
    if not trained:
        return
    for seed in (0, 1):
        x, y = task.sample(5000, seed=seed + 1)
        r = mie.estimate(x, y, seed=seed, folds=1)
        xf, yf = task.sample(4000, seed=500 + seed)
        rows = np.arange(5000)  # the normal scores of the estimate's rows (its transform used its 3,500)
        xz, yz = (torch.as_tensor(marginal_transform(np.vstack([a, b]), rows, "rank")[5000:], dtype=torch.float32)
                  for a, b in ((x, xf), (y, yf)))
        for n in (1000, 4000):
            with torch.no_grad():
                t = r.critic(xz[:n], yz[:n]).double()
            off = t.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
            without = float((t.diag() - torch.logsumexp(off, 1) + np.log(n - 1)).mean())
            print(f"  seed {seed}: estimate {r.mi:.3f}; its critic on {n} fresh rows: InfoNCE "
                  f"{float(mie.get('infonce')(t)):.3f}, without the positive {without:.3f}, "
                  f"DV {float(mie.get('dv')(t)):.3f}")


def uniform() -> None:
    task = mie.get("uniform-3x3-eps0.1", kind="tasks")
    eps, infonce = 0.1, mie.get("infonce")
    for seed in (0, 1):
        x, y = task.sample(N, seed=100 + seed)
        d = torch.as_tensor(y)[None, :, :] - torch.as_tensor(x)[:, None, :]  # (i, j, k) = y_jk − x_ik
        critics = {"exact": exact_scores(task, x, y),
                   "Gaussian band": -(d ** 2).sum(-1) / (2 * (eps / np.sqrt(3)) ** 2),
                   "|d|^8 band": -3 * ((d.abs() / eps) ** 8).sum(-1)}
        values = ", ".join(f"{name} {float(infonce(t)):.3f}" for name, t in critics.items())
        print(f"{task.id} (true {task.mi:.3f}) rows seed {100 + seed}: InfoNCE of {values}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trained", action="store_true", help="also train estimate()'s critic on the 5-nat spiral")
    args = p.parse_args()
    torch.set_num_threads(1)
    spiral(args.trained)
    uniform()


if __name__ == "__main__":
    main()
