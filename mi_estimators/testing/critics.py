"""``check_critic``: the properties every critic has, checked with hypothesis.

A critic is built as ``factory(x_dim=dx, y_dim=dy, **options)`` and maps ``x`` ``(N, dx)`` and ``y``
``(N, dy)`` to ``scores[i, j] = T(x_i, y_j)``. The properties (``CRITIC_PROPERTIES``):

* **bad input raises ValueError**: ``x`` or ``y`` with the wrong number of columns, 1-D or 3-D,
  or of an integer dtype: ``critic(x, y)`` raises ``ValueError`` with a non-empty message (judged
  by the type alone; anything else that happens is quoted in the failure).
* **errors name the bad input**: each such message shows what it received: the offending
  input's shape as printed (``(5, 3)``, ``[5, 3]``, ``5x3``) or its dtype (any of torch's names for
  it: ``int64``, ``long``), no list of words guessed.
* **scores are (N, N)**: finite floating-point ``(N, N)`` scores for any N >= 1 and any dimensions.
* **scores are pairwise**: in eval mode ``scores[i, j]`` depends on ``x_i`` and ``y_j`` alone:
  scoring a reordered sub-batch gives the matching entries of the full matrix (a critic that
  normalises over the batch breaks the score convention the bounds rely on).
* **stacked copies are (K, N, N)** (critics whose factory takes ``n_models``): with
  ``n_models=K`` the scores are ``(K, N, N)``.
* **gradients reach every parameter**: a weighted sum of the scores gives every parameter a
  finite gradient (stacked critics too).

A failure is a :class:`~mi_estimators.testing.ConformanceError` with the property, the entry, the
minimal example and a hint (``HINTS[property]``).
"""

from __future__ import annotations

import inspect
from typing import Any, Iterable

import torch
from hypothesis import settings as Settings
from hypothesis import strategies as st
from torch import Tensor

from mi_estimators.testing._core import (BadInput, Subject, dtype_forms, judge_bad_inputs, require, run, selected,
                                         shape_forms)

__all__ = ["CRITIC_PROPERTIES", "HINTS", "check_critic"]

CRITIC_PROPERTIES = (
    "bad input raises ValueError",
    "errors name the bad input",
    "scores are (N, N)",
    "scores are pairwise",
    "stacked copies are (K, N, N)",
    "gradients reach every parameter",
)

#: one line per property on what to fix, shown with its failures
HINTS = {
    "bad input raises ValueError": "check x and y before using them: 2-D floating-point tensors with x_dim and "
                                   "y_dim columns, else raise ValueError",
    "errors name the bad input": "put what was received in the message, e.g. f'..., got shape {tuple(x.shape)}'",
    "scores are (N, N)": "return scores[i, j] = T(x_i, y_j) for every pair, an (N, N) tensor, not only the diagonal",
    "scores are pairwise": "score each pair on its own: no statistics of the batch (normalisation) in eval mode",
    "stacked copies are (K, N, N)": "with n_models=K, stack the K copies' scores on a leading axis",
    "gradients reach every parameter": "use every parameter in the scores, or freeze it (requires_grad_(False))",
}


def check_critic(critic: Any, /, *, settings: Settings | None = None, skip: Iterable[str] = (),
                 stacked: bool | None = None, max_dim: int = 4, **options: Any) -> None:
    """Check every property of ``CRITIC_PROPERTIES``; raise :class:`ConformanceError` at the first
    that fails.

    ``critic`` is a registered name (``"separable"``) or a factory called as
    ``factory(x_dim=dx, y_dim=dy, **options)`` (dimensions drawn up to ``max_dim``). ``stacked``:
    whether to check ``n_models=K`` (default: when the factory's signature has ``n_models``).
    ``settings`` and ``skip`` as in :func:`~mi_estimators.testing.check_bound`.
    """
    subject = Subject(critic, "critics", options)
    if stacked is None:
        stacked = _takes(subject.factory, "n_models")
    dims = {"dx": st.integers(1, max_dim), "dy": st.integers(1, max_dim), "seed": st.integers(0, 2**32 - 1)}
    for name in selected(CRITIC_PROPERTIES, skip):
        if name in ("bad input raises ValueError", "errors name the bad input"):
            _bad_input(subject, name)
        elif name == "scores are (N, N)":
            run(subject, name, lambda **d: _shape(subject, **d), examples=10, settings=settings, hint=HINTS[name],
                n=st.integers(1, 9), **dims)
        elif name == "scores are pairwise":
            run(subject, name, lambda **d: _pairwise(subject, **d), examples=10, settings=settings, hint=HINTS[name],
                n=st.integers(2, 9), data=st.data(), **dims)
        elif name == "stacked copies are (K, N, N)" and stacked:
            run(subject, name, lambda **d: _shape(subject, **d), examples=5, settings=settings, hint=HINTS[name],
                n=st.integers(1, 6), k=st.integers(1, 3), **dims)
        elif name == "gradients reach every parameter":
            run(subject, name, lambda **d: _gradients(subject, **d), examples=5, settings=settings, hint=HINTS[name],
                n=st.integers(2, 6), k=st.sampled_from([None, 2] if stacked else [None]), **dims)


