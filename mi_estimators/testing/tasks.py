"""``check_task``: the closed-form task contract, checked with hypothesis.

A task has ``x_dim``, ``y_dim``, ``mi`` (nats), ``sample(n, seed) -> (x, y)`` and, where known,
``log_density_ratio(x, y)`` (:mod:`mi_estimators.tasks.base`). The properties (``TASK_PROPERTIES``):

* **attributes**: ``x_dim`` and ``y_dim`` positive integers, ``mi`` a finite number >= 0 (MI is
  never negative), and, checked by registry name, ``task.id`` equal to that name.
* **sample shapes**: ``sample(n, seed)`` gives finite float64 arrays ``(n, x_dim)``, ``(n, y_dim)``
  for any n >= 1.
* **reproducible by seed**: the same seed gives the same draws, another seed other draws.
* **mi agrees with Monte-Carlo**: on ``samples`` of the task's own draws, ``log_density_ratio`` is
  finite and its mean is within 5 standard errors (+ 1e-3 nats) of ``mi``, since
  ``I(X; Y) = E_p[log p(x, y) / p(x)p(y)]``.
* **density ratio normalised**: ``r = p(x, y) / p(x)p(y)`` integrates to one under the product of
  the marginals, ``E_{p(x)p(y)}[r] = 1``, and ``E_p[1/r] <= 1``; the Monte-Carlo means (pairs
  ``(x_i, y_{i+1})`` for the product) must not exceed 1 by more than 5 standard errors (+ 1e-3).
  This catches a ratio and an ``mi`` that are off by the same constant, which the previous
  property cannot see. One-sided, so heavy right tails (high MI) cannot fail it by chance.

The last two apply to tasks with a closed-form ``log_density_ratio`` (one that raises
``NotImplementedError`` skips them).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
from hypothesis import settings as Settings
from hypothesis import strategies as st

from mi_estimators.testing._core import Subject, require, run, selected

__all__ = ["HINTS", "TASK_PROPERTIES", "check_task"]

TASK_PROPERTIES = (
    "attributes",
    "sample shapes",
    "reproducible by seed",
    "mi agrees with Monte-Carlo",
    "density ratio normalised",
)

#: one line per property on what to fix, shown with its failures
HINTS = {
    "attributes": "set x_dim and y_dim (positive ints), mi (finite nats >= 0) and, when registered, id = the name",
    "sample shapes": "return float64 arrays of shapes (n, x_dim) and (n, y_dim) from sample(n, seed)",
    "reproducible by seed": "draw only from numpy.random.default_rng(seed), never from global state",
    "mi agrees with Monte-Carlo": "make mi equal E_p[log_density_ratio(x, y)]: one of the two is wrong",
    "density ratio normalised": "log_density_ratio must be log p(x, y) - log p(x) - log p(y), no added constant",
}

#: allowed standard errors for the Monte-Carlo properties
SIGMAS = 5.0


def check_task(task: Any, /, *, samples: int = 20_000, settings: Settings | None = None,
               skip: Iterable[str] = (), **options: Any) -> None:
    """Check every property of ``TASK_PROPERTIES``; raise :class:`ConformanceError` at the first
    that fails.

    ``task`` is a registered task id (``"gauss-5x5-mi2"``), a factory called as
    ``factory(**options)``, or a task instance. ``samples``: the Monte-Carlo sample size.
    ``settings`` and ``skip`` as in :func:`~mi_estimators.testing.check_bound`.
    """
    if isinstance(task, str) or callable(task):
        subject = Subject(task, "tasks", options)
    else:
        instance = task
        subject = Subject(lambda: instance, "tasks", {})
        subject.label = f"{type(task).__name__}({getattr(task, 'id', '?')!r})"
    seed = st.integers(0, 2**32 - 1)
    for name in selected(TASK_PROPERTIES, skip):
        if name == "attributes":
            run(subject, name, lambda: _attributes(subject), hint=HINTS[name])
        elif name == "sample shapes":
            run(subject, name, lambda **d: _shapes(subject.make(), **d), examples=5, settings=settings,
                hint=HINTS[name], n=st.integers(1, 40), seed=seed)
        elif name == "reproducible by seed":
            run(subject, name, lambda **d: _reproducible(subject.make(), **d), examples=3, settings=settings,
                hint=HINTS[name], n=st.integers(2, 40), seed=seed, other=st.integers(1, 2**16))
        elif name == "mi agrees with Monte-Carlo":
            run(subject, name, lambda **d: _monte_carlo(subject.make(), samples, **d), examples=2,
                settings=settings, hint=HINTS[name], seed=seed)
        elif name == "density ratio normalised":
            run(subject, name, lambda **d: _normalised(subject.make(), samples, **d), examples=2,
                settings=settings, hint=HINTS[name], seed=seed)


def _attributes(subject: Subject) -> None:
    task = subject.make()
    for attr in ("x_dim", "y_dim"):
        value = getattr(task, attr, None)
        require(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1,
                f"task.{attr} = {value!r} is not a positive integer")
    mi = task.mi
    require(isinstance(mi, (float, int, np.floating)) and math.isfinite(mi) and mi >= 0,
            f"task.mi = {mi!r} is not a finite number of nats >= 0")
    if subject.name is not None:
        require(getattr(task, "id", None) == subject.name,
                f"task.id = {getattr(task, 'id', None)!r}, but it is registered as {subject.name!r}")


def _shapes(task: Any, n: int, seed: int) -> None:
    x, y = task.sample(n, seed=seed)
    for name, a, d in (("x", x, task.x_dim), ("y", y, task.y_dim)):
        require(isinstance(a, np.ndarray) and a.dtype == np.float64 and a.shape == (n, d),
                f"sample({n}, seed={seed}) gave {name} as {type(a).__name__} {getattr(a, 'dtype', '')} of shape "
                f"{getattr(a, 'shape', None)}, expected a float64 array of shape {(n, d)}")
        require(bool(np.isfinite(a).all()), f"sample({n}, seed={seed}) gave non-finite {name}")


def _reproducible(task: Any, n: int, seed: int, other: int) -> None:
    (x1, y1), (x2, y2) = task.sample(n, seed=seed), task.sample(n, seed=seed)
    require(np.array_equal(x1, x2) and np.array_equal(y1, y2), f"sample({n}, seed={seed}) differs between two calls")
    x3, y3 = task.sample(n, seed=(seed + other) % 2**32)
    require(not (np.array_equal(x1, x3) and np.array_equal(y1, y3)),
            f"sample({n}, seed) gives the same draws for the seeds {seed} and {(seed + other) % 2**32}")


def _ratio(task: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    try:
        ratio = task.log_density_ratio(x, y)
    except NotImplementedError:
        return None
    ratio = np.asarray(ratio, dtype=np.float64)
    require(ratio.shape == (len(x),), f"log_density_ratio gave shape {ratio.shape} for {len(x)} pairs")
    return ratio


def _monte_carlo(task: Any, samples: int, seed: int) -> None:
    x, y = task.sample(samples, seed=seed)
    ratio = _ratio(task, x, y)
    if ratio is None:
        return
    require(bool(np.isfinite(ratio).all()), f"log_density_ratio is not finite at {int((~np.isfinite(ratio)).sum())} "
                                            "of the task's own samples (p(x, y) > 0 there)")
    mean, se = ratio.mean(), ratio.std(ddof=1) / math.sqrt(samples)
    require(abs(mean - task.mi) <= SIGMAS * se + 1e-3,
            f"mi = {task.mi:.5f} nats, but the mean of log_density_ratio over {samples} own samples is "
            f"{mean:.5f} ± {se:.5f} ({abs(mean - task.mi) / max(se, 1e-300):.1f} standard errors away)")


def _normalised(task: Any, samples: int, seed: int) -> None:
    x, y = task.sample(samples, seed=seed)
    joint, product = _ratio(task, x, y), _ratio(task, x, np.roll(y, 1, axis=0))
    if joint is None:
        return
    with np.errstate(over="ignore"):
        checks = (("E_p(x)p(y)[r]", np.exp(product)), ("E_p(x,y)[1/r]", np.exp(-joint)))
    for what, values in checks:
        mean, se = values.mean(), values.std(ddof=1) / math.sqrt(samples)
        require(mean <= 1.0 + SIGMAS * se + 1e-3,
                f"{what} = {mean:.5f} ± {se:.5f} over {samples} samples, above 1: the density ratio is not "
                "normalised (log_density_ratio and mi may be off by the same constant)")
