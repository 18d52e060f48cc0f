"""The training loop every trainer plugin shares: :class:`Trainer` and :func:`add_common_arguments`.

A plugin subclasses :class:`Trainer`, sets ``defaults`` for the shared options, adds its own
options in ``add_own_arguments`` and implements ``build_objective``; the kit does the rest (data,
device, DDP, loop, checkpoints, probes, ``metrics.json``). See :mod:`mi_estimators.training`.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mi_estimators.device import resolve_device
from mi_estimators.training import distributed as ddp
from mi_estimators.training.augment import Augment
from mi_estimators.training.checkpoint import capture_rng, load_checkpoint, restore_rng, save_atomic
from mi_estimators.training.data import DATASETS, EpochBatches, ImageData, as_float, load_dataset
from mi_estimators.training.encoders import build_encoder, feature_shapes
from mi_estimators.training.probe import OnlineProbe, extract_features, knn_accuracy, linear_probe

__all__ = ["Trainer", "TrainingDivergedError", "add_common_arguments", "parse_options",
           "lr_lambda", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"


class TrainingDivergedError(ValueError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


# ------------------------------------------------------------------------------ options


def parse_options(pairs: Iterable[str] | None) -> dict[str, Any]:
    """``["clip=20", "name=foo"]`` -> ``{"clip": 20, "name": "foo"}`` (values read as Python literals)."""
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"options are KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def add_common_arguments(parser: argparse.ArgumentParser, **defaults: Any) -> argparse.ArgumentParser:
    """The options every trainer shares; ``defaults`` overrides any of their defaults by dest name
    (e.g. ``bound="jsd", encoder="dim", lr=1e-4``)."""
    d = {"dataset": "fashion-mnist", "epochs": 10, "batch_size": 64, "lr": 1e-3, "bound": "infonce",
         "encoder": None, "probe_features": None, "translate": 0, "flip": False, "colour": 0.0,
         "grayscale": 0.0, "crop_scale": None}
    unknown = set(defaults) - set(d) - {"weight_decay", "warmup_steps", "grad_clip", "seed", "knn"}
    if unknown:
        raise ValueError(f"add_common_arguments: unknown defaults {sorted(unknown)}")
    d.update(defaults)
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default=d["dataset"], choices=DATASETS,
                   help="fashion-mnist (Debian: apt-get install dataset-fashion-mnist), mnist/idx (IDX files "
                        "in --data-dir), digits (scikit-learn's 8x8), folder (--data-dir ROOT/<class>/*.png)")
    g.add_argument("--data-dir", default=None, help="where the dataset lives (default: the Debian path)")
    g.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    g.add_argument("--test-limit", type=int, default=None, help="use only the first N test images")
    g.add_argument("--image-size", type=int, default=None, help="resize images to this side (e.g. 32 for digits)")
    g.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    g = parser.add_argument_group("augmentation (on the device, per batch)")
    g.add_argument("--translate", type=int, default=d["translate"], help="random shift in pixels, reflection padding")
    g.add_argument("--crop-scale", type=float, nargs=2, default=d["crop_scale"], metavar=("LO", "HI"),
                   help="random resized crop of this area fraction")
    g.add_argument("--flip", action=argparse.BooleanOptionalAction, default=d["flip"], help="random horizontal flip")
    g.add_argument("--colour", type=float, default=d["colour"], help="colour jitter strength (3-channel images)")
    g.add_argument("--grayscale", type=float, default=d["grayscale"], help="random grayscale probability (colour)")
    g = parser.add_argument_group("model and objective")
    g.add_argument("--encoder", default=d["encoder"], help="registered encoder (mi-estimators list encoders)")
    g.add_argument("--encoder-option", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword option for the encoder factory (repeatable)")
    g.add_argument("--bound", default=d["bound"], help="registered MI bound (mi-estimators list bounds)")
    g.add_argument("--bound-option", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword option for the bound (repeatable), e.g. clip=20")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=d["epochs"], help="0 probes the encoder at initialisation")
    g.add_argument("--batch-size", type=int, default=d["batch_size"], help="per process (global = N x this)")
    g.add_argument("--lr", type=float, default=d["lr"], help="peak Adam learning rate")
    g.add_argument("--weight-decay", type=float, default=defaults.get("weight_decay", 0.0))
    g.add_argument("--warmup-steps", type=int, default=defaults.get("warmup_steps", 100),
                   help="linear learning-rate warm-up")
    g.add_argument("--schedule", default="cosine", choices=("cosine", "constant"), help="after warm-up")
    g.add_argument("--grad-clip", type=float, default=defaults.get("grad_clip", 10.0),
                   help="clip the gradient norm to this (0: off)")
    g.add_argument("--seed", type=int, default=defaults.get("seed", 0))
    g = parser.add_argument_group("run")
    g.add_argument("--out", default="runs/" + (parser.prog.split()[-1] if parser.prog else "run"),
                   help="directory for checkpoint.pt and metrics.json")
    g.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    g.add_argument("--eval-only", action="store_true", help="probe the checkpoint in --out, no training")
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    g.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto: bf16 autocast on CUDA, fp32 on the CPU")
    g.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    g = parser.add_argument_group("evaluation")
    g.add_argument("--probe-features", default=d["probe_features"],
                   help="comma-separated encoder outputs the probes read (default: the encoder's default_probe, "
                        "else 'global')")
    g.add_argument("--probe-limit", type=int, default=None, help="train images for the final linear probe")
    g.add_argument("--probe-iters", type=int, default=200, help="L-BFGS iterations of the linear probe")
    g.add_argument("--online-probe", action=argparse.BooleanOptionalAction, default=True,
                   help="linear classifier on detached features, trained alongside")
    g.add_argument("--knn", type=int, default=defaults.get("knn", 0), help="also report k-NN accuracy with this k")
    return parser


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
        correct = torch.zeros((), device=labels.device)
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


# ------------------------------------------------------------------------------ the trainer


class Trainer:
    """Base class of trainer plugins (registry kind ``trainers``).

    The CLI calls ``Trainer.add_arguments(parser)`` and ``Trainer.run(args) -> dict``. Subclasses set
    ``defaults`` (shared-option defaults), may add ``add_own_arguments`` and must implement
    ``build_objective(encoder, shapes)``: an ``nn.Module`` whose ``forward(inputs)`` returns
    ``{"loss": scalar, "logs": {name: scalar}, "features": encoder outputs for the online probe}``.
    ``make_inputs(x)`` turns a batch in [0, 1] into the objective's input (default: one view with
    the shared augmentation options, normalised; two augmented views for AMDIM).
    """

    defaults: ClassVar[dict[str, Any]] = {}
    find_unused_parameters: ClassVar[bool] = False

    # --------------------------------------------------------------------- plugin interface
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_common_arguments(parser, **cls.defaults)
        cls.add_own_arguments(parser.add_argument_group(f"{cls.__name__} options"))

    @classmethod
    def add_own_arguments(cls, parser) -> None:
        """Add the trainer's own options (an argparse group)."""

    @classmethod
    def run(cls, args: argparse.Namespace, *, train: ImageData | None = None, test: ImageData | None = None,
            callbacks: Iterable[Callable[["Trainer"], None]] = ()) -> dict:
        """Train (or only evaluate) and return the metrics; ``train``/``test`` replace ``--dataset``."""
        return cls(args).fit(train, test, callbacks=callbacks)

    @classmethod
    def parse(cls, argv: list[str]) -> argparse.Namespace:
        """Parse a command line the way ``mi-estimators train NAME`` does (for scripts and tests)."""
        parser = argparse.ArgumentParser(prog="mi-estimators train")
        cls.add_arguments(parser)
        return parser.parse_args(argv)

    def build_objective(self, encoder: nn.Module, shapes: dict[str, tuple[int, ...]]) -> nn.Module:
        raise NotImplementedError

    def make_inputs(self, x: Tensor) -> Any:
        """The objective's input from a batch ``x`` in [0, 1]: by default one view, augmented as the
        shared options say (``--translate --crop-scale --flip --colour --grayscale``; all off by
        default), then normalised. Two-view trainers override this (see :func:`two_views`)."""
        return self.normalise(self.augmentation()(x))

    def augmentation(self) -> Augment:
        """The :class:`Augment` the shared augmentation options describe."""
        a = self.args
        return Augment(translate=a.translate, crop_scale=tuple(a.crop_scale) if a.crop_scale else None,
                       flip=a.flip, colour=a.colour, grayscale=a.grayscale)

    # --------------------------------------------------------------------- kit services
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = resolve_device(args.device)
        self.mean: Tensor | None = None
        self.std: Tensor | None = None
        self.step = self.epoch = self.batch_in_epoch = 0
        self.history: list[dict] = []
        self.out = Path(args.out)
        self._stop: int | None = None
        self.dist = ddp.DistInfo()

    def normalise(self, x: Tensor) -> Tensor:
        """Standardise with the training set's channel statistics; channels_last on CUDA."""
        x = (x - self.mean.to(x.device)[:, None, None]) / self.std.to(x.device)[:, None, None]
        return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x

    def bound(self) -> nn.Module:
        """The ``--bound`` from the registry with the ``--bound-option`` values."""
        from mi_estimators import registry

        return registry.get(self.args.bound, **parse_options(self.args.bound_option))

    @property
    def autocast(self):
        use_bf16 = self.args.precision == "bf16" or (self.args.precision == "auto" and self.device.type == "cuda")
        if not use_bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def log(self, msg: str) -> None:
        if self.dist.is_main:
            tqdm.write(msg, file=sys.stderr)

    # --------------------------------------------------------------------- the run
    def fit(self, train: ImageData | None = None, test: ImageData | None = None,
            callbacks: Iterable[Callable[["Trainer"], None]] = ()) -> dict:
        a = self.args
        self.dist = ddp.init_distributed(self.device)
        if self.dist.enabled and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.dist.local_rank)
        ckpt_path = self.out / CHECKPOINT_NAME
        if ckpt_path.exists() and not (a.resume or a.eval_only):
            raise ValueError(f"{ckpt_path} exists: pass --resume to continue that run, or choose another --out")
        if (a.resume or a.eval_only) and not ckpt_path.exists():
            raise FileNotFoundError(f"--resume/--eval-only: no checkpoint at {ckpt_path}")

        if train is None:
            train = load_dataset(a.dataset, "train", data_dir=a.data_dir, limit=a.limit,
                                 image_size=a.image_size, seed=a.seed)
        if test is None:
            test = load_dataset(a.dataset, "test", data_dir=a.data_dir, limit=a.test_limit,
                                image_size=a.image_size, seed=a.seed)
        self.train_data, self.test_data = train, test
        self.mean, self.std = train.channel_stats()

        torch.manual_seed(a.seed)
        if a.encoder is None:
            raise ValueError("--encoder is required (mi-estimators list encoders)")
        encoder = build_encoder(a.encoder, train.in_channels, train.image_size, **parse_options(a.encoder_option))
        shapes = feature_shapes(encoder, train.in_channels, train.image_size)
        self.shapes = shapes
        keys = a.probe_features or ",".join(getattr(encoder, "default_probe", ("global",)))
        self.probe_keys = [k.strip() for k in keys.split(",") if k.strip()]
        select_features({k: torch.zeros(1, *s) for k, s in shapes.items()}, self.probe_keys)  # validates the keys
        objective = self.build_objective(encoder, shapes)
        probe_dim = sum(math.prod(shapes[k]) for k in self.probe_keys)
        n_cls = max(train.num_classes, test.num_classes)
        module = _Step(objective, OnlineProbe(probe_dim, n_cls) if a.online_probe else None, self.probe_keys)
        module.to(self.device)
        if self.device.type == "cuda":
            module.to(memory_format=torch.channels_last)
        self.module, self.encoder = module, encoder
        params = [p for p in module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=a.lr, weight_decay=a.weight_decay)
        batches = EpochBatches(len(train), a.batch_size, seed=a.seed, rank=self.dist.rank,
                               world_size=self.dist.world_size) if a.epochs > 0 else None
        total = a.epochs * len(batches) if batches else 0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(a.warmup_steps, total, a.schedule))
        torch.manual_seed(a.seed + 1 + self.dist.rank)  # augmentation differs per rank

        if a.resume or a.eval_only:
            self._load(ckpt_path)
        model = module
        if self.dist.enabled:
            model = nn.parallel.DistributedDataParallel(
                module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.find_unused_parameters)
        self.model = model

        train_time, images_seen = 0.0, 0
        if not a.eval_only and self.epoch < a.epochs:
            train_time, images_seen = self._train(model, batches, ckpt_path, list(callbacks))
        metrics = self.evaluate() if self.dist.is_main else {}
        metrics.update({"epochs": self.epoch, "steps": self.step, "train_wall_s": round(train_time, 2),
                        "images_per_s": round(images_seen / train_time, 1) if train_time > 0 else None,
                        "world_size": self.dist.world_size, "device": str(self.device),
                        "history": self.history, "config": vars(a)})
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            name = "eval-metrics.json" if a.eval_only else "metrics.json"  # keep the training run's record
            with open(self.out / name, "w") as fh:
                json.dump(metrics, fh, indent=2, default=str)
        if self.dist.enabled:
            dist.barrier()
        return metrics if self.dist.is_main else {}  # only rank 0 reports

    def _train(self, model: nn.Module, batches: EpochBatches, ckpt_path: Path, callbacks: list) -> tuple[float, int]:
        a = self.args
        previous = {}
        if threading_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        t_total, n_total = 0.0, 0
        try:
            while self.epoch < a.epochs:
                loader = DataLoader(self.train_data, batch_sampler=batches.epoch(self.epoch, self.batch_in_epoch),
                                    collate_fn=_as_batch, num_workers=a.num_workers,
                                    pin_memory=self.device.type == "cuda",
                                    # its own generator: creating an iterator must not draw from the
                                    # global RNG, or a mid-epoch resume would shift every random stream
                                    generator=torch.Generator().manual_seed(a.seed + self.epoch))
                bar = tqdm(total=len(batches), initial=self.batch_in_epoch, desc=f"epoch {self.epoch + 1}/{a.epochs}",
                           disable=a.no_progress or not self.dist.is_main, leave=False, file=sys.stderr)
                sums: dict[str, float] = {}
                n_steps, n_correct, n_seen, t0 = 0, 0, 0, time.perf_counter()
                for images, labels in loader:
                    images = as_float(images.to(self.device, non_blocking=True))
                    labels = labels.to(self.device, non_blocking=True)
                    with self.autocast:
                        inputs = self.make_inputs(images)
                        loss, logs, correct = model(inputs, labels)
                    status = torch.stack([loss.detach().float(),
                                          torch.tensor(float(self._stop is not None), device=loss.device)])
                    status = ddp.all_reduce_mean(status)
                    if not torch.isfinite(status[0]):
                        self._diverged(ckpt_path, float(loss.detach()))
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if a.grad_clip > 0:
                        nn.utils.clip_grad_norm_(self.module.parameters(), a.grad_clip)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.step += 1
                    self.batch_in_epoch += 1
                    n_steps += 1
                    n_seen += len(images) * self.dist.world_size
                    n_correct += int(correct)
                    for k, v in logs.items():
                        sums[k] = sums.get(k, 0.0) + float(v)
                    rate = n_seen / max(time.perf_counter() - t0, 1e-9)
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(logs['loss']):.4f}", img_s=f"{rate:.0f}")
                    for cb in callbacks:
                        cb(self)
                    if float(status[1]) > 0:  # a rank got SIGINT/SIGTERM: all stop at this step
                        self._save(ckpt_path)
                        bar.close()
                        self.log(f"interrupted at epoch {self.epoch + 1}, step {self.step}; checkpoint written "
                                 f"to {ckpt_path}; continue with --resume")
                        raise SystemExit(128 + int(self._stop or signal.SIGTERM))
                bar.close()
                dt = time.perf_counter() - t0
                t_total += dt
                n_total += n_seen
                record = {"epoch": self.epoch + 1, "steps": self.step, "wall_s": round(dt, 2),
                          "images_per_s": round(n_seen / dt, 1) if dt > 0 else None}
                record.update({k: v / max(n_steps, 1) for k, v in sums.items()})
                if self.module.probe is not None:
                    record["online_probe_train_acc"] = n_correct / max(n_seen / self.dist.world_size, 1)
                self.history.append(record)
                self.log(json.dumps(record))
                self.epoch += 1
                self.batch_in_epoch = 0
                self._save(ckpt_path)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return t_total, n_total

    def _on_signal(self, signum, frame) -> None:
        if self._stop is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self._stop = signum

    def _diverged(self, ckpt_path: Path, value: float) -> None:
        where = (f"the last good checkpoint ({ckpt_path}, end of epoch {self.epoch}) is kept"
                 if ckpt_path.exists() else "no checkpoint was written yet")
        raise TrainingDivergedError(
            f"the training loss is {value} at epoch {self.epoch + 1}, step {self.step + 1}; stopped, and {where}. "
            f"Lower --lr (now {self.args.lr}), keep --grad-clip on, or pick a bound with clipping (--bound smile, "
            "--bound-option clip=...)")

    # --------------------------------------------------------------------- checkpoints
    def _save(self, path: Path) -> None:
        rng = capture_rng()
        if self.dist.enabled:
            all_rng = [None] * self.dist.world_size
            dist.all_gather_object(all_rng, rng)
        else:
            all_rng = [rng]
        if self.dist.is_main:
            save_atomic({"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                         "scheduler": self.scheduler.state_dict(), "rng": all_rng, "step": self.step,
                         "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "history": self.history,
                         "world_size": self.dist.world_size, "config": vars(self.args)}, path)

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path, map_location=self.device)
        model = state["model"]
        own = self.module.state_dict()
        stale = [k for k in model if k.startswith("probe.") and (k not in own or own[k].shape != model[k].shape)]
        if stale or any(k.startswith("probe.") for k in own) != any(k.startswith("probe.") for k in model):
            # the online probe was trained on other --probe-features (or was off): fine for
            # --eval-only, which only needs the objective; a resumed run would mix optimiser states
            if not self.args.eval_only:
                raise ValueError(f"{path} was trained with other --probe-features / --online-probe "
                                 f"settings ({state['config'].get('probe_features')!r}); resume with the same "
                                 "ones, or use --eval-only to probe other features")
            model = {k: v for k, v in model.items() if not k.startswith("probe.")}
            model.update({k: v for k, v in own.items() if k.startswith("probe.")})
        self.module.load_state_dict(model)
        if self.args.eval_only:
            self.step, self.epoch, self.history = state["step"], state["epoch"], state["history"]
            self.log(f"loaded {path}: epoch {self.epoch}, step {self.step}")
            return
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_in_epoch, self.history = state["batch_in_epoch"], state["history"]
        rng = state["rng"]
        if len(rng) == self.dist.world_size:
            restore_rng(rng[self.dist.rank])
        else:
            self.log(f"checkpoint written by {len(rng)} processes, resumed on {self.dist.world_size}: "
                     "random streams are reseeded, the data order is kept")
        self.log(f"resumed from {path}: epoch {self.epoch}, step {self.step}")

    # --------------------------------------------------------------------- evaluation
    def features(self, x: Tensor) -> Tensor:
        """The probe's features ``(B, D)`` of a normalised batch (encoder in eval mode)."""
        return select_features(self.encoder(x), self.probe_keys)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Linear probe (and kNN with ``--knn K``) on frozen features: train split -> test split."""
        a = self.args
        train = self.train_data.subset(a.probe_limit)
        was = self.encoder.training
        self.encoder.eval()
        t0 = time.perf_counter()
        try:
            with self.autocast:
                prep = (lambda x: self.normalise(as_float(x)))
                tr = extract_features(self.features, train.images, device=self.device, preprocess=prep)
                te = extract_features(self.features, self.test_data.images, device=self.device, preprocess=prep)
        finally:
            self.encoder.train(was)
        acc = linear_probe(tr, train.labels, te, self.test_data.labels, device=self.device, max_iter=a.probe_iters)
        out = {"linear_probe_test_acc": acc, "probe_features": ",".join(self.probe_keys), "probe_dim": tr.shape[1],
               "probe_train_images": len(train), "probe_test_images": len(te)}
        if a.knn > 0:
            out[f"knn{a.knn}_test_acc"] = knn_accuracy(tr, train.labels, te, self.test_data.labels, k=a.knn)
        out["probe_wall_s"] = round(time.perf_counter() - t0, 2)
        self.log(f"linear probe ({out['probe_features']}, {out['probe_dim']}-d): test accuracy {acc:.4f}")
        return out


def _as_batch(batch):
    return batch


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
