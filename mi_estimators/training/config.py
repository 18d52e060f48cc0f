"""The trainers' configuration: one frozen dataclass per trainer, and the parser generated from it.

Every option is a field of :class:`TrainConfig` (the options all trainers share) or of a trainer's
subclass (``DIMConfig``, ``AMDIMConfig``); its help text, argparse group, choices and range check
sit in the field's metadata (:func:`option`). The command line is generated from the fields
(:meth:`TrainConfig.parser`, by the package's one generator, :mod:`mi_estimators.argparsing`), so
``mi-estimators train NAME --help`` is the one manual of the options, with their defaults.
Argparse only builds the config; the config checks every value up front (``__post_init__``, with
the validators of :mod:`mi_estimators.options`) and is all a trainer reads.

>>> cfg = TrainConfig.from_argv(["--encoder", "dim", "--epochs", "2", "--crop-scale", "0.5", "1"])
>>> cfg.epochs, cfg.crop_scale, cfg.lr
(2, (0.5, 1.0), 0.001)
>>> TrainConfig.from_dict({"encoder": "dim", "epoch": 2})
Traceback (most recent call last):
...
ValueError: unknown TrainConfig option 'epoch'; did you mean 'epochs'?
>>> TrainConfig(encoder="dim", batch_size=1)
Traceback (most recent call last):
...
ValueError: batch_size (--batch-size) must be an integer >= 2 (batch norm and contrastive negatives need two), got 1
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import types
from typing import Any, Callable, ClassVar, Mapping

from mi_estimators.argparsing import add_options, flag_name, from_namespace, split_optional, type_hints
from mi_estimators.options import (check_known, did_you_mean, integer, non_negative_float, optional,
                                   parse_options, positive_float, positive_int, unit_interval_float)
from mi_estimators.training.augment import Augment
from mi_estimators.training.data import DATASETS

__all__ = ["TrainConfig", "option", "override", "parse_options"]


# ------------------------------------------------------------------------------ fields

Check = Callable[[str, Any], Any]


def option(default: Any, help: str, *, group: str | None = None, check: Check | None = None,
           choices: tuple | None = None, metavar: str | tuple | None = None, switch: bool = False) -> Any:
    """A config field with what the parser and the checks need in its metadata.

    ``check(name, value)`` validates (raising ``ValueError``) and returns the normalised value;
    ``choices`` restricts a string; ``switch=True`` makes a bool a plain ``--flag`` (no
    ``--no-flag``); ``group`` is the ``--help`` section (default: the trainer's own options).
    """
    meta = {"help": help, "group": group, "check": check, "choices": choices, "metavar": metavar,
            "switch": switch}
    return dataclasses.field(default=default, metadata=types.MappingProxyType(meta))


def override(name: str, default: Any, *, base: type | None = None) -> Any:
    """The field ``name`` of ``base`` (default :class:`TrainConfig`) with another default; same
    help, group and checks. A subclass re-declares the field with it:
    ``lr: float = override("lr", 1e-4)``."""
    fields = {f.name: f for f in dataclasses.fields(base or TrainConfig)}
    if name not in fields:
        raise ValueError(f"override: {(base or TrainConfig).__name__} has no option {name!r}")
    return dataclasses.field(default=default, metadata=fields[name].metadata)


def _at_least(minimum: int, hint: str = "") -> Check:
    return functools.partial(integer, minimum=minimum, hint=hint)


def _maybe(check: Callable[..., Any]) -> Check:
    return functools.partial(optional, check)


def _path(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, (str, os.PathLike)):
        return None if value is None else os.fspath(value)
    raise ValueError(f"{name} must be a path, got {value!r}")


def _crop_scale(name: str, value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, str) or len(value) != 2:
        raise ValueError(f"{name} must be two area fractions LO HI, got {value!r}")
    return tuple(unit_interval_float(name, v, open_left=True) for v in value)


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True, False or None (None: on when stderr is a terminal), got {value!r}")
    return value


def _key_values(name: str, value: Any) -> tuple[str, ...]:
    pairs = (value,) if isinstance(value, str) else tuple(str(v) for v in value)
    parse_options(pairs)  # KEY=VALUE each
    return pairs


# ------------------------------------------------------------------------------ the shared options

DATA, AUG, MODEL = "data", "augmentation (on the device, per batch)", "model and objective"
OPTIM, RUN, EVAL = "optimisation", "run", "evaluation"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The options every trainer shares. Subclasses add their own fields and defaults.

    Build one in Python (``DIMConfig(dataset="digits", epochs=1)``), from a dict
    (:meth:`from_dict`, unknown keys raise naming the closest one) or from a command line
    (:meth:`from_argv`). Values are checked when the config is made.
    """

    #: the trainer's name: the title of its own options in ``--help``
    name: ClassVar[str] = "trainer"

    dataset: str = option("fashion-mnist", "fashion-mnist (Debian: apt-get install dataset-fashion-mnist), "
                          "mnist/idx (IDX files in --data-dir), digits (scikit-learn's 8x8), folder "
                          "(--data-dir ROOT/<class>/*.png)", group=DATA, choices=DATASETS)
    data_dir: str | None = option(None, "where the dataset lives (default: the Debian path)", group=DATA,
                                  check=_path)
    limit: int | None = option(None, "use only the first N training images", group=DATA,
                               check=_maybe(positive_int))
    test_limit: int | None = option(None, "use only the first N test images", group=DATA,
                                    check=_maybe(positive_int))
    image_size: int | None = option(None, "resize images to this side (e.g. 32 for digits)", group=DATA,
                                    check=_maybe(positive_int))
    num_workers: int = option(0, "DataLoader worker processes", group=DATA, check=_at_least(0))

    translate: int = option(0, "random shift in pixels, reflection padding", group=AUG, check=_at_least(0))
    crop_scale: tuple[float, float] | None = option(None, "random resized crop of this area fraction",
                                                    group=AUG, check=_crop_scale, metavar=("LO", "HI"))
    flip: bool = option(False, "random horizontal flip", group=AUG)
    colour: float = option(0.0, "colour jitter strength in [0, 1) (3-channel images)", group=AUG,
                           check=functools.partial(unit_interval_float, open_right=True))
    grayscale: float = option(0.0, "random grayscale probability (3-channel images)", group=AUG,
                              check=unit_interval_float)
    brightness: float = option(0.0, "brightness jitter strength in [0, 1) (any image, 1-channel included)",
                               group=AUG, check=functools.partial(unit_interval_float, open_right=True))
    contrast: float = option(0.0, "contrast jitter strength in [0, 1) (any image, 1-channel included)",
                             group=AUG, check=functools.partial(unit_interval_float, open_right=True))
    erase: float = option(0.0, "random erasing probability per image (a rectangle filled with its mean)",
                          group=AUG, check=unit_interval_float)
    noise: float = option(0.0, "standard deviation of additive Gaussian pixel noise (images in [0, 1])",
                          group=AUG, check=non_negative_float)

    encoder: str | None = option(None, "registered encoder (mi-estimators list encoders)", group=MODEL)
    encoder_option: tuple[str, ...] = option((), "keyword option for the encoder factory (repeatable)",
                                             group=MODEL, check=_key_values, metavar="KEY=VALUE")
    bound: str = option("infonce", "registered MI bound (mi-estimators list bounds)", group=MODEL)
    bound_option: tuple[str, ...] = option((), "keyword option for the bound (repeatable), e.g. clip=20",
                                           group=MODEL, check=_key_values, metavar="KEY=VALUE")

    epochs: int = option(10, "0 probes the encoder at initialisation", group=OPTIM, check=_at_least(0))
    batch_size: int = option(64, "per process (global = N x this)", group=OPTIM,
                             check=_at_least(2, " (batch norm and contrastive negatives need two)"))
    lr: float = option(1e-3, "peak Adam learning rate", group=OPTIM, check=positive_float)
    weight_decay: float = option(0.0, "Adam weight decay", group=OPTIM, check=non_negative_float)
    warmup_steps: int = option(100, "linear learning-rate warm-up", group=OPTIM, check=_at_least(0))
    schedule: str = option("cosine", "after warm-up", group=OPTIM, choices=("cosine", "constant"))
    grad_clip: float = option(10.0, "clip the gradient norm to this (0: off)", group=OPTIM,
                              check=non_negative_float)
    seed: int = option(0, "seed of the weights, the data order and the augmentation", group=OPTIM,
                       check=_at_least(0))

    out: str = option("runs/run", "directory for checkpoint.pt and metrics.json", group=RUN, check=_path)
    resume: bool = option(False, "continue the run in --out where it stopped", group=RUN, switch=True)
    eval_only: bool = option(False, "probe the checkpoint in --out, no training", group=RUN, switch=True)
    device: str = option("auto", "auto (CUDA if present), cpu, cuda, cuda:1 ...", group=RUN)
    precision: str = option("auto", "auto: bf16 autocast on CUDA, fp32 on the CPU", group=RUN,
                            choices=("auto", "fp32", "bf16"))
    progress: bool | None = option(None, "tqdm progress bars on stderr: --progress even when it is not a terminal, "
                                   "--no-progress never (default: only on a terminal)", group=RUN,
                                   check=_maybe(_boolean))
    log_every: int = option(50, "steps between the host's reads of the loss (progress, NaN check, "
                            "stop on a signal under torchrun)", group=RUN, check=positive_int)

    probe_features: str | None = option(None, "comma-separated encoder outputs the probes read (default: "
                                        "the encoder's default_probe, else 'global')", group=EVAL)
    probe_limit: int | None = option(None, "train images for the final linear probe", group=EVAL,
                                     check=_maybe(positive_int))
    probe_iters: int = option(200, "L-BFGS iterations of the linear probe", group=EVAL, check=positive_int)
    online_probe: bool = option(True, "linear classifier on detached features, trained alongside",
                                group=EVAL)
    knn: int = option(0, "also report k-NN accuracy with this k (0: off)", group=EVAL, check=_at_least(0))

    # ------------------------------------------------------------------ checks
    def __post_init__(self) -> None:
        hints = type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _check_field(f, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        self.augmentation()  # the augmentation options together (e.g. crop LO <= HI)

    def augmentation(self, *, flip: bool | None = None) -> Augment:
        """The kit's one :class:`Augment` of these options; ``flip=False`` takes the flip out (for
        two-view trainers that flip the image once before making the views)."""
        return Augment(translate=self.translate, crop_scale=self.crop_scale,
                       flip=self.flip if flip is None else flip, colour=self.colour, grayscale=self.grayscale,
                       brightness=self.brightness, contrast=self.contrast, erase=self.erase, noise=self.noise)

    def encoder_kwargs(self) -> dict[str, Any]:
        """The encoder factory's keyword options (``--encoder-option``)."""
        return parse_options(self.encoder_option)

    def bound_kwargs(self) -> dict[str, Any]:
        """The bound's keyword options (``--bound-option``)."""
        return parse_options(self.bound_option)

    # ------------------------------------------------------------------ conversions
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """A config from a mapping of field names; an unknown key raises ``ValueError`` naming the
        closest valid one."""
        check_known(values, [f.name for f in dataclasses.fields(cls)], f"unknown {cls.__name__} option")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict of builtins (tuples as lists): for JSON and checkpoints."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def parser(cls, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
        """The command line of this config, generated from its fields (``--help`` shows defaults)."""
        parser = argparse.ArgumentParser(prog=prog, description=description)
        add_options(parser, cls, title=f"{cls.name} options")
        return parser

    @classmethod
    def from_argv(cls, argv: list[str], prog: str | None = None) -> "TrainConfig":
        """Parse a command line (``SystemExit`` on argparse errors, as argparse does)."""
        return from_namespace(cls, cls.parser(prog).parse_args(argv))


# ------------------------------------------------------------------------------ helpers


def _check_field(f: dataclasses.Field, hint: Any, value: Any) -> Any:
    """The field's own check, else its choices or its type (bool, str)."""
    name, (base, nullable) = f"{f.name} ({flag_name(f.name)})", split_optional(hint)
    check, choices = f.metadata.get("check"), f.metadata.get("choices")
    if check is not None:
        return check(name, value)
    if choices is not None and value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}{did_you_mean(value, choices)}")
    if base is bool and not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    if base is str and not (isinstance(value, str) or (nullable and value is None)):
        raise ValueError(f"{name} must be a string{' or None' if nullable else ''}, got {value!r}")
    return value


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value
