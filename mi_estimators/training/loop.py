"""The training loop every trainer plugin shares: :class:`Trainer`.

A plugin subclasses :class:`Trainer`, names its config (``config_class``, a subclass of
:class:`~mi_estimators.training.config.TrainConfig`) and implements ``build_objective``; the kit
does the rest (data, device, DDP, loop, checkpoints, probes, ``metrics.json``). See
:mod:`mi_estimators.training`.

The loop never waits for the device inside a step: losses, logged values and the online probe's
hits are summed on the device, and the host reads them every ``log_every`` steps and at the end
of each epoch (a *sync point*). There it checks that the loss stayed finite (a NaN/Inf loss
stops the run before anything is saved), updates the progress bar and reads the stop flag that
SIGINT/SIGTERM set (all-reduced under torchrun, so every rank stops at the same step).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mi_estimators.bounds.base import finite_checks
from mi_estimators.device import resolve_device
from mi_estimators.training import distributed as ddp
from mi_estimators.training.augment import Augment
from mi_estimators.training.checkpoint import (capture_rng, load_latest, previous_path, restore_rng,
                                               save_checkpoint)
from mi_estimators.training.config import TrainConfig
from mi_estimators.training.data import EpochBatches, ImageData, as_float, load_dataset
from mi_estimators.training.encoders import build_encoder, feature_shapes
from mi_estimators.training.probe import OnlineProbe, extract_features, knn_accuracy, linear_probe
from mi_estimators.training.rundir import OutDirError, RunLock, claim_run_dir, write_json

__all__ = ["Trainer", "TrainingDivergedError", "lr_lambda", "select_features", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"

Callback = Callable[["Trainer"], None]


class TrainingDivergedError(ValueError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


def lr_lambda(warmup: int, total: int, schedule: str) -> Callable[[int], float]:
    """Linear warm-up over ``warmup`` steps, then constant or cosine decay to 0 at ``total``."""

    def f(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant" or total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


# ------------------------------------------------------------------------------ the step


class _Step(nn.Module):
    """Objective + online probe in one module, so DDP syncs both and one state_dict holds both."""

    def __init__(self, objective: nn.Module, probe: OnlineProbe | None, probe_keys: list[str]) -> None:
        super().__init__()
        self.objective = objective
        self.probe = probe
        self.probe_keys = probe_keys

    def forward(self, inputs: Any, labels: Tensor) -> tuple[Tensor, dict, Tensor]:
        out = self.objective(inputs)
        if not isinstance(out, Mapping) or "loss" not in out:
            raise ValueError("a trainer's objective must return a dict with 'loss' (and optionally 'logs', "
                             "'features')")
        loss = out["loss"]
        logs = {"loss": loss.detach(), **out.get("logs", {})}
        correct = torch.zeros((), dtype=torch.long, device=labels.device)
        if self.probe is not None and "features" in out:
            ce, correct = self.probe(select_features(out["features"], self.probe_keys), labels)
            logs["probe_ce"] = ce.detach()
            loss = loss + ce
        return loss, logs, correct


def select_features(features: Tensor | Mapping[str, Tensor], keys: list[str]) -> Tensor:
    """Flatten and concatenate the named encoder outputs into ``(B, D)``."""
    if isinstance(features, Tensor):
        return features.flatten(1)
    missing = [k for k in keys if k not in features]
    if missing:
        raise ValueError(f"--probe-features {','.join(missing)}: the encoder returns only {sorted(features)}")
    return torch.cat([features[k].float().flatten(1) for k in keys], dim=1)


class _Meter:
    """One epoch's running sums, kept on the device until a sync point reads them.

    ``total`` sums the optimised loss (objective + online probe): it is finite exactly when every
    step's loss was. Logged values that an objective already gives as Python numbers are summed
    on the host.
    """

    def __init__(self, device: torch.device, saved: Mapping[str, Any] | None = None) -> None:
        saved = saved or {}
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.tensor(saved.get("correct", 0), dtype=torch.long, device=device)
        self.sums: dict[str, Tensor | float] = dict(saved.get("sums", {}))
        self.steps, self.seen = saved.get("steps", 0), saved.get("seen", 0)
        self.wall_s, self.seen_before = saved.get("wall_s", 0.0), self.seen  # (before a resume)
        self.t0 = time.perf_counter()

    def add(self, loss: Tensor, logs: Mapping[str, Any], correct: Tensor, images: int) -> None:
        self.total += loss.detach()
        for k, v in logs.items():
            v = v.detach().double() if isinstance(v, Tensor) else float(v)
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.correct += correct
        self.steps += 1
        self.seen += images

    def read(self) -> dict[str, Any]:
        """The host's copy (one sync): sums, counts and wall time of the epoch so far."""
        keys = list(self.sums)
        values = torch.stack([torch.as_tensor(self.sums[k], dtype=torch.float64, device=self.total.device)
                              for k in keys] + [self.correct.double()]).tolist()
        return {"sums": dict(zip(keys, values[:-1])), "correct": int(values[-1]), "steps": self.steps,
                "seen": self.seen, "wall_s": self.wall_s + time.perf_counter() - self.t0}


