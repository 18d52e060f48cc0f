"""The two properties of ``check_bound`` that hold a bound to the closed-form truth.

Both score samples of random Gaussian tasks (:func:`~mi_estimators.testing.strategies.gaussian_covariances`:
random dimensions and canonical correlations, MI exact) with the exact optimal critic
``T*(x, y) = log p(x, y) / (p(x) p(y))`` (:func:`~mi_estimators.testing.strategies.optimal_scores`),
plus a constant shift ``c``: every bound's optimum is ``T* + c`` for some constant (DV and InfoNCE:
any ``c``; NWJ: ``c = 1``; TUBA: its log-baseline). A bound is judged by its ``info.kind``; a bound
without ``info`` (or without ``kind``) is taken for a **lower bound on I(X; Y)**, the common case,
and a failure says to declare ``kind="upper"`` or ``"neither"`` if it is not one.

Two facts of Gaussian tasks fix the tolerances. Under the product of the marginals Q the ratio
``r = e^{T*}`` has ``E_Q[r] = 1`` and ``E_Q[r²] = ∫ p²/q = e^{2I}`` (per canonical pair
``1 / (1 - ρ²) = e^{2 m}``; the pairs multiply), so ``Var_Q(r) = e^{2I} - 1``. And the per-row means
``E_y[r(x, y)]`` are exactly 1, so the N(N-1) negatives of a batch average with variance
``Var_Q(r) / (N(N - 1))`` to first order.

* **optimal critic vs closed-form MI**: ``B = 32`` batches of ``N = 64`` (MI in [0, 1.5] nats, up
  to 2 + 2 dimensions). A lower bound holds for *every* critic, so for each shift ``c`` in
  ``SHIFTS`` the mean ``m`` of the B batch estimates at ``T* + c`` must satisfy
  ``m <= I + 6 se + (e^{2I} - 1) / (N(N - 1)) + 1e-5``: ``se`` is the standard error of ``m``
  measured from the batches (a t-statistic with 31 degrees of freedom passes 6 with probability
  about 1e-7, per example), the next term is twice the one finite-batch bias a valid bound has
  upwards, DV's ``-E[log mean_neg e^{T*}] ≈ Var_Q(r) / (2 N(N - 1))`` (Jensen; at most 0.005 nats at
  I = 1.5, where the measured se is 0.02 to 0.05), and 1e-5 nats covers rounding (a bound may
  compute in float32). An upper bound must not read below ``I - 6 se - 1e-5`` at ``T*``.
* **near the truth at the optimal critic** (lower bounds, and bounds without ``info``): a bound
  that is never above the truth can still be useless (a constant 0 is a valid lower bound). On a
  low-MI task (I in [0.3, 0.6] nats, up to 2 + 2 dimensions) with ``B = 16`` batches of ``N = 128``,
  the mean ``m`` at the bound's best constant shift must reach ``I - tol`` with
  ``tol = 6 se + (e^{2I} - 1) / N + 0.002 + 1e-5``. The shift is chosen on the first batch: the
  best of ``-1, -0.5, ..., 3``, then of it and its neighbours at ±0.25 and ±0.125. The terms: 6 se
  as above (t with 15 degrees of freedom beyond 6: about 1e-5); InfoNCE's gap at the optimal
  critic, ``E_P[log(1 + (r - 1) / N)] ≈ (E_P[r] - 1) / N = (e^{2I} - 1) / N`` (at most 0.019
  nats), the largest of the built-in bounds' (DV, MINE and NWJ at their optimum are unbiased or
  biased upwards); 0.002 nats, what the final 0.125-nat grid loses at most for a bound that
  depends on the shift like NWJ, ``c - e^{c - c*}``: ``e^{1/16} - 1 - 1/16`` (the first batch's
  optimum misses ``c*`` by ``log`` of a mean of 16256 negatives, about 0.01 nats, which costs
  ~1e-4); rounding. With se about 0.01 to 0.02 the tolerance is 0.07 to 0.16 nats (measured on the
  built-in bounds, which reach at most 0.4 of it), below every drawn truth,
  so a constant 0 always fails. A bound whose declared ceiling (``info.max_value``) at ``(N, N)``
  is below ``I + 1`` nat is capped near the truth by design and skipped; otherwise the ceiling
  ``M`` replaces N by ``min(N, e^M)`` in the InfoNCE term.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from hypothesis import strategies as st

from mi_estimators.tasks import GaussianTask
from mi_estimators.testing._core import run
from mi_estimators.testing.strategies import gaussian_covariances, optimal_scores

__all__ = ["SIGMAS", "near_truth", "not_beyond_truth"]

#: "optimal critic vs closed-form MI": batch size, number of batches, critic shifts
BATCH, BATCHES, SHIFTS = 64, 32, (-0.5, 0.0, 0.5, 1.0, 1.5)
#: "near the truth at the optimal critic": batch size, number of batches, the coarse grid of shifts
NEAR_BATCH, NEAR_BATCHES, COARSE_SHIFTS = 128, 16, tuple(0.5 * k for k in range(-2, 7))
#: allowed standard errors of a mean over batches
SIGMAS = 6.0
#: the most the final 0.125-nat grid of shifts loses for a bound that depends on the shift like NWJ
GRID_LOSS = math.exp(0.0625) - 1.0625
#: rounding (a bound may compute in float32: ~1e-7 relative on terms of a few nats)
ROUNDING = 1e-5

_DECLARE = ("if it is not a lower bound on I(X; Y), declare what it is: info = mi_estimators.BoundInfo(..., "
            "kind='upper') or kind='neither'")


def _kind(info: Any) -> tuple[str, bool]:
    """``(kind, declared)``: the declared kind, or ``"lower"`` for a bound that declares none."""
    kind = getattr(info, "kind", None)
    return (kind, True) if kind in ("lower", "upper", "neither") else ("lower", False)


def _critics(ctx: Any, spec: tuple, seed: int, n: int, batches: int) -> tuple[float, list[torch.Tensor]]:
    """``(I, [T*])``: the optimal critic's scores on ``batches`` batches of ``n`` joint samples of
    the Gaussian task ``spec``, shaped for the bound's first layout."""
    cov, x_dim, mi = spec
    task = GaussianTask(cov, x_dim)
    x, y = task.sample(n * batches, seed=seed)
    trailing = (1,) * (ctx.shapes[0].ndim - 2)
    return mi, [optimal_scores(task, x[b::batches], y[b::batches]).reshape(n, n, *trailing) for b in range(batches)]


