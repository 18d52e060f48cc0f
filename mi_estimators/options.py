"""Validators for the options of bounds, critics, kernels, ``estimate()`` and trainers.

One place for every check of a user-given option: numbers here, unknown option names
(:func:`check_known`, with the closest valid name) and ``KEY=VALUE`` options (:func:`parse_options`).
For the numbers, so that every option rejects the same bad
values with the same kind of message: ``ValueError("<name> must be ..., got <value>")``, followed
by a hint that says what a sensible value looks like. ``bool`` is never accepted as a number
(``True`` is an ``int`` in Python, but ``mixture=True`` is a mistake, not one component).

>>> positive_int("batch_size", 64)
64
>>> positive_float("lr", 0.0)
Traceback (most recent call last):
...
ValueError: lr must be a positive finite number, got 0.0
>>> check_known({"epoch": 2}, ["epochs", "lr"], "unknown TrainConfig option")
Traceback (most recent call last):
...
ValueError: unknown TrainConfig option 'epoch'; did you mean 'epochs'?
"""

from __future__ import annotations

import ast
import difflib
import math
import numbers
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

__all__ = ["finite_float", "positive_float", "non_negative_float", "unit_interval_float", "integer",
           "positive_int", "optional", "did_you_mean", "check_known", "parse_options"]

T = TypeVar("T")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _fail(name: str, what: str, value: Any, hint: str) -> ValueError:
    return ValueError(f"{name} must be {what}{hint}, got {value!r}")


def finite_float(name: str, value: Any, hint: str = "") -> float:
    """A finite real number, as ``float``."""
    if not _is_real(value):
        raise _fail(name, "a finite number", value, hint)
    return float(value)


def positive_float(name: str, value: Any, hint: str = "") -> float:
    """A finite number ``> 0``."""
    if not _is_real(value) or value <= 0:
        raise _fail(name, "a positive finite number", value, hint)
    return float(value)


def non_negative_float(name: str, value: Any, hint: str = "") -> float:
    """A finite number ``>= 0``."""
    if not _is_real(value) or value < 0:
        raise _fail(name, "a finite number >= 0", value, hint)
    return float(value)


def unit_interval_float(name: str, value: Any, hint: str = "", *, open_left: bool = False,
                        open_right: bool = False) -> float:
    """A number in ``[0, 1]`` (``(0, 1]`` with ``open_left``, ``[0, 1)`` with ``open_right``)."""
    interval = ("(" if open_left else "[") + "0, 1" + (")" if open_right else "]")
    if (not _is_real(value) or value < 0 or value > 1 or (open_left and value == 0)
            or (open_right and value == 1)):
        raise _fail(name, f"a number in {interval}", value, hint)
    return float(value)


def integer(name: str, value: Any, minimum: int | None = None, hint: str = "") -> int:
    """An integer (not a bool, not a float such as ``2.0``) ``>= minimum`` when one is given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None
                                                                              and value < minimum):
        what = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise _fail(name, what, value, hint)
    return int(value)


def positive_int(name: str, value: Any, hint: str = "") -> int:
    """An integer ``>= 1``."""
    return integer(name, value, 1, hint)


def optional(check: Callable[..., T], name: str, value: Any, *args: Any, **kwargs: Any) -> Optional[T]:
    """``None`` stays ``None``; anything else goes through ``check(name, value, ...)``.

    >>> optional(positive_float, "clip", None) is None
    True
    """
    return None if value is None else check(name, value, *args, **kwargs)


def did_you_mean(word: Any, candidates: Iterable[Any]) -> str:
    """``"; did you mean 'x'?"`` naming the candidate closest to ``word`` (difflib), or ``""``.

    >>> did_you_mean("cosin", ["cosine", "constant"])
    "; did you mean 'cosine'?"
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_known(keys: Iterable[Any], known: Sequence[str], message: str = "unknown option") -> None:
    """Raise ``ValueError("<message> 'key'; did you mean ...?")`` for the first of ``keys`` not in
    ``known`` (listing every known name where none is close)."""
    for key in keys:
        if key not in known:
            hint = did_you_mean(key, known) or f"; the options are {', '.join(known)}"
            raise ValueError(f"{message} {key!r}{hint}")


def parse_options(pairs: Iterable[str] | None) -> dict[str, Any]:
    """``["clip=20", "name=foo"]`` -> ``{"clip": 20, "name": "foo"}`` (values read as Python literals).

    Only literals are read (``ast.literal_eval``): a value is never run as code; one that is no
    literal stays a string.
    """
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"options are KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out
