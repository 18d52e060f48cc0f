"""Hypothesis strategies for MI code: score tensors, closed-form tasks and paired samples.

>>> from hypothesis import given, settings
>>> from mi_estimators.testing.strategies import score_tensors
>>> @settings(max_examples=20, deadline=None)
... @given(scores=score_tensors(("(N, N)", "(N, N, L)")))
... def test_shapes(scores):
...     assert scores.shape[0] == scores.shape[1] >= 2
>>> test_shapes()
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import Tensor

from mi_estimators import registry
from mi_estimators.bounds.base import ScoreShape
from mi_estimators.tasks import GaussianTask, Task

__all__ = ["PairedSample", "closed_form_tasks", "gaussian_covariances", "gaussian_tasks", "optimal_scores",
           "paired_samples", "registered_tasks", "score_tensors"]

FLOATS = (torch.float32, torch.float64)


def score_tensors(shapes: Sequence[ScoreShape | str] = (ScoreShape.PAIRS,), *, min_n: int = 2, max_n: int = 6,
                  max_locations: int = 3, max_components: int = 3, dtypes: Sequence[torch.dtype] = FLOATS,
                  max_abs: float = 30.0, extreme: float | None = 1e4) -> st.SearchStrategy[Tensor]:
    """Finite score tensors of one of ``shapes`` (``ScoreShape`` members or their strings, e.g. a
    bound's ``info.score_shapes``): ``(N, N)``, ``(N, N, L)`` or ``(N, N, L, K)``.

    Every entry is drawn on its own, about half of them a float in ``[-max_abs, max_abs]`` and the
    others ``0`` or ``±extreme`` (None: no extremes), so most tensors hold ties and, by default,
    scores of ±1e4; hypothesis shrinks a failure to a small, readable tensor (zeros and a few
    extremes). ``N`` lies in ``[min_n, max_n]``, ``L`` in ``[1, max_locations]``, ``K`` in
    ``[1, max_components]``. ``dtypes``: the floating-point types to draw from.
    """
    special = [0.0] + ([] if extreme is None else [float(extreme), -float(extreme)])
    return _score_tensors([ScoreShape(s) for s in shapes], st.integers(min_n, max_n), (max_locations, max_components),
                          list(dtypes), max_abs, special)


@st.composite
def _score_tensors(draw, layouts: list[ScoreShape], sizes: st.SearchStrategy[int], tops: tuple[int, int],
                   dtypes: list[torch.dtype], max_abs: float, special: list[float]) -> Tensor:
    """:func:`score_tensors`, its options resolved: N from ``sizes``, the trailing sizes up to ``tops``."""
    layout = ScoreShape(draw(st.sampled_from(layouts)))
    n = draw(sizes)
    dims = (n, n) + tuple(draw(st.integers(1, top)) for top in tops[: layout.ndim - 2])
    dtype = draw(st.sampled_from(dtypes))
    width = 32 if dtype == torch.float32 else 64
    elements = st.floats(-max_abs, max_abs, width=width) | st.sampled_from(special)
    np_dtype = np.float32 if width == 32 else np.float64
    return torch.from_numpy(draw(hnp.arrays(np_dtype, dims, elements=elements, fill=st.nothing()))).to(dtype)


@st.composite
def gaussian_covariances(draw, mi: float | st.SearchStrategy[float] = st.floats(0.0, 2.0), *,
                         max_dim: int = 3, max_condition: float = 100.0) -> tuple[np.ndarray, int, float]:
    """``(cov, x_dim, mi)``: a random positive-definite joint covariance of ``(X, Y)`` whose mutual
    information is exactly ``mi`` nats (a float, or a strategy of floats).

    Built in canonical form: ``k = min(dx, dy)`` canonical correlations
    ``ρ_k = sqrt(1 - e^{-2 m_k})`` splitting ``mi = Σ m_k`` at random weights, then random
    invertible maps ``A_x``, ``A_y`` of each side (which leave MI unchanged), then unit
    variances: ``Σ = [[A_x A_xᵀ, A_x R A_yᵀ], [A_y Rᵀ A_xᵀ, A_y A_yᵀ]]`` with ``R = diag(ρ)``,
    so ``½ log(det Σ_xx det Σ_yy / det Σ) = -½ Σ log(1 - ρ_k²) = mi``. Draws with a map
    conditioned worse than ``max_condition``, or whose MI computed from the determinants misses
    the target by more than 1e-6 nats (rounding near singular), are discarded with ``assume``.
    """
    target = float(draw(mi) if isinstance(mi, st.SearchStrategy) else mi)
    dx, dy = draw(st.integers(1, max_dim)), draw(st.integers(1, max_dim))
    k = min(dx, dy)
    weights = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=k, max_size=k)))
    rho = np.sqrt(-np.expm1(-2.0 * target * weights / weights.sum()))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ax, ay = rng.normal(size=(dx, dx)), rng.normal(size=(dy, dy))
    assume(np.linalg.cond(ax) < max_condition and np.linalg.cond(ay) < max_condition)
    r = np.zeros((dx, dy))
    r[range(k), range(k)] = rho
    cov = np.block([[ax @ ax.T, ax @ r @ ay.T], [ay @ r.T @ ax.T, ay @ ay.T]])
    scale = 1.0 / np.sqrt(np.diag(cov))
    cov = cov * scale[:, None] * scale[None, :]
    cov = (cov + cov.T) / 2
    assume(np.linalg.eigvalsh(cov).min() > 1e-9)
    assume(abs(GaussianTask(cov, dx).mi - target) < 1e-6)
    return cov, dx, target


def gaussian_tasks(mi: float | st.SearchStrategy[float] = st.floats(0.0, 2.0), *,
                   max_dim: int = 3) -> st.SearchStrategy[GaussianTask]:
    """Zero-mean Gaussian tasks with the covariances of :func:`gaussian_covariances` (``task.mi``
    equals the chosen MI to 1e-6 nats)."""
    return gaussian_covariances(mi, max_dim=max_dim).map(
        lambda spec: GaussianTask(spec[0], spec[1], id=f"gauss-random-mi{spec[2]:.4g}"))


def registered_tasks(pattern: str = "*") -> st.SearchStrategy[Task]:
    """Fresh instances of the registered tasks whose ids match ``pattern`` (plugins included)."""
    names = registry.available("tasks", pattern)
    if not names:
        raise ValueError(f"no registered task matches {pattern!r}; `mi-estimators list tasks` shows them")
    return st.sampled_from(names).map(lambda name: registry.get(name, kind="tasks"))


def closed_form_tasks(mi: float | st.SearchStrategy[float] = st.floats(0.0, 2.0), *,
                      max_dim: int = 3) -> st.SearchStrategy[Task]:
    """A registered task or a random Gaussian one (:func:`gaussian_tasks`): ``task.mi`` is exact."""
    return registered_tasks() | gaussian_tasks(mi, max_dim=max_dim)


class PairedSample(NamedTuple):
    """``n`` joint draws ``(x, y)`` of ``task`` with ``seed``: ``x`` is ``(n, x_dim)``, ``y`` ``(n, y_dim)``."""

    x: np.ndarray | Tensor
    y: np.ndarray | Tensor
    task: Task
    seed: int


@st.composite
def paired_samples(draw, tasks: st.SearchStrategy[Task] | None = None, *, min_n: int = 2, max_n: int = 64,
                   dtype: torch.dtype | None = None) -> PairedSample:
    """Joint samples of a drawn task (default :func:`closed_form_tasks`), as float64 arrays, or as
    tensors of ``dtype`` when one is given; the task and seed come along (the truth is ``task.mi``)."""
    task = draw(closed_form_tasks() if tasks is None else tasks)
    n, seed = draw(st.integers(min_n, max_n)), draw(st.integers(0, 2**32 - 1))
    x, y = task.sample(n, seed=seed)
    if dtype is not None:
        x, y = torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype)
    return PairedSample(x, y, task, seed)


def optimal_scores(task: Task, x, y) -> Tensor:
    """``scores[i, j] = log p(x_i, y_j) / (p(x_i) p(y_j))`` (float64, ``(len(x), len(y))``): the
    task's optimal critic on every pair, from ``task.log_density_ratio``. DV's and InfoNCE's
    optimum up to a constant, NWJ's minus one. Pairs off the task's support score ``-inf``.

    >>> import mi_estimators as mie
    >>> task = mie.get("gauss-1x1-mi0.5", kind="tasks")
    >>> x, y = task.sample(3, seed=0)
    >>> optimal_scores(task, x, y).shape
    torch.Size([3, 3])
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, m = len(x), len(y)
    ratio = task.log_density_ratio(np.repeat(x, m, axis=0), np.tile(y, (n, 1)))
    return torch.from_numpy(np.asarray(ratio, dtype=np.float64).reshape(n, m))
