"""One prepared device check (<= 10 minutes on one GPU): writes ``gpu_check.json`` and ``gpu_check.md``.

Steps, each timed and recorded (a failing step is recorded with its error; the others still run):

1. ``tests``: pytest on the tests that take a device (``-k on_device``): on CUDA when present.
2. ``estimate``: :func:`mi_estimators.estimate` with the same seed on the device and on the CPU (in
   subprocesses, one core each, beside the device's runs), on registered tasks at n = 5,000:
   seconds, ``mi``, ``stderr`` and the chosen candidate of each, and whether the two agree within
   ``AGREE_SE`` combined standard errors; whether the call gave the caller's thread count and CPU
   and CUDA random states back; then, on the device only and as long as time allows (a subprocess
   with a timeout), one task at n = 10⁶.
3. ``throughput``: DIM and AMDIM training images/s in fp32 and bf16 at batches of 256 and 512,
   through the trainers themselves (augmentation on the device included; the second epoch of a
   two-epoch run on synthetic images, so that warm-up is left out).
4. ``staircase``: the all-bounds staircase engine (every bound on one stacked critic,
   :func:`mi_estimators.fit.train_stacked`) against plain per-bound loops, ms per step
   (Poole et al.'s setting of ``benchmarks/bench_staircase.py``).
5. ``nce_max``: the largest negative set of the memory-efficient NCE
   (:func:`mi_estimators.nce.nce_loss_features`, forward + backward) that fits in device memory,
   and the same for a plain autograd implementation: the number of consequent images doubles
   until out of memory, then bisects.
6. ``fashion_mnist``: a full Fashion-MNIST AMDIM run (60,000 training images, bf16) to its
   linear probe, with as many epochs as the remaining time allows at the throughput measured
   in step 3.

``--dry-run`` runs every step tiny on the CPU (well under a minute; the test suite runs it): the
same code paths, out-of-memory included (a simulated capacity raises ``torch.OutOfMemoryError``),
with synthetic images when Fashion-MNIST is not installed.

    .venv/bin/python benchmarks/gpu_check.py --out out/gpu_check            # on the device machine
    .venv/bin/python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check  # anywhere
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: the AMDIM configuration of the throughput and Fashion-MNIST steps on a GPU (the dry run shrinks it)
AMDIM_GPU = ["--ndf", "64", "--n-rkhs", "512", "--n-depth", "1", "--lr", "2e-3", "--warmup-steps", "200",
             "--brightness", "0.4", "--contrast", "0.4", "--erase", "0.5"]
AMDIM_TINY = ["--ndf", "4", "--n-rkhs", "16", "--n-depth", "1", "--brightness", "0.4", "--contrast", "0.4",
              "--erase", "0.5", "--noise", "0.05"]


class Check:
    """The run's settings, its budget and its results."""

    def __init__(self, args):
        self.args, self.dry = args, args.dry_run
        self.device = torch.device("cpu" if self.dry else args.device)
        self.start = time.perf_counter()
        self.results: dict = {"device": self._describe(), "dry_run": self.dry, "torch": torch.__version__, "steps": {}}

    def _describe(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.start)

    def step(self, name: str, fn) -> None:
        t0 = time.perf_counter()
        try:
            out = {"status": "ok", **fn(self)}
        except Exception as exc:  # noqa: BLE001 - a failing step is recorded, the others still run
            out = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        out["seconds"] = round(time.perf_counter() - t0, 2)
        self.results["steps"][name] = out
        print(f"[{name}] {out['status']} in {out['seconds']} s", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- 1


def run_tests(check: Check) -> dict:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="") if check.dry else None   # the tests use CUDA when present
    files = ["tests/test_nce.py", "tests/test_training_augment.py", "plugins/amdim/tests"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "on_device", *files]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=max(30.0, min(180.0, check.left())))
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    if proc.returncode != 0:
        raise RuntimeError(f"pytest exited {proc.returncode}: {tail}")
    return {"summary": tail, "cuda": torch.cuda.is_available() and not check.dry}


# ---------------------------------------------------------------------------------------------- 2

