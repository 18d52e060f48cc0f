"""Validators for the options of bounds, critics, kernels, ``estimate()`` and trainers.

One place for every check of a user-given number, so that every option rejects the same bad
values with the same kind of message: ``ValueError("<name> must be ..., got <value>")``, followed
by a hint that says what a sensible value looks like. ``bool`` is never accepted as a number
(``True`` is an ``int`` in Python, but ``mixture=True`` is a mistake, not one component).

>>> positive_int("batch_size", 64)
64
>>> positive_float("lr", 0.0)
Traceback (most recent call last):
...
ValueError: lr must be a positive finite number, got 0.0
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Optional, TypeVar

__all__ = ["finite_float", "positive_float", "non_negative_float", "unit_interval_float", "integer",
           "positive_int", "optional"]

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
