"""What the four checks share: the error they raise, naming the entry, judging a ValueError, and
running one property."""

from __future__ import annotations

import functools
import glob
import re
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import torch
from hypothesis import HealthCheck, Phase, example, given
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from mi_estimators import registry

__all__ = ["BadInput", "ConformanceError", "Failure", "Subject", "dtype_forms", "judge_bad_inputs", "require",
           "run", "selected", "shape_forms", "value_forms"]


class ConformanceError(AssertionError):
    """An entry broke a property of its kind's contract.

    ``entry`` names it (``distribution[name]`` through the registry, else the class or factory),
    ``property`` the broken property (one of the ``*_PROPERTIES`` names), ``detail`` what was seen,
    ``example`` the minimal failing example (hypothesis' shrunk call of a function named after the
    property, e.g. ``finite_at_extreme_scores(batches=[tensor(...)])``, or for a property checked on
    fixed inputs the input that broke it) and ``hint`` one line on what to fix. ``str(err)`` gives
    all four, one per line.
    """

    def __init__(self, entry: str, property: str, detail: str, example: str | None = None,
                 hint: str | None = None):
        super().__init__(entry, property, detail)
        self.entry, self.property, self.detail = entry, property, detail
        self.example, self.hint = example, hint

    def __str__(self) -> str:
        lines = [f"{self.entry} breaks the property '{self.property}': {self.detail}"]
        if self.example:
            lines.append("minimal example: " + self.example.replace("\n", "\n  "))
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n  ".join(lines)


ConformanceError.__module__ = "mi_estimators.testing"   # where users import it from, and tracebacks name it


class Failure(AssertionError):
    """A property's failure on a fixed input (not one hypothesis drew): ``example`` says which."""

    def __init__(self, detail: str, example: str):
        super().__init__(detail)
        self.example = example


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


class BadInput(NamedTuple):
    """An input a call must refuse with ``ValueError``.

    ``what`` says what is wrong ("a NaN entry"), ``code`` rebuilds it (the example a failure
    shows), ``args`` are the call's arguments, ``received`` names the offending part in words
    ("its shape (3, 4)") and ``shows`` gives its printed forms as regular expressions
    (:func:`shape_forms`, :func:`dtype_forms`, :func:`value_forms`), one of which the message
    must contain. ``shows`` is empty when what is wrong is a count (N = 1): a count cannot be told
    apart from any other number in prose without guessing the words around it.
    """

    what: str
    code: str
    args: tuple
    received: str = ""
    shows: tuple[str, ...] = ()


def shape_forms(shape: Sequence[int]) -> tuple[str, ...]:
    """How a message prints ``shape``: its sizes in order, as ``(3, 4)``, ``[3, 4]``,
    ``torch.Size([3, 4])`` or ``3x4``, not as part of a longer shape; a 1-D shape only bracketed
    (``(3,)``, ``[3]``)."""
    sizes = [str(int(d)) for d in shape]
    if len(sizes) == 1:
        return (rf"[(\[]\s*{sizes[0]}\s*,?\s*[)\]]",)
    sep = r"\s*[,x×]\s*"
    return (r"(?<![\w.,×])(?<![,×] )" + sep.join(sizes) + rf"(?!{sep}\d)(?![\w.])",)


def dtype_forms(dtype: torch.dtype) -> tuple[str, ...]:
    """Every name torch gives ``dtype`` (``torch.int64``: ``int64`` and ``long``)."""
    names = {str(dtype).removeprefix("torch.")} | {n for n in dir(torch) if getattr(torch, n, None) is dtype}
    return tuple(rf"\b{re.escape(n)}\b" for n in sorted(names))


def value_forms(value: float) -> tuple[str, ...]:
    """How Python and torch print an offending value without its sign (``nan``, ``inf``; the
    match ignores case, so ``NaN`` and ``infinite`` show them too)."""
    return (re.escape(str(abs(float(value)))),)


