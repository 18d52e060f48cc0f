"""The separable-critic staircase (4,000 steps per level) for SMILE at several clips τ in one pass:
bias ± sd per level over the second half of each level, as in run_staircase.py.

    .venv/bin/python studies/run_smile_tau.py [--critic separable] [--seed 0] [--steps-per-level 4000]

SMILE trains every copy with the JSD gradient whatever τ (it only changes the read-out), so the
copies differ by their initialisation and by τ; the table shows what the read-out's clip does.
"""

from __future__ import annotations

import argparse

import torch

from mi_estimators.bounds.smile import SMILE
from mi_estimators.validation.selection import BoundSet
from mi_estimators.validation.staircase import StaircaseSettings, run_staircase, staircase_table

TAUS = (1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--critic", default="separable", choices=("separable", "concat"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps-per-level", type=int, default=4000)
    a = p.parse_args()
    torch.set_num_threads(1)
    bounds = BoundSet([f"smile tau={t:g}" for t in TAUS], [(lambda t=t: SMILE(clip=t)) for t in TAUS])
    result = run_staircase(bounds, StaircaseSettings(critic=a.critic, steps_per_level=a.steps_per_level, seed=a.seed))
    rows = staircase_table(result)
    print(f"{a.critic} critic, seed {a.seed}, {a.steps_per_level} steps per level, {result.seconds:.0f} s\n")
    print("| bound | " + " | ".join(f"I = {lv:g}" for lv in result.levels) + " | meets |")
    print("|---|" + "---|" * (len(result.levels) + 1))
    for name in bounds.names:
        mine = [r for r in rows if r["bound"] == name]
        ok = all(abs(r["bias"]) <= 0.3 and r["sd"] <= 0.5 for r in mine)
        cells = " | ".join(f"{r['bias']:+.2f} ± {r['sd']:.2f}" for r in mine)
        print(f"| {name} | {cells} | {'yes' if ok else 'no'} |")


if __name__ == "__main__":
    main()
