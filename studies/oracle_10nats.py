"""Read-outs of the *exact* critic (the true log density ratio) on all pairs of a held-out set, on
the 20-d Gaussian at 10 nats: what ``estimate()`` can reach at best once its critic is right.

    .venv/bin/python studies/oracle_10nats.py            # ~1 min on one core

For n held-out rows (three sample seeds each) it prints E_P[T], log E_Q[e^T] over the n(n−1)
off-diagonal pairs, and the DV, SMILE (τ = 5) and InfoNCE values of that n×n score matrix. The
figures are quoted in studies/README.md ("The 10-nat target").
"""

from __future__ import annotations

import math

import numpy as np
import torch

import mi_estimators as mie
from mi_estimators.copula import Canonical, EllipticalCopulaCritic


def main() -> None:
    torch.set_num_threads(1)
    task = mie.get("gauss-20x20-mi10", kind="tasks")
    dv, smile, infonce = mie.get("dv"), mie.get("smile"), mie.get("infonce")
    # the Gaussian log density ratio of the task's covariance: the full-rank Gaussian copula of its
    # correlation matrix, on columns scaled to unit variance (per-column scaling leaves the ratio unchanged)
    sd = np.sqrt(np.diag(task.cov))
    exact = EllipticalCopulaCritic(Canonical.of(task.cov / np.outer(sd, sd), task.x_dim), math.inf,
                                   rank=min(task.x_dim, task.y_dim))
    print(f"true MI {task.mi:.3f} nats")
    print("  n  seed  E_P[T]  log E_Q[e^T]     DV  SMILE(5)  InfoNCE  (log n)")
    for n in (1000, 4000, 10000):
        for seed in range(3):
            x, y = task.sample(n, seed=100 + seed)
            xt, yt = torch.as_tensor(x / sd[:task.x_dim]), torch.as_tensor(y / sd[task.x_dim:])
            with torch.no_grad():
                scores = exact.scores_t(xt, yt)  # T[i, j] = log p(x_i, y_j) / p(x_i) p(y_j), all pairs, float64
            assert np.allclose(scores.diagonal().numpy(), task.log_density_ratio(x, y))
            off = scores.masked_select(~torch.eye(n, dtype=torch.bool))
            log_eq = float(torch.logsumexp(off, 0)) - math.log(off.numel())
            print(f"{n:5d} {seed:4d} {float(scores.diagonal().mean()):7.3f} {log_eq:13.3f} {float(dv(scores)):6.3f} "
                  f"{float(smile(scores)):9.3f} {float(infonce(scores)):8.3f}  ({math.log(n):.2f})", flush=True)


if __name__ == "__main__":
    main()