def judge_bad_inputs(calls: Sequence[tuple[str, Callable[..., Any]]], cases: Sequence[BadInput], *,
                     names_received: bool, shown: Callable[[Any], str] = repr) -> None:
    """Make every call of ``calls`` (``(how it is written, function)``) on every case.

    With ``names_received`` false (the property "... raise ValueError"), each must raise
    ``ValueError`` with a non-empty message: judged by the type alone, the message is quoted when
    anything else happens. With it true (the property "errors name the bad input"), the message of
    each ``ValueError`` must contain one of the case's ``shows`` patterns (case-insensitive): the
    offending shape, dtype or value as printed. Calls that do not raise ``ValueError`` are the
    other property's to judge. ``shown`` renders a returned value.
    """
    for case in cases:
        for how, call in calls:
            example = f"{how} with {case.code}"
            try:
                out = call(*case.args)
            except ValueError as exc:
                message = str(exc)
                if not names_received:
                    if not message.strip():
                        raise Failure(f"{how} on {case.what} raised ValueError with an empty message", example) \
                            from exc
                elif case.shows and not any(re.search(p, message, re.IGNORECASE) for p in case.shows):
                    raise Failure(f"{how} on {case.what} raised ValueError({message!r}), which does not show "
                                  f"{case.received} (what it received)", example) from exc
                continue
            except Exception as exc:
                if names_received:
                    continue
                raise Failure(f"{how} on {case.what} raised {type(exc).__name__}({str(exc)!r}), not a ValueError",
                              example) from exc
            if not names_received:
                raise Failure(f"{how} on {case.what} returned {shown(out)} instead of raising ValueError", example)


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


#: the example of a property that draws nothing and does not say which fixed input broke it
NO_INPUT = "none drawn: the property is checked once, on the entry as built"


def _wrapped(subject: Subject, prop: str, body: Callable[..., None], hint: str | None,
             drawn: bool) -> Callable[..., None]:
    @functools.wraps(body)
    def run_body(**drawn: Any) -> None:
        try:
            with torch.random.fork_rng(devices=[]):
                body(**drawn)
        except (ConformanceError, HypothesisException):
            raise                      # hypothesis' own control flow (assume, ...) passes through
        except Exception as exc:  # noqa: BLE001 - any failure of the entry breaks the property
            detail = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
            example = getattr(exc, "example", None) or (None if drawn else NO_INPUT)
            raise ConformanceError(subject.label, prop, detail, example, hint) from exc

    run_body.__name__ = run_body.__qualname__ = re.sub(r"\W+", "_", prop).strip("_")  # "scores_are_N_N"
    return run_body


def _take_example(err: ConformanceError, function: str) -> None:
    """Move hypothesis' note with the minimal failing call (``function(...)``) into ``err.example``,
    so that the error's message carries it (and pytest does not print it twice)."""
    notes = getattr(err, "__notes__", None) or []
    for note in notes:
        start = note.find(f"{function}(")
        if start >= 0 and err.example is None:
            err.example = note[start:].strip()
            notes.remove(note)
            return


def run(subject: Subject, prop: str, body: Callable[..., None], *, examples: int = 0,
        settings: Settings | None = None, explicit: Sequence[dict[str, Any]] = (), hint: str | None = None,
        **strategies: st.SearchStrategy) -> None:
    """Run one property of ``subject``: ``body(**drawn)`` under hypothesis with ``strategies`` (at
    most ``examples`` examples unless ``settings`` say otherwise, plus the ``explicit`` ones), or
    once when there are no strategies. Any failure becomes a :class:`ConformanceError` carrying
    the minimal example and ``hint`` (one line on what to fix)."""
    test = _wrapped(subject, prop, body, hint, bool(strategies))
    if not strategies:
        test()
        return
    for kwargs in explicit:
        test = example(**kwargs)(test)
    try:
        _settings(examples, settings)(given(**strategies)(test))()
    except ConformanceError as err:
        _take_example(err, test.__name__)
        raise
