"""``check_bound``: the properties every MI bound has, checked with hypothesis.

The properties (``BOUND_PROPERTIES``, in the order they run):

* **bad scores raise ValueError**: NaN or infinite entries, a non-square layout, an integer dtype,
  a rank the bound does not take, N < 2: ``bound(scores)`` and ``bound.loss(scores)`` raise
  ``ValueError`` with a non-empty message. Judged by the exception's type alone; whatever else
  happens (another exception, a returned value) is quoted in the failure.
* **errors name the bad input**: each such ``ValueError``'s message shows what it received: the
  offending value as printed (``nan``, ``inf``, in any case), the shape (``(3, 4)``, ``[3, 4]``,
  ``3x4``) or the dtype (any of torch's names for it: ``int64``, ``long``). No list of words is
  guessed: the patterns come from the input. N = 1 is exempt (a count cannot be told apart from
  other numbers in prose).
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
* **optimal critic vs closed-form MI**: at the exact log density ratio of random Gaussian tasks
  (plus constant shifts), the mean of 32 batch estimates (N = 64) is not above the true MI beyond
  its sampling error (for ``kind="upper"``: not below). Every bound is held to it: one without
  ``info`` is taken for a lower bound.
* **near the truth at the optimal critic** (lower bounds, declared or taken for one): on low-MI
  Gaussian tasks with 16 batches of N = 128, the best constant shift of the optimal critic reads
  within a stated tolerance of the truth; a bound that is valid but useless (a constant 0) fails.

The tolerances of the last two are derived in :mod:`mi_estimators.testing.bound_truth`. Every
bound call is made on a fresh instance (``factory(**options)``), so stateful bounds start from
their initial state in each example. A failure is a :class:`~mi_estimators.testing.ConformanceError`
with the property, the entry, the minimal example and a hint (``HINTS[property]``).
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
from mi_estimators.testing._core import (BadInput, Subject, dtype_forms, judge_bad_inputs, require, run, selected,
                                         shape_forms, value_forms)
from mi_estimators.testing.bound_truth import near_truth, not_beyond_truth
from mi_estimators.testing.strategies import score_tensors

__all__ = ["BOUND_PROPERTIES", "HINTS", "check_bound"]

BOUND_PROPERTIES = (
    "bad scores raise ValueError",
    "errors name the bad input",
    "scores not mutated",
    "finite at extreme scores",
    "invariant to a joint permutation",
    "value_and_loss agrees",
    "within declared ceiling",
    "optimal critic vs closed-form MI",
    "near the truth at the optimal critic",
)

#: one line per property on what to fix, shown with its failures
HINTS = {
    "bad scores raise ValueError": "validate the scores before using them; mi_estimators.bounds.base.check_scores "
                                   "raises a clear ValueError for all of these",
    "errors name the bad input": "put what was received in the message, e.g. f'..., got shape "
                                 "{tuple(scores.shape)}' or f'got dtype {scores.dtype}'",
    "scores not mutated": "compute out of place (no clamp_, fill_, +=) or on scores.clone()",
    "finite at extreme scores": "use torch.logsumexp(s) - log(n) for log-mean-exp, never s.exp().mean().log(); "
                                "mi_estimators.bounds.base.safe_exp for a plain e^T term",
    "invariant to a joint permutation": "treat every sample alike: average over the whole diagonal and all "
                                        "off-diagonal entries, never a particular row or position",
    "value_and_loss agrees": "make value_and_loss(scores) return what bound(scores) and bound.loss(scores) return",
    "within declared ceiling": "make info.max_value(bound, shape) the true maximum, or fix the bound",
    "optimal critic vs closed-form MI": "look for a wrong constant (log N, e^-1, + 1); a bound that is not a lower "
                                        "bound on I(X; Y) declares info with kind='upper' or kind='neither'",
    "near the truth at the optimal critic": "look for a lost term or scale; a bound loose by design declares its "
                                            "ceiling (info.max_value) or kind='neither'",
}


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
    as a lower bound on I(X; Y) (declare ``kind="upper"`` or ``"neither"`` if it is not one).
    """
    subject = Subject(bound, "bounds", options)
    info = getattr(subject.make(), "info", None)
    shapes = tuple(ScoreShape(s) for s in getattr(info, "score_shapes", (ScoreShape.PAIRS,)))
    ctx = _Bound(subject, info, shapes, settings)
    for name in selected(BOUND_PROPERTIES, skip):
        _PROPERTIES[name](ctx, name)


def _bad_scores(shapes: tuple[ScoreShape, ...]) -> list[BadInput]:
    """Scores every bound must refuse, each with what the refusal's message must show."""
    ndims = {s.ndim for s in shapes}
    good = (3, 3) + (2,) * (min(ndims) - 2)
    zeros = f"torch.zeros{good}"
    nan, inf = torch.zeros(good), torch.zeros(good)
    nan[0, 1], inf[1, 0] = float("nan"), float("inf")
    square, single = (3, 4) + good[2:], (1, 1) + good[2:]
    cases = [BadInput("a NaN entry", f"scores = {zeros}; scores[0, 1] = nan", (nan,), "the value nan",
                      value_forms(math.nan)),
             BadInput("an infinite entry", f"scores = {zeros}; scores[1, 0] = inf", (inf,), "the value inf",
                      value_forms(math.inf)),
             BadInput("a non-square (N, M) layout", f"scores = torch.zeros{square}", (torch.zeros(square),),
                      f"its shape {square}", shape_forms(square)),
             BadInput("an integer dtype", f"scores = {zeros}.long()", (torch.zeros(good, dtype=torch.long),),
                      "its dtype torch.int64", dtype_forms(torch.long)),
             BadInput("a single sample (N = 1)", f"scores = torch.zeros{single}", (torch.zeros(single),))]
    takes = " or ".join(str(s) for s in shapes)
    cases += [BadInput(f"rank {r} (the bound takes {takes})", f"scores = torch.zeros{(3,) * r}",
                       (torch.zeros((3,) * r),), f"its shape {(3,) * r}", shape_forms((3,) * r))
              for r in range(1, 6) if r not in ndims]
    return cases


def _bad_scores_raise(ctx: _Bound, name: str) -> None:
    calls = [("bound(scores)", lambda s: ctx.subject.make()(s)),
             ("bound.loss(scores)", lambda s: ctx.subject.make().loss(s))]
    names_received = name == "errors name the bad input"
    run(ctx.subject, name, lambda: judge_bad_inputs(calls, _bad_scores(ctx.shapes), names_received=names_received),
        hint=HINTS[name])


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

    run(ctx.subject, name, body, examples=10, settings=ctx.settings, hint=HINTS[name],
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

    run(ctx.subject, name, body, examples=25, settings=ctx.settings, hint=HINTS[name],
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

    run(ctx.subject, name, body, examples=10, settings=ctx.settings, hint=HINTS[name],
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

    run(ctx.subject, name, body, examples=10, settings=ctx.settings, hint=HINTS[name],
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

    run(ctx.subject, name, body, examples=15, settings=ctx.settings, hint=HINTS[name],
        scores=score_tensors(ctx.shapes, extreme=1e4), boost=st.sampled_from([0.0, 10.0, 1e4]))


_PROPERTIES = dict(zip(BOUND_PROPERTIES, (
    _bad_scores_raise, _bad_scores_raise, _not_mutated, _finite_at_extremes, _permutation_invariant,
    _one_pass_agrees, _within_ceiling,
    lambda ctx, name: not_beyond_truth(ctx, name, HINTS[name]),
    lambda ctx, name: near_truth(ctx, name, HINTS[name]))))
