"""One `estimate()` run on the 20-d Gaussian at 10 nats (n = 50,000), with a critic diagnosis on a
fresh 4,000-sample test set; the figures of the "10-nat target" table in studies/README.md.

    .venv/bin/python studies/explore_10nats.py '{"critic_options": {"hidden": 256}, "steps": 6000,
        "patience": 1000, "eval_every": 500, "standardize": "zscore"}'

Prints the estimate, its stderr and the kept step, the monitor curve, then for the returned
critic on the fresh set: E_P[T], log E_Q[e^T] over all off-diagonal pairs, and the read-outs of
SMILE (tau = 5), DV (SMILE without clip), InfoNCE and NWJ. The fresh set is standardised with its
own mean and sd, so run it with ``standardize="zscore"`` for the diagnosis to apply, and with
``"copula": false`` to diagnose the trained critic rather than the Gaussian-copula one.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

import mi_estimators as mie
from mi_estimators.fit import score_matrix


def main() -> None:
    torch.set_num_threads(1)
    options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    task = mie.get("gauss-20x20-mi10", kind="tasks")
    x, y = task.sample(50000, seed=1)
    t0 = time.perf_counter()
    r = mie.estimate(x, y, seed=0, **options)
    print(f"{options}: estimate {r.mi:.2f} +- {r.stderr:.2f} (true {task.mi:.2f}), kept step {r.best_step}, "
          f"{time.perf_counter() - t0:.0f} s")
    print("monitor:", np.round(r.history["monitor"], 2).tolist())
    xt, yt = task.sample(4000, seed=7)
    truth = float(task.log_density_ratio(xt, yt).mean())
    xt = (xt - xt.mean(0)) / xt.std(0)
    yt = (yt - yt.mean(0)) / yt.std(0)
    with torch.no_grad():
        s = score_matrix(r.critic, torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.float32))
    off = s[~torch.eye(len(s), dtype=torch.bool)]
    print(f"fresh set: E_P[T] {float(s.diagonal().mean()):.2f} (mean true log r {truth:.2f}), "
          f"log E_Q[e^T] {float(torch.logsumexp(off, 0) - np.log(off.numel())):.2f}")
    for name, opts in (("smile", {}), ("smile", {"clip": None}), ("infonce", {}), ("nwj", {})):
        print(f"  {name} {opts}: {float(mie.get(name, **opts)(s)):.2f}")


if __name__ == "__main__":
    main()
