"""Which bounds the validation suites run: every registered one (or those matching patterns),
each smoke-tested on a small score matrix first.

The suites train all of them at once on one stacked critic, copy k trained by bound k
(:func:`mi_estimators.fit.train_stacked`); each bound gets its own instance
(:meth:`BoundSet.instances`), so MINE's moving average is per bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from mi_estimators import registry

__all__ = ["BoundSet", "resolve_bounds"]


@dataclass
class BoundSet:
    """Names, a factory per name, and the errors of bounds that failed."""

    names: list[str]
    factories: list[Callable[[], Any]]
    errors: dict[str, str] = field(default_factory=dict)

    def instances(self) -> list[Any]:
        return [make() for make in self.factories]


def resolve_bounds(patterns: list[str] | None = None, options: dict[str, dict] | None = None) -> BoundSet:
    """Every registered bound (third-party ones included) whose name matches one of ``patterns``
    (fnmatch; all when None). A plugin that fails to load is skipped with a warning by
    :func:`mi_estimators.registry.entries`; a bound that fails on a small score matrix is
    reported in ``errors`` and left out."""
    options = options or {}
    names, factories, errors = [], [], {}
    pats = patterns or ["*"]
    seen = set()
    for pat in pats:
        matched = False
        for entry, obj in registry.entries("bounds", pat):
            matched = True
            if entry.name in seen:
                continue
            seen.add(entry.name)
            kw = options.get(entry.name, {})

            def make(obj=obj, kw=kw):
                return obj(**kw)

            try:  # a smoke test: value and gradient on an (8, 8) matrix
                scores = torch.randn(8, 8, generator=torch.Generator().manual_seed(0)).requires_grad_()
                bound = make()
                float(bound(scores.detach()))
                bound.loss(scores).backward()
            except Exception as exc:  # noqa: BLE001 - a broken third-party bound is reported, not fatal
                errors[entry.name] = f"{type(exc).__name__}: {exc}"
                continue
            names.append(entry.name)
            factories.append(make)
        if not matched:
            raise ValueError(f"no registered bound matches {pat!r}; available: {', '.join(registry.available())}")
    return BoundSet(names, factories, errors)
