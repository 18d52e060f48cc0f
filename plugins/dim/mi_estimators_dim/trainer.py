"""Deep InfoMax: global MI, local MI and prior matching (trainer ``dim``).

Hjelm, Fedorov, Lavoie-Marchildon, Grewal, Bachman, Trischler, Bengio, "Learning deep
representations by mutual information estimation and maximization", ICLR 2019, arXiv:1808.06670.

With Y = E(x) the representation and M = C(x) the M x M local feature map of the same image,
DIM maximises (seed eq. 13)

    alpha * I(M; Y)  +  beta / M^2 * sum_l I(M^(l); Y)  -  gamma * (prior matching)

* **global** (eq. 8-10): one score per (image i, image j): ``T(Y_i, M_j)``, shape ``(N, N)``.
* **local** (eq. 11): one score per (image i, image j, location l): ``T(Y_i, M_j^(l))``, shape
  ``(N, N, L)`` with L = M^2; the bound averages over locations.
* MI estimator: any registered bound (``--bound``), JSD by default as in the paper.
* Critics ("encode-and-dot-product", the paper's appendix A.2): Y and M are embedded into a
  shared space of ``--embed-dim`` dimensions, by MLPs for Y and the flattened map, and by 1x1
  convolutions for every location of M, each with a linear shortcut; the score is the dot product.
* **prior matching** (eq. 12): a discriminator D tells samples of the prior V (uniform on
  [0, 1]^D, or a standard normal) from sigmoid(Y) (squashed into the prior's support; the
  identity for the normal prior). D minimises ``sp(-D(v)) + sp(D(E(x)))``; the encoder minimises
  ``gamma * sp(-D(E(x)))`` (the non-saturating generator loss) through a frozen copy of D's
  weights, so a single optimiser step trains both.

Defaults are the paper's DIM(L): alpha = 0, beta = 1, gamma = 0.1. Negatives are the whole global
batch under torchrun: both sides are gathered across ranks with gradients and every rank scores
the global batch (exactly the loss and gradients of one process with the global batch).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from mi_estimators import registry
from mi_estimators.options import non_negative_float, positive_int
from mi_estimators.training import EmbedHead, TrainConfig, Trainer, local_maps, option, override

#: hidden units of the critics' embedding heads (the paper's appendix A.2)
HIDDEN = 512

__all__ = ["DIMConfig", "DIMTrainer", "DIMObjective", "DIMOptions", "PriorDiscriminator"]


def _identity(x: Tensor) -> Tensor:
    return x


def check_weights(alpha: float, beta: float, gamma: float) -> tuple[float, float, float]:
    """The weights of global MI, local MI and prior matching: each >= 0, and an MI term on."""
    alpha, beta, gamma = (non_negative_float(n, v) for n, v in (("alpha", alpha), ("beta", beta),
                                                                 ("gamma", gamma)))
    if alpha + beta == 0:
        raise ValueError("alpha + beta > 0 is needed (an MI term): set --beta 1 (local, DIM(L)) or "
                         "--alpha 1 (global, DIM(G))")
    return alpha, beta, gamma


@dataclasses.dataclass(frozen=True)
class DIMConfig(TrainConfig):
    """The options of ``mi-estimators train dim``: the shared ones with DIM's defaults (JSD, the
    ``dim`` encoder, lr 1e-4) and the weights, prior and critic size of the objective."""

    name = "dim"

    bound: str = override("bound", "jsd")
    encoder: str | None = override("encoder", "dim")
    lr: float = override("lr", 1e-4)
    warmup_steps: int = override("warmup_steps", 0)
    out: str = override("out", "runs/dim")

    alpha: float = option(0.0, "weight of global MI (DIM(G): 1)", check=non_negative_float)
    beta: float = option(1.0, "weight of local MI (DIM(L): 1)", check=non_negative_float)
    gamma: float = option(0.1, "weight of prior matching (0: off)", check=non_negative_float)
    prior: str = option("uniform", "prior V of prior matching: uniform on [0, 1] (paper) or standard normal",
                        choices=("uniform", "normal"))
    local_feature: str | None = option(None, "the encoder's local map for the MI terms (default: its "
                                       "default_local)")
    embed_dim: int = option(512, "critic embedding size", check=positive_int)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weights(self.alpha, self.beta, self.gamma)


@dataclasses.dataclass(frozen=True)
class DIMOptions:
    """The weights and critic settings of :class:`DIMObjective` (the paper's DIM(L) by default).

    ``alpha``, ``beta``, ``gamma``: weights of global MI, local MI and prior matching (each >= 0,
    ``alpha + beta > 0``); ``embed_dim``: size of the critics' shared embedding space; ``prior``:
    the prior V of prior matching, ``"uniform"`` on [0, 1] (the paper) or ``"normal"``.
    """

    alpha: float = 0.0
    beta: float = 1.0
    gamma: float = 0.1
    embed_dim: int = 512
    prior: str = "uniform"

    def __post_init__(self) -> None:
        alpha, beta, gamma = check_weights(self.alpha, self.beta, self.gamma)
        if self.prior not in ("uniform", "normal"):
            raise ValueError(f"prior must be 'uniform' (on [0, 1]) or 'normal', got {self.prior!r}")
        for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma),
                            ("embed_dim", positive_int("embed_dim", self.embed_dim))):
            object.__setattr__(self, name, value)

    @classmethod
    def from_config(cls, config: DIMConfig) -> "DIMOptions":
        """The objective's settings of ``mi-estimators train dim`` (``--alpha`` ... ``--embed-dim``)."""
        return cls(alpha=config.alpha, beta=config.beta, gamma=config.gamma, embed_dim=config.embed_dim,
                   prior=config.prior)


class PriorDiscriminator(nn.Module):
    """D: representation -> logit (1000-200 ReLU units, the paper's appendix A.2)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, 1000), nn.ReLU(inplace=True), nn.Linear(1000, 200),
                                 nn.ReLU(inplace=True), nn.Linear(200, 1))

    def forward(self, y: Tensor) -> Tensor:
        return self.net(y).squeeze(-1)


class DIMObjective(nn.Module):
    """``forward(x) -> {"loss", "logs", "features"}``, the total DIM loss of one batch.

    ``gather`` (the trainer's ``DistInfo.gather`` under torchrun) concatenates both sides of the
    critics over the ranks, so every rank scores the global batch; the identity by default.

    The logged MI (``local_mi_dv``, ``global_mi_dv``) is the Donsker-Varadhan read-out of the
    critic's scores, ``mean(T_pos) - log mean exp(T_neg)``, whatever the training bound: a
    log-mean-exp stays finite where JSD's NWJ(T + 1) read-out, ``E[T_pos] + 1 - mean exp(T_neg)``,
    explodes on a few large negative-pair scores (it read -2,779 nats in a Fashion-MNIST run).

    ``scores`` helpers are public so that tests can compare them with naive references:
    :meth:`local_scores` is ``(N, N, L)`` with ``[i, j, l] = phi_Y(Y_i) . phi_M(M_j)[:, l]`` and
    :meth:`global_scores` is ``(N, N)`` with ``[i, j] = psi_Y(Y_i) . psi_M(M_j)``.
    """

    def __init__(self, encoder: nn.Module, shapes: dict[str, tuple[int, ...]], bound: nn.Module, *,
                 local_key: str, options: DIMOptions = DIMOptions(),
                 gather: Callable[[Tensor], Tensor] | None = None) -> None:
        super().__init__()
        self.options = options
        alpha, beta, gamma, embed_dim = options.alpha, options.beta, options.gamma, options.embed_dim
        if local_key not in shapes or len(shapes[local_key]) != 3:
            raise ValueError(f"--local-feature {local_key!r} is not a local map of this encoder; its maps are "
                             f"{local_maps(shapes)}")
        self.encoder, self.bound, self.local_key = encoder, bound, local_key
        self.gather = gather or _identity  # the trainer's DistInfo.gather under torchrun
        self.read_out = registry.get("dv")  # what the logs report (see the class docstring)
        self.alpha, self.beta, self.gamma, self.prior = alpha, beta, gamma, options.prior
        dim = shapes["global"][0]
        c, h, w = shapes[local_key]
        if beta > 0:
            self.local_y = EmbedHead(dim, embed_dim, HIDDEN)
            self.local_m = EmbedHead(c, embed_dim, HIDDEN, spatial=True)
        if alpha > 0:
            self.global_y = EmbedHead(dim, embed_dim, HIDDEN)
            self.global_m = EmbedHead(c * h * w, embed_dim, HIDDEN)
        if gamma > 0:
            self.discriminator = PriorDiscriminator(dim)

    def local_scores(self, y: Tensor, m: Tensor) -> Tensor:
        u = self.gather(self.local_y(y))  # (N, E)
        v = self.gather(self.local_m(m).flatten(2))  # (N, E, L)
        return torch.einsum("ie,jel->ijl", u, v)  # (N, N, L)

    def global_scores(self, y: Tensor, m: Tensor) -> Tensor:
        u = self.gather(self.global_y(y))  # (N, E)
        v = self.gather(self.global_m(m))  # (N, E)
        return u @ v.T  # (N, N)

    def _squash(self, y: Tensor) -> Tensor:
        return torch.sigmoid(y) if self.prior == "uniform" else y

    def prior_terms(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(discriminator loss, encoder loss)`` of prior matching, both means over the batch."""
        e = self._squash(y.float())
        v = torch.rand_like(e) if self.prior == "uniform" else torch.randn_like(e)
        d_loss = F.softplus(-self.discriminator(v)).mean() + F.softplus(self.discriminator(e.detach())).mean()
        frozen = {k: p.detach() for k, p in self.discriminator.named_parameters()}
        g_loss = F.softplus(-functional_call(self.discriminator, frozen, (e,))).mean()
        return d_loss, g_loss

    def forward(self, x: Tensor) -> dict:
        feats = self.encoder(x)
        y, m = feats["global"], feats[self.local_key]
        loss = y.new_zeros((), dtype=torch.float32)
        logs: dict[str, Tensor] = {}
        if self.beta > 0:
            s = self.local_scores(y, m).float()
            loss = loss + self.beta * self.bound.loss(s)
            with torch.no_grad():
                logs["local_mi_dv"] = self.read_out(s)
        if self.alpha > 0:
            s = self.global_scores(y, m).float()
            loss = loss + self.alpha * self.bound.loss(s)
            with torch.no_grad():
                logs["global_mi_dv"] = self.read_out(s)
        if self.gamma > 0:
            d_loss, g_loss = self.prior_terms(y)
            loss = loss + d_loss + self.gamma * g_loss
            logs["prior_d_loss"] = d_loss.detach()
        return {"loss": loss, "logs": logs, "features": feats}


class DIMTrainer(Trainer):
    """Deep InfoMax (Hjelm et al. 2019): global and local MI with any registered bound, prior matching."""

    config_class = DIMConfig

    def build_objective(self, encoder: nn.Module, shapes: dict[str, tuple[int, ...]]) -> nn.Module:
        cfg = self.config
        maps = local_maps(shapes)
        key = cfg.local_feature or getattr(encoder, "default_local", None) or (maps[0] if maps else None)
        return DIMObjective(encoder, shapes, self.bound(), local_key=key, options=DIMOptions.from_config(cfg),
                            gather=self.dist.gather)
