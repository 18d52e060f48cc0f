"""Augmented Multiscale Deep InfoMax (trainer ``amdim``).

Bachman, Hjelm & Buchwalter, "Learning Representations by Maximizing Mutual Information Across
Views", NeurIPS 2019, arXiv:1906.00910.

One step: a batch x is flipped once (a random horizontal flip shared by both views), then two
independently augmented views x¹, x² are made (random translation with reflection or a random
resized crop, colour jitter and random grayscale on colour images) by the trainer kit; the encoder
gives f1, f5, f7 for both; the loss is :class:`~mi_estimators_amdim.objective.MultiscaleNCE` (1→7,
1→5 and 5→5 NCE in both directions, negatives from the whole global batch under torchrun). The
loop, data, checkpoints/resume, DDP and the final linear probe are the kit's
(:class:`mi_estimators.training.Trainer`)::

    mi-estimators train amdim --dataset fashion-mnist --epochs 10 --batch-size 128 \\
        --ndf 32 --n-rkhs 256 --n-depth 1 --out runs/amdim

Any registered encoder works (``--encoder NAME``): f1 is its ``"global"`` vector; f7 and f5 are
its ``"f7"``/``"f5"`` maps when it has them, else its local maps in decreasing spatial size (the
finest map plays f7, the next f5; with a single map both terms use it).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import torch
from torch import Tensor, nn

from mi_estimators.options import non_negative_float, optional, positive_float, positive_int
from mi_estimators.training import DistInfo, TrainConfig, Trainer, local_maps, option, override, two_views
from mi_estimators_amdim.objective import DEFAULT_BOUND, PAIRS, MultiscaleNCE, NCEOptions

__all__ = ["AMDIMConfig", "AMDIMTrainer", "AMDIMObjective", "resolve_scales"]

_optional_int = functools.partial(optional, positive_int)

#: options of the ``amdim`` encoder that the trainer exposes as its own flags
ENCODER_FLAGS = ("ndf", "n_rkhs", "n_depth")


def _pairs(name: str, value: Any) -> str:
    pairs = [p.strip() for p in str(value).split(",") if p.strip()]
    if not pairs or any(p not in PAIRS for p in pairs):
        raise ValueError(f"{name} must be a comma-separated subset of {','.join(PAIRS)}, got {value!r}")
    return ",".join(pairs)


@dataclasses.dataclass(frozen=True)
class AMDIMConfig(TrainConfig):
    """The options of ``mi-estimators train amdim``: the shared ones with AMDIM's defaults (the
    paper's augmentation, lr 2e-4, batch 128) and the encoder's size and the NCE's settings."""

    name = "amdim"

    bound: str = override("bound", DEFAULT_BOUND)
    encoder: str | None = override("encoder", "amdim")
    lr: float = override("lr", 2e-4)
    batch_size: int = override("batch_size", 128)
    translate: int = override("translate", 2)
    flip: bool = override("flip", True)
    colour: float = override("colour", 0.4)
    grayscale: float = override("grayscale", 0.25)
    out: str = override("out", "runs/amdim")

    ndf: int | None = option(None, "amdim encoder: base width (ndf -> 2ndf -> 4ndf (-> 8ndf from 64 px); default 64)",
                             check=_optional_int)
    n_rkhs: int | None = option(None, "dimension of f1 (amdim encoder) and of the critics' dot products "
                                "(default: the encoder's f1 width)", check=_optional_int)
    n_depth: int | None = option(None, "amdim encoder: residual units per block (default 3)",
                                 check=_optional_int)
    pairs: str = option("1-7,1-5,5-5", f"NCE terms, comma-separated among {','.join(PAIRS)}", check=_pairs)
    penalty: float = option(4e-2, "score penalty lambda * mean(s^2) (paper 4e-2)", check=non_negative_float)
    clip: float = option(20.0, "soft clip c * tanh(s / c) before the log-softmax (paper 20; 0: off)",
                         check=non_negative_float)
    mixture: int = option(1, "K antecedent features per image (mixture NCE, eqs. 18-19; 1: off)",
                          check=positive_int)
    tau: float = option(1.0, "mixture: temperature of q", check=positive_float)
    alpha: float | None = option(None, "mixture: entropy weight (default 1 / tau)",
                                 check=functools.partial(optional, non_negative_float))
    locations_55: int | None = option(1, "5->5: random antecedent locations per image and step, as the "
                                      "authors' code (25, the number of f5 locations, or more: all of "
                                      "them)", check=_optional_int)
    embed_bn: bool = option(True, "batch norm on the critics' embeddings, as the authors' code")
    chunk_size: int | None = option(None, "antecedent rows per chunk of the fused NCE (memory bound)",
                                    check=_optional_int)

    def __post_init__(self) -> None:
        super().__post_init__()
        flags = [k for k in ENCODER_FLAGS if getattr(self, k) is not None and k != "n_rkhs"]
        if self.encoder != "amdim" and flags:  # for another encoder n_rkhs is only the critics' size
            raise ValueError(f"--{' --'.join(k.replace('_', '-') for k in flags)} configure the amdim "
                             f"encoder; pass options of {self.encoder!r} with --encoder-option KEY=VALUE")

    def encoder_kwargs(self) -> dict[str, Any]:
        """``--encoder-option`` plus ``--ndf/--n-rkhs/--n-depth`` for the amdim encoder (an explicit
        ``--encoder-option`` wins)."""
        given = super().encoder_kwargs()
        if self.encoder != "amdim":
            return given
        return {**{k: getattr(self, k) for k in ENCODER_FLAGS if getattr(self, k) is not None}, **given}


