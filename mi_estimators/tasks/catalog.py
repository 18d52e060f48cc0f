"""The catalogue: preconfigured tasks with stable ids, registered as entry points (kind ``tasks``).

``mi_estimators.get("gauss-5x5-mi2", kind="tasks")`` returns a fresh task. The ids never change
meaning; a new configuration gets a new id. Each id is declared in ``pyproject.toml`` under
``[project.entry-points."mi_estimators.tasks"]`` pointing at the factory of the same name here
(dashes and dots spelled ``_``). :data:`BMI` names the task of Czyż et al.'s benchmark
(``benchmark-mi``, arXiv:2306.11078) that an id reproduces: same distribution, same parameters,
same true MI, so that results compare with the paper's figures. (The benchmark also z-scores each
column of every sample before estimating, an affine map of each side that leaves the MI alone;
``estimate()`` and ``ksg_mi`` standardise their inputs themselves, so the tasks here are the
unscaled distributions, as bmi's task objects are.)

Families (the ids in ``_SPECS`` below are grouped the same way):

=======================  ==================================================  ===============================
family                   where                                               ids
=======================  ==================================================  ===============================
Gaussian                 :class:`~mi_estimators.tasks.GaussianTask`          ``gauss-*``
bmi 2-pair Gaussian      corr 0.8 on 2 pairs, the rest independent           ``gauss-2pair-*`` (5, 25, 50 d)
elementwise transforms   :class:`~mi_estimators.tasks.TransformedTask`       ``cubic-*``, ``halfcube-*``,
                                                                             ``asinh-*``, ``normalcdf-*``
wiggly, bimodal          :mod:`mi_estimators.tasks.marginals`                ``wiggly-*``, ``bimodal-*``
swiss roll (2 x 1)       :mod:`mi_estimators.tasks.swissroll`                ``swissroll-*``
spiral                   :mod:`mi_estimators.tasks.spiral`                   ``spiral-*``
hidden in high dimension :mod:`mi_estimators.tasks.hidden`                   ``hidden-*`` (100 d)
Student-t                :class:`~mi_estimators.tasks.StudentTTask`          ``student-t-*`` (2-10 d, df 1-5)
additive uniform noise   :class:`~mi_estimators.tasks.AdditiveUniformTask`   ``uniform-*``
Gaussian mixtures        :mod:`mi_estimators.tasks.mixture_families`         ``mixture-*`` (X, AI, galaxy,
                                                                             waves, concentric, inliers)
high MI (>= 4 nats)      non-Gaussian copula: Student-t, noise, spiral       ``student-t-5x5-df3-rho0.9``,
                                                                             ``uniform-3x3-eps0.1``,
                                                                             ``spiral-gauss-5x5-mi5``
=======================  ==================================================  ===============================

:data:`BENCHMARK_V2` lists the ids of the 26 tasks of the benchmark's second version (its
``workflows/benchmark/v2/config.py``, Czyż et al. 2023, arXiv:2310.10240), in its order. The
MI of a mixture task is a Monte-Carlo integral of its exact density ratio
(:mod:`mi_estimators.tasks.mixtures`); the catalogue caches the value at 10⁶ draws from seed 0
with its standard error, in :data:`MIXTURE_MI`, so that building a task costs nothing.
"""

from __future__ import annotations

import re
from typing import Callable

from mi_estimators.tasks.base import Task
from mi_estimators.tasks.gaussian import GaussianTask
from mi_estimators.tasks.hidden import HiddenTask
from mi_estimators.tasks.marginals import bimodal
from mi_estimators.tasks.mixture_families import (ai_task, concentric_task, galaxy_task, inliers_task, waves_task,
                                                  x_task)
from mi_estimators.tasks.spiral import spiral_task
from mi_estimators.tasks.student import StudentTTask
from mi_estimators.tasks.swissroll import swiss_roll_task
from mi_estimators.tasks.transformed import TransformedTask
from mi_estimators.tasks.uniform import AdditiveUniformTask

__all__ = ["BENCHMARK_V2", "BMI", "CATALOG", "MIXTURE_MI", "attribute_name"]


