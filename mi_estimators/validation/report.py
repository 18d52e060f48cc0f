"""Writing validation results: tables (markdown and plain text), matplotlib figures, ``report.md``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from mi_estimators.validation.grid import TaskResult
    from mi_estimators.validation.staircase import StaircaseResult

__all__ = ["diverged", "markdown_table", "plot_staircase", "plot_tasks", "plus_minus", "summary_text", "text_table",
           "write_report"]


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "nan"
        return f"{v:.2e}" if abs(v) >= 1e4 else f"{v:.{digits}f}"
    return str(v)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], digits: int = 2) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "|".join("---" for _ in columns) + "|\n"
    return head + "".join("| " + " | ".join(_fmt(r.get(c, ""), digits) for c in columns) + " |\n" for r in rows)


def text_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], digits: int = 2) -> str:
    cells = [[_fmt(r.get(c, ""), digits) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _smooth(v: np.ndarray, window: int) -> np.ndarray:
    if window <= 1:
        return v
    ok = np.isfinite(v)
    filled = np.where(ok, v, 0.0)
    kernel = np.ones(window)
    num = np.convolve(filled, kernel, mode="same")
    den = np.convolve(ok.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def plot_staircase(result, path: Path) -> Path:
    """Poole et al. Figure 2: estimate per step against the true staircase, log N dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(result.names)
    cols = min(k, 5)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), sharex=True, sharey=True, squeeze=False)
    steps = np.arange(result.estimates.shape[1])
    truth = result.true_mi
    top = max(result.levels) * 1.4
    for i, ax in enumerate(axes.flat):
        if i >= k:
            ax.axis("off")
            continue
        est = result.estimates[i]
        ax.plot(steps, np.clip(est, -2, top), color="C0", alpha=0.25, lw=0.5)
        ax.plot(steps, np.clip(_smooth(est, max(1, result.steps_per_level // 20)), -2, top), color="C0", lw=1.2)
        ax.plot(steps, truth, color="k", lw=1.0)
        ax.axhline(math.log(result.batch_size), color="C3", ls="--", lw=0.8)
        ax.set_title(result.names[i] + (" (failed)" if result.names[i] in result.errors else ""), fontsize=9)
        ax.set_ylim(-1, top)
    for ax in axes[-1]:
        ax.set_xlabel("step")
    for ax in axes[:, 0]:
        ax.set_ylabel("MI (nats)")
    fig.suptitle(f"{result.critic} critic, batch {result.batch_size}: estimate per step (light), "
                 f"smoothed (dark), true MI (black), log N (red dashed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_tasks(results, path: Path) -> Path:
    """One panel per task: each bound's mean held-out estimate ± sd against the true MI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, res in zip(axes.flat, results):
        r = res.rows()
        xs = np.arange(len(r))
        ax.errorbar(xs, [q["estimate"] for q in r], yerr=[q["sd"] for q in r], fmt="o", ms=3, capsize=2,
                    label="held-out estimate ± sd")
        ax.axhline(res.true_mi, color="k", lw=1, label="true MI")
        ax.set_xticks(xs, [q["bound"] for q in r], rotation=60, fontsize=7)
        ax.set_title(f"{res.task} (I = {res.true_mi:.2f})", fontsize=8)
        lo = min(res.true_mi - 1.0, np.nanmin([q["estimate"] for q in r] + [res.true_mi]) - 0.2)
        hi = max(res.true_mi + 1.0, np.nanmax([q["estimate"] for q in r] + [res.true_mi]) + 0.2)
        ax.set_ylim(max(lo, -3), min(hi, res.true_mi + 5))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("MI (nats)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


#: a table cell is flagged as diverged when its estimate is this many nats (plus twice the true MI)
#: away from the truth, or its sd this many nats (plus the true MI): no bound is meant to read there
DIVERGED_NATS = 10.0


def diverged(mean: float, sd: float, truth: float) -> bool:
    """True for an estimate no working bound would give: not finite, or far off with a huge spread."""
    if not (math.isfinite(mean) and math.isfinite(sd)):
        return True
    return abs(mean - truth) > DIVERGED_NATS + 2 * abs(truth) or sd > DIVERGED_NATS / 2 + abs(truth)


def plus_minus(mean: float, sd: float, truth: float, signed: bool = False) -> str:
    """``mean ± sd`` (``mean`` is a bias when ``signed``); diverged cells are flagged with ``†``
    (see :func:`diverged`) and large values written in scientific notation so tables stay narrow."""
    def one(v: float, sign: bool) -> str:
        if v != v:
            return "nan"
        if abs(v) >= 1e4:
            return f"{v:+.1e}" if sign else f"{v:.1e}"
        return f"{v:+.2f}" if sign else f"{v:.2f}"

    flag = " †" if diverged(mean + (truth if signed else 0.0), sd, truth) else ""
    return f"{one(mean, signed)} ± {one(sd, False)}{flag}"


DIVERGED_NOTE = (f"† diverged: the estimate is more than {DIVERGED_NATS:g} nats (+ 2 × the true MI) off, or its sd "
                 f"more than {DIVERGED_NATS / 2:g} nats (+ the true MI): the bound failed there, the figure is "
                 "not an estimate.")


def _staircase_wide(table: list[dict[str, Any]], levels: Sequence[float]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for r in table:
        row = rows.setdefault(r["bound"], {"bound": r["bound"]})
        row[f"I={r['mi']:g}"] = plus_minus(r["bias"], r["sd"], r["mi"], signed=True)
    return list(rows.values())


def _tasks_wide(task_reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for t in task_reports:
        for r in t["rows"]:
            row = rows.setdefault(r["bound"], {"bound": r["bound"]})
            row[f"{t['task']} ({t['mi']:.2f})"] = plus_minus(r["estimate"], r["sd"], t["mi"])
    return list(rows.values())


def summary_text(report: dict[str, Any]) -> str:
    parts = []
    levels = report["settings"]["levels"]
    for s in report["staircase"]:
        wide = _staircase_wide(s["table"], levels)
        parts.append(f"Staircase, {s['critic']} critic ({report['settings']['staircase_steps_per_level']} steps "
                     f"per level, {s['seconds']:.0f} s): bias ± sd over the second half of each level\n"
                     + text_table(wide, ["bound"] + [f"I={m:g}" for m in levels]))
    if report["tasks"]:
        cols = ["bound"] + [f"{t['task']} ({t['mi']:.2f})" for t in report["tasks"]]
        parts.append("Closed-form tasks: held-out estimate ± sd (true MI in the header)\n"
                     + text_table(_tasks_wide(report["tasks"]), cols))
    if report["settings"]["failed"]:
        parts.append("Failed bounds: " + "; ".join(f"{k}: {v}" for k, v in report["settings"]["failed"].items()))
    if any("†" in part for part in parts):
        parts.append(DIVERGED_NOTE)
    return "\n\n".join(parts)


def write_report(report: dict[str, Any], stair_results: list[StaircaseResult], task_results: list[TaskResult],
                 out: Path) -> Path:
    """``report.md``, ``results.json``, ``staircase_<critic>.png`` and ``tasks.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    s = report["settings"]
    lines = ["# Validation report", ""]
    if s.get("command"):
        lines += [f"Command: `{s['command']}`", ""]
    lines += [f"Bounds: {', '.join(s['bounds'])}. Device: {s['device']}. Seed: {s['seed']}.", ""]
    for res, entry in zip(stair_results, report["staircase"]):
        png = plot_staircase(res, out / f"staircase_{res.critic}.png")
        np.savez_compressed(out / f"staircase_{res.critic}.npz", estimates=res.estimates.astype(np.float32),
                            names=np.array(res.names), levels=np.array(res.levels, dtype=float),
                            steps_per_level=res.steps_per_level, batch_size=res.batch_size)
        lines += [f"## Staircase, {res.critic} critic", "",
                  f"Poole et al. 2019 (arXiv:1905.06922) Figure 2 setting: d = {res.settings['d']}, levels "
                  f"{', '.join(f'{m:g}' for m in res.levels)} nats, {res.steps_per_level} steps per level, batch "
                  f"{res.batch_size} drawn fresh each step, Adam lr {res.settings['lr']}, hidden "
                  f"{res.settings['hidden']}×{res.settings['layers']}"
                  + (f", embedding {res.settings['embed_dim']}" if res.settings.get("embed_dim") else "")
                  + f". All bounds trained in one pass: {res.seconds:.0f} s.", "",
                  f"![staircase]({png.name})", "",
                  "Bias ± sd over the second half of each level:", "",
                  markdown_table(_staircase_wide(entry["table"], res.levels),
                                 ["bound"] + [f"I={m:g}" for m in res.levels]),
                  "Per bound and level (second half of each level):", "",
                  markdown_table(entry["table"], ["bound", "mi", "mean", "bias", "sd", "mse"]), ""]
        if res.errors:
            lines += ["Failed: " + "; ".join(f"`{k}`: {v}" for k, v in res.errors.items()), ""]
    if task_results:
        png = plot_tasks(task_results, out / "tasks.png")
        t0 = task_results[0].settings
        lines += ["## Closed-form tasks", "",
                  f"Separable critic (hidden {t0['hidden']}×{t0['layers']}, embedding {t0['embed_dim']}), "
                  f"{t0['steps']} steps of batch {t0['batch_size']} drawn fresh from each task, Adam lr {t0['lr']}; "
                  f"estimate = mean over {t0['eval_batches']} fresh held-out batches of {t0['batch_size']}, "
                  "± their sd.", "", f"![tasks]({png.name})", "",
                  markdown_table(_tasks_wide(report["tasks"]),
                                 ["bound"] + [f"{t['task']} ({t['mi']:.2f})" for t in report["tasks"]]),
                  "Long form:", "",
                  markdown_table([r for t in report["tasks"] for r in t["rows"]],
                                 ["task", "mi", "bound", "estimate", "bias", "sd"]), ""]
    if s["failed"]:
        lines += ["Bounds that failed the smoke test: " + "; ".join(f"`{k}`: {v}" for k, v in s["failed"].items()), ""]
    if any("†" in line for line in lines):
        lines += [DIVERGED_NOTE, ""]
    (out / "report.md").write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps(report, indent=1, default=float))
    return out / "report.md"
