"""The conformance kit (mi_estimators.testing) over every registered entry, plugins included, and
against deliberately broken bounds, critics, encoders and tasks that it must catch by name."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import mi_estimators as mie
from mi_estimators.bounds.base import PAIRS_AND_LOCATIONS, diagonal, nwj_value
from mi_estimators.bounds.dv import DV, dv_value
from mi_estimators.tasks import GaussianTask
from mi_estimators.testing import (BOUND_PROPERTIES, CRITIC_PROPERTIES, ENCODER_PROPERTIES, TASK_PROPERTIES,
                                   ConformanceError, check_bound, check_critic, check_encoder, check_task)
from mi_estimators.testing.strategies import (gaussian_covariances, optimal_scores, paired_samples,
                                              registered_tasks, score_tensors)
from test_registry import make_dist

#: small options so that every built-in trains-size model stays fast; other entries get their defaults
SMALL = {("critics", "separable"): {"hidden": 16, "embed_dim": 8}, ("critics", "concat"): {"hidden": 16},
         ("encoders", "amdim"): {"ndf": 8, "n_rkhs": 32, "n_depth": 1}}


# ------------------------------------------------------------------ every registered entry


@pytest.mark.parametrize("name", mie.available("bounds"))
def test_registered_bound_conforms(name):
    check_bound(name)


@pytest.mark.parametrize("name, options", [
    ("interpolated", {"alpha": 1.0}),          # the InfoNCE end: ceiling log(N - 1)
    ("interpolated", {"alpha": 0.0}),          # the NWJ end: no ceiling
    ("smile", {"clip": None}),
    ("infonce", {"clip": 20.0, "penalty": 0.04}),
    ("mixture_nce", {"tau": 2.0, "clip": 5.0}),
    ("tuba", {"log_baseline": 2.0}),
])
def test_bound_options_conform(name, options):
    check_bound(name, **options)


@pytest.mark.parametrize("name", mie.available("critics"))
def test_registered_critic_conforms(name):
    check_critic(name, **SMALL.get(("critics", name), {}))


def test_quadratic_bilinear_critic_conforms():
    check_critic("bilinear", quadratic=True)


@pytest.mark.parametrize("name", mie.available("encoders"))
def test_registered_encoder_conforms(name):
    check_encoder(name, **SMALL.get(("encoders", name), {}))


@pytest.mark.parametrize("name", mie.available("tasks"))
def test_registered_task_conforms(name):
    check_task(name)


# ------------------------------------------------------------------ what a failure says


def _caught(check, target, prop, **options):
    """Run ``check`` on a broken ``target``; it must fail with ``prop`` named, the entry named and,
    for hypothesis properties, the minimal example attached."""
    with pytest.raises(ConformanceError) as info:
        check(target, settings=settings(max_examples=30, deadline=None, database=None), **options)
    err = info.value
    assert err.property == prop, str(err)
    assert f"'{prop}'" in str(err)
    name = target if isinstance(target, str) else target.__qualname__
    assert name in err.entry and err.entry in str(err)
    assert err.example and err.hint and f"hint: {err.hint}" in str(err)     # every failure says what and how to fix
    assert f"minimal example: {err.example.splitlines()[0]}" in str(err)
    return err


def _example_of(err):
    """The minimal failing example the error carries (hypothesis' shrunk call of a function named
    after the property), shown in its message with the hint."""
    function = re.sub(r"\W+", "_", err.property).strip("_")
    assert err.example and err.example.startswith(f"{function}("), err.example
    assert f"minimal example: {function}(" in str(err) and f"hint: {err.hint}" in str(err) and err.hint
    assert not any(f"{function}(" in n for n in getattr(err, "__notes__", [])), "the example is shown twice"
    return err.example


# ------------------------------------------------------------------ broken bounds


class NaiveDV(DV):
    """DV written naively: ``exp().mean().log()`` overflows at large scores."""

    def value(self, scores):
        negatives = ~torch.eye(scores.shape[0], dtype=torch.bool)
        return diagonal(scores).mean() - scores[negatives].exp().mean().log()


class OverReadingNWJ(mie.Bound):
    """NWJ with e^-2 in place of e^-1: E_P[T] - e^-2 E[e^T] reaches MI + 1 at T = 2 + log r."""

    info = mie.BoundInfo("over", "NWJ with the wrong constant", "lower", "none", score_shapes=PAIRS_AND_LOCATIONS)

    def value(self, scores):
        return nwj_value(scores, log_baseline=2.0) + 1.0


class UpperNWJ(mie.Bound):
    """A lower bound declared as an upper one."""

    info = mie.BoundInfo("upper", "NWJ declared upper", "upper", "none")

    def value(self, scores):
        return nwj_value(scores)


class NCEWithoutPositive(mie.Bound):
    """InfoNCE whose denominator leaves out the positive: not bounded by the log N it declares."""

    info = mie.BoundInfo("nce", "InfoNCE without the positive", "lower", "none", ceiling="log N",
                         max_value=lambda bound, shape: math.log(shape[0]))

    def value(self, scores):
        n = scores.shape[0]
        negatives = scores.masked_fill(torch.eye(n, dtype=torch.bool), -math.inf)
        return (scores.diagonal() - torch.logsumexp(negatives, 1)).mean() + math.log(n - 1)


class FirstSampleWeighted(DV):
    """Treats sample 0 specially: not invariant to reordering the batch."""

    def value(self, scores):
        return dv_value(scores) + 0.1 * scores[0, 0].sum()


class ClampsInPlace(DV):
    def value(self, scores):
        with torch.no_grad():
            scores.diagonal().clamp_(max=50.0)
        return dv_value(scores)


class Unchecked:
    """No base class, no input checks: NaN scores give NaN instead of a ValueError."""

    def __call__(self, scores):
        return dv_value(scores)

    def loss(self, scores):
        return -self(scores)


class VagueError(DV):
    """Refuses every bad input, with a message that does not say what it got."""

    def check(self, scores):
        try:
            return super().check(scores)
        except ValueError:
            raise ValueError("invalid input") from None


class LossDisagrees(DV):
    def value_and_loss(self, scores):
        value = self.value(scores)
        return value + 0.1, -value


@pytest.mark.parametrize("broken, prop", [
    (NaiveDV, "finite at extreme scores"),
    (OverReadingNWJ, "optimal critic vs closed-form MI"),
    (UpperNWJ, "optimal critic vs closed-form MI"),
    (NCEWithoutPositive, "within declared ceiling"),
    (FirstSampleWeighted, "invariant to a joint permutation"),
    (ClampsInPlace, "scores not mutated"),
    (LossDisagrees, "value_and_loss agrees"),
])
def test_broken_bound_is_caught_with_its_minimal_example(broken, prop):
    err = _caught(check_bound, broken, prop)
    assert "=" in _example_of(err)                       # the drawn arguments, e.g. scores=tensor(...)


@pytest.mark.parametrize("broken, prop, message", [
    (Unchecked, "bad scores raise ValueError", "instead of raising ValueError"),
    (VagueError, "errors name the bad input", "which does not show"),
])
def test_bound_without_clear_value_errors_is_caught(broken, prop, message):
    err = _caught(check_bound, broken, prop)
    assert message in err.detail
    assert err.example.startswith("bound(scores) with scores = torch.zeros(")   # the input, rebuilt


def test_naive_dv_overflows_at_the_extremes_in_its_minimal_example():
    err = _caught(check_bound, NaiveDV, "finite at extreme scores")
    assert re.search(r"10000\.|1\.0+e\+04", _example_of(err)) and "not finite" in err.detail


def test_failure_through_the_registry_names_distribution_and_entry():
    mie.register("naive_dv", NaiveDV)
    try:
        err = _caught(check_bound, "naive_dv", "finite at extreme scores")
    finally:
        mie.unregister("naive_dv")
    assert err.entry == "<local>[naive_dv]"
    assert "mi-estimators[infonce](clip=20.0)" == _label_of("infonce", clip=20.0)


def _label_of(name, **options):
    from mi_estimators.testing._core import Subject

    return Subject(name, "bounds", options).label


# ------------------------------------------------------------------ bounds from another package
# Written as a plugin author would: no base class, their own input checks in their own words.


def _outside_check(scores):
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        raise ValueError(f"scores must be a floating-point tensor, got {getattr(scores, 'dtype', type(scores))}")
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
        raise ValueError(f"scores must be square (N, N) with N >= 2, got {tuple(scores.shape)}")
    if not torch.isfinite(scores).all():
        raise ValueError(f"scores must be finite, got {int(scores.isnan().sum())} nan and "
                         f"{int(scores.isinf().sum())} inf entries")
    return scores


class CarefulInfoNCE(nn.Module):
    """InfoNCE, log N + mean_i [T_ii - log sum_j e^T_ij], that checks its input."""

    def forward(self, scores):
        s = _outside_check(scores)
        return (s.diagonal() - torch.logsumexp(s, dim=1)).mean() + math.log(s.shape[0])

    def loss(self, scores):
        return -self(scores)


class OneNatHigh(CarefulInfoNCE):
    """The same, plus one nat: it reads above the truth."""

    def forward(self, scores):
        return super().forward(scores) + 1.0


class OutsideNaiveDV:
    """DV as E_P[T] - log mean_neg e^T written exp().mean().log(): e^T overflows at large scores."""

    def __call__(self, scores):
        s = _outside_check(scores)
        negatives = ~torch.eye(s.shape[0], dtype=torch.bool)
        return s.diagonal().mean() - s[negatives].exp().mean().log()

    def loss(self, scores):
        return -self(scores)


class ConstantZero:
    """0 nats whatever the scores: a valid lower bound, and a useless one."""

    def __call__(self, scores):
        return 0.0 * _outside_check(scores).sum()

    def loss(self, scores):
        return -self(scores)


def test_careful_outside_bound_passes_in_its_own_words():
    check_bound(CarefulInfoNCE)
    with pytest.raises(ValueError, match=re.escape("scores must be square (N, N) with N >= 2, got (3,)")):
        CarefulInfoNCE()(torch.zeros(3))          # the message the old vocabulary rule refused


@pytest.mark.parametrize("broken, prop, says", [
    (OneNatHigh, "optimal critic vs closed-form MI", "above the true MI"),
    (OutsideNaiveDV, "finite at extreme scores", "is not finite"),
    (ConstantZero, "near the truth at the optimal critic", "may be a valid lower bound, but it is a useless one"),
])
def test_outside_bound_is_caught_for_its_own_reason(broken, prop, says):
    err = _caught(check_bound, broken, prop)
    assert says in err.detail
    _example_of(err)
    if prop != "finite at extreme scores":        # a bound without info is taken for a lower bound, and told so
        assert "without info, taken for a lower bound" in err.detail
    if prop == "optimal critic vs closed-form MI":
        assert "kind='upper'" in err.detail and "kind='neither'" in err.detail
    check_bound(broken, skip=[prop])               # its one fault: every other property holds


def test_declared_kind_decides_the_closed_form_properties():
    class DeclaredNeither(OneNatHigh):
        info = mie.BoundInfo("plus_one", "InfoNCE + 1, not a bound", "neither", "none")

    class CappedZero(ConstantZero):               # declares the cap that keeps it from the truth
        info = mie.BoundInfo("zero", "0 nats", "lower", "none", ceiling="0", max_value=lambda bound, shape: 0.0)

    check_bound(DeclaredNeither)
    check_bound(CappedZero)


def test_error_patterns_come_from_the_input():
    from mi_estimators.testing._core import dtype_forms, shape_forms, value_forms

    def shows(patterns, message):
        return any(re.search(p, message, re.IGNORECASE) for p in patterns)

    for message in ("got (3, 4)", "got [3, 4]", "torch.Size([3, 4])", "a 3x4 matrix", "3 × 4"):
        assert shows(shape_forms((3, 4)), message), message
    for message in ("got (3, 4, 2)", "got (2, 3, 4)", "got 13, 4", "expected a square shape"):
        assert not shows(shape_forms((3, 4)), message), message
    assert shows(shape_forms((3,)), "got torch.Size([3])") and not shows(shape_forms((3,)), "got (3, 3)")
    assert all(shows(dtype_forms(torch.long), m) for m in ("torch.int64", "a Long tensor", "got torch.long"))
    assert not any(shows(dtype_forms(torch.long), m) for m in ("int32", "longer", "must be float"))
    assert shows(value_forms(math.nan), "1 NaN entry") and shows(value_forms(-math.inf), "an infinite entry")
    assert not shows(value_forms(math.inf), "scores must be non-finite... finite")


def test_every_property_has_a_one_line_hint():
    from mi_estimators.testing import bounds, critics, encoders, tasks

    for module, names in ((bounds, BOUND_PROPERTIES), (critics, CRITIC_PROPERTIES), (encoders, ENCODER_PROPERTIES),
                          (tasks, TASK_PROPERTIES)):
        assert set(module.HINTS) == set(names)
        assert all(h.strip() and "\n" not in h for h in module.HINTS.values())


# ------------------------------------------------------------------ broken critics


class _Critic(nn.Module):
    def __init__(self, x_dim, y_dim):
        super().__init__()
        self.x_dim, self.y_dim = x_dim, y_dim
        self.w = nn.Parameter(torch.randn(x_dim, y_dim))

    def forward(self, x, y):
        if x.dim() != 2 or y.dim() != 2 or x.shape[1] != self.x_dim or y.shape[1] != self.y_dim:
            raise ValueError(f"x and y must have shape (N, {self.x_dim}) and (N, {self.y_dim}), got "
                             f"{list(x.shape)} and {list(y.shape)}")
        if not (x.is_floating_point() and y.is_floating_point()):
            raise ValueError(f"x and y must be floating-point, got {x.dtype} and {y.dtype}")
        return x @ self.w @ y.t()


class BatchNormalisedCritic(_Critic):
    """Standardises the scores over the batch: scores[i, j] is no longer T(x_i, y_j)."""

    def forward(self, x, y):
        s = super().forward(x, y)
        return (s - s.mean()) / (s.std() + 1.0) if s.numel() > 1 else s


class UnusedParameterCritic(_Critic):
    def __init__(self, x_dim, y_dim):
        super().__init__(x_dim, y_dim)
        self.spare = nn.Linear(3, 3)


class DiagonalOnlyCritic(_Critic):
    def forward(self, x, y):
        return super().forward(x, y).diagonal()


class UncheckedCritic(_Critic):
    def forward(self, x, y):
        return x.float() @ self.w @ y.float().t()


class VagueCritic(_Critic):
    def forward(self, x, y):
        try:
            return super().forward(x, y)
        except ValueError:
            raise ValueError("bad input: see the documentation") from None


@pytest.mark.parametrize("broken, prop", [
    (UncheckedCritic, "bad input raises ValueError"),
    (VagueCritic, "errors name the bad input"),
    (DiagonalOnlyCritic, "scores are (N, N)"),
    (BatchNormalisedCritic, "scores are pairwise"),
    (UnusedParameterCritic, "gradients reach every parameter"),
])
def test_broken_critic_is_caught(broken, prop):
    _caught(check_critic, broken, prop)


# ------------------------------------------------------------------ broken encoders


class _Encoder(nn.Module):
    def __init__(self, in_channels, image_size):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, 2, 1)
        self.head = nn.Linear(4, 6)

    def forward(self, x):
        local = torch.relu(self.conv(x))
        return {"global": self.head(local.mean((2, 3))), "local": local}


class GlobalOnlyEncoder(_Encoder):
    def forward(self, x):
        return {"global": super().forward(x)["global"]}


class BatchCentredEncoder(_Encoder):
    """Centres the representation on the batch mean, in eval mode too."""

    def forward(self, x):
        out = super().forward(x)
        return {**out, "global": out["global"] - out["global"].mean(0)}


class DetachedHeadEncoder(_Encoder):
    def __init__(self, in_channels, image_size):
        super().__init__(in_channels, image_size)
        self.unused = nn.Conv2d(4, 4, 1)


class InPlaceEncoder(_Encoder):
    def forward(self, x):
        return super().forward(x.clamp_(0.0, 0.5))


@pytest.mark.parametrize("broken, prop", [
    (GlobalOnlyEncoder, "features follow the contract"),
    (InPlaceEncoder, "features follow the contract"),
    (BatchCentredEncoder, "eval features are per-sample"),
    (DetachedHeadEncoder, "gradients reach every parameter"),
])
def test_broken_encoder_is_caught(broken, prop):
    _caught(check_encoder, broken, prop, image_size=8)


def test_small_working_encoder_conforms_on_every_device_given():
    check_encoder(_Encoder, image_size=8, devices=["cpu", "cpu"])   # the device comparison runs as on CUDA


# ------------------------------------------------------------------ broken tasks


class MIOffTask(GaussianTask):
    """Reports 0.1 nats more than the truth."""

    @property
    def mi(self):
        return super().mi + 0.1


class ShiftedTask(GaussianTask):
    """Ratio and mi off by the same constant: consistent with each other, both wrong."""

    @property
    def mi(self):
        return super().mi + 0.3

    def log_density_ratio(self, x, y):
        return super().log_density_ratio(x, y) + 0.3


class SeedlessTask(GaussianTask):
    def _sample(self, n, rng):
        return super()._sample(n, np.random.default_rng())


class Float32Task(GaussianTask):
    def sample(self, n, seed=None):
        x, y = super().sample(n, seed)
        return x.astype(np.float32), y.astype(np.float32)


def _gauss(cls):
    return lambda: cls(GaussianTask.from_mi(1.0, 2).cov, 2)


@pytest.mark.parametrize("broken, prop", [
    (MIOffTask, "mi agrees with Monte-Carlo"),
    (ShiftedTask, "density ratio normalised"),
    (SeedlessTask, "reproducible by seed"),
    (Float32Task, "sample shapes"),
])
def test_broken_task_is_caught(broken, prop):
    factory = _gauss(broken)
    factory.__qualname__ = broken.__qualname__
    _caught(check_task, factory, prop)


def test_task_instance_and_registered_id():
    check_task(GaussianTask.from_mi(0.5, 1))
    task = mie.get("gauss-1x1-mi0.5", kind="tasks")
    task.id = "renamed"
    mie.register("renamed-task", lambda: task, kind="tasks")
    try:
        err = _caught(check_task, "renamed-task", "attributes")
    finally:
        mie.unregister("renamed-task", kind="tasks")
    assert "registered as 'renamed-task'" in err.detail


# ------------------------------------------------------------------ the calls themselves


def test_skip_and_settings_are_checked():
    with pytest.raises(ValueError, match="unknown properties.*finite at extremes"):
        check_bound("dv", skip=["finite at extremes"])
    # the overflow is the naive DV's only fault: without that property the rest passes
    check_bound(NaiveDV, skip=["finite at extreme scores"], settings=settings(max_examples=3, deadline=None))
    for names in (BOUND_PROPERTIES, CRITIC_PROPERTIES, ENCODER_PROPERTIES, TASK_PROPERTIES):
        assert len(set(names)) == len(names)


def test_an_instance_is_refused_with_a_fix():
    with pytest.raises(TypeError, match="not an instance"):
        check_bound(mie.get("dv"))


def test_core_imports_without_hypothesis_and_the_kit_says_how_to_get_it():
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import mi_estimators, mi_estimators.bounds, mi_estimators.critics, mi_estimators.tasks\n"
            "import mi_estimators.estimation, mi_estimators.cli, mi_estimators.training\n"
            "try:\n    import mi_estimators.testing\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install mi-estimators[testing]" in out.stdout


# ------------------------------------------------------------------ the strategies


@given(spec=gaussian_covariances(st.floats(0.0, 3.0), max_dim=3))
def test_gaussian_covariances_are_positive_definite_with_the_chosen_mi(spec):
    cov, x_dim, mi = spec
    assert np.allclose(cov, cov.T) and np.linalg.eigvalsh(cov).min() > 0
    assert np.allclose(np.diag(cov), 1.0)
    task = GaussianTask(cov, x_dim)
    assert task.mi == pytest.approx(mi, abs=1e-6)


@given(scores=score_tensors(tuple(mie.ScoreShape), max_n=4, dtypes=(torch.float32,)))
def test_score_tensors_take_every_layout(scores):
    assert scores.dtype == torch.float32 and scores.dim() in (2, 3, 4)
    assert scores.shape[0] == scores.shape[1] >= 2 and torch.isfinite(scores).all()
    assert scores.abs().max() <= 1e4


@settings(max_examples=5)
@given(sample=paired_samples(registered_tasks("gauss-*"), max_n=16, dtype=torch.float32))
def test_paired_samples_and_optimal_scores(sample):
    x, y, task, seed = sample
    assert x.dtype == torch.float32 and x.shape == (len(x), task.x_dim) and y.shape == (len(x), task.y_dim)
    scores = optimal_scores(task, x.double(), y.double())
    assert scores.shape == (len(x), len(x))
    np.testing.assert_allclose(scores.diagonal().numpy(), task.log_density_ratio(x.double(), y.double()))


# ------------------------------------------------------------------ the README's example plugin


def _readme_block(first_line):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```(?:toml|python)\n(.*?)```", readme, re.S)
    found = [b for b in blocks if b.startswith(first_line)]
    assert len(found) == 1, f"the README needs one code block starting with {first_line!r}"
    return found[0]


def test_readme_example_plugin_passes_its_own_test_file(tmp_path):
    """Install the README's plugin as pip would leave it (module + dist-info with its entry points)
    and run the README's test file on it with pytest, as its authors would."""
    tomllib = pytest.importorskip("tomllib", reason="Python >= 3.11 reads the README's pyproject block")
    meta = tomllib.loads(_readme_block('# pyproject.toml of the package "my-bounds"'))["project"]
    site, project = tmp_path / "site", tmp_path / "project"
    site.mkdir()
    (project / "tests").mkdir(parents=True)
    make_dist(site, meta["name"], "my_bounds", _readme_block("# my_bounds.py"), meta["entry-points"])
    (project / "tests" / "test_my_bounds.py").write_text(_readme_block("# tests/test_my_bounds.py"))
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_my_bounds.py"],
                         cwd=project, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 passed" in out.stdout


def test_readme_failing_run_is_real_output(tmp_path):
    """The README's failing run of an outside bound: its script, run as shown, prints the README's
    output (the error's message: entry, property, detail, minimal example, hint)."""
    script = tmp_path / "plus_one.py"
    script.write_text(_readme_block("# plus_one.py"))
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (shown,) = re.findall(r"```text\n(mi_estimators\.testing\.ConformanceError: .*?)```", readme, re.S)
    # as a user runs it: on a CI machine hypothesis switches to its CI profile, which appends a
    # reproduce_failure blob the README does not show
    ci_markers = ("CI", "TF_BUILD", "BUILDKITE", "CIRCLECI", "CIRRUS_CI", "CODEBUILD_BUILD_ID", "GITHUB_ACTIONS",
                  "GITLAB_CI", "HEROKU_TEST_RUN_ID", "TEAMCITY_VERSION", "bamboo.buildKey")
    env = {k: v for k, v in os.environ.items() if k not in ci_markers} | {"OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.endswith(shown), out.stderr[-3000:]
