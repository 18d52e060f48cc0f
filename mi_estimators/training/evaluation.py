"""The final evaluation of a run: probes on the encoder's frozen features, :func:`evaluate_probes`.

The features of the (``--probe-limit``) train split and of the test split are extracted with the
encoder in eval mode; a linear probe (softmax regression, :func:`~mi_estimators.training.probe.
linear_probe`) is fitted on the train split and scored on the test split, and with ``--knn K`` a
cosine k-nearest-neighbour vote is scored too (:func:`~mi_estimators.training.probe.knn_accuracy`).
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable

import torch
from torch import Tensor

from mi_estimators.training.build import BuiltRun
from mi_estimators.training.config import TrainConfig
from mi_estimators.training.data import ImageData, as_float
from mi_estimators.training.probe import extract_features, knn_accuracy, linear_probe

__all__ = ["evaluate_probes"]


@torch.no_grad()
def evaluate_probes(run: BuiltRun, config: TrainConfig, *, features: Callable[[Tensor], Tensor],
                    normalise: Callable[[Tensor], Tensor], device: torch.device,
                    autocast: contextlib.AbstractContextManager, progress: bool = False) -> dict:
    """The probes' metrics: ``features(x)`` gives the ``(B, D)`` probe features of a batch that
    ``normalise`` standardised; extraction runs under ``autocast`` with the encoder in eval mode
    (its mode is restored afterwards)."""
    t0 = time.perf_counter()
    train, test = run.train_data.subset(config.probe_limit), run.test_data

    def frozen(data: ImageData) -> Tensor:
        was = run.encoder.training
        run.encoder.eval()
        try:
            with autocast:
                return extract_features(features, data.images, device=device, progress=progress,
                                        preprocess=lambda x: normalise(as_float(x)))
        finally:
            run.encoder.train(was)

    tr, te = frozen(train), frozen(test)
    acc = linear_probe(tr, train.labels, te, test.labels, device=device, max_iter=config.probe_iters,
                       progress=progress)
    out = {"linear_probe_test_acc": acc, "probe_features": ",".join(run.probe_keys), "probe_dim": tr.shape[1],
           "probe_train_images": len(train), "probe_test_images": len(te)}
    if config.knn > 0:
        out[f"knn{config.knn}_test_acc"] = knn_accuracy(tr, train.labels, te, test.labels, k=config.knn)
    out["probe_wall_s"] = round(time.perf_counter() - t0, 2)
    return out
