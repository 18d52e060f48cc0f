"""Closed-form tasks: each MI against an independent route (numerical integration, or a
large-sample Monte-Carlo mean of log p(x,y)/p(x)p(y) from SciPy's own densities), invariance
under the transforms, the catalogue and input checks."""

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings, strategies as st
from scipy import integrate, stats

import mi_estimators as mie
from mi_estimators.tasks import (CATALOG, TRANSFORMS, AdditiveUniformTask, GaussianTask, StudentTTask,
                                 TransformedTask, additive_uniform_mi)


@st.composite
def covariances(draw, max_dim=3):
    """A random well-conditioned SPD joint covariance, with x_dim."""
    dx = draw(st.integers(1, max_dim))
    dy = draw(st.integers(1, max_dim))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dx + dy, dx + dy))
    cov = a @ a.T + 0.5 * np.eye(dx + dy)
    scale = 1 / np.sqrt(np.diag(cov))
    return cov * scale[:, None] * scale[None, :], dx


def _mc_close(values, truth, k=5.0):
    values = values[np.isfinite(values)]
    se = values.std(ddof=1) / math.sqrt(values.size)
    assert abs(values.mean() - truth) < k * se + 1e-3, (values.mean(), truth, se)


# -- Gaussian -------------------------------------------------------------------------------------
@given(d=st.integers(1, 20), rho=st.floats(-0.99, 0.99))
def test_correlated_general_formula_equals_per_dimension_formula(d, rho):
    task = GaussianTask.correlated(d, rho)
    assert task.mi == pytest.approx(-0.5 * d * math.log1p(-rho**2), rel=1e-9, abs=1e-12)


@given(mi=st.floats(0.0, 20.0), d=st.integers(1, 30))
@example(mi=19.0, d=1)
def test_from_mi_hits_target(mi, d):
    if mi / d > 18.5:  # rho rounds to 1 in float64: a clear error instead of a singular covariance
        with pytest.raises(ValueError, match="rounds to 1 in float64"):
            GaussianTask.from_mi(mi, d)
        return
    assume(mi / d < 18.0)  # between the two, rho may or may not round to 1
    # 1 - rho^2 = e^(-2 mi / d) is formed from a rounded rho: float64 error ~ 1e-16 / e^(-2 mi / d)
    assert GaussianTask.from_mi(mi, d).mi == pytest.approx(mi, abs=1e-9 + 1e-15 * math.exp(2 * mi / d))


@settings(max_examples=5)
@given(rho=st.floats(-0.9, 0.9), sx=st.floats(0.3, 3.0), sy=st.floats(0.3, 3.0))
def test_gaussian_1x1_by_numerical_integration(rho, sx, sy):
    cov = np.array([[sx**2, rho * sx * sy], [rho * sx * sy, sy**2]])
    task = GaussianTask(cov, 1)
    joint = stats.multivariate_normal(np.zeros(2), cov)
    # the trapezoid rule on a fine grid over ±9 sd: for a smooth, fast-decaying integrand its error
    # falls like exp(−2π²s²/h²), here s/h >= 21 (s = sqrt(1 − |ρ|), h = 18/1200 in sd units)
    gx, gy = np.meshgrid(np.linspace(-9 * sx, 9 * sx, 1201), np.linspace(-9 * sy, 9 * sy, 1201), indexing="ij")
    log_joint = joint.logpdf(np.stack([gx, gy], -1))
    integrand = np.exp(log_joint) * (log_joint - stats.norm.logpdf(gx, scale=sx) - stats.norm.logpdf(gy, scale=sy))
    value = integrate.trapezoid(integrate.trapezoid(integrand, gy[0], axis=1), gx[:, 0])
    assert task.mi == pytest.approx(value, abs=1e-9)


