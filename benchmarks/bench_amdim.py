"""Training throughput of one AMDIM step (images/s): forward + backward of both views and the loss.

Compared on the same encoder, heads, weights and batch:

* ``amdim``: the plugin's step, :class:`mi_estimators_amdim.trainer.AMDIMObjective` — both views
  in one channels_last encoder pass, the 1→7 and 1→5 terms through the fused
  :func:`mi_estimators.nce.nce_loss_features`, the 5→5 term through chunked
  :func:`mi_estimators.nce.nce_terms` with one row per antecedent location;
* ``baseline``: a plain reimplementation of the same step — contiguous (NCHW) tensors and an
  unfused loss in ordinary autograd: every positive's full candidate row (the positive and all
  ``(N − 1)·L`` locations of the other images) is built as a ``(N, L, 1 + (N − 1)L)`` logit tensor
  and fed to ``cross_entropy``; 5→5 loops over the antecedent locations with the same function.

Both compute the same loss (checked to 1e-4 before timing). The two steps alternate, each timed
``--repeats`` times after a warm-up; the table gives medians and the ratio (measured in the same
run, so load from other processes affects both alike).

    nice -n 10 .venv/bin/python benchmarks/bench_amdim.py --ndf 16 --n-rkhs 256 --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from mi_estimators.training import feature_shapes
from mi_estimators_amdim.encoder import AMDIMEncoder
from mi_estimators_amdim.objective import PAIRS
from mi_estimators_amdim.trainer import AMDIMObjective


def naive_nce(a: torch.Tensor, c: torch.Tensor, penalty: float, clip: float | None) -> torch.Tensor:
    """Unfused AMDIM NCE: antecedents (N, d), consequents (N, L, d); full candidate rows."""
    n, n_loc = c.shape[0], c.shape[1]
    raw = torch.einsum("ad,bcd->abc", a, c)  # (N, N, L)
    s = raw if clip is None else clip * torch.tanh(raw / clip)
    pos = s[torch.arange(n), torch.arange(n)]  # (N, L)
    off = ~torch.eye(n, dtype=torch.bool)
    neg = s[off].view(n, (n - 1) * n_loc)  # (N, (N-1)L): each row's negatives
    logits = torch.cat([pos[:, :, None], neg[:, None, :].expand(n, n_loc, -1)], dim=2)
    target = torch.zeros(n * n_loc, dtype=torch.long)
    return F.cross_entropy(logits.reshape(n * n_loc, -1), target) + penalty * raw.pow(2).mean()


def baseline_step(obj: AMDIMObjective, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """The same loss as ``obj((x1, x2))["loss"]``, computed the plain way."""
    nce = obj.nce
    out = obj.encoder(torch.cat([x1, x2]))
    feats = {name: out[key] for name, key in obj.scales.items()}
    b = x1.shape[0]
    scale = nce.n_rkhs ** -0.25
    views = []
    for half in (slice(0, b), slice(b, 2 * b)):
        v = {}
        for name, head in nce.heads.items():
            h = head(feats[name][half]) * scale
            v[name] = h if name == "f1" else h.flatten(2).transpose(1, 2)
        views.append(v)
    total = 0.0
    for pair in nce.pairs:
        ant, con = PAIRS[pair]
        for src, dst in ((views[0], views[1]), (views[1], views[0])):
            if ant == "f1":
                term = naive_nce(src[ant], dst[con], nce.penalty, nce.clip)
            else:
                term = torch.stack([naive_nce(src[ant][:, loc], dst[con], nce.penalty, nce.clip)
                                    for loc in range(src[ant].shape[1])]).mean()
            total = total + 0.5 * term
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ndf", type=int, default=16)
    p.add_argument("--n-rkhs", type=int, default=256)
    p.add_argument("--n-depth", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--pairs", default="1-7,1-5,5-5", help="NCE terms, as the trainer's --pairs")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    def build(channels_last: bool) -> AMDIMObjective:
        torch.manual_seed(0)
        enc = AMDIMEncoder(a.channels, a.image_size, ndf=a.ndf, n_rkhs=a.n_rkhs, n_depth=a.n_depth)
        return AMDIMObjective(enc, feature_shapes(enc, a.channels, a.image_size), n_rkhs=a.n_rkhs,
                              channels_last=channels_last, pairs=a.pairs.split(","))

    fast, plain = build(True), build(False)
    x1 = torch.rand(a.batch_size, a.channels, a.image_size, a.image_size)
    x2 = torch.rand_like(x1)
    ref = baseline_step(plain, x1, x2)
    got = fast((x1, x2))["loss"]
    if not torch.allclose(ref, got, rtol=1e-4, atol=1e-4):
        raise SystemExit(f"the two steps disagree: baseline {float(ref)}, amdim {float(got)}")

    def timed(step) -> float:
        t0 = time.perf_counter()
        step().backward()
        return time.perf_counter() - t0

    steps = {"amdim": lambda: fast((x1, x2))["loss"], "baseline": lambda: baseline_step(plain, x1, x2)}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for k, step in steps.items():  # warm-up
        timed(step)
    for _ in range(a.repeats):
        for k, step in steps.items():
            for m in (fast, plain):
                m.zero_grad(set_to_none=True)
            times[k].append(timed(step))
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: a.batch_size / v for k, v in med.items()}
    result = {"config": vars(a), "median_s": med, "images_per_s": rate,
              "speedup": med["baseline"] / med["amdim"]}
    print(f"AMDIM step, {a.batch_size} images of {a.channels}x{a.image_size}x{a.image_size}, ndf={a.ndf}, "
          f"n_rkhs={a.n_rkhs}, n_depth={a.n_depth}, pairs {a.pairs}, {a.threads} thread(s), "
          f"median of {a.repeats}")
    print("| step | s / step | images / s |\n|---|---|---|")
    for k in steps:
        print(f"| {k} | {med[k]:.3f} | {rate[k]:.1f} |")
    print(f"speed-up amdim / baseline: {result['speedup']:.2f}x")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