def _gauss(mi, d):
    return lambda: GaussianTask.from_mi(mi, d)


def _two_pair(d: int) -> GaussianTask:
    """bmi's 2-pair Gaussian: latent Z_k with weight λ = 2 added to X_k and Y_k for k < 2, unit noise,
    the other axes with variance matched: Cor(X_k, Y_k) = λ²/(1 + λ²) = 0.8, all else 0."""
    return GaussianTask.structured(d, d, corr=0.8, n_interacting=2)


def _rho75() -> GaussianTask:
    return GaussianTask.correlated(1, 0.75)  # bmi's bivariate normal base of the 1-d tasks


def _t(d: int, df: float) -> StudentTTask:
    return StudentTTask.identity(d, d, df=df)


def _tr(base, fx, fy="same"):
    return lambda: TransformedTask(base(), fx, fy)


#: mixture id -> (MI, its standard error) in nats: ``GaussianMixtureTask.monte_carlo_mi`` at
#: ``MC_SAMPLES`` = 10⁶ draws from ``MC_SEED`` = 0 (rounded to 10⁻⁶), the value the task would compute itself
#: (tests/test_mixtures.py recomputes each at a smaller sample and one at full size)
MIXTURE_MI: dict[str, tuple[float, float]] = {
    "mixture-x-1x1-rho0.9": (0.408640, 0.000746),
    "mixture-ai-1x1": (0.777380, 0.000869),
    "mixture-galaxy-2x1": (0.494405, 0.000511),
    "mixture-waves-2x1": (1.306559, 0.000385),
    "mixture-concentric-3x1-k5": (0.454443, 0.000668),
    "mixture-concentric-5x1-k5": (0.626807, 0.000710),
    "mixture-concentric-3x1-k10": (0.559105, 0.000747),
    "mixture-concentric-5x1-k10": (0.750626, 0.000796),
    "mixture-concentric-25x1-k5": (1.190050, 0.000637),
    "mixture-2pair-5x5-inliers0.2": (0.634997, 0.001155),
    "mixture-2pair-25x25-inliers0.2": (0.637590, 0.001156),
    "mixture-2pair-5x5-inliers0.5": (0.269224, 0.000839),
    "mixture-2pair-25x25-inliers0.5": (0.270617, 0.000840),
}


def _inliers(d: int, fraction: float, **cached) -> Task:
    return inliers_task(_two_pair(d), fraction, **cached)


def _mix(task_id: str, build: Callable[..., Task], *args) -> Callable[[], Task]:
    mi, se = MIXTURE_MI[task_id]
    return lambda: build(*args, mi=mi, mi_stderr=se)


