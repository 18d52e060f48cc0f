"""Tables (markdown and plain text) and matplotlib figures of validation results."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["markdown_table", "plot_staircase", "plot_tasks", "text_table"]


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
        ax.errorbar(xs, [q["estimate"] for q in r], yerr=[q["sd"] for q in r], fmt="o", ms=3, capsize=2)
        ax.axhline(res.true_mi, color="k", lw=1)
        ax.set_xticks(xs, [q["bound"] for q in r], rotation=60, fontsize=7)
        ax.set_title(f"{res.task} (I = {res.true_mi:.2f})", fontsize=8)
        lo = min(res.true_mi - 1.0, np.nanmin([q["estimate"] for q in r] + [res.true_mi]) - 0.2)
        hi = max(res.true_mi + 1.0, np.nanmax([q["estimate"] for q in r] + [res.true_mi]) + 0.2)
        ax.set_ylim(max(lo, -3), min(hi, res.true_mi + 5))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