def resolve_scales(shapes: dict[str, tuple[int, ...]]) -> dict[str, str]:
    """Which encoder outputs play f1, f5 and f7 (see the module docstring)."""
    maps = sorted(local_maps(shapes), key=lambda k: -shapes[k][1] * shapes[k][2])
    if not maps:
        raise ValueError(f"AMDIM needs at least one local map (B, C, H, W); the encoder gives {shapes}")
    f7 = "f7" if "f7" in maps else maps[0]
    rest = [m for m in maps if m != f7]
    f5 = "f5" if "f5" in maps else (rest[0] if rest else f7)
    return {"f1": "global", "f5": f5, "f7": f7}


class AMDIMObjective(nn.Module):
    """``forward((x1, x2)) -> {"loss", "logs", "features"}``: encoder + multiscale NCE."""

    def __init__(self, encoder: nn.Module, shapes: dict[str, tuple[int, ...]], *, n_rkhs: int,
                 channels_last: bool = False, dist: DistInfo = DistInfo(), nce: NCEOptions = NCEOptions()) -> None:
        super().__init__()
        self.encoder, self.dist = encoder, dist
        self.scales = resolve_scales(shapes)
        channels = {name: shapes[key][0] for name, key in self.scales.items()}
        self.nce = MultiscaleNCE(channels, n_rkhs, nce)
        self.channels_last = channels_last
        if channels_last:  # encoder and heads: parameters and their gradients share one layout (DDP)
            self.to(memory_format=torch.channels_last)

    def encode(self, x: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(the encoder's own outputs, the same renamed to f1/f5/f7)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.encoder(x)
        return out, {name: out[key] for name, key in self.scales.items()}

    def forward(self, views: tuple[Tensor, Tensor]) -> dict:
        x1, x2 = views
        # one encoder pass over both views: batch-norm statistics see both, and it is faster
        out, feats = self.encode(torch.cat([x1, x2]))
        b = x1.shape[0]
        f1 = {k: v[:b] for k, v in feats.items()}
        f2 = {k: v[b:] for k, v in feats.items()}
        loss, parts = self.nce(f1, f2, gather=self.dist.gather if self.dist.enabled else None,
                               rank=self.dist.rank)
        logs = {f"nce_{k}": v for k, v in parts.items() if k != "loss"}
        return {"loss": loss, "logs": logs, "features": {k: v[:b] for k, v in out.items()}}


class AMDIMTrainer(Trainer):
    """Augmented Multiscale DIM (Bachman et al. 2019): 1→7, 1→5, 5→5 NCE across two augmented views."""

    config_class = AMDIMConfig

    def make_inputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # one flip of the image shared by both views, then each view without a flip of its own
        v1, v2 = two_views(x, self.augmentation(flip=False), shared_flip=self.config.flip)
        return self.normalise(v1), self.normalise(v2)

    def build_objective(self, encoder: nn.Module, shapes: dict[str, tuple[int, ...]]) -> nn.Module:
        cfg = self.config
        nce = NCEOptions(pairs=tuple(cfg.pairs.split(",")), penalty=cfg.penalty, clip=cfg.clip or None,
                         bound=cfg.bound, bound_options=cfg.bound_kwargs(), mixture=cfg.mixture, tau=cfg.tau,
                         alpha=cfg.alpha, locations_55=cfg.locations_55, chunk_size=cfg.chunk_size,
                         embed_bn=cfg.embed_bn)
        return AMDIMObjective(encoder, shapes, n_rkhs=cfg.n_rkhs or shapes["global"][0], channels_last=True,
                              dist=self.dist, nce=nce)
