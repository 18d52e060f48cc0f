"""Linear probe of a trained checkpoint on any of the encoder's features.

``--eval-only`` of the trainer kit probes the features the run was trained with (its online probe's
shape is tied to them); this reads ``OUT/checkpoint.pt`` and probes the encoder on other features,
e.g. f1 and f5 of the same AMDIM run, with the kit's own feature extraction and linear probe::

    python -m mi_estimators_amdim.probe_checkpoint --out runs/amdim --probe-features global

Data, limits and normalisation are those of the run (read from the checkpoint's config). It works
for any kit-trained checkpoint whose encoder lives under ``objective.encoder``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from mi_estimators.training import (as_float, build_encoder, extract_features, linear_probe, load_checkpoint,
                                    load_dataset, parse_options, select_features)
from mi_estimators.training.loop import CHECKPOINT_NAME

PREFIX = "objective.encoder."


def probe_checkpoint(out: str | Path, probe_features: str, *, device: str = "cpu") -> dict:
    """Linear-probe test accuracy of the encoder in ``out/checkpoint.pt`` on ``probe_features``."""
    state = load_checkpoint(Path(out) / CHECKPOINT_NAME)
    cfg = state["config"]
    train = load_dataset(cfg["dataset"], "train", data_dir=cfg["data_dir"], limit=cfg["limit"],
                         image_size=cfg["image_size"], seed=cfg["seed"])
    test = load_dataset(cfg["dataset"], "test", data_dir=cfg["data_dir"], limit=cfg["test_limit"],
                        image_size=cfg["image_size"], seed=cfg["seed"])
    encoder = build_encoder(cfg["encoder"], train.in_channels, train.image_size,
                            **parse_options(cfg["encoder_option"]))
    weights = {k[len(PREFIX):]: v for k, v in state["model"].items() if k.startswith(PREFIX)}
    if not weights:
        raise ValueError(f"{out}: the checkpoint holds no '{PREFIX}*' weights")
    encoder.load_state_dict(weights)
    encoder.to(device).eval()
    keys = [k.strip() for k in probe_features.split(",") if k.strip()]
    mean, std = train.channel_stats()
    mean, std = mean.to(device)[:, None, None], std.to(device)[:, None, None]

    def features(x):
        return select_features(encoder(x), keys)

    def prep(x):
        return (as_float(x) - mean) / std

    t0 = time.perf_counter()
    tr = extract_features(features, train.subset(cfg.get("probe_limit")).images, device=device, preprocess=prep)
    te = extract_features(features, test.images, device=device, preprocess=prep)
    labels = train.subset(cfg.get("probe_limit")).labels
    acc = linear_probe(tr, labels, te, test.labels, device=device)
    return {"linear_probe_test_acc": acc, "probe_features": ",".join(keys), "probe_dim": tr.shape[1],
            "probe_train_images": len(tr), "probe_test_images": len(te), "epochs": state["epoch"],
            "probe_wall_s": round(time.perf_counter() - t0, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="the run's directory (with checkpoint.pt)")
    p.add_argument("--probe-features", default="global", help="comma-separated encoder outputs")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    with torch.no_grad():
        print(json.dumps(probe_checkpoint(a.out, a.probe_features, device=a.device), indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
