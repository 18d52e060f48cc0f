"""``mi-estimators list | validate | estimate | train``.

The adapter layer: flags and files become the typed options of the library's calls, and results
become text. ``list`` reads the registry; ``validate`` runs :func:`mi_estimators.validation.run_validation`;
``estimate`` loads files (:mod:`mi_estimators.io`) and calls :func:`mi_estimators.estimate`;
``train NAME`` runs the trainer registered as ``NAME`` (kind ``trainers``): a
:class:`mi_estimators.training.Trainer` subclass; its ``config_class`` generates the parser, the
command line becomes a config, and ``Trainer(config).fit()`` runs it. (A trainer object without
``config_class`` is driven by its own ``add_arguments(parser)`` and ``run(args)``.)
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
    p.add_argument("--quick", action="store_true",
                   help="a short grid (a few minutes on 2 CPU cores): staircase with 200 steps per level, 4 tasks")
    p.add_argument("--bounds", nargs="+", metavar="NAME",
                   help="bounds to validate (names or fnmatch patterns; default: every registered bound)")
    p.add_argument("--tasks", nargs="*", metavar="TASK",
                   help="registered tasks (names or patterns; `mi-estimators list tasks`); none to skip")
    p.add_argument("--critics", nargs="*", choices=("separable", "concat"),
                   help="critics for the staircase (default: separable; full run: both)")
    p.add_argument("--steps-per-level", type=int, help="staircase steps per MI level (0 skips the staircase)")
    p.add_argument("--task-steps", type=int, help="training steps per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, ...")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the critics are small, and extra threads only "
                        "wait on each other on a busy machine)")
    p.add_argument("--out", default="out/validation", help="folder for report.md, results.json and PNGs")


def _cmd_validate(args: argparse.Namespace) -> int:
    from mi_estimators import options
    from mi_estimators.validation import FULL, QUICK, run_validation
    from mi_estimators.validation.report import summary_text

    options.positive_int("--threads", args.threads)
    cfg = dict(QUICK if args.quick else FULL)
    for key, value in (("tasks", args.tasks), ("critics", args.critics), ("staircase_steps", args.steps_per_level),
                       ("task_steps", args.task_steps)):
        if value is not None:
            cfg[key] = tuple(value) if isinstance(value, list) else value
    command = "mi-estimators validate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "mi-estimators validate"
    t0 = time.perf_counter()
    report = run_validation(bounds=args.bounds, seed=args.seed, device=args.device, out=args.out,
                            command=command, threads=args.threads, **cfg)
    print(summary_text(report))
    print(f"\nwrote {Path(args.out) / 'report.md'} ({time.perf_counter() - t0:.0f} s)")
    return 0


# ------------------------------------------------------------------------------ estimate
def _estimate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("x", help="file with X (.npy, .npz or .csv; rows are samples)")
    p.add_argument("y", nargs="?", help="file with Y (default: the same file as X, with --y-cols)")
    p.add_argument("--x-cols", help="columns of X: 0-based indices '0,2', a range '0:3', or CSV header names")
    p.add_argument("--y-cols", help="columns of Y (required when Y comes from the same file as X)")
    p.add_argument("--x-key", help="array name inside an .npz for X (default: the first)")
    p.add_argument("--y-key", help="array name inside an .npz for Y")
    p.add_argument("--bound", default="infonce",
                   help="the trained critic's bound: training, monitor and read-out (default infonce)")
    p.add_argument("--critic", default="auto",
                   help="auto (default: concat for 1+1 columns, else separable), separable, concat or bilinear")
    p.add_argument("--steps", type=int, default=2000, help="maximum training steps (default 2000)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="training batch (default 256 for a separable critic, 64 for concat)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 2e-3 separable, 3e-3 concat)")
    p.add_argument("--standardize", choices=("rank", "zscore", "none"), default="rank",
                   help="per-column transform fitted on the training split: normal scores of the "
                        "ranks (default), mean/sd scaling, or none")
    p.add_argument("--no-copula", dest="copula", action="store_false",
                   help="do not consider the closed-form Gaussian and Student-t copula critics (report the trained one)")
    p.add_argument("--ensemble", type=int, default=1,
                   help="average a winning trained critic with N - 1 more from other seeds (default 1)")
    p.add_argument("--no-canonical", dest="canonical", action="store_false",
                   help="train the critic on all columns even where the copula keeps few canonical pairs of "
                        "wide data (by default it takes those pairs' variates and each side's mean square)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads during the estimate (default 1: fastest for small critics)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _cmd_estimate(args: argparse.Namespace) -> int:
    from mi_estimators.estimation import estimate
    from mi_estimators.io import load_array

    if args.y is None and args.y_cols is None:
        raise ValueError("give a Y file, or --y-cols to take Y from the columns of the X file")
    x = load_array(args.x, args.x_cols, args.x_key)
    y = load_array(args.y or args.x, args.y_cols, args.y_key)
    result = estimate(x, y, bound=args.bound, critic=args.critic, steps=args.steps, batch_size=args.batch_size,
                      lr=args.lr, seed=args.seed, device=args.device, standardize=args.standardize,
                      copula=args.copula, ensemble=args.ensemble, canonical=args.canonical,
                      threads=args.threads)
    if args.json:
        settings = dataclasses.asdict(result.settings)
        print(json.dumps({"mi": result.mi, "stderr": result.stderr, "ci95": list(result.ci),
                          "ci95_heldout": list(result.ci_heldout),
                          "best_step": result.best_step, "settings": settings}, indent=2, default=str))
    else:
        print(result)
    return 0


# ------------------------------------------------------------------------------ the parser
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
    p = sub.add_parser("validate", help="every registered bound against closed-form MI")
    _validate_arguments(p)
    p.set_defaults(func=_cmd_validate)
    p = sub.add_parser("estimate", help="estimate I(X;Y) from two arrays (.npy/.npz/.csv)")
    _estimate_arguments(p)
    p.set_defaults(func=_cmd_estimate)
    sub.add_parser("train", help="train a registered trainer: mi-estimators train NAME --help")
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