#: estimate() on both devices: these registered tasks at ESTIMATE_N rows (the dry run: the first two, tiny)
ESTIMATE_TASKS = ("gauss-5x5-mi2", "spiral-gauss-2pair-5x5", "mixture-waves-2x1")
ESTIMATE_N = 5000
#: the device's and the CPU's estimates agree when they differ by at most this many combined stderrs
AGREE_SE = 4.0
#: then this task at LARGE_N rows on the device alone, in a subprocess stopped after at most
#: LARGE_MAX_S, run only when that leaves LARGE_RESERVE_S for the later steps and gives it LARGE_MIN_S
LARGE_TASK, LARGE_N = "spiral-gauss-2pair-5x5", 10**6
LARGE_MIN_S, LARGE_MAX_S, LARGE_RESERVE_S = 60.0, 180.0, 300.0
#: a subprocess that prints _warm_estimate's result as one JSON line (the CPU's runs, the large run)
RUN_CODE = ("import json, sys; sys.path.insert(0, sys.argv[1]); import gpu_check; "
            "print(json.dumps(gpu_check._warm_estimate(sys.argv[2], int(sys.argv[3]), sys.argv[4], "
            "**json.loads(sys.argv[5]))))")


def _estimate_once(task: str, n: int, device: str, **options) -> dict:
    """``estimate()`` of ``task``'s sample of ``n`` rows (seed 0) on ``device``: wall and CPU
    seconds, ``mi``, ``stderr``, the chosen candidate and the device the settings report."""
    import mi_estimators as mie

    x, y = mie.get(task, kind="tasks").sample(n, seed=0)
    wall, cpu = time.perf_counter(), time.process_time()
    r = mie.estimate(x, y, device=device, seed=0, progress=False, **options)
    return {"seconds": round(time.perf_counter() - wall, 2), "cpu_s": round(time.process_time() - cpu, 2),
            "mi": r.mi, "stderr": r.stderr, "chosen": r.settings.chosen_critic, "settings_device": r.settings.device}


def _warm_estimate(task: str, n: int, device: str, **options) -> dict:
    """:func:`_estimate_once` after a tiny call that leaves the first call's costs (imports, CUDA's
    start) out of the timing, as the device's warm-up does in the main process."""
    _estimate_once(task, 300, device, steps=5, threads=options.get("threads", 1))
    return _estimate_once(task, n, device, **options)


def _spawn(task: str, n: int, device: str, options: dict) -> subprocess.Popen:
    """:func:`_warm_estimate` in a subprocess (its own core: the CPU's runs go on beside the device's)."""
    cmd = [sys.executable, "-c", RUN_CODE, str(Path(__file__).resolve().parent), task, str(n), device,
           json.dumps(options)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _collect(proc: subprocess.Popen, limit: float) -> dict:
    """The result of a :func:`_spawn`, or ``{"timed_out": True}`` (and the subprocess killed) after ``limit`` s."""
    try:
        out, err = proc.communicate(timeout=max(1.0, limit))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"timed_out": True}
    if proc.returncode != 0:
        raise RuntimeError(f"estimate() in a subprocess exited {proc.returncode}: {err[-500:]}")
    return json.loads(out.strip().splitlines()[-1])


def _process_state(device: torch.device) -> list:
    """What estimate() promises to give back: the torch thread count and the CPU (and CUDA) random states."""
    cuda = [torch.cuda.get_rng_state(device).tolist()] if device.type == "cuda" else []
    return [torch.get_num_threads(), torch.get_rng_state().tolist(), *cuda]


def estimate(check: Check) -> dict:
    """The device's estimates against the CPU's (module docstring, step 2); the CPU's run in
    subprocesses, one core each, while the device's run here."""
    dev, dry = str(check.device), check.dry
    options = {"steps": 40, "eval_every": 20} if dry else {}
    n = 400 if dry else ESTIMATE_N
    names = ESTIMATE_TASKS[:2] if dry else ESTIMATE_TASKS
    on_cpu = {name: _spawn(name, n, "cpu", options) for name in names}
    try:
        out: dict = {"n": n, "agree_se": AGREE_SE, "options": options,
                     "warmup_s": _estimate_once(ESTIMATE_TASKS[0], 300, dev, steps=20)["seconds"], "tasks": {}}
        for name in names:
            out["tasks"][name] = _compare(check, name, n, options, on_cpu[name])
    finally:
        for proc in on_cpu.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    first = out["tasks"][ESTIMATE_TASKS[0]]
    if "device" in first:  # the same call again on the device: the same estimate?
        out["repeat_same_mi"] = _estimate_once(ESTIMATE_TASKS[0], n, dev, **options)["mi"] == first["device"]["mi"]
    out["agree_all"] = all(t.get("agree", False) for t in out["tasks"].values())
    out["large"] = _large(check, options)
    return out