@settings(max_examples=10)
@given(spec=covariances())
def test_gaussian_ratio_matches_scipy_and_monte_carlo(spec):
    cov, dx = spec
    task = GaussianTask(cov, dx)
    x, y = task.sample(20000, seed=1)
    naive = (stats.multivariate_normal(None, cov).logpdf(np.hstack([x, y]))
             - np.atleast_1d(stats.multivariate_normal(None, cov[:dx, :dx]).logpdf(x))
             - np.atleast_1d(stats.multivariate_normal(None, cov[dx:, dx:]).logpdf(y)))
    np.testing.assert_allclose(task.log_density_ratio(x, y), naive, rtol=1e-7, atol=1e-7)
    _mc_close(naive, task.mi)


def test_structured_dense_and_sparse():
    sparse = GaussianTask.structured(5, 4, corr=0.6, n_interacting=2)
    assert sparse.mi == pytest.approx(-2 * 0.5 * math.log(1 - 0.36))  # two independent pairs
    dense = GaussianTask.structured(3, 3, corr=0.2, off_diag=0.3)
    assert (dense.cov[:3, 3:] == 0.2).all() and dense.mi > 0
    with pytest.raises(ValueError, match="positive definite"):
        GaussianTask.structured(3, 3, corr=0.9, off_diag=0.0)


