"""Cross-check the v2 benchmark tasks against Czyż et al.'s own package (``benchmark-mi``); not a pytest module.

Run with this project's interpreter, naming one that has the peer package installed::

    python3 -m venv /tmp/bmivenv && /tmp/bmivenv/bin/pip install benchmark-mi "jax==0.4.23" "jaxlib==0.4.23" \\
        "scipy==1.12.0" "chex<0.1.86"
    .venv/bin/python studies/bmi_crosscheck.py /tmp/bmivenv/bin/python

For every id of ``BENCHMARK_V2`` it prints our MI and standard error beside the peer's
``task.mutual_information`` (for a mixture, its Monte-Carlo mean over 10⁵ draws, with that run's
standard error; JAX runs in 64-bit here, so the draws, and the value, differ from the package's default
32-bit run recorded in tests/test_tasks.py) and their distance in combined standard errors; for a mixture, the largest
difference between our log density ratio and the peer's ``pmi`` at 2000 of our draws; for every
task, the largest difference of the first six column means and standard deviations of 10⁵ draws
of each sampler, in units of our column standard deviation.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import mi_estimators as mie
from mi_estimators.tasks.catalog import BENCHMARK_V2, BMI

PEER = r"""
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
import bmi.benchmark.tasks as T
import bmi.benchmark.tasks.asinh as asinh
import bmi.benchmark.tasks.student as student
from bmi.samplers._tfp._core import monte_carlo_mi_estimate
st = lambda d, df: asinh.transform_asinh_task(student.task_student_identity(dim_x=d, dim_y=d, df=df))
tasks = [T.task_additive_noise(epsilon=0.75), st(1, 1), T.task_x(), T.task_ai(),
         T.transform_swissroll_task(T.transform_normal_cdf_task(T.task_bivariate_normal(gaussian_correlation=0.75)),
                                    task_name="Swiss roll"),
         T.task_waves(), T.task_galaxy()]
tasks += [T.task_concentric_multinormal(dim_x=d, n_components=k)
          for d, k in ((3, 5), (5, 5), (3, 10), (5, 10), (25, 5))]
tasks += [T.task_multinormal_dense(d, d) for d in (5, 25, 50)] + [T.task_multinormal_2pair(d, d) for d in (5, 25)]
tasks += [T.task_multinormal_sparse_w_inliers(dim_x=d, dim_y=d, inlier_fraction=f) for f in (0.2, 0.5) for d in (5, 25)]
tasks += [st(2, 1), st(3, 2), st(5, 2)] + [T.transform_spiral_task(T.task_multinormal_2pair(d, d)) for d in (3, 5)]
points = np.load(sys.argv[1])
out = {}
for task in tasks:
    row = {"mi": float(task.mutual_information)}
    base = task.sampler
    while hasattr(base, "_base_sampler"):
        base = base._base_sampler
    if hasattr(base, "_dist"):
        row["se"] = float(monte_carlo_mi_estimate(jax.random.PRNGKey(0), base._dist, 100_000)[1])
        if task.id + "|x" in points.files:
            row["pmi"] = np.asarray(base._dist.pmi(points[task.id + "|x"], points[task.id + "|y"])).tolist()
    x, y = task.sample(100_000, seed=7)
    z = np.hstack([np.asarray(x), np.asarray(y)])[:, :6]
    row["mean"], row["std"] = z.mean(0).tolist(), z.std(0).tolist()
    out[task.id] = row
json.dump(out, sys.stdout)
"""


def main(peer_python: str) -> None:
    tasks = {i: mie.get(i, kind="tasks") for i in BENCHMARK_V2}
    ours = {}
    for i, task in tasks.items():
        base = getattr(task, "base", task)
        if hasattr(base, "monte_carlo_mi"):  # a mixture: compare the density ratio before any map
            x, y = base.sample(2000, seed=11)
            ours[BMI[i] + "|x"], ours[BMI[i] + "|y"], ours[BMI[i] + "|r"] = x, y, base.log_density_ratio(x, y)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "points.npz"
        np.savez(path, **ours)
        done = subprocess.run([peer_python, "-c", PEER, str(path)], capture_output=True, text=True,
                              env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}, check=True)
    peer = json.loads(done.stdout)
    print(f"{'id':32s} {'ours':>8s} {'± se':>7s} {'peer':>8s} {'± se':>7s} {'z':>5s} {'max|Δpmi|':>9s} "
          f"{'Δmean/sd':>8s} {'Δsd/sd':>7s}")
    for i, task in tasks.items():
        p = peer[BMI[i]]
        z = (task.mi - p["mi"]) / math.hypot(task.mi_stderr, p.get("se", 0.0)) if "se" in p else float("nan")
        pmi = np.max(np.abs(np.array(p["pmi"]) - ours[BMI[i] + "|r"])) if "pmi" in p else float("nan")
        x, y = task.sample(100_000, seed=3)
        col = np.hstack([x, y])[:, :6]
        sd = col.std(0)
        dmean, dsd = np.max(np.abs(col.mean(0) - p["mean"]) / sd), np.max(np.abs(sd - p["std"]) / sd)
        print(f"{i:32s} {task.mi:8.5f} {task.mi_stderr:7.5f} {p['mi']:8.5f} {p.get('se', 0.0):7.5f} {z:5.2f} "
              f"{pmi:9.1e} {dmean:8.4f} {dsd:7.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/bmivenv/bin/python")
