"""Why estimate() reads the hidden spiral low: the registered task ``hidden-spiral-gauss-2pair-100x100``
(MI 1.022: the 5+5-d spiral of the 2-pair Gaussian among 95 independent columns a side, each side
rotated) against oracles that are told the true directions, and how well the data find them.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python studies/explore_hidden_spiral.py             # n = 5,000
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python studies/explore_hidden_spiral.py --n 20000 \
        --rows default "oracle x{0..4} y{0..4}"

Rows (every reading is ``estimate(..., seed=0, threads=1)`` with its defaults, sample seed 1):

* ``default``: estimate() on the 100 + 100 columns; ``canonical=False``: the trained critic on all columns.
* ``oracle x{..} y{..}``: estimate() on the named base coordinates (``x @ task.x_directions.T``, the
  spiral task's own columns), i.e. what a perfect reduction to those directions would read with the
  same critic and budget. In the spiral, X's plane (0, 1) carries the linear dependence and turns by
  ‖x‖²/5, so X's axes 2-4 enter only through the angle; Y turns its plane (1, 2) by ‖y‖²/5.
* ``found``: the cosines of the principal angles between the true 5-d subspace of a side and
  (a) the 2 ridge-CCA directions (λ = 0.1) of the training rows (70 % of n); (b) the top 3
  eigenvectors, outside those directions, of the third-order statistic Σ_l M_l², M_l =
  E[(a_l b_l − E a_l b_l) r rᵀ], r the side's residual after the canonical directions: the directions
  whose variance modulates the canonical correlation (the spiral's angle directions); (c) the
  second-order statistic Σ_{l<=m} E[(o_l o_m − E o_l o_m) r rᵀ]² with o the other side's canonical variates.
  A cosine near 1 is a direction found; below about 0.5 it is mostly noise.

Writes ``hidden_spiral_n{n}.json`` and prints a markdown table (pasted into ``studies/highdim/report.md``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import mi_estimators as mie
from mi_estimators.estimation.candidates.reduced import RidgeCanonical

TASK = "hidden-spiral-gauss-2pair-100x100"
ORACLES = {"x{0,1} y{0,1}": ([0, 1], [0, 1]), "x{0,1} y{0,1,2}": ([0, 1], [0, 1, 2]),
           "x{0..4} y{0,1,2}": (list(range(5)), [0, 1, 2]), "x{0..4} y{0..4}": (list(range(5)), list(range(5)))}


def reading(name: str, x: np.ndarray, y: np.ndarray, **options) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    r = mie.estimate(x, y, seed=0, threads=1, **options)
    s = r.settings
    return dict(row=name, dims=f"{x.shape[1]}+{y.shape[1]}", mi=r.mi, stderr=r.stderr, chosen=s.chosen_critic,
                monitor=dict(s.monitor), wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0)


def cosines(directions: np.ndarray, truth: np.ndarray) -> list[float]:
    """Cosines of the principal angles between the row spaces of ``directions`` and ``truth`` (orthonormal)."""
    q, _ = np.linalg.qr(directions.T)
    return [round(float(c), 3) for c in np.linalg.svd(q.T @ truth.T, compute_uv=False)]


def modulation(v: np.ndarray, own: np.ndarray, weights: list[np.ndarray], top: int) -> np.ndarray:
    """The ``top`` eigenvectors of Σ_w M_w², M_w = E[(w − E w) r rᵀ], r = v outside the rows of ``own``."""
    q, _ = np.linalg.qr(own.T)
    res = v - (v @ q) @ q.T
    total = np.zeros((v.shape[1], v.shape[1]))
    for w in weights:
        m = (res * (w - w.mean())[:, None]).T @ res / len(v)
        total += m @ m
    return np.linalg.eigh(total)[1][:, ::-1][:, :top].T


def found(task, x: np.ndarray, y: np.ndarray) -> dict:
    n = int(0.7 * len(x))
    x, y = x[:n], y[:n]
    canon = RidgeCanonical.fit(x, y, 0.1, 2)
    a, b = canon.variates(x - x.mean(0), y - y.mean(0), 2)
    third = [a[:, k] * b[:, k] for k in range(2)]
    out = dict(rows=n)
    sides = (("x", x, canon.ax, b, task.x_directions), ("y", y, canon.by, a, task.y_directions))
    for side, v, own, other, truth in sides:
        second = [other[:, k] * other[:, m] for k in range(2) for m in range(k, 2)]
        out[side] = {"ridge-CCA (2)": cosines(own, truth),
                     "third-order (3)": cosines(modulation(v, own, third, 3), truth),
                     "second-order (3)": cosines(modulation(v, own, second, 3), truth)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--out", default="studies/highdim")
    parser.add_argument("--rows", nargs="*", default=None, help="the rows to read (default: all)")
    args = parser.parse_args()
    task = mie.get(TASK, kind="tasks")
    x, y = task.sample(args.n, seed=1)
    xs, ys = x @ task.x_directions.T, y @ task.y_directions.T
    directions = found(task, x, y)
    print(json.dumps(directions), flush=True)
    plan = {"default": lambda: reading("default", x, y),
            "canonical=False": lambda: reading("canonical=False", x, y, canonical=False)}
    plan.update({f"oracle {name}": (lambda name=name, i=i, j=j: reading(f"oracle {name}", xs[:, i], ys[:, j]))
                 for name, (i, j) in ORACLES.items()})
    unknown = set(args.rows or ()) - set(plan)
    if unknown:
        raise SystemExit(f"unknown rows {sorted(unknown)}; choose from {list(plan)}")
    rows = [read() for name, read in plan.items() if args.rows is None or name in args.rows]
    result = dict(task=TASK, truth=task.mi, n=args.n, rows=rows, found=directions)
    Path(args.out, f"hidden_spiral_n{args.n}.json").write_text(json.dumps(result, indent=1))
    print("| row | dims | estimate | / truth | chosen | monitor | CPU s |\n|---|---|---|---|---|---|---|")
    for r in rows:
        mon = ", ".join(f"{k} {v:.3f}" for k, v in r["monitor"].items())
        print(f"| {r['row']} | {r['dims']} | {r['mi']:.3f} ± {r['stderr']:.3f} | {r['mi'] / task.mi:.2f} | "
              f"{r['chosen']} | {mon} | {r['cpu_s']:.0f} |")


if __name__ == "__main__":
    main()
