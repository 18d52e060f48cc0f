"""Speed and peak memory of the NCE loss from features (forward + backward), against plain baselines
measured in the same run.

At ``na`` antecedents x ``nb = na`` consequents x ``nc`` locations x ``d`` dimensions, with AMDIM's
stabilisers by default (penalty 4e-2, soft clip 20):

* ``efficient``: :func:`mi_estimators.nce.nce_loss_features` as called by default (plain
  autograd operations up to ``SMALL_FEATURE_SCORES`` score elements, the chunked kernel above);
* ``kernel``: the same function forced through the chunked kernel at every size (its default
  chunking), to show where the size switch pays;
* ``plain``: the loss as one writes it in autograd: scores ``a @ b^T``, soft clip, the positives
  picked out, ``logsumexp`` over the negatives (positives masked with ``-inf``), ``logaddexp``;
* ``reference``: the algorithm of the authors' code (amdim-public, ``costs.NCE_MI_MULTI``),
  re-implemented here: float masks of positives and negatives multiplied into the scores, a max
  shift over the negatives, ``exp``, masked sums;
* ``naive``: every positive's full candidate row, a ``(na, nc, 1 + (nb - 1) nc)`` logit tensor,
  then ``log_softmax`` (small sizes only);
* ``matmul``: the score product ``a @ b^T`` alone (forward only), the unit of time and memory.

Time: in one subprocess per size the methods alternate round by round (``--repeats`` timed rounds
after a warm-up), so that the load of a shared machine hits them alike; medians, and the median of
the per-round ratios against ``plain``. Memory: one fresh subprocess per method; the peak of the
bytes held by tensors created during one forward + backward (the inputs, allocated before, are
not counted; their gradients are). On the CPU it is tracked exactly by a ``TorchDispatchMode``
that adds the storage of every tensor an operator returns and subtracts it when the storage is
freed (it does not see scratch memory inside a kernel, e.g. MKL's packing buffers). On CUDA it is
``torch.cuda.max_memory_allocated`` minus the allocation before the run.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_nce.py --sizes 16 32 64 128 256 512
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from mi_estimators.nce import rows_per_chunk, nce_loss_features

METHODS = ("efficient", "kernel", "plain", "reference", "naive")


class TensorMemory(TorchDispatchMode):
    """Bytes of the tensor storages created while active: a timeline of allocations and frees."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[int, int]] = {}       # data_ptr -> (allocation number, bytes)
        self.events: list[tuple[int, int]] = []          # (allocation number, +bytes or -bytes)

    def _free(self, key: int) -> None:
        if key in self.live:
            number, size = self.live.pop(key)
            self.events.append((number, -size))

    def peak(self) -> int:
        """Largest total held at any moment."""
        current = peak = 0
        for _, delta in self.events:
            current += delta
            peak = max(peak, current)
        return peak

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # views and in-place results share an argument's storage: nothing new
        seen = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if storage.nbytes() and key not in self.live and key not in seen:
                    self.live[key] = (len(self.events), storage.nbytes())
                    self.events.append((len(self.events), storage.nbytes()))
                    weakref.finalize(storage, self._free, key)
        return out


def _scores(a, b):
    na, (nb, nc, d) = a.shape[0], b.shape
    return (a @ b.reshape(nb * nc, d).T).view(na, nb, nc)


def plain_loss(a, b, penalty, clip):
    """The loss in plain autograd operations (logsumexp over the masked negatives)."""
    raw = _scores(a, b)
    s = raw if clip is None else clip * torch.tanh(raw / clip)
    na, nb, nc = s.shape
    idx = torch.arange(na, device=a.device)
    pos = s[idx, idx]                                                         # (na, nc)
    is_pos = torch.eye(na, nb, dtype=torch.bool, device=a.device)[:, :, None]
    lse = s.masked_fill(is_pos, float("-inf")).reshape(na, -1).logsumexp(dim=1)
    loss = -(pos - torch.logaddexp(pos, lse[:, None])).mean()
    return loss + penalty * raw.pow(2).mean() if penalty else loss


