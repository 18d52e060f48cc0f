"""The validation suite: stacked training equals separate training, tables against naive
arithmetic, every registered bound (third-party and broken ones included) in a tiny quick grid,
and the `mi-estimators validate` command."""

import json
import math

import numpy as np
import pytest
import torch

import mi_estimators as mie
from mi_estimators import cli
from mi_estimators.critics import SeparableCritic, unstack
from mi_estimators.fit import train_stacked
from mi_estimators.validation import StaircaseResult, ValidationConfig, resolve_bounds, run_validation, staircase_table


def test_stacked_training_equals_training_each_copy_alone():
    torch.manual_seed(0)
    names = ["infonce", "nwj", "mine"]
    stacked = SeparableCritic(3, 3, hidden=8, embed_dim=4, n_models=3)
    singles = [unstack(stacked, k) for k in range(3)]
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 3, generator=gen), torch.randn(16, 3, generator=gen)) for _ in range(6)]
    est = train_stacked(stacked, [mie.get(n) for n in names], lambda s: batches[s], 6, lr=1e-2, names=names)
    for k, name in enumerate(names):
        single, bound = singles[k], mie.get(name)
        opt = torch.optim.Adam(single.parameters(), lr=1e-2)
        values = []
        for x, y in batches:
            scores = single(x, y)
            opt.zero_grad()
            bound.loss(scores).backward()
            opt.step()
            values.append(float(bound(scores.detach())))
        np.testing.assert_allclose(est[k], values, rtol=1e-4, atol=1e-5)
        trained = unstack(stacked, k)
        # Adam divides by sqrt(v) + 1e-8: a gradient that is float noise (~1e-9) in one summation order
        # and 0 in another moves that weight by up to ~lr per step. InfoNCE is invariant to h's output
        # bias (it adds a function of x alone), so those 4 weights get only noise.
        for p, q in zip(trained.parameters(), single.parameters()):
            close = torch.isclose(p, q, rtol=1e-4, atol=1e-5)
            assert (~close).sum() <= 4 and (p - q).abs().max() < 6 * 1e-2


def test_staircase_table_matches_naive():
    rng = np.random.default_rng(0)
    est = rng.normal(size=(2, 40)) + np.repeat([1.0, 3.0], 20)
    res = StaircaseResult("separable", ["a", "b"], [1.0, 3.0], 20, 64, est, 0.0)
    rows = staircase_table(res)
    for row in rows:
        k = ["a", "b"].index(row["bound"])
        i = [1.0, 3.0].index(row["mi"])
        tail = est[k, i * 20 + 10:(i + 1) * 20]
        assert row["bias"] == pytest.approx(tail.mean() - row["mi"])
        assert row["sd"] == pytest.approx(tail.std(ddof=1))
        assert row["mse"] == pytest.approx(((tail - row["mi"]) ** 2).mean())
        assert row["mse"] == pytest.approx(row["bias"] ** 2 + row["sd"] ** 2 * 9 / 10)


class _ThirdParty:
    """A plugin-style bound: not a Bound subclass, just callable with .loss."""

    def __call__(self, scores):
        n = scores.shape[0]
        return (scores.diag() - torch.logsumexp(scores, 1)).mean() + math.log(n)

    def loss(self, scores):
        return -self(scores)


class _Broken:
    def __call__(self, scores):
        raise RuntimeError("this plugin is broken")

    def loss(self, scores):
        return self(scores)


@pytest.fixture
def plugins():
    mie.register("zz_third_party", _ThirdParty)
    mie.register("zz_broken", _Broken)
    yield
    mie.unregister("zz_third_party")
    mie.unregister("zz_broken")


