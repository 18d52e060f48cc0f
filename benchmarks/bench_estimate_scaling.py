"""``estimate()``'s cost and accuracy against the number of rows n, beside the library's KSG.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_estimate_scaling.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_estimate_scaling.py --quick   # smoke test, seconds

For each n (default 5,000 / 50,000 / 100,000 / 500,000 / 1,000,000 rows of
``spiral-gauss-2pair-5x5``, I(X; Y) = 1.022 nats) two fresh subprocesses, one at a time, draw the
same sample (``task.sample(n, seed)``) and time

* ``mi_estimators.estimate(x, y, seed=0, threads=1)`` with its defaults (the sizes resolved from n:
  ``EstimateOptions.resolve``), and
* ``mi_estimators.ksg.ksg_mi(x, y)`` (k = 3), stopped after ``--ksg-limit`` CPU seconds
  (``RLIMIT_CPU``, so that a loaded machine does not shorten it; its 10-d max-norm neighbour searches
  grow faster than n: the row says when it did not finish).

Each child reports wall and CPU seconds (``time.process_time``) of the call alone, and its peak
resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the whole process, imports and the
sample included; ``rss_before`` is the same before the call). Fresh processes keep one size's peak
from hiding the next one's. Writes ``scaling.json``, ``scaling.png`` and ``scaling.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK = "spiral-gauss-2pair-5x5"
SIZES = (5000, 50_000, 100_000, 500_000, 1_000_000)
QUICK = dict(sizes=(600,), options={"steps": 40, "copula": False}, ksg_limit=30.0)


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def child(kind: str, task_id: str, n: int, seed: int, options: dict) -> dict:
    """One measurement in this process (``kind``: ``"estimate"`` or ``"ksg"``): the call's seconds,
    the process's peak memory, the estimate."""
    import mi_estimators as mie
    from mi_estimators.ksg import ksg_mi

    task = mie.get(task_id, kind="tasks")
    x, y = task.sample(n, seed=seed)
    before = _peak_gib()
    wall, cpu = time.perf_counter(), time.process_time()
    if kind == "ksg":
        out = dict(mi=ksg_mi(x, y))
    else:
        r = mie.estimate(x, y, seed=0, threads=1, **options)
        s, o = r.settings, r.settings.options
        out = dict(mi=r.mi, stderr=r.stderr, ci=list(r.ci), chosen=s.chosen_critic, folds=s.read_out_folds,
                   n_train=s.n_train, n_val=s.n_val, n_test=s.n_test, steps=o.steps, batch=o.batch_size,
                   best_step=r.best_step, steps_run=(r.history["step"] or [0])[-1], stopped_early=r.stopped_early,
                   monitor=dict(s.monitor), train_value=s.train_value)
    out.update(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu, rss_before=before,
               rss_peak=_peak_gib(), truth=task.mi)
    return out


def _cpu_limit(seconds: float | None):
    if seconds is None:
        return None
    limit = max(1, math.ceil(seconds))
    return lambda: resource.setrlimit(resource.RLIMIT_CPU, (limit, limit + 5))  # SIGXCPU past it


