"""Narrow data: the separable critic trained beside the concat critic, the monitor split choosing.

``critic="auto"`` trains a concat critic T(x, y) = MLP([x, y]) on data of at most
:data:`~mi_estimators.estimation.options.AUTO_CONCAT_MAX_DIM` columns in all (1+1), and the
separable critic g(x)ᵀh(y) above. Neither is better on every kind of 1+1 dependence (n = 5,000, three
sample seeds, ``studies/README.md``):

* on additive uniform noise the concat critic reads closer: 0.34 / 0.29 / 0.33 against 0.30 / 0.28
  / 0.28 for 0.333 nats, 1.65-1.68 against 1.52-1.53 for 1.709 (a sharp band y ≈ x, which a
  product g(x)ᵀh(y) of smooth embeddings draws poorly);
* on the Gaussian mixtures of Czyż et al. 2023 the separable one does: AI 0.73-0.75 against
  0.66-0.71 for 0.777 (the concat critic ends underfit, its training value no higher than its
  estimate), X 0.38-0.41 against 0.37-0.40 for 0.409.

Both are cheap at two columns, so with ``critic="auto"`` on narrow data :func:`separable_candidate`
trains the separable critic too (with its own batch and learning rate, on each column's normal score
and z-score like above two columns, :mod:`~mi_estimators.estimation.candidates.features`), named
``"trained-separable"``; the monitor split chooses among them and the copula as among any
candidates, and on every (task, seed) above it chose the one that reads closer. It races
(:func:`~mi_estimators.estimation.candidates.trained.race`) against the better monitor value of the
copula and the concat critic, so where either is ahead it stops after
:data:`~mi_estimators.estimation.candidates.trained.RACE_AFTER` steps.
"""

from __future__ import annotations

import dataclasses

from mi_estimators.estimation.candidates.base import Candidate, Context
from mi_estimators.estimation.candidates.features import value_features
from mi_estimators.estimation.candidates.trained import TrainedCandidate
from mi_estimators.estimation.options import EstimateOptions

__all__ = ["SEPARABLE_NAME", "separable_candidate"]

#: the name of the separable critic trained beside the concat critic (``settings.monitor``)
SEPARABLE_NAME = "trained-separable"


def separable_candidate(ctx: Context, given: EstimateOptions, n: int,
                        rivals: list[Candidate | None]) -> TrainedCandidate | None:
    """The separable critic on the narrow data of ``ctx`` (module docstring), trained with the
    options ``given`` to :func:`~mi_estimators.estimate` resolved for the separable critic and ``n``
    rows, racing the best monitor value among ``rivals``; None unless ``given.critic`` is ``"auto"``
    and it resolved to the concat critic."""
    if not (given.critic == "auto" and ctx.opts.critic == "concat"):
        return None
    x, y = ctx.data.train
    opts = dataclasses.replace(given, critic="separable").resolve(x.shape[1], y.shape[1], n)
    own = ctx._replace(opts=opts)
    values = [c.monitor for c in rivals if c is not None]
    return TrainedCandidate.fit(own, None, value_features(own, None), rival=max(values, default=None),
                                name=SEPARABLE_NAME)
