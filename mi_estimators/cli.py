"""``mi-estimators list | validate | estimate | train``.

The adapter layer: flags and files become the typed options of the library's calls, and results
become text. ``list`` reads the registry; ``validate`` runs
:func:`mi_estimators.validation.run_validation`; ``estimate`` loads files (:mod:`mi_estimators.io`)
and calls :func:`mi_estimators.estimate`; ``train NAME`` runs the trainer registered as ``NAME``
(kind ``trainers``): a :class:`mi_estimators.training.Trainer` subclass; the command line becomes
its config, and ``Trainer(config).fit()`` runs it. (A trainer object without ``config_class`` is
driven by its own ``add_arguments(parser)`` and ``run(args)``.)

Every subcommand's flags are generated, by one generator (:mod:`mi_estimators.argparsing`), from
the frozen dataclass of its options, where their types, defaults and help are written once:
``validate`` from :class:`mi_estimators.validation.ValidationConfig` (``--quick`` picks its quick
preset), ``estimate`` from :class:`mi_estimators.estimation.EstimateOptions` and
:class:`mi_estimators.io.SampleFiles`, ``train NAME`` from the trainer's ``config_class``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import textwrap
import time
from pathlib import Path

from mi_estimators import registry
from mi_estimators.argparsing import add_options, flag_name, from_namespace, given_options


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
                    extra.append("scores: " + " or ".join(str(s) for s in info.score_shapes))
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
        metrics = _fit(trainer(from_namespace(config_class, args)))
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
    except BrokenPipeError:
        # the reader went away (`mi-estimators list | head -1`): stop quietly, as shell tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # SIGPIPE
    except OSError as exc:  # e.g. training: --out not writable or in use, a full disk
        hint = "" if exc.errno is None else " (check the path, its permissions and the free disk space)"
        print(f"mi-estimators: error: {' '.join(str(exc).split())}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C during training, or one outside it
        print("mi-estimators: interrupted", file=sys.stderr)
        return 130


# ------------------------------------------------------------------------------ validate
def _validate_arguments(p: argparse.ArgumentParser) -> None:
    from mi_estimators.validation import ValidationConfig

    quick = ValidationConfig.quick().changes_from(ValidationConfig.full())
    shown = "; ".join(f"{flag_name(k)} {' '.join(map(str, v)) if isinstance(v, tuple) else v}"
                      for k, v in quick.items())
    p.add_argument("--quick", action="store_true",
                   help=f"the short grid of `make demo` (a few minutes on 2 CPU cores): {shown}; a flag given "
                        "replaces its value")
    add_options(p, ValidationConfig, suppress_defaults=True)
    p.add_argument("--out", default="out/validation", help="folder for report.md, results.json and PNGs "
                                                           "(default: %(default)s)")


def _cmd_validate(args: argparse.Namespace) -> int:
    from mi_estimators.validation import ValidationConfig, run_validation
    from mi_estimators.validation.report import summary_text

    config = from_namespace(ValidationConfig, args, ValidationConfig.quick() if args.quick else ValidationConfig.full())
    command = "mi-estimators validate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "mi-estimators validate"
    t0 = time.perf_counter()
    report = run_validation(config, out=args.out, command=command)
    print(summary_text(report))
    print(f"\nwrote {Path(args.out) / 'report.md'} ({time.perf_counter() - t0:.0f} s)")
    return 0


# ------------------------------------------------------------------------------ estimate
def _estimate_help() -> dict[str, str]:
    """Help for the options of :class:`~mi_estimators.estimation.EstimateOptions` whose field carries
    none that suits a command line (the defaults are appended from the fields)."""
    from mi_estimators.estimation.options import AUTO_BATCH, AUTO_CONCAT_MAX_DIM, AUTO_EVAL_BATCH, AUTO_LR

    def by_critic(sizes: dict) -> str:
        return ", ".join(f"{v:g} {k}" for k, v in sizes.items())

    return {
        "bound": "the trained critic's bound, a registered name (mi-estimators list bounds): training, monitor "
                 "and read-out",
        "critic": f"auto (for at most {AUTO_CONCAT_MAX_DIM} columns in all concat and separable critics, the "
                  "monitor split choosing; else separable), or a registered critic: separable, concat, bilinear "
                  "(mi-estimators list critics)",
        "bound_options": "keyword options of the bound, e.g. clip=20 (values read as Python literals; after the "
                         "files, or as --bound-options=clip=20)",
        "critic_options": "keyword options of the critic, e.g. hidden=128",
        "steps": "maximum training steps (none: 2000 up to 20,000 rows, 2000 * sqrt(n / 20,000) above, at most "
                 "20,000)",
        "batch_size": f"training batch (none: by critic, {by_critic(AUTO_BATCH)}, up to 4x larger above 80,000 "
                      "rows)",
        "lr": f"Adam learning rate (none: by critic, {by_critic(AUTO_LR)})",
        "weight_decay": "Adam weight decay",
        "eval_every": "training steps between evaluations on the monitor split (none: 100, growing as the "
                      "steps above 20,000 rows)",
        "patience": "evaluations without improvement before training stops",
        "val_fraction": "fraction of the rows in the monitor split (none: 0.1, at most 10,000 rows)",
        "folds": "cross-fit the read-out of a refittable winner over this many folds (1: no; none: 5 up to 20,000 "
                 "rows, 1 above)",
        "test_fraction": "fraction of the rows held out for the read-out",
        "eval_batch": f"rows per held-out block, each scored against all its pairs (none: by critic, "
                      f"{by_critic(AUTO_EVAL_BATCH)})",
        "jackknife_groups": "groups of the jackknife standard error of the held-out estimate",
        "device": "auto (CUDA if present), cpu, cuda, cuda:1, ...",
        "seed": "seed of the split, the critic's weights and the batches (none: fresh randomness)",
    }


def _estimate_arguments(p: argparse.ArgumentParser) -> None:
    from mi_estimators.estimation import EstimateOptions
    from mi_estimators.io import SampleFiles

    add_options(p, SampleFiles)
    add_options(p, EstimateOptions, title="estimate options", helps=_estimate_help(), suppress_defaults=True)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _cmd_estimate(args: argparse.Namespace) -> int:
    from mi_estimators.estimation import EstimateOptions, estimate
    from mi_estimators.io import SampleFiles

    x, y = from_namespace(SampleFiles, args).load()
    result = estimate(x, y, **given_options(EstimateOptions, args))
    if args.json:
        settings = dataclasses.asdict(result.settings)
        print(json.dumps({"mi": result.mi, "stderr": result.stderr, "ci95": list(result.ci),
                          "ci95_heldout": list(result.ci_heldout),
                          "best_step": result.best_step, "settings": settings}, indent=2, default=str))
    else:
        print(result)
    return 0


# ------------------------------------------------------------------------------ the parser
#: subcommand -> (help, the builder of its arguments, the function that runs it)
COMMANDS = {
    "validate": ("every registered bound against closed-form MI", _validate_arguments, _cmd_validate),
    "estimate": ("estimate I(X;Y) from two arrays (.npy/.npz/.csv)", _estimate_arguments, _cmd_estimate),
}


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
    for name, (help_, build, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        if argv and argv[0] == name:  # only the command that runs builds its options (and imports what they need)
            build(p)
        p.set_defaults(func=run)
    sub.add_parser("train", help="train a registered trainer: mi-estimators train NAME --help")
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
