"""What the four checks share: the error they raise, naming the entry, and running one property."""

from __future__ import annotations

import functools
import glob
import re
from typing import Any, Callable, Iterable, Sequence

import torch
from hypothesis import HealthCheck, Phase, example, given
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from mi_estimators import registry

__all__ = ["ConformanceError", "Subject", "require", "require_value_error", "run", "selected"]


class ConformanceError(AssertionError):
    """An entry broke a property of its kind's contract.

    ``entry`` names it (``distribution[name]`` through the registry, else the class or factory),
    ``property`` the broken property (one of the ``*_PROPERTIES`` names), ``detail`` what was seen.
    When hypothesis found it, the minimal failing example is attached as a note (in
    ``__notes__``, as the call of a function named after the property, e.g.
    ``finite_at_extreme_scores(batches=[tensor(...)])``; pytest prints it under the message).
    """

    def __init__(self, entry: str, property: str, detail: str):
        super().__init__(entry, property, detail)
        self.entry, self.property, self.detail = entry, property, detail

    def __str__(self) -> str:
        return f"{self.entry} breaks the property '{self.property}': {self.detail}"


class Subject:
    """The thing under check: a label for messages and a way to build fresh instances.

    ``target`` is a registry name of ``kind`` (labelled ``distribution[name]``) or a factory
    (labelled with its module and qualified name); ``options`` go to every call of ``make``.
    """

    def __init__(self, target: Any, kind: str, options: dict[str, Any]):
        self.name = target if isinstance(target, str) else None
        if self.name is not None:
            factory = registry.lookup(self.name, kind)
            found = [e for e, _ in registry.entries(kind, glob.escape(self.name)) if e.name == self.name]
            label = found[0].label if found else self.name
        elif isinstance(target, torch.nn.Module):
            raise TypeError(f"pass the {kind[:-1]}'s class or a function that builds one, not an instance "
                            f"({type(target).__name__}): every example needs a fresh one")
        elif callable(target):
            factory = target
            label = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
        else:
            raise TypeError(f"expected a registered {kind[:-1]} name or a factory (class or function), "
                            f"got {type(target).__name__}")
        if options:
            label += "(" + ", ".join(f"{k}={v!r}" for k, v in options.items()) + ")"
        self.label, self.factory, self.options = label, factory, dict(options)

    def make(self, **extra: Any) -> Any:
        """A fresh instance, built with the options and ``extra`` keywords."""
        return self.factory(**self.options, **extra)


def require(condition: Any, detail: str) -> None:
    """Fail the running property with ``detail`` unless ``condition`` (works under ``python -O``)."""
    if not condition:
        raise AssertionError(detail)


def require_value_error(call: Callable[[], Any], what: str, words: Sequence[str],
                        shown: Callable[[Any], str] = repr) -> None:
    """``call()`` must raise ``ValueError`` whose message mentions one of ``words`` (any other outcome
    fails, described with ``what``, e.g. "bound(scores) on scores with NaN"; ``shown`` renders a
    returned value)."""
    try:
        out = call()
    except ValueError as exc:
        require(any(w in str(exc).lower() for w in words),
                f"{what} raised ValueError({str(exc)!r}), which does not say what is wrong (expected a "
                f"mention of {' or '.join(map(repr, words))})")
        return
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}, not a ValueError saying what to fix") \
            from exc
    raise AssertionError(f"{what} returned {shown(out)} instead of raising ValueError")


def selected(names: Sequence[str], skip: Iterable[str]) -> list[str]:
    """``names`` less ``skip``; an unknown name in ``skip`` is an error (a typo must not skip nothing)."""
    skip = set(skip)
    unknown = skip - set(names)
    if unknown:
        raise ValueError(f"unknown properties in skip: {sorted(unknown)}; the properties are {list(names)}")
    return [n for n in names if n not in skip]


def _settings(examples: int, user: Settings | None) -> Settings:
    """The caller's settings, or the loaded profile's with at most ``examples`` examples and no
    deadline; never hypothesis' explain phase (slow, and its report would point into the kit)."""
    if user is not None:
        return Settings(user, phases=[p for p in user.phases if p != Phase.explain])
    base = Settings()
    return Settings(base, max_examples=max(1, min(examples, base.max_examples)), deadline=None,
                    suppress_health_check=[*base.suppress_health_check, HealthCheck.too_slow],
                    phases=[p for p in base.phases if p != Phase.explain])


def _wrapped(subject: Subject, prop: str, body: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(body)
    def run_body(**drawn: Any) -> None:
        try:
            with torch.random.fork_rng(devices=[]):
                body(**drawn)
        except (ConformanceError, HypothesisException):
            raise                      # hypothesis' own control flow (assume, ...) passes through
        except Exception as exc:  # noqa: BLE001 - any failure of the entry breaks the property
            detail = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
            raise ConformanceError(subject.label, prop, detail) from exc

    run_body.__name__ = run_body.__qualname__ = re.sub(r"\W+", "_", prop).strip("_")  # "scores_are_N_N"
    return run_body


def run(subject: Subject, prop: str, body: Callable[..., None], *, examples: int = 0,
        settings: Settings | None = None, explicit: Sequence[dict[str, Any]] = (),
        **strategies: st.SearchStrategy) -> None:
    """Run one property of ``subject``: ``body(**drawn)`` under hypothesis with ``strategies`` (at
    most ``examples`` examples unless ``settings`` say otherwise, plus the ``explicit`` ones), or
    once when there are no strategies. Any failure becomes a :class:`ConformanceError`."""
    test = _wrapped(subject, prop, body)
    if not strategies:
        test()
        return
    for kwargs in explicit:
        test = example(**kwargs)(test)
    _settings(examples, settings)(given(**strategies)(test))()
