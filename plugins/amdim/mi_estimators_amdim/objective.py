"""AMDIM's multiscale NCE objective between two augmented views (seed eqs. 14–19).

For a batch of images x and two independently augmented views x¹, x², the encoder gives a global
vector f1 and local maps f5, f7 for each view. Linear-in-RKHS critics (eq. 16)
``Φ(a, c) = φ_a(a)ᵀ φ_c(c) / sqrt(n_rkhs)`` score antecedent/consequent pairs, with small residual
heads φ1 (an MLP on f1) and φ5, φ7 (1×1 convolutions on the maps). Three NCE terms are maximised,
each in both directions (x¹→x² and x²→x¹) and averaged over the two:

* **1→7**: antecedent φ1(f1(x¹)) of image i; consequents φ7(f7(x²))_{uv} of every image and
  location. Positives: the locations of image i; negatives: every location of every other image
  in the (global) batch, shared by all of image i's positives.
* **1→5**: the same against φ5(f5(x²)).
* **5→5**: a location ``l`` of φ5(f5(x¹)) is an antecedent on its own (the views are not
  spatially aligned after random crops, so there is no "same location" to pair with); its
  positives are all locations of φ5(f5(x²)) of the same image, its negatives all locations of the
  other images. As in the authors' code, one location is drawn at random per image and step
  (``locations_55=1``, the default); ``locations_55=n`` draws n, and ``None`` uses all of them,
  the average of that estimator over the location (the same expectation, lower variance, n5
  times the 5→5 cost). The antecedent locations of all images go to the fused NCE at once,
  ``(B·n, B_global·n5)`` scores with the positive of row ``(i, l)`` at consequent ``i``
  (``pos_index`` of :func:`mi_estimators.nce.nce_loss_features`, which chunks them).

Loss of one term (eq. 15 with the two stabilisers of Sec. 3.3): with raw scores s,
``λ · mean(s²) − mean_{positives} log softmax(c · tanh(s / c))`` over {positive} ∪ negatives,
computed by the core's memory-efficient NCE (:func:`mi_estimators.nce.nce_loss_features`) without
materialising the ``(n_a · n_c)²`` score matrix. Paper values: λ = 4e-2, c = 20 (the authors'
code uses λ = 5e-2). The penalty term is :func:`mi_estimators.nce.score_penalty` on every path.

The parts of the loss come back as detached 0-dim tensors (no host sync inside the step).

Any other registered bound can be chosen instead (``bound="nwj"``, ...). It receives the
stabilised ``(N, N, L)`` score tensor (positives on the diagonal) and its ``loss`` is used as
is (the registry's NCE bounds' losses are the fused loss minus the constant ``log(1 + (N−1)L)``,
so gradients agree; reported values differ by that constant); under DDP the antecedents are
gathered as well so that its scores stay square (every rank then evaluates the global loss; the
gradient-preserving all-gather sums the gradients back, and DDP's averaging makes it the gradient
of the global loss).

**Mixture representations** (eqs. 18–19, ``mixture=K > 1``): φ1 emits K antecedent vectors per
image and the 1→7 and 1→5 terms use the registry's ``mixture_nce`` bound on ``(N, N, L, K)``
scores, q(j | i) = softmax_j(τ · s_nce(f1^j, f7^i)), maximising Σ_j q s_nce + α H(q). With K = 1
it reduces to the plain NCE (tested). The 5→5 term has one antecedent per location and stays
plain.

**Scale**: with ``gather`` (the kit's gradient-preserving all-gather) the consequents of every
rank form the negative set and each rank's positives sit at ``pos_offset = rank · B``; the
negative set grows with the number of processes.

>>> import torch
>>> obj = MultiscaleNCE({"f1": 16, "f5": 16, "f7": 8}, n_rkhs=32)
>>> views = [{"f1": torch.randn(4, 16), "f5": torch.randn(4, 16, 5, 5),
...           "f7": torch.randn(4, 8, 7, 7)} for _ in range(2)]
>>> loss, parts = obj(*views)
>>> sorted(parts)
['1-5', '1-7', '5-5', 'loss']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from mi_estimators import registry
from mi_estimators.scores import stabilise
from mi_estimators.nce import nce_loss_features, score_penalty
from mi_estimators.options import non_negative_float, optional, positive_float, positive_int
from mi_estimators.training import EmbedHead

__all__ = ["MultiscaleNCE", "NCEOptions", "PAIRS", "scores_of"]

#: the (antecedent, consequent) feature pairs AMDIM uses, by name
PAIRS = {"1-7": ("f1", "f7"), "1-5": ("f1", "f5"), "5-5": ("f5", "f5")}
DEFAULT_BOUND = "infonce"


def scores_of(antecedents: Tensor, consequents: Tensor) -> Tensor:
    """Materialised scores: ``(na, [K,] d)`` × ``(nb, nc, d)`` → ``(na, nb, nc[, K])``."""
    if antecedents.dim() == 2:
        return torch.einsum("ad,bcd->abc", antecedents, consequents)
    return torch.einsum("akd,bcd->abck", antecedents, consequents)


def _head(n_in: int, n_out: int, spatial: bool, embed_bn: bool) -> nn.Module:
    """φ: the kit's residual MLP head, followed by batch norm when ``embed_bn``."""
    head = EmbedHead(n_in, n_out, spatial=spatial)
    if not embed_bn:
        return head
    return nn.Sequential(head, nn.BatchNorm2d(n_out) if spatial else nn.BatchNorm1d(n_out))


