"""The training loop every trainer plugin shares: :class:`Trainer`.

A plugin subclasses :class:`Trainer`, names its config (``config_class``, a subclass of
:class:`~mi_estimators.training.config.TrainConfig`) and implements ``build_objective``; the kit
does the rest (data, device, DDP, loop, checkpoints, probes, ``metrics.json``). See
:mod:`mi_estimators.training`.

:meth:`Trainer.fit` reads top to bottom: the process group, ``--out`` locked, the checkpoint to
resume read (so that a bad one fails before any work), the run built in one place
(:func:`~mi_estimators.training.build.build_run`), the checkpoint restored, the loop, the final
probe and ``metrics.json``. The loop (:meth:`Trainer._train`) is one function too; beside it sit
small collaborators: :class:`~mi_estimators.training.meter.Meter` (an epoch's sums),
:class:`~mi_estimators.training.resume.RunCheckpoints` (reading, writing, restoring checkpoints)
and :class:`~mi_estimators.training.interrupt.StopFlag` (SIGINT/SIGTERM).

The loop never waits for the device inside a step: losses, logged values and the online probe's
hits are summed on the device, and the host reads them every ``log_every`` steps and at the end
of each epoch (a *sync point*). There it checks that the loss stayed finite (a NaN/Inf loss
stops the run before anything is saved), updates the progress bar and reads the stop flag that
SIGINT/SIGTERM set (all-reduced under torchrun, so every rank stops at the same step).

Progress bars go to stderr on rank 0 when it is a terminal (``--progress``: always;
``--no-progress``: never), so that a log file or a pipe gets the epochs' lines, not the bars.
"""

from __future__ import annotations

import contextlib
import json
import sys
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
from mi_estimators.training.build import BuiltRun, build_run, lr_lambda, select_features
from mi_estimators.training.checkpoint import capture_rng, restore_rng
from mi_estimators.training.config import TrainConfig
from mi_estimators.training.data import ImageData, as_float, load_dataset
from mi_estimators.training.evaluation import evaluate_probes
from mi_estimators.training.interrupt import StopFlag
from mi_estimators.training.meter import Meter
from mi_estimators.training.resume import RunCheckpoints
from mi_estimators.training.rundir import claim_run_dir, write_json

