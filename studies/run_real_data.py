"""``estimate()`` on real data with a discrete side: Fashion-MNIST images against their labels.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python studies/run_real_data.py
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python studies/run_real_data.py --no-baseline --out /tmp/x

Data: the first 5,000 training images of Fashion-MNIST flattened to 784 columns / 255 (x), and
their labels (y, 10 classes), read with the library's IDX reader
(:func:`mi_estimators.training.data.read_idx`; Debian's ``dataset-fashion-mnist`` puts the files in
``/usr/share/datasets/fashion-mnist``, ``--data`` elsewhere).

What is measured, on the same rows:

* ``estimate(x, y, threads=1, seed=0)``: y is discrete by the auto rule, so the Barber-Agakov
  classifier candidate competes (``mi_estimators.estimation.candidates.discrete``); its value,
  interval, chosen candidate, wall and CPU seconds (``time.process_time``: the machine may be shared
  and loaded, and with one thread CPU time is the time on an idle core);
* ``--baseline`` (default on): the same call with ``discrete="none"`` (the continuous candidates alone);
* the certified numbers: a held-out scikit-learn classifier certifies ``I >= H(Y) − CE`` (the
  Barber-Agakov bound: any classifier's held-out cross-entropy CE is unbiased for its own
  cross-entropy, which is at least H(Y|X)). ``MLPClassifier(early_stopping=True, random_state=0)``
  and ``LogisticRegression(C=0.1)`` on the images / 255, trained on rows 0-3,999 and tested on rows
  4,000-4,999, and also cross-fitted over 5 folds of all 5,000 rows (every row tested once, as the
  estimate's cross-fitted read-out is). H(Y) is log 10 (Fashion-MNIST is balanced) and, beside it,
  the Miller-Madow estimate from the 5,000 labels;
* the classifier candidate alone on the certified numbers' rows (fitted on rows 0-3,999, read out on
  rows 4,000-4,999: one fold of the cross-fitted read-out), to compare like with like.

Writes ``report.md`` and ``results.json`` to ``--out`` (default ``studies/real_data``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before NumPy and torch start their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import mi_estimators as mie  # noqa: E402
from mi_estimators.discrete import entropy  # noqa: E402
from mi_estimators.training.data import read_idx  # noqa: E402

N, N_TRAIN, CLASSES = 5000, 4000, 10


def load(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first ``N`` training images as ``(N, 784)`` floats in [0, 1] and their labels."""
    images = read_idx(directory / "train-images-idx3-ubyte.gz")[:N]
    labels = read_idx(directory / "train-labels-idx1-ubyte.gz")[:N]
    return images.reshape(N, -1).astype(np.float64) / 255.0, labels.astype(np.int64)