def _takes(factory: Any, parameter: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return parameter in params


def _inputs(n: int, dx: int, dy: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dx, generator=g), torch.randn(n, dy, generator=g)


def _build(subject: Subject, dx: int, dy: int, seed: int, k: int | None = None) -> Any:
    torch.manual_seed(seed)  # the runner restores the global generator afterwards
    return subject.make(x_dim=dx, y_dim=dy) if k is None else subject.make(x_dim=dx, y_dim=dy, n_models=k)


def _bad_input(subject: Subject, name: str) -> None:
    def body() -> None:
        critic = _build(subject, 2, 3, 0)
        x, y = _inputs(5, 2, 3, 0)
        xy = "x, y = torch.randn(5, 2), torch.randn(5, 3)"
        cases = [BadInput("x with 3 columns for x_dim=2", f"{xy}; x = torch.cat([x, x[:, :1]], 1)",
                          (torch.cat([x, x[:, :1]], 1), y), "the shape (5, 3) of x", shape_forms((5, 3))),
                 BadInput("y with 2 columns for y_dim=3", f"{xy}; y = y[:, :2]", (x, y[:, :2]),
                          "the shape (5, 2) of y", shape_forms((5, 2))),
                 BadInput("a 1-D x", f"{xy}; x = x[:, 0]", (x[:, 0], y), "the shape (5,) of x", shape_forms((5,))),
                 BadInput("a 3-D x", f"{xy}; x = x[:, :, None]", (x[:, :, None], y), "the shape (5, 2, 1) of x",
                          shape_forms((5, 2, 1))),
                 BadInput("an integer x", f"{xy}; x = x.long()", (x.long(), y), "the dtype torch.int64 of x",
                          dtype_forms(torch.long))]
        judge_bad_inputs([("critic(x, y)", critic)], cases, names_received=name == "errors name the bad input",
                         shown=lambda out: f"scores of shape {tuple(getattr(out, 'shape', ()))}")

    run(subject, name, body, hint=HINTS[name])


def _shape(subject: Subject, n: int, dx: int, dy: int, seed: int, k: int | None = None) -> None:
    critic = _build(subject, dx, dy, seed, k)
    scores = critic(*_inputs(n, dx, dy, seed))
    expected = (n, n) if k is None else (k, n, n)
    require(isinstance(scores, Tensor) and tuple(scores.shape) == expected,
            f"critic(x, y) for x {(n, dx)}, y {(n, dy)}{'' if k is None else f', n_models={k}'} returned "
            f"{tuple(getattr(scores, 'shape', ()))}, expected {expected}")
    require(scores.is_floating_point() and bool(torch.isfinite(scores).all()),
            f"the scores are not finite floating-point numbers: {scores}")


def _pairwise(subject: Subject, n: int, dx: int, dy: int, seed: int, data: st.DataObject) -> None:
    critic = _build(subject, dx, dy, seed).eval()
    x, y = _inputs(n, dx, dy, seed)
    m = data.draw(st.integers(1, n), label="sub-batch size")
    rows = torch.tensor(data.draw(st.permutations(range(n)), label="rows")[:m])
    cols = torch.tensor(data.draw(st.permutations(range(n)), label="columns")[:m])
    with torch.no_grad():
        full, part = critic(x, y), critic(x[rows], y[cols])
    expected = full[rows][:, cols]
    scale = 1.0 + float(full.abs().max())
    require(torch.allclose(part, expected, rtol=1e-4, atol=1e-5 * scale),
            f"scores of the sub-batch x[{rows.tolist()}], y[{cols.tolist()}] differ from the same pairs in the "
            f"full batch by up to {float((part - expected).abs().max()):.3g}: scores[i, j] must be T(x_i, y_j)")


def _gradients(subject: Subject, n: int, dx: int, dy: int, seed: int, k: int | None) -> None:
    critic = _build(subject, dx, dy, seed, k)
    scores = critic(*_inputs(n, dx, dy, seed))
    weights = torch.randn(scores.shape, generator=torch.Generator().manual_seed(seed))
    (scores * weights).sum().backward()
    params = [(name, p) for name, p in critic.named_parameters() if p.requires_grad]
    missing = [name for name, p in params if p.grad is None]
    require(not missing, f"no gradient reaches the parameters {missing}{'' if k is None else f' (n_models={k})'}")
    bad = [name for name, p in params if not bool(torch.isfinite(p.grad).all())]
    require(not bad, f"non-finite gradients in {bad}")
