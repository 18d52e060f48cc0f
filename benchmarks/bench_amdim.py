"""Training throughput of one AMDIM step (images/s) against a plain re-implementation of the
authors' step, measured in the same run.

* ``reference``: the training step of the authors' code (amdim-public, Bachman et al. 2019),
  re-implemented plainly here for the CPU: its 32×32 encoder (3×3 stem, a 1×1 residual unit,
  ResBlocks of ``conv k×k -> ReLU -> conv 1×1`` units with average-pooled, zero-padded
  shortcuts; f7 and f5 at 4·ndf, f1 = batch norm of an n_rkhs-wide 1×1 map), no batch norm
  inside the encoder (its default), its f5/f7 heads (1×1 residual MLP + batch norm, f1 used as
  is), each view encoded separately, its mask-based NCE (float masks of positives and
  negatives multiplied into the ``(N, N, L)`` scores, max shift, masked exp-sums) for 1→5, 1→7
  and 5→5 with one random source location per image, both directions, and its score penalty.
  Its online classifiers are left out (they are not part of the representation's step).
* our variants, each :class:`mi_estimators_amdim.trainer.AMDIMObjective` as the trainer builds it
  (both views in one channels_last encoder pass, the fused NCE of :mod:`mi_estimators.nce`):
  ``default`` (the plugin's defaults), and one option changed at a time: ``bn`` (batch norm in
  the encoder), ``wide`` (``top_width=8``: f5 and above at 8·ndf), ``all55`` (every 5→5
  location), ``no_embed_bn`` (no batch norm on the embeddings), ``nchw`` (contiguous NCHW tensors),
  and ``previous`` (bn + wide + all55, no embedding batch norm: the defaults before they followed
  the authors' code).

One step is forward + backward of both views and the loss from fixed random inputs (no data
loading, augmentation or optimiser step, the same for all). The steps alternate round by round,
their order rotating, each timed ``--repeats`` times after a warm-up; the table gives medians and
the median of the per-round ratios to ``reference``. Before timing, the script checks that the
reference NCE and the fused NCE give the same loss on equal inputs.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_amdim.py --ndf 16 --n-rkhs 256 \\
        --channels 3 --image-size 32 --batch-size 64 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from mi_estimators.nce import nce_loss_features
from mi_estimators.training import feature_shapes
from mi_estimators_amdim.encoder import AMDIMEncoder
from mi_estimators_amdim.objective import NCEOptions
from mi_estimators_amdim.trainer import AMDIMObjective

#: our variants: (encoder options, objective options, channels_last)
VARIANTS = {
    "default": ({}, {}, True),
    "bn": ({"use_bn": True}, {}, True),
    "wide": ({"top_width": 8}, {}, True),
    "all55": ({}, {"locations_55": None}, True),
    "no_embed_bn": ({}, {"embed_bn": False}, True),
    "nchw": ({}, {}, False),
    "previous": ({"use_bn": True, "top_width": 8}, {"locations_55": None, "embed_bn": False}, True),
}


class RefUnit(nn.Module):
    """``conv k×k -> ReLU -> conv 1×1`` (the second zero-initialised) plus an average-pooled
    shortcut, zero-padded to the output channels."""

    def __init__(self, n_in: int, n_out: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(n_in, n_out, width, stride, 0, bias=False)
        self.conv2 = nn.Conv2d(n_out, n_out, 1, bias=False)
        nn.init.zeros_(self.conv2.weight)
        self.width, self.stride, self.extra = width, stride, n_out - n_in

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(x)))
        short = F.avg_pool2d(x, self.width, self.stride)
        if self.extra:
            short = F.pad(short, (0, 0, 0, 0, 0, self.extra))
        return h + short


def _ref_block(n_in, n_out, width, stride, depth):
    return nn.Sequential(RefUnit(n_in, n_out, width, stride), *[RefUnit(n_out, n_out, 1, 1) for _ in range(depth - 1)])


class RefHead(nn.Module):
    """The authors' f5/f7 embedding: ``BN(conv 1×1 -> ReLU -> conv 1×1 (zero init) + conv 1×1)``."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(n_in, n_out, 1, bias=False)
        self.conv2 = nn.Conv2d(n_out, n_out, 1, bias=False)
        nn.init.zeros_(self.conv2.weight)
        self.shortcut = nn.Conv2d(n_in, n_out, 1)
        self.bn = nn.BatchNorm2d(n_out)

    def forward(self, x):
        return self.bn(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class RefModel(nn.Module):
    """The authors' 32×32 encoder and heads: returns the embeddings r1 (B, n_rkhs, 1, 1), r5, r7."""

    def __init__(self, channels: int, ndf: int, n_rkhs: int, n_depth: int):
        super().__init__()
        self.lower = nn.Sequential(nn.Conv2d(channels, ndf, 3), nn.ReLU(), RefUnit(ndf, ndf, 1, 1),
                                   _ref_block(ndf, 2 * ndf, 4, 2, n_depth), _ref_block(2 * ndf, 4 * ndf, 2, 2, n_depth))
        self.to_f5 = _ref_block(4 * ndf, 4 * ndf, 3, 1, n_depth)
        self.to_f1 = nn.Sequential(_ref_block(4 * ndf, 4 * ndf, 3, 1, n_depth), RefUnit(4 * ndf, n_rkhs, 3, 1),
                                   nn.BatchNorm2d(n_rkhs))
        self.head5, self.head7 = RefHead(4 * ndf, n_rkhs), RefHead(4 * ndf, n_rkhs)

    def forward(self, x):
        if x.shape[-1] < 32:                                   # 28×28 inputs: zero-pad to the 32×32 encoder
            pad = 32 - x.shape[-1]
            x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
        f7 = self.lower(x)
        f5 = self.to_f5(f7)
        return self.to_f1(f5), self.head5(f5), self.head7(f7)


def reference_nce(r_src, r_trg, penalty: float, clip: float):
    """The authors' NCE: ``r_src`` (n, d), ``r_trg`` (d, n·L); scores divided by sqrt(d)."""
    n, d = r_src.shape
    n_loc = r_trg.shape[1] // n
    mask_pos = torch.eye(n)[:, :, None].expand(n, n, n_loc)
    mask_neg = 1.0 - mask_pos
    raw = (r_src @ r_trg).reshape(n, n, n_loc) / d ** 0.5
    reg = penalty * (raw ** 2).mean()
    s = clip * torch.tanh(raw / clip)
    pos = (mask_pos * s).sum(dim=1)
    neg = (mask_neg * s - clip * mask_pos).reshape(n, -1)
    shift = neg.max(dim=1, keepdim=True)[0]
    sumexp = (mask_neg.reshape(n, -1) * torch.exp(neg - shift)).sum(dim=1, keepdim=True)
    return -(pos - shift - torch.log(torch.exp(pos - shift) + sumexp)).mean(), reg


def reference_step(model: RefModel, x1, x2, penalty: float, clip: float):
    """Loss of one step of the authors' code (two encoder passes; one random 5→5 source per image)."""
    (r1a, r5a, r7a), (r1b, r5b, r7b) = model(x1), model(x2)
    n, d = r1a.shape[:2]
    rows = torch.arange(n)

    def source5(r5):
        return r5.flatten(2)[rows, :, torch.randint(0, r5.shape[2] * r5.shape[3], (n,))]

    def target(r):
        return r.permute(1, 0, 2, 3).reshape(d, -1)

    src = [(r1a.reshape(n, d), r1b.reshape(n, d)), (r1a.reshape(n, d), r1b.reshape(n, d)), (source5(r5a), source5(r5b))]
    trg = [(target(r5b), target(r5a)), (target(r7b), target(r7a)), (target(r5b), target(r5a))]
    total = 0.0
    for (s1, s2), (t2, t1) in zip(src, trg):
        (l1, g1), (l2, g2) = reference_nce(s1, t2, penalty, clip), reference_nce(s2, t1, penalty, clip)
        total = total + 0.5 * (l1 + l2) + 0.5 * (g1 + g2)
    return total


def check_losses_agree(penalty: float, clip: float) -> float:
    """The reference NCE against the fused NCE on equal inputs; returns the absolute difference."""
    g = torch.Generator().manual_seed(0)
    a, c = torch.randn(32, 64, generator=g), torch.randn(32, 49, 64, generator=g)
    loss, reg = reference_nce(a, c.permute(2, 0, 1).reshape(64, -1), penalty, clip)
    fused = nce_loss_features(a / 64 ** 0.25, c / 64 ** 0.25, penalty=penalty, clip=clip)
    diff = abs(float(loss + reg) - float(fused))
    if diff > 1e-4:
        raise SystemExit(f"the reference NCE and the fused NCE disagree by {diff}")
    return diff


def _ours(a, name: str) -> AMDIMObjective:
    enc_opts, nce_opts, channels_last = VARIANTS[name]
    torch.manual_seed(0)
    enc = AMDIMEncoder(a.channels, a.image_size, ndf=a.ndf, n_rkhs=a.n_rkhs, n_depth=a.n_depth, **enc_opts)
    return AMDIMObjective(enc, feature_shapes(enc, a.channels, a.image_size), n_rkhs=a.n_rkhs,
                          channels_last=channels_last, nce=NCEOptions(**nce_opts))


def _time_rounds(steps: dict, models: dict, repeats: int) -> dict[str, list[float]]:
    names = list(steps)
    times: dict[str, list[float]] = {k: [] for k in names}
    for rep in range(repeats + 1):
        shift = rep % len(names)
        for k in names[shift:] + names[:shift]:
            models[k].zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            steps[k]().backward()
            if rep:                                            # round 0: warm-up
                times[k].append(time.perf_counter() - t0)
    return times


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ndf", type=int, default=16)
    p.add_argument("--n-rkhs", type=int, default=256)
    p.add_argument("--n-depth", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=32, choices=(28, 32))
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"our steps to time, among {','.join(VARIANTS)}")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    check_losses_agree(4e-2, 20.0)
    torch.manual_seed(0)
    ref = RefModel(a.channels, a.ndf, a.n_rkhs, a.n_depth)
    models = {"reference": ref, **{v: _ours(a, v) for v in a.variants.split(",")}}
    x1 = torch.rand(a.batch_size, a.channels, a.image_size, a.image_size)
    x2 = torch.rand_like(x1)
    steps = {"reference": lambda: reference_step(ref, x1, x2, 4e-2, 20.0)}
    for v in models:
        if v != "reference":
            steps[v] = (lambda m: lambda: m((x1, x2))["loss"])(models[v])
    times = _time_rounds(steps, models, a.repeats)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = {k: statistics.median(r / t for r, t in zip(times["reference"], times[k])) for k in times}
    params = {k: sum(q.numel() for q in m.parameters()) for k, m in models.items()}
    print(f"AMDIM step, batch {a.batch_size} of {a.channels}x{a.image_size}x{a.image_size}, ndf={a.ndf}, "
          f"n_rkhs={a.n_rkhs}, n_depth={a.n_depth}, {a.threads} thread(s), torch {torch.__version__}, "
          f"median of {a.repeats} interleaved rounds")
    print("| step | parameters | s / step | images / s | speed / reference (median of round ratios) |")
    print("|---|---|---|---|---|")
    for k in times:
        print(f"| {k} | {params[k] / 1e6:.2f} M | {med[k]:.3f} | {a.batch_size / med[k]:.0f} | **{ratio[k]:.2f}x** |")
    result = {"config": vars(a), "median_s": med, "images_per_s": {k: a.batch_size / v for k, v in med.items()},
              "speed_vs_reference": ratio, "parameters": params, "times": times}
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