def timed(fn, *args, **kwargs):
    """``(result, wall seconds, CPU seconds)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, time.process_time() - c0


def classifiers() -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    return {"mlp": lambda: MLPClassifier(early_stopping=True, random_state=0),
            "logistic": lambda: LogisticRegression(C=0.1, max_iter=1000)}


def held_out_ce(make, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """The mean −log q(y|x) on the ``test`` rows of a classifier fitted on the ``train`` rows."""
    from sklearn.metrics import log_loss

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make().fit(x[train], y[train])
    return float(log_loss(y[test], model.predict_proba(x[test]), labels=range(CLASSES)))


def certified(x: np.ndarray, y: np.ndarray, h: float) -> dict:
    """``H − CE`` per classifier: on rows 4,000-4,999, and cross-fitted over 5 folds (per fold and mean)."""
    rows = np.arange(N)
    out = {}
    for name, make in classifiers().items():
        ce, wall, cpu = timed(held_out_ce, make, x, y, rows[:N_TRAIN], rows[N_TRAIN:])
        folds = [h - held_out_ce(make, x, y, np.setdiff1d(rows, f), f) for f in np.array_split(rows, 5)]
        out[name] = dict(last_1000=h - ce, crossfit_folds=folds, crossfit=float(np.mean(folds)), seconds=wall,
                         cpu_seconds=cpu)
    return out


def run_estimate(x: np.ndarray, y: np.ndarray, **options) -> dict:
    r, wall, cpu = timed(mie.estimate, x, y, threads=1, seed=0, **options)
    s = r.settings
    return dict(mi=r.mi, stderr=r.stderr, ci=list(r.ci), ci_heldout=list(r.ci_heldout), chosen=s.chosen_critic,
                description=s.chosen_description, discrete=s.discrete, mi_cap=s.mi_cap, monitor=dict(s.monitor),
                read_out_folds=s.read_out_folds, seconds=wall, cpu_seconds=cpu, printed=str(r))


def same_split(x: np.ndarray, y: np.ndarray) -> dict:
    """The classifier candidate as one cross-fitting fold on the certified numbers' rows: fitted on
    rows 0-3,999 (at random 3,496 train, 500 monitor, 4 unused), refitted on all of them and read out
    on rows 4,000-4,999, as :func:`mi_estimators.estimation.readout.crossfit` does for each fold."""
    import torch

    from mi_estimators.arrays import marginal_transform
    from mi_estimators.columns import screen
    from mi_estimators.discrete import discrete_sides
    from mi_estimators.estimation import Context, EstimateOptions, split
    from mi_estimators.estimation.candidates.discrete import ClassifierCandidate
    from mi_estimators.fit import held_out, seeded, threads

    def run() -> tuple[float, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xs, ys, _ = screen(x, y.astype(np.float64)[:, None])
        side = discrete_sides(xs, ys)["y"]  # H(Y) of all rows, as in estimate()
        opts = EstimateOptions(val_fraction=0.125, test_fraction=0.001, threads=1).resolve(xs.shape[1], 1)
        device = torch.device("cpu")
        with threads(1), seeded(0):
            rng = np.random.default_rng(0)
            ctx = Context(split(xs[:N_TRAIN], ys[:N_TRAIN], opts, rng, device), opts, rng, device)
            candidate = ClassifierCandidate.fit(ctx, side)
            rows = np.arange(N_TRAIN)
            xz, yz = (marginal_transform(a, rows, "rank") for a in (xs, ys))
            critic, _ = candidate.refit(xz[rows], yz[rows])
            test = [torch.as_tensor(a[N_TRAIN:], dtype=torch.float32) for a in (xz, yz)]
            return held_out(critic, candidate.bound, *test, opts.eval_batch, groups=opts.jackknife_groups)

    (mi, se), wall, cpu = timed(run)
    return dict(mi=mi, stderr=se, seconds=wall, cpu_seconds=cpu)


def report(results: dict) -> str:
    e, c, h = results["estimate"], results["certified"], results["entropy"]
    lines = ["# estimate() on Fashion-MNIST images against their labels", "",
             f"The first {N} training images (784 columns / 255) against the label (10 classes); "
             f"H(Y) = log 10 = {math.log(10):.4f} (Miller-Madow from the labels: {h['miller_madow']:.4f}).",
             f"Machine: {results['machine']}; one thread. Reproduce: `{results['command']}`.", "",
             "| method | I(X;Y) nats | 95% interval | chosen | wall s | CPU s |", "|---|---|---|---|---|---|"]
    for key, label in (("estimate", "estimate() (auto: y discrete)"), ("baseline", "estimate(discrete='none')")):
        if key in results:
            r = results[key]
            lines.append(f"| {label} | {r['mi']:.4f} | [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}] | {r['chosen']} | "
                         f"{r['seconds']:.1f} | {r['cpu_seconds']:.1f} |")
    r = results["same_split"]
    lines.append(f"| the classifier candidate, train rows 0-3999, test 4000-4999 | {r['mi']:.4f} "
                 f"(stderr {r['stderr']:.4f}) | | classifier | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} |")
    for name, r in c.items():
        lines.append(f"| certified: sklearn {name}, train rows 0-3999, test 4000-4999 | {r['last_1000']:.4f} | | | "
                     f"{r['seconds']:.1f} | {r['cpu_seconds']:.1f} |")
        lines.append(f"| certified: sklearn {name}, cross-fitted over 5 folds of all rows | {r['crossfit']:.4f} | | | "
                     f"| |")
    lines += ["", "Certified values per fold of 1,000 rows (H − CE, log 10 for H): "
              + "; ".join(f"{name} " + ", ".join(f"{v:.3f}" for v in r["crossfit_folds"]) for name, r in c.items())
              + ". Rows 4,000-4,999 are the last fold.", "", f"Printed result: `{e['printed']}`", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "real_data")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="also run estimate(discrete='none')")
    args = p.parse_args()
    x, y = load(args.data)
    h_mm, h_se = entropy(y)
    h = math.log(CLASSES)
    results = dict(command="OMP_NUM_THREADS=1 .venv/bin/python studies/run_real_data.py"
                   + ("" if args.baseline else " --no-baseline"),
                   machine=f"{platform.machine()}, {os.cpu_count()} cores (shared)",
                   entropy=dict(log_k=h, miller_madow=h_mm, stderr=h_se))
    results["estimate"] = run_estimate(x, y)
    print(results["estimate"]["printed"], flush=True)
    if args.baseline:
        results["baseline"] = run_estimate(x, y, discrete="none")
        print(results["baseline"]["printed"], flush=True)
    results["same_split"] = same_split(x, y)
    results["certified"] = certified(x, y, h)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    (args.out / "report.md").write_text(report(results))
    print(report(results))


if __name__ == "__main__":
    main()
