r"""The trained critic's inputs: each column's normal score and its value on the original scale.

The rank transform (:func:`mi_estimators.arrays.marginal_transform`) maps each column by
``Φ⁻¹∘F̂``, which frees the critic from learning the marginals' shape but bends the geometry
between columns. Where the dependence lives in a function of several columns on their own scale it
can hide it: in the concentric Gaussian mixtures of Czyż et al. 2023 (arXiv:2310.10240), X ~ N(0,
k² I) given Y ≈ k, the log density ratio is a function of ‖x‖² alone, which the separable critic's
norm feature computes exactly on z-scores, while ‖Φ⁻¹∘F̂(x)‖² of the scale mixture's normal scores
is not sufficient (``studies/README.md``: 0.98 nats of 1.19 at 25 dimensions, 1.16 on z-scores).
The z-scores in turn lose on heavy-tailed and bounded marginals, where the ranks win.

So the critic takes both (:class:`ValueFeatures`): ``T(x, y) = T₀([x, g_x(x), ‖g_x(x)‖²/d_x], [y, g_y(y),
‖g_y(y)‖²/d_y])`` with ``g`` the map from a column's normal scores back to its z-scores on the training
rows (the mean square of the z-scores is the norm feature on the original scale, sufficient for the
concentric mixtures, which the separable critic's own norm feature, over both scales at once, is not:
25-d concentric 1.09-1.11 against 1.07-1.10 for 1.19, ``studies/README.md``), linear between
``INVERSE_KNOTS`` of its quantiles (:func:`mi_estimators.arrays.inverse_knots`, computed by
:func:`~mi_estimators.estimation.readout.split` into ``Splits.inverse``). ``g`` is a fixed,
non-decreasing function of the normal scores, so ``T`` is a function of the transformed data like
any critic (every bound stays a bound), and it needs nothing but the normal scores: a cross-fitted
fold, whose columns are ranked on its own rows, reuses the split's knots (the two maps agree up to
the sampling error of the quantiles, which only changes which function of the data the critic
sees). Held-out values beyond the training range get the extreme knot's value, as they get the
extreme rank.

:func:`value_features` hands it to :class:`~mi_estimators.estimation.candidates.trained.TrainedCandidate`
as a ``Reduction`` for the separable critic on all columns (the default above 2 columns, up to
``VALUE_FEATURES_MAX_DIM`` of them: on images the doubled first layer would double the training
cost); the candidate keeps its name ``"trained"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mi_estimators.estimation.candidates.base import Context
from mi_estimators.estimation.candidates.trained import make_critic
from mi_estimators.estimation.options import EstimateOptions

__all__ = ["VALUE_FEATURES_MAX_DIM", "ValueFeatures", "ValueReduction", "interpolate", "value_features"]

#: the critic takes the value features up to this many columns of x and y together
VALUE_FEATURES_MAX_DIM = 128


def interpolate(t: Tensor, knots: Tensor, values: Tensor) -> Tensor:
    """Column j of ``t`` ``(N, d)`` mapped through the piecewise-linear function through the points
    ``(knots[j], values[j])`` (each ``(d, K)``, ``knots[j]`` non-decreasing), constant beyond the
    first and last knot; on tied knots (equal values there) the value of either.

    >>> interpolate(torch.tensor([[-2.0], [0.5], [1.5], [9.0]]), torch.tensor([[0.0, 1.0, 2.0]]),
    ...             torch.tensor([[0.0, 10.0, 30.0]])).ravel().tolist()
    [0.0, 5.0, 20.0, 30.0]
    """
    k = knots.shape[1]
    tt = t.T.contiguous()
    hi = torch.searchsorted(knots, tt, right=True).clamp(1, k - 1)
    s0, s1 = knots.gather(1, hi - 1), knots.gather(1, hi)
    v0, v1 = values.gather(1, hi - 1), values.gather(1, hi)
    w = ((tt - s0) / (s1 - s0).clamp_min(torch.finfo(t.dtype).tiny)).clamp(0.0, 1.0)
    return (v0 + w * (v1 - v0)).T


class ValueFeatures(nn.Module):
    """``T(x, y) = T₀([x, g_x(x), ‖g_x(x)‖²/d_x], [y, g_y(y), ‖g_y(y)‖²/d_y])`` (module docstring): the
    critic ``T₀`` of ``2 d_x + 1`` and ``2 d_y + 1`` inputs on each column's normal score, its
    interpolated z-score, and the mean square of the z-scores; the knots are buffers (not trained).

    >>> from mi_estimators.critics import SeparableCritic
    >>> knots = torch.tensor([[-1.0, 1.0]]), torch.tensor([[-3.0, 3.0]])
    >>> critic = ValueFeatures(SeparableCritic(3, 3, hidden=8, embed_dim=4), knots, knots)
    >>> x = torch.tensor([[0.5], [-2.0]])
    >>> inputs = torch.tensor([[0.5, 1.5, 2.25], [-2.0, -3.0, 9.0]])
    >>> bool(torch.equal(critic(x, x), critic.critic(inputs, inputs)))
    True
    """

    def __init__(self, critic: nn.Module, x_knots: tuple[Tensor, Tensor], y_knots: tuple[Tensor, Tensor]):
        super().__init__()
        self.critic = critic
        for name, (s, v) in (("x", x_knots), ("y", y_knots)):
            if s.dim() != 2 or s.shape != v.shape or s.shape[1] < 2:
                raise ValueError(f"{name}_knots must be two (d, K) tensors with K >= 2, got shapes "
                                 f"{tuple(s.shape)} and {tuple(v.shape)}")
            self.register_buffer(f"{name}_knots", s.detach().clone())
            self.register_buffer(f"{name}_values", v.detach().clone())

    def _side(self, t: Tensor, knots: Tensor, values: Tensor) -> Tensor:
        if t.dim() != 2 or t.shape[1] != knots.shape[0]:
            raise ValueError(f"expected inputs of shape (N, {knots.shape[0]}), got {tuple(t.shape)}")
        z = interpolate(t, knots, values)
        return torch.cat([t, z, z.square().mean(1, keepdim=True)], 1)

    def inputs(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """What the inner critic takes: each side's normal scores beside their interpolated z-scores
        and the z-scores' mean square."""
        return self._side(x, self.x_knots, self.x_values), self._side(y, self.y_knots, self.y_values)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.critic(*self.inputs(x, y))