def _mean_and_se(ctx: Any, critics: list[torch.Tensor], shift: float) -> tuple[float, float]:
    """The bound at ``T* + shift``, as the mean over the batches and its standard error."""
    values = torch.tensor([float(ctx.subject.make()(t + shift)) for t in critics], dtype=torch.float64)
    return float(values.mean()), float(values.std()) / math.sqrt(len(critics))


def _best_shift(ctx: Any, scores: torch.Tensor) -> float:
    """The shift ``c`` that maximises the bound at ``scores + c`` (one batch): the best of the
    0.5-nat grid ``COARSE_SHIFTS``, then of that point and its neighbours at ±0.25 and ±0.125."""
    def value(c: float) -> float:
        return float(ctx.subject.make()(scores + c))

    best = max(COARSE_SHIFTS, key=value)
    return max((best + d for d in (0.0, -0.25, 0.25, -0.125, 0.125)), key=value)


def not_beyond_truth(ctx: Any, name: str, hint: str) -> None:
    """The property "optimal critic vs closed-form MI" (see the module's docstring)."""
    kind, declared = _kind(ctx.info)
    if kind == "neither":
        return
    lower = kind == "lower"
    as_what = f"a declared {kind} bound" if declared else "a bound without info, taken for a lower bound"

    def body(spec: tuple, seed: int) -> None:
        mi, critics = _critics(ctx, spec, seed, BATCH, BATCHES)
        for shift in SHIFTS if lower else (0.0,):
            mean, se = _mean_and_se(ctx, critics, shift)
            bias = math.expm1(2 * mi) / (BATCH * (BATCH - 1)) if lower else 0.0
            slack = SIGMAS * se + bias + ROUNDING
            gap = mean - mi if lower else mi - mean
            if gap > slack:
                critic = "T*" if shift == 0 else f"T* {'+-'[shift < 0]} {abs(shift):g}"
                raise AssertionError(
                    f"at the optimal critic {critic} (T* = log p(x,y)/p(x)p(y)), the mean of {BATCHES} batch estimates "
                    f"(N = {BATCH}) is {mean:.4f} ± {se:.4f} nats: {gap:.4f} {'above' if lower else 'below'} the true "
                    f"MI {mi:.4f}, beyond the tolerance {slack:.2g} ({SIGMAS:g} standard errors"
                    f"{' + finite-batch bias (e^2I - 1)/N(N-1)' if lower else ''} + rounding) for {as_what}"
                    + ("" if declared else f"; {_DECLARE}"))

    run(ctx.subject, name, body, examples=6, settings=ctx.settings, hint=hint,
        spec=gaussian_covariances(st.floats(0.0, 1.5), max_dim=2), seed=st.integers(0, 2**32 - 1))


def near_truth(ctx: Any, name: str, hint: str) -> None:
    """The property "near the truth at the optimal critic" (see the module's docstring)."""
    kind, declared = _kind(ctx.info)
    if kind != "lower":
        return
    max_value = getattr(ctx.info, "max_value", None)
    as_what = "a declared lower bound" if declared else "a bound without info, taken for a lower bound"

    def body(spec: tuple, seed: int) -> None:
        shape = (NEAR_BATCH, NEAR_BATCH) + (1,) * (ctx.shapes[0].ndim - 2)
        ceiling = None if max_value is None else max_value(ctx.subject.make(), shape)
        if ceiling is not None and ceiling < spec[2] + 1.0:
            return                                    # capped near the truth by design: it cannot reach it
        mi, critics = _critics(ctx, spec, seed, NEAR_BATCH, NEAR_BATCHES)
        shift = _best_shift(ctx, critics[0])
        mean, se = _mean_and_se(ctx, critics, shift)
        n_eff = NEAR_BATCH if ceiling is None else min(NEAR_BATCH, math.exp(ceiling))
        tol = SIGMAS * se + math.expm1(2 * mi) / n_eff + GRID_LOSS + ROUNDING
        if mi - mean > tol:
            raise AssertionError(
                f"at its best constant shift of the optimal critic, T* {'+-'[shift < 0]} {abs(shift):g}, {as_what} "
                f"reads {mean:.4f} ± {se:.4f} nats over {NEAR_BATCHES} batches of N = {NEAR_BATCH}: {mi - mean:.4f} "
                f"below the true MI {mi:.4f}, beyond the tolerance {tol:.2g} ({SIGMAS:g} standard errors + InfoNCE's "
                f"gap (e^2I - 1)/N + the shift grid's {GRID_LOSS:.3f} + rounding). It does not read above the truth "
                "here, so it may be a valid lower bound, but it is a useless one")

    run(ctx.subject, name, body, examples=3, settings=ctx.settings, hint=hint,
        spec=gaussian_covariances(st.floats(0.3, 0.6), max_dim=2), seed=st.integers(0, 2**32 - 1))
