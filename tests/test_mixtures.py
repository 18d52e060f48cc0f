"""Gaussian-mixture tasks (mi_estimators/tasks/mixtures.py, mixture_families.py) and the benchmark's v2 list.

The density ratio is checked against scipy's Gaussian densities summed naively over the components;
the cached Monte-Carlo MI against a fresh, smaller Monte-Carlo run within the combined standard error;
the sampler against the mixture's closed-form mean and covariance; the maps against their inverses.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

import mi_estimators as mie
from mi_estimators.tasks import GaussianTask, Spiral
from mi_estimators.tasks.catalog import BENCHMARK_V2, BMI, CATALOG, MIXTURE_MI
from mi_estimators.tasks.mixture_families import (Waves, ai_task, concentric_task, galaxy_task, inliers_task,
                                                  waves_task, x_task)
from mi_estimators.tasks.mixtures import MC_SAMPLES, MC_SEED, GaussianMixtureTask

#: stand-in cached values, so that building a task in a test does not run the 10⁶-draw integral
CACHE = {"mi": 1.0, "mi_stderr": 0.1}


def _base(task):
    """The Gaussian mixture under a task's maps."""
    return getattr(task, "base", task)


def _naive_log_ratio(task: GaussianMixtureTask, x, y):
    """log p(x, y) - log p(x) - log p(y), each a log of Σ_k w_k N(·; μ_k, Σ_k) from scipy's densities."""
    dx = task.x_dim

    def log_mix(z, lo, hi):
        terms = [math.log(w) + stats.multivariate_normal(m[lo:hi], c[lo:hi, lo:hi]).logpdf(z)
                 for w, m, c in zip(task.weights, task.means, task.covs)]
        return special.logsumexp(np.stack(terms, axis=-1).reshape(len(z), -1), axis=1)

    d = task.means.shape[1]
    return log_mix(np.hstack([x, y]), 0, d) - log_mix(x, 0, dx) - log_mix(y, dx, d)


def _random_mixture(seed: int) -> GaussianMixtureTask:
    rng = np.random.default_rng(seed)
    k, dx, dy = 3, 2, 2
    a = rng.normal(size=(k, dx + dy, dx + dy))
    covs = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(dx + dy)
    return GaussianMixtureTask(rng.dirichlet(np.ones(k)), rng.normal(size=(k, dx + dy)), covs, dx, **CACHE)


NAIVE = {
    "x": lambda: x_task(0.9, **CACHE),
    "ai": lambda: ai_task(**CACHE),
    "concentric": lambda: concentric_task(3, 5, **CACHE),
    "inliers": lambda: inliers_task(GaussianTask.structured(3, 3, corr=0.8, n_interacting=2), 0.3, **CACHE),
    "random": lambda: _random_mixture(0),
}