__all__ = ["Trainer", "TrainingDivergedError", "lr_lambda", "select_features", "progress_wanted", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"

Callback = Callable[["Trainer"], None]


class TrainingDivergedError(ValueError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


class Trainer:
    """Base class of trainer plugins (registry kind ``trainers``).

    ``Trainer(config).fit(train=None, test=None, callbacks=())`` trains (or only evaluates) and
    returns the metrics; ``config`` is an instance of ``config_class`` (or a dict for
    :meth:`TrainConfig.from_dict`). Subclasses set ``config_class`` and implement
    ``build_objective(encoder, shapes)``: an ``nn.Module`` whose ``forward(inputs)`` returns
    ``{"loss": scalar, "logs": {name: scalar}, "features": encoder outputs for the online probe}``.
    ``make_inputs(x)`` turns a batch in [0, 1] into the objective's input (default: one view with
    the shared augmentation options, normalised; two augmented views for AMDIM). A callback is
    called with the trainer after every step (``trainer.step``, ``trainer.epoch``, ...).
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
        self.dist = ddp.DistInfo()  # the process group's, once fit() has joined it
        self.out = Path(config.out)
        self.built: BuiltRun | None = None  # model, optimiser, schedule and data: made by fit()
        self.mean: Tensor | None = None  # the training set's channel statistics (normalise)
        self.std: Tensor | None = None
        self.step = self.epoch = self.batch_in_epoch = 0  # the position (epochs counted from 0)
        self.history: list[dict] = []  # one record per finished epoch
        self.stop = StopFlag()  # set by SIGINT/SIGTERM during the loop
        self.checkpoints = RunCheckpoints(self.out / CHECKPOINT_NAME, self.log)

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
        return self.checkpoints.path

    @property
    def progress(self) -> bool:
        """Whether this process shows progress bars: rank 0, and ``--progress``, or by default
        (neither ``--progress`` nor ``--no-progress``) when stderr is a terminal."""
        return self.dist.is_main and progress_wanted(self.config)

    @property
    def _stop(self) -> int | None:
        """The stop flag's signal number (a callback may set it to stop at the next sync point)."""
        return self.stop.signum

    @_stop.setter
    def _stop(self, signum: int | None) -> None:
        self.stop.signum = signum

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
        cfg = self.config
        if cfg.encoder is None:
            raise ValueError("--encoder is required (mi-estimators list encoders)")
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(restore_rng, capture_rng())
            self.dist = ddp.init_distributed(self.device)
            if self.dist.enabled and self.device.type == "cuda" and self.device.index is None:
                self.device = torch.device("cuda", self.dist.local_rank)
            if self.dist.is_main:  # before any work: --out writable, and this run's alone
                lock = cleanup.enter_context(claim_run_dir(self.out))
                if lock.stale:
                    self.log(f"warning: {lock.stale}")
            saved = self.checkpoints.read(self.dist, resume=cfg.resume, eval_only=cfg.eval_only)
            data = (_data(cfg, "train", cfg.limit, train), _data(cfg, "test", cfg.test_limit, test))
            self.mean, self.std = data[0].channel_stats()
            self.built = build_run(cfg, data, self.build_objective, self.device, self.dist,
                                   self.find_unused_parameters)
            meter = None  # the epoch's sums so far, from a mid-epoch checkpoint
            if saved is not None:
                restored = self.checkpoints.restore(saved, self.built, self.dist, eval_only=cfg.eval_only)
                self.step, self.epoch, self.batch_in_epoch = restored.step, restored.epoch, restored.batch_in_epoch
                self.history, meter = restored.history, restored.meter
                if not cfg.eval_only:
                    self.log(f"resumed from {self.checkpoints.read_from} {self._position()}")
            if not cfg.eval_only and self.epoch < cfg.epochs:
                self._train(list(callbacks), meter)
            return self._finish()

    def _train(self, callbacks: list[Callback], resumed: dict | None) -> None:
        """The loop: epochs of steps; the host reads the device at sync points; a checkpoint at the
        end of every epoch, and on SIGINT/SIGTERM an exact mid-epoch one before exiting."""
        cfg, run, synced = self.config, self.built, self.step
        with self.stop.catching():
            while self.epoch < cfg.epochs:
                meter, resumed = Meter(self.device, self.dist, resumed), None
                loader = DataLoader(run.train_data, batch_sampler=run.batches.epoch(self.epoch, self.batch_in_epoch),
                                    collate_fn=_as_batch, num_workers=cfg.num_workers,
                                    pin_memory=self.device.type == "cuda",
                                    # its own generator: creating an iterator must not draw from the
                                    # global RNG, or a mid-epoch resume would shift every random stream
                                    generator=torch.Generator().manual_seed(cfg.seed + self.epoch))
                bar = tqdm(total=len(run.batches), initial=self.batch_in_epoch, leave=False, file=sys.stderr,
                           desc=f"epoch {self.epoch + 1}/{cfg.epochs}", disable=not self.progress)
                with bar:
                    for images, labels in loader:
                        self._train_step(images, labels, meter)
                        bar.update(1)
                        # a sync point every log_every steps, at the epoch's end, and (one process)
                        # as soon as a signal came
                        if (self.step % cfg.log_every == 0 or self.batch_in_epoch == len(run.batches)
                                or (self.stop.raised and not self.dist.enabled)):
                            sync = meter.sync(stop=self.stop.raised)
                            if sync.diverged:
                                raise self._diverged(sync.diverged, synced)
                            synced = self.step
                            bar.set_postfix(loss=f"{sync.loss:.4f}", img_s=f"{sync.images_per_s:.0f}")
                            if sync.stopping:  # exactly here: the epoch's sums so far go into the checkpoint
                                self.checkpoints.save(self._state(meter.read()), self.dist)
                                self.log(f"interrupted {self._position()}; checkpoint written to "
                                         f"{self.checkpoint_path}; continue with --resume")
                                raise SystemExit(self.stop.exit_code)
                        for cb in callbacks:
                            cb(self)
                record = meter.record(self.epoch + 1, self.step, online_probe=run.module.probe is not None)
                self.history.append(record)
                self.log(json.dumps(record))
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                self.checkpoints.save(self._state(), self.dist)

    def _train_step(self, images: Tensor, labels: Tensor, meter: Meter) -> None:
        """One optimiser step; nothing here waits for the device."""
        run = self.built
        images = as_float(images.to(self.device, non_blocking=True))
        labels = labels.to(self.device, non_blocking=True)
        with self.autocast, finite_checks(False):  # the loss is checked at the sync points instead
            loss, logs, correct = run.model(self.make_inputs(images), labels)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(run.module.parameters(), self.config.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        self.step += 1
        self.batch_in_epoch += 1
        meter.add(loss, logs, correct, len(images))

    def _state(self, meter: dict | None = None) -> dict:
        """What a checkpoint holds of this run (:class:`RunCheckpoints` adds the random states)."""
        run = self.built
        return {"model": run.module.state_dict(), "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(), "step": self.step, "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch, "history": self.history, "meter": meter,
                "config": self.config.to_dict()}

    def _position(self) -> str:
        """Where the run stands, numbered the same way in every message (epochs from 1)."""
        total = self.config.epochs
        if self.batch_in_epoch == 0:
            return f"after epoch {self.epoch} of {total} (step {self.step})"
        return (f"in epoch {self.epoch + 1} of {total}, after step {self.step} (batch {self.batch_in_epoch} "
                f"of {len(self.built.batches)})")

    def _diverged(self, value: str, synced: int) -> TrainingDivergedError:
        return TrainingDivergedError(
            f"the training loss is {value} at epoch {self.epoch + 1}, between steps {synced + 1} "
            f"and {self.step}; stopped, and {self.checkpoints.last_good(self.epoch)}. Lower --lr (now "
            f"{self.config.lr}), keep --grad-clip on, or pick a bound with clipping (--bound smile, "
            "--bound-option clip=...)")

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

    # --------------------------------------------------------------------- evaluation
    def features(self, x: Tensor) -> Tensor:
        """The probe's features ``(B, D)`` of a normalised batch (encoder in eval mode)."""
        return select_features(self.built.encoder(x), self.built.probe_keys)

    def evaluate(self) -> dict:
        """Linear probe (and kNN with ``--knn K``) on frozen features: train split -> test split
        (:func:`~mi_estimators.training.evaluation.evaluate_probes`)."""
        out = evaluate_probes(self.built, self.config, features=self.features, normalise=self.normalise,
                              device=self.device, autocast=self.autocast, progress=self.progress)
        self.log(f"linear probe ({out['probe_features']}, {out['probe_dim']}-d): test accuracy "
                 f"{out['linear_probe_test_acc']:.4f}")
        return out


def progress_wanted(config: TrainConfig) -> bool:
    """``--progress``: bars; ``--no-progress``: none; neither: bars when stderr is a terminal (not
    when it is a file or a pipe), the convention of command-line tools."""
    if config.progress is not None:
        return config.progress
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stderr (pythonw), or a closed one
        return False


def _data(config: TrainConfig, split: str, limit: int | None, given: ImageData | None) -> ImageData:
    """``given``, else the configured dataset's ``split``."""
    if given is not None:
        return given
    return load_dataset(config.dataset, split, data_dir=config.data_dir, limit=limit, image_size=config.image_size,
                        seed=config.seed)


def _as_batch(batch):
    return batch
