"""Per-step time of the batched staircase (every bound on one stacked separable critic) against a
plain PyTorch loop that trains one critic per bound.

    .venv/bin/python benchmarks/bench_staircase.py [--steps 30] [--repeats 5] [--threads 1]

Both sides use Poole et al.'s staircase setting: d = 20, batch 64 drawn fresh each step, two MLPs
with 2 hidden layers of 256 and a 32-d embedding, Adam lr 5e-4, the training-batch estimate read
every step. The plain loop is written here with ``nn.Linear`` layers, the way one would train a
single bound. Reported: the median per-step time over repeats (the two sides interleaved), for
each bound alone and for all bounds together, and the ratios.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn

import mi_estimators as mie
from mi_estimators.critics import SeparableCritic
from mi_estimators.fit import train_stacked
from mi_estimators.validation import resolve_bounds

D, BATCH, HIDDEN, EMBED, LR = 20, 64, 256, 32, 5e-4
RHO = math.sqrt(1 - math.exp(-2 * 4.0 / D))  # the 4-nat level


def sample(gen):
    x = torch.randn(BATCH, D, generator=gen)
    return x, RHO * x + math.sqrt(1 - RHO**2) * torch.randn(BATCH, D, generator=gen)


def mlp():
    return nn.Sequential(nn.Linear(D, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, EMBED))


def plain_loop(name: str, steps: int, gen, fused: bool = False) -> float:
    """Seconds per step of the textbook loop for one bound (default or fused Adam)."""
    g, h, bound = mlp(), mlp(), mie.get(name)
    opt = torch.optim.Adam([*g.parameters(), *h.parameters()], lr=LR, fused=fused)
    batches = [sample(gen) for _ in range(steps + 2)]
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        x, y = batches[i]
        scores = g(x) @ h(y).t()
        loss = bound.loss(scores)
        opt.zero_grad()
        loss.backward()
        opt.step()
        float(bound(scores.detach()))
    return (time.perf_counter() - t0) / steps


def batched(names: list[str], steps: int, gen) -> float:
    """Seconds per step of every bound in ``names`` on one stacked critic."""
    bset = resolve_bounds(names)
    critic = SeparableCritic(D, D, hidden=HIDDEN, layers=2, embed_dim=EMBED, n_models=len(bset.names))
    batches = [sample(gen) for _ in range(steps + 2)]
    train_stacked(critic, bset.instances(), lambda s: batches[s], 2, LR)  # warm-up
    t0 = time.perf_counter()
    train_stacked(critic, bset.instances(), lambda s: batches[s + 2], steps, LR)
    return (time.perf_counter() - t0) / steps


def critic_only(k: int, steps: int, gen) -> float:
    """Seconds per step of the stacked critic of k copies with no bound at all (loss = sum of the
    scores): forward, backward and the fused Adam update. No implementation of the bounds can make
    the stacked step faster than this; it bounds the achievable speed-up."""
    from mi_estimators.fit import make_adam

    critic = SeparableCritic(D, D, hidden=HIDDEN, layers=2, embed_dim=EMBED, n_models=k)
    opt = make_adam(critic.parameters(), LR)
    batches = [sample(gen) for _ in range(steps + 2)]
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        x, y = batches[i]
        opt.zero_grad(set_to_none=True)
        critic(x, y).sum().backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    names = mie.available()
    plain = {n: [] for n in names}
    fused = {n: [] for n in names}
    single = {n: [] for n in names}
    together, floor = [], []
    for _ in range(a.repeats):
        for n in names:
            plain[n].append(plain_loop(n, a.steps, gen))
            fused[n].append(plain_loop(n, a.steps, gen, fused=True))
            single[n].append(batched([n], a.steps, gen))
        together.append(batched(names, a.steps, gen))
        floor.append(critic_only(len(names), a.steps, gen))
    med = {n: statistics.median(v) for n, v in plain.items()}
    med1 = {n: statistics.median(v) for n, v in single.items()}
    medf = {n: statistics.median(v) for n, v in fused.items()}
    all_b = statistics.median(together)
    k = len(names)
    print(f"torch {torch.__version__}, {a.threads} thread(s), {a.steps} steps x {a.repeats} repeats, d={D}, "
          f"batch {BATCH}, MLP 2x{HIDDEN} -> {EMBED}\n")
    print("| bound | plain loop ms/step | plain loop, fused Adam | stacked engine, this bound alone "
          "| ratio plain/engine |")
    print("|---|---|---|---|---|")
    for n in names:
        print(f"| {n} | {1e3 * med[n]:.2f} | {1e3 * medf[n]:.2f} | {1e3 * med1[n]:.2f} | {med[n] / med1[n]:.2f}x |")
    total = sum(med.values())
    print(f"\nAll {k} bounds: plain loops one after another {1e3 * total:.1f} ms/step; one stacked model "
          f"{1e3 * all_b:.1f} ms/step ({1e3 * all_b / k:.2f} ms per bound): {total / all_b:.2f}x faster "
          f"for all bounds together, {statistics.median(med.values()) / (all_b / k):.2f}x per bound "
          "(median plain bound vs the stacked per-bound share).")
    totf = sum(medf.values())
    print(f"Against plain loops that also use fused Adam ({1e3 * totf:.1f} ms/step for all): {totf / all_b:.2f}x.")
    fl = statistics.median(floor)
    print(f"The stacked critic alone, with no bound (forward, backward, fused Adam): {1e3 * fl:.1f} ms/step, "
          f"so no bound implementation can exceed {total / fl:.2f}x for all bounds together on this machine; "
          f"the bounds' own arithmetic takes {1e3 * (all_b - fl):.1f} ms/step of the stacked step.")


if __name__ == "__main__":
    main()