# -- invertible transforms ------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@given(v=st.floats(-6, 6).filter(lambda v: abs(v) > 1e-3))
def test_transform_inverse_and_derivative(name, v):
    t = TRANSFORMS[name]
    arr = np.array([v])
    np.testing.assert_allclose(t.inverse(t.forward(arr)), arr, rtol=1e-6, atol=1e-8)
    h = 1e-6 * max(1.0, abs(v))
    numeric = (t.forward(arr + h) - t.forward(arr - h)) / (2 * h)
    np.testing.assert_allclose(t.log_abs_derivative(arr), np.log(np.abs(numeric)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@settings(max_examples=5)
@given(spec=covariances(max_dim=2))
def test_transformed_task_keeps_mi(name, spec):
    cov, dx = spec
    base = GaussianTask(cov, dx)
    task = TransformedTask(base, name, None if name == "cubic" else name)
    assert task.mi == base.mi
    x, y = task.sample(5000, seed=3)
    xb, yb = base.sample(5000, seed=3)  # the same draws before the transform
    ratio = task.log_density_ratio(x, y)
    np.testing.assert_allclose(ratio, base.log_density_ratio(xb, yb), rtol=1e-5, atol=1e-5)
    # the change-of-variables densities, written out with their Jacobians, give the same ratio
    fx, fy = task.fx, task.fy or TRANSFORMS["cubic"].__class__("id", lambda v: v, lambda v: v,
                                                                  lambda v: np.zeros_like(v))
    jx, jy = fx.log_abs_derivative(xb).sum(1), fy.log_abs_derivative(yb).sum(1)
    lj = stats.multivariate_normal(None, cov).logpdf(np.hstack([xb, yb])) - jx - jy
    lx = np.atleast_1d(stats.multivariate_normal(None, cov[:dx, :dx]).logpdf(xb)) - jx
    ly = np.atleast_1d(stats.multivariate_normal(None, cov[dx:, dx:]).logpdf(yb)) - jy
    ok = np.abs(xb).min(1) > 1e-3  # log|f'| is singular at 0 for the power maps
    np.testing.assert_allclose(ratio[ok], (lj - lx - ly)[ok], rtol=1e-5, atol=1e-5)


# -- Student-t ------------------------------------------------------------------------------------
@settings(max_examples=8)
@given(spec=covariances(max_dim=2), df=st.floats(1.0, 30.0))
def test_student_t_against_scipy_monte_carlo(spec, df):
    cov, dx = spec
    task = StudentTTask(cov, dx, df)
    x, y = task.sample(40000, seed=7)
    naive = (stats.multivariate_t(None, cov, df=df).logpdf(np.hstack([x, y]))
             - np.atleast_1d(stats.multivariate_t(None, cov[:dx, :dx], df=df).logpdf(x))
             - np.atleast_1d(stats.multivariate_t(None, cov[dx:, dx:], df=df).logpdf(y)))
    np.testing.assert_allclose(task.log_density_ratio(x, y), naive, rtol=1e-6, atol=1e-6)
    _mc_close(naive, task.mi)


@given(dx=st.integers(1, 4), dy=st.integers(1, 4), df=st.floats(0.5, 50))
def test_student_t_identity_dispersion_has_positive_mi(dx, dy, df):
    assert StudentTTask.identity(dx, dy, df).mi > 0


def test_student_t_tends_to_gaussian():
    cov = GaussianTask.correlated(2, 0.6).cov
    assert StudentTTask(cov, 2, df=1e7).mi == pytest.approx(GaussianTask(cov, 2).mi, abs=1e-5)


# -- additive uniform -----------------------------------------------------------------------------
@settings(max_examples=15)
@given(eps=st.floats(0.02, 4.0))
def test_additive_uniform_formula_by_integration(eps):
    """I = h(Y) − ln 2ε with h(Y) = −∫ p ln p integrated numerically from p_Y's definition."""
    def p_y(v):
        return max(0.0, min(v + eps, 1.0) - max(v - eps, 0.0)) / (2 * eps)

    def neg_plogp(v):
        p = p_y(v)
        return -p * math.log(p) if p > 0 else 0.0

    kinks = sorted({-eps, eps, 1 - eps, 1 + eps, 0.0, 1.0})
    h = sum(integrate.quad(neg_plogp, a, b, epsabs=1e-11)[0] for a, b in zip(kinks, kinks[1:]))
    assert additive_uniform_mi(eps) == pytest.approx(h - math.log(2 * eps), abs=1e-7)
    assert AdditiveUniformTask(eps, dim=2).mi == pytest.approx(2 * (h - math.log(2 * eps)), abs=1e-6)


def test_additive_uniform_ratio_support():
    task = AdditiveUniformTask(0.1)
    x, y = task.sample(50000, seed=0)
    r = task.log_density_ratio(x, y)
    assert np.isfinite(r).all()
    _mc_close(r, task.mi)
    assert task.log_density_ratio([[0.5]], [[0.9]])[0] == -np.inf  # off the support


# -- catalogue, registry, sampling contract -------------------------------------------------------
def test_catalogue_is_registered_and_monte_carlo_agrees():
    assert set(CATALOG) <= set(mie.available("tasks"))
    for task_id in CATALOG:
        task = mie.get(task_id, kind="tasks")
        assert task.id == task_id
        x, y = task.sample(20000, seed=11)
        assert x.shape == (20000, task.x_dim) and y.shape == (20000, task.y_dim) and x.dtype == np.float64
        _mc_close(task.log_density_ratio(x, y), task.mi)


def test_seeds_reproduce_and_generators_are_used():
    task = GaussianTask.from_mi(1.0, 2)
    a, b = task.sample(10, seed=5), task.sample(10, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    rng = np.random.default_rng(0)
    c, d = task.sample(10, rng), task.sample(10, rng)
    assert not np.array_equal(c[0], d[0])


@pytest.mark.parametrize("call, match", [
    (lambda: GaussianTask.from_mi(1.0).sample(0), "positive integer"),
    (lambda: GaussianTask.from_mi(1.0).sample(5, seed=-1), "seed"),
    (lambda: GaussianTask.correlated(2, 1.0), "strictly between"),
    (lambda: GaussianTask.from_mi(-1.0), "mi must be"),
    (lambda: StudentTTask.identity(1, 1, df=0), "df"),
    (lambda: AdditiveUniformTask(0.0), "eps"),
    (lambda: TransformedTask(GaussianTask.from_mi(1.0), "square"), "unknown transform"),
    (lambda: GaussianTask.from_mi(1.0, 2).log_density_ratio(np.zeros((3, 2)), np.zeros((3, 1))), "shape"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