# ------------------------------------------------------------------------------ the trainer


class Trainer:
    """Base class of trainer plugins (registry kind ``trainers``).

    ``Trainer(config).fit(train=None, test=None, callbacks=())`` trains (or only evaluates) and
    returns the metrics; ``config`` is an instance of ``config_class`` (or a dict for
    :meth:`TrainConfig.from_dict`). Subclasses set ``config_class`` and implement
    ``build_objective(encoder, shapes)``: an ``nn.Module`` whose ``forward(inputs)`` returns
    ``{"loss": scalar, "logs": {name: scalar}, "features": encoder outputs for the online probe}``.
    ``make_inputs(x)`` turns a batch in [0, 1] into the objective's input (default: one view with
    the shared augmentation options, normalised; two augmented views for AMDIM).
    """

    config_class: ClassVar[type[TrainConfig]] = TrainConfig
    find_unused_parameters: ClassVar[bool] = False

    def __init__(self, config: TrainConfig | Mapping[str, Any]) -> None:
        if isinstance(config, Mapping):
            config = self.config_class.from_dict(config)
        if not isinstance(config, self.config_class):
            raise ValueError(f"{type(self).__name__} takes a {self.config_class.__name__}, got "
                             f"{type(config).__name__}; build one with {self.config_class.__name__}(...)")
        self.config = config
        self.device = resolve_device(config.device)
        self.mean: Tensor | None = None
        self.std: Tensor | None = None
        self.step = self.epoch = self.batch_in_epoch = 0
        self.history: list[dict] = []
        self.out = Path(config.out)
        self.dist = ddp.DistInfo()
        self._stop: int | None = None
        self._resumed_meter: dict | None = None
        self._synced_step = 0
        self._lock: RunLock | None = None
        self._read_from = self.checkpoint_path

    # --------------------------------------------------------------------- plugin interface
    def build_objective(self, encoder: nn.Module, shapes: dict[str, tuple[int, ...]]) -> nn.Module:
        raise NotImplementedError

    def make_inputs(self, x: Tensor) -> Any:
        """The objective's input from a batch ``x`` in [0, 1]: by default one view, augmented as the
        shared options say (``--translate --crop-scale --flip --colour --grayscale``; all off by
        default), then normalised. Two-view trainers override this (see :func:`two_views`)."""
        return self.normalise(self.augmentation()(x))

    def augmentation(self, *, flip: bool | None = None) -> Augment:
        """The :class:`Augment` of the shared augmentation options (``flip=False``: without the flip)."""
        return self.config.augmentation(flip=flip)

    @classmethod
    def parse(cls, argv: list[str]) -> TrainConfig:
        """The config of a command line, as ``mi-estimators train NAME ...`` builds it."""
        return cls.config_class.from_argv(argv, prog=f"mi-estimators train {cls.config_class.name}")

    @classmethod
    def run(cls, config: TrainConfig | Mapping[str, Any], *, train: ImageData | None = None,
            test: ImageData | None = None, callbacks: Iterable[Callback] = ()) -> dict:
        """``cls(config).fit(train, test, callbacks)``."""
        return cls(config).fit(train, test, callbacks=callbacks)

    # --------------------------------------------------------------------- kit services
    def normalise(self, x: Tensor) -> Tensor:
        """Standardise with the training set's channel statistics; channels_last on CUDA."""
        x = (x - self.mean.to(x.device)[:, None, None]) / self.std.to(x.device)[:, None, None]
        return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x

    def bound(self) -> nn.Module:
        """The ``--bound`` from the registry with the ``--bound-option`` values."""
        from mi_estimators import registry

        return registry.get(self.config.bound, **self.config.bound_kwargs())

    @property
    def autocast(self):
        precision = self.config.precision
        if not (precision == "bf16" or (precision == "auto" and self.device.type == "cuda")):
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT_NAME

    @property
    def _progress(self) -> bool:
        """Whether this process shows progress bars (rank 0, unless ``--no-progress``)."""
        return not self.config.no_progress and self.dist.is_main

    def log(self, msg: str) -> None:
        if self.dist.is_main:
            tqdm.write(msg, file=sys.stderr)

    # --------------------------------------------------------------------- the run
    def fit(self, train: ImageData | None = None, test: ImageData | None = None,
            callbacks: Iterable[Callback] = ()) -> dict:
        """Train (or only evaluate, ``eval_only``) and return the metrics (rank 0; ``{}`` elsewhere).

        ``train``/``test`` replace the configured dataset. The caller's random number generators
        are left as they were: the run seeds its own streams and restores the caller's at the end.
        """
        caller_rng = capture_rng()
        try:
            saved = self._start()
            self._load_data(train, test)
            self._build_model()
            self._build_optimiser()
            if saved is not None:
                self._restore(saved)
            self.model = self._distributed(self.module)
            if not self.config.eval_only and self.epoch < self.config.epochs:
                self._train(list(callbacks))
            return self._finish()
        finally:
            if self._lock is not None:
                self._lock.release()
            restore_rng(caller_rng)

    def _start(self) -> dict | None:
        """Before any work: the process group and device, ``--out`` checked writable and locked
        (rank 0), and, to resume or evaluate, the checkpoint (so that a bad one fails at once)."""
        if self.config.encoder is None:
            raise ValueError("--encoder is required (mi-estimators list encoders)")
        self.dist = ddp.init_distributed(self.device)
        if self.dist.enabled and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.dist.local_rank)
        if self.dist.is_main:
            self._lock = claim_run_dir(self.out)
            if self._lock.stale:
                self.log(f"warning: {self._lock.stale}")
        return self._read_checkpoint()

    def _read_checkpoint(self) -> dict | None:
        """The checkpoint to resume or evaluate: the latest, or the previous one if the latest is
        unreadable (a resumed run then moves the unreadable file aside to ``*.unreadable``)."""
        cfg, path = self.config, self.checkpoint_path
        exists = path.exists() or previous_path(path).exists()
        if not (cfg.resume or cfg.eval_only):
            if exists:
                raise ValueError(f"{path} exists: pass --resume to continue that run, or choose another --out")
            return None
        if not exists:
            raise FileNotFoundError(f"--resume/--eval-only: no checkpoint in {self.out} (the run was stopped "
                                    "before its first epoch ended?); run without --resume to start it there")
        state, self._read_from, warning = load_latest(path)
        if warning:
            self.log(f"warning: {warning}")
            if cfg.resume and self.dist.is_main and path.exists():  # else the next save keeps it as .prev
                os.replace(path, path.with_name(path.name + ".unreadable"))
        return state

    def _load_data(self, train: ImageData | None, test: ImageData | None) -> None:
        cfg = self.config

        def load(split: str, limit: int | None) -> ImageData:
            return load_dataset(cfg.dataset, split, data_dir=cfg.data_dir, limit=limit,
                                image_size=cfg.image_size, seed=cfg.seed)

        self.train_data = load("train", cfg.limit) if train is None else train
        self.test_data = load("test", cfg.test_limit) if test is None else test
        self.mean, self.std = self.train_data.channel_stats()

    def _build_model(self) -> None:
        """Encoder, objective and online probe in one module on the device (seeded by ``seed``)."""
        cfg, data = self.config, self.train_data
        torch.manual_seed(cfg.seed)
        encoder = build_encoder(cfg.encoder, data.in_channels, data.image_size, **cfg.encoder_kwargs())
        self.shapes = shapes = feature_shapes(encoder, data.in_channels, data.image_size)
        keys = cfg.probe_features or ",".join(getattr(encoder, "default_probe", ("global",)))
        self.probe_keys = [k.strip() for k in keys.split(",") if k.strip()]
        select_features({k: torch.zeros(1, *s) for k, s in shapes.items()}, self.probe_keys)  # validates the keys
        objective = self.build_objective(encoder, shapes)
        probe = None
        if cfg.online_probe:
            n_classes = max(data.num_classes, self.test_data.num_classes)
            probe = OnlineProbe(sum(math.prod(shapes[k]) for k in self.probe_keys), n_classes)
        self.encoder, self.module = encoder, _Step(objective, probe, self.probe_keys).to(self.device)
        if self.device.type == "cuda":
            self.module.to(memory_format=torch.channels_last)

    def _build_optimiser(self) -> None:
        """Adam, the epoch batches and the learning-rate schedule; then the per-rank random stream."""
        cfg = self.config
        params = [p for p in self.module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.batches = EpochBatches(len(self.train_data), cfg.batch_size, seed=cfg.seed, rank=self.dist.rank,
                                    world_size=self.dist.world_size) if cfg.epochs > 0 else None
        total = cfg.epochs * len(self.batches) if self.batches else 0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           lr_lambda(cfg.warmup_steps, total, cfg.schedule))
        torch.manual_seed(cfg.seed + 1 + self.dist.rank)  # augmentation differs per rank

    def _distributed(self, module: nn.Module) -> nn.Module:
        if not self.dist.enabled:
            return module
        return nn.parallel.DistributedDataParallel(
            module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=self.find_unused_parameters)

    def _finish(self) -> dict:
        """Probe, then ``metrics.json`` (``eval-metrics.json`` for ``--eval-only``) on rank 0."""
        metrics = self.evaluate() if self.dist.is_main else {}
        seen = sum(h["images"] for h in self.history if "images" in h)
        wall = sum(h["wall_s"] for h in self.history)
        metrics.update({"epochs": self.epoch, "steps": self.step, "train_wall_s": round(wall, 2),
                        "images_per_s": round(seen / wall, 1) if wall > 0 and seen else None,
                        "world_size": self.dist.world_size, "device": str(self.device),
                        "history": self.history, "config": self.config.to_dict()})
        if self.dist.is_main:
            name = "eval-metrics.json" if self.config.eval_only else "metrics.json"  # keep the run's record
            write_json(self.out / name, metrics)
        if self.dist.enabled:
            dist.barrier()
        return metrics if self.dist.is_main else {}  # only rank 0 reports

    # --------------------------------------------------------------------- the loop
    def _train(self, callbacks: list[Callback]) -> None:
        with self._signal_handlers():
            while self.epoch < self.config.epochs:
                self._train_epoch(callbacks)

    def _train_epoch(self, callbacks: list[Callback]) -> None:
        meter, self._resumed_meter = _Meter(self.device, self._resumed_meter), None
        bar = tqdm(total=len(self.batches), initial=self.batch_in_epoch, leave=False, file=sys.stderr,
                   desc=f"epoch {self.epoch + 1}/{self.config.epochs}", disable=not self._progress)
        with bar:
            for images, labels in self._loader():
                self._train_step(images, labels, meter)
                bar.update(1)
                if self._sync_due() and self._sync(meter, bar):
                    self._interrupted(meter)  # raises SystemExit
                for cb in callbacks:
                    cb(self)
        self._end_epoch(meter)

    def _loader(self) -> DataLoader:
        cfg = self.config
        return DataLoader(self.train_data, batch_sampler=self.batches.epoch(self.epoch, self.batch_in_epoch),
                          collate_fn=_as_batch, num_workers=cfg.num_workers, pin_memory=self.device.type == "cuda",
                          # its own generator: creating an iterator must not draw from the global
                          # RNG, or a mid-epoch resume would shift every random stream
                          generator=torch.Generator().manual_seed(cfg.seed + self.epoch))

    def _train_step(self, images: Tensor, labels: Tensor, meter: _Meter) -> None:
        """One optimiser step; nothing here waits for the device."""
        images = as_float(images.to(self.device, non_blocking=True))
        labels = labels.to(self.device, non_blocking=True)
        with self.autocast, finite_checks(False):  # the loss is checked at the sync points instead
            loss, logs, correct = self.model(self.make_inputs(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.module.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.batch_in_epoch += 1
        meter.add(loss, logs, correct, len(images) * self.dist.world_size)

    def _sync_due(self) -> bool:
        """Every ``log_every`` steps, at the epoch's end, and (one process) as soon as a signal came."""
        return (self.step % self.config.log_every == 0 or self.batch_in_epoch == len(self.batches)
                or (self._stop is not None and not self.dist.enabled))

    def _sync(self, meter: _Meter, bar) -> bool:
        """The host reads the device: raise if the loss diverged; True if a rank was asked to stop."""
        stop = torch.tensor(float(self._stop is not None), dtype=torch.float64, device=self.device)
        status = torch.stack([(~torch.isfinite(meter.total)).double(), stop, meter.sums["loss"]])
        if self.dist.enabled:
            dist.all_reduce(status)
        bad, stopping, loss_sum = status.tolist()
        if bad > 0:
            total = float(meter.total)
            self._diverged(str(total) if not math.isfinite(total) else "not finite on another rank")
        self._synced_step = self.step
        rate = (meter.seen - meter.seen_before) / max(time.perf_counter() - meter.t0, 1e-9)
        bar.set_postfix(loss=f"{loss_sum / self.dist.world_size / meter.steps:.4f}", img_s=f"{rate:.0f}")
        return stopping > 0

    def _end_epoch(self, meter: _Meter) -> None:
        state = meter.read()
        n = max(state["steps"], 1)
        record = {"epoch": self.epoch + 1, "steps": self.step, "wall_s": round(state["wall_s"], 2),
                  "images": state["seen"],
                  "images_per_s": round(state["seen"] / state["wall_s"], 1) if state["wall_s"] > 0 else None}
        record.update({k: v / n for k, v in state["sums"].items()})
        if self.module.probe is not None:
            record["online_probe_train_acc"] = state["correct"] / max(state["seen"] / self.dist.world_size, 1)
        self.history.append(record)
        self.log(json.dumps(record))
        self.epoch += 1
        self.batch_in_epoch = 0
        self._save(self.checkpoint_path)

    def _interrupted(self, meter: _Meter) -> None:
        """A signal: an exact mid-epoch checkpoint (with the epoch's sums so far), then exit."""
        self._save(self.checkpoint_path, meter=meter.read())
        self.log(f"interrupted {self._position()}; checkpoint written to {self.checkpoint_path}; "
                 "continue with --resume")
        raise SystemExit(128 + int(self._stop or signal.SIGTERM))

    @contextlib.contextmanager
    def _signal_handlers(self):
        """SIGINT/SIGTERM set the stop flag (a second one stops at once); restored afterwards."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _position(self) -> str:
        """Where the run stands, numbered the same way in every message (epochs from 1)."""
        total = self.config.epochs
        if self.batch_in_epoch == 0:
            return f"after epoch {self.epoch} of {total} (step {self.step})"
        return (f"in epoch {self.epoch + 1} of {total}, after step {self.step} (batch {self.batch_in_epoch} "
                f"of {len(self.batches)})")

    def _on_signal(self, signum, frame) -> None:
        if self._stop is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self._stop = signum

    def _diverged(self, value: str) -> None:
        path = self.checkpoint_path
        where = (f"the last good checkpoint ({path}, end of epoch {self.epoch}) is kept"
                 if path.exists() else "no checkpoint was written yet")
        raise TrainingDivergedError(
            f"the training loss is {value} at epoch {self.epoch + 1}, between steps {self._synced_step + 1} "
            f"and {self.step}; stopped, and {where}. Lower --lr (now {self.config.lr}), keep --grad-clip on, "
            "or pick a bound with clipping (--bound smile, --bound-option clip=...)")

    # --------------------------------------------------------------------- checkpoints
    def _save(self, path: Path, meter: dict | None = None) -> None:
        rng = capture_rng()
        if self.dist.enabled:
            all_rng = [None] * self.dist.world_size
            dist.all_gather_object(all_rng, rng)
        else:
            all_rng = [rng]
        if self.dist.is_main:
            state = {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "scheduler": self.scheduler.state_dict(), "rng": all_rng, "step": self.step,
                     "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "history": self.history,
                     "meter": meter, "world_size": self.dist.world_size, "config": self.config.to_dict()}
            try:
                save_checkpoint(state, path)
            except OSError as exc:
                raise OutDirError(f"could not write the checkpoint {path} ({exc.strerror or exc}); the earlier "
                                  "checkpoints are intact: free some disk space (or choose a writable --out) "
                                  "and continue with --resume") from exc
        if self.dist.enabled:
            dist.barrier()  # every rank goes on (or exits) with the checkpoint on disk

    def _restore(self, state: dict) -> None:
        """Weights (and to resume: optimiser, schedule, position, random streams) of a checkpoint."""
        path = self._read_from
        self.module.load_state_dict(self._model_state(path, state))
        self.step, self.epoch, self.history = state["step"], state["epoch"], state["history"]
        if self.config.eval_only:
            self.log(f"loaded {path}: {self.epoch} epochs trained ({self.step} steps)")
            return
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.batch_in_epoch, self._resumed_meter = state["batch_in_epoch"], state.get("meter")
        self._synced_step = self.step
        rng = state["rng"]
        if len(rng) == self.dist.world_size:
            restore_rng(rng[self.dist.rank])
        else:
            self.log(f"checkpoint written by {len(rng)} processes, resumed on {self.dist.world_size}: "
                     "random streams are reseeded, the data order is kept")
        self.log(f"resumed from {path} {self._position()}")

    def _model_state(self, path: Path, state: dict) -> dict:
        """The checkpoint's weights; for ``--eval-only`` without an online probe of other features."""
        model, own = state["model"], self.module.state_dict()
        stale = [k for k in model if k.startswith("probe.") and (k not in own or own[k].shape != model[k].shape)]
        if not stale and any(k.startswith("probe.") for k in own) == any(k.startswith("probe.") for k in model):
            return model
        # the online probe was trained on other --probe-features (or was off): fine for
        # --eval-only, which only needs the objective; a resumed run would mix optimiser states
        if not self.config.eval_only:
            raise ValueError(f"{path} was trained with other --probe-features / --online-probe "
                             f"settings ({state['config'].get('probe_features')!r}); resume with the same "
                             "ones, or use --eval-only to probe other features")
        model = {k: v for k, v in model.items() if not k.startswith("probe.")}
        model.update({k: v for k, v in own.items() if k.startswith("probe.")})
        return model

    # --------------------------------------------------------------------- evaluation
    def features(self, x: Tensor) -> Tensor:
        """The probe's features ``(B, D)`` of a normalised batch (encoder in eval mode)."""
        return select_features(self.encoder(x), self.probe_keys)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Linear probe (and kNN with ``--knn K``) on frozen features: train split -> test split."""
        cfg, t0 = self.config, time.perf_counter()
        train = self.train_data.subset(cfg.probe_limit)
        tr, te = self._probe_features(train), self._probe_features(self.test_data)
        acc = linear_probe(tr, train.labels, te, self.test_data.labels, device=self.device, max_iter=cfg.probe_iters,
                           progress=self._progress)
        out = {"linear_probe_test_acc": acc, "probe_features": ",".join(self.probe_keys), "probe_dim": tr.shape[1],
               "probe_train_images": len(train), "probe_test_images": len(te)}
        if cfg.knn > 0:
            out[f"knn{cfg.knn}_test_acc"] = knn_accuracy(tr, train.labels, te, self.test_data.labels, k=cfg.knn)
        out["probe_wall_s"] = round(time.perf_counter() - t0, 2)
        self.log(f"linear probe ({out['probe_features']}, {out['probe_dim']}-d): test accuracy {acc:.4f}")
        return out

    def _probe_features(self, data: ImageData) -> Tensor:
        was = self.encoder.training
        self.encoder.eval()
        try:
            with self.autocast:
                return extract_features(self.features, data.images, device=self.device, progress=self._progress,
                                        preprocess=lambda x: self.normalise(as_float(x)))
        finally:
            self.encoder.train(was)


def _as_batch(batch):
    return batch