@pytest.mark.parametrize("name", sorted(NAIVE))
def test_log_ratio_matches_naive_scipy_sum_over_components(name):
    task = NAIVE[name]()
    x, y = task.sample(7, seed=3)
    # the task's own points and points far from every component (log-sum-exp must not underflow there)
    far_x, far_y = x + 4.0, y - 3.0
    for a, b in ((x, y), (far_x, far_y)):
        np.testing.assert_allclose(task.log_density_ratio(a, b), _naive_log_ratio(task, a, b), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("task_id", sorted(MIXTURE_MI))
def test_cached_mi_agrees_with_a_fresh_monte_carlo_run(task_id):
    task = CATALOG[task_id]()
    mi, se = MIXTURE_MI[task_id]
    assert (task.mi, task.mi_stderr) == (mi, se)
    fresh, fresh_se = _base(task).monte_carlo_mi(20_000, seed=12345)
    assert abs(fresh - mi) <= 4.0 * math.hypot(se, fresh_se), (fresh, fresh_se, mi, se)
    assert se < fresh_se / 5  # 10⁶ draws against 2·10⁴: √50 ≈ 7 times smaller


def test_cached_mi_is_the_documented_computation():
    """The cache holds what the task computes itself at 10⁶ draws from seed 0 (the cheapest task)."""
    task = x_task(0.9)  # no cached value: computed on first use
    assert (MC_SAMPLES, MC_SEED) == (1_000_000, 0)
    assert task.mi == pytest.approx(MIXTURE_MI["mixture-x-1x1-rho0.9"][0], abs=5e-7)
    assert task.mi_stderr == pytest.approx(MIXTURE_MI["mixture-x-1x1-rho0.9"][1], abs=5e-7)


@pytest.mark.parametrize("task_id", sorted(MIXTURE_MI))
def test_sampler_has_the_mixtures_mean_and_covariance(task_id):
    """Mean Σ w_k μ_k and covariance Σ w_k (Σ_k + μ_k μ_kᵀ) − μ μᵀ, of the mixture under the maps."""
    base = _base(CATALOG[task_id]())
    n = 40_000
    x, y = base.sample(n, seed=5)
    z = np.hstack([x, y])
    w, means = base.weights, base.means
    mean = w @ means
    cov = np.einsum("k,kij->ij", w, base.covs + np.einsum("ki,kj->kij", means, means)) - np.outer(mean, mean)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(z.mean(0), mean, atol=5 * (sd / math.sqrt(n)).max())
    np.testing.assert_allclose(z.std(0), sd, rtol=0.05)
    corr = np.corrcoef(z.T)
    np.testing.assert_allclose(corr, cov / np.outer(sd, sd), atol=0.03)


def test_x_is_uncorrelated_yet_dependent_with_standard_normal_marginals():
    task = CATALOG["mixture-x-1x1-rho0.9"]()
    x, y = task.sample(50_000, seed=1)
    assert abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1]) < 0.02
    assert stats.kstest(x[:, 0], "norm").pvalue > 1e-3 and stats.kstest(y[:, 0], "norm").pvalue > 1e-3
    assert task.mi > 0.4


@pytest.mark.parametrize("task_id, bijection", [("mixture-galaxy-2x1", Spiral(2, 0.5)), ("mixture-waves-2x1", Waves())])
def test_maps_keep_the_density_ratio_and_the_mi(task_id, bijection):
    task = CATALOG[task_id]()
    x0, y0 = task.base.sample(200, seed=2)
    x, y = task.sample(200, seed=2)  # the same draws, mapped
    np.testing.assert_allclose(x, bijection.forward(x0), atol=1e-12)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_allclose(task.base.log_density_ratio(x0, y0), task.log_density_ratio(x, y), atol=1e-8)
    np.testing.assert_allclose(bijection.inverse(x), x0, atol=1e-9)
    assert (task.mi, task.mi_stderr) == (task.base.mi, task.base.mi_stderr) == MIXTURE_MI[task_id]


def test_waves_bends_the_first_axis_by_the_second():
    v = np.array([[0.0, math.pi / 6], [1.0, 0.0]])  # sin(3 · π/6) = 1
    np.testing.assert_allclose(Waves().forward(v), [[0.1 * 5.0 - 0.8, 0.5 * math.pi / 6], [0.1 - 0.8, 0.0]])


@pytest.mark.parametrize("fraction", [0.2, 0.5])
def test_inliers_ratio_lives_on_the_interacting_pairs(fraction):
    """Axes beyond the two interacting pairs are N(0, 1), independent of all, in both components: the
    25 × 25 task's log ratio is the 2 × 2 one's at the interacting coordinates, and so is its MI."""
    wide = inliers_task(GaussianTask.structured(25, 25, corr=0.8, n_interacting=2), fraction, **CACHE)
    core = inliers_task(GaussianTask.structured(2, 2, corr=0.8, n_interacting=2), fraction, **CACHE)
    x, y = wide.sample(500, seed=4)
    np.testing.assert_allclose(wide.log_density_ratio(x, y), core.log_density_ratio(x[:, :2], y[:, :2]), atol=1e-9)
    ids = [f"mixture-2pair-{d}x{d}-inliers{fraction:g}" for d in (5, 25)]
    (a, sa), (b, sb) = (MIXTURE_MI[i] for i in ids)
    assert abs(a - b) <= 4 * math.hypot(sa, sb)


def test_inliers_dilute_but_keep_the_gaussian_marginals():
    task = CATALOG["mixture-2pair-5x5-inliers0.2"]()
    x, y = task.sample(50_000, seed=6)
    np.testing.assert_allclose(np.corrcoef(x[:, 0], y[:, 0])[0, 1], 0.8 * 0.8, atol=0.01)
    assert stats.kstest(x[:, 0], "norm").pvalue > 1e-3
    assert 0 < task.mi < CATALOG["gauss-2pair-5x5"]().mi  # a mixture with independence loses information


