"""The normalising-flow route for ``estimate()``, measured and not adopted (``studies/README.md``).

Butakov et al. 2024, "Mutual information estimation via normalizing flows" (NeurIPS): flows f and g
map each side to latents u = f(x), v = g(y) whose joint law is modelled as a Gaussian with N(0, I)
marginals and cross-covariance diag(ρ); f, g and ρ maximise the joint log-likelihood

    log N([u; v]; 0, Σ(ρ)) + log |det J_f(x)| + log |det J_g(y)|.

MI is invariant under f and g, so for any diffeomorphism of a Gaussian pair (the spiral tasks) the
read-out −½ Σ log(1 − ρ²) is exact once the flows have undone it. Here the same split and normal
scores as ``estimate()`` (70 % train, 10 % monitor, 20 % test of n = 5,000), early stopping on the
monitor split's log-likelihood (or its DV value, ``--select dv``), and two read-outs: the closed form
and the DV bound of the latent Gaussian log density ratio on all pairs of the test rows.

Needs zuko (``pip install zuko``; not a dependency of the library). One thread:

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python studies/explore_flows.py --out studies/flows/maf5s.jsonl \\
        spiral-gauss-2pair-3x3 spiral-gauss-2pair-5x5 spiral-gauss-5x5-mi5 spiral-gauss-2pair-25x25 uniform-3x3-eps0.1
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time

import numpy as np
import torch

import mi_estimators as mie
from mi_estimators.arrays import marginal_transform


class FlowMI(torch.nn.Module):
    """Two zuko flows and the canonical correlations ρ = tanh(raw) of their latents."""

    def __init__(self, dx: int, dy: int, kind: str, transforms: int, hidden: tuple[int, ...]):
        super().__init__()
        import zuko

        flow = getattr(zuko.flows, kind)
        self.f = flow(features=dx, transforms=transforms, hidden_features=hidden)
        self.g = flow(features=dy, transforms=transforms, hidden_features=hidden)
        self.k = min(dx, dy)
        self.raw = torch.nn.Parameter(torch.zeros(self.k))

    def rho(self) -> torch.Tensor:
        return torch.tanh(self.raw) * (1 - 1e-6)

    def latents(self, x, y):
        u, ladj_f = self.f().transform.call_and_ladj(x)
        v, ladj_g = self.g().transform.call_and_ladj(y)
        return u, v, ladj_f + ladj_g

    def loglik(self, x, y) -> torch.Tensor:
        """The joint log-likelihood of each row."""
        u, v, ladj = self.latents(x, y)
        r, k = self.rho(), self.k
        one = 1 - r ** 2
        pairs = (-math.log(2 * math.pi) - 0.5 * torch.log(one)
                 - (u[:, :k] ** 2 + v[:, :k] ** 2 - 2 * r * u[:, :k] * v[:, :k]) / (2 * one)).sum(1)
        rest = torch.cat([u[:, k:], v[:, k:]], 1)
        return pairs - 0.5 * (rest ** 2).sum(1) - 0.5 * math.log(2 * math.pi) * rest.shape[1] + ladj

    def closed_form(self) -> float:
        return float(-0.5 * torch.log1p(-self.rho().detach() ** 2).sum())

    def scores(self, x, y) -> torch.Tensor:
        """The latent Gaussian log density ratio T(x_i, y_j) as an (N, N) matrix."""
        u, v, _ = self.latents(x, y)
        r, k = self.rho(), self.k
        one = 1 - r ** 2
        u, v = u[:, :k], v[:, :k]
        return (-0.5 * torch.log(one).sum() - (r ** 2 / (2 * one) * u ** 2).sum(1)[:, None]
                - (r ** 2 / (2 * one) * v ** 2).sum(1)[None, :] + (u * (r / one)) @ v.T)


def run(task_id: str, seed: int, args: argparse.Namespace) -> dict:
    task = mie.get(task_id, kind="tasks")
    x, y = task.sample(5000, seed=seed + 1)
    t0 = time.process_time()
    perm = np.random.default_rng(seed).permutation(len(x))
    test, monitor, train = perm[:1000], perm[1000:1500], perm[1500:]
    xz, yz = (torch.tensor(marginal_transform(a, train, "rank"), dtype=torch.float32) for a in (x, y))
    torch.manual_seed(seed)
    model = FlowMI(x.shape[1], y.shape[1], args.kind, args.transforms, tuple(args.hidden))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(seed)
    rows = torch.as_tensor(train)
    dv = mie.get("dv")
    best, state, best_step, waited, step = -math.inf, None, 0, 0, 0
    while step < args.steps and time.process_time() - t0 < args.cap:
        idx = rows[torch.randint(len(rows), (args.batch,), generator=gen)]
        loss = -model.loglik(xz[idx], yz[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0:
            with torch.no_grad():
                xm, ym = xz[monitor], yz[monitor]
                value = float(dv(model.scores(xm, ym)) if args.select == "dv" else model.loglik(xm, ym).mean())
            if value > best + 1e-3:
                best, state, best_step, waited = value, copy.deepcopy(model.state_dict()), step, 0
            elif (waited := waited + 1) >= args.patience:
                break
    if state is not None:
        model.load_state_dict(state)
    with torch.no_grad():
        dv_test = float(dv(model.scores(xz[test], yz[test]).double()))
    return dict(task=task_id, seed=seed, truth=task.mi, closed_form=model.closed_form(), dv_test=dv_test,
                best_step=best_step, steps=step, cpu_s=time.process_time() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tasks", nargs="+")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--kind", default="MAF", help="a zuko flow: MAF or NSF")
    p.add_argument("--transforms", type=int, default=5)
    p.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--patience", type=int, default=8, help="monitor checks (every 100 steps) without a gain")
    p.add_argument("--cap", type=float, default=28.0, help="CPU seconds per run")
    p.add_argument("--select", choices=("loglik", "dv"), default="loglik", help="early stopping on the monitor's ...")
    p.add_argument("--out", required=True, help="JSON lines, appended")
    args = p.parse_args()
    torch.set_num_threads(1)
    for task_id in args.tasks:
        for seed in args.seeds:
            row = run(task_id, seed, args)
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
