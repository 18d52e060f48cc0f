"""``check_bound``: the properties every MI bound has, checked with hypothesis.

The properties (``BOUND_PROPERTIES``, in the order they run):

* **bad scores raise ValueError**: NaN or infinite entries, a non-square layout, an integer dtype,
  a rank the bound does not take, N < 2: ``bound(scores)`` and ``bound.loss(scores)`` raise
  ``ValueError`` whose message names the problem (e.g. "NaN", "shape", "float", "at least").
* **scores not mutated**: neither call changes its input.
* **finite at extreme scores**: with entries of ±1e4 (and ties, zeros, ordinary values; float32
  and float64), value and loss are finite scalar tensors with finite gradients. A stateful bound
  gets several such batches in a row (MINE's moving average).
* **invariant to a joint permutation**: permuting the batch (the same permutation of rows and
  columns, and any permutation of the locations of ``(N, N, L)`` scores) changes neither value nor
  loss: positives stay on the diagonal.
* **value_and_loss agrees** (subclasses of :class:`~mi_estimators.Bound`): the one-pass
  ``value_and_loss`` gives what ``bound(scores)`` and ``bound.loss(scores)`` give.
* **within declared ceiling** (when ``info.max_value`` is set): the value never exceeds
  ``info.max_value(bound, scores.shape)``, up to rounding of the scores, also for scores whose
  positives stand out by up to 1e4.
* **optimal critic vs closed-form MI** (``info.kind`` lower or upper): on random Gaussian tasks
  (MI up to 1.5 nats, up to 2 + 2 dimensions), scores are the exact log density ratio
  ``log p(x, y) / p(x)p(y)`` of 32 batches of 64 samples. A lower bound holds for *every* critic,
  so the mean of the 32 batch estimates at ``T* + c`` must not exceed the true MI by more than
  6 standard errors (+ 0.01 nats) for each shift ``c`` in -0.5, 0, 0.5, 1, 1.5, which contains the
  optimum of both families (DV, InfoNCE: any constant; NWJ: ``1 + T*``); an upper bound must not
  read below the truth at ``T*``.

Every bound call is made on a fresh instance (``factory(**options)``), so stateful bounds start
from their initial state in each example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from hypothesis import settings as Settings
from hypothesis import strategies as st
from torch import Tensor

from mi_estimators.bounds.base import Bound, BoundInfo, ScoreShape
from mi_estimators.tasks import GaussianTask
from mi_estimators.testing._core import Subject, require, require_value_error, run, selected
from mi_estimators.testing.strategies import gaussian_covariances, optimal_scores, score_tensors

__all__ = ["BOUND_PROPERTIES", "check_bound"]

BOUND_PROPERTIES = (
    "bad scores raise ValueError",
    "scores not mutated",
    "finite at extreme scores",
    "invariant to a joint permutation",
    "value_and_loss agrees",
    "within declared ceiling",
    "optimal critic vs closed-form MI",
)

#: the optimal-critic property: batch size, number of batches, critic shifts, allowed standard errors
BATCH, BATCHES, SHIFTS, SIGMAS = 64, 32, (-0.5, 0.0, 0.5, 1.0, 1.5), 6.0


@dataclass
class _Bound:
    subject: Subject
    info: BoundInfo | None
    shapes: tuple[ScoreShape, ...]
    settings: Settings | None

    def both(self, scores: Tensor) -> tuple[Any, Any]:
        """``bound(scores)`` and ``bound.loss(scores)``, each from a fresh instance."""
        return self.subject.make()(scores), self.subject.make().loss(scores)


def check_bound(bound: Any, /, *, settings: Settings | None = None, skip: Iterable[str] = (),
                **options: Any) -> None:
    """Check every property of ``BOUND_PROPERTIES`` for a bound; raise :class:`ConformanceError`
    at the first that fails.

    ``bound`` is a registered name (``"infonce"``) or a factory (a class or function) called as
    ``factory(**options)`` for every fresh instance. ``settings`` (a ``hypothesis.settings``)
    replaces the checks' own (a few examples per property, no deadline); ``skip`` names
    properties to leave out. The layouts and the kind come from ``bound.info``
    (:class:`~mi_estimators.BoundInfo`); a bound without ``info`` is checked on ``(N, N)`` scores
    as ``kind="neither"``.
    """
    subject = Subject(bound, "bounds", options)
    info = getattr(subject.make(), "info", None)
    shapes = tuple(ScoreShape(s) for s in getattr(info, "score_shapes", (ScoreShape.PAIRS,)))
    ctx = _Bound(subject, info, shapes, settings)
    for name in selected(BOUND_PROPERTIES, skip):
        _PROPERTIES[name](ctx, name)


def _bad_scores(shapes: tuple[ScoreShape, ...]) -> list[tuple[str, Tensor, tuple[str, ...]]]:
    """``(what is wrong, scores, words one of which the error message must contain)``."""
    ndims = {s.ndim for s in shapes}
    good = (3, 3) + (2,) * (min(ndims) - 2)
    nan, inf = torch.zeros(good), torch.zeros(good)
    nan[0, 1], inf[1, 0] = float("nan"), float("inf")
    cases = [("a NaN entry", nan, ("nan", "finite")), ("an infinite entry", inf, ("inf", "finite")),
             ("a non-square (N, M) layout", torch.zeros((3, 4) + good[2:]), ("shape", "square")),
             ("an integer dtype", torch.zeros(good, dtype=torch.long), ("float", "dtype")),
             ("a single sample (N = 1)", torch.zeros((1, 1) + good[2:]), ("sample", "at least", "n >=", "n = 1"))]
    takes = " or ".join(str(s) for s in shapes)
    cases += [(f"rank {r} (the bound takes {takes})", torch.zeros((3,) * r), ("shape", "dim", "rank"))
              for r in range(1, 6) if r not in ndims]
    return cases


def _bad_scores_raise(ctx: _Bound, name: str) -> None:
    def body() -> None:
        for what, scores, words in _bad_scores(ctx.shapes):
            for call in ("bound(scores)", "bound.loss(scores)"):
                bound = ctx.subject.make()
                method = bound if call == "bound(scores)" else bound.loss
                require_value_error(lambda: method(scores), f"{call} on scores with {what}", words)

    run(ctx.subject, name, body)


def _not_mutated(ctx: _Bound, name: str) -> None:
    def body(scores: Tensor, grad: bool) -> None:
        scores = scores.clone()
        before = scores.clone()
        scores.requires_grad_(grad)
        ctx.both(scores)
        bound = ctx.subject.make()
        if isinstance(bound, Bound):
            bound.value_and_loss(bound.check(scores))
        require(torch.equal(scores.detach(), before), f"the bound changed its input in place: {before} became "
                                                      f"{scores.detach()}")

    run(ctx.subject, name, body, examples=10, settings=ctx.settings,
        scores=score_tensors(ctx.shapes), grad=st.booleans())


def _check_scalar(what: str, out: Any, scores: Tensor) -> None:
    require(isinstance(out, Tensor) and out.dim() == 0, f"{what} returned {out!r}, not a scalar tensor")
    require(bool(torch.isfinite(out)), f"{what} = {out.item()} is not finite")
    require(out.requires_grad, f"{what} carries no gradient with respect to the scores")
    (grad,) = torch.autograd.grad(out, scores, allow_unused=True)
    require(grad is not None, f"{what} does not depend on the scores")
    bad = int((~torch.isfinite(grad)).sum())
    require(bad == 0, f"the gradient of {what} (= {out.item():.6g}) has {bad} non-finite entries")


def _finite_at_extremes(ctx: _Bound, name: str) -> None:
    stateful = bool(getattr(ctx.info, "stateful", False))

    def body(batches: list[Tensor]) -> None:
        bound, trainer = ctx.subject.make(), ctx.subject.make()  # one instance for a run of batches
        for scores in batches:
            scores = scores.clone().requires_grad_()
            _check_scalar("bound(scores)", bound(scores), scores)
            _check_scalar("bound.loss(scores)", trainer.loss(scores), scores)

    run(ctx.subject, name, body, examples=25, settings=ctx.settings,
        batches=st.lists(score_tensors(ctx.shapes, extreme=1e4), min_size=1, max_size=3 if stateful else 1))


def _permutation_invariant(ctx: _Bound, name: str) -> None:
    def body(scores: Tensor, data: st.DataObject) -> None:
        n = scores.shape[0]
        rows = torch.tensor(data.draw(st.permutations(range(n)), label="permutation of the batch"))
        permuted = scores[rows][:, rows]
        if scores.dim() >= 3:
            locs = data.draw(st.permutations(range(scores.shape[2])), label="permutation of the locations")
            permuted = permuted[:, :, torch.tensor(locs)]
        for what, a, b in zip(("bound(scores)", "bound.loss(scores)"), ctx.both(scores), ctx.both(permuted)):
            require(torch.allclose(a, b, rtol=1e-6, atol=1e-9),
                    f"{what} is {a.item():.10g}, but {b.item():.10g} after the same permutation of the rows "
                    "and columns (and of the locations)")

    run(ctx.subject, name, body, examples=10, settings=ctx.settings,
        scores=score_tensors(ctx.shapes, dtypes=(torch.float64,), max_abs=10.0, extreme=None), data=st.data())


def _one_pass_agrees(ctx: _Bound, name: str) -> None:
    if not isinstance(ctx.subject.make(), Bound):
        return

    def body(scores: Tensor) -> None:
        value, loss = ctx.both(scores)
        bound = ctx.subject.make()
        pair = bound.value_and_loss(bound.check(scores))
        for what, a, b in (("value", value, pair[0]), ("loss", loss, pair[1])):
            require(torch.allclose(a, b, rtol=1e-5, atol=1e-5),
                    f"value_and_loss(scores) gives the {what} {b.item():.8g}, bound{'' if what == 'value' else '.loss'}"
                    f"(scores) gives {a.item():.8g}")

    run(ctx.subject, name, body, examples=10, settings=ctx.settings,
        scores=score_tensors(ctx.shapes, extreme=None))


def _within_ceiling(ctx: _Bound, name: str) -> None:
    max_value = getattr(ctx.info, "max_value", None)
    if max_value is None:
        return

    def body(scores: Tensor, boost: float) -> None:
        n = scores.shape[0]
        scores = scores + boost * torch.eye(n, dtype=scores.dtype).reshape(n, n, *[1] * (scores.dim() - 2))
        bound = ctx.subject.make()
        ceiling = max_value(bound, tuple(scores.shape))
        if ceiling is None:
            return
        value = float(bound(scores))
        rounding = 8 * torch.finfo(scores.dtype).eps * float(scores.abs().max())
        require(value <= ceiling + 1e-6 * (1 + abs(ceiling)) + rounding,
                f"bound(scores) = {value:.8g} nats is above the declared ceiling info.max_value = {ceiling:.8g} "
                f"for scores of shape {tuple(scores.shape)}")

    run(ctx.subject, name, body, examples=15, settings=ctx.settings,
        scores=score_tensors(ctx.shapes, extreme=1e4), boost=st.sampled_from([0.0, 10.0, 1e4]))


def _optimal_critic(ctx: _Bound, name: str) -> None:
    kind = getattr(ctx.info, "kind", "neither")
    if kind not in ("lower", "upper"):
        return
    lower = kind == "lower"
    trailing = (1,) * (ctx.shapes[0].ndim - 2)

    def body(spec: tuple, seed: int) -> None:
        cov, x_dim, mi = spec
        task = GaussianTask(cov, x_dim)
        x, y = task.sample(BATCH * BATCHES, seed=seed)
        critics = [optimal_scores(task, x[b::BATCHES], y[b::BATCHES]).reshape(BATCH, BATCH, *trailing)
                   for b in range(BATCHES)]
        for shift in SHIFTS if lower else (0.0,):
            values = torch.tensor([float(ctx.subject.make()(t + shift)) for t in critics], dtype=torch.float64)
            mean, se = float(values.mean()), float(values.std()) / math.sqrt(BATCHES)
            slack = SIGMAS * se + 0.01
            gap = mean - mi if lower else mi - mean
            require(gap <= slack,
                    f"at the optimal critic log p(x,y)/p(x)p(y) + {shift:g}, the mean of {BATCHES} batch estimates "
                    f"(N = {BATCH}) is {mean:.4f} ± {se:.4f} nats, {'above' if lower else 'below'} the true MI "
                    f"{mi:.4f} by {gap:.4f} (more than {SIGMAS:g} standard errors + 0.01) for a declared "
                    f"{kind} bound")

    run(ctx.subject, name, body, examples=6, settings=ctx.settings,
        spec=gaussian_covariances(st.floats(0.0, 1.5), max_dim=2), seed=st.integers(0, 2**32 - 1))


_PROPERTIES = dict(zip(BOUND_PROPERTIES, (_bad_scores_raise, _not_mutated, _finite_at_extremes,
                                          _permutation_invariant, _one_pass_agrees, _within_ceiling,
                                          _optimal_critic)))