def measure(kind: str, task_id: str, n: int, seed: int, options: dict, limit: float | None) -> dict:
    """:func:`child` in a fresh interpreter; ``{"timed_out": True}`` past ``limit`` CPU seconds."""
    cmd = [sys.executable, __file__, "--child", kind, "--task", task_id, "--seed", str(seed), "--sizes", str(n),
           "--options", json.dumps(options)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False, preexec_fn=_cpu_limit(limit))
    if proc.returncode == -signal.SIGXCPU or (limit is not None and proc.returncode == -signal.SIGKILL):
        return dict(timed_out=True, limit=limit)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} at n={n} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    """The markdown table of the measurements."""
    lines = ["| n | estimate: wall s | CPU s | peak RSS GiB | mi ± stderr | error | chosen, folds | steps run "
             "(kept) × batch | KSG: wall s | CPU s | peak RSS GiB | KSG mi | KSG error |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        e, k = row["estimate"], row["ksg"]
        est = (f"{e['wall']:.1f} | {e['cpu']:.1f} | {e['rss_peak']:.2f} | {e['mi']:.4f} ± {e['stderr']:.4f} | "
               f"{e['mi'] - e['truth']:+.4f} ({100 * (e['mi'] - e['truth']) / e['truth']:+.1f}%) | "
               f"{e['chosen']}, {e['folds']} | {e['steps_run']} ({e['best_step']}) × {e['batch']}")
        if k.get("timed_out"):
            ksg = f"stopped at {k['limit']:.0f} CPU s | | | | "
        else:
            ksg = (f"{k['wall']:.1f} | {k['cpu']:.1f} | {k['rss_peak']:.2f} | {k['mi']:.4f} | "
                   f"{k['mi'] - k['truth']:+.4f} ({100 * (k['mi'] - k['truth']) / k['truth']:+.1f}%)")
        lines.append(f"| {row['n']:,} | {est} | {ksg} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Seconds, peak memory and the estimate against n (log-log axes for the costs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["n"] for r in rows]
    ksg = [(r["n"], r["ksg"]) for r in rows if not r["ksg"].get("timed_out")]
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    ax[0].loglog(n, [r["estimate"]["cpu"] for r in rows], "o-", label="estimate() CPU")
    ax[0].loglog(n, [r["estimate"]["wall"] for r in rows], "o--", label="estimate() wall")
    if ksg:
        ax[0].loglog([m for m, _ in ksg], [k["cpu"] for _, k in ksg], "s-", label="KSG CPU")
    ax[0].set(xlabel="rows n", ylabel="seconds (one thread)", title="cost")
    ax[1].semilogx(n, [r["estimate"]["rss_peak"] for r in rows], "o-", label="estimate()")
    if ksg:
        ax[1].semilogx([m for m, _ in ksg], [k["rss_peak"] for _, k in ksg], "s-", label="KSG")
    ax[1].set(xlabel="rows n", ylabel="peak RSS (GiB, whole process)", title="memory")
    ax[2].errorbar(n, [r["estimate"]["mi"] for r in rows], yerr=[1.96 * r["estimate"]["stderr"] for r in rows],
                   fmt="o-", capsize=3, label="estimate() ± 1.96 se")
    if ksg:
        ax[2].plot([m for m, _ in ksg], [k["mi"] for _, k in ksg], "s-", label="KSG")
    ax[2].axhline(rows[0]["estimate"]["truth"], color="k", lw=1, label="true MI")
    ax[2].set(xscale="log", xlabel="rows n", ylabel="nats", title="estimate")
    for a in ax:
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--task", default=TASK)
    p.add_argument("--seed", type=int, default=1, help="the sample's seed")
    p.add_argument("--ksg-limit", type=float, default=300.0, help="CPU seconds before a KSG run is stopped")
    p.add_argument("--options", default="{}", help="estimate() options as JSON, e.g. '{\"steps\": 500}'")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "estimate_scaling")
    p.add_argument("--quick", action="store_true", help="one small n and a short training: a smoke test")
    p.add_argument("--child", choices=("estimate", "ksg"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    options = json.loads(a.options)
    if a.child:
        print(json.dumps(child(a.child, a.task, a.sizes[0], a.seed, options)))
        return {}
    if a.quick:
        a.sizes, options, a.ksg_limit = list(QUICK["sizes"]), dict(QUICK["options"], **options), QUICK["ksg_limit"]
    rows = []
    for n in a.sizes:
        row = dict(n=n, estimate=measure("estimate", a.task, n, a.seed, options, None),
                   ksg=measure("ksg", a.task, n, a.seed, {}, a.ksg_limit))
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    result = dict(task=a.task, seed=a.seed, options=options, ksg_limit=a.ksg_limit, rows=rows)
    (a.out / "scaling.json").write_text(json.dumps(result, indent=1))
    (a.out / "scaling.md").write_text(f"`{a.task}`, sample seed {a.seed}, estimate() options {options or 'defaults'}"
                                      f" (threads=1):\n\n{table(rows)}\n")
    plot(rows, a.out / "scaling.png")
    print(f"wrote {a.out}/scaling.{{json,md,png}}")
    return result


if __name__ == "__main__":
    main()