#: id -> (builder, one-line summary)
_SPECS: dict[str, tuple[Callable[[], Task], str]] = {
    # Gaussian
    "gauss-1x1-mi0.5": (_gauss(0.5, 1), "1-d Gaussian pair, 0.5 nats"),
    "gauss-2x2-mi1": (_gauss(1.0, 2), "2 correlated Gaussian pairs, 1 nat"),
    "gauss-5x5-mi2": (_gauss(2.0, 5), "5 correlated Gaussian pairs, 2 nats"),
    "gauss-dense-5x5": (lambda: GaussianTask.structured(5, 5, corr=0.5, off_diag=0.5),
                        "5+5-d Gaussian, every X-Y and within-block correlation 0.5 (BMI dense)"),
    "gauss-sparse-5x5": (lambda: GaussianTask.structured(5, 5, corr=0.8, n_interacting=2, off_diag=0.1),
                         "5+5-d Gaussian, 2 pairs of correlation 0.8, within-block 0.1 (not bmi's 2-pair)"),
    "gauss-2pair-5x5": (lambda: _two_pair(5),
                        "5+5-d 2-pair Gaussian: 2 pairs of correlation 0.8, the rest independent"),
    "gauss-2pair-25x25": (lambda: _two_pair(25), "25+25-d 2-pair Gaussian (sparse, high-d)"),
    "gauss-2pair-50x50": (lambda: _two_pair(50), "50+50-d 2-pair Gaussian (sparse, high-d)"),
    "gauss-20x20-mi10": (_gauss(10.0, 20), "20 correlated Gaussian pairs, 10 nats (hard)"),
    # elementwise transforms of Gaussians
    "cubic-gauss-1x1-mi0.5": (lambda: TransformedTask(GaussianTask.from_mi(0.5, 1), "cubic"),
                              "1-d Gaussian, 0.5 nats, both sides cubed"),
    "halfcube-gauss-3x3-mi1": (lambda: TransformedTask(GaussianTask.from_mi(1.0, 3), "halfcube"),
                               "3 Gaussian pairs, 1 nat, x*sqrt|x| on both sides"),
    "normalcdf-gauss-5x5-mi1": (lambda: TransformedTask(GaussianTask.from_mi(1.0, 5), "normal_cdf"),
                                "5 Gaussian pairs, 1 nat, through the normal CDF (values in (0, 1))"),
    "halfcube-gauss-2pair-25x25": (_tr(lambda: _two_pair(25), "halfcube"),
                                   "25+25-d 2-pair Gaussian, x*sqrt|x| both sides"),
    "halfcube-gauss-2pair-50x50": (_tr(lambda: _two_pair(50), "halfcube"),
                                   "50+50-d 2-pair Gaussian, x*sqrt|x| both sides"),
    "normalcdf-gauss-2pair-25x25": (_tr(lambda: _two_pair(25), "normal_cdf"),
                                    "25+25-d 2-pair Gaussian through the normal CDF"),
    "asinh-gauss-2pair-50x50": (_tr(lambda: _two_pair(50), "asinh"), "50+50-d 2-pair Gaussian under asinh"),
    # wiggly and bimodal marginals, the swiss roll (1-d Gaussian of correlation 0.75 at the base)
    "wiggly-gauss-1x1-rho0.75": (_tr(_rho75, "wiggly_x", "wiggly_y"),
                                 "1-d Gaussian, correlation 0.75, bmi's wiggly map on each side"),
    "bimodal-gauss-1x1-rho0.75": (_tr(_rho75, "bimodal_x", "bimodal_y"),
                                  "1-d Gaussian copula (0.75), mixture marginals 0.3N(0,1)+0.7N(5,1), N(-1,1)+N(3,1)"),
    "bimodal-student-t-1x1-df1": (_tr(lambda: _t(1, 1), bimodal("bimodal_x", [0.3, 0.7], [0.0, 5.0], df=1),
                                      bimodal("bimodal_y", [0.5, 0.5], [-1.0, 3.0], df=1)),
                                  "Cauchy copula (t, df 1) with the bimodal mixture marginals"),
    "swissroll-gauss-2x1-rho0.75": (lambda: swiss_roll_task(TransformedTask(_rho75(), "normal_cdf")),
                                    "U = Phi(X) rolled into the plane, against Phi(Y); X, Y Gaussian, corr 0.75"),
    # spirals
    "spiral-gauss-2pair-3x3": (lambda: spiral_task(_two_pair(3)), "bmi's spiral of the 3+3-d 2-pair Gaussian"),
    "spiral-gauss-2pair-5x5": (lambda: spiral_task(_two_pair(5)), "bmi's spiral of the 5+5-d 2-pair Gaussian"),
    "spiral-gauss-2pair-25x25": (lambda: spiral_task(_two_pair(25)), "bmi's spiral of the 25+25-d 2-pair Gaussian"),
    "spiral-normalcdf-gauss-2pair-5x5": (lambda: spiral_task(TransformedTask(_two_pair(5), "normal_cdf")),
                                         "bmi's spiral of the 5+5-d 2-pair Gaussian after the normal CDF"),
    "spiral-gauss-5x5-mi5": (lambda: spiral_task(GaussianTask.from_mi(5.0, 5)),
                             "bmi's spiral of 5 Gaussian pairs, 5 nats (high MI, non-Gaussian copula)"),
    # hidden in high dimension: independent N(0, 1) columns and a fixed rotation of each side
    "hidden-spiral-gauss-2pair-100x100": (lambda: HiddenTask(spiral_task(_two_pair(5)), 100, 100),
                                          "spiral-gauss-2pair-5x5 padded with 95 independent N(0, 1) columns a "
                                          "side, each side rotated at random (rotation seed 0)"),
    # Student-t (identity dispersion unless a rho is named)
    "student-t-2x2-df1": (lambda: _t(2, 1), "2+2-d Student-t, df 1 (Cauchy), identity dispersion"),
    "student-t-2x2-df2": (lambda: StudentTTask.identity(2, 2, df=2),
                          "2+2-d Student-t, df 2, identity dispersion (dependent, uncorrelated)"),
    "student-t-2x2-df5-rho0.5": (lambda: StudentTTask.correlated(2, 0.5, df=5),
                                 "2 Student-t pairs, df 5, dispersion correlation 0.5"),
    "student-t-3x3-df2": (lambda: _t(3, 2), "3+3-d Student-t, df 2, identity dispersion"),
    "student-t-3x3-df3": (lambda: _t(3, 3), "3+3-d Student-t, df 3, identity dispersion"),
    "student-t-5x5-df2": (lambda: _t(5, 2), "5+5-d Student-t, df 2, identity dispersion"),
    "student-t-5x5-df3": (lambda: _t(5, 3), "5+5-d Student-t, df 3, identity dispersion"),
    "student-t-10x10-df1": (lambda: _t(10, 1), "10+10-d Student-t, df 1 (Cauchy), identity dispersion"),
    "student-t-5x5-df3-rho0.9": (lambda: StudentTTask.correlated(5, 0.9, df=3),
                                 "5 Student-t pairs, df 3, dispersion correlation 0.9 (high MI)"),
    "asinh-student-t-2x2-df1": (lambda: TransformedTask(StudentTTask.identity(2, 2, df=1), "asinh"),
                                "2+2-d Cauchy (t, df 1, identity dispersion) under asinh"),
    "asinh-student-t-3x3-df2": (_tr(lambda: _t(3, 2), "asinh"),
                                "3+3-d Student-t, df 2, identity dispersion, under asinh"),
    "asinh-student-t-5x5-df2": (_tr(lambda: _t(5, 2), "asinh"),
                                "5+5-d Student-t, df 2, identity dispersion, under asinh"),
    # additive uniform noise
    "uniform-eps0.1": (lambda: AdditiveUniformTask(0.1), "Y = X + U(-0.1, 0.1), X ~ U(0, 1)"),
    "uniform-eps0.75": (lambda: AdditiveUniformTask(0.75), "Y = X + U(-0.75, 0.75), X ~ U(0, 1)"),
    "uniform-3x3-eps0.1": (lambda: AdditiveUniformTask(0.1, dim=3),
                           "3 independent copies of Y = X + U(-0.1, 0.1) (high MI, non-Gaussian copula)"),
    # the rest of the benchmark's second version: Gaussian mixtures (MI by Monte Carlo, see MIXTURE_MI),
    # dense Gaussians in high dimension, the 1-d Cauchy under asinh
    "mixture-x-1x1-rho0.9": (_mix("mixture-x-1x1-rho0.9", x_task, 0.9),
                             "the X: equal mixture of bivariate normals of correlation +0.9 and -0.9"),
    "mixture-ai-1x1": (_mix("mixture-ai-1x1", ai_task), "the AI: six Gaussians drawing the letters A and I"),
    "mixture-galaxy-2x1": (_mix("mixture-galaxy-2x1", galaxy_task, 0.5, 3.0),
                           "the galaxy: two unit balls at +-1.5(1, 1, 1), X spiralled at speed 0.5"),
    "mixture-waves-2x1": (_mix("mixture-waves-2x1", waves_task, 12, 5.0, 3.0),
                          "the waves: 12 Gaussians on a zigzag, X bent by x1 + 5 sin(3 x2) and rescaled"),
    "mixture-concentric-3x1-k5": (_mix("mixture-concentric-3x1-k5", concentric_task, 3, 5),
                                  "5 concentric isotropic Gaussians in 3-d (sd 1..5), Y names the shell"),
    "mixture-concentric-5x1-k5": (_mix("mixture-concentric-5x1-k5", concentric_task, 5, 5),
                                  "5 concentric isotropic Gaussians in 5-d (sd 1..5), Y names the shell"),
    "mixture-concentric-3x1-k10": (_mix("mixture-concentric-3x1-k10", concentric_task, 3, 10),
                                   "10 concentric isotropic Gaussians in 3-d (sd 1..10), Y names the shell"),
    "mixture-concentric-5x1-k10": (_mix("mixture-concentric-5x1-k10", concentric_task, 5, 10),
                                   "10 concentric isotropic Gaussians in 5-d (sd 1..10), Y names the shell"),
    "mixture-concentric-25x1-k5": (_mix("mixture-concentric-25x1-k5", concentric_task, 25, 5),
                                   "5 concentric isotropic Gaussians in 25-d (sd 1..5), Y names the shell"),
    "mixture-2pair-5x5-inliers0.2": (_mix("mixture-2pair-5x5-inliers0.2", _inliers, 5, 0.2),
                                     "5+5-d 2-pair Gaussian, 20 % of the pairs drawn independently"),
    "mixture-2pair-25x25-inliers0.2": (_mix("mixture-2pair-25x25-inliers0.2", _inliers, 25, 0.2),
                                       "25+25-d 2-pair Gaussian, 20 % of the pairs drawn independently"),
    "mixture-2pair-5x5-inliers0.5": (_mix("mixture-2pair-5x5-inliers0.5", _inliers, 5, 0.5),
                                     "5+5-d 2-pair Gaussian, half the pairs drawn independently"),
    "mixture-2pair-25x25-inliers0.5": (_mix("mixture-2pair-25x25-inliers0.5", _inliers, 25, 0.5),
                                       "25+25-d 2-pair Gaussian, half the pairs drawn independently"),
    "gauss-dense-25x25": (lambda: GaussianTask.structured(25, 25, corr=0.5, off_diag=0.5),
                          "25+25-d Gaussian, every correlation 0.5 (BMI dense)"),
    "gauss-dense-50x50": (lambda: GaussianTask.structured(50, 50, corr=0.5, off_diag=0.5),
                          "50+50-d Gaussian, every correlation 0.5 (BMI dense)"),
    "asinh-student-t-1x1-df1": (_tr(lambda: _t(1, 1), "asinh"), "1-d Cauchy pair (t, df 1) under asinh"),
}