def _compare(check: Check, name: str, n: int, options: dict, cpu_run: subprocess.Popen) -> dict:
    """One task on the device (here) against the CPU (``cpu_run``, a subprocess)."""
    if check.left() < LARGE_RESERVE_S:
        return {"skipped": f"{check.left():.0f} s left"}
    before = _process_state(check.device)
    on_device = _estimate_once(name, n, str(check.device), **options)
    restored = before == _process_state(check.device)
    on_cpu = _collect(cpu_run, check.left() - LARGE_RESERVE_S)
    if on_cpu.get("timed_out"):
        return {"device": on_device, "cpu": on_cpu, "state_restored": restored}
    combined = math.hypot(on_device["stderr"], on_cpu["stderr"])
    diff = on_device["mi"] - on_cpu["mi"]
    return {"truth": _truth(name), "device": on_device, "cpu": on_cpu, "diff": diff, "combined_stderr": combined,
            "agree": bool(abs(diff) <= AGREE_SE * combined), "same_chosen": on_device["chosen"] == on_cpu["chosen"],
            "cpu_over_device_seconds": round(on_cpu["seconds"] / on_device["seconds"], 2), "state_restored": restored}


def _truth(name: str) -> float:
    import mi_estimators as mie

    return float(mie.get(name, kind="tasks").mi)


def _large(check: Check, options: dict) -> dict:
    """``LARGE_TASK`` at ``LARGE_N`` rows on the device alone (the dry run: 600 rows on the CPU),
    in a subprocess with a timeout so that it cannot eat the later steps' time."""
    n = 600 if check.dry else LARGE_N
    limit = LARGE_MAX_S if check.dry else min(LARGE_MAX_S, check.left() - LARGE_RESERVE_S)
    out = {"task": LARGE_TASK, "n": n, "limit_s": round(limit, 1)}
    if limit < LARGE_MIN_S:
        return {**out, "skipped": f"{check.left():.0f} s left"}
    threads = 1 if check.dry else min(16, os.cpu_count() or 1)
    result = _collect(_spawn(LARGE_TASK, n, str(check.device), {**options, "threads": threads}), limit)
    return {**out, "threads": threads, "truth": _truth(LARGE_TASK), **result}


# ---------------------------------------------------------------------------------------------- 3


def _synthetic(n: int, size: int = 28, seed: int = 0):
    from mi_estimators.training import ImageData

    g = torch.Generator().manual_seed(seed)
    return ImageData((torch.rand(n, 1, size, size, generator=g) * 255).to(torch.uint8), torch.arange(n) % 10)


def train_run(name: str, argv: list[str], train, test) -> dict:
    """``mi-estimators train NAME`` from Python, on in-memory data; returns its metrics."""
    from mi_estimators import registry

    trainer = registry.lookup(name, "trainers")
    return trainer.run(trainer.parse(argv), train=train, test=test)


def _images_per_s(check: Check, name: str, batch: int, precision: str, out: Path) -> float:
    n = batch * (2 if check.dry else 24)
    common = ["--epochs", "2", "--batch-size", str(batch), "--precision", precision, "--no-progress",
              "--no-online-probe", "--probe-limit", str(batch), "--device", str(check.device), "--out", str(out)]
    model = (AMDIM_TINY if check.dry else AMDIM_GPU) if name == "amdim" else []
    metrics = train_run(name, common + model, _synthetic(n), _synthetic(batch, seed=1))
    return float(metrics["history"][-1]["images_per_s"])


