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

import argparse

import torch
from torch import Tensor, nn

from mi_estimators.training import (Augment, Trainer, gather_with_grad, local_maps, parse_options,
                                    two_views)
from mi_estimators.training import distributed as ddp
from mi_estimators_amdim.objective import DEFAULT_BOUND, PAIRS, MultiscaleNCE

__all__ = ["AMDIMTrainer", "AMDIMObjective", "resolve_scales"]

#: options of the ``amdim`` encoder that the trainer exposes as its own flags
ENCODER_FLAGS = ("ndf", "n_rkhs", "n_depth")


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
                 channels_last: bool = False, **nce_options) -> None:
        super().__init__()
        self.encoder = encoder
        self.scales = resolve_scales(shapes)
        channels = {name: shapes[key][0] for name, key in self.scales.items()}
        self.nce = MultiscaleNCE(channels, n_rkhs, **nce_options)
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
        distributed = ddp.world_size() > 1
        loss, parts = self.nce(f1, f2, gather=gather_with_grad if distributed else None,
                               rank=ddp.rank())
        logs = {f"nce_{k}": v for k, v in parts.items() if k != "loss"}
        return {"loss": loss, "logs": logs, "features": {k: v[:b] for k, v in out.items()}}


class AMDIMTrainer(Trainer):
    """Augmented Multiscale DIM (Bachman et al. 2019): 1→7, 1→5, 5→5 NCE across two augmented views."""

    defaults = {"bound": DEFAULT_BOUND, "encoder": "amdim", "lr": 2e-4, "batch_size": 128,
                "epochs": 10, "translate": 2, "flip": True, "colour": 0.4, "grayscale": 0.25,
                "warmup_steps": 100}

    @classmethod
    def add_own_arguments(cls, group) -> None:
        group.add_argument("--ndf", type=int, default=None,
                           help="amdim encoder: base width (ndf -> 2ndf -> 4ndf -> 8ndf; default 64)")
        group.add_argument("--n-rkhs", type=int, default=None,
                           help="dimension of f1 (amdim encoder) and of the critics' dot products "
                                "(default: the encoder's f1 width)")
        group.add_argument("--n-depth", type=int, default=None,
                           help="amdim encoder: residual units per block (default 3)")
        group.add_argument("--pairs", default="1-7,1-5,5-5",
                           help=f"NCE terms, comma-separated among {','.join(PAIRS)}")
        group.add_argument("--penalty", type=float, default=4e-2,
                           help="score penalty lambda * mean(s^2) (paper 4e-2)")
        group.add_argument("--clip", type=float, default=20.0,
                           help="soft clip c * tanh(s / c) before the log-softmax (paper 20; 0: off)")
        group.add_argument("--mixture", type=int, default=1,
                           help="K antecedent features per image (mixture NCE, eqs. 18-19; 1: off)")
        group.add_argument("--tau", type=float, default=1.0, help="mixture: temperature of q")
        group.add_argument("--alpha", type=float, default=None,
                           help="mixture: entropy weight (default 1 / tau)")
        group.add_argument("--locations-55", type=int, default=None,
                           help="5->5: random antecedent locations per image and step "
                                "(default: all; the paper's code uses 1)")
        group.add_argument("--chunk-size", type=int, default=None,
                           help="antecedent rows per chunk of the fused NCE (memory bound)")

    @classmethod
    def run(cls, args: argparse.Namespace, **kwargs) -> dict:
        cls._encoder_options(args)
        return super().run(args, **kwargs)

    @staticmethod
    def _encoder_options(args: argparse.Namespace) -> None:
        """Send --ndf/--n-rkhs/--n-depth to the amdim encoder (unless --encoder-option sets them)."""
        given = parse_options(args.encoder_option)
        flags = {k: getattr(args, k) for k in ENCODER_FLAGS if getattr(args, k) is not None}
        if args.encoder != "amdim":
            flags.pop("n_rkhs", None)  # for another encoder it is only the critic's dimension
            if flags:
                raise ValueError(f"--{' --'.join(k.replace('_', '-') for k in flags)} configure the amdim "
                                 f"encoder; pass options of {args.encoder!r} with --encoder-option KEY=VALUE")
            return
        args.encoder_option = list(args.encoder_option) + [
            f"{k}={v}" for k, v in flags.items() if k not in given]

    def make_inputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a = self.args
        augment = Augment(translate=a.translate, crop_scale=tuple(a.crop_scale) if a.crop_scale else None,
                          flip=False, colour=a.colour, grayscale=a.grayscale)
        v1, v2 = two_views(x, augment, shared_flip=a.flip)
        return self.normalise(v1), self.normalise(v2)

    def build_objective(self, encoder: nn.Module, shapes: dict[str, tuple[int, ...]]) -> nn.Module:
        a = self.args
        pairs = [p.strip() for p in a.pairs.split(",") if p.strip()]
        n_rkhs = a.n_rkhs or shapes["global"][0]
        return AMDIMObjective(
            encoder, shapes, n_rkhs=n_rkhs, channels_last=True,
            pairs=pairs, penalty=a.penalty, clip=a.clip or None, bound=a.bound,
            bound_options=parse_options(a.bound_option), mixture=a.mixture, tau=a.tau,
            alpha=a.alpha, locations_55=a.locations_55, chunk_size=a.chunk_size)
