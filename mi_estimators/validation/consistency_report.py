"""Writing a :class:`~mi_estimators.validation.consistency.ConsistencyReport`: ``report.md``,
``results.json`` and ``consistency.png`` (bars with ``z``-standard-error intervals per check)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mi_estimators.validation.consistency import CHECKS, MEANING, ConsistencyReport, Reading
from mi_estimators.validation.report import markdown_table

__all__ = ["TITLES", "plot_consistency", "verdict_rows", "write_consistency_report"]

#: each check family's heading
TITLES = {"independence": "Independence", "processing": "Data processing", "additivity": "Additivity",
          "classifier": "Classifier-certified bound (image → label)"}


def _families(report: ConsistencyReport) -> list[str]:
    return [f for f in CHECKS if any(c.family == f for c in report.checks)]


def _readings(report: ConsistencyReport, family: str) -> list[Reading]:
    """The distinct readings of one family's checks, in order of appearance."""
    seen: dict[str, Reading] = {}
    for c in report.checks:
        if c.family == family:
            for r in c.readings:
                seen.setdefault(r.label, r)
    return list(seen.values())


def verdict_rows(report: ConsistencyReport) -> list[dict[str, Any]]:
    """One row per check: name, test, lhs, rhs, tolerance, margin, verdict (and the additivity ratio)."""
    return [dict(check=c.name, test=c.test, lhs=c.lhs, rhs=c.rhs, tolerance=c.tolerance, margin=c.margin,
                 ratio="" if c.ratio is None else c.ratio, verdict="pass" if c.passed else "**FAIL**")
            for c in report.checks]


def plot_consistency(report: ConsistencyReport, path: Path) -> Path:
    """One panel per check family: each reading as a bar with ± z·stderr, the panel titled with its verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = _families(report)
    z = report.config.z
    fig, axes = plt.subplots(1, len(families), figsize=(3.4 * len(families) + 0.6, 3.6), squeeze=False)
    for ax, family in zip(axes[0], families):
        readings = _readings(report, family)
        xs = np.arange(len(readings))
        values = [r.value if math.isfinite(r.value) else np.nan for r in readings]
        colors = [{"certified": "C2", "H(": "C1", "sum": "C7"}.get(next((k for k in ("certified", "H(", "sum")
                                                                if r.label.startswith(k)), ""), "C0") for r in readings]
        ax.bar(xs, values, yerr=[z * r.stderr for r in readings], color=colors, alpha=0.8, capsize=3)
        ax.axhline(0, color="k", lw=0.6)
        if family == "independence":
            tol = report.checks[[c.family for c in report.checks].index(family)].tolerance
            ax.axhspan(-tol, tol, color="C2", alpha=0.15, label="tolerance")
            ax.legend(fontsize=7)
        ax.set_xticks(xs, [r.label for r in readings], rotation=35, ha="right", fontsize=7)
        checks = [c for c in report.checks if c.family == family]
        failed = sum(not c.passed for c in checks)
        ratio = next((c.ratio for c in checks if c.ratio is not None), None)
        verdict = "pass" if not failed else f"FAIL ({failed} of {len(checks)})"
        ax.set_title(f"{TITLES[family].split(' (')[0]}: {verdict}" + (f"\njoint / sum = {ratio:.2f}" if ratio else ""),
                     fontsize=9, color="k" if not failed else "C3")
    axes[0][0].set_ylabel("nats")
    fig.suptitle(f"estimate() self-consistency, n = {report.settings['rows']} (bars ± {z:g} standard errors)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _reading_rows(readings: list[Reading]) -> list[dict[str, Any]]:
    return [dict(quantity=r.label, value=f"{r.value:.4f}", stderr=f"{r.stderr:.4f}",
                 ci="" if r.ci is None else f"[{r.ci[0]:.4f}, {r.ci[1]:.4f}]",
                 seconds=f"{r.seconds:.1f}", cpu_seconds=f"{r.cpu_seconds:.1f}", how=r.detail) for r in readings]


def write_consistency_report(report: ConsistencyReport, out: str | Path) -> Path:
    """``report.md``, ``results.json`` and ``consistency.png`` in ``out``; returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    c, s = report.config, report.settings
    png = plot_consistency(report, out / "consistency.png")
    passed = sum(ch.passed for ch in report.checks)
    options = ", ".join(f"{k}={v!r}" for k, v in {"steps": c.steps, "seed": c.seed, "threads": c.threads,
                                                   **c.options}.items())
    lines = [f"# Self-consistency of estimate() on {c.dataset} images", ""]
    if s.get("command"):
        lines += [f"Command: `{s['command']}`", ""]
    lines += [f"**Verdict: {passed} of {len(report.checks)} checks pass**"
              + ("." if report.passed else f"; failed: {', '.join(ch.name for ch in report.checks if not ch.passed)}."),
              "",
              f"Data: the first {s['rows']} training images of {c.dataset} ({s['source']}), "
              f"{'×'.join(map(str, s['image_shape']))} pixels / 255. No closed form exists for these pairs; the checks "
              "test properties every mutual information has (Song & Ermon 2020, arXiv:1910.06222, §6). X is the top "
              "half of an image, Y its bottom half, flattened; each estimate is "
              f"`mi_estimators.estimate(x, y, {options})`.", "",
              "Tolerance: every check is one inequality `lhs <= rhs + tolerance`, with tolerance = z·√(Σ se²) + "
              f"atol + rtol·|expected| where z = {c.z:g}, atol = {c.atol:g} nats, rtol = {c.rtol:g} (rtol only for the "
              "equality of additivity; `expected` is 0 otherwise); se are estimate()'s standard errors (jackknife "
              "or cross-fitted) and the certified bound's held-out standard error. Estimates on the same rows have "
              "positively correlated errors, so adding variances makes the tests lenient rather than strict. "
              "`margin` = rhs + tolerance − lhs: a check passes when it is >= 0.", "",
              f"Time: {s['seconds']:.0f} s wall, {s['cpu_seconds']:.0f} s CPU (this process).", "",
              f"![checks]({png.name})", "", "## Verdicts", "",
              markdown_table(verdict_rows(report), ["check", "test", "lhs", "rhs", "tolerance", "margin", "ratio",
                                                    "verdict"], digits=3)]
    for family in _families(report):
        lines += [f"## {TITLES[family]}", "", MEANING[family], "",
                  markdown_table(_reading_rows(_readings(report, family)),
                                 ["quantity", "value", "stderr", "ci", "seconds", "cpu_seconds", "how"], digits=3)]
    (out / "report.md").write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps(report.to_dict(), indent=1, default=str, ensure_ascii=False))
    return out / "report.md"