def throughput(check: Check) -> dict:
    batches = (8,) if check.dry else (256, 512)
    precisions = ("fp32", "bf16")
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("dim", "amdim"):
            for batch in batches:
                for precision in precisions:
                    key = f"{name} batch {batch} {precision}"
                    out = Path(tmp) / key.replace(" ", "_")
                    rates[key] = round(_images_per_s(check, name, batch, precision, out), 1)
    return {"images_per_s": rates}


# ---------------------------------------------------------------------------------------------- 4


def staircase(check: Check) -> dict:
    import bench_staircase as sc
    import mi_estimators as mie
    from mi_estimators.critics import SeparableCritic
    from mi_estimators.fit import make_adam, train_stacked
    from mi_estimators.validation import resolve_bounds

    dev, steps = check.device, 3 if check.dry else 50
    names = mie.available()[:2] if check.dry else mie.available()
    gen = torch.Generator(device=dev).manual_seed(0)

    def batch(_):
        x = torch.randn(sc.BATCH, sc.D, generator=gen, device=dev)
        return x, sc.RHO * x + math.sqrt(1 - sc.RHO ** 2) * torch.randn(sc.BATCH, sc.D, generator=gen, device=dev)

    def plain(name: str) -> float:
        g, h, bound = sc.mlp().to(dev), sc.mlp().to(dev), mie.get(name).to(dev)
        opt = make_adam([*g.parameters(), *h.parameters()], sc.LR)
        data = [batch(i) for i in range(steps + 2)]
        for i, (x, y) in enumerate(data):
            if i == 2:
                _sync(dev)
                t0 = time.perf_counter()
            scores = g(x) @ h(y).t()
            opt.zero_grad()
            bound.loss(scores).backward()
            opt.step()
            float(bound(scores.detach()))
        _sync(dev)
        return (time.perf_counter() - t0) / steps

    bset = resolve_bounds(names)
    critic = SeparableCritic(sc.D, sc.D, hidden=sc.HIDDEN, layers=2, embed_dim=sc.EMBED, n_models=len(names)).to(dev)
    data = [batch(i) for i in range(steps + 2)]
    train_stacked(critic, bset.instances(), lambda s: data[s], 2, sc.LR)
    _sync(dev)
    t0 = time.perf_counter()
    train_stacked(critic, bset.instances(), lambda s: data[s + 2], steps, sc.LR)
    _sync(dev)
    stacked = (time.perf_counter() - t0) / steps
    loops = {n: plain(n) for n in names}
    total = sum(loops.values())
    return {"bounds": len(names), "plain_loops_ms": round(1e3 * total, 2), "stacked_ms": round(1e3 * stacked, 2),
            "speedup_all_bounds": round(total / stacked, 2),
            "plain_ms_per_bound": {n: round(1e3 * v, 3) for n, v in loops.items()}}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# ---------------------------------------------------------------------------------------------- 5


def _nce_trial(check: Check, method: str, nb: int, na: int, nc: int, d: int, capacity: int | None) -> None:
    """One forward + backward with ``nb`` consequent images; raises ``torch.OutOfMemoryError``."""
    from bench_nce import plain_loss

    from mi_estimators.nce import nce_loss_features

    if capacity is not None:                                   # the dry run's simulated device memory
        need = 4 * (nb * nc * d * 2 + na * nb * nc * (2 if method == "efficient" else 4))
        if need > capacity:
            raise torch.OutOfMemoryError(f"simulated: {need} bytes > {capacity}")
    dev = check.device
    a = torch.randn(na, d, device=dev, requires_grad=True)
    b = torch.randn(nb, nc, d, device=dev, requires_grad=True)
    loss = nce_loss_features(a, b, penalty=4e-2, clip=20.0) if method == "efficient" else plain_loss(a, b, 4e-2, 20.0)
    loss.backward()
    _sync(dev)


