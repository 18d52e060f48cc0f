"""The prepared device check runs every step tiny on the CPU (``--dry-run``) and writes its two files."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_runs_every_step_and_writes_json_and_markdown(tmp_path):
    gpu_check = _load()
    results = gpu_check.main(["--dry-run", "--out", str(tmp_path)])
    steps = results["steps"]
    assert list(steps) == list(gpu_check.STEPS)
    failed = {k: v.get("error") for k, v in steps.items() if v["status"] != "ok"}
    assert not failed, failed
    assert "passed" in steps["tests"]["summary"]
    est = steps["estimate"]   # the dry run's device is the CPU: both runs are the same call
    assert list(est["tasks"]) == list(gpu_check.ESTIMATE_TASKS[:2]) and est["agree_all"] and est["repeat_same_mi"]
    for task in est["tasks"].values():
        assert task["device"]["mi"] == task["cpu"]["mi"] and task["diff"] == 0.0 and task["agree"]
        assert task["device"]["settings_device"] == "cpu" and task["state_restored"] and task["same_chosen"]
        assert task["combined_stderr"] > 0 and task["device"]["seconds"] > 0
    assert est["large"]["n"] == 600 and math.isfinite(est["large"]["mi"]) and est["large"]["stderr"] > 0
    rates = steps["throughput"]["images_per_s"]
    assert len(rates) == 4 and all(v > 0 for v in rates.values())
    assert steps["staircase"]["stacked_ms"] > 0 and steps["staircase"]["bounds"] == 2
    for method in ("efficient", "plain"):   # the simulated capacity stops the doubling: bisection ran
        nb = steps["nce_max"][method]["consequent_images"]
        assert 8 < nb < 10_000
    assert 0.0 <= steps["fashion_mnist"]["linear_probe_test_acc"] <= 1.0
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["steps"].keys() == steps.keys()
    table = (tmp_path / "gpu_check.md").read_text()
    assert all(f"| {name} | ok |" in table for name in steps)
