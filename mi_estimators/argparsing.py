"""Command lines generated from typed options: frozen dataclass -> argparse parser -> instance.

Every subcommand of ``mi-estimators`` (``estimate``, ``validate``, ``train NAME``) is one frozen
dataclass of options; :func:`add_options` turns its fields into flags, :func:`from_namespace`
turns the parsed flags back into an instance, whose ``__post_init__`` checks the values. A field
becomes ``--field-name``; its help is the field's ``help`` metadata or its ``#:`` comment, to
which the default is appended (defaults are written once, in the dataclass). By type:

* ``bool``: ``--flag/--no-flag`` (``--flag`` alone with ``switch=True`` metadata); ``bool | None``
  leaves ``None`` ("auto") unless one of the two is given;
* ``int``, ``float``, ``str`` (and ``Any``, read as a string): one value; ``X | None`` also takes
  ``none``;
* ``Literal[...]``: one of the choices;
* ``tuple[X, X]``: that many values; ``tuple[X, ...]``: any number, and the flag may be repeated
  (the first use replaces the default, later ones add to it);
* ``Mapping``/``dict``: ``KEY=VALUE`` pairs (values read as Python literals, :func:`parse_options`);
* a field without a default, or with ``positional=True`` metadata, is a positional argument.

Other metadata the generator reads: ``group`` (the ``--help`` section), ``choices``, ``metavar``.

>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Opts:
...     steps: int = dataclasses.field(default=100, metadata={"help": "training steps"})
...     tags: tuple[str, ...] = ()
...     progress: bool | None = None
>>> parser = argparse.ArgumentParser(prog="demo")
>>> add_options(parser, Opts)
>>> from_namespace(Opts, parser.parse_args(["--steps", "5", "--tags", "a", "b", "--no-progress"]))
Opts(steps=5, tags=('a', 'b'), progress=False)
>>> "--steps STEPS training steps (default: 100)" in " ".join(parser.format_help().split())
True
"""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import functools
import inspect
import re
import types
import typing
from typing import Any, Callable, Mapping

from mi_estimators.options import parse_options

__all__ = ["add_options", "field_docs", "flag_name", "from_namespace", "given_options", "split_optional",
           "type_hints"]


def flag_name(name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


@functools.lru_cache(maxsize=None)
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a dataclass (string annotations evaluated), cached."""
    return typing.get_type_hints(cls)


def split_optional(hint: Any) -> tuple[Any, bool]:
    """``int | None`` -> ``(int, True)``; ``int`` -> ``(int, False)``; ``str | torch.device | None``
    -> ``(str, True)`` (a union of several types is read as its ``str`` member where it has one)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return hint, False
    rest = [a for a in args if a is not type(None)]
    base = rest[0] if len(rest) == 1 else (str if str in rest else rest[0])
    return base, len(rest) < len(args)


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """The ``#:`` comments above (or after) the fields of ``cls`` and of its dataclass bases."""
    names = {f.name for f in dataclasses.fields(cls)}
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):  # defined interactively: no source to read
            continue
        pending: list[str] = []
        for line in lines:
            text = line.strip()
            if text.startswith("#:"):
                pending.append(text[2:].strip())
                continue
            match = re.match(r"(\w+)\s*:[^#]*(?:#:\s*(.*))?$", text)
            if match and match.group(1) in names and (pending or match.group(2)):
                docs[match.group(1)] = " ".join(pending) or match.group(2).strip()
            pending = []
    return docs


# ------------------------------------------------------------------------------ from a field to a flag


