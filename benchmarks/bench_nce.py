"""Speed and peak memory of the memory-efficient NCE loss (features -> loss, forward + backward).

Compared, at ``na`` antecedents x ``nb = na`` consequents x ``nc`` locations x ``d`` dimensions:

* ``efficient``: :func:`mi_estimators.nce.nce_loss_features`, forward + backward;
* ``naive``: the plain autograd implementation that builds every positive's full candidate
  row, a ``(na, nc, 1 + (nb - 1) nc)`` logit tensor, then ``log_softmax`` (forward + backward);
* ``matmul``: the score matrix product ``a @ b^T`` alone (forward only), the unit of time and
  memory: the targets are ``efficient`` time <= 3.5x and peak memory <= 1.5x of it.

Every measurement runs in a fresh subprocess. Time: median of ``--repeats`` runs after one
warm-up, alternating with runs of the bare product in the same process; the time ratio is the median
of the per-round ratios (robust to the load of a shared machine). Memory: the peak of the bytes held by tensors created during one run (the inputs,
allocated before, are not counted). On the CPU it is tracked exactly by a ``TorchDispatchMode``
that adds the storage of every tensor an operator returns and subtracts it when the storage is
freed (weakref finalizers); it sees every tensor PyTorch allocates through its operators, but not
scratch memory inside a kernel (e.g. MKL's packing buffers). On CUDA it is
``torch.cuda.max_memory_allocated`` minus the allocation before the run. Two figures are reported
for the loss: the whole peak, and the working peak, which leaves out the gradients of the inputs
(``a.grad``, ``b.grad``: returned by any method; ``b.grad`` alone is ``d / na`` times the score
tensor). On CUDA the working peak is approximated as the peak less the gradients' size.

    nice -n 10 .venv/bin/python benchmarks/bench_nce.py --sizes 128 512 2048
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from mi_estimators.nce import nce_loss_features

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

    def peak(self, exclude=()) -> int:
        """Largest total held at any moment, leaving out the live tensors in ``exclude``."""
        skip = {self.live[t.untyped_storage().data_ptr()][0] for t in exclude
                if t.untyped_storage().data_ptr() in self.live}
        current = peak = 0
        for number, delta in self.events:
            if number not in skip:
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


def _naive_loss(a, b):
    na, (nb, nc, d) = a.shape[0], b.shape
    scores = (a @ b.reshape(nb * nc, d).T).view(na, nb, nc)
    idx = torch.arange(na, device=a.device)
    positives = scores[idx, idx]                                             # (na, nc)
    keep = ~torch.eye(na, nb, dtype=torch.bool, device=a.device)             # (na, nb): j != i
    negatives = scores[keep].view(na, (nb - 1) * nc)                         # (na, (nb-1) nc)
    logits = torch.cat([positives[:, :, None], negatives[:, None, :].expand(na, nc, -1)], dim=2)
    return -torch.log_softmax(logits, dim=2)[:, :, 0].mean()


def _run(method, a, b):
    if method == "matmul":
        with torch.no_grad():
            return a @ b.reshape(-1, b.shape[-1]).T
    loss = nce_loss_features(a, b) if method == "efficient" else _naive_loss(a, b)
    loss.backward()
    return loss


def _child(spec: dict) -> dict:
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    g = torch.Generator(device=device).manual_seed(0)
    na, nc, d = spec["na"], spec["nc"], spec["d"]
    a = (torch.randn(na, d, generator=g, device=device) / d ** 0.25).requires_grad_(spec["method"] != "matmul")
    b = (torch.randn(na, nc, d, generator=g, device=device) / d ** 0.25).requires_grad_(spec["method"] != "matmul")
    _run(spec["method"], a[:2], b[:2])                                       # load kernels, tiny
    a.grad = b.grad = None
    cuda = device.type == "cuda"
    out = {}
    if spec["mode"] == "memory":
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            result = _run(spec["method"], a, b)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
            working = peak - sum(t.grad.numel() * t.grad.element_size() for t in (a, b) if t.grad is not None)
        else:
            with TensorMemory() as tracker:
                result = _run(spec["method"], a, b)
            peak, working = tracker.peak(), tracker.peak(exclude=[t.grad for t in (a, b) if t.grad is not None])
        out.update(peak=peak, working=working, value=float(result.float().mean()))
    else:
        # the method and the bare product alternate, so that both see the same load on a shared machine
        times, products = [], []
        for rep in range(spec["repeats"] + 1):
            for method, into in ((spec["method"], times), ("matmul", products)):
                a.grad = b.grad = None
                if cuda:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                _run(method, a, b)
                if cuda:
                    torch.cuda.synchronize()
                if rep:                                                       # first round: warm-up
                    into.append(time.perf_counter() - t0)
        out.update(time=statistics.median(times), matmul=statistics.median(products), times=times,
                   products=products, ratio=statistics.median(t / m for t, m in zip(times, products)))
    return out


def _spawn(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["killed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512, 2048], help="values of na (= nb)")
    parser.add_argument("--nc", type=int, default=49, help="consequent locations per image (7x7)")
    parser.add_argument("-d", "--dim", type=int, default=1024, help="feature dimension")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--naive-max-gb", type=float, default=1.0,
                        help="skip the naive method when its (na, nc, K) logit tensor exceeds this")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return

    print(f"device={args.device} threads={args.threads} nc={args.nc} d={args.dim} repeats={args.repeats} "
          f"torch={torch.__version__}")
    print("| na | negatives/positive | score tensor | matmul time | loss fwd+bwd time | time ratio | "
          "loss peak memory | working memory (excl. input grads) | naive fwd+bwd time | naive peak memory |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for na in args.sizes:
        score_bytes = na * na * args.nc * 4
        logit_bytes = na * args.nc * (1 + (na - 1) * args.nc) * 4
        base = dict(na=na, nc=args.nc, d=args.dim, threads=args.threads, device=args.device, repeats=args.repeats)
        res = {}
        for method in ("efficient", "naive"):
            if method == "naive" and logit_bytes > args.naive_max_gb * 2**30:
                res[method] = {"skipped": f"not run: its logits alone need {logit_bytes / 2**30:.0f} GiB"}
                continue
            res[method] = {**_spawn({**base, "method": method, "mode": "time"}),
                           **_spawn({**base, "method": method, "mode": "memory"})}
        mm = _spawn({**base, "method": "matmul", "mode": "memory"})
        ef, nv = res["efficient"], res["naive"]
        if "error" in ef or "error" in mm:
            print(f"| {na} | error: {ef.get('error') or mm.get('error')} |")
            continue
        naive_cells = (nv["skipped"], "") if "skipped" in nv else (
            (f"error: {nv['error']}", "") if "error" in nv else
            (f"{nv['time']:.3f} s ({nv['ratio']:.1f}x)",
             f"{nv['peak'] / 2**20:.0f} MiB ({nv['peak'] / score_bytes:.1f}x)"))
        print(f"| {na} | {(na - 1) * args.nc:,} | {score_bytes / 2**20:.0f} MiB | {ef['matmul']:.3f} s "
              f"| {ef['time']:.3f} s | {ef['ratio']:.2f}x "
              f"| {ef['peak'] / 2**20:.0f} MiB ({ef['peak'] / score_bytes:.2f}x) "
              f"| {ef['working'] / score_bytes:.2f}x "
              f"| {naive_cells[0]} | {naive_cells[1]} |", flush=True)
        print(f"<!-- na={na}: bare product peak {mm['peak'] / score_bytes:.2f}x the score tensor; rounds "
              f"(loss, product) s: {[(round(t, 3), round(m, 3)) for t, m in zip(ef['times'], ef['products'])]} -->",
              flush=True)


if __name__ == "__main__":
    main()