def test_quick_grid_tiny_budget_covers_every_registered_bound(tmp_path, plugins):
    config = ValidationConfig.quick(tasks=("gauss-1x1-mi0.5", "uniform-eps0.1"), steps_per_level=4, task_steps=4,
                                    levels=(1, 2), eval_batches=2, progress=False)
    report = run_validation(config, out=tmp_path)
    expected = set(mie.available()) - {"zz_broken"}
    assert set(report["settings"]["bounds"]) == expected
    assert "zz_broken" in report["settings"]["failed"]
    (stair,) = report["staircase"]
    assert {r["bound"] for r in stair["table"]} == expected and len(stair["table"]) == 2 * len(expected)
    assert [t["task"] for t in report["tasks"]] == ["gauss-1x1-mi0.5", "uniform-eps0.1"]
    for t in report["tasks"]:
        assert {r["bound"] for r in t["rows"]} == expected
    md = (tmp_path / "report.md").read_text()
    assert "zz_third_party" in md and "zz_broken" in md
    for name in ("staircase_separable.png", "tasks.png", "results.json", "staircase_separable.npz"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["levels"] == [1, 2]


def test_resolve_bounds_errors():
    with pytest.raises(ValueError, match="no registered bound"):
        resolve_bounds(["nope*"])
    assert resolve_bounds(["info*"]).names == ["infonce"]


def test_cli_validate(tmp_path, capsys):
    rc = cli.main(["validate", "--quick", "--bounds", "infonce", "smile", "--tasks", "gauss-1x1-mi0.5",
                   "--steps-per-level", "2", "--task-steps", "3", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "infonce" in out and "smile" in out and "gauss-1x1-mi0.5" in out and "I=10" in out
    assert (tmp_path / "report.md").exists()


def test_cli_validate_lays_the_flags_given_over_the_chosen_preset(monkeypatch):
    """``--quick`` picks the quick preset, every flag given replaces its value, the rest stay the preset's;
    without ``--quick`` the rest are the full run's. Nothing runs: run_validation is replaced by a spy."""
    import mi_estimators.validation as validation

    seen = []
    monkeypatch.setattr(validation, "run_validation", lambda config, out, command: seen.append((config, out)) or
                        {"settings": {"levels": [], "failed": {}}, "staircase": [], "tasks": []})
    argv = ["validate", "--quick", "--task-steps", "7", "--tasks", "--no-progress", "--critics", "concat"]
    assert cli.main(argv) == 0
    assert cli.main(["validate", "--bounds", "infonce", "smile", "--levels", "1", "2.5", "--out", "o"]) == 0
    (quick, out_quick), (full, out_full) = seen
    assert quick == ValidationConfig.quick(task_steps=7, tasks=(), progress=False, critics=("concat",))
    assert out_quick == "out/validation" and out_full == "o"
    assert full == ValidationConfig.full(bounds=("infonce", "smile"), levels=(1.0, 2.5))
    assert full.progress is None  # the trainer's convention: bars when stderr is a terminal


@pytest.mark.parametrize("argv, message", [
    (["--critics", "separabel"], "invalid choice: 'separabel'"),
    (["--threads", "0"], "threads must be an integer >= 1, got 0"),
    (["--steps-per-level", "-1"], "steps_per_level must be an integer >= 0"),
    (["--levels", "0"], "levels must be a positive finite number"),
])
def test_cli_validate_rejects_bad_options_before_any_work(argv, message, capsys):
    try:
        rc = cli.main(["validate", *argv])
    except SystemExit as exc:  # argparse's own errors (a choice) exit 2 as well
        rc = exc.code
    assert rc == 2 and message in capsys.readouterr().err


def test_validation_config_normalises_sequences_and_names_the_closest_critic():
    config = ValidationConfig(tasks="gauss-*", bounds=["infonce"], levels=[1, 2])
    assert (config.tasks, config.bounds, config.levels) == (("gauss-*",), ("infonce",), (1.0, 2.0))
    with pytest.raises(ValueError, match="did you mean 'concat'"):
        ValidationConfig(critics=("concta",))
    quick, full = ValidationConfig.quick(), ValidationConfig.full()
    assert set(quick.changes_from(full)) == {"critics", "steps_per_level", "task_steps", "task_hidden",
                                             "eval_batches", "tasks"}
    assert quick.steps_per_level < full.steps_per_level and quick.task_steps < full.task_steps


@pytest.mark.parametrize("mean, sd, truth, flagged", [
    (-1649.0, 5191.0, 0.19, True), (float("nan"), 0.1, 1.0, True), (1.1, 0.2, 1.0, False),
    (-3.0, 4.0, 10.0, False), (25.0, 1.0, 2.0, True), (2.0, 9.0, 2.0, True)])
def test_diverged_cells_are_flagged_and_explained(mean, sd, truth, flagged):
    from mi_estimators.validation.report import DIVERGED_NOTE, diverged, plus_minus, summary_text

    assert diverged(mean, sd, truth) is flagged
    assert plus_minus(mean, sd, truth).endswith("†") is flagged
    report = {"settings": {"levels": [], "failed": {}}, "staircase": [],
              "tasks": [{"task": "t", "mi": truth, "rows": [{"bound": "b", "estimate": mean, "sd": sd}]}]}
    assert (DIVERGED_NOTE in summary_text(report)) is flagged


def test_task_figure_has_axis_label_and_legend(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from mi_estimators.validation.report import plot_tasks

    seen = {}
    real_savefig = plt.Figure.savefig

    def spy(fig, *args, **kwargs):
        seen["ylabel"] = fig.axes[0].get_ylabel()
        seen["legend"] = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        return real_savefig(fig, *args, **kwargs)

    plt.Figure.savefig = spy
    try:
        from mi_estimators.validation import TaskSettings, resolve_bounds, run_task

        res = run_task(mie.get("gauss-1x1-mi0.5", kind="tasks"), resolve_bounds(["infonce"]),
                       TaskSettings(steps=2, eval_batches=2))
        plot_tasks([res], tmp_path / "tasks.png")
    finally:
        plt.Figure.savefig = real_savefig
    assert seen["ylabel"] == "MI (nats)" and "true MI" in seen["legend"]


def test_run_estimate_script_reports_accuracy_coverage_and_time(tmp_path):
    """studies/run_estimate.py end to end on one easy task: the summary counts its rows and the
    report, the JSON and the plot are written."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "studies" / "run_estimate.py"
    opts = json.dumps({"steps": 100, "copula": False, "critic_options": {"hidden": 16}})
    subprocess.run([sys.executable, str(script), "--tasks", "gauss-1x1-mi0.5", "--seeds", "0", "1", "--n", "600",
                    "--options", opts, "--out", str(tmp_path)], check=True, capture_output=True, text=True)
    result = json.loads((tmp_path / "results.json").read_text())
    s, rows = result["summary"], result["rows"]
    assert s["tasks"] == 1 and s["pairs"] == len(rows) == 2 and s["ksg_run"]
    assert s["ok_all_seeds"] == all(r["ok"] for r in rows)
    assert all(0 < r["cpu_seconds"] and abs(r["estimate"] - r["mi"]) < 0.3 for r in rows)
    report = (tmp_path / "report.md").read_text()
    assert "gauss-1x1-mi0.5" in report and "CPU: median" in report and (tmp_path / "estimate.png").stat().st_size
    assert not (tmp_path / "results.partial.json").exists()  # a finished run leaves only its report


def test_run_estimate_suites_are_the_v2_benchmark_and_the_first_release():
    """--suite v2 is exactly BENCHMARK_V2 in its order; v1 is the 40 first-release tasks (no mixture,
    none of the v2-only tasks); together they are every registered task but the v2 ones shared."""
    import importlib.util
    from pathlib import Path

    from mi_estimators.tasks import BENCHMARK_V2

    path = Path(__file__).resolve().parents[1] / "studies" / "run_estimate.py"
    spec = importlib.util.spec_from_file_location("run_estimate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    v1, v2, every = (module.suite_tasks(s) for s in ("v1", "v2", "all"))
    assert v2 == list(BENCHMARK_V2) and len(v2) == 26
    assert len(v1) == 40 and not any(t.startswith("mixture-") or t in module.V2_ADDED for t in v1)
    assert set(v1) | set(v2) <= set(every) and set(every) - set(v1) - set(v2) <= {
        t for t in every if t.startswith("mixture-")} | module.LATER