def reference_loss(a, b, penalty, clip):
    """The authors' algorithm (float masks, max shift over the negatives, masked exp-sums)."""
    raw = _scores(a, b)
    na, nb, nc = raw.shape
    reg = penalty * raw.pow(2).mean()
    s = raw if clip is None else clip * torch.tanh(raw / clip)
    mask_pos = torch.eye(na, nb, device=a.device)[:, :, None].expand(na, nb, nc)
    mask_neg = 1.0 - mask_pos
    pos = (mask_pos * s).sum(dim=1)                                            # (na, nc)
    neg = (mask_neg * s - (clip or 0.0) * mask_pos).reshape(na, -1)
    shift = neg.max(dim=1, keepdim=True)[0]
    neg_sumexp = (mask_neg.reshape(na, -1) * torch.exp(neg - shift)).sum(dim=1, keepdim=True)
    nce = pos - shift - torch.log(torch.exp(pos - shift) + neg_sumexp)
    return -nce.mean() + reg


def naive_loss(a, b, penalty, clip):
    """Every positive's full candidate row as a logit tensor, then ``log_softmax``."""
    raw = _scores(a, b)
    s = raw if clip is None else clip * torch.tanh(raw / clip)
    na, nb, nc = s.shape
    idx = torch.arange(na, device=a.device)
    keep = ~torch.eye(na, nb, dtype=torch.bool, device=a.device)
    negatives = s[keep].view(na, (nb - 1) * nc)
    logits = torch.cat([s[idx, idx][:, :, None], negatives[:, None, :].expand(na, nc, -1)], dim=2)
    return -torch.log_softmax(logits, dim=2)[:, :, 0].mean() + penalty * raw.pow(2).mean()


def _run(method, a, b, penalty, clip):
    if method == "matmul":
        with torch.no_grad():
            return a @ b.reshape(-1, b.shape[-1]).T
    if method in ("efficient", "kernel"):
        rows = rows_per_chunk(a.shape[0], b.shape[0] * b.shape[1], None) if method == "kernel" else None
        loss = nce_loss_features(a, b, penalty=penalty, clip=clip, chunk_size=rows)
    else:
        loss = {"plain": plain_loss, "reference": reference_loss, "naive": naive_loss}[method](a, b, penalty, clip)
    loss.backward()
    return loss


def _inputs(spec: dict, device, grad: bool):
    g = torch.Generator(device=device).manual_seed(0)
    na, nc, d = spec["na"], spec["nc"], spec["d"]
    a = (torch.randn(na, d, generator=g, device=device) / d ** 0.25).requires_grad_(grad)
    b = (torch.randn(na, nc, d, generator=g, device=device) / d ** 0.25).requires_grad_(grad)
    return a, b


def _memory(spec: dict) -> dict:
    device = torch.device(spec["device"])
    a, b = _inputs(spec, device, spec["method"] != "matmul")
    opts = (spec["penalty"], spec["clip"])
    _run(spec["method"], a[:2], b[:2], *opts)                                  # load kernels, tiny
    a.grad = b.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        result = _run(spec["method"], a, b, *opts)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        with TensorMemory() as tracker:
            result = _run(spec["method"], a, b, *opts)
        peak = tracker.peak()
    return {"peak": peak, "value": float(result.float().mean())}


def _times(spec: dict) -> dict:
    """The methods alternate round by round in this one process, their order rotating from round to
    round; two warm-up rounds first, the second of which sets how many calls make one timed sample
    (at least ~50 ms of the slowest method)."""
    device = torch.device(spec["device"])
    a, b = _inputs(spec, device, True)
    methods = list(spec["methods"])
    calls = 1
    times: dict[str, list[float]] = {m: [] for m in methods}
    for rep in range(spec["repeats"] + 2):
        if rep == 2:  # calls per timing: enough for 50 ms, from the warm-up's times
            calls = max(1, int(0.05 / max(v[0] for v in times.values())))
        if rep <= 2:
            times = {m: [] for m in methods}
        shift = rep % len(methods)
        for method in methods[shift:] + methods[:shift]:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(calls):
                a.grad = b.grad = None
                _run(method, a, b, spec["penalty"], spec["clip"])
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[method].append((time.perf_counter() - t0) / calls)
    return {"times": times, "calls": calls}