class _Items(argparse.Action):
    """Any number of values; repeating the flag adds to them; the first use replaces the default."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        start = () if current is None or current is self.default else tuple(current)
        setattr(namespace, self.dest, start + tuple(values))


def _key_value(text: str) -> str:
    parse_options([text])  # KEY=VALUE, else ValueError -> argparse's "invalid ... value"
    return text


_key_value.__name__ = "KEY=VALUE"


def _or_none(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        return None if text.lower() == "none" else convert(text)
    read.__name__ = getattr(convert, "__name__", "value")
    return read


def _scalar(hint: Any) -> tuple[Callable[[str], Any], tuple | None]:
    """The converter of one command-line value of type ``hint``, and its choices (for a Literal)."""
    if typing.get_origin(hint) is typing.Literal:
        choices = typing.get_args(hint)
        return type(choices[0]), choices
    return (hint if hint in (int, float, str) else str), None


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return " ".join(f"{k}={v!r}" for k, v in value.items())
    return str(value)


def _kwargs(f: dataclasses.Field, hint: Any) -> dict[str, Any]:
    """``add_argument`` keywords for field ``f`` of type ``hint`` (default and help aside)."""
    base, nullable = split_optional(hint)
    origin, args = typing.get_origin(base), typing.get_args(base)
    if base is bool:
        return {"action": "store_true" if f.metadata.get("switch") else argparse.BooleanOptionalAction}
    if origin in (dict, collections.abc.Mapping, typing.Mapping) or base in (dict, Mapping):
        return {"action": _Items, "nargs": "*", "type": _key_value, "metavar": "KEY=VALUE"}
    if origin is tuple and args and args[-1] is Ellipsis:
        convert, choices = _scalar(args[0])
        return {"action": _Items, "nargs": "*", "type": convert, "choices": choices}
    if origin is tuple:
        convert, choices = _scalar(args[0])
        return {"nargs": len(args), "type": convert, "choices": choices}
    convert, choices = _scalar(base)
    return {"type": _or_none(convert) if nullable else convert, "choices": choices}


def add_options(parser: argparse.ArgumentParser, cls: type, *, title: str | None = None,
                helps: Mapping[str, str] | None = None, suppress_defaults: bool = False,
                skip: tuple[str, ...] = ()) -> None:
    """Add one argument per field of the dataclass ``cls`` (except ``skip``) to ``parser``.

    ``title`` names an argument group for fields without ``group`` metadata (default: the
    parser's own options); ``helps`` gives help texts for fields that carry none. With
    ``suppress_defaults`` a flag that is not given leaves no attribute (``given_options`` then
    returns only what the command line set, to lay over a preset); ``--help`` shows the field
    defaults either way.
    """
    hints, docs, groups = type_hints(cls), field_docs(cls), {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        group_title = f.metadata.get("group") or title
        if group_title is not None and group_title not in groups:
            groups[group_title] = parser.add_argument_group(group_title)
        target = groups[group_title] if group_title is not None else parser
        kwargs = {k: v for k, v in _kwargs(f, hints[f.name]).items() if v is not None}
        for key in ("choices", "metavar"):
            if f.metadata.get(key) is not None:
                kwargs[key] = f.metadata[key]
        default = _default(f)
        text = (helps or {}).get(f.name) or f.metadata.get("help") or docs.get(f.name, "")
        kwargs["help"] = text.replace("%", "%%")
        positional = default is dataclasses.MISSING or f.metadata.get("positional")
        if positional and default is not dataclasses.MISSING:
            kwargs["nargs"] = "?"
        if not positional:
            kwargs["dest"] = f.name
        if default is not dataclasses.MISSING:
            plain = list(default) if isinstance(default, tuple) and kwargs.get("action") is _Items else default
            kwargs["default"] = argparse.SUPPRESS if suppress_defaults else plain
        action = target.add_argument(f.name if positional else flag_name(f.name), **kwargs)
        quiet = default in (None, (), dataclasses.MISSING) or (isinstance(default, Mapping) and not default)
        if not (quiet or f.metadata.get("switch") or "%(default)" in action.help):
            action.help = f"{action.help} (default: {_shown(default).replace('%', '%%')})".lstrip()


# ------------------------------------------------------------------------------ from flags to an instance


def given_options(cls: type, namespace: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` found in ``namespace``, as the field types want them (tuples for
    lists, a dict for ``KEY=VALUE`` pairs); other attributes (a subcommand's, a file's) are ignored."""
    hints, out = type_hints(cls), {}
    for f in dataclasses.fields(cls):
        if not hasattr(namespace, f.name) or getattr(namespace, f.name) is argparse.SUPPRESS:
            continue
        value, (base, _) = getattr(namespace, f.name), split_optional(hints[f.name])
        origin = typing.get_origin(base)
        if origin in (dict, collections.abc.Mapping, typing.Mapping) or base in (dict, Mapping):
            value = parse_options(value) if isinstance(value, (list, tuple)) else value
        elif (origin is tuple or base is tuple) and isinstance(value, list):
            value = tuple(value)
        out[f.name] = value
    return out


def from_namespace(cls: type, namespace: argparse.Namespace, base: Any = None) -> Any:
    """An instance of ``cls`` from parsed flags: ``base`` (a preset instance) with the given fields
    replaced, or ``cls(**given)`` (the field defaults for the rest)."""
    values = given_options(cls, namespace)
    return dataclasses.replace(base, **values) if base is not None else cls(**values)