@dataclass(frozen=True)
class ValueReduction:
    """The ``Reduction`` (:class:`~mi_estimators.estimation.candidates.trained.Reduction`) that builds
    :class:`ValueFeatures` around the critic of ``opts`` with the split's knots, on any rows."""

    inverse: tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]
    name: str = "trained"
    info: dict = field(default_factory=lambda: dict(inputs="normal scores, z-scores and their mean square"))

    def critic(self, opts: EstimateOptions, x: Tensor, y: Tensor) -> nn.Module:
        """The critic of ``opts`` on twice the columns of ``(x, y)`` and one more a side, wrapped."""
        inner = make_critic(opts, 2 * x.shape[1] + 1, 2 * y.shape[1] + 1)
        knots = [tuple(k.to(device=x.device, dtype=x.dtype) for k in side) for side in self.inverse]
        return ValueFeatures(inner, *knots)


def value_features(ctx: Context, rank: int | None) -> ValueReduction | None:
    """The value features for the trained candidate of ``ctx`` (module docstring), or None: with a
    canonical reduction (``rank``), another transform than the ranks, a critic other than the
    separable one, or more than ``VALUE_FEATURES_MAX_DIM`` columns."""
    dims = sum(a.shape[1] for a in ctx.data.train)
    if rank is not None or ctx.data.inverse is None or ctx.opts.critic != "separable" or dims > VALUE_FEATURES_MAX_DIM:
        return None
    return ValueReduction(ctx.data.inverse)
