"""``mi-estimators list | validate | estimate | train``.

Each sub-command's options live beside the code it runs:

* ``list``      here (reads the registry).
* ``validate``  :mod:`mi_estimators.validation` (``add_arguments`` / ``main``).
* ``estimate``  :mod:`mi_estimators.estimation` (``add_arguments`` / ``main``).
* ``train NAME`` the trainer registered as ``NAME`` (kind ``trainers``): a
  :class:`mi_estimators.training.Trainer` subclass; its ``config_class`` generates the parser,
  the command line becomes a config, and ``Trainer(config).fit()`` runs it. (A trainer object
  without ``config_class`` is driven by its own ``add_arguments(parser)`` and ``run(args)``.)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import textwrap

from mi_estimators import registry


def _cmd_list(args: argparse.Namespace) -> int:
    kinds = registry.KINDS if args.kind == "all" else (args.kind,)
    for kind in kinds:
        print(f"{kind}:")
        rows = list(registry.entries(kind, args.pattern))
        if not rows:
            print("  (none)")
        for entry, obj in rows:
            info = getattr(obj, "info", None)
            if info is not None and hasattr(info, "summary"):
                print(f"  {entry.name:<14} {info.summary}")
                extra = [f"kind: {info.kind} bound"] if hasattr(info, "kind") else []
                if getattr(info, "score_shapes", None):
                    extra.append("scores: " + " or ".join(info.score_shapes))
                if getattr(info, "ceiling", None):
                    extra.append(f"ceiling: {info.ceiling}")
                if getattr(info, "stateful", False):
                    extra.append("stateful")
                print(f"  {'':<14} {'; '.join(extra)}")
                if getattr(info, "reference", None):
                    print(textwrap.indent(textwrap.fill(info.reference, 80), " " * 17))
            else:
                doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
                print(f"  {entry.name:<14} {doc[0] if doc else ''}")
            if entry.distribution not in (registry.OWN_DISTRIBUTION, "<local>"):
                print(f"  {'':<14} from {entry.label}")
    return 0


def _delegate(module: str):
    mod = importlib.import_module(module)
    return mod.add_arguments, mod.main


def _cmd_train(argv: list[str]) -> int:
    names = registry.available("trainers")
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: mi-estimators train NAME [options]   (NAME --help for its options)")
        print("trainers: " + (", ".join(names) if names else "(none installed)"))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    trainer = registry.lookup(name, "trainers")
    prog, description = f"mi-estimators train {name}", (trainer.__doc__ or "").strip().split("\n")[0]
    config_class = getattr(trainer, "config_class", None)
    if config_class is None:  # not built on the kit: the trainer parses and runs itself
        parser = argparse.ArgumentParser(prog=prog, description=description)
        trainer.add_arguments(parser)
        metrics = trainer.run(parser.parse_args(rest))
    else:  # parse -> config -> fit
        args = config_class.parser(prog, description).parse_args(rest)
        metrics = _fit(trainer(config_class.from_dict(vars(args))))
    if metrics:
        print(json.dumps(metrics, indent=2, default=str))
    return 0


def _fit(trainer) -> dict:
    """``trainer.fit()``; an unexpected error of the objective or of torch (out of memory, ...) as one
    line (``MI_ESTIMATORS_TRACEBACK=1`` shows the traceback instead)."""
    try:
        return trainer.fit()
    except RuntimeError as exc:
        if os.environ.get("MI_ESTIMATORS_TRACEBACK") == "1":
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        hint = ("lower --batch-size" if "out of memory" in first else
                "set MI_ESTIMATORS_TRACEBACK=1 to see where (a bug in the trainer, encoder or objective?)")
        raise TrainingFailedError(f"training failed ({type(exc).__name__}: {first}); {hint}") from exc


class TrainingFailedError(ValueError):
    """An unexpected error during training, reported in one line."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one line on stderr and return 2, no traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _main(argv)
    except (registry.UnknownNameError, registry.PluginLoadError, ValueError, FileNotFoundError) as exc:
        print(f"mi-estimators: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. training: --out not writable or in use, a full disk
        hint = "" if exc.errno is None else " (check the path, its permissions and the free disk space)"
        print(f"mi-estimators: error: {' '.join(str(exc).split())}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C during training, or one outside it
        print("mi-estimators: interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str]) -> int:
    # `train` hands everything after the trainer's name to that trainer's own parser.
    if argv and argv[0] == "train":
        return _cmd_train(argv[1:])

    parser = argparse.ArgumentParser(prog="mi-estimators", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered bounds, critics, encoders, trainers, tasks")
    p.add_argument("kind", nargs="?", default="all", choices=("all", *registry.KINDS))
    p.add_argument("--pattern", default="*", help="fnmatch filter on names, e.g. 'n*'")
    p.set_defaults(func=_cmd_list)

    for command, module, help_ in (
        ("validate", "mi_estimators.validation", "every registered bound against closed-form MI"),
        ("estimate", "mi_estimators.estimation", "estimate I(X;Y) from two arrays (.npy/.npz/.csv)"),
    ):
        p = sub.add_parser(command, help=help_)
        if argv and argv[0] == command:  # import a sub-command's module only when it runs
            add_arguments, run = _delegate(module)
            add_arguments(p)
            p.set_defaults(func=run)

    sub.add_parser("train", help="train a registered trainer: mi-estimators train NAME --help")
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