def _largest(check: Check, method: str, na: int, nc: int, d: int, capacity: int | None, deadline: float) -> int:
    """Largest ``nb`` (consequent images) that fits: doubling, then bisection, until the deadline."""
    def fits(nb: int) -> bool:
        try:
            _nce_trial(check, method, nb, na, nc, d, capacity)
            return True
        except torch.OutOfMemoryError:
            return False
        finally:
            if check.device.type == "cuda":
                torch.cuda.empty_cache()

    lo, hi = na, None
    while hi is None and time.perf_counter() < deadline:
        if fits(2 * lo):
            lo *= 2
        else:
            hi = 2 * lo
    while hi is not None and hi - lo > max(1, lo // 32) and time.perf_counter() < deadline:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def nce_max(check: Check) -> dict:
    na, nc, d = (8, 49, 16) if check.dry else (512, 49, 256)
    capacity = 4 * 2**20 if check.dry else None
    out = {"antecedents": na, "locations": nc, "dim": d}
    for method in ("efficient", "plain"):
        deadline = time.perf_counter() + (20.0 if check.dry else min(60.0, max(10.0, check.left() / 6)))
        nb = _largest(check, method, na, nc, d, capacity, deadline)
        out[method] = {"consequent_images": nb, "negatives_per_positive": (nb - 1) * nc}
    return out


# ---------------------------------------------------------------------------------------------- 6


def fashion_mnist(check: Check) -> dict:
    from mi_estimators.training import DatasetNotFoundError, load_dataset

    try:
        data_dir = check.args.data_dir
        train = load_dataset("fashion-mnist", "train", data_dir=data_dir, limit=512 if check.dry else None)
        test = load_dataset("fashion-mnist", "test", data_dir=data_dir, limit=256 if check.dry else None)
        source = "fashion-mnist"
    except DatasetNotFoundError:
        if not check.dry:
            raise
        train, test, source = _synthetic(512), _synthetic(256, seed=1), "synthetic (Fashion-MNIST not installed)"
    batch = 64 if check.dry else 512
    rate = check.results["steps"].get("throughput", {}).get("images_per_s", {}).get(f"amdim batch {batch} bf16")
    epochs = 1 if check.dry else _epochs_for(check, rate, len(train.images))
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--epochs", str(epochs), "--batch-size", str(batch), "--precision", "bf16" if not check.dry else "fp32",
                "--no-progress", "--device", str(check.device), "--out", str(Path(tmp) / "run"),
                "--probe-features", "global"] + (AMDIM_TINY if check.dry else AMDIM_GPU)
        t0 = time.perf_counter()
        metrics = train_run("amdim", argv, train, test)
    return {"data": source, "train_images": len(train.images), "epochs": epochs, "batch": batch,
            "wall_s": round(time.perf_counter() - t0, 1), "linear_probe_test_acc": metrics["linear_probe_test_acc"],
            "args": argv}


def _epochs_for(check: Check, rate: float | None, n: int) -> int:
    """Epochs that fit the time left (less a minute for the probe), at the measured rate."""
    seconds = check.left() - 60.0
    if not rate or seconds <= 0:
        return 1
    return max(1, min(200, int(0.9 * seconds * rate / n)))


# ----------------------------------------------------------------------------------------------


STEPS = {"tests": run_tests, "estimate": estimate, "throughput": throughput, "staircase": staircase,
         "nce_max": nce_max, "fashion_mnist": fashion_mnist}


def markdown(results: dict) -> str:
    lines = [f"# Device check: {results['device']}{' (dry run)' if results['dry_run'] else ''}", "",
             f"torch {results['torch']}", "", "| step | status | seconds | result |", "|---|---|---|---|"]
    for name, out in results["steps"].items():
        shown = {k: v for k, v in out.items() if k not in ("status", "seconds", "args")}
        lines.append(f"| {name} | {out['status']} | {out['seconds']} | `{json.dumps(shown)}` |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="every step tiny, on the CPU")
    p.add_argument("--out", default="out/gpu_check", help="directory for gpu_check.json and gpu_check.md")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--budget-s", type=float, default=540.0, help="wall-clock budget of the whole check")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated among {','.join(STEPS)}")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX files (default: the system's)")
    args = p.parse_args(argv)
    if args.dry_run:
        torch.set_num_threads(1)
    check = Check(args)
    for name in args.steps.split(","):
        check.step(name, STEPS[name])
    check.results["total_s"] = round(time.perf_counter() - check.start, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(check.results, indent=2))
    (out / "gpu_check.md").write_text(markdown(check.results))
    print(markdown(check.results))
    return check.results


if __name__ == "__main__":
    main()