#: id -> the id of the task of Czyż et al.'s benchmark (package ``benchmark-mi``) it reproduces
BMI: dict[str, str] = {
    "gauss-dense-5x5": "multinormal-dense-5-5-0.5",
    "gauss-2pair-5x5": "multinormal-sparse-5-5-2-2.0",
    "gauss-2pair-25x25": "multinormal-sparse-25-25-2-2.0",
    "halfcube-gauss-2pair-25x25": "half_cube-multinormal-sparse-25-25-2-2.0",
    "normalcdf-gauss-2pair-25x25": "normal_cdf-multinormal-sparse-25-25-2-2.0",
    "wiggly-gauss-1x1-rho0.75": "wiggly-1v1-normal-0.75",
    "bimodal-gauss-1x1-rho0.75": "1v1-bimodal-0.75",
    "swissroll-gauss-2x1-rho0.75": "swissroll_x-normal_cdf-1v1-normal-0.75",
    "spiral-gauss-2pair-3x3": "spiral-multinormal-sparse-3-3-2-2.0",
    "spiral-gauss-2pair-5x5": "spiral-multinormal-sparse-5-5-2-2.0",
    "spiral-gauss-2pair-25x25": "spiral-multinormal-sparse-25-25-2-2.0",
    "spiral-normalcdf-gauss-2pair-5x5": "spiral-normal_cdf-multinormal-sparse-5-5-2-2.0",
    "student-t-2x2-df1": "student-identity-2-2-1",
    "student-t-2x2-df2": "student-identity-2-2-2",
    "student-t-3x3-df2": "student-identity-3-3-2",
    "student-t-3x3-df3": "student-identity-3-3-3",
    "student-t-5x5-df2": "student-identity-5-5-2",
    "student-t-5x5-df3": "student-identity-5-5-3",
    "asinh-student-t-2x2-df1": "asinh-student-identity-2-2-1",
    "asinh-student-t-3x3-df2": "asinh-student-identity-3-3-2",
    "asinh-student-t-5x5-df2": "asinh-student-identity-5-5-2",
    "uniform-eps0.1": "1v1-additive-0.1",
    "uniform-eps0.75": "1v1-additive-0.75",
    # the benchmark's MI of a mixture is its own Monte-Carlo estimate (10⁵ draws): equal within the errors
    "mixture-x-1x1-rho0.9": "1v1-X-0.9",
    "mixture-ai-1x1": "1v1-AI",
    "mixture-galaxy-2x1": "2v1-galaxy-0.5-3.0",
    "mixture-waves-2x1": "2v1-waves-12-5.0-3.0",
    "mixture-concentric-3x1-k5": "3v1-concentric_gaussians-5",
    "mixture-concentric-5x1-k5": "5v1-concentric_gaussians-5",
    "mixture-concentric-3x1-k10": "3v1-concentric_gaussians-10",
    "mixture-concentric-5x1-k10": "5v1-concentric_gaussians-10",
    "mixture-concentric-25x1-k5": "25v1-concentric_gaussians-5",
    "mixture-2pair-5x5-inliers0.2": "mult-sparse-w-inliers-5-5-2-2.0-0.2",
    "mixture-2pair-25x25-inliers0.2": "mult-sparse-w-inliers-25-25-2-2.0-0.2",
    "mixture-2pair-5x5-inliers0.5": "mult-sparse-w-inliers-5-5-2-2.0-0.5",
    "mixture-2pair-25x25-inliers0.5": "mult-sparse-w-inliers-25-25-2-2.0-0.5",
    "gauss-dense-25x25": "multinormal-dense-25-25-0.5",
    "gauss-dense-50x50": "multinormal-dense-50-50-0.5",
    "asinh-student-t-1x1-df1": "asinh-student-identity-1-1-1",
}

