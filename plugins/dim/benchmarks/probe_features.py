"""Linear-probe accuracy of every feature a DIM encoder exposes, trained or at initialisation.

    python plugins/dim/benchmarks/probe_features.py --dataset fashion-mnist            # random init
    python plugins/dim/benchmarks/probe_features.py --checkpoint runs/dim/checkpoint.pt

Extracts the features once and fits one softmax-regression probe per feature set (train split ->
test split), exactly as ``mi-estimators train dim`` does at the end; prints a JSON line per set.
The checkpoint is read with the kit's safe loader (``torch.load(weights_only=True)``): a file
from elsewhere cannot run code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from mi_estimators.training import ImageData, as_float, build_encoder, linear_probe, load_checkpoint, load_dataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--encoder", default="dim")
    p.add_argument("--checkpoint", default=None, help="a trainer checkpoint; none: random initialisation")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-iter", type=int, default=200, help="L-BFGS iterations per probe")
    p.add_argument("--sets", default="global;fc;conv;conv,fc,global",
                   help="semicolon-separated feature sets, each a comma-separated list of keys")
    a = p.parse_args()
    train = load_dataset(a.dataset, "train", data_dir=a.data_dir, limit=a.limit)
    test = load_dataset(a.dataset, "test", data_dir=a.data_dir, limit=a.test_limit)
    mean, std = train.channel_stats()
    torch.manual_seed(a.seed)
    encoder = build_encoder(a.encoder, train.in_channels, train.image_size)
    if a.checkpoint:
        state = load_checkpoint(a.checkpoint)["model"]
        prefix = "objective.encoder."
        encoder.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    encoder.eval()

    def prep(x):
        return (as_float(x) - mean[:, None, None]) / std[:, None, None]

    def feats(data: ImageData) -> dict[str, torch.Tensor]:
        out: dict[str, list] = {}
        with torch.no_grad():
            for s in range(0, len(data), 512):
                for k, v in encoder(prep(data.images[s:s + 512])).items():
                    out.setdefault(k, []).append(v.flatten(1))
        return {k: torch.cat(v) for k, v in out.items()}

    t0 = time.perf_counter()
    tr, te = feats(train), feats(test)
    print(json.dumps({"extract_s": round(time.perf_counter() - t0, 1), "train": len(train), "test": len(test)}))
    for spec in a.sets.split(";"):
        keys = spec.split(",")
        t0 = time.perf_counter()
        acc = linear_probe(torch.cat([tr[k] for k in keys], 1), train.labels,
                           torch.cat([te[k] for k in keys], 1), test.labels, max_iter=a.max_iter)
        print(json.dumps({"features": spec, "dim": sum(tr[k].shape[1] for k in keys),
                          "checkpoint": a.checkpoint, "max_iter": a.max_iter, "test_acc": round(acc, 4),
                          "probe_s": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError) as exc:  # e.g. a checkpoint the safe loader refuses: one line, no traceback
        sys.exit(f"probe_features: error: {exc}")