def test_concentric_y_names_the_shell_so_mi_is_below_log_k():
    task = CATALOG["mixture-concentric-3x1-k5"]()
    x, y = task.sample(5000, seed=7)
    shell = np.rint(y[:, 0])
    assert set(np.unique(shell)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    radius = np.linalg.norm(x, axis=1) / np.sqrt(3)
    assert np.corrcoef(radius, shell)[0, 1] > 0.6
    for k in (5, 10):  # I(X; Y) <= H(Y's shell) = log K
        assert 0 < CATALOG[f"mixture-concentric-3x1-k{k}"]().mi < math.log(k)


def test_closed_form_tasks_report_zero_stderr():
    assert CATALOG["gauss-dense-50x50"]().mi_stderr == 0.0
    assert CATALOG["spiral-gauss-2pair-3x3"]().mi_stderr == 0.0


#: the 26 task ids of the benchmark's v2 configuration (``workflows/benchmark/v2/config.py``), in its order
PEER_V2 = (
    "1v1-additive-0.75", "asinh-student-identity-1-1-1", "1v1-X-0.9", "1v1-AI",
    "swissroll_x-normal_cdf-1v1-normal-0.75", "2v1-waves-12-5.0-3.0", "2v1-galaxy-0.5-3.0",
    "3v1-concentric_gaussians-5", "5v1-concentric_gaussians-5", "3v1-concentric_gaussians-10",
    "5v1-concentric_gaussians-10", "25v1-concentric_gaussians-5", "multinormal-dense-5-5-0.5",
    "multinormal-dense-25-25-0.5", "multinormal-dense-50-50-0.5", "multinormal-sparse-5-5-2-2.0",
    "multinormal-sparse-25-25-2-2.0", "mult-sparse-w-inliers-5-5-2-2.0-0.2", "mult-sparse-w-inliers-25-25-2-2.0-0.2",
    "mult-sparse-w-inliers-5-5-2-2.0-0.5", "mult-sparse-w-inliers-25-25-2-2.0-0.5", "asinh-student-identity-2-2-1",
    "asinh-student-identity-3-3-2", "asinh-student-identity-5-5-2", "spiral-multinormal-sparse-3-3-2-2.0",
    "spiral-multinormal-sparse-5-5-2-2.0",
)


def test_benchmark_v2_is_the_peers_list_and_registered():
    assert len(BENCHMARK_V2) == len(set(BENCHMARK_V2)) == 26
    assert tuple(BMI[i] for i in BENCHMARK_V2) == PEER_V2
    assert set(BENCHMARK_V2) <= set(mie.available("tasks"))


@pytest.mark.parametrize("call, match", [
    (lambda: GaussianMixtureTask([0.5, 0.4], np.zeros((2, 2)), [np.eye(2)] * 2, 1), "summing to 1"),
    (lambda: GaussianMixtureTask([1.0], np.zeros((1, 2)), [np.eye(3)], 1), "covs"),
    (lambda: GaussianMixtureTask([1.0], np.zeros((1, 2)), [np.eye(2)], 2), "x_dim"),
    (lambda: GaussianMixtureTask([1.0], np.zeros((1, 2)), [[[1.0, 2.0], [2.0, 1.0]]], 1), "positive definite"),
    (lambda: GaussianMixtureTask([1.0], np.zeros((1, 2)), [[[1.0, 0.5], [0.0, 1.0]]], 1), "symmetric"),
    (lambda: GaussianMixtureTask([1.0], np.zeros((1, 2)), [np.eye(2)], 1, mi=0.3), "together"),
    (lambda: inliers_task(GaussianTask.from_mi(1.0), 1.0, **CACHE), "fraction"),
    (lambda: x_task(1.0, **CACHE), "strictly between"),
    (lambda: Waves(scale=(0.0, 1.0)), "non-zero"),
    (lambda: Waves().forward(np.zeros((2, 3))), "2 columns"),
    (lambda: waves_task(0, **CACHE), "n_components"),
    (lambda: galaxy_task(distance=-1.0, **CACHE), "distance"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
