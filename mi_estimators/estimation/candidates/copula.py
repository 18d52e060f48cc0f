"""The closed-form candidate: the elliptical copula (Student-t or Gaussian) of the training rows.

The critics of :mod:`mi_estimators.copula` — Student-t copulas with ν ∈ ``DF_GRID`` = {1, 2, 3, 5,
10, 30} and the Gaussian copula (ν = ∞), each reduced to its k leading canonical pairs — are fitted
to the training split in closed form (an EM fit of the dispersion, then its canonical
decomposition); (ν, k) is chosen by the DV value on the monitor split. The candidate reads out by
DV, its training value is the fitted model's MI, and it is refitted in closed form with the chosen
(ν, k) on each fold of a cross-fit. Exact for Gaussian and Student-t copulas (at any MI), and a
lower bound otherwise.

Beside each Gaussian rank 1 <= k <= ``INDEPENDENT_MAX_RANK`` the grid holds the same copula with a
fraction w of independent pairs (:func:`~mi_estimators.copula.fit_independent_fraction`: w and
ρ₁..ρ_k by maximum likelihood on the training rows' canonical variates), chosen on the monitor split
like the rest. Where a share of
the pairs carries no dependence, the plain Gaussian copula dilutes every correlation by (1 − w) and
reads low (0.19 for 0.27 nats on the benchmark's inlier tasks at w = 0.5, ``studies/README.md``); the
contaminated one is exact there. On data with no such share w fits to about 0 and its monitor value
is the plain one's. When the grid's winner is a Gaussian copula of such a rank and a side has more
than one column, the same rank is also fitted on sparse directions (thresholded correlation blocks,
``sparse=True``: :func:`~mi_estimators.copula.threshold_cross` and
:func:`~mi_estimators.copula.threshold_within`) and replaces it if its monitor value
is higher: in many columns the dense directions lose 0.02 of the 25 × 25 inlier task's 0.27 nats to
noise. (One fit at the winner's rank, not a second grid: trying every rank on sparse directions
took the candidate's fit from 1.6 to 2.9 CPU s on that task, for the same estimate.)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mi_estimators import registry
from mi_estimators.copula import (DF_GRID, INDEPENDENT_MAX_RANK, Canonical, EllipticalCopulaCritic, fit_dispersion,
                                  rank_grid, t_scores)
from mi_estimators.estimation.candidates.base import Candidate, Context
from mi_estimators.fit import held_out

__all__ = ["COPULA_FIT_ROWS", "COPULA_GRID_ROWS", "COPULA_MIN_ROWS_PER_DIM", "CopulaCandidate", "sparse_rival"]

#: the copula candidate needs at least this many training rows per column of x and y together
COPULA_MIN_ROWS_PER_DIM = 10
#: at large n the dispersions are fitted to the first this many training rows (a random subset: the
#: correlations' error ~1/√rows is then 0.003, while each EM pass over all rows would cost O(n d²)), and
#: (ν, k) is chosen on the first ``COPULA_GRID_ROWS`` monitor rows in blocks of ``COPULA_GRID_BLOCK``
#: (each of the 42 grid points costs float64 score matrices); the chosen one's monitor value is then
#: read on every monitor row in blocks of ``eval_batch``, as the other candidates'
COPULA_FIT_ROWS, COPULA_GRID_ROWS, COPULA_GRID_BLOCK = 100_000, 4096, 1024


def sparse_rival(best: tuple[float, EllipticalCopulaCritic], gauss: tuple[Canonical, torch.Tensor, torch.Tensor],
                 train: tuple[np.ndarray, np.ndarray], block: int) -> tuple[float, EllipticalCopulaCritic]:
    """``best`` (monitor value, critic), or the same rank of the Gaussian copula with independent pairs
    on sparse directions (module docstring) where that one's monitor value is higher. ``gauss``: the
    ν = ∞ decomposition of the training rows and the monitor rows' scores; ``train``: the training
    rows. Only a Gaussian winner of rank 1 to ``INDEPENDENT_MAX_RANK`` with more than one column on a
    side is tried."""
    value, critic = best
    xtr, ytr = train
    if not (math.isinf(critic.df) and 1 <= critic.rank <= INDEPENDENT_MAX_RANK and xtr.shape[1] * ytr.shape[1] > 1):
        return best
    canon, xt, yt = gauss
    sparse = EllipticalCopulaCritic.with_independent(canon, critic.rank, xtr, ytr, sparse=True)
    sparse_value, _ = held_out(sparse.scores_t, registry.get("dv"), xt, yt, block, groups=0)
    return (sparse_value, sparse) if sparse_value > value else best


class CopulaCandidate(Candidate):
    """A fitted :class:`~mi_estimators.copula.EllipticalCopulaCritic` and its DV value on the
    monitor split; ``info`` holds ``df`` (ν), ``rank`` (k) and ``model_mi`` (the model's MI, also
    its training value)."""

    refittable = True

    def __init__(self, critic: EllipticalCopulaCritic, monitor: float):
        model_mi = critic.mutual_information()
        super().__init__("copula", critic, registry.get("dv"), monitor, model_mi,
                         dict(df=critic.df, rank=critic.rank, independent=critic.independent, sparse=critic.sparse,
                              model_mi=model_mi))

    @classmethod
    def fit(cls, ctx: Context) -> "CopulaCandidate | None":
        """The copula critic with the best DV value on the monitor split over ν ∈ ``DF_GRID`` and the
        ranks of :func:`~mi_estimators.copula.rank_grid` (and the Gaussian winner's rank on sparse
        directions); None when turned off (``copula=False``), for a critic given as a module, or with
        fewer than ``COPULA_MIN_ROWS_PER_DIM`` training rows per column."""
        opts = ctx.opts
        (xtr, ytr), (xva, yva) = ((a[:rows].detach().cpu().double().numpy() for a in pair)
                                  for pair, rows in zip(ctx.data[:2], (COPULA_FIT_ROWS, COPULA_GRID_ROWS)))
        dx, dy = xtr.shape[1], ytr.shape[1]
        if not (opts.copula and isinstance(opts.critic, str) and len(xtr) >= COPULA_MIN_ROWS_PER_DIM * (dx + dy)):
            return None
        dv = registry.get("dv")
        block = opts.eval_batch if len(ctx.data.monitor[0]) <= COPULA_GRID_ROWS else COPULA_GRID_BLOCK
        best: tuple[float, EllipticalCopulaCritic] | None = None
        for df in DF_GRID:
            canon = Canonical.of(fit_dispersion(t_scores(np.hstack([xtr, ytr]), df), df), dx)
            xt, yt = torch.as_tensor(t_scores(xva, df)), torch.as_tensor(t_scores(yva, df))
            if math.isinf(df):
                gauss = (canon, xt, yt)
            for k in rank_grid(min(dx, dy)):
                critics = [EllipticalCopulaCritic(canon, df, k)]
                if math.isinf(df) and 1 <= k <= INDEPENDENT_MAX_RANK:
                    critics.append(EllipticalCopulaCritic.with_independent(canon, k, xtr, ytr))
                for critic in critics:
                    value, _ = held_out(critic.scores_t, dv, xt, yt, block, groups=0)
                    if best is None or value > best[0]:
                        best = (value, critic)
        value, critic = sparse_rival(best, gauss, (xtr, ytr), block)
        xva, yva = ctx.data.monitor
        if len(xva) > COPULA_GRID_ROWS:
            xt, yt = (torch.as_tensor(t_scores(a.detach().cpu().double().numpy(), critic.df)) for a in (xva, yva))
            value, _ = held_out(critic.scores_t, dv, xt, yt, opts.eval_batch, groups=0)
        return cls(critic, value)

    @property
    def read_out_name(self) -> str:
        return "dv"

    def refit(self, x: np.ndarray, y: np.ndarray) -> tuple[EllipticalCopulaCritic, float]:
        """The copula of the same ν and k fitted to the rows ``(x, y)``, and its MI."""
        fitted = EllipticalCopulaCritic.fit(x, y, df=self.critic.df, rank=self.critic.rank,
                                            independent=self.critic.independent > 0 or self.critic.sparse,
                                            sparse=self.critic.sparse)
        return fitted, fitted.mutual_information()

    def describe(self) -> str:
        """``"Gaussian-copula rank-k critic, DV read-out"``, ``"... critic with 50% independent pairs, ..."``
        (``"... on sparse directions, ..."`` where they were thresholded) or
        ``"Student-t-copula (df ν) rank-k ..."``."""
        df, w = self.critic.df, self.critic.independent
        family = "Gaussian-copula" if math.isinf(df) else f"Student-t-copula (df {df:g})"
        share = f" with {w:.0%} independent pairs" if w > 0 else ""
        sparse = " on sparse directions" if self.critic.sparse else ""
        return f"{family} rank-{self.critic.rank} critic{share}{sparse}, DV read-out"
