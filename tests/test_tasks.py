"""Closed-form tasks: each MI against an independent route (numerical integration, or a
large-sample Monte-Carlo mean of log p(x,y)/p(x)p(y) from SciPy's own densities), invariance
under the transforms, the spiral and swiss roll against their definitions, the catalogue (the true MI of
the benchmark task each reproduces) and input checks. Every registered task's Monte-Carlo mean
and reproducible sampling are checked by the test kit (tests/test_conformance.py)."""

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings, strategies as st
from scipy import integrate, linalg, optimize, stats

import mi_estimators as mie
from mi_estimators.testing.strategies import gaussian_covariances
from mi_estimators.tasks import (BMI, CATALOG, TRANSFORMS, AdditiveUniformTask, GaussianTask, Spiral, StudentTTask,
                                 SwissRoll, TransformedTask, additive_uniform_mi, bimodal, spiral_task,
                                 swiss_roll_task, wiggly)

REGISTERED = mie.available("tasks")  # the test kit checks each one (tests/test_conformance.py)


def covariances(max_dim=3):
    """A random well-conditioned joint covariance and x_dim (the test kit's strategy)."""
    return gaussian_covariances(max_dim=max_dim).map(lambda drawn: drawn[:2])


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
    x, y = task.sample(2000, seed=3)
    xb, yb = base.sample(2000, seed=3)  # the same draws before the transform
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


# -- wiggly and bimodal marginals -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["wiggly_x", "wiggly_y"])
def test_wiggly_inverse_matches_brentq(name):
    t = TRANSFORMS[name]
    for u in (-7.3, -1.0, 0.0, 0.4, 2.9, 11.0):
        root = optimize.brentq(lambda v: t.forward(np.array(v)) - u, u - 5, u + 5, xtol=1e-14)
        assert t.inverse(np.array([u]))[0] == pytest.approx(root, abs=1e-12)