def _locations(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` → ``(B, H·W, C)``."""
    return x.flatten(2).transpose(1, 2)


@dataclass(frozen=True)
class NCEOptions:
    """The settings of :class:`MultiscaleNCE` (checked on construction; ``pairs`` becomes a tuple).

    Attributes
    ----------
    pairs:
        Which terms to use, among ``"1-7"``, ``"1-5"``, ``"5-5"``.
    penalty, clip:
        λ of the score penalty ``λ·mean(s²)`` (paper 4e-2) and c of the soft clip ``c·tanh(s/c)``
        (paper 20; None for no clip).
    bound:
        Registry name of the bound; ``"infonce"`` (the default) runs the fused AMDIM NCE.
    bound_options:
        Keyword options of the registry bound (they also send ``infonce`` down the generic path).
    mixture, tau, alpha:
        K antecedent features per image, temperature τ of q and weight α of the entropy term
        (eqs. 18–19; α defaults to 1/τ, for which eq. 19's q is the exact maximiser of eq. 18);
        ``mixture=1`` is the plain objective (``bound="mixture_nce"`` with
        ``mixture=1`` runs the mixture code path with one component, for checking).
    chunk_size:
        Passed to the fused NCE to bound its memory (antecedents per chunk).
    locations_55:
        n: the 5→5 antecedents are n locations of f5 drawn uniformly at random per image and step
        (default 1, as in the authors' code). None: every location (the exact average over the
        location, of which n random ones are an unbiased estimate at n/n5 of the cost).
    embed_bn:
        Batch norm on the output of every head φ (default; the authors' code normalises its f1
        and its f5/f7 embeddings so, even when the encoder has no batch norm). Without it an
        encoder without batch norm learns far more slowly (see the plugin's README).
    """

    pairs: tuple[str, ...] = ("1-7", "1-5", "5-5")
    penalty: float = 4e-2
    clip: float | None = 20.0
    bound: str = DEFAULT_BOUND
    bound_options: dict | None = None
    mixture: int = 1
    tau: float = 1.0
    alpha: float | None = None
    chunk_size: int | None = None
    locations_55: int | None = 1
    embed_bn: bool = True

    def __post_init__(self) -> None:
        pairs = (self.pairs,) if isinstance(self.pairs, str) else tuple(self.pairs)
        unknown = [p for p in pairs if p not in PAIRS]
        if unknown or not pairs:
            raise ValueError(f"pairs must be a non-empty subset of {sorted(PAIRS)}, got {list(pairs)}")
        checked = dict(
            pairs=pairs,
            mixture=positive_int("mixture", self.mixture, " (K antecedents per image; 1: the plain NCE)"),
            locations_55=optional(positive_int, "locations_55", self.locations_55, " (random 5->5 antecedent "
                                  "locations per image), or None for all"),
            penalty=non_negative_float("penalty", self.penalty, " (paper: 4e-2)"),
            clip=optional(positive_float, "clip", self.clip, " (paper: 20), or None"),
            chunk_size=optional(positive_int, "chunk_size", self.chunk_size, " (antecedent rows), or None"))
        for name, value in checked.items():
            object.__setattr__(self, name, value)


class MultiscaleNCE(nn.Module):
    """The 1→7, 1→5 and 5→5 NCE terms in both directions; see the module docstring.

    Parameters
    ----------
    channels:
        Channel counts of the encoder's ``f1``, ``f5``, ``f7`` features (only those the chosen
        ``pairs`` need); :func:`mi_estimators.training.feature_shapes` reads them off any
        encoder.
    n_rkhs:
        Dimension of the space the critics' dot products live in.
    options:
        The terms, stabilisers, bound, mixture and memory settings: :class:`NCEOptions` (the
        paper's by default); its fields are also attributes of the module (``obj.clip``, ...).
    """

    def __init__(self, channels: dict[str, int], n_rkhs: int, options: NCEOptions = NCEOptions()):
        super().__init__()
        o = self.options = options
        needed = {name for p in o.pairs for name in PAIRS[p]}
        missing = needed - set(channels)
        if missing:
            raise ValueError(
                f"the pairs {list(o.pairs)} need encoder features {sorted(needed)}, but the encoder "
                f"exposes only {sorted(channels)}; pick an encoder with these scales or fewer pairs")
        self.pairs, self.n_rkhs = o.pairs, positive_int("n_rkhs", n_rkhs)
        self.mixture, self.locations_55 = o.mixture, o.locations_55
        self.penalty, self.clip, self.chunk_size = o.penalty, o.clip, o.chunk_size
        self.bound_name = o.bound
        self.use_mixture, self.bound = self._bound(o.bound, o.mixture, o.tau, o.alpha, o.bound_options)
        self.heads = nn.ModuleDict({name: _head(channels[name], n_rkhs * (o.mixture if name == "f1" else 1),
                                                name != "f1", o.embed_bn)
                                    for name in ("f1", "f5", "f7") if name in needed})

    @staticmethod
    def _bound(bound: str, mixture: int, tau: float, alpha: float | None, options: dict | None):
        """(mixture path?, registry bound or None for the fused NCE)."""
        # the mixture path: K antecedent vectors per image, (N, N, L, K) scores, mixture_nce
        if mixture > 1 or bound == "mixture_nce":
            if bound not in (DEFAULT_BOUND, "mixture_nce"):
                raise ValueError(f"mixture K > 1 uses the mixture_nce bound; got bound={bound!r}")
            return True, registry.get("mixture_nce", tau=tau, alpha=alpha, **(options or {}))
        if bound == DEFAULT_BOUND and not options:
            return False, None
        return False, registry.get(bound, **(options or {}))

    # -- one direction of one term -------------------------------------------------------------
    def _fused(self, a: Tensor, c: Tensor, pos_offset: int = 0, pos_index: Tensor | None = None) -> Tensor:
        return nce_loss_features(a, c, pos_offset=pos_offset, pos_index=pos_index, penalty=self.penalty,
                                 clip=self.clip, chunk_size=self.chunk_size)

    def _with_bound(self, a: Tensor, c: Tensor) -> Tensor:
        s = scores_of(a, c)
        return score_penalty(self.penalty, s.pow(2).mean() if self.penalty else None) + \
            self.bound.loss(stabilise(s, self.clip))

    def _loss(self, a: Tensor, c: Tensor, pos_offset: int) -> Tensor:
        """Global antecedents ``a`` (n, d) or (n, K, d) against consequents ``c`` (m, L, d)."""
        a = a * self.n_rkhs ** -0.5  # Φ(a, c) = aᵀc / sqrt(n_rkhs), on the smaller side
        return self._fused(a, c, pos_offset) if self.bound is None else self._with_bound(a, c)

    def _antecedent_locations(self, a: Tensor) -> Tensor:
        """The 5→5 antecedents of ``a`` (B, n5, d): every location, or ``locations_55`` random ones."""
        n5 = a.shape[1]
        if self.locations_55 is None or self.locations_55 >= n5:
            return a
        picks = torch.randint(0, n5, (a.shape[0], self.locations_55), device=a.device)
        return a[torch.arange(a.shape[0], device=a.device)[:, None], picks]

    def _loss_55(self, a: Tensor, c: Tensor, pos_offset: int) -> Tensor:
        """5→5 loss of antecedent locations ``a`` (B, n5, d) against consequents ``c`` (m, n5, d)."""
        a = self._antecedent_locations(a) * self.n_rkhs ** -0.5
        b, n = a.shape[:2]
        if self.bound is not None and not self.use_mixture:  # a generic bound: square scores per location
            return torch.stack([self._with_bound(a[:, loc], c) for loc in range(n)]).mean()
        # rows (i, l) of all images at once; the positive of row (i, l) is consequent i (+ offset)
        pos = (torch.arange(b, device=a.device) + pos_offset).repeat_interleave(n)
        return self._fused(a.reshape(b * n, a.shape[2]), c, pos_index=pos)

    def _embed(self, feats: dict[str, Tensor]) -> dict[str, Tensor]:
        """The heads' embeddings of one view: f1 ``(B, d)`` (``(B, K, d)`` with a mixture), the maps
        as locations ``(B, H·W, d)`` (Φ's 1/sqrt(n_rkhs) is applied to the antecedents alone)."""
        out = {}
        for name, head in self.heads.items():
            if name not in feats:
                raise ValueError(f"the encoder did not return the feature {name!r} (it returned {sorted(feats)})")
            h = head(feats[name])
            if name == "f1":
                out[name] = h.view(h.shape[0], self.mixture, -1) if self.use_mixture else h
            else:
                out[name] = _locations(h)
        return out

    def forward(self, feats1: dict[str, Tensor], feats2: dict[str, Tensor], *,
                gather: Callable[[Tensor], Tensor] | None = None,
                rank: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss (sum of the terms, each averaged over the two directions) and its parts, as
        detached 0-dim tensors (reading them is left to the caller, which syncs when it logs)."""
        views = [self._embed(feats1), self._embed(feats2)]
        parts: dict[str, Tensor] = {}
        for pair in self.pairs:
            ant, con = PAIRS[pair]
            terms = []
            for src, dst in ((views[0], views[1]), (views[1], views[0])):
                a, c = src[ant], dst[con]
                offset = 0
                if gather is not None:
                    # the fused NCE takes local antecedents against the global consequents;
                    # a generic bound needs square scores, so it gets the global antecedents too
                    offset = rank * a.shape[0]
                    c = gather(c)
                    if self.bound is not None:
                        a, offset = gather(a), 0
                terms.append(self._loss(a, c, offset) if ant == "f1" else self._loss_55(a, c, offset))
            parts[pair] = 0.5 * (terms[0] + terms[1])
        loss = sum(parts.values())
        report = {k: v.detach() for k, v in parts.items()}
        report["loss"] = loss.detach()
        return loss, report