def _child(spec: dict) -> dict:
    torch.set_num_threads(spec["threads"])
    return _memory(spec) if spec["mode"] == "memory" else _times(spec)


def _spawn(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["killed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ratio(times: dict, method: str, base: str) -> float:
    return statistics.median(t / b for t, b in zip(times[method], times[base]))


def measure(na: int, args) -> dict:
    """Times (interleaved) and peaks (fresh processes) of every method that fits at this size."""
    base = dict(na=na, nc=args.nc, d=args.dim, threads=args.threads, device=args.device,
                repeats=args.repeats, penalty=args.penalty, clip=args.clip)
    logit_bytes = na * args.nc * (1 + (na - 1) * args.nc) * 4
    methods = [m for m in METHODS if m != "naive" or logit_bytes <= args.naive_max_gb * 2**30] + ["matmul"]
    timed = _spawn({**base, "mode": "time", "methods": methods})
    if "error" in timed:
        return {"na": na, "error": timed["error"]}
    times = timed["times"]
    out = {"na": na, "score_bytes": na * na * args.nc * 4,
           "median_s": {m: statistics.median(v) for m, v in times.items()},
           "vs_plain": {m: _ratio(times, m, "plain") for m in methods},
           "vs_reference": {m: _ratio(times, m, "reference") for m in methods}, "times": times, "peak": {}}
    for m in methods:
        mem = _spawn({**base, "mode": "memory", "method": m})
        out["peak"][m] = mem.get("peak")
    return out


def _row(r: dict) -> str:
    if "error" in r:
        return f"| {r['na']} | error: {r['error']} |"
    med, peak, mib = r["median_s"], r["peak"], 2**20
    cells = [str(r["na"]), f"{r['score_bytes'] / mib:.1f} MiB", f"{med['matmul'] * 1e3:.1f}"]
    for m in ("efficient", "kernel", "plain", "reference"):
        cells.append(f"{med[m] * 1e3:.1f}")
    cells += [f"**{r['vs_plain']['efficient']:.2f}x**", f"{r['vs_reference']['efficient']:.2f}x",
              f"{r['vs_plain']['kernel']:.2f}x"]
    for m in ("efficient", "kernel", "plain", "reference"):
        cells.append(f"{peak[m] / mib:.1f}" if peak.get(m) else "–")
    cells.append(f"**{peak['efficient'] / peak['plain']:.2f}x**" if peak.get("plain") else "–")
    cells.append(f"{med['naive'] * 1e3:.0f} ms, {peak['naive'] / mib:.0f} MiB" if "naive" in med else "not run")
    return "| " + " | ".join(cells) + " |"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512], help="values of na (= nb)")
    parser.add_argument("--nc", type=int, default=49, help="consequent locations per image (7x7)")
    parser.add_argument("-d", "--dim", type=int, default=1024, help="feature dimension (n_rkhs)")
    parser.add_argument("--penalty", type=float, default=4e-2, help="score penalty (AMDIM: 4e-2)")
    parser.add_argument("--clip", type=float, default=20.0, help="soft clip (AMDIM: 20; 0: none)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--naive-max-gb", type=float, default=0.5,
                        help="skip the naive method when its (na, nc, K) logit tensor exceeds this")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    args.clip = args.clip or None
    print(f"device={args.device} threads={args.threads} nc={args.nc} d={args.dim} penalty={args.penalty} "
          f"clip={args.clip} repeats={args.repeats} torch={torch.__version__}")
    print("| na | score tensor | product ms | efficient ms | kernel ms | plain ms | reference ms | "
          "**efficient / plain time** | efficient / reference time | kernel / plain time | efficient peak MiB | "
          "kernel peak MiB | plain peak MiB | reference peak MiB | **efficient / plain peak** | naive |")
    print("|" + "---|" * 16)
    results = []
    for na in args.sizes:
        results.append(measure(na, args))
        print(_row(results[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"config": vars(args), "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