@pytest.mark.parametrize("df, cdf", [(None, stats.norm.cdf), (1, stats.t(1).cdf), (3, stats.t(3).cdf)])
def test_bimodal_maps_source_quantiles_to_mixture_quantiles(df, cdf):
    """f(v) solves F(x) = G(v): the mixture CDF, written out naively, at f(v) is the source CDF at v."""
    t = bimodal("b", [0.3, 0.7], [0.0, 5.0], df=df)
    v = np.linspace(-6, 6, 41)
    mixture_cdf = 0.3 * stats.norm.cdf(t.forward(v)) + 0.7 * stats.norm.cdf(t.forward(v) - 5.0)
    np.testing.assert_allclose(mixture_cdf, cdf(v), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(t.inverse(t.forward(v)), v, rtol=1e-9, atol=1e-9)


def test_bimodal_task_has_the_mixture_moments():
    """0.3 N(0, 1) + 0.7 N(5, 1): mean 3.5, variance 1 + 0.3·0.7·25; 0.5 N(−1, 1) + 0.5 N(3, 1): 1 and 5."""
    x, y = mie.get("bimodal-gauss-1x1-rho0.75", kind="tasks").sample(4000, seed=0)
    for v, mean, var in ((x, 3.5, 6.25), (y, 1.0, 5.0)):
        assert abs(v.mean() - mean) < 5 * math.sqrt(var / v.size)
        assert v.var() == pytest.approx(var, rel=0.1)


@pytest.mark.parametrize("call, match", [
    (lambda: wiggly("w", [(0.9, 1.5, 0.0)]), "increasing"),
    (lambda: bimodal("b", [0.5, 0.6], [0.0, 1.0]), "sum to 1"),
    (lambda: bimodal("b", [1.0], [0.0, 1.0]), "match means"),
])
def test_marginal_maps_reject_bad_parameters(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- spiral -----------------------------------------------------------------------------------------
@settings(max_examples=20)
@given(dim=st.integers(2, 6), speed=st.floats(-3, 3), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_spiral_is_the_matrix_exponential_of_bmi(dim, speed, seed, data):
    """f(x) = expm(speed·‖x‖²·A) x with A[i, j] = −1, A[j, i] = 1 (bmi.transforms.Spiral), row by row."""
    i = data.draw(st.integers(0, dim - 2))
    j = data.draw(st.integers(i + 1, dim - 1))
    spiral = Spiral(dim, speed, (i, j))
    v = np.random.default_rng(seed).normal(size=(5, dim)) * 2
    a = np.zeros((dim, dim))
    a[i, j], a[j, i] = -1.0, 1.0
    naive = np.stack([linalg.expm(speed * (row @ row) * a) @ row for row in v])
    np.testing.assert_allclose(spiral.forward(v), naive, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(spiral.inverse(spiral.forward(v)), v, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(spiral.forward(v), axis=1), np.linalg.norm(v, axis=1), rtol=1e-12)


def test_spiral_preserves_volume():
    """det Df = 1 (the module's derivation), by central differences."""
    spiral, h = Spiral(4, 0.7, (1, 3)), 1e-6
    for v in np.random.default_rng(1).normal(size=(5, 4)) * 1.5:
        jac = np.stack([(spiral.forward(v + h * e) - spiral.forward(v - h * e)) / (2 * h) for e in np.eye(4)], 1)
        assert np.linalg.det(jac) == pytest.approx(1.0, abs=1e-6)
    assert (spiral.log_abs_det_jacobian(np.ones((3, 4))) == 0).all()


def test_spiral_keeps_an_isotropic_gaussian_marginal():
    """N(0, I) turned by a rotation that depends on the radius alone is still N(0, I) (module doc)."""
    x, y = mie.get("spiral-gauss-2pair-5x5", kind="tasks").sample(20000, seed=2)
    for v in (x, y):
        np.testing.assert_allclose(np.cov(v.T), np.eye(5), atol=0.04)
    x0, _ = mie.get("gauss-2pair-5x5", kind="tasks").sample(20000, seed=2)
    assert not np.allclose(x, x0)  # the map did act


def test_spiral_task_uses_bmi_planes_and_speeds():
    task = spiral_task(GaussianTask.structured(4, 3, corr=0.8, n_interacting=2), speed=2.0)
    assert (task.fx.plane, task.fx.speed, task.fy.plane, task.fy.speed) == ((0, 1), 0.5, (1, 2), 2.0 / 3)


# -- swiss roll -------------------------------------------------------------------------------------
def test_swiss_roll_lies_on_the_curve_and_keeps_the_ratio():
    task = mie.get("swissroll-gauss-2x1-rho0.75", kind="tasks")
    x, y = task.sample(3000, seed=4)
    t = 21.0 * np.hypot(x[:, 0], x[:, 1])
    assert x.shape == (3000, 2) and (t >= 1.5 * np.pi).all() and (t <= 4.5 * np.pi).all()
    # the angle of the point is t itself (mod 2π): on the curve (t cos t, t sin t) / 21
    np.testing.assert_allclose(np.cos(np.arctan2(x[:, 1], x[:, 0]) - t), 1.0, atol=1e-9)
    u, _ = task.base.sample(3000, seed=4)  # U = Φ(X) before rolling
    np.testing.assert_allclose(SwissRoll().inverse(x), u, atol=1e-12)
    np.testing.assert_allclose(task.log_density_ratio(x, y), task.base.log_density_ratio(u, y), atol=1e-9)


@pytest.mark.parametrize("call, match", [
    (lambda: Spiral(1), "dim"),
    (lambda: Spiral(3, 1.0, (2, 1)), "plane"),
    (lambda: Spiral(3).forward(np.zeros((2, 4))), "width 3"),
    (lambda: spiral_task(GaussianTask.from_mi(1.0, 2)), "y_dim >= 3"),
    (lambda: TransformedTask(GaussianTask.from_mi(1.0, 3), Spiral(4)), "width 4"),
    (lambda: swiss_roll_task(GaussianTask.from_mi(1.0, 2)), "1-d X"),
    (lambda: SwissRoll().inverse(np.zeros((2, 3))), "2 columns"),
])
def test_row_maps_reject_bad_shapes(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- catalogue, registry, sampling contract -------------------------------------------------------
def test_catalogue_is_registered():
    assert set(CATALOG) <= set(REGISTERED) and set(BMI) <= set(CATALOG)


#: the true MI of Czyż et al.'s tasks as their package computes it (``benchmark-mi`` 0.1.3,
#: ``task.mutual_information`` of ``bmi.benchmark.task_list``): an independent implementation
BMI_TRUE_MI = {
    "multinormal-dense-5-5-0.5": 0.5928118328288701,
    "multinormal-sparse-5-5-2-2.0": 1.021651247531981,
    "multinormal-sparse-25-25-2-2.0": 1.0216512475319774,
    "half_cube-multinormal-sparse-25-25-2-2.0": 1.0216512475319774,
    "normal_cdf-multinormal-sparse-25-25-2-2.0": 1.0216512475319774,
    "wiggly-1v1-normal-0.75": 0.41333928659223396,
    "1v1-bimodal-0.75": 0.41333928659223396,
    "swissroll_x-normal_cdf-1v1-normal-0.75": 0.41333928659223396,
    "spiral-multinormal-sparse-3-3-2-2.0": 1.0216512475319819,
    "spiral-multinormal-sparse-5-5-2-2.0": 1.021651247531981,
    "spiral-multinormal-sparse-25-25-2-2.0": 1.0216512475319774,
    "spiral-normal_cdf-multinormal-sparse-5-5-2-2.0": 1.021651247531981,
    "student-identity-2-2-1": 0.43194562200144127,
    "student-identity-2-2-2": 0.1931471805599454,
    "student-identity-3-3-2": 0.29092192268276484,
    "student-identity-3-3-3": 0.17871185309236282,
    "student-identity-5-5-2": 0.44815067691532917,
    "student-identity-5-5-3": 0.29854362265275824,
    "asinh-student-identity-2-2-1": 0.43194562200144127,
    "asinh-student-identity-3-3-2": 0.29092192268276484,
    "asinh-student-identity-5-5-2": 0.44815067691532917,
    "1v1-additive-0.1": 1.7094379124341004,
    "1v1-additive-0.75": 0.3333333333333333,
    "asinh-student-identity-1-1-1": 0.22417142752923613,
    "multinormal-dense-25-25-0.5": 1.2921837216593275,
    "multinormal-dense-50-50-0.5": 1.6242653743036897,
}

#: the benchmark's MI of its mixture tasks (the same package): ``task.mutual_information``, its own Monte-Carlo
#: mean of the log density ratio over 10⁵ draws (JAX key 0, JAX's default 32-bit floats), with that run's standard
#: error; studies/bmi_crosscheck.py recomputes them (in 64-bit, other draws) with the density ratio at shared points
BMI_MC_MI = {
    "1v1-X-0.9": (0.40876397490501404, 0.00237),
    "1v1-AI": (0.7775421142578125, 0.00275),
    "2v1-waves-12-5.0-3.0": (1.3079789876937866, 0.00120),
    "2v1-galaxy-0.5-3.0": (0.49330103397369385, 0.00164),
    "3v1-concentric_gaussians-5": (0.4563290774822235, 0.00211),
    "5v1-concentric_gaussians-5": (0.6260703206062317, 0.00226),
    "3v1-concentric_gaussians-10": (0.5562974214553833, 0.00236),
    "5v1-concentric_gaussians-10": (0.7491084337234497, 0.00251),
    "25v1-concentric_gaussians-5": (1.190227746963501, 0.00200),
    "mult-sparse-w-inliers-5-5-2-2.0-0.2": (0.6334941387176514, 0.00365),
    "mult-sparse-w-inliers-25-25-2-2.0-0.2": (0.6344553232192993, 0.00366),
    "mult-sparse-w-inliers-5-5-2-2.0-0.5": (0.26824134588241577, 0.00264),
    "mult-sparse-w-inliers-25-25-2-2.0-0.5": (0.27074873447418213, 0.00266),
}


@pytest.mark.parametrize("task_id", sorted(BMI))
def test_reproduced_benchmark_tasks_have_the_benchmarks_mi(task_id):
    task = CATALOG[task_id]()
    if BMI[task_id] in BMI_MC_MI:  # two Monte-Carlo integrals of the same density ratio: within their errors
        mi, se = BMI_MC_MI[BMI[task_id]]
        assert abs(task.mi - mi) <= 4.0 * math.hypot(task.mi_stderr, se), (task.mi, task.mi_stderr, mi, se)
    else:
        assert task.mi == pytest.approx(BMI_TRUE_MI[BMI[task_id]], abs=1e-12)
        assert task.mi_stderr == 0.0


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
