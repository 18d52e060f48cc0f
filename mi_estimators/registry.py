"""The registry: bounds, critics, encoders, trainers and tasks, looked up by name.

Everything registered here comes from one of two places:

* **Entry points** in the groups ``mi_estimators.bounds``, ``mi_estimators.critics``,
  ``mi_estimators.encoders``, ``mi_estimators.trainers`` and ``mi_estimators.tasks``. The built-ins
  are declared in our own ``pyproject.toml`` exactly like a third-party package would declare
  theirs. Entry points are *discovered* (read from installed metadata) without importing anything,
  and *loaded* on first use.
* **In-process registration** with :func:`register`, for code that is not packaged.

An entry's object is a callable (a class or a function) that takes keyword options and returns the
thing: ``get("infonce", clip=20.0)`` calls ``InfoNCE(clip=20.0)``. A third-party bound need not
subclass :class:`mi_estimators.bounds.Bound`; anything callable on ``scores`` with a
``.loss(scores)`` method works.

A plugin that fails to import never breaks ``import mi_estimators``: listing warns with
``distribution[entry]`` and the error, and asking for it by name raises :class:`PluginLoadError`
with the original exception chained. Set ``MI_ESTIMATORS_DISABLE_PLUGIN_AUTOLOAD=1`` to ignore every
entry point that does not belong to ``mi-estimators`` itself.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata as metadata
import os
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterator

from mi_estimators.options import did_you_mean

KINDS = ("bounds", "critics", "encoders", "trainers", "tasks")
GROUP_PREFIX = "mi_estimators."
AUTOLOAD_ENV = "MI_ESTIMATORS_DISABLE_PLUGIN_AUTOLOAD"
OWN_DISTRIBUTION = "mi-estimators"

__all__ = [
    "KINDS",
    "AUTOLOAD_ENV",
    "Entry",
    "PluginLoadError",
    "UnknownNameError",
    "available",
    "entries",
    "get",
    "lookup",
    "refresh",
    "register",
    "unregister",
]


class UnknownNameError(LookupError):
    """No entry of that name is registered (the message names the closest match)."""


class PluginLoadError(ImportError):
    """A registered entry point could not be imported; the cause is chained."""


@dataclass(frozen=True)
class Entry:
    """One registered name, before or after loading.

    ``target`` is the entry point's ``module:attr`` string (or ``repr`` of an in-process object);
    ``distribution`` the package that declared it (``"<local>"`` for :func:`register`).
    """

    kind: str
    name: str
    target: str
    distribution: str
    entry_point: metadata.EntryPoint | None = None
    obj: Any = None

    @property
    def label(self) -> str:
        """``distribution[name]``, the way errors and warnings name a plugin."""
        return f"{self.distribution}[{self.name}]"

    def load(self) -> Any:
        if self.obj is not None:
            return self.obj
        try:
            return self.entry_point.load()  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - any import-time failure of a plugin
            raise PluginLoadError(
                f"the plugin {self.label} ({self.target}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


_local: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
_loaded: dict[tuple[str, str], Any] = {}


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


def _normalise(dist_name: str) -> str:
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def _autoload_disabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


@lru_cache(maxsize=None)
def _discover(kind: str, autoload: bool) -> dict[str, Entry]:
    """Entry points of one kind, read from installed metadata; nothing is imported."""
    found: dict[str, Entry] = {}
    for ep in metadata.entry_points(group=GROUP_PREFIX + kind):
        dist = ep.dist.name if ep.dist is not None else "<unknown>"
        own = _normalise(dist) == OWN_DISTRIBUTION
        if not autoload and not own:
            continue
        entry = Entry(kind, ep.name, ep.value, dist, entry_point=ep)
        previous = found.get(ep.name)
        if previous is not None:
            if previous.distribution == dist and previous.target == ep.value:
                continue  # the same distribution seen twice on sys.path
            # The built-in wins over a plugin; between two plugins, the first found wins.
            keep, drop = (entry, previous) if own else (previous, entry)
            warnings.warn(
                f"two packages register the {kind[:-1]} {ep.name!r}: {previous.label} "
                f"({previous.target}) and {entry.label} ({entry.target}); using {keep.label}",
                RuntimeWarning,
                stacklevel=3,
            )
            entry = keep
        found[ep.name] = entry
    return found


def refresh() -> None:
    """Forget discovered and loaded entries (after installing a plugin in a running process)."""
    _discover.cache_clear()
    _loaded.clear()


def _all(kind: str) -> dict[str, Entry]:
    merged = dict(_discover(_check_kind(kind), not _autoload_disabled()))
    merged.update(_local[kind])
    return merged


def register(
    name: str,
    obj: Callable[..., Any] | None = None,
    *,
    kind: str = "bounds",
    overwrite: bool = False,
):
    """Register ``obj`` under ``name`` in this process; usable as a decorator.

    >>> @register("my_bound")            # doctest: +SKIP
    ... class MyBound(Bound): ...
    """
    _check_kind(kind)

    def _do(target: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(target):
            raise TypeError(f"register({name!r}) needs a class or function, got {type(target).__name__}")
        if not overwrite and name in _all(kind):
            raise ValueError(
                f"a {kind[:-1]} named {name!r} is already registered ({_all(kind)[name].label}); "
                "pass overwrite=True to replace it"
            )
        _local[kind][name] = Entry(kind, name, repr(target), "<local>", obj=target)
        _loaded.pop((kind, name), None)
        return target

    return _do if obj is None else _do(obj)


def unregister(name: str, *, kind: str = "bounds") -> None:
    """Remove an in-process registration made with :func:`register`."""
    _local[_check_kind(kind)].pop(name, None)
    _loaded.pop((kind, name), None)


def available(kind: str = "bounds", pattern: str = "*") -> list[str]:
    """Sorted names registered for ``kind``, filtered by an ``fnmatch`` pattern. Imports nothing."""
    return sorted(n for n in _all(kind) if fnmatch.fnmatchcase(n, pattern))


def _unknown(kind: str, name: str) -> UnknownNameError:
    names = available(kind)
    hint = did_you_mean(name, names)
    listing = ", ".join(names) if names else "(none)"
    msg = f"unknown {kind[:-1]} {name!r}{hint} Available {kind}: {listing}."
    if not names or (kind == "bounds" and "infonce" not in names):
        msg += (
            " The built-ins are registered through entry points: install the package "
            "(`pip install -e .` in a checkout) so that they are found."
        )
    return UnknownNameError(msg)


def lookup(name: str, kind: str = "bounds") -> Any:
    """The registered object (class or factory) for ``name``, loading its plugin if needed."""
    key = (_check_kind(kind), name)
    if key in _loaded:
        return _loaded[key]
    entry = _all(kind).get(name)
    if entry is None:
        raise _unknown(kind, name)
    obj = entry.load()
    _loaded[key] = obj
    return obj


def get(name: str, /, kind: str = "bounds", **options: Any) -> Any:
    """Build the registered ``name`` with keyword ``options``: ``get("smile", clip=5.0)``."""
    return lookup(name, kind)(**options)


def entries(kind: str = "bounds", pattern: str = "*") -> Iterator[tuple[Entry, Any]]:
    """Load every entry of ``kind``; a broken plugin is skipped with a ``RuntimeWarning``."""
    for name in available(kind, pattern):
        entry = _all(kind)[name]
        try:
            obj = lookup(name, kind)
        except PluginLoadError as exc:
            warnings.warn(f"skipping {exc}", RuntimeWarning, stacklevel=2)
            continue
        yield entry, obj