#: the 26 tasks of the benchmark's second version (``workflows/benchmark/v2/config.py``), in its order
BENCHMARK_V2: tuple[str, ...] = (
    # 1 x 1
    "uniform-eps0.75", "asinh-student-t-1x1-df1", "mixture-x-1x1-rho0.9", "mixture-ai-1x1",
    # embedding
    "swissroll-gauss-2x1-rho0.75",
    # n x 1
    "mixture-waves-2x1", "mixture-galaxy-2x1", "mixture-concentric-3x1-k5", "mixture-concentric-5x1-k5",
    "mixture-concentric-3x1-k10", "mixture-concentric-5x1-k10", "mixture-concentric-25x1-k5",
    # Gaussian
    "gauss-dense-5x5", "gauss-dense-25x25", "gauss-dense-50x50", "gauss-2pair-5x5", "gauss-2pair-25x25",
    # inliers
    "mixture-2pair-5x5-inliers0.2", "mixture-2pair-25x25-inliers0.2", "mixture-2pair-5x5-inliers0.5",
    "mixture-2pair-25x25-inliers0.5",
    # Student-t
    "asinh-student-t-2x2-df1", "asinh-student-t-3x3-df2", "asinh-student-t-5x5-df2",
    # transformed
    "spiral-gauss-2pair-3x3", "spiral-gauss-2pair-5x5",
)


def attribute_name(task_id: str) -> str:
    """The factory's attribute name for an id: ``gauss-1x1-mi0.5`` -> ``gauss_1x1_mi0_5``."""
    return re.sub(r"[^0-9a-zA-Z]", "_", task_id)


def _factory(task_id: str, build: Callable[[], Task], summary: str) -> Callable[[], Task]:
    def make() -> Task:
        task = build()
        task.id = task_id
        return task

    make.__name__ = make.__qualname__ = attribute_name(task_id)
    make.__doc__ = f"{summary}.\n\nThe task ``{task_id}``; see its class for the closed-form MI."
    return make


#: id -> factory (no arguments) returning a fresh task
CATALOG: dict[str, Callable[[], Task]] = {i: _factory(i, b, s) for i, (b, s) in _SPECS.items()}
globals().update({f.__name__: f for f in CATALOG.values()})
